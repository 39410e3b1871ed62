"""The plain HTTP side of a real server: health, readiness, Prometheus metrics and call records."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest

from tests.support.api import assert_envelope, get, scrape, value
from tests.support.caller import Caller
from tests.support.keys import stored_key
from tests.support.server import RunningServer

pytestmark = pytest.mark.e2e

RECORD_FIELDS = {
    "object",
    "call_id",
    "key_id",
    "session_label",
    "agent_id",
    "transport",
    "started_at",
    "ended_at",
    "close_code",
    "close_reason",
    "audio_in_seconds",
    "audio_out_seconds",
    "turns",
    "barge_ins",
    "node",
}


async def short_call(server: RunningServer, key: str, label: str, seconds: float) -> str:
    """Connect, configure, stream ``seconds`` of silence, end the session; the call id."""
    caller = await Caller.open(
        f"{server.ws}?session_label={label}", subprotocols=["pyai.v1", f"pyai-key.{key}"]
    )
    await caller.send_control({"type": "configure"})
    await caller.wait_for("configured")
    await caller.silence(seconds)
    await caller.send_control({"type": "session_ending"})
    got = await caller.closed()
    assert got.close_code == 1000
    call_id: str = got.first("hello")["call_id"]
    return call_id


async def finished_record(server: RunningServer, reader: str, call_id: str) -> dict[str, Any]:
    """``GET /v1/calls/{call_id}`` once the server has completed the record."""
    deadline = time.monotonic() + 5
    while True:
        response = await get(server, f"/v1/calls/{call_id}", reader)
        assert response.status_code == 200, response.text
        record: dict[str, Any] = response.json()
        if record["ended_at"] is not None or time.monotonic() > deadline:
            return record
        await asyncio.sleep(0.05)


async def test_healthz(echo_server: RunningServer) -> None:
    response = await get(echo_server, "/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_reports_each_check(echo_server: RunningServer) -> None:
    response = await get(echo_server, "/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "ready": True,
        "checks": {"database": True, "state_backend": True, "accepting_sessions": True},
    }


async def test_metrics_count_a_finished_call(echo_server: RunningServer) -> None:
    key = echo_server.create_key()
    before = await scrape(echo_server)
    assert value(before, "voxline_active_sessions") >= 0

    caller = await Caller.open(echo_server.ws, subprotocols=["pyai.v1", f"pyai-key.{key}"])
    await caller.send_control({"type": "configure"})
    await caller.wait_for("configured")
    # Odd length and not tagged as audio: dropped and counted, and the session goes on.
    await caller.ws.send(b"\x07\x00\x01")
    during = await scrape(echo_server)
    assert value(during, "voxline_active_sessions") >= value(before, "voxline_active_sessions") + 1
    await caller.silence(1.0)
    await caller.send_control({"type": "session_ending"})
    got = await caller.closed()
    assert got.close_code == 1000
    assert "error" not in got.names()

    deadline = time.monotonic() + 5
    ended = 'voxline_sessions_total{close_code="1000"}'
    while True:
        after = await scrape(echo_server)
        sessions = value(after, "voxline_sessions_total", close_code="1000")
        if sessions > value(before, "voxline_sessions_total", close_code="1000"):
            break
        assert time.monotonic() < deadline, f"{ended} did not grow"
        await asyncio.sleep(0.05)
    assert sessions == value(before, "voxline_sessions_total", close_code="1000") + 1
    audio_in = value(after, "voxline_audio_in_seconds_total") - value(
        before, "voxline_audio_in_seconds_total"
    )
    assert 0.95 <= audio_in <= 1.1
    assert value(after, "voxline_active_sessions") == 0
    dropped = "voxline_dropped_frames_total"
    assert value(after, dropped, reason="odd_length_binary") == (
        value(before, dropped, reason="odd_length_binary") + 1
    )
    # Silence is not a turn: nothing was said back.
    assert value(after, "voxline_audio_out_seconds_total") == value(
        before, "voxline_audio_out_seconds_total"
    )


@pytest.mark.parametrize("path", ["/v1/calls", "/v1/calls/call_0123456789abcdef"])
async def test_call_records_need_the_calls_read_scope(
    echo_server: RunningServer, path: str
) -> None:
    assert_envelope(await get(echo_server, path), 401, "unauthorized", "authentication_error")
    wrong = "vx_test_not-a-real-key-but-long-enough-123456"
    assert_envelope(
        await get(echo_server, path, wrong), 401, "unauthorized", "authentication_error"
    )
    session_only = echo_server.create_key(scopes=("omni:session",))
    assert_envelope(
        await get(echo_server, path, session_only), 403, "forbidden", "permission_error"
    )
    wildcard = echo_server.create_key(scopes=("omni:*",))
    assert_envelope(await get(echo_server, path, wildcard), 403, "forbidden", "permission_error")


async def test_refused_requests_are_counted_by_code(echo_server: RunningServer) -> None:
    before = await scrape(echo_server)
    await get(echo_server, "/v1/calls")
    await get(echo_server, "/v1/calls", echo_server.create_key(scopes=("omni:session",)))
    after = await scrape(echo_server)
    for code in ("unauthorized", "forbidden"):
        counted = value(after, "voxline_rejections_total", code=code)
        assert counted == value(before, "voxline_rejections_total", code=code) + 1


async def test_the_calls_just_made_are_listed_and_fetched(echo_server: RunningServer) -> None:
    caller_key = echo_server.create_key()
    reader = echo_server.create_key(scopes=("calls:read_all",))
    started = time.time()
    first = await short_call(echo_server, caller_key, "records-first", 0.4)
    second = await short_call(echo_server, caller_key, "records-second", 0.2)

    record = await finished_record(echo_server, reader, second)
    assert set(record) == RECORD_FIELDS
    assert record["object"] == "call"
    assert record["call_id"] == second
    assert record["key_id"] == stored_key(echo_server.data_dir, caller_key).id
    assert record["session_label"] == "records-second"
    assert record["agent_id"] is None  # the call named no stored agent
    assert record["transport"] == "omni"
    assert started <= record["started_at"] <= record["ended_at"] <= time.time()
    assert (record["close_code"], record["close_reason"]) == (1000, "session_ending")
    assert 0.15 <= record["audio_in_seconds"] <= 0.3
    assert record["audio_out_seconds"] == 0
    assert (record["turns"], record["barge_ins"]) == (0, 0)
    assert record["node"] == socket.gethostname()

    earlier = await finished_record(echo_server, reader, first)
    assert earlier["session_label"] == "records-first"
    assert 0.35 <= earlier["audio_in_seconds"] <= 0.5

    listing = await get(echo_server, "/v1/calls?limit=1000", reader)
    assert listing.status_code == 200
    body = listing.json()
    assert set(body) == {"object", "data"}
    assert body["object"] == "list"
    ids = [call["call_id"] for call in body["data"]]
    # Newest first, and the same records as fetched one by one.
    assert ids.index(second) < ids.index(first)
    assert body["data"][ids.index(second)] == record
    assert body["data"][ids.index(first)] == earlier

    newest = await get(echo_server, "/v1/calls?limit=1", reader)
    assert [call["call_id"] for call in newest.json()["data"]] == [second]


async def test_a_key_reads_only_its_own_calls_unless_it_is_an_operator(
    echo_server: RunningServer,
) -> None:
    mine = echo_server.create_key(scopes=("omni:session", "calls:read"))
    theirs = echo_server.create_key(scopes=("omni:session", "calls:read"))
    operator = echo_server.create_key(scopes=("calls:read_all",))
    my_call = await short_call(echo_server, mine, "own-calls-mine", 0.1)
    their_call = await short_call(echo_server, theirs, "own-calls-theirs", 0.1)

    listed = (await get(echo_server, "/v1/calls?limit=1000", mine)).json()["data"]
    assert {call["key_id"] for call in listed} == {stored_key(echo_server.data_dir, mine).id}
    assert my_call in [call["call_id"] for call in listed]
    assert (await finished_record(echo_server, mine, my_call))["call_id"] == my_call
    # Another key's call is as unknown as one that never was: its id tells nothing.
    assert_envelope(
        await get(echo_server, f"/v1/calls/{their_call}", mine),
        404,
        "not_found",
        "invalid_request_error",
        "call_id",
    )

    everyone = (await get(echo_server, "/v1/calls?limit=1000", operator)).json()["data"]
    assert {my_call, their_call} <= {call["call_id"] for call in everyone}
    assert (await finished_record(echo_server, operator, their_call))["call_id"] == their_call


async def test_an_unknown_call_is_404(echo_server: RunningServer) -> None:
    reader = echo_server.create_key(scopes=("calls:read",))
    response = await get(echo_server, "/v1/calls/call_does_not_exist", reader)
    assert_envelope(response, 404, "not_found", "invalid_request_error", "call_id")


@pytest.mark.parametrize("limit", ["0", "-1", "1001", "ten", "1.5"])
async def test_a_bad_limit_is_400(echo_server: RunningServer, limit: str) -> None:
    reader = echo_server.create_key(scopes=("calls:read",))
    response = await get(echo_server, f"/v1/calls?limit={limit}", reader)
    assert_envelope(response, 400, "invalid_request", "invalid_request_error", "limit")
