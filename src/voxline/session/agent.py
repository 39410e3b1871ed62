"""What an agent is to the session: a factory of conversations that turn caller turns into
speech. The session owns timing, playout, barge-in and the wire; the agent owns meaning."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Protocol

from voxline.audio.pcm import Int16Array
from voxline.protocol import events
from voxline.protocol.agent_profile import AgentProfile
from voxline.protocol.call_control import CallControl
from voxline.protocol.client_frames import Configure, SessionConfig, ToolResult
from voxline.protocol.events import Event
from voxline.session.turns import Finished


@dataclass(frozen=True, slots=True)
class Speech:
    """One stretch of agent audio at the session's output rate, with the text it says.
    Speech not ``interruptible`` is heard in full (turn 0's consent line)."""

    audio: Int16Array
    text: str = ""
    interruptible: bool = True


@dataclass(slots=True)
class TurnTimings:
    """When each stage of a reply was reached (monotonic clock), for the per-turn latencies
    the session reports: the agent fills in its stages, the session ``first_audio``."""

    transcribed: float | None = None
    first_token: float | None = None
    first_audio: float | None = None

    def stages(self) -> dict[str, float]:
        """The stages reached, by name."""
        reached = {
            "transcribed": self.transcribed,
            "first_token": self.first_token,
            "first_audio": self.first_audio,
        }
        return {stage: at for stage, at in reached.items() if at is not None}


@dataclass(frozen=True, slots=True)
class CallerTurn:
    """What the caller said: their audio (input rate), typed text, or DTMF digits."""

    audio: Int16Array | None = None
    text: str | None = None
    digits: str | None = None
    timings: TurnTimings = field(default_factory=TurnTimings)


@dataclass(slots=True)
class SessionInfo:
    call_id: str
    label: str | None
    in_rate: int
    out_rate: int
    config: SessionConfig = field(default_factory=SessionConfig)
    agent: AgentProfile | None = None  # the stored agent the session started from
    defaults: SessionConfig = field(default_factory=SessionConfig)
    """The server's own settings (``transfer_destination``), under any profile's."""

    def start_from(self, agent: AgentProfile) -> None:
        """Start over from ``agent``'s profile: the server's defaults with the settings the
        profile sets, which ``configure`` overrides key by key."""
        self.agent = agent
        self.config = self.defaults.merge(agent.configure())

    @property
    def agent_id(self) -> str:
        """Who the session is, to a ``kb_endpoint``: its stored agent, else its label."""
        return self.agent.id if self.agent is not None else self.label or ""


ReplyPart = Speech | CallControl
"""A reply is spoken pieces and call control, in order: the session carries the call control
out once the caller has heard the reply's audio (``end_call`` after "Goodbye")."""


@dataclass(frozen=True, slots=True)
class Unusable:
    """A setting the agent cannot honour (a voice it does not have), and why."""

    key: str
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class ConfigureReport:
    """What the agent made of a ``configure``, reported in ``configured``: ``voice_id`` is
    the voice that speaks, and ``unusable`` the settings it could not honour."""

    greeting: bool = False
    kb: bool = False
    tools: int = 0
    voice_id: str | None = None
    language: str | None = None
    unusable: tuple[Unusable, ...] = ()

    def acknowledgements(
        self, info: SessionInfo, frame: Configure, *, endpointing_ms: int
    ) -> list[Event]:
        """A ``warning`` for each unusable setting the frame set, ``configured`` and, for
        older clients, ``config_ack``, which lists those settings as ignored."""
        unusable = [item for item in self.unusable if item.key in frame.keys]
        refused = {item.key for item in unusable}
        return [
            *(events.warning(item.code, item.message) for item in unusable),
            events.configured(
                call_id=info.call_id,
                voice_id=self.voice_id,
                language=self.language,
                greeting=self.greeting,
                kb=self.kb,
                tools=self.tools,
                endpointing_ms=endpointing_ms,
                out_rate=info.out_rate,
            ),
            events.config_ack(
                voice_id=self.voice_id,
                honored=[key for key in frame.honored if key not in refused],
                ignored=[*frame.unknown, *frame.rejected, *(item.key for item in unusable)],
            ),
        ]


class ToolResults:
    """Client-loop tool calls waiting for the client's ``tool_result``, by call id."""

    def __init__(self) -> None:
        self._waiting: dict[str, asyncio.Future[ToolResult]] = {}

    def wait(self, call_id: str) -> asyncio.Future[ToolResult]:
        future: asyncio.Future[ToolResult] = asyncio.get_running_loop().create_future()
        self._waiting[call_id] = future
        return future

    def deliver(self, result: ToolResult) -> None:
        waiter = self._waiting.pop(result.call_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(result)

    def cancel(self) -> None:
        for waiter in self._waiting.values():
            waiter.cancel()
        self._waiting.clear()


class ConversationHost(Protocol):
    """What the session offers the conversation it hosts."""

    async def send_event(self, event: Event) -> None: ...

    def wait_tool_result(self, call_id: str) -> asyncio.Future[ToolResult]: ...


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

    def respond(self, turn: CallerTurn) -> AsyncIterator[ReplyPart]: ...

    def interrupted(self, heard: str) -> None:
        """The caller cut the last reply off after hearing ``heard``."""

    async def holds_words(self, turn: CallerTurn) -> bool:
        """Whether the caller's turn, which cut a reply off, holds words: a cough, a door, a
        lone "um" does not, and then the reply resumes (:meth:`resumed`) instead of the turn
        being answered (:meth:`respond`)."""
        ...

    def resumed(self, said: str) -> None:
        """The reply cut off last goes on after all (the caller's sound held no words):
        ``said`` is its text so far, the rest still to come from its pieces."""

    async def aclose(self) -> None: ...


class Agent(Protocol):
    name: str

    def conversation(self, info: SessionInfo, host: ConversationHost) -> Conversation: ...

    async def prepare(self, agent: AgentProfile) -> None:
        """Load what conversations from ``agent``'s profile need (its knowledge), off the
        event loop, before one starts."""

    async def start(self) -> None:
        """Begin the agent's background work, once the server's event loop runs."""

    async def aclose(self) -> None:
        """Release the engines shared by this agent's conversations."""
