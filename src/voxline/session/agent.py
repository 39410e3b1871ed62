"""What an agent is to the session: a factory of conversations that turn caller turns into
speech. The session owns timing, playout, barge-in and the wire; the agent owns meaning."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from voxline.audio.pcm import Int16Array
from voxline.protocol.client_frames import ToolResult
from voxline.protocol.events import Event
from voxline.session.turns import Finished


@dataclass(frozen=True, slots=True)
class Speech:
    """One stretch of agent audio at the session's output rate, with the text it says."""

    audio: Int16Array
    text: str = ""


@dataclass(frozen=True, slots=True)
class CallerTurn:
    """What the caller said: their audio (input rate), typed text, or DTMF digits.

    ``marks`` collects monotonic timestamps of the turn's stages (``transcribed``,
    ``first_token``, ...) for the per-turn timings the session reports.
    """

    audio: Int16Array | None = None
    text: str | None = None
    digits: str | None = None
    marks: dict[str, float] = field(default_factory=dict)


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


class ConversationHost(Protocol):
    """What the session offers the conversation it hosts."""

    async def send_event(self, event: Event) -> None: ...

    def wait_tool_result(self, call_id: str) -> asyncio.Future[ToolResult]: ...

    def end_after_reply(self, reason: str) -> None:
        """End the call once the current reply has been heard (``end_call``)."""


class Conversation(Protocol):
    def configure(self, info: SessionInfo) -> ConfigureReport: ...

    def greeting(self) -> AsyncIterator[Speech] | None: ...

    def hear(self, utterance: Callable[[], Int16Array], *, paused: bool) -> None:
        """The caller is speaking (``paused``: has just gone quiet, the turn may be ending).

        ``utterance()`` returns the turn's audio so far; call it only when needed.
        """

    def turn_finished(self) -> Finished:
        """How finished the caller's words so far sound: a finished turn may end after a
        shorter silence (:meth:`TurnSettings.end_silence_ms`)."""
        ...

    def respond(self, turn: CallerTurn) -> AsyncIterator[Speech]: ...

    def interrupted(self, heard: str) -> None:
        """The caller cut the last reply off after hearing ``heard``."""

    async def aclose(self) -> None: ...


class Agent(Protocol):
    name: str

    def conversation(self, info: SessionInfo, host: ConversationHost) -> Conversation: ...

    async def start(self) -> None:
        """Begin the agent's background work, once the server's event loop runs."""

    async def aclose(self) -> None:
        """Release the engines shared by this agent's conversations."""
