"""A call's watchdog against faults: Redis going away and coming back empty, revoked keys.

The server runs as a real process on a real ``redis-server`` that the tests kill and start
again on the same port, which is what a Redis restart or failover looks like to clients.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.api import mint
from tests.support.caller import Caller
from tests.support.keys import revoke_key
from tests.support.redis_server import RestartableRedis
from tests.support.server import OPEN_LIMITS, RunningServer, run_server

pytestmark = pytest.mark.e2e

MAX_SESSION_SECONDS = 8.0
#: The watchdog looks every 2 s: a limit is enforced at most this late.
WATCH_SLACK_S = 2.5


async def open_session(server: RunningServer, key: str) -> Caller:
    caller = await Caller.open(server.ws, subprotocols=["pyai.v1", f"pyai-key.{key}"])
    await caller.send_control({"type": "configure"})
    return caller


async def admitted(server: RunningServer, key: str) -> tuple[Caller, str]:
    caller = await open_session(server, key)
    return caller, (await caller.wait_for("hello"))["call_id"]


async def refused(server: RunningServer, key: str) -> tuple[int | None, dict[str, Any]]:
    caller = await open_session(server, key)
    event = await caller.wait_for("error", timeout=10)
    got = await caller.closed()
    assert got.names() == ["error"]
    return got.close_code, event


async def still_talking(caller: Caller, digit: str) -> None:
    await caller.send_control({"type": "dtmf", "digit": digit})
    deadline = time.monotonic() + 5
    while not any(e["event"] == "dtmf" and e["digit"] == digit for _, e in caller.got.events):
        assert time.monotonic() < deadline, caller.got.names()
        await asyncio.sleep(0.02)


def serve(data_dir: Path, redis: RestartableRedis) -> Any:
    env = {**OPEN_LIMITS, "VOXLINE_MAX_SESSION_SECONDS": str(MAX_SESSION_SECONDS)}
    return run_server(data_dir, env=env, args=("--redis-url", redis.url))


async def test_limits_hold_across_a_redis_restart(
    tmp_path: Path, restartable_redis: RestartableRedis
) -> None:
    with serve(tmp_path, restartable_redis) as server:
        key = server.create_key(concurrency=2)
        calls = [await admitted(server, key) for _ in range(2)]
        started = time.monotonic()

        restartable_redis.stop()
        began = time.monotonic()
        code, event = await refused(server, key)
        assert (code, event["code"]) == (1013, "service_unavailable")
        assert event["retry_after"] > 0
        assert time.monotonic() - began < 3  # refused promptly, not after a hang
        for caller, _ in calls:
            await still_talking(caller, "1")

        restartable_redis.start()  # empty: every lease is gone
        # New sessions wait while the watchdogs re-assert the live ones' leases...
        code, event = await refused(server, key)
        assert (code, event["code"]) == (1013, "service_unavailable")
        await asyncio.sleep(event["retry_after"])
        # ...which then hold the key's seats again.
        code, event = await refused(server, key)
        assert (code, event["code"]) == (4429, "concurrency_limit_exceeded")
        for caller, _ in calls:
            await still_talking(caller, "2")

        for caller, call_id in calls:
            end = await caller.wait_for("session_end", timeout=MAX_SESSION_SECONDS + 5)
            assert end["reason"] == "max_duration"
            assert caller.got.when("session_end") - started < MAX_SESSION_SECONDS + WATCH_SLACK_S
            record = await server.finished_call(call_id)
            assert record.close_reason == "max_duration"
        await admitted(server, key)  # the seats are free again


async def test_the_session_length_limit_holds_while_redis_is_down(
    tmp_path: Path, restartable_redis: RestartableRedis
) -> None:
    with serve(tmp_path, restartable_redis) as server:
        key = server.create_key()
        caller, call_id = await admitted(server, key)
        started = time.monotonic()
        restartable_redis.stop()
        minted = await mint(server, key)
        assert minted.status_code == 503, minted.text
        assert minted.json()["error"]["code"] == "service_unavailable"
        assert int(minted.headers["Retry-After"]) > 0
        end = await caller.wait_for("session_end", timeout=MAX_SESSION_SECONDS + 5)
        assert end["reason"] == "max_duration"
        assert caller.got.when("session_end") - started < MAX_SESSION_SECONDS + WATCH_SLACK_S
        record = await server.finished_call(call_id)
        assert (record.close_code, record.close_reason) == (1000, "max_duration")


async def test_revoking_a_key_ends_its_live_sessions(echo_server: RunningServer) -> None:
    key = echo_server.create_key()
    other = echo_server.create_key()
    caller, call_id = await admitted(echo_server, key)
    bystander, _ = await admitted(echo_server, other)
    revoked = time.monotonic()
    await asyncio.to_thread(revoke_key, echo_server.data_dir, key)

    got = await caller.closed(timeout=5)
    assert got.close_code == 4401
    assert got.when("session_end") - revoked < 3
    error = got.first("error")
    assert error["code"] == "unauthorized"
    assert got.first("session_end")["reason"] == "key_revoked"
    record = await echo_server.finished_call(call_id)
    assert (record.close_code, record.close_reason) == (4401, "key_revoked")
    await still_talking(bystander, "3")
    await bystander.close()
