"""Playing one agent reply out: its audio paced to real time, the assistant transcript, the
turn's announcement and latencies, and then its call control: a bridge acts on
``end_call`` or ``transfer_to_human`` at once, so the caller must have heard the line first."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field, replace
from typing import Any

from voxline.protocol import events
from voxline.protocol.call_control import CallControl, HangUp, SendDigits, Transfer
from voxline.session.agent import ReplyPart, SessionInfo, Speech, TurnTimings
from voxline.session.floor import GREETING_HEARD_MS
from voxline.session.outbound import Outbound, SessionObserver
from voxline.session.playout import Playout
from voxline.session.resume import CutReply, close_pieces, keepable

log = logging.getLogger(__name__)


class _Protection:
    """How much of turn 0 the caller must hear before they may interrupt it: its consent
    line (speech not ``interruptible``) and then :data:`GREETING_HEARD_MS` of the rest;
    ``heard`` is called once they have."""

    def __init__(self, playout: Playout, heard: Callable[[], None]) -> None:
        self._playout = playout
        self._heard = heard
        self._locked = 0  # samples of the consent line
        self._waiting: asyncio.Task[None] | None = None

    def add(self, speech: Speech) -> None:
        if self._waiting is not None:
            return
        if not speech.interruptible:
            self._locked += len(speech.audio)
            return
        samples = self._locked + self._playout.rate * GREETING_HEARD_MS // 1000
        self._waiting = asyncio.get_running_loop().create_task(self._wait(samples))

    async def _wait(self, samples: int) -> None:
        await self._playout.until_heard(samples)
        if self._playout.active:
            self._heard()

    async def aclose(self) -> None:
        if self._waiting is not None:
            self._waiting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._waiting


@dataclass(slots=True)
class _Playing:
    """The reply being played: its pieces, the speech and call control they gave so far,
    and whether a cut has kept it (its pieces are then not closed as it stops).

    Each piece is awaited in a task of its own, shielded: a barge-in cancels the playing,
    not the agent's work on the next piece, which a resumed reply still needs."""

    reply: AsyncIterator[ReplyPart]
    speech: list[Speech] = field(default_factory=list)
    actions: list[CallControl] = field(default_factory=list)
    pending: asyncio.Task[ReplyPart | None] | None = None
    kept: bool = False

    async def next(self) -> ReplyPart | None:
        self.pending = asyncio.ensure_future(anext(self.reply, None))
        part = await asyncio.shield(self.pending)
        self.pending = None
        return part

    def cut(self) -> tuple[AsyncIterator[ReplyPart], asyncio.Task[ReplyPart | None] | None]:
        self.kept = True
        return self.reply, self.pending

    async def aclose(self) -> None:
        if not self.kept:
            await close_pieces(self.reply, self.pending)


