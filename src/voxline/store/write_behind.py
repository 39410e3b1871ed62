"""Writes of call records that wait out a database outage instead of being lost.

A call that starts or ends while the database cannot be reached (PostgreSQL restarting or
failing over, an SQLite file locked past its busy timeout) still has a record to write.
Such a write is kept, in order, and retried until the database answers again; writes that
come after it queue behind it, so that a call's end is never written before its start. A
write that was applied although its connection failed before the answer (a retried insert
finds its row) counts as done. The queue is bounded: past ``limit`` writes the oldest is
dropped, and said so in the log, rather than the process running out of memory during a
long outage. A process that dies during the outage leaves its calls open, to be closed as
``server_lost`` by the next (:mod:`voxline.store.servers`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

from sqlalchemy.exc import IntegrityError

from voxline.store.database import DatabaseUnavailable

log = logging.getLogger(__name__)

Write = Callable[[], object]
"""A blocking write: run in a worker thread."""


class WriteBehind:
    def __init__(self, *, limit: int = 100_000) -> None:
        self._pending: deque[Write] = deque()
        self._limit = limit
        self._flushing = asyncio.Lock()
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._pending)

    async def run(self, write: Write) -> None:
        """Apply ``write`` now, or keep it for :meth:`flush` if the database cannot be
        reached or earlier writes still wait."""
        if not self._pending:
            try:
                await asyncio.to_thread(write)
                return
            except DatabaseUnavailable as exc:
                log.warning("database unreachable, keeping call records to write later: %s", exc)
        self._keep(write)

    def _keep(self, write: Write) -> None:
        if len(self._pending) >= self._limit:
            self._pending.popleft()
            self.dropped += 1
            log.error(
                "%d call record write(s) dropped: the database has been away too long",
                self.dropped,
            )
        self._pending.append(write)

    async def flush(self) -> bool:
        """Apply the kept writes in order, until one fails for want of the database;
        whether none is left."""
        async with self._flushing:
            while self._pending:
                write = self._pending[0]
                try:
                    await asyncio.to_thread(write)
                except DatabaseUnavailable:
                    return False
                except IntegrityError:
                    pass  # applied before, its answer lost with the connection
                self._pending.popleft()
                if not self._pending:
                    log.info("database reachable again; the call records kept were written")
            return True
