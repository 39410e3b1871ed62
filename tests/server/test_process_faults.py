"""A server process that dies or is told to stop, with calls on it: every call's record is
finished, and a stopped server says goodbye to its callers first."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest

from tests.support.caller import Caller
from tests.support.server import OPEN_LIMITS, RunningServer, run_server
from voxline.store.calls import CallRecord, CallRecords
from voxline.store.database import Database

pytestmark = pytest.mark.e2e

CALLS = 6


async def open_calls(server: RunningServer, count: int = CALLS) -> list[Caller]:
    key = server.create_key()
    callers = []
    for _ in range(count):
        caller = await Caller.open(server.ws, subprotocols=["pyai.v1", f"pyai-key.{key}"])
        await caller.send_control({"type": "configure"})
        await caller.wait_for("hello")
        callers.append(caller)
    return callers


def records(data_dir: Path, callers: list[Caller]) -> list[CallRecord | None]:
    with Database(data_dir / "voxline.db") as db:
        calls = CallRecords(db)
        return [calls.get(c.got.first("hello")["call_id"]) for c in callers]


def test_calls_of_a_killed_server_are_closed_when_it_restarts(tmp_path: Path) -> None:
    with run_server(tmp_path, env=OPEN_LIMITS) as server:
        callers = asyncio.run(open_calls(server))
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=10)
        left_open = records(tmp_path, callers)
        assert all(r is not None and r.ended_at is None for r in left_open)

    with run_server(tmp_path, env=OPEN_LIMITS):
        closed = records(tmp_path, callers)
    for record in closed:
        assert record is not None and record.ended_at is not None
        assert (record.close_code, record.close_reason) == (1006, "server_lost")
        assert record.ended_at >= record.started_at


def test_sigterm_ends_every_call_with_server_shutdown(tmp_path: Path) -> None:
    async def stop_with_calls(server: RunningServer) -> list[Caller]:
        callers = await open_calls(server)
        streams = [asyncio.create_task(c.silence(10)) for c in callers]
        stopping = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        for caller in callers:
            got = await caller.closed(timeout=10)
            assert got.first("session_end")["reason"] == "server_shutdown"
            assert (got.close_code, got.close_reason) == (1001, "server_shutdown")
        assert time.monotonic() - stopping < 3
        for stream in streams:
            stream.cancel()
        return callers

    env = {**OPEN_LIMITS, "VOXLINE_SHUTDOWN_GRACE_SECONDS": "3"}
    with run_server(tmp_path, env=env) as server:
        callers = asyncio.run(stop_with_calls(server))
        server.process.wait(timeout=15)
    for record in records(tmp_path, callers):
        assert record is not None and record.ended_at is not None
        assert (record.close_code, record.close_reason) == (1001, "server_shutdown")


def test_sigterm_lets_calls_end_by_themselves_for_drain_seconds(tmp_path: Path) -> None:
    async def stop_while_calling(server: RunningServer) -> tuple[list[Caller], float]:
        staying, leaving = await open_calls(server, 2)
        streams = [asyncio.create_task(c.silence(20)) for c in (staying, leaving)]
        stopping = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        await asyncio.sleep(1)
        assert "session_end" not in staying.got.names()  # the call goes on
        key = server.create_key()
        refused = await Caller.open(server.ws, subprotocols=["pyai.v1", f"pyai-key.{key}"])
        await refused.send_control({"type": "configure"})
        assert (await refused.wait_for("error"))["code"] == "server_shutting_down"
        await leaving.close()  # ends by itself during the drain
        got = await staying.closed(timeout=10)
        assert got.first("session_end")["reason"] == "server_shutdown"
        ended_after = got.when("session_end") - stopping
        for stream in streams:
            stream.cancel()
        return [staying, leaving], ended_after

    env = {**OPEN_LIMITS, "VOXLINE_DRAIN_SECONDS": "3"}
    with run_server(tmp_path, env=env) as server:
        callers, ended_after = asyncio.run(stop_while_calling(server))
        server.process.wait(timeout=15)
    assert 2.8 < ended_after < 5
    staying, leaving = records(tmp_path, callers)
    assert staying is not None and (staying.close_code, staying.close_reason) == (
        1001,
        "server_shutdown",
    )
    assert leaving is not None and leaving.close_reason == "client_closed"
