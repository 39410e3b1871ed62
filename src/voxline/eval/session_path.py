"""Hearing a clip as a live call would: through a real :class:`~voxline.session.session.Session`.

The clip arrives in 20 ms frames at the session's rate, with silence before and after; the
session's VAD and turn detection cut the utterance out (pre-roll, tail) and hand it to the
default agent, which resamples it and asks its transcriber, with the prompt it builds from
its knowledge and persona. Only the brain and the voice are mute, so every turn ends at its
transcript. The frames are handed over faster than real time, all before the session reads
them; the session's stream clock is its sample count, so it cuts the same utterance, but it
sees the pause only once the clip is over: the turn's audio is the whole utterance (as when
endpointing ends it), not a draft cut at the first pause.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Final

import httpx
import numpy as np

from voxline.agents.default import DefaultAgent, Engines
from voxline.audio.pcm import Float32Array, Int16Array
from voxline.engines.brain import BrainOutput, BrainRequest, ToolRunner
from voxline.engines.knowledge import KnowledgeBase
from voxline.engines.stt import Transcriber, Transcript
from voxline.engines.vad import SileroModel, VadStream
from voxline.engines.vad_batch import ThreadInference, VadBatcher
from voxline.engines.voices import VoiceLibrary
from voxline.protocol.client_frames import SessionConfig
from voxline.protocol.events import Event
from voxline.session.agent import SessionInfo
from voxline.session.outbound import NoCallControl
from voxline.session.session import Session

FRAME_MS: Final = 20
LEAD_SECONDS: Final = 0.5
TRAIL_SECONDS: Final = 1.2  # past endpointing (500 ms), so that every turn ends
_STEPS: Final = 3


class RecordingTranscriber:
    """A transcriber that keeps every transcript it returns and counts decodes under way."""

    def __init__(self, inner: Transcriber) -> None:
        self.inner = inner
        self.transcripts: list[Transcript] = []
        self.running = 0
        self.idle = asyncio.Event()
        self.idle.set()

    async def transcribe(
        self,
        audio: Float32Array,
        *,
        prompt: str | None = None,
        partial: bool = False,
        batch: bool = False,
    ) -> Transcript:
        self.running += 1
        self.idle.clear()
        try:
            transcript = await self.inner.transcribe(
                audio, prompt=prompt, partial=partial, batch=batch
            )
        finally:
            self.running -= 1
            if not self.running:
                self.idle.set()
        self.transcripts.append(transcript)
        return transcript

    async def aclose(self) -> None:
        await self.inner.aclose()


class WatchedVad(VadBatcher):
    """A VAD batcher that tells when it has judged a given number of windows (run through
    the model or skipped as quiet)."""

    def __init__(self) -> None:
        super().__init__(ThreadInference(SileroModel()))
        self.judged = 0
        self._ran = asyncio.Event()

    async def probabilities(self, stream: VadStream, audio: Float32Array) -> list[float]:
        try:
            probabilities = await super().probabilities(stream, audio)
            self.judged += len(probabilities)
            return probabilities
        finally:
            self._ran.set()

    async def reach(self, windows: int) -> None:
        while self.judged < windows:
            self._ran.clear()
            await self._ran.wait()


class _MuteBrain:
    async def respond(
        self, request: BrainRequest, tools: ToolRunner
    ) -> AsyncGenerator[BrainOutput, None]:
        return
        yield


class _MuteVoice:
    sample_rate = 16_000

    async def synthesize(self, text: str, *, batch: bool = False) -> Int16Array:
        return np.zeros(0, dtype=np.int16)

    async def aclose(self) -> None:
        pass


@dataclass(slots=True)
class _Outbound(NoCallControl):
    heard: list[str] = field(default_factory=list)

    async def send_event(self, event: Event) -> None:
        if event.get("event") == "transcript" and event.get("role") == "user" and event["final"]:
            self.heard.append(str(event["text"]))

    async def send_audio(self, pcm: bytes) -> None:
        pass

    async def clear_audio(self) -> None:
        pass

    async def close(self, code: int, reason: str) -> None:
        pass


@dataclass(frozen=True, slots=True)
class Heard:
    text: str
    """The caller's final transcripts, joined."""
    transcripts: tuple[Transcript, ...]
    """Every decode that completed (usually one)."""


class SessionHearing:
    """The default agent's listening path for one transcriber (and knowledge, persona)."""

    def __init__(
        self,
        stt: Transcriber,
        *,
        knowledge: KnowledgeBase | None = None,
        persona: str | None = None,
    ) -> None:
        self.stt = RecordingTranscriber(stt)
        self._engines = Engines(
            stt=self.stt,
            voices=VoiceLibrary.single(_MuteVoice()),
            brain=_MuteBrain(),
            knowledge=knowledge,
            http=httpx.AsyncClient(),
        )
        self._config = SessionConfig(persona=persona)

    async def hear(self, clip: Int16Array, rate: int, vad: WatchedVad) -> Heard:
        """What the agent heard ``clip`` (PCM16 at ``rate``) say."""
        info = SessionInfo("eval", None, rate, rate, self._config)
        outbound = _Outbound()
        session = Session(info, outbound, DefaultAgent(self._engines), vad)
        audio = np.concatenate(
            [
                np.zeros(int(LEAD_SECONDS * rate), np.int16),
                clip,
                np.zeros(int(TRAIL_SECONDS * rate), np.int16),
            ]
        ).astype("<i2")
        frame = rate * FRAME_MS // 1000
        vad_rate = 8000 if rate == 8000 else 16_000  # the session's
        windows = len(audio) * vad_rate // rate // VadStream(vad_rate).window_size
        first = len(self.stt.transcripts)
        session.start()
        try:
            for start in range(0, len(audio), frame):
                session.receive_audio(audio[start : start + frame].tobytes())
            # The last window may wait for samples the session's resampler holds back.
            await vad.reach(vad.judged + windows - 1)
            # The turn's reply task, created as the session read the VAD's answer, starts
            # its decode in its first step; its transcript is sent in the decode's last.
            for _ in range(_STEPS):
                await asyncio.sleep(0)
            await self.stt.idle.wait()
        finally:
            session.abandon("eval")
            await asyncio.sleep(0)  # lets the conversation close
        return Heard(" ".join(outbound.heard), tuple(self.stt.transcripts[first:]))

    async def aclose(self) -> None:
        await self._engines.aclose()
