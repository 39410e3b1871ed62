"""Twilio Media Streams messages, sans I/O: JSON text in, typed messages out, and back.

From Twilio: ``connected``, ``start`` (``streamSid``, ``callSid``, ``customParameters``,
``mediaFormat``), ``media`` (base64 G.711 µ-law at 8 kHz, 20 ms a message), ``dtmf``,
``mark`` (a mark of ours, echoed once the audio before it has played, or when a ``clear``
dropped it) and ``stop``. To Twilio: ``media``, ``mark`` and ``clear``.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Connected:
    pass


@dataclass(frozen=True, slots=True)
class Start:
    stream_sid: str
    call_sid: str
    parameters: dict[str, str] = field(default_factory=dict)
    encoding: str = "audio/x-mulaw"
    sample_rate: int = 8000


@dataclass(frozen=True, slots=True)
class Media:
    payload: bytes  # µ-law, one byte a sample


@dataclass(frozen=True, slots=True)
class Dtmf:
    digit: str


@dataclass(frozen=True, slots=True)
class Mark:
    name: str


@dataclass(frozen=True, slots=True)
class Stop:
    pass


TwilioMessage = Connected | Start | Media | Dtmf | Mark | Stop


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def parse(text: str) -> TwilioMessage | None:
    """One message from Twilio; None for anything malformed or of another kind."""
    try:
        message = json.loads(text)
    except ValueError:
        return None
    if not isinstance(message, dict):
        return None
    match message.get("event"):
        case "connected":
            return Connected()
        case "start":
            start = _object(message.get("start"))
            media_format = _object(start.get("mediaFormat"))
            parameters = _object(start.get("customParameters"))
            stream_sid = start.get("streamSid", message.get("streamSid"))
            call_sid = start.get("callSid")
            if not isinstance(stream_sid, str) or not isinstance(call_sid, str):
                return None
            rate = media_format.get("sampleRate", 8000)
            return Start(
                stream_sid,
                call_sid,
                {str(k): str(v) for k, v in parameters.items()},
                str(media_format.get("encoding", "audio/x-mulaw")),
                rate if isinstance(rate, int) else 0,
            )
        case "media":
            media = _object(message.get("media"))
            if media.get("track", "inbound") != "inbound":
                return None
            try:
                return Media(base64.b64decode(media.get("payload", ""), validate=True))
            except (binascii.Error, TypeError):
                return None
        case "dtmf":
            digit = _object(message.get("dtmf")).get("digit")
            return Dtmf(digit) if isinstance(digit, str) and len(digit) == 1 else None
        case "mark":
            name = _object(message.get("mark")).get("name")
            return Mark(name) if isinstance(name, str) else None
        case "stop":
            return Stop()
    return None


def media(stream_sid: str, ulaw: bytes) -> str:
    payload = base64.b64encode(ulaw).decode("ascii")
    return json.dumps({"event": "media", "streamSid": stream_sid, "media": {"payload": payload}})


def mark(stream_sid: str, name: str) -> str:
    return json.dumps({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})


def clear(stream_sid: str) -> str:
    return json.dumps({"event": "clear", "streamSid": stream_sid})
