"""The default agent: listens (Whisper), thinks (a brain), speaks (Piper), sentence by sentence.

Latency comes from overlap, not from raw speed: partial transcripts while the caller talks;
the moment they pause, a draft of the reply (the final decode, the knowledge lookup, the
brain's first sentence, synthesised), so that when endpointing confirms the turn its first
audio is usually ready to play; a turn whose words sound finished (a question most of
all) ends after a shorter silence; and the first sentence plays while the brain and the
synthesiser work on the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

import httpx

from voxline.agents.fillers import holds_words
from voxline.agents.profiles import knowledge_of
from voxline.agents.tools import SessionTools
from voxline.audio.pcm import Int16Array, to_float
from voxline.audio.resample import resample
from voxline.engines.brain import Brain, BrainRequest, Message, TextDelta, ToolRunner
from voxline.engines.knowledge import KbEndpoint, KnowledgeBase
from voxline.engines.sentences import SentenceSplitter
from voxline.engines.stt import Transcriber
from voxline.engines.stt_prompt import build_prompt, knowledge_vocabulary
from voxline.engines.turn_end import asks, sounds_complete
from voxline.engines.voices import VoiceLibrary, speak
from voxline.protocol import events
from voxline.protocol.agent_profile import AgentProfile
from voxline.protocol.client_frames import SessionConfig, Tool
from voxline.session.agent import (
    CallerTurn,
    ConfigureReport,
    ConversationHost,
    ReplyPart,
    SessionInfo,
    Speech,
    TurnTimings,
    Unusable,
)
from voxline.session.turns import Finished

STT_RATE: Final = 16000
PARTIAL_INTERVAL_S: Final = 1.5  # re-decode the growing utterance at most this often
PARTIAL_INTERVAL_SHARE: Final = 0.25
"""And at most once per this share of the audio last decoded: a long turn's partials come
less often, so a caller who talks on costs no more a second than a short turn does."""
MIN_PARTIAL_AUDIO_S: Final = 1.0
FIRST_SENTENCE_CHARS: Final = 40  # a short first piece: earlier first audio
KNOWLEDGE_PASSAGES: Final = 3
HISTORY_TURNS: Final = 12
WARM_UP_LINE: Final = "Hello, how can I help you today?"
WORDS_CHECK_SECONDS: Final = 2.5
"""After a cut, a turn's audio up to this long (its pre-roll, speech that may end within
the floor's grace of the cut) is also decoded without a prompt at its pauses, should the
session ask whether it held words; a longer one will not be asked."""

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Engines:
    """The models a server process loads once and shares across conversations."""

    stt: Transcriber
    voices: VoiceLibrary
    brain: Brain
    knowledge: KnowledgeBase | None
    http: httpx.AsyncClient
    # Brains that do not search the knowledge file themselves get its best hits as context.
    file_hits_as_context: bool = False
    stt_8k: Transcriber | None = None  # for 8 kHz (telephone) sessions, when not ``stt``
    # Lines said on many calls (the brain's stock lines and knowledge answers), whose first
    # piece is synthesised into the speech cache when the server starts.
    likely_lines: Sequence[str] = ()

    async def aclose(self) -> None:
        await self.stt.aclose()
        if self.stt_8k is not None:
            await self.stt_8k.aclose()
        await self.voices.aclose()
        await self.http.aclose()


class DefaultAgent:
    name = "default"

    def __init__(self, engines: Engines) -> None:
        self.engines = engines
        self._warming: asyncio.Task[None] | None = None

    def conversation(self, info: SessionInfo, host: ConversationHost) -> DefaultConversation:
        return DefaultConversation(info, host, self.engines)

    async def prepare(self, agent: AgentProfile) -> None:
        """Index the profile's knowledge in a worker thread, so that the conversation finds
        it cached (:func:`knowledge_of`) instead of indexing it on the event loop."""
        await asyncio.to_thread(knowledge_of, agent)

    async def start(self) -> None:
        self._warming = asyncio.create_task(self.warm(), name="voxline-warm-speech")

    async def warm(self) -> None:
        """Run each recogniser once, then synthesise the greeting and the first piece of
        each likely line, one at a time (a caller's own synthesis waits behind at most one),
        so that callers hear them without waiting for synthesis: 0.25-0.4 s less to the
        first audio of a knowledge answer.

        A Whisper model's first decode costs about 1.5 s (allocations, kernel selection)
        against 0.15 s for later ones; without this the first caller's first turn pays it."""
        engines = self.engines
        knowledge = engines.knowledge
        pieces = (
            first_pieces(knowledge.greeting, every=True) if knowledge and knowledge.greeting else []
        )
        for line in engines.likely_lines:
            pieces += first_pieces(line)
        pieces = list(dict.fromkeys(pieces))
        warm_line = pieces[0] if pieces else WARM_UP_LINE
        tts = await engines.voices.synthesizer(engines.voices.default.id)
        try:
            heard = to_float(resample(await tts.synthesize(warm_line), tts.sample_rate, STT_RATE))
            for stt in (engines.stt, engines.stt_8k):
                if stt is not None:
                    await stt.transcribe(heard)
        except Exception:  # a remote engine that is down: callers will see its errors
            log.warning("could not warm the speech engines", exc_info=True)
        for piece in pieces:
            await tts.synthesize(piece)

    async def aclose(self) -> None:
        if self._warming is not None:
            self._warming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._warming
        await self.engines.aclose()


def first_pieces(text: str, *, every: bool = False) -> list[str]:
    """The pieces a reply of ``text`` is spoken in: the first, or ``every`` one."""
    splitter = SentenceSplitter(first_chunk_chars=FIRST_SENTENCE_CHARS)
    pieces = [*splitter.feed(text), *splitter.flush()]
    return pieces if every else pieces[:1]


@dataclass(slots=True)
class _Prepared:
    """A reply made ready up to its first piece: the caller's words, the knowledge for them,
    the first piece and the generator of the rest."""

    text: str | None  # None for a turn without words (DTMF)
    pieces: AsyncGenerator[ReplyPart, None] | None
    first: ReplyPart | None
    timings: TurnTimings


class _GatedTools:
    """Tools for a reply drafted before its turn is confirmed: they run only once it is, so a
    draft the caller talks over has had no effect on the world."""

    def __init__(self, tools: ToolRunner, gate: asyncio.Event) -> None:
        self._tools = tools
        self._gate = gate

    async def __call__(self, name: str, arguments: dict[str, Any]) -> str:
        await self._gate.wait()
        return await self._tools(name, arguments)


@dataclass(slots=True)
class _Draft:
    """A reply prepared from the utterance as it stood when the caller paused.

    If the pause ends the turn, the reply is committed and its first piece is often ready to
    play at once; if the caller speaks again, it is dropped, unheard and without effects."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)
    text: str | None = None  # the transcript, once decoded
    transcription: asyncio.Task[str] = field(init=False)
    task: asyncio.Task[_Prepared] = field(init=False)
    bare: asyncio.Task[str] | None = None  # decoded without a prompt: did it hold words?

    async def commit(self) -> _Prepared:
        self.gate.set()
        return await self.task

    def drop(self) -> asyncio.Task[None] | None:
        """Cancel the draft; the task closing a finished draft's reply, if one is needed."""
        task = self.task
        task.cancel()
        self.transcription.cancel()
        if self.bare is not None:
            self.bare.cancel()
        if not task.done() or task.cancelled() or task.exception() is not None:
            return None
        pieces = task.result().pieces
        return None if pieces is None else asyncio.ensure_future(pieces.aclose())


class DefaultConversation:
    def __init__(self, info: SessionInfo, host: ConversationHost, engines: Engines) -> None:
        self._info = info
        self._host = host
        self._engines = engines
        self._history: list[Message] = []
        self._tools: Sequence[Tool] = ()
        self._knowledge = engines.knowledge  # the server's, unless the session's agent has its own
        self._knowledge_of: AgentProfile | None = None  # the agent self._knowledge is from
        self._kb: KbEndpoint | None = None
        self._kb_passages: list[str] = []  # the endpoint's latest, to bias recognition with
        self._partial: asyncio.Task[None] | None = None
        self._last_partial_at = 0.0
        self._last_partial_s = 0.0  # seconds of audio the last partial decoded
        self._draft: _Draft | None = None
        self._cut = False  # the caller cut the last reply off: their turn may hold no words
        self._closing: set[asyncio.Task[None]] = set()
        self._voice = engines.voices.default

    # ---- configuration --------------------------------------------------------------

    @property
    def _config(self) -> SessionConfig:
        return self._info.config

    def configure(self, info: SessionInfo) -> ConfigureReport:
        self._info = info
        config = info.config
        self._tools = config.tools
        endpoint = config.kb_endpoint
        self._kb = (
            KbEndpoint(endpoint, config.kb_token, client=self._engines.http) if endpoint else None
        )
        if info.agent is not self._knowledge_of:
            # Indexed in a worker thread already (prepare); read once per agent, not at every
            # configure, so that a knowledge file edited since is never re-indexed on the loop.
            own = knowledge_of(info.agent) if info.agent is not None else None
            self._knowledge = own or self._engines.knowledge
            self._knowledge_of = info.agent
        knowledge = self._knowledge
        unusable = self._choose_voice(config.voice_id)
        return ConfigureReport(
            greeting=bool(
                config.greeting or config.consent_line or (knowledge and knowledge.greeting)
            ),
            kb=self._kb is not None or knowledge is not None,
            tools=len(self._tools),
            voice_id=self._voice.id,
            language=config.language or "en",
            unusable=unusable,
        )

    def _choose_voice(self, voice_id: str | None) -> tuple[Unusable, ...]:
        """Speak in ``voice_id`` from now on, if this server has it."""
        voices = self._engines.voices
        voice = voices.get(voice_id) if voice_id is not None else None
        if voice_id is not None and voice is None:
            message = f"no voice {voice_id[:64]!r} on this server; speaking as {self._voice.id}"
            return (Unusable("voice_id", "unknown_voice", message),)
        if voice is not None and voice != self._voice:
            self._voice = voice
            voices.prefetch(voice.id)
        return ()

    def greeting(self) -> AsyncIterator[Speech] | None:
        knowledge = self._knowledge
        greeting = self._config.greeting or (knowledge.greeting if knowledge else None)
        pairs = [(self._config.consent_line, False), (greeting, True)]
        lines = [(line.strip(), keep) for line, keep in pairs if line and line.strip()]
        return self._speak_lines(lines) if lines else None

    async def _speak_lines(self, lines: list[tuple[str, bool]]) -> AsyncIterator[Speech]:
        """Each line in turn, sentence by sentence; the consent line's not interruptible."""
        for text, interruptible in lines:
            splitter = SentenceSplitter(first_chunk_chars=FIRST_SENTENCE_CHARS)
            for sentence in [*splitter.feed(text), *splitter.flush()]:
                speech = replace(await self._synthesize(sentence), interruptible=interruptible)
                self._record(speech)
                yield speech

    # ---- listening ------------------------------------------------------------------

    def hear(self, utterance: Callable[[], Int16Array], *, paused: bool) -> None:
        if paused:
            if self._draft is None:
                if self._partial is not None:
                    self._partial.cancel()  # frees the decoder for the draft's decode
                self._draft = self._start_draft(utterance())
            return
        self._drop_draft()
        now = time.monotonic()
        interval = max(PARTIAL_INTERVAL_S, self._last_partial_s * PARTIAL_INTERVAL_SHARE)
        if now - self._last_partial_at >= interval and (
            self._partial is None or self._partial.done()
        ):
            audio = utterance()
            if len(audio) >= MIN_PARTIAL_AUDIO_S * self._info.in_rate:
                self._last_partial_at = now
                self._last_partial_s = len(audio) / self._info.in_rate
                self._partial = asyncio.create_task(self._send_partial(audio))

    def turn_finished(self) -> Finished:
        text = self._draft.text if self._draft is not None else None
        if text is None or not sounds_complete(text):
            return Finished.NO
        return Finished.QUESTION if asks(text) else Finished.STATEMENT

    def _start_draft(self, audio: Int16Array) -> _Draft:
        draft = _Draft()
        draft.transcription = asyncio.create_task(self._transcribe(audio))
        draft.task = asyncio.create_task(self._draft_reply(draft))
        if self._cut and len(audio) <= WORDS_CHECK_SECONDS * self._info.in_rate:
            # Decoded in the endpointing silence, for :meth:`holds_words`.
            draft.bare = asyncio.create_task(self._transcribe(audio, prompted=False))
        return draft

    async def _draft_reply(self, draft: _Draft) -> _Prepared:
        draft.text = await draft.transcription
        return await self._prepare(draft.text, None, _GatedTools(self._session_tools(), draft.gate))

    async def _send_partial(self, audio: Int16Array) -> None:
        text = await self._transcribe(audio, partial=True)
        if text and self._draft is None:
            await self._host.send_event(events.transcript("user", text, final=False))

    async def _transcribe(
        self, audio: Int16Array, *, partial: bool = False, prompted: bool = True
    ) -> str:
        samples = to_float(resample(audio, self._info.in_rate, STT_RATE))
        stt = self._engines.stt
        if self._info.in_rate == 8000 and self._engines.stt_8k is not None:
            stt = self._engines.stt_8k
        prompt = self._stt_prompt() if prompted else None
        return (await stt.transcribe(samples, prompt=prompt, partial=partial)).text

    def _stt_prompt(self) -> str | None:
        """What the caller is likely to say: see :mod:`voxline.engines.stt_prompt`."""
        knowledge = self._knowledge
        agent = self._info.agent
        last = self._history[-1] if self._history else None
        return build_prompt(
            agent_vocabulary=agent.vocabulary if agent is not None else (),
            persona=self._config.persona,
            tool_names=[tool.name for tool in self._tools],
            passages=self._kb_passages,
            vocabulary=knowledge_vocabulary(knowledge) if knowledge is not None else (),
            last_reply=last.content if last is not None and last.role == "assistant" else None,
        )

    async def _lookup(self, query: str) -> list[str]:
        """Passages for this turn: the ``kb_endpoint``'s, then the knowledge file's hits."""
        if not query:
            return []
        passages: list[str] = []
        if self._kb is not None:
            info = self._info
            passages += await self._kb.fetch(
                query, session_label=info.label or "", agent_id=info.agent_id
            )
            self._kb_passages = passages
        knowledge = self._knowledge
        if knowledge is not None and self._engines.file_hits_as_context:
            passages += [hit.text for hit in knowledge.search(query, KNOWLEDGE_PASSAGES)]
        return passages

    def _drop_draft(self) -> None:
        draft, self._draft = self._draft, None
        if draft is not None:
            self._discard(draft)

    def _discard(self, draft: _Draft) -> None:
        closing = draft.drop()
        if closing is not None:
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)

    async def holds_words(self, turn: CallerTurn) -> bool:
        """Whether the turn holds more than sounds and hesitations (:func:`holds_words`), as
        Whisper hears it without a prompt: prompted with the knowledge's words and the
        reply, it makes them of noise ("Dental.", "aetna."); unprompted, of 100 low-passed
        noise bursts, 97 were nothing, "Oh", "Okay." or "So". Decoded at the turn's first
        pause, beside its draft (:meth:`_start_draft`), so it costs no time after the turn."""
        draft = self._draft
        if turn.audio is None:
            return holds_words(turn.text)
        if draft is not None and draft.bare is not None:
            return holds_words(await asyncio.shield(draft.bare))  # (the draft may go on)
        return holds_words(await self._transcribe(turn.audio, prompted=False))

    def resumed(self, said: str) -> None:
        """The turn that cut the reply off was no words: it is not answered (its draft is
        dropped) and the history holds the reply as it goes on."""
        self._cut = False
        self._drop_draft()
        last = self._history[-1] if self._history else None
        if last is not None and last.role == "assistant":
            self._history[-1] = Message("assistant", said)
        elif said:
            self._history.append(Message("assistant", said))

    # ---- replying -------------------------------------------------------------------

    async def respond(self, turn: CallerTurn) -> AsyncIterator[ReplyPart]:
        draft, self._draft = self._draft, None
        self._cut = False
        self._last_partial_s = 0.0  # the next turn's partials start afresh
        if self._partial is not None:
            self._partial.cancel()
        if draft is not None and turn.audio is not None:
            prepared = await draft.commit()
        else:
            if draft is not None:
                self._discard(draft)
            text = await self._transcribe(turn.audio) if turn.audio is not None else turn.text
            prepared = await self._prepare(text, turn.digits, self._session_tools())
        turn.timings.transcribed = prepared.timings.transcribed
        turn.timings.first_token = prepared.timings.first_token
        pieces = prepared.pieces
        if pieces is None:
            return
        async with contextlib.aclosing(pieces):
            if prepared.text is not None:
                await self._host.send_event(events.transcript("user", prepared.text, final=True))
                self._history.append(Message("user", prepared.text))
            else:
                self._history.append(Message("user", f"(keyed {turn.digits})"))
            piece = prepared.first
            while piece is not None:
                if isinstance(piece, Speech):
                    self._record(piece)
                yield piece
                piece = await anext(pieces, None)

    async def _prepare(self, text: str | None, digits: str | None, tools: ToolRunner) -> _Prepared:
        """The reply to ``text`` (or ``digits``) made ready up to its first piece, with no
        effect outside this conversation: nothing sent, nothing recorded."""
        timings = TurnTimings(transcribed=time.monotonic())
        text = text or None
        if text is None and digits is None:
            return _Prepared(None, None, None, timings)
        request = BrainRequest(
            persona=self._config.persona,
            history=tuple(self._history[-(2 * HISTORY_TURNS - 1) :]),
            user_text=text,
            digits=digits,
            knowledge=tuple(await self._lookup(text) if text else ()),
            knowledge_base=self._knowledge,
            tools=tuple(self._tools),
        )
        pieces = self._pieces(request, tools, timings)
        return _Prepared(text, pieces, await anext(pieces, None), timings)

    async def _pieces(
        self, request: BrainRequest, tools: ToolRunner, timings: TurnTimings
    ) -> AsyncGenerator[ReplyPart, None]:
        splitter = SentenceSplitter(first_chunk_chars=FIRST_SENTENCE_CHARS)
        async with contextlib.aclosing(self._engines.brain.respond(request, tools)) as outputs:
            async for output in outputs:
                if isinstance(output, TextDelta):
                    if timings.first_token is None:
                        timings.first_token = time.monotonic()
                    for sentence in splitter.feed(output.text):
                        yield await self._synthesize(sentence)
                else:
                    yield output
        for sentence in splitter.flush():
            yield await self._synthesize(sentence)

    def _session_tools(self) -> SessionTools:
        return SessionTools(self._tools, self._host, self._engines.http, call_id=self._info.call_id)

    def _record(self, speech: Speech) -> None:
        """Keep the agent's words in the history as they are spoken (an interruption cuts
        the record down to what was heard)."""
        last = self._history[-1] if self._history else None
        if last is not None and last.role == "assistant":
            self._history[-1] = Message("assistant", f"{last.content} {speech.text}")
        else:
            self._history.append(Message("assistant", speech.text))

    async def _synthesize(self, sentence: str) -> Speech:
        tts = await self._engines.voices.synthesizer(self._voice.id)
        audio = await speak(tts, sentence)
        return Speech(resample(audio, tts.sample_rate, self._info.out_rate), sentence)

    def interrupted(self, heard: str) -> None:
        """Keep the history true to what the caller heard of the cut-off reply."""
        self._cut = True
        if self._history and self._history[-1].role == "assistant":
            if heard:
                self._history[-1] = Message("assistant", heard)
            else:
                self._history.pop()

    async def aclose(self) -> None:
        self._drop_draft()
        if self._partial is not None:
            self._partial.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._partial
        for closing in list(self._closing):
            with contextlib.suppress(Exception):
                await closing
