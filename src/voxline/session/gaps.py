"""Gaps in the caller's stream: a client that stops sending in the middle of its turn (after
its question, or muted) has its silence counted on the wall clock, so the turn still ends.

One timer per session at most, and only while the caller is in a turn: an idle session, or
one whose caller streams on, costs nothing here but an attribute check per VAD window.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from voxline.session.caller_audio import CallerStream
from voxline.session.floor import GAP_SECONDS, Decision, FillSilence, Floor


class GapTimer:
    """Wakes the session (``tick``) when the caller's turn would have a gap, and fills the
    gaps the floor finds with silence."""

    def __init__(self, caller: CallerStream, floor: Floor, tick: Callable[[], None]) -> None:
        self._caller = caller
        self._floor = floor
        self._tick = tick
        self._handle: asyncio.TimerHandle | None = None

    def watch(self) -> None:
        """While the caller is in a turn, time the gap their stream would have next."""
        heard = self._caller.last_arrival
        if self._handle is None and heard is not None and self._floor.in_turn:
            delay = max(0.0, heard + GAP_SECONDS - time.monotonic())
            self._handle = asyncio.get_running_loop().call_later(delay, self._fire)

    def fill(self, decisions: list[Decision]) -> list[Decision]:
        """Carry out the :class:`FillSilence` among ``decisions`` at once (before the next gap
        is timed); the others are the session's."""
        for decision in decisions:
            if isinstance(decision, FillSilence):
                self._caller.fill(decision.seconds)
        return [d for d in decisions if not isinstance(d, FillSilence)]

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self) -> None:
        self._handle = None
        self._tick()
