"""Property tests: no client message, however malformed, crashes the demux or a session."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voxline.agents.echo import EchoAgent
from voxline.engines.vad import shared_model
from voxline.engines.vad_batch import ThreadInference, VadBatcher
from voxline.protocol import client_frames
from voxline.protocol.events import Event
from voxline.protocol.frames import Audio, Control, MessageTooLarge, demux
from voxline.session.agent import SessionInfo
from voxline.session.outbound import NoCallControl
from voxline.session.session import Session

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
frame_types = st.sampled_from(
    ["configure", "dtmf", "tool_result", "input_text", "session_ending", "bogus", ""]
)
known_keys = st.sampled_from(
    [
        "persona",
        "greeting",
        "endpointing_ms",
        "tools",
        "audio_out",
        "digit",
        "digits",
        "text",
        "call_id",
        "output",
        "vad_threshold",
        "barge_in_min_ms",
        "barge_in_confidence",
        "kb_endpoint",
    ]
)
control_objects = st.builds(
    lambda kind, fields, key: {key: kind, **fields},
    frame_types,
    st.dictionaries(known_keys | st.text(max_size=8), json_values, max_size=5),
    st.sampled_from(["type", "event"]),
)
messages = st.one_of(
    st.binary(max_size=2048),
    st.text(max_size=256),
    control_objects.map(json.dumps),
    control_objects.map(lambda obj: b"\x03" + json.dumps(obj).encode()),
    st.binary(max_size=1024).map(lambda b: b"\x01" + b),
)


@given(messages)
@settings(max_examples=500)
def test_demux_classifies_anything(message: str | bytes) -> None:
    try:
        inbound = demux(message)
    except MessageTooLarge:
        return
    if isinstance(inbound, Control):
        parsed = client_frames.parse(inbound.message)
        for notice in parsed.notices:
            assert notice["event"] in ("error", "warning")
            json.dumps(notice)


class _Recorder(NoCallControl):
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.closed: tuple[int, str] | None = None

    async def send_event(self, event: Event) -> None:
        json.dumps(event)
        self.events.append(event)

    async def send_audio(self, pcm: bytes) -> None:
        assert len(pcm) % 2 == 0

    async def clear_audio(self) -> None:
        pass

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


async def _drive(script: list[str | bytes], rate: int) -> _Recorder:
    out = _Recorder()
    async with VadBatcher(ThreadInference(shared_model())) as vad:
        info = SessionInfo(call_id="call_prop", label=None, in_rate=rate, out_rate=rate)
        session = Session(info, out, EchoAgent(), vad)
        session.start()
        for message in script:
            try:
                inbound = demux(message)
            except MessageTooLarge:
                continue
            if isinstance(inbound, Audio):
                session.receive_audio(inbound.pcm)
            elif isinstance(inbound, Control):
                parsed = client_frames.parse(inbound.message)
                if parsed.frame is not None:
                    await session.receive(parsed.frame)
            await asyncio.sleep(0)
        await asyncio.sleep(0.05)
        crashed = session.end_reason == "internal_error"
        await session.end("done")
    assert not crashed, out.events
    return out


@pytest.mark.e2e
@given(st.lists(messages, max_size=25), st.sampled_from([8000, 16000, 24000]))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_sessions_survive_random_client_frames(script: list[Any], rate: int) -> None:
    out = asyncio.run(_drive(script, rate))
    assert out.closed is not None
    assert out.events[-1]["event"] == "session_end"
