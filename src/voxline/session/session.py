"""One conversation: the caller's stream in, turn-taking, agent replies out, barge-in.

The session never touches a socket. A transport feeds it caller audio and client frames and
gives it an :class:`Outbound` to speak through; the session drives the :class:`Conversation`
the agent made for it and keeps the facts of the call (:class:`SessionStats`).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import Any, Protocol

from voxline.audio.pcm import Int16Array, pcm16_samples, to_float
from voxline.audio.resample import StreamResampler
from voxline.engines.vad import VadStream
from voxline.engines.vad_batch import VadBatcher
from voxline.protocol import events
from voxline.protocol.client_frames import (
    ClientFrame,
    Configure,
    Dtmf,
    InputText,
    SessionEnding,
    ToolResult,
)
from voxline.protocol.events import Event
from voxline.session.agent import Agent, CallerTurn, Conversation, SessionInfo, Speech
from voxline.session.caller_audio import CallerAudio
from voxline.session.playout import Playout
from voxline.session.turns import (
    Finished,
    SpeechEnded,
    SpeechStarted,
    TurnDetector,
    TurnSettings,
)

log = logging.getLogger(__name__)

PRE_ROLL_SECONDS = 0.3  # audio kept before detected speech start (VAD onsets are late)
TAIL_SECONDS = 0.15  # audio kept after the last speech window
PAUSE_MS = 32  # silence after which the agent may start on what the caller said so far


class Outbound(Protocol):
    """What a transport offers the session."""

    async def send_event(self, event: Event) -> None: ...

    async def send_audio(self, pcm: bytes) -> None: ...

    async def clear_audio(self) -> None:
        """Drop agent audio already handed to the far end (telephony ``clear``)."""

    async def close(self, code: int, reason: str) -> None: ...


class SessionObserver(Protocol):
    """Where the session reports what operators measure."""

    def barge_in(self) -> None: ...

    def turn_latency(self, stage: str, seconds: float) -> None: ...


class _NoObserver:
    def barge_in(self) -> None:
        pass

    def turn_latency(self, stage: str, seconds: float) -> None:
        pass


@dataclass(slots=True)
class SessionStats:
    audio_in_samples: int = 0
    turns: int = 0
    barge_ins: int = 0
    started_at: float = field(default_factory=time.time)


@dataclass(slots=True)
class _Reply:
    task: asyncio.Task[None]
    utterance_start: float | None  # stream time, for a caller turn made of speech
    audible: bool = False


class Session:
    def __init__(
        self,
        info: SessionInfo,
        outbound: Outbound,
        agent: Agent,
        vad: VadBatcher,
        *,
        turn_settings: TurnSettings | None = None,
        observer: SessionObserver | None = None,
        chunk_ms: int = 20,
        lead_ms: int = 60,
    ) -> None:
        self.info = info
        self.stats = SessionStats()
        self._out = outbound
        self._vad = vad
        self._observer = observer or _NoObserver()
        self.turn_settings = turn_settings or TurnSettings()
        vad_rate = 8000 if info.in_rate == 8000 else 16000
        self._vad_stream = VadStream(vad_rate)
        self._to_vad_rate = StreamResampler(info.in_rate, vad_rate, quality="LQ")
        self._turns = TurnDetector(self.turn_settings, self._vad_stream.window_seconds)
        self._caller = CallerAudio(info.in_rate)
        self._arrivals: deque[tuple[float, float]] = deque(maxlen=1024)
        self._vad_pending: list[bytes | memoryview] = []  # caller audio not yet fed to the VAD
        self._vad_pending_samples = 0
        self._vad_ready = asyncio.Event()  # pending audio completes at least one VAD window
        self._playout = Playout(self._send_audio, info.out_rate, chunk_ms=chunk_ms, lead_ms=lead_ms)
        self._chunk_ms = chunk_ms
        self._lead_ms = lead_ms
        self._reply: _Reply | None = None
        self._utterance_start: float | None = None
        self._speech_during_reply = False
        self._tool_results: dict[str, asyncio.Future[ToolResult]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._listener: asyncio.Task[None] | None = None
        self._end_after_reply: str | None = None
        self._greeted = False
        self._audio_out_before = 0.0  # seconds sent at earlier output rates
        self._closing: asyncio.Task[None] | None = None
        self.ended = asyncio.Event()
        self.end_reason: str | None = None
        self._conversation: Conversation = agent.conversation(info, self)

    # ---- transport -> session -------------------------------------------------------

    def start(self) -> None:
        self._listener = asyncio.get_running_loop().create_task(self._listen(), name="listen")
        self._listener.add_done_callback(self._crashed)

    def receive_audio(self, pcm: bytes | memoryview) -> None:
        """Caller PCM16 at the input rate; never blocks.

        The audio is kept at once; the listener task is woken to convert it and run the VAD
        only once it makes up a whole VAD window, not for every frame.
        """
        self._caller.append(pcm)
        count = len(pcm) // 2
        self.stats.audio_in_samples += count
        self._arrivals.append((self._caller.end_time, time.monotonic()))
        self._vad_pending.append(pcm)
        self._vad_pending_samples += count
        stream = self._vad_stream
        at_vad_rate = self._vad_pending_samples * stream.sample_rate // self.info.in_rate
        if stream.buffered_samples + at_vad_rate >= stream.window_size:
            self._vad_ready.set()

    async def receive(self, frame: ClientFrame) -> None:
        if self.end_reason is not None:
            return
        match frame:
            case Configure():
                await self._configure(frame)
            case Dtmf(digits=digits):
                for digit in digits:
                    await self._out.send_event(events.dtmf(digit))
                if self._reply is not None and self._reply.audible:
                    await self._barge_in("dtmf")
                self._start_reply(CallerTurn(digits=digits), utterance_start=None)
            case InputText(text=text):
                if self._reply is not None and self._reply.audible:
                    await self._barge_in("input_text")
                self._start_reply(CallerTurn(text=text), utterance_start=None)
            case ToolResult():
                waiter = self._tool_results.pop(frame.call_id, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(frame)
            case SessionEnding():
                await self.end("session_ending")

    async def end(self, reason: str, *, code: int = 1000, error: Event | None = None) -> None:
        """End the call: stop speaking, tell the client, close. Idempotent."""
        if self.end_reason is not None:
            return
        self.end_reason = reason
        self._shutdown()
        with contextlib.suppress(Exception):
            if error is not None:
                await self._out.send_event(error)
            await self._out.send_event(events.session_end(call_id=self.info.call_id, reason=reason))
            await self._out.close(code, reason)
        self.ended.set()

    def abandon(self, reason: str) -> None:
        """The client is gone: stop everything, send nothing."""
        if self.end_reason is None:
            self.end_reason = reason
        self._shutdown()
        self.ended.set()

    # ---- ConversationHost -------------------------------------------------------------

    async def send_event(self, event: Event) -> None:
        await self._out.send_event(event)

    def end_after_reply(self, reason: str) -> None:
        if self._reply is None:
            self._spawn(self.end(reason))
        else:
            self._end_after_reply = reason

    def wait_tool_result(self, call_id: str) -> asyncio.Future[ToolResult]:
        future: asyncio.Future[ToolResult] = asyncio.get_running_loop().create_future()
        self._tool_results[call_id] = future
        return future

    def far_end_played(self, samples: int) -> None:
        """The transport learnt that the far end has played agent audio up to ``samples``
        sent (Twilio marks): what the caller heard of a reply is capped there."""
        self._playout.played(samples)

    @property
    def audio_in_seconds(self) -> float:
        return self.stats.audio_in_samples / self.info.in_rate

    @property
    def audio_out_seconds(self) -> float:
        """Agent audio sent, across any change of output rate."""
        return self._audio_out_before + self._playout.samples_sent_total / self._playout.rate

    # ---- configure and greeting -----------------------------------------------------

    async def _configure(self, frame: Configure) -> None:
        config = self.info.config
        config.update(frame.settings)
        config.setdefault("_unknown", {}).update(frame.unknown)
        settings = frame.settings
        if "endpointing_ms" in settings:
            self.turn_settings.set_endpointing(settings["endpointing_ms"])
        if "barge_in_min_ms" in settings:
            self.turn_settings.barge_in_min_ms = settings["barge_in_min_ms"]
        if "barge_in_confidence" in settings:
            self.turn_settings.barge_in_confidence = settings["barge_in_confidence"]
        if "vad_threshold" in settings:
            self.turn_settings.threshold = settings["vad_threshold"]
        if "audio_out" in settings and settings["audio_out"] != self.info.out_rate:
            self._set_out_rate(settings["audio_out"])
        report = self._conversation.configure(self.info)
        await self._out.send_event(
            events.configured(
                call_id=self.info.call_id,
                voice_id=report.voice_id,
                language=report.language,
                greeting=report.greeting,
                kb=report.kb,
                tools=report.tools,
                endpointing_ms=self.turn_settings.endpointing_ms,
                out_rate=self.info.out_rate,
            )
        )
        await self._out.send_event(
            events.config_ack(
                voice_id=report.voice_id,
                honored=settings.keys(),
                ignored=[*frame.unknown, *frame.rejected],
            )
        )
        # Turn 0: the first configure that sets a greeting, unless the caller spoke first.
        if not self._greeted and self.stats.turns == 0:
            greeting = self._conversation.greeting()
            if greeting is not None:
                self._greeted = True
                self._speak(greeting, turn=None, utterance_start=None, caller_end=None)

    def _set_out_rate(self, rate: int) -> None:
        self._playout.interrupt()
        self._audio_out_before = self.audio_out_seconds
        self.info.out_rate = rate
        self._playout = Playout(
            self._send_audio, rate, chunk_ms=self._chunk_ms, lead_ms=self._lead_ms
        )

    # ---- listening ------------------------------------------------------------------

    async def _listen(self) -> None:
        ready = self._vad_ready
        window = self._vad_stream.window_seconds
        while True:
            await ready.wait()
            ready.clear()
            pending, self._vad_pending = self._vad_pending, []
            self._vad_pending_samples = 0
            samples = pcm16_samples(b"".join(pending))
            audio = self._to_vad_rate.process(to_float(samples))
            probabilities = await self._vad.probabilities(self._vad_stream, audio)
            for probability in probabilities:
                event = self._turns.feed(probability)
                if isinstance(event, SpeechStarted):
                    self._on_speech_start(event.at)
                elif isinstance(event, SpeechEnded):
                    self._on_speech_end(event.at)
                if self._reply is not None:
                    await self._maybe_barge_in()
            if self._turns.speaking and not self._speech_during_reply:
                silence_ms = self._turns.silence_seconds * 1000
                paused = silence_ms >= PAUSE_MS
                self._conversation.hear(self._utterance_so_far, paused=paused)
                finished = self._conversation.turn_finished() if paused else Finished.NO
                if finished is not Finished.NO and silence_ms >= self.turn_settings.end_silence_ms(
                    finished
                ):
                    ended = self._turns.end_turn()
                    if ended is not None:
                        self._on_speech_end(ended.at)
            if not self._turns.speaking and self._utterance_start is None:
                self._caller.forget_before(
                    self._vad_stream.processed_seconds - PRE_ROLL_SECONDS - window
                )

    def _utterance_so_far(self) -> Int16Array:
        start = self._utterance_start or 0.0
        return self._caller.between(start, self._vad_stream.processed_seconds)

    def _on_speech_start(self, at: float) -> None:
        reply = self._reply
        if reply is not None and not reply.audible and reply.utterance_start is not None:
            # The caller went on talking before the reply could be heard: one longer turn.
            self._cancel_reply()
            self._utterance_start = reply.utterance_start
            return
        self._speech_during_reply = reply is not None
        self._utterance_start = max(0.0, at - PRE_ROLL_SECONDS)

    def _on_speech_end(self, at: float) -> None:
        start, self._utterance_start = self._utterance_start, None
        if self._speech_during_reply or start is None:
            # Speech under the agent's voice too short to barge in: a cough, a "mm-hm".
            self._speech_during_reply = False
            return
        audio = self._caller.between(start, at + TAIL_SECONDS)
        self._start_reply(CallerTurn(audio=audio), utterance_start=start, caller_end=at)

    async def _maybe_barge_in(self) -> None:
        """Cut the reply off for caller speech that is sure enough to be speech.

        An audible reply is cut off from the run's first window, before the detector has
        called it speech; one not heard yet only once the turn detector has (for a caller
        who went on talking, :meth:`_on_speech_start` joins the turns first).
        """
        reply = self._reply
        if reply is None or not (reply.audible or self._speech_during_reply):
            return
        if not self._turns.interrupting():
            return
        self._speech_during_reply = False
        if reply.audible:
            await self._barge_in("barge_in")
        else:
            self._cancel_reply()

    async def _barge_in(self, reason: str) -> None:
        heard = self._playout.interrupt()
        self._cancel_reply()
        self.stats.barge_ins += 1
        self._observer.barge_in()
        await self._out.clear_audio()
        await self._out.send_event(events.flush(reason))
        await self._out.send_event(events.barge_in())
        await self._out.send_event(
            events.assistant_interrupted(call_id=self.info.call_id, reply=heard)
        )
        self._conversation.interrupted(heard)

    # ---- replying -------------------------------------------------------------------

    def _caller_end_wall(self, at: float) -> float | None:
        """When the sample at stream time ``at`` arrived (monotonic clock)."""
        index = bisect.bisect_left(self._arrivals, (at, 0.0))
        return self._arrivals[index][1] if index < len(self._arrivals) else None

    def _start_reply(
        self, turn: CallerTurn, *, utterance_start: float | None, caller_end: float | None = None
    ) -> None:
        if self.end_reason is not None:
            return
        self._cancel_reply()
        self.stats.turns += 1
        speech = self._conversation.respond(turn)
        end_wall = None if caller_end is None else self._caller_end_wall(caller_end)
        self._speak(
            speech,
            turn=self.stats.turns,
            utterance_start=utterance_start,
            caller_end=end_wall,
            marks=turn.marks,
        )

    def _speak(
        self,
        speech: AsyncIterator[Speech],
        *,
        turn: int | None,
        utterance_start: float | None,
        caller_end: float | None,
        marks: dict[str, float] | None = None,
    ) -> None:
        task = asyncio.get_running_loop().create_task(
            self._play_reply(speech, turn, caller_end, {} if marks is None else marks),
            name=f"reply-{turn}",
        )
        self._reply = _Reply(task, utterance_start)
        self._tasks.add(task)
        task.add_done_callback(self._reply_done)

    async def _play_reply(
        self,
        speech: AsyncIterator[Speech],
        turn: int | None,
        caller_end: float | None,
        marks: dict[str, float],
    ) -> None:
        playout = self._playout
        started = False
        try:
            async for part in speech:
                if not started:
                    started = True
                    playout.begin()
                    if self._reply is not None:
                        self._reply.audible = True
                    marks["first_audio"] = time.monotonic()
                    await self._announce(turn, caller_end, marks)
                playout.enqueue(part)
                if part.text:
                    await self._out.send_event(
                        events.transcript("assistant", playout.full_text(), final=False)
                    )
            if started:
                playout.close()
                await playout.wait()
                if playout.full_text():
                    await self._out.send_event(
                        events.transcript("assistant", playout.full_text(), final=True)
                    )
        finally:
            aclose = getattr(speech, "aclose", None)
            if aclose is not None:
                await aclose()
        if self._end_after_reply is not None:
            self._spawn(self.end(self._end_after_reply))

    async def _announce(
        self, turn: int | None, caller_end: float | None, marks: dict[str, float]
    ) -> None:
        since_ms: int | None = None
        if caller_end is not None:
            # Stages done before the caller stopped (a draft's decode) took no time after it.
            stages = {stage: round(max(0.0, at - caller_end), 4) for stage, at in marks.items()}
            for stage, seconds in stages.items():
                self._observer.turn_latency(stage, seconds)
            since_ms = round(stages["first_audio"] * 1000)
            if self.info.config.get("metrics"):
                await self._out.send_event(
                    events.metrics(
                        turn=turn, **{f"{stage}_ms": round(s * 1000) for stage, s in stages.items()}
                    )
                )
        if turn is not None:
            await self._out.send_event(
                events.turn_begin(
                    call_id=self.info.call_id, turn=turn, since_caller_end_ms=since_ms
                )
            )
        await self._out.send_event(events.turn())

    def _reply_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._reply is not None and self._reply.task is task:
            self._reply = None
        if not task.cancelled() and task.exception() is not None:
            log.error("reply failed", exc_info=task.exception())

    def _cancel_reply(self) -> None:
        reply, self._reply = self._reply, None
        if reply is not None:
            reply.task.cancel()
            # A goodbye or transfer line the caller talks over is not the end of the call:
            # they have more to say.
            self._end_after_reply = None

    async def _send_audio(self, pcm: bytes) -> None:
        await self._out.send_audio(pcm)

    # ---- teardown -------------------------------------------------------------------

    def _shutdown(self) -> None:
        if self._closing is None:  # stops the conversation's own work (speculative decodes)
            self._closing = asyncio.get_running_loop().create_task(self._conversation.aclose())
        self._playout.interrupt()
        self._cancel_reply()
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:  # end() itself may run as one (end after reply)
                task.cancel()
        if self._listener is not None:
            self._listener.cancel()
        for waiter in self._tool_results.values():
            waiter.cancel()
        self._tool_results.clear()

    def _crashed(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        log.error("session %s listener failed", self.info.call_id, exc_info=task.exception())
        self._spawn(
            self.end(
                "internal_error",
                code=1011,
                error=events.error("internal_error", "the session failed; see server logs"),
            )
        )

    def _spawn(self, coroutine: Awaitable[Any]) -> None:
        async def run() -> None:
            await coroutine

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
