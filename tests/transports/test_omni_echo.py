"""End to end over real sockets: existing clients hear themselves and see ``flush`` on barge-in."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import numpy.typing as npt
import pytest
from pyai import PyAI
from websockets.asyncio.client import connect

from tests.support.caller import Caller
from tests.support.server import RunningServer
from voxline.audio.pcm import pcm16_samples

pytestmark = pytest.mark.e2e

Pcm = npt.NDArray[np.int16]


async def _converse(caller: Caller, question: Pcm, interruption: Pcm) -> None:
    """Ask, pause until the echo starts, then talk over it."""
    await caller.silence(0.3)
    await caller.stream(question)
    await caller.silence(1.5)  # endpointing, then a second of the echo
    await caller.stream(interruption[: len(interruption) // 2])
    await caller.silence(0.5)


def _assert_echo_then_flush(caller: Caller, question: Pcm) -> None:
    got = caller.got
    names = got.names()
    assert names[:2] == ["hello", "session_started"]
    assert names.index("turn_begin") < names.index("flush")
    flush_at = got.when("flush")
    echoed = got.audio_bytes(before=flush_at) // 2
    # The echo began with the caller's own words and was cut off early by the barge-in.
    assert 0.3 * caller.rate < echoed < len(question) + 0.5 * caller.rate
    assert got.audio_bytes(after=flush_at + 0.05) == 0
    assert names.index("flush") < names.index("barge_in") < names.index("assistant_interrupted")
    assert got.first("flush")["reason"] == "barge_in"
    turn = got.first("turn_begin")
    assert turn["turn"] == 1
    assert 0 <= turn["since_caller_end_ms"] < 2000


def _correlation(sent: Pcm, received: bytes) -> float:
    """Peak normalised cross-correlation: the echo is the caller's audio, not noise."""
    a = sent.astype(np.float64)
    b = pcm16_samples(received).astype(np.float64)[: len(a)]
    a = a[: len(b)]
    corr = np.correlate(b, a[: len(a) // 2], mode="valid")
    return float(
        np.max(np.abs(corr)) / (np.linalg.norm(a[: len(a) // 2]) * np.linalg.norm(b) + 1e-9)
    )


async def test_pyai_sdk_client_with_tagged_framing(
    echo_server: RunningServer, question: Pcm, interruption: Pcm
) -> None:
    key = echo_server.create_key()
    pyai = PyAI(api_key=key, base_url=echo_server.http)
    url = pyai.realtime_url(session_label="pyai-sdk-test")
    async with connect(url, subprotocols=pyai.realtime_subprotocols()) as ws:  # type: ignore[arg-type]
        assert ws.subprotocol == "pyai.v1"
        caller = Caller(ws, tagged=True, rate=24000)
        configure = pyai.omni_configure_frame(persona="You are a test line.", x_vendor_field=1)
        await ws.send(b"\x03" + json.dumps(configure).encode())
        await caller.wait_for("config_ack")

        async def send_tagged(pcm: bytes) -> None:
            await ws.send(pyai.omni_audio_frame(pcm))

        caller.send_pcm = send_tagged  # type: ignore[method-assign]
        await _converse(caller, question, interruption)
        await caller.send_control({"type": "session_ending"})
        got = await caller.closed()
    assert got.text_messages == 0  # tagged clients never see a text frame
    assert got.close_code == 1000
    assert got.first("session_started")["session_label"] == "pyai-sdk-test"
    assert got.first("config_ack")["ignored"] == ["x_vendor_field"]
    assert "persona" in got.first("config_ack")["honored"]
    _assert_echo_then_flush(caller, question)
    assert _correlation(question, b"".join(pcm for _, pcm in got.audio)) > 0.8
    assert got.names()[-1] == "session_end"


async def test_raw_client_gets_text_events_and_bare_audio(
    echo_server: RunningServer, question: Pcm, interruption: Pcm
) -> None:
    key = echo_server.create_key()
    caller = await Caller.open(
        f"{echo_server.ws}?rate=24000", subprotocols=[f"pyai-key.{key}"], tagged=False
    )
    assert caller.ws.subprotocol == f"pyai-key.{key}"
    await caller.send_control({"type": "configure", "endpointing_ms": 500})
    configured = await caller.wait_for("configured")
    assert configured["endpointing_ms"] == 500
    assert configured["audio_out"] == "pcm16@24000"
    await _converse(caller, question, interruption)
    await caller.close()
    assert caller.got.binary_messages == len(caller.got.audio)  # binary is only audio
    _assert_echo_then_flush(caller, question)


async def test_echo_is_resampled_to_the_requested_output_rate(
    echo_server: RunningServer, question: Pcm
) -> None:
    key = echo_server.create_key()
    caller = await Caller.open(
        f"{echo_server.ws}?rate=24000", subprotocols=["pyai.v1", f"pyai-key.{key}"]
    )
    await caller.send_control({"type": "configure", "audio_out": "pcm16@8000"})
    assert (await caller.wait_for("configured"))["audio_out"] == "pcm16@8000"
    await caller.stream(question)
    await caller.silence(0.8)
    await caller.wait_for("turn_begin")
    await caller.silence(len(question) / 24000 + 0.3)
    await caller.close()
    received = caller.got.audio_bytes() // 2
    assert abs(received - len(question) / 3) < 0.6 * 8000  # same duration at a third the rate


async def test_a_cough_during_the_echo_does_not_interrupt(
    echo_server: RunningServer, question: Pcm
) -> None:
    key = echo_server.create_key()
    caller = await Caller.open(echo_server.ws, subprotocols=["pyai.v1", f"pyai-key.{key}"])
    await caller.send_control({"type": "configure"})
    await caller.stream(question)
    await caller.silence(0.8)
    await caller.wait_for("turn_begin")
    rng = np.random.default_rng(1)
    burst = (rng.standard_normal(int(0.08 * 24000)) * 3000).astype(np.int16)  # 80 ms noise
    await caller.stream(burst)
    await caller.silence(len(question) / 24000)
    await caller.close()
    assert "flush" not in caller.got.names()
    assert caller.got.audio_bytes() // 2 > 0.8 * len(question)


async def test_session_ending_and_dtmf_and_input_text(echo_server: RunningServer) -> None:
    key = echo_server.create_key()
    caller = await Caller.open(echo_server.ws, subprotocols=["pyai.v1", f"pyai-key.{key}"])
    await caller.send_control({"type": "configure"})
    await caller.send_control({"type": "dtmf", "digits": "12#"})
    await caller.send_control({"event": "dtmf", "digit": "9"})
    await caller.send_control({"type": "session_ending"})
    got = await caller.closed()
    digits = [event["digit"] for _, event in got.events if event["event"] == "dtmf"]
    assert digits == ["1", "2", "#", "9"]
    assert "warning" in got.names()
    assert got.names()[-1] == "session_end"
    assert (got.close_code, got.close_reason) == (1000, "session_ending")


async def test_hello_waits_for_the_first_frame_then_defaults_to_tagged(
    echo_server: RunningServer,
) -> None:
    key = echo_server.create_key()
    caller = await Caller.open(echo_server.ws, subprotocols=["pyai.v1", f"pyai-key.{key}"])
    await asyncio.sleep(0.3)
    assert caller.got.events == []  # held
    hello = await caller.wait_for("hello", timeout=1.0)
    assert hello["protocol"] == 2 and hello["audio_in"] == "pcm16@24000"
    await caller.close()
    assert caller.got.text_messages == 0


async def test_framing_query_overrides_negotiation(echo_server: RunningServer) -> None:
    key = echo_server.create_key()
    caller = await Caller.open(
        f"{echo_server.ws}?framing=tagged", subprotocols=[f"pyai-key.{key}"], tagged=False
    )
    await caller.ws.send(json.dumps({"type": "configure"}))
    await asyncio.sleep(0.3)
    await caller.close()
    assert caller.got.text_messages == 0
    assert caller.got.binary_messages >= 4


async def test_audio_is_never_compressed_even_when_the_client_offers_it(
    echo_server: RunningServer,
) -> None:
    """PCM hardly compresses, and per-message deflate on every 20 ms frame would cost the
    server half as much again to receive it; browsers offer it on every socket."""
    key = echo_server.create_key()
    async with connect(
        echo_server.ws, subprotocols=[f"pyai-key.{key}"], compression="deflate"
    ) as ws:  # type: ignore[list-item]
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        await ws.send(json.dumps({"type": "configure"}))
        assert json.loads(await ws.recv())["event"] == "hello"
