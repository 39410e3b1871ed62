"""What a session speaks through and reports to: the transport's line and the metrics."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

from voxline.protocol.call_control import HangUp, SendDigits, Transfer
from voxline.protocol.events import Event


class Outbound(Protocol):
    """What a transport offers the session: events, agent audio, and the call itself."""

    async def send_event(self, event: Event) -> None: ...

    async def send_audio(self, pcm: bytes) -> None: ...

    async def clear_audio(self) -> None:
        """Drop agent audio already handed to the far end (telephony ``clear``)."""

    async def transfer(self, request: Transfer) -> bool:
        """Hand the caller to a person; True when that takes the call away (the session
        then ends), False when the far end decides what happens next."""
        ...

    async def hang_up(self, request: HangUp) -> None:
        """The agent ends the call; the session closes right after."""

    async def send_digits(self, request: SendDigits) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


class NoCallControl:
    """Call control for a line with no one to act on it (the evaluation's listening path):
    a transfer leaves the caller with the agent, the rest is let go."""

    async def transfer(self, request: Transfer) -> bool:
        return False

    async def hang_up(self, request: HangUp) -> None:
        pass

    async def send_digits(self, request: SendDigits) -> None:
        pass


@dataclass(slots=True)
class SessionStats:
    """What a call's record counts beside its audio and turns."""

    barge_ins: int = 0
    started_at: float = field(default_factory=time.time)


class SessionObserver(Protocol):
    """Where the session reports what operators measure."""

    def barge_in(self) -> None: ...

    def turn_latency(self, stage: str, seconds: float) -> None: ...


class NoObserver:
    def barge_in(self) -> None:
        pass

    def turn_latency(self, stage: str, seconds: float) -> None:
        pass
