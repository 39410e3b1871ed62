"""Every close code and bad-input case of docs/protocol.md ("Errors and limits"), over real sockets
(the refusals of a key, by each way in, are in tests/test_admission_e2e.py).

Each refusal is an ``error`` event (in the negotiated framing) followed by the close code; the
server keeps serving everyone else and writes a call record for every admitted session.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from tests.support.caller import Caller
from tests.support.server import OPEN_LIMITS, RunningServer, run_server
from voxline.store.calls import CallRecords
from voxline.store.database import Database

pytestmark = pytest.mark.e2e


async def refused(
    url: str, subprotocols: list[str], **kwargs: object
) -> tuple[int | None, str | None, dict[str, object]]:
    caller = await Caller.open(url, subprotocols=subprotocols, **kwargs)
    got = await caller.closed()
    [event] = [event for _, event in got.events]
    return got.close_code, got.close_reason, event


async def test_missing_credential_is_4401(echo_server: RunningServer) -> None:
    code, _, event = await refused(echo_server.ws, [])
    assert code == 4401
    assert event["event"] == "error" and event["code"] == "unauthorized"


async def test_key_in_query_and_in_header(echo_server: RunningServer) -> None:
    key = echo_server.create_key()
    for kwargs, url in (
        ({}, f"{echo_server.ws}?api_key={key}"),
        ({"additional_headers": {"Authorization": f"Bearer {key}"}}, echo_server.ws),
    ):
        caller = await Caller.open(url, **kwargs)  # type: ignore[arg-type]
        assert (await caller.wait_for("hello"))["call_id"].startswith("call_")
        await caller.close()


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("session_label=" + "x" * 300, "invalid_agent_id"),
        ("agent_id=bad%0Alabel", "invalid_agent_id"),
        ("format=opus", "invalid_format"),
        ("rate=44100", "invalid_rate"),
    ],
)
async def test_bad_connect_parameters_are_4400(
    echo_server: RunningServer, query: str, code: str
) -> None:
    key = echo_server.create_key()
    close, _, event = await refused(f"{echo_server.ws}?{query}", [f"pyai-key.{key}"])
    assert (close, event["code"]) == (4400, code)


async def test_deprecated_path_takes_the_agent_label(echo_server: RunningServer) -> None:
    key = echo_server.create_key()
    url = echo_server.ws.replace("/v1/omni", "/v2/omni/chat") + "?agent=front-desk"
    caller = await Caller.open(url, subprotocols=[f"pyai-key.{key}"])
    started = await caller.wait_for("session_started")
    assert started["session_label"] == started["agent_id"] == "front-desk"
    await caller.close()


async def test_concurrency_limit_is_4429_and_frees_on_close(echo_server: RunningServer) -> None:
    key = echo_server.create_key(concurrency=1)
    first = await Caller.open(echo_server.ws, subprotocols=[f"pyai-key.{key}"])
    await first.wait_for("hello")
    code, _, event = await refused(echo_server.ws, [f"pyai-key.{key}"])
    assert (code, event["code"]) == (4429, "concurrency_limit_exceeded")
    await first.close()
    await asyncio.sleep(0.2)
    again = await Caller.open(echo_server.ws, subprotocols=[f"pyai-key.{key}"])
    await again.wait_for("hello")
    await again.close()


async def test_a_server_at_capacity_refuses_with_4429(tmp_path: Path) -> None:
    with run_server(tmp_path, env={**OPEN_LIMITS, "VOXLINE_LIMITS_MAX_SESSIONS": "1"}) as server:
        first = await Caller.open(server.ws, subprotocols=[f"pyai-key.{server.create_key()}"])
        await first.wait_for("hello")
        code, _, event = await refused(server.ws, [f"pyai-key.{server.create_key()}"])
        assert (code, event["code"]) == (4429, "concurrency_limit_exceeded")
        assert "capacity" in event["message"]
        await first.close()
        await asyncio.sleep(0.2)
        again = await Caller.open(server.ws, subprotocols=[f"pyai-key.{server.create_key()}"])
        await again.wait_for("hello")
        await again.close()


async def test_oversized_messages_close_1009(echo_server: RunningServer) -> None:
    key = echo_server.create_key()
    for message in (
        b"\x00" * (64 * 1024 + 2),
        json.dumps({"type": "configure", "persona": "x" * 20_000}),
    ):
        caller = await Caller.open(echo_server.ws, subprotocols=["pyai.v1", f"pyai-key.{key}"])
        await caller.send_control({"type": "configure"})
        await caller.wait_for("configured")
        await caller.ws.send(message)
        got = await caller.closed()
        assert got.close_code == 1009
        assert got.names()[-2:] == ["error", "session_end"]
        assert got.events[-2][1]["code"] == "message_too_large"


async def test_malformed_frames_get_errors_and_the_session_goes_on(
    echo_server: RunningServer,
) -> None:
    key = echo_server.create_key()
    caller = await Caller.open(echo_server.ws, subprotocols=["pyai.v1", f"pyai-key.{key}"])
    await caller.send_control({"type": "configure", "endpointing_ms": "soon", "mystery": 1})
    ack = await caller.wait_for("config_ack")
    assert ack["ignored"] == ["endpointing_ms", "mystery"]
    for junk in (b"\x07\x00\x01", b"\x03{not json!", b"\x05", "plain text"):
        await caller.ws.send(junk)
    await caller.send_control({"type": "dtmf", "digit": "Z"})
    await caller.send_control({"type": "teleport"})
    await caller.send_control({"type": "dtmf", "digit": "4"})
    await caller.wait_for("dtmf")
    await caller.close()
    errors = [event["code"] for _, event in caller.got.events if event["event"] == "error"]
    assert errors == ["invalid_configure", "invalid_dtmf", "unknown_type"]
    assert caller.got.close_code == 1000


def _records(server: RunningServer) -> CallRecords:
    return CallRecords(Database(server.data_dir / "voxline.db"))


async def test_client_vanishing_mid_sentence_leaves_a_record_and_others_are_served(
    echo_server: RunningServer, question: npt.NDArray[np.int16]
) -> None:
    key = echo_server.create_key()
    caller = await Caller.open(echo_server.ws, subprotocols=["pyai.v1", f"pyai-key.{key}"])
    call_id = (await caller.wait_for("hello"))["call_id"]
    await caller.stream(question[: len(question) // 2])
    # Vanish: drop the TCP connection without a closing handshake.
    transport = caller.ws.transport
    sock: socket.socket = transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    other = await Caller.open(echo_server.ws, subprotocols=["pyai.v1", f"pyai-key.{key}"])
    await other.send_control({"type": "dtmf", "digit": "1"})
    assert (await other.wait_for("dtmf"))["digit"] == "1"
    await other.close()
    for _ in range(50):
        record = await asyncio.to_thread(_records(echo_server).get, call_id)
        if record is not None and record.ended_at is not None:
            break
        await asyncio.sleep(0.1)
    assert record is not None and record.ended_at is not None
    assert (record.close_code, record.close_reason) == (1006, "client_vanished")
    assert 0.3 < record.audio_in_seconds < 1.5


async def test_call_record_of_a_finished_call(
    echo_server: RunningServer, question: npt.NDArray[np.int16], interruption: npt.NDArray[np.int16]
) -> None:
    key = echo_server.create_key()
    caller = await Caller.open(
        f"{echo_server.ws}?session_label=rec", subprotocols=["pyai.v1", f"pyai-key.{key}"]
    )
    await caller.send_control({"type": "configure"})
    await caller.stream(question)
    await caller.silence(0.9)
    await caller.stream(interruption[: len(interruption) // 2])
    await caller.silence(0.4)
    await caller.send_control({"type": "session_ending"})
    got = await caller.closed()
    call_id = got.first("hello")["call_id"]
    await asyncio.sleep(0.3)
    record = await asyncio.to_thread(_records(echo_server).get, call_id)
    assert record is not None
    assert record.session_label == "rec"
    assert record.key_id.startswith("key_")
    assert (record.close_code, record.close_reason) == (1000, "session_ending")
    assert record.turns == 1 and record.barge_ins == 1
    sent_seconds = (len(question) + len(interruption) // 2) / 24000 + 1.3
    assert abs(record.audio_in_seconds - sent_seconds) < 0.3
    assert 0.3 < record.audio_out_seconds < len(question) / 24000 + 0.3


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    env = {
        **OPEN_LIMITS,
        "VOXLINE_LIMITS_AUTH_FAILURES_PER_MINUTE_PER_ADDRESS": "3",
    }
    with run_server(tmp_path_factory.mktemp("strict"), env=env) as server:
        yield server


async def test_failed_auth_blocks_that_address_only(strict_server: RunningServer) -> None:
    good = strict_server.create_key()
    attacker = {"local_addr": ("127.0.0.7", 0)}
    for _ in range(3):
        code, _, _ = await refused(strict_server.ws, ["pyai-key.wrong"], **attacker)
        assert code == 4401
    code, _, event = await refused(strict_server.ws, [f"pyai-key.{good}"], **attacker)
    assert (code, event["code"]) == (4429, "rate_limit_exceeded")
    caller = await Caller.open(strict_server.ws, subprotocols=[f"pyai-key.{good}"])
    await caller.wait_for("hello")  # everyone else is still served
    await caller.close()


async def test_daily_cap_of_a_test_key(
    strict_server: RunningServer, question: npt.NDArray[np.int16]
) -> None:
    key = strict_server.create_key(daily_audio_seconds=2)
    caller = await Caller.open(strict_server.ws, subprotocols=["pyai.v1", f"pyai-key.{key}"])
    await caller.send_control({"type": "configure"})
    streaming = asyncio.create_task(caller.silence(6))
    got = await caller.closed(timeout=8)
    streaming.cancel()
    assert got.close_code == 4429
    assert "daily_cap_exceeded" in [event.get("code") for _, event in got.events]
    code, _, event = await refused(strict_server.ws, [f"pyai-key.{key}"])
    assert (code, event["code"]) == (4429, "daily_cap_exceeded")


def test_stopping_the_server_finishes_every_record(tmp_path: Path) -> None:
    async def run(server: RunningServer) -> str:
        key = server.create_key()
        caller = await Caller.open(server.ws, subprotocols=["pyai.v1", f"pyai-key.{key}"])
        call_id: str = (await caller.wait_for("hello"))["call_id"]
        streaming = asyncio.create_task(caller.silence(5))
        await asyncio.sleep(0.5)
        server.process.terminate()
        got = await caller.closed(timeout=10)
        streaming.cancel()
        assert got.close_code in (1001, 1012)
        return call_id

    with run_server(tmp_path / "data") as server:
        call_id = asyncio.run(run(server))
        server.process.wait(timeout=10)
    record = _records(server).get(call_id)
    assert record is not None and record.ended_at is not None
    assert record.close_code in (1001, 1012)
    assert record.audio_in_seconds > 0.2


async def test_an_idle_session_is_closed_and_frees_its_seat(tmp_path: Path) -> None:
    """A client that sends nothing keeps no seat for good; one that streams, even silence,
    keeps its call."""
    env = {**OPEN_LIMITS, "VOXLINE_IDLE_SESSION_SECONDS": "2"}
    with run_server(tmp_path, env=env) as server:
        key = server.create_key(concurrency=1)
        idle = await Caller.open(server.ws, subprotocols=[f"pyai-key.{key}"])
        streaming = await Caller.open(server.ws, subprotocols=[f"pyai-key.{server.create_key()}"])
        talking = asyncio.create_task(streaming.silence(6))
        got = await idle.closed(timeout=6)
        assert got.names()[-1] == "session_end"
        assert got.first("session_end")["reason"] == "idle_timeout"
        assert (got.close_code, got.close_reason) == (1000, "idle_timeout")
        await asyncio.sleep(0.3)
        again = await Caller.open(server.ws, subprotocols=[f"pyai-key.{key}"])
        await again.wait_for("hello")  # the seat of the concurrency-1 key is free
        await again.close()
        await talking
        assert "session_end" not in streaming.got.names()
        await streaming.close()
        record = await asyncio.to_thread(_records(server).get, got.first("hello")["call_id"])
        assert record is not None and record.close_reason == "idle_timeout"
