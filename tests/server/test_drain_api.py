"""``/admin/drain``: a node stops taking sessions, in every one of its processes, fails its
readiness, and lets its live calls run to their end."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from tests.support.api import get
from tests.support.caller import Caller
from tests.support.server import OPEN_LIMITS, RunningServer, run_server
from tests.support.workers import worker_of

pytestmark = pytest.mark.e2e


async def post(server: RunningServer, path: str, key: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.post(f"{server.http}{path}", headers={"Authorization": f"Bearer {key}"})


async def session(
    server: RunningServer, key: str, *, workers: set[int] | None = None
) -> tuple[Caller, dict[str, object]]:
    """A session's caller and its first event (``hello``, or the ``error`` refusing it);
    the worker process it reached joins ``workers``."""
    caller = await Caller.open(server.ws, subprotocols=["pyai.v1", f"pyai-key.{key}"])
    if workers is not None:
        workers.add(worker_of(server, caller))
    await caller.send_control({"type": "configure"})
    deadline = time.monotonic() + 5
    while not caller.got.events:
        assert time.monotonic() < deadline, "neither hello nor an error"
        await asyncio.sleep(0.01)
    return caller, caller.got.events[0][1]


async def test_a_drained_server_takes_no_new_session_and_lets_the_live_ones_finish(
    tmp_path: Path,
) -> None:
    with run_server(tmp_path, env=OPEN_LIMITS) as server:
        key = server.create_key()
        operator = server.create_key(scopes=("server:drain",))
        live, hello = await session(server, key)
        assert hello["event"] == "hello"

        assert (await post(server, "/admin/drain", key)).status_code == 403
        started = await post(server, "/admin/drain", operator)
        assert started.status_code == 202
        assert started.json() == {
            "object": "drain",
            "node": started.json()["node"],
            "draining": True,
            "open_calls": 1,
        }
        ready = await get(server, "/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["accepting_sessions"] is False

        refused, error = await session(server, key)
        assert (error["event"], error["code"]) == ("error", "server_shutting_down")
        assert (await refused.closed()).close_code == 1001
        # The live call goes on as before.
        await live.send_control({"type": "dtmf", "digit": "7"})
        assert (await live.wait_for("dtmf"))["digit"] == "7"
        await live.close()
        await asyncio.sleep(0.3)  # its record is finished as it ends
        status = await get(server, "/admin/drain", operator)
        assert status.status_code == 200
        assert (status.json()["draining"], status.json()["open_calls"]) == (True, 0)


async def test_every_process_of_a_node_drains(tmp_path: Path, redis_url: str) -> None:
    args = ("--workers", "2", "--redis-url", redis_url)
    with run_server(tmp_path, env=OPEN_LIMITS, args=args) as server:
        key = server.create_key()
        operator = server.create_key(scopes=("server:drain",))
        assert (await post(server, "/admin/drain", operator)).status_code == 202
        await asyncio.sleep(1.5)  # the other process looks every second
        # Connections land on either process; none admits a session.
        reached: set[int] = set()
        for _ in range(60):
            caller, first = await session(server, key, workers=reached)
            assert (first["event"], first.get("code")) == ("error", "server_shutting_down")
            await caller.closed()
            assert (await get(server, "/readyz")).status_code == 503
            if len(reached) == 2:
                break
        else:
            raise AssertionError("60 connections all reached the same process")
