"""Playing one agent reply out: its audio paced to real time, the assistant transcript, the
turn's announcement and latencies, and then its call control: a bridge acts on
``end_call`` or ``transfer_to_human`` at once, so the caller must have heard the line first."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

from voxline.protocol import events
from voxline.protocol.call_control import CallControl, HangUp, SendDigits, Transfer
from voxline.session.agent import ReplyPart, SessionInfo, Speech, TurnTimings
from voxline.session.outbound import Outbound, SessionObserver
from voxline.session.playout import Playout


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
    ) -> str | None:
        """Play ``reply`` until the caller has heard it all (``audible`` is called as its
        first audio goes out), then carry out its call control. Returns why the call ends,
        when the call control ends it."""
        playout = self.playout
        timings = timings or TurnTimings()
        actions: list[CallControl] = []
        started = False
        try:
            async for part in reply:
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
            aclose = getattr(reply, "aclose", None)
            if aclose is not None:
                await aclose()
        ending: str | None = None
        for action in actions:
            ending = await self._carry_out(action) or ending
        return ending

    async def _carry_out(self, action: CallControl) -> str | None:
        match action:
            case SendDigits():
                await self._out.send_digits(action)
            case Transfer():
                if await self._out.transfer(action):
                    return "transferred"
            case HangUp(reason=reason):
                await self._out.hang_up(action)
                return reason
        return None

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
