"""The default agent: listens (Whisper), thinks (a brain), speaks (Piper), sentence by sentence.

Latency comes from overlap, not from raw speed: partial transcripts while the caller talks,
a speculative final decode (and knowledge lookup) the moment they pause, so that the turn's
text is usually ready when endpointing fires, and the first sentence synthesised and played
while the brain and the synthesiser work on the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import httpx

from voxline.agents.tools import SessionTools
from voxline.audio.pcm import Int16Array, to_float, trim_trailing_silence
from voxline.audio.resample import resample
from voxline.engines.brain import Action, Brain, BrainRequest, Message, TextDelta
from voxline.engines.knowledge import KbEndpoint, KnowledgeBase
from voxline.engines.sentences import SentenceSplitter
from voxline.engines.stt import Transcriber
from voxline.engines.tts import Synthesizer
from voxline.protocol import events
from voxline.protocol.client_frames import Tool
from voxline.session.agent import (
    CallerTurn,
    ConfigureReport,
    ConversationHost,
    SessionInfo,
    Speech,
)

STT_RATE: Final = 16000
PARTIAL_INTERVAL_S: Final = 1.5  # re-decode the growing utterance at most this often
MIN_PARTIAL_AUDIO_S: Final = 1.0
FIRST_SENTENCE_CHARS: Final = 40  # a short first piece: earlier first audio
KNOWLEDGE_PASSAGES: Final = 3
HISTORY_TURNS: Final = 12
_CLOSERS: Final = "\"')]}"


@dataclass(slots=True)
class Engines:
    """The models a server process loads once and shares across conversations."""

    stt: Transcriber
    tts: Synthesizer
    brain: Brain
    knowledge: KnowledgeBase | None
    http: httpx.AsyncClient
    # Brains that do not search the knowledge file themselves get its best hits as context.
    file_hits_as_context: bool = False

    async def aclose(self) -> None:
        await self.stt.aclose()
        await self.tts.aclose()
        await self.http.aclose()


class DefaultAgent:
    name = "default"

    def __init__(self, engines: Engines) -> None:
        self.engines = engines

    def conversation(self, info: SessionInfo, host: ConversationHost) -> DefaultConversation:
        return DefaultConversation(info, host, self.engines)

    async def aclose(self) -> None:
        await self.engines.aclose()


@dataclass(slots=True)
class _Speculation:
    """A decode of the utterance as it stood when the caller paused."""

    task: asyncio.Task[str]
    knowledge: asyncio.Task[list[str]]


class DefaultConversation:
    def __init__(self, info: SessionInfo, host: ConversationHost, engines: Engines) -> None:
        self._info = info
        self._host = host
        self._engines = engines
        self._history: list[Message] = []
        self._tools: Sequence[Tool] = ()
        self._kb: KbEndpoint | None = None
        self._partial: asyncio.Task[None] | None = None
        self._last_partial_at = 0.0
        self._speculation: _Speculation | None = None

    # ---- configuration --------------------------------------------------------------

    @property
    def _config(self) -> dict[str, Any]:
        return self._info.config

    def configure(self, info: SessionInfo) -> ConfigureReport:
        self._info = info
        config = info.config
        self._tools = config.get("tools", ())
        endpoint = config.get("kb_endpoint")
        self._kb = (
            KbEndpoint(endpoint, config.get("kb_token"), client=self._engines.http)
            if endpoint
            else None
        )
        knowledge = self._engines.knowledge
        return ConfigureReport(
            greeting=bool(
                config.get("greeting")
                or config.get("consent_line")
                or (knowledge is not None and knowledge.greeting)
            ),
            kb=self._kb is not None or self._engines.knowledge is not None,
            tools=len(self._tools),
            voice_id=config.get("voice_id"),
            language=config.get("language", "en"),
        )

    def greeting(self) -> AsyncIterator[Speech] | None:
        knowledge = self._engines.knowledge
        greeting = self._config.get("greeting") or (knowledge.greeting if knowledge else None)
        lines = [self._config.get("consent_line"), greeting]
        text = " ".join(line.strip() for line in lines if line and line.strip())
        return self._speak_text(text) if text else None

    async def _speak_text(self, text: str) -> AsyncIterator[Speech]:
        splitter = SentenceSplitter(first_chunk_chars=FIRST_SENTENCE_CHARS)
        for sentence in [*splitter.feed(text), *splitter.flush()]:
            yield await self._say(sentence)

    # ---- listening ------------------------------------------------------------------

    def hear(self, utterance: Callable[[], Int16Array], *, paused: bool) -> None:
        if paused:
            if self._speculation is None:
                audio = utterance()
                task = asyncio.create_task(self._transcribe(audio))
                self._speculation = _Speculation(
                    task, asyncio.create_task(self._lookup_after(task))
                )
            return
        self._drop_speculation()
        now = time.monotonic()
        partial_due = now - self._last_partial_at >= PARTIAL_INTERVAL_S
        if partial_due and (self._partial is None or self._partial.done()):
            audio = utterance()
            if len(audio) >= MIN_PARTIAL_AUDIO_S * self._info.in_rate:
                self._last_partial_at = now
                self._partial = asyncio.create_task(self._send_partial(audio))

    async def _send_partial(self, audio: Int16Array) -> None:
        text = await self._transcribe(audio)
        if text and self._speculation is None:
            await self._host.send_event(events.transcript("user", text, final=False))

    async def _transcribe(self, audio: Int16Array) -> str:
        samples = to_float(resample(audio, self._info.in_rate, STT_RATE))
        return (await self._engines.stt.transcribe(samples)).text

    async def _lookup_after(self, transcript: asyncio.Task[str]) -> list[str]:
        return await self._lookup(await transcript)

    async def _lookup(self, query: str) -> list[str]:
        """Passages for this turn: the ``kb_endpoint``'s, then the knowledge file's hits."""
        if not query:
            return []
        passages: list[str] = []
        if self._kb is not None:
            label = self._info.label or ""
            passages += await self._kb.fetch(query, session_label=label, agent_id=label)
        knowledge = self._engines.knowledge
        if knowledge is not None and self._engines.file_hits_as_context:
            passages += [hit.text for hit in knowledge.search(query, KNOWLEDGE_PASSAGES)]
        return passages

    def _drop_speculation(self) -> None:
        speculation, self._speculation = self._speculation, None
        if speculation is not None:
            speculation.task.cancel()
            speculation.knowledge.cancel()

    # ---- replying -------------------------------------------------------------------

    async def respond(self, turn: CallerTurn) -> AsyncIterator[Speech]:
        speculation, self._speculation = self._speculation, None
        if self._partial is not None:
            self._partial.cancel()
        user_text, passages = await self._understand(turn, speculation)
        turn.marks["transcribed"] = time.monotonic()
        if user_text is None and turn.digits is None:
            return
        if user_text is not None:
            await self._host.send_event(events.transcript("user", user_text, final=True))
            self._history.append(Message("user", user_text))
        else:
            self._history.append(Message("user", f"(keyed {turn.digits})"))
        request = BrainRequest(
            persona=self._config.get("persona"),
            history=tuple(self._history[-2 * HISTORY_TURNS : -1]),
            user_text=user_text,
            digits=turn.digits,
            knowledge=tuple(passages),
            tools=tuple(self._tools),
        )
        tools = SessionTools(
            self._tools, self._host, self._engines.http, call_id=self._info.call_id
        )
        splitter = SentenceSplitter(first_chunk_chars=FIRST_SENTENCE_CHARS)
        async for output in self._engines.brain.respond(request, tools):
            if isinstance(output, TextDelta):
                turn.marks.setdefault("first_token", time.monotonic())
                for sentence in splitter.feed(output.text):
                    yield await self._say(sentence)
            elif isinstance(output, Action):
                await self._act(output)
        for sentence in splitter.flush():
            yield await self._say(sentence)

    async def _say(self, sentence: str) -> Speech:
        """Synthesise a sentence of the reply, recording it in the history as it goes (so
        an interruption can cut the record down to what was heard)."""
        speech = await self._synthesize(sentence)
        last = self._history[-1] if self._history else None
        if last is not None and last.role == "assistant":
            self._history[-1] = Message("assistant", f"{last.content} {sentence}")
        else:
            self._history.append(Message("assistant", sentence))
        return speech

    async def _understand(
        self, turn: CallerTurn, speculation: _Speculation | None
    ) -> tuple[str | None, list[str]]:
        """The caller's words and the knowledge for them, reusing the pause's speculation."""
        if turn.audio is None:
            text = turn.text
            return text, (await self._lookup(text) if text else [])
        if speculation is not None:
            text = await speculation.task
            passages = await speculation.knowledge
        else:
            text = await self._transcribe(turn.audio)
            passages = await self._lookup(text)
        return (text or None), passages

    async def _act(self, action: Action) -> None:
        await self._host.send_event(events.call_control(action.name, action.arguments))
        if action.name == "end_call":
            self._host.end_after_reply(str(action.arguments.get("reason", "end_call")))

    async def _synthesize(self, sentence: str) -> Speech:
        tts = self._engines.tts
        audio = await tts.synthesize(sentence)
        if not sentence.rstrip(_CLOSERS).endswith((".", "!", "?")):
            # A phrase cut mid-sentence: the voice's end-of-sentence pause would break it up.
            audio = trim_trailing_silence(audio, tts.sample_rate)
        return Speech(resample(audio, tts.sample_rate, self._info.out_rate), sentence)

    def interrupted(self, heard: str) -> None:
        """Keep the history true to what the caller heard of the cut-off reply."""
        if self._history and self._history[-1].role == "assistant":
            if heard:
                self._history[-1] = Message("assistant", heard)
            else:
                self._history.pop()

    async def aclose(self) -> None:
        self._drop_speculation()
        if self._partial is not None:
            self._partial.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._partial
