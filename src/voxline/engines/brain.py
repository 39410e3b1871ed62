"""What a brain is: from the caller's turn and the conversation so far to a stream of reply
text and call-control actions. Brains know nothing of audio, sessions or sockets."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from voxline.engines.knowledge import KnowledgeBase
from voxline.protocol.call_control import CallControl
from voxline.protocol.client_frames import Tool


@dataclass(frozen=True, slots=True)
class Message:
    """One entry of the conversation history, true to what was said and heard."""

    role: Literal["user", "assistant"]
    content: str


@dataclass(frozen=True, slots=True)
class BrainRequest:
    persona: str | None
    history: Sequence[Message]
    user_text: str | None = None  # what the caller said (or typed) this turn
    digits: str | None = None  # DTMF keyed this turn
    knowledge: Sequence[str] = ()  # passages retrieved for this turn, best first
    knowledge_base: KnowledgeBase | None = None  # the session's own, for brains that search one
    tools: Sequence[Tool] = ()  # client tools from configure
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TextDelta:
    """More reply text, to be spoken (sentences are cut downstream)."""

    text: str


BrainOutput = TextDelta | CallControl


class ToolRunner(Protocol):
    """Runs one of the session's tools and returns its output as text (errors included:
    ``{"error": "tool timed out"}``), so the brain can go on."""

    async def __call__(self, name: str, arguments: dict[str, Any]) -> str: ...


class Brain(Protocol):
    def respond(
        self, request: BrainRequest, tools: ToolRunner
    ) -> AsyncGenerator[BrainOutput, None]: ...