class ReplyTask:
    """The session's one reply in progress, played through ``player``. A new one replaces
    it; cancelling it stops the call control it would have carried out too (a goodbye or
    transfer line the caller talks over is not the end of the call). ``audible`` is called
    as a reply's first audio goes out, ``finished`` when it ends of itself, ``ending`` with
    the reason when its call control ends the call."""

    def __init__(
        self,
        tasks: set[asyncio.Task[Any]],
        player: ReplyPlayer,
        *,
        audible: Callable[[], None],
        finished: Callable[[], None],
        ending: Callable[[str], None],
    ) -> None:
        self._tasks = tasks  # the session's, cancelled as it ends
        self._player = player
        self._audible = audible
        self._finished = finished
        self._ending = ending
        self._task: asyncio.Task[None] | None = None

    def play(
        self,
        reply: AsyncIterator[ReplyPart],
        *,
        turn: int | None,
        caller_end: float | None = None,
        timings: TurnTimings | None = None,
        protected: Callable[[], None] | None = None,
    ) -> None:
        """Play ``reply`` (see :meth:`ReplyPlayer.play`)."""

        async def run() -> None:
            ending = await self._player.play(
                reply, turn, caller_end, timings, audible=self._audible, protected=protected
            )
            if ending is not None:
                self._ending(ending)

        self.start(run(), name=f"reply-{turn}")

    def start(self, run: Coroutine[Any, Any, None], *, name: str) -> None:
        self.cancel()
        self._task = task = asyncio.get_running_loop().create_task(run, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def cancel(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._task is task:
            self._task = None
            self._finished()
        if not task.cancelled() and task.exception() is not None:
            log.error("reply failed", exc_info=task.exception())


class ReplyPlayer:
    """Plays the session's replies through one :class:`Playout` (a new one when the output
    rate changes) and counts the agent audio sent across them."""

    def __init__(
        self,
        info: SessionInfo,
        outbound: Outbound,
        observer: SessionObserver,
        chunk_ms: int,
        lead_ms: int,
    ) -> None:
        self._info = info
        self._out = outbound
        self._observer = observer
        self._chunk_ms = chunk_ms
        self._lead_ms = lead_ms
        self.playout = self._new_playout(info.out_rate)
        self._audio_out_before = 0.0  # seconds sent at earlier output rates
        self._playing: _Playing | None = None

    @property
    def audio_out_seconds(self) -> float:
        """Agent audio sent, across any change of output rate."""
        playout = self.playout
        return self._audio_out_before + playout.samples_sent_total / playout.rate

    def set_out_rate(self, rate: int) -> None:
        self.playout.interrupt()
        self._audio_out_before = self.audio_out_seconds
        self._info.out_rate = rate
        self.playout = self._new_playout(rate)

    async def play(
        self,
        reply: AsyncIterator[ReplyPart],
        turn: int | None,
        caller_end: float | None,
        timings: TurnTimings | None,
        *,
        audible: Callable[[], None],
        protected: Callable[[], None] | None = None,
    ) -> str | None:
        """Play ``reply`` until the caller has heard it all (``audible`` is called as its
        first audio goes out), then carry out its call control. Returns why the call ends,
        when the call control ends it. ``protected`` (turn 0) is called once the caller may
        interrupt it (:class:`_Protection`); if they never may, the reply plays out."""
        playout = self.playout
        timings = timings or TurnTimings()
        self._playing = playing = _Playing(reply)
        actions = playing.actions
        started = False
        protection = _Protection(playout, protected) if protected is not None else None
        try:
            while (part := await playing.next()) is not None:
                if not isinstance(part, Speech):
                    actions.append(part)
                    continue
                if not started:
                    started = True
                    playout.begin()
                    audible()
                    timings.first_audio = time.monotonic()
                    await self._announce(turn, caller_end, timings)
                playout.enqueue(part)
                playing.speech.append(part)
                if protection is not None:
                    protection.add(part)
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
            if protection is not None:
                await protection.aclose()
            if self._playing is playing:
                self._playing = None
            await playing.aclose()
        ending: str | None = None
        for action in actions:
            ending = await self._carry_out(action) or ending
        return ending

    async def _carry_out(self, action: CallControl) -> str | None:
        match action:
            case SendDigits():
                await self._out.send_digits(action)
            case Transfer():
                # The destination configured for the session, else the agent's wish.
                destination = self._info.config.transfer_destination or action.destination
                if await self._out.transfer(replace(action, destination=destination)):
                    return "transferred"
            case HangUp(reason=reason):
                await self._out.hang_up(action)
                return reason
        return None

    def interrupt(self) -> tuple[str, CutReply | None]:
        """Stop the reply at once: the text the caller heard, and what is kept of the reply
        to resume it (:mod:`.resume`), from the sentence they were hearing."""
        playout = self.playout
        playing, self._playing = self._playing, None
        hearing = playout.hearing()
        said = playout.full_text()
        heard = playout.interrupt()
        if playing is None or not keepable(speech := playing.speech[hearing:], playout.rate):
            return heard, None
        rest, pending = playing.cut()
        return heard, CutReply(playout.rate, speech, rest, pending, list(playing.actions), said)

    async def cut_off(self, reason: str, heard: str) -> None:
        """Tell the far end the caller interrupted, having heard ``heard`` of the reply."""
        await self._out.clear_audio()
        await self._out.send_event(events.flush(reason))
        await self._out.send_event(events.barge_in())
        await self._out.send_event(
            events.assistant_interrupted(call_id=self._info.call_id, reply=heard)
        )

    async def _announce(
        self, turn: int | None, caller_end: float | None, timings: TurnTimings
    ) -> None:
        since_ms: int | None = None
        if caller_end is not None:
            # Stages done before the caller stopped (a draft's decode) took no time after it.
            stages = {
                stage: round(max(0.0, at - caller_end), 4) for stage, at in timings.stages().items()
            }
            for stage, seconds in stages.items():
                self._observer.turn_latency(stage, seconds)
            since_ms = round(stages["first_audio"] * 1000)
            if self._info.config.metrics:
                await self._out.send_event(
                    events.metrics(
                        turn=turn, **{f"{stage}_ms": round(s * 1000) for stage, s in stages.items()}
                    )
                )
        if turn is not None:
            await self._out.send_event(
                events.turn_begin(
                    call_id=self._info.call_id, turn=turn, since_caller_end_ms=since_ms
                )
            )
        await self._out.send_event(events.turn())

    def _new_playout(self, rate: int) -> Playout:
        return Playout(self._out.send_audio, rate, chunk_ms=self._chunk_ms, lead_ms=self._lead_ms)
