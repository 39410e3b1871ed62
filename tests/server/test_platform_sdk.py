"""The platform through the public SDK alone, as a new user drives it: an agent created with
a persona, greeting, knowledge, vocabulary and a chosen voice answers a realtime session that
names it, opened with the SDK's own realtime helpers; the caller's question is the server's
own speech. Speech, transcription, ``me()`` and the errors of each route are in
``test_audio_api.py`` and ``test_agents_sdk.py``."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from pyai import PyAI, PyAIError
from websockets.asyncio.client import connect

from tests.support.server import RunningServer
from tests.support.voices import SLOW_LENGTH_SCALE, SLOW_VOICE_ID
from voxline.engines.voices import PACKAGED_VOICE_ID

pytestmark = pytest.mark.e2e

RATE = 24000
FRAME_BYTES = RATE * 2 // 50  # 20 ms of PCM16
GREETING = "Thanks for calling Bright Smiles, this is the front desk."
ANSWER = "Yes, Doctor Nguyen fits Invisalign aligners every Tuesday."
QUESTION = "Do you offer Invisalign?"


@pytest.fixture(scope="module")
def server(voices_server: RunningServer) -> RunningServer:
    return voices_server


@dataclass
class Call:
    """What a realtime session sent back: events, and agent audio per assistant line."""

    events: list[dict[str, Any]] = field(default_factory=list)
    audio: list[bytearray] = field(default_factory=lambda: [bytearray()])

    def said(self) -> list[str]:
        return [
            e["text"]
            for e in self.events
            if e["event"] == "transcript" and e["role"] == "assistant" and e["final"]
        ]


async def _call(pyai: PyAI, agent_id: str, question: bytes) -> Call:
    """Name the agent, hear its greeting, ask ``question`` (PCM16 at 24 kHz), hear the answer."""
    call = Call()
    async with connect(pyai.realtime_url(), subprotocols=pyai.realtime_subprotocols()) as ws:
        configure = pyai.omni_configure_frame(agent_id=agent_id)
        await ws.send(b"\x03" + json.dumps(configure).encode())

        async def read() -> None:
            async for message in ws:
                assert isinstance(message, bytes)
                if message[0] == 0x01:
                    call.audio[-1] += message[1:]
                    continue
                event = json.loads(message[1:])
                call.events.append(event)
                if (
                    event["event"] == "transcript"
                    and event["role"] == "assistant"
                    and event["final"]
                ):
                    call.audio.append(bytearray())

        async def stream(pcm: bytes, until_said: int) -> None:
            """Stream ``pcm`` then silence, in real time, until ``until_said`` lines."""
            started = time.monotonic()
            sent = 0
            deadline = started + 30
            while len(call.said()) < until_said:
                assert time.monotonic() < deadline, call.events
                chunk = pcm[sent * FRAME_BYTES : (sent + 1) * FRAME_BYTES]
                await ws.send(pyai.omni_audio_frame(chunk.ljust(FRAME_BYTES, b"\0")))
                sent += 1
                await asyncio.sleep(max(0.0, started + sent * 0.02 - time.monotonic()))

        reader = asyncio.create_task(read())
        await stream(b"", until_said=1)  # the greeting, over silence
        await stream(question, until_said=2)
        await ws.close()
        await reader
    return call


def test_an_agent_made_with_the_sdk_answers_a_session_in_its_voice(
    server: RunningServer,
) -> None:
    key = server.create_key(scopes=("omni:session", "agents:write", "speak:synthesize"))
    with PyAI(key, base_url=server.http, max_retries=0) as pyai:
        assert {"omni:session", "agents:write", "speak:synthesize"} <= set(pyai.me()["scopes"])
        voices = {voice["voice_id"]: voice for voice in pyai.voices.list()["data"]}
        assert {PACKAGED_VOICE_ID, SLOW_VOICE_ID} <= set(voices)
        agent = pyai.agents.create(
            name="Bright Smiles front desk",
            persona="You are Maya at Bright Smiles.",
            greeting=GREETING,
            voice_id=pyai.voices.get(SLOW_VOICE_ID)["voice_id"],
            vocabulary=["Nguyen", "Invisalign"],
            knowledge={
                "name": "Bright Smiles",
                "entries": [{"question": QUESTION, "answer": ANSWER}],
            },
        )
        question = pyai.audio.speech(input=QUESTION, response_format="pcm", sample_rate=RATE)

        call = asyncio.run(_call(pyai, agent["agent_id"], question))
        configured = next(e for e in call.events if e["event"] == "configured")
        assert configured["voice_id"] == SLOW_VOICE_ID
        heard = [e["text"] for e in call.events if e.get("role") == "user"]
        assert call.said() == [GREETING, ANSWER], heard

        # The greeting came in the chosen voice: as long as that voice says it, half as long
        # again as the packaged voice does.
        slow = pyai.audio.speech(input=GREETING, voice=SLOW_VOICE_ID, response_format="pcm")
        usual = pyai.audio.speech(input=GREETING, response_format="pcm")
        heard = len(call.audio[0])
        assert heard == pytest.approx(len(slow), rel=0.15)
        assert 0.8 * SLOW_LENGTH_SCALE < heard / len(usual) < 1.1 * SLOW_LENGTH_SCALE

        updated = pyai.agents.update(agent["agent_id"], voice_id=PACKAGED_VOICE_ID)
        assert updated["voice_id"] == PACKAGED_VOICE_ID and updated["greeting"] == GREETING
        assert pyai.agents.delete(agent["agent_id"])["deleted"] is True
        with pytest.raises(PyAIError) as gone:
            pyai.agents.get(agent["agent_id"])
        assert (gone.value.status, gone.value.code) == (404, "not_found")
