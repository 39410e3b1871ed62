"""What an agent is to the session: a factory of conversations that turn caller turns into
speech. The session owns timing, playout, barge-in and the wire; the agent owns meaning."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from voxline.audio.pcm import Int16Array
from voxline.protocol.events import Event


@dataclass(frozen=True, slots=True)
class Speech:
    """One stretch of agent audio at the session's output rate, with the text it says."""

    audio: Int16Array
    text: str = ""


@dataclass(frozen=True, slots=True)
class CallerTurn:
    """What the caller said: their audio (input rate), typed text, or DTMF digits."""

    audio: Int16Array | None = None
    text: str | None = None
    digits: str | None = None


@dataclass(slots=True)
class SessionInfo:
    call_id: str
    label: str | None
    in_rate: int
    out_rate: int
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ConfigureReport:
    """What the agent made of a ``configure``, reported in ``configured``."""

    greeting: bool = False
    kb: bool = False
    tools: int = 0
    voice_id: str | None = None
    language: str | None = None


class TurnEvents(Protocol):
    """Lets an agent tell the client things while it works on a turn."""

    async def send_event(self, event: Event) -> None: ...


class Conversation(Protocol):
    def configure(self, info: SessionInfo) -> ConfigureReport: ...

    def greeting(self) -> AsyncIterator[Speech] | None: ...

    def respond(self, turn: CallerTurn, events: TurnEvents) -> AsyncIterator[Speech]: ...

    def interrupted(self, heard: str) -> None:
        """The caller cut the last reply off after hearing ``heard``."""


class Agent(Protocol):
    name: str

    def conversation(self, info: SessionInfo) -> Conversation: ...
