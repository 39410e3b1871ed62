"""The server processes on one database: the calls of a process that is gone are closed as
``server_lost``, those of a live one never, whichever process looks."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psutil
import pytest
from sqlalchemy import delete, insert, select

from voxline.store.calls import CallRecord, CallRecords
from voxline.store.database import Database
from voxline.store.schema import servers
from voxline.store.servers import ServerRegistry

#: Another server process: registers, opens a call, says so, then waits to be killed.
_SERVER = textwrap.dedent(
    """
    import sys
    from voxline.store.calls import CallRecord, CallRecords
    from voxline.store.database import Database
    from voxline.store.servers import ServerRegistry

    db = Database(sys.argv[1])
    server_id = ServerRegistry(db).register()
    CallRecords(db, server_id=server_id).open(
        CallRecord(call_id=sys.argv[2], key_id="key_1", session_label=None,
                   transport="omni", started_at=1000.0)
    )
    print("open", flush=True)
    sys.stdin.read()
    """
)


@contextmanager
def other_server(db: Database, call_id: str) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-c", _SERVER, db.url.render_as_string(hide_password=False), call_id],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stdout.readline() == "open\n"
        yield process
    finally:
        process.kill()
        process.wait()


def started(call_id: str) -> CallRecord:
    return CallRecord(
        call_id=call_id, key_id="key_1", session_label=None, transport="omni", started_at=1000.0
    )


def closed_as(calls: CallRecords, call_id: str) -> tuple[int | None, str | None]:
    record = calls.get(call_id)
    assert record is not None
    return record.close_code, record.close_reason


def test_only_the_calls_of_processes_that_are_gone_are_closed(db: Database) -> None:
    registry = ServerRegistry(db)
    mine = CallRecords(db, server_id=registry.register())
    mine.open(started("call_mine"))
    calls = CallRecords(db)
    with other_server(db, "call_killed") as killed:
        with other_server(db, "call_alive"):
            killed.kill()
            killed.wait()
            assert registry.close_lost_calls() == 1
            assert closed_as(calls, "call_killed") == (1006, "server_lost")
            # The live process's call and this process's own are left alone.
            assert closed_as(calls, "call_alive") == (None, None)
            assert closed_as(calls, "call_mine") == (None, None)
            assert registry.close_lost_calls() == 0
        assert registry.close_lost_calls() == 1
        assert closed_as(calls, "call_alive") == (1006, "server_lost")
    record = calls.get("call_killed")
    assert record is not None and record.ended_at is not None and record.ended_at >= 1000.0


def test_a_process_on_another_host_is_gone_once_its_heartbeat_is_stale(db: Database) -> None:
    registry = ServerRegistry(db, stale_after_s=60)
    now = time.time()
    with db.write() as conn:
        for server_id, heartbeat_at in (("fresh", now - 30), ("stale", now - 90)):
            conn.execute(
                insert(servers).values(
                    server_id=server_id,
                    host="elsewhere/pid:[1]",
                    pid=1,
                    pid_started_at=1.0,
                    started_at=now - 100,
                    heartbeat_at=heartbeat_at,
                )
            )
    for server_id in ("fresh", "stale"):
        CallRecords(db, server_id=server_id).open(started(f"call_{server_id}"))
    assert registry.close_lost_calls() == 1
    calls = CallRecords(db)
    assert closed_as(calls, "call_fresh") == (None, None)
    assert closed_as(calls, "call_stale") == (1006, "server_lost")
    stale = calls.get("call_stale")
    assert stale is not None and stale.ended_at == now - 90  # the last sign of life
    registry.heartbeat("fresh")
    with db.read() as conn:
        heartbeat_at = conn.execute(
            select(servers.c.heartbeat_at).where(servers.c.server_id == "fresh")
        ).scalar_one()
    assert heartbeat_at >= now


def test_calls_of_no_registered_process_are_closed(db: Database) -> None:
    CallRecords(db).open(started("call_unowned"))
    CallRecords(db, server_id="forgotten").open(started("call_forgotten"))
    assert ServerRegistry(db).close_lost_calls() == 2
    calls = CallRecords(db)
    assert closed_as(calls, "call_unowned") == (1006, "server_lost")
    assert closed_as(calls, "call_forgotten") == (1006, "server_lost")


def test_a_clean_stop_closes_what_is_left_of_its_calls(db: Database) -> None:
    registry = ServerRegistry(db)
    server_id = registry.register()
    calls = CallRecords(db, server_id=server_id)
    calls.open(started("call_done"))
    calls.finish(
        "call_done",
        ended_at=1001.0,
        close_code=1000,
        close_reason="client_closed",
        audio_in_seconds=0,
        audio_out_seconds=0,
        turns=0,
        barge_ins=0,
    )
    calls.open(started("call_stuck"))
    assert registry.deregister(server_id, reason="server_shutdown") == 1
    assert closed_as(calls, "call_done") == (1000, "client_closed")
    assert closed_as(calls, "call_stuck") == (1001, "server_shutdown")
    with db.read() as conn:
        assert conn.execute(select(servers)).all() == []


def test_a_step_of_the_wall_clock_does_not_make_a_live_process_look_gone(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process's wall-clock start time is boot time plus its age, and the kernel's boot
    time moves when the wall clock is stepped (NTP): judged by it, every process took itself
    for gone and closed its own live calls as lost."""
    registry = ServerRegistry(db)
    server_id = registry.register()
    CallRecords(db, server_id=server_id).open(started("call_live"))
    stepped = psutil.boot_time() + 1.0
    monkeypatch.setattr(psutil._pslinux, "boot_time", lambda: stepped)
    assert registry.close_lost_calls() == 0
    record = CallRecords(db).get("call_live")
    assert record is not None and record.ended_at is None


def test_a_process_registered_by_an_older_version_is_still_known_alive(db: Database) -> None:
    registry = ServerRegistry(db)
    with db.write() as conn:  # as versions before boot-relative start times wrote it
        conn.execute(
            insert(servers).values(
                server_id="old",
                host=registry._host,
                pid=os.getpid(),
                pid_started_at=psutil.Process().create_time(),
                started_at=0,
                heartbeat_at=time.time(),
            )
        )
    CallRecords(db, server_id="old").open(started("call_old"))
    assert registry.close_lost_calls() == 0


def test_a_process_taken_for_gone_registers_again_at_its_heartbeat(db: Database) -> None:
    registry = ServerRegistry(db)
    server_id = registry.register()
    with db.write() as conn:
        conn.execute(delete(servers))
    registry.heartbeat(server_id)
    CallRecords(db, server_id=server_id).open(started("call_after"))
    assert registry.close_lost_calls() == 0
