"""Inbound demux and outbound framing of WebSocket messages (docs/protocol.md, "Framing").

Two framings exist in the wild. **raw**: binary messages are bare PCM16 LE audio and text
messages are JSON. **tagged**: every message is binary and its first byte says what it is
(0x01 audio, 0x02 transcript, 0x03 control JSON); strict tagged clients close on any text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

TAG_AUDIO: Final = 0x01
TAG_TRANSCRIPT: Final = 0x02
TAG_CONTROL: Final = 0x03

MAX_CONTROL_BYTES: Final = 16 * 1024
MAX_AUDIO_BYTES: Final = 64 * 1024
_OPEN_BRACE: Final = ord("{")


class Framing(StrEnum):
    RAW = "raw"
    TAGGED = "tagged"


@dataclass(frozen=True, slots=True)
class Control:
    """A JSON object from the client; ``text`` says whether it came as a text message."""

    message: dict[str, Any]
    text: bool


@dataclass(frozen=True, slots=True)
class Audio:
    """Caller PCM16 LE samples (tag byte already removed)."""

    pcm: bytes | memoryview


@dataclass(frozen=True, slots=True)
class Dropped:
    """A message that matched no rule; dropped and counted, never fatal."""

    reason: str


Inbound = Control | Audio | Dropped


class MessageTooLarge(Exception):
    """A message over its kind's limit; the connection closes with 1009."""

    def __init__(self, kind: str, size: int, limit: int) -> None:
        super().__init__(f"{kind} message of {size} bytes exceeds the {limit}-byte limit")
        self.kind = kind
        self.size = size
        self.limit = limit


def _json_object(data: str | bytes | memoryview) -> dict[str, Any] | None:
    try:
        value = json.loads(data if not isinstance(data, memoryview) else bytes(data))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    return value if isinstance(value, dict) else None


def demux(message: str | bytes) -> Inbound:
    """Classify one client message, in the order docs/protocol.md ("Framing") prescribes.

    Raises :class:`MessageTooLarge` for a control message over 16 KiB or any binary
    message over 64 KiB.
    """
    if isinstance(message, str):
        size = len(message.encode()) if len(message) * 4 > MAX_CONTROL_BYTES else len(message)
        if size > MAX_CONTROL_BYTES:
            raise MessageTooLarge("control", size, MAX_CONTROL_BYTES)
        obj = _json_object(message)
        return Control(obj, text=True) if obj is not None else Dropped("text_not_json_object")

    size = len(message)
    if size > MAX_AUDIO_BYTES:
        raise MessageTooLarge("binary", size, MAX_AUDIO_BYTES)
    if size == 0:
        return Dropped("empty_binary")
    view = memoryview(message)
    first = message[0]
    if first == TAG_CONTROL and size > 1 and message[1] == _OPEN_BRACE:
        obj = _json_object(view[1:])
        if obj is not None:
            if size - 1 > MAX_CONTROL_BYTES:
                raise MessageTooLarge("control", size - 1, MAX_CONTROL_BYTES)
            return Control(obj, text=False)
    if first == TAG_AUDIO and size % 2 == 1:
        return Audio(view[1:])
    if size % 2 == 0:
        return Audio(message)
    return Dropped("odd_length_binary")


def negotiate_framing(first: Inbound | None, override: Framing | None = None) -> Framing:
    """Outbound framing from the first client message (``None``: none came in time).

    A text JSON first message means raw; anything else, or nothing, means tagged.
    """
    if override is not None:
        return override
    if isinstance(first, Control) and first.text:
        return Framing.RAW
    return Framing.TAGGED


def _dump(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


def encode_event(event: dict[str, Any], framing: Framing) -> str | bytes:
    """An event as a text message (raw) or a binary message tagged 0x03, or 0x02 for
    transcripts (tagged)."""
    body = _dump(event)
    if framing is Framing.RAW:
        return body
    tag = TAG_TRANSCRIPT if event.get("event") == "transcript" else TAG_CONTROL
    return bytes((tag,)) + body.encode()


_AUDIO_TAG: Final = bytes((TAG_AUDIO,))


def encode_audio(pcm: bytes, framing: Framing) -> bytes:
    """Agent audio as a bare binary message (raw) or tagged 0x01."""
    return pcm if framing is Framing.RAW else _AUDIO_TAG + pcm
