"""How fast a caller may send: budgets that refill with the wall clock.

Real-time audio costs the server real-time work; a client that sends it faster (a file
pushed as fast as the socket takes it, an attacker) would pile work and memory up without
bound, so a session accepts caller audio at most :data:`AUDIO_RATE` times real time, with a
burst of :data:`AUDIO_BURST_SECONDS` for audio a network held back and then delivered at
once. Typed turns (``input_text``, ``dtmf``) each reach the agent's brain, an LLM request
perhaps, so they have a budget of their own.
"""

from __future__ import annotations

from typing import Final

AUDIO_RATE: Final = 1.5
"""Seconds of caller audio accepted per second of wall clock, over the burst."""
AUDIO_BURST_SECONDS: Final = 2.0
TYPED_TURNS_PER_SECOND: Final = 1.0
TYPED_TURNS_BURST: Final = 10.0
"""Enough for an account number keyed one digit a frame."""


class Budget:
    """A token bucket: refills at ``rate`` a second up to ``burst``; starts full."""

    def __init__(self, rate: float, burst: float, *, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._level = burst
        self._at = now

    def spend(self, amount: float, now: float) -> bool:
        """Take ``amount`` if the budget holds it at ``now``; whether it did."""
        self._level = min(self.burst, self._level + (now - self._at) * self.rate)
        self._at = now
        if self._level < amount:
            return False
        self._level -= amount
        return True


def audio_budget(now: float) -> Budget:
    return Budget(AUDIO_RATE, AUDIO_BURST_SECONDS, now=now)


def typed_turn_budget(now: float) -> Budget:
    return Budget(TYPED_TURNS_PER_SECOND, TYPED_TURNS_BURST, now=now)
