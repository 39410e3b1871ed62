"""One conversation: the asyncio driver around the turn-taking core (:mod:`.floor`).

A transport feeds the session caller audio and client frames and gives it an ``Outbound`` to
speak through; the session runs the VAD, hands what happens to its ``Floor``, and carries
the floor's decisions out with the conversation the agent made for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Coroutine
from typing import Any

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
from voxline.protocol.errors import CloseCode
from voxline.protocol.events import Event
from voxline.session import floor, pacing
from voxline.session.agent import Agent, CallerTurn, SessionInfo, ToolResults
from voxline.session.caller_audio import CallerStream
from voxline.session.floor import Decision, Floor
from voxline.session.gaps import GapTimer
from voxline.session.outbound import NoObserver, Outbound, SessionObserver, SessionStats
from voxline.session.replies import ReplyPlayer, ReplyTask
from voxline.session.resume import Resumption
from voxline.session.turns import TurnSettings

log = logging.getLogger(__name__)


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
        idle_seconds: float | None = None,
        paced: bool = False,
        chunk_ms: int = 20,
        lead_ms: int = 60,
    ) -> None:
        self.info = info
        self.stats = SessionStats()
        self._out = outbound
        self._vad = vad
        self._observer = observer or NoObserver()
        self.turn_settings = turn_settings or TurnSettings()
        self._caller = CallerStream(info.in_rate, paced=paced)
        self._typed_turns = pacing.typed_turn_budget(time.monotonic())
        self._floor = Floor(
            self.turn_settings,
            self._caller.vad.window_seconds,
            idle_seconds=idle_seconds,
            now=time.monotonic(),
        )
        self._gaps = GapTimer(self._caller, self._floor, self.tick)
        self._player = ReplyPlayer(info, outbound, self._observer, chunk_ms, lead_ms)
        self._tool_results = ToolResults()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reply = ReplyTask(
            self._tasks,
            self._player,
            audible=self._floor.reply_audible,
            finished=self._reply_finished,
            ending=lambda reason: self._spawn(self.end(reason)),
        )
        self._resumption = Resumption()  # a reply cut off that may resume
        self._listener: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None  # the conversation's aclose
        self.ended = asyncio.Event()
        self.end_reason: str | None = None
        self._conversation = agent.conversation(info, self)

    def start(self) -> None:
        self._listener = asyncio.get_running_loop().create_task(self._listen(), name="listen")
        self._listener.add_done_callback(self._crashed)

    def receive_audio(self, pcm: bytes | memoryview) -> None:
        """Caller PCM16 at the input rate; never blocks (too fast for the pace: ends the call)."""
        overrun = self._caller.overrun
        if not self._caller.append(pcm) and not overrun:
            error = events.error("rate_limit_exceeded", "caller audio came faster than real time")
            self._spawn(self.end("audio_too_fast", code=CloseCode.TOO_MANY_REQUESTS, error=error))

    async def receive(self, frame: ClientFrame) -> None:
        if self.end_reason is not None:
            return
        self._floor.caller_active(time.monotonic())
        match frame:
            case Configure():
                await self._configure(frame)
            case Dtmf() | InputText() if not self._typed_turns.spend(1, time.monotonic()):
                message = "typed turns came faster than one a second; this one was dropped"
                await self._out.send_event(events.error("rate_limit_exceeded", message))
            case Dtmf(digits=digits):
                for digit in digits:
                    await self._out.send_event(events.dtmf(digit))
                await self._decide(self._floor.typed("dtmf"), CallerTurn(digits=digits))
            case InputText(text=text):
                await self._decide(self._floor.typed("input_text"), CallerTurn(text=text))
            case ToolResult():
                self._tool_results.deliver(frame)
            case SessionEnding():
                await self.end("session_ending")

    def tick(self) -> None:
        """Let the wall clock's passing count: a gap in the caller's turn is silence, an
        idle call is closed."""
        now = time.monotonic()
        if decisions := self._gaps.fill(self._floor.tick(now, heard=self._caller.last_arrival)):
            self._spawn(self._decide(decisions))
        if self.end_reason is None:
            self._gaps.watch()

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

    async def fail(self) -> None:
        """End the call for a fault of the server's (logged where it was caught)."""
        error = events.error("internal_error", "the session failed; see server logs")
        await self.end("internal_error", code=CloseCode.INTERNAL_ERROR, error=error)

    def abandon(self, reason: str) -> None:
        """The client is gone: stop everything, send nothing."""
        if self.end_reason is None:
            self.end_reason = reason
        self._shutdown()
        self.ended.set()

    def far_end_played(self, samples: int) -> None:
        """The far end has played agent audio up to ``samples`` sent (Twilio marks): what
        the caller heard of a reply is capped there."""
        self._player.playout.played(samples)

    @property
    def turns(self) -> int:
        """Caller turns answered."""
        return self._floor.turns

    @property
    def audio_in_seconds(self) -> float:
        return self._caller.samples / self.info.in_rate

    @property
    def audio_out_seconds(self) -> float:
        return self._player.audio_out_seconds

    async def send_event(self, event: Event) -> None:
        await self._out.send_event(event)

    def wait_tool_result(self, call_id: str) -> asyncio.Future[ToolResult]:
        return self._tool_results.wait(call_id)

    async def _configure(self, frame: Configure) -> None:
        info = self.info
        info.config = config = info.config.merge(frame)
        self.turn_settings.apply(config)
        if config.audio_out is not None and config.audio_out != info.out_rate:
            self._player.set_out_rate(config.audio_out)
        report = self._conversation.configure(info)
        endpointing = self.turn_settings.endpointing_ms
        for event in report.acknowledgements(info, frame, endpointing_ms=endpointing):
            await self._out.send_event(event)
        greeting = self._conversation.greeting()
        decisions = self._floor.configured(greeting=greeting is not None)
        if greeting is not None and floor.Greet() in decisions:
            # Protected until its greeting has been heard a while (Floor.greeting_heard).
            self._reply.play(greeting, turn=None, protected=self._greeting_heard)

    async def _listen(self) -> None:
        caller = self._caller
        while True:
            await caller.ready.wait()
            audio = caller.take()
            probabilities = await self._vad.probabilities(caller.vad, audio)
            await self._decide(self._floor.vad(probabilities))
            self._gaps.watch()
            forget = self._floor.forget_before(caller.processed_seconds)
            if forget is not None:
                caller.forget_before(forget)

    async def _decide(self, decisions: list[Decision], typed: CallerTurn | None = None) -> None:
        """Carry out the floor's decisions (``typed``: the turn a typed ``Respond`` answers)."""
        for decision in decisions:
            match decision:
                case floor.Respond(stretch=None):
                    self._respond(typed or CallerTurn(), caller_end=None)
                case floor.Respond(stretch=floor.Stretch() as stretch):
                    audio = self._caller.between(stretch.start, stretch.end)
                    self._respond(CallerTurn(audio=audio), caller_end=stretch.speech_end)
                case floor.BargeIn(reason=reason):
                    await self._barge_in(reason)
                case floor.CheckWords(stretch=stretch):
                    turn = CallerTurn(audio=self._caller.between(stretch.start, stretch.end))
                    answer = functools.partial(self._floor.words, stretch)
                    self._resumption.check(
                        self._conversation.holds_words(turn), answer, self._decide
                    )
                case floor.Resume():
                    self._resume()
                case floor.DropReply() | floor.JoinTurns():
                    self._reply.cancel()  # (a check for words given up is ignored)
                case floor.Listen(paused=paused):
                    so_far = functools.partial(self._caller.between, self._floor.utterance_start)
                    self._conversation.hear(so_far, paused=paused)
                    if paused:
                        verdict = self._conversation.turn_finished()
                        await self._decide(self._floor.verdict(verdict))
                case floor.CloseIdle():
                    await self.end("idle_timeout")

    async def _barge_in(self, reason: str) -> None:
        heard, cut = self._player.interrupt()
        self._resumption.keep(cut)
        self._reply.cancel()
        self.stats.barge_ins += 1
        self._observer.barge_in()
        await self._player.cut_off(reason, heard)
        self._conversation.interrupted(heard)

    def _resume(self) -> None:
        """Play the rest of the reply cut off, from the sentence the caller was hearing."""
        cut = self._resumption.take(self.info.out_rate)
        if cut is None:  # nothing kept (a reply too long to keep): it is over
            self._reply_finished()
            return
        self._conversation.resumed(cut.said)
        self._reply.play(cut.pieces(), turn=None)

    def _respond(self, turn: CallerTurn, *, caller_end: float | None) -> None:
        self._resumption.drop()  # the cut was a real interruption: it stands
        if self.end_reason is not None:
            return
        reply = self._conversation.respond(turn)
        end_wall = None if caller_end is None else self._caller.arrived_at(caller_end)
        self._reply.play(reply, turn=self._floor.turns, caller_end=end_wall, timings=turn.timings)

    def _greeting_heard(self) -> None:
        self._spawn(self._decide(self._floor.greeting_heard()))

    def _reply_finished(self) -> None:
        if decisions := self._floor.reply_finished(time.monotonic()):
            self._spawn(self._decide(decisions))

    def _shutdown(self) -> None:
        if self._closing is None:  # stops the conversation's own work (speculative decodes)
            self._closing = asyncio.get_running_loop().create_task(self._conversation.aclose())
        self._player.playout.interrupt()
        self._reply.cancel()
        self._resumption.close()
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:  # end() itself may run as one (end after reply)
                task.cancel()
        if self._listener is not None:
            self._listener.cancel()
        self._gaps.cancel()
        self._tool_results.cancel()

    def _crashed(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("session %s listener failed", self.info.call_id, exc_info=task.exception())
            self._spawn(self.fail())

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
