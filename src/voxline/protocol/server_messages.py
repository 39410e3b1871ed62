"""Decoding what the server sends, for clients (docs/protocol.md: "Framing", "Server events",
"Errors and limits").

The framing of a connection shows in its first server message: a text message means raw
(events are text JSON, audio is bare binary), a binary one means tagged (0x01 audio,
0x02 transcript, 0x03 control). Decoding then follows that framing, because a bare PCM16
frame of raw framing may well begin with a byte that looks like a tag.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from voxline.protocol.digits import parse_decimal
from voxline.protocol.errors import CloseCode
from voxline.protocol.frames import TAG_AUDIO, TAG_CONTROL, TAG_TRANSCRIPT, Framing


@dataclass(frozen=True, slots=True)
class ServerEvent:
    """One server event: ``name`` is its ``event`` key, ``data`` the other keys."""

    name: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AgentAudio:
    """Agent PCM16 LE samples at the session's ``audio_out`` rate."""

    pcm: bytes


def framing_of(first_message: str | bytes) -> Framing:
    """The framing the server chose, read from its first message."""
    return Framing.RAW if isinstance(first_message, str) else Framing.TAGGED


def _event(body: str | bytes) -> ServerEvent | None:
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(value, dict):
        return None
    name = value.pop("event", None)
    return ServerEvent(name, value) if isinstance(name, str) and name else None


def decode(message: str | bytes, framing: Framing) -> ServerEvent | AgentAudio | None:
    """One server message as an event or agent audio; ``None`` if it is malformed.

    Text is always read as JSON, even on a tagged connection, where a strict client would
    close instead.
    """
    if isinstance(message, str):
        return _event(message)
    if framing is Framing.RAW:
        return AgentAudio(message) if message and len(message) % 2 == 0 else None
    if not message:
        return None
    tag = message[0]
    if tag == TAG_AUDIO:
        return AgentAudio(message[1:]) if len(message) % 2 == 1 else None
    if tag in (TAG_TRANSCRIPT, TAG_CONTROL):
        return _event(message[1:])
    return None


def audio_rate(audio_format: object) -> int | None:
    """The rate of an ``audio_in``/``audio_out`` value such as ``"pcm16@24000"``."""
    if not isinstance(audio_format, str):
        return None
    fmt, _, rate = audio_format.partition("@")
    return parse_decimal(rate, 1, 1_000_000) if fmt == "pcm16" else None


_CLOSE_MEANINGS: Final[dict[int, str]] = {
    CloseCode.NORMAL: "the session ended normally",
    CloseCode.GOING_AWAY: "the server is going away (shutting down or restarting)",
    CloseCode.PROTOCOL_ERROR: "WebSocket protocol error",
    1006: "the connection was lost without a close handshake",
    1008: "policy violation",
    CloseCode.MESSAGE_TOO_LARGE: "a message was too large",
    CloseCode.INTERNAL_ERROR: "internal server error",
    CloseCode.TRY_AGAIN_LATER: "the server is overloaded; try again later",
    CloseCode.BAD_REQUEST: "the session label, format, rate or framing is invalid",
    CloseCode.UNAUTHORIZED: "the key or token is missing, wrong, expired or revoked",
    CloseCode.FORBIDDEN: "the key lacks the omni:session scope, or the origin is not allowed",
    CloseCode.TOO_MANY_REQUESTS: "a rate, concurrency or daily limit was reached",
}


def close_meaning(code: int) -> str:
    """What a close code means to a client, in a few words."""
    meaning = _CLOSE_MEANINGS.get(code)
    if meaning is not None:
        return meaning
    return "application-defined close code" if 4000 <= code < 5000 else "unknown close code"
