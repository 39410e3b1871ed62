"""The server processes that write call records, so that the calls of a dead one get closed.

A call's row is opened as its session starts and finished as it ends; a process that dies
(SIGKILL, OOM, power) finishes none of its rows. Each process registers here under a fresh
id, which its rows carry, with who it is (host, pid, the pid's start time) and a heartbeat.
Any process, at start and at each heartbeat, finds the registered processes that are gone
and closes their open rows with ``close_reason`` ``server_lost``:

- a process of the same host (hostname and pid namespace, so containers sharing a volume
  are told apart) is gone when no process has its pid with its start time: exact and
  immediate, however long its event loop may have stalled, and safe against reused pids;
- a process elsewhere, which cannot be looked up, is gone once its heartbeat is older than
  ``stale_after_s``.

Rows of no registered process (written before processes registered, or of a process whose
registration was removed) are closed too. Several processes on one database (``--workers``,
or separate servers on one data directory) thus never close each other's live calls, and
a server restarted after a crash closes its predecessor's calls at once.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass

import psutil
from sqlalchemy import ColumnElement, Connection, Update, case, delete, insert, or_, select, update

from voxline.store.database import Database
from voxline.store.schema import calls, servers

log = logging.getLogger(__name__)

SERVER_LOST = "server_lost"
#: The code a lost call's client saw: its connection just dropped.
SERVER_LOST_CODE = 1006
#: A process's start time, as psutil reads it twice, agrees to well within this.
_START_TIME_TOLERANCE_S = 0.05
#: Start times above this are wall-clock times, written by versions before boot-relative
#: ones; no host has been up for 30 years.
_WALL_CLOCK_START = 1e9


def _started(process: psutil.Process) -> float:
    """When ``process`` started, in seconds since boot: unlike its wall-clock start time,
    which moves whenever the wall clock is stepped, this never changes."""
    return process.create_time() - psutil.boot_time()  # both move with the wall clock


def _host() -> str:
    """This host and pid namespace: where pids can be looked up."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return f"{socket.gethostname()}/{namespace}"


@dataclass(frozen=True, slots=True)
class _Registered:
    server_id: str
    host: str
    pid: int
    pid_started_at: float
    heartbeat_at: float


def _alive(pid: int, started_at: float) -> bool:
    try:
        process = psutil.Process(pid)
        started = process.create_time() if started_at > _WALL_CLOCK_START else _started(process)
        return abs(started - started_at) < _START_TIME_TOLERANCE_S
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


class ServerRegistry:
    """Blocking methods; run them in a worker thread from async code."""

    def __init__(self, db: Database, *, stale_after_s: float = 60.0) -> None:
        self._db = db
        self._stale_after_s = stale_after_s
        self._host = _host()

    def register(self) -> str:
        """Register this process; the id its call records are to carry."""
        server_id = uuid.uuid4().hex
        with self._db.write() as conn:
            self._insert(conn, server_id)
        return server_id

    def heartbeat(self, server_id: str) -> None:
        """This process is alive. Registered again if another process took it for gone
        (it closed the calls open then: their records cannot be taken back)."""
        with self._db.write() as conn:
            updated = conn.execute(
                update(servers)
                .where(servers.c.server_id == server_id)
                .values(heartbeat_at=time.time())
            ).rowcount
            if not updated:
                log.warning("server %s was taken for gone; registering it again", server_id)
                self._insert(conn, server_id)

    def _insert(self, conn: Connection, server_id: str) -> None:
        now = time.time()
        pid = os.getpid()
        conn.execute(
            insert(servers).values(
                server_id=server_id,
                host=self._host,
                pid=pid,
                pid_started_at=_started(psutil.Process(pid)),
                started_at=now,
                heartbeat_at=now,
            )
        )

    def deregister(self, server_id: str, *, reason: str) -> int:
        """A clean stop: close what is still open of this process's calls with ``reason``
        (normally nothing), forget the process; the number of calls closed."""
        with self._db.write() as conn:
            closed = conn.execute(
                _close_open_calls(calls.c.server_id == server_id).values(
                    ended_at=time.time(), close_code=1001, close_reason=reason
                )
            ).rowcount
            conn.execute(delete(servers).where(servers.c.server_id == server_id))
        return closed

    def close_lost_calls(self) -> int:
        """Close the open calls of processes that are gone, forget those processes; the
        number of calls closed."""
        now = time.time()
        with self._db.write() as conn:
            registered = [
                _Registered(*row)
                for row in conn.execute(
                    select(
                        servers.c.server_id,
                        servers.c.host,
                        servers.c.pid,
                        servers.c.pid_started_at,
                        servers.c.heartbeat_at,
                    )
                )
            ]
            gone = [server for server in registered if self._gone(server, now)]
            closed = 0
            for server in gone:
                # Its last sign of life, or the call's start if that came later.
                ended_at = case(
                    (calls.c.started_at > server.heartbeat_at, calls.c.started_at),
                    else_=server.heartbeat_at,
                )
                closed += conn.execute(
                    _close_open_calls(calls.c.server_id == server.server_id).values(
                        ended_at=ended_at, close_code=SERVER_LOST_CODE, close_reason=SERVER_LOST
                    )
                ).rowcount
                conn.execute(delete(servers).where(servers.c.server_id == server.server_id))
            closed += conn.execute(
                _close_open_calls(
                    or_(
                        calls.c.server_id.is_(None),
                        calls.c.server_id.not_in(select(servers.c.server_id)),
                    )
                ).values(ended_at=now, close_code=SERVER_LOST_CODE, close_reason=SERVER_LOST)
            ).rowcount
        return closed

    def _gone(self, server: _Registered, now: float) -> bool:
        if server.host == self._host:
            return not _alive(server.pid, server.pid_started_at)
        return server.heartbeat_at < now - self._stale_after_s


def _close_open_calls(whose: ColumnElement[bool]) -> Update:
    return update(calls).where(whose, calls.c.ended_at.is_(None))
