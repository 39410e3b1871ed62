"""Constructors for every server event (docs/protocol.md, "Server events"), keyed on ``event``."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any, Final, Literal

Event = dict[str, Any]

PROTOCOL_VERSION: Final = 2
MAX_TRANSCRIPT_CHARS: Final = 4000
MAX_INTERRUPTED_REPLY_CHARS: Final = 500

_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def audio_format(rate: int) -> str:
    return f"pcm16@{rate}"


def clean_text(text: str, limit: int) -> str:
    """Text safe for every client: no control characters, at most ``limit`` characters."""
    return _CONTROL_CHARS.sub(" ", text)[:limit]


def hello(*, call_id: str, in_rate: int, out_rate: int, server: str) -> Event:
    return {
        "event": "hello",
        "protocol": PROTOCOL_VERSION,
        "call_id": call_id,
        "audio_in": audio_format(in_rate),
        "audio_out": audio_format(out_rate),
        "server": server,
    }


def session_started(*, call_id: str, label: str | None, in_rate: int, out_rate: int) -> Event:
    return {
        "event": "session_started",
        "call_id": call_id,
        "session_label": label,
        "agent_id": label,
        "audio_in": audio_format(in_rate),
        "audio_out": audio_format(out_rate),
    }


def configured(
    *,
    call_id: str,
    voice_id: str | None,
    language: str | None,
    greeting: bool,
    kb: bool,
    tools: int,
    endpointing_ms: int,
    out_rate: int,
) -> Event:
    return {
        "event": "configured",
        "call_id": call_id,
        "voice_id": voice_id,
        "language": language,
        "greeting": greeting,
        "kb": kb,
        "tools": tools,
        "endpointing_ms": endpointing_ms,
        "audio_out": audio_format(out_rate),
    }


def config_ack(*, voice_id: str | None, honored: Iterable[str], ignored: Iterable[str]) -> Event:
    return {
        "event": "config_ack",
        "voice_id": voice_id,
        "honored": sorted(honored),
        "ignored": sorted(ignored),
    }


def transcript(role: Literal["user", "assistant"], text: str, *, final: bool) -> Event:
    """Exactly the four keys strict clients accept; ``text`` is cumulative for the turn."""
    return {
        "event": "transcript",
        "role": role,
        "text": clean_text(text, MAX_TRANSCRIPT_CHARS),
        "final": final,
    }


def turn_begin(*, call_id: str, turn: int, since_caller_end_ms: int | None) -> Event:
    return {
        "event": "turn_begin",
        "call_id": call_id,
        "turn": turn,
        "since_caller_end_ms": since_caller_end_ms,
    }


def turn(role: Literal["assistant"] = "assistant") -> Event:
    return {"event": "turn", "role": role}


def flush(reason: str = "barge_in") -> Event:
    return {"event": "flush", "reason": reason}


def barge_in() -> Event:
    return {"event": "barge_in"}


def assistant_interrupted(*, call_id: str, reply: str) -> Event:
    return {
        "event": "assistant_interrupted",
        "call_id": call_id,
        "reply": clean_text(reply, MAX_INTERRUPTED_REPLY_CHARS),
    }


def dtmf(digit: str) -> Event:
    return {"event": "dtmf", "digit": digit}


def tool_call(*, call_id: str, name: str, arguments: dict[str, Any]) -> Event:
    return {"event": "tool_call", "call_id": call_id, "name": name, "arguments": arguments}


def session_ending(reason: str) -> Event:
    return {"event": "session_ending", "reason": reason}


def session_end(*, call_id: str, reason: str) -> Event:
    return {"event": "session_end", "call_id": call_id, "reason": reason}


def error(code: str, message: str, *, retry_after: float | None = None, **extra: Any) -> Event:
    event: Event = {"event": "error", "code": code, "message": message, **extra}
    if retry_after is not None:
        event["retry_after"] = max(1, math.ceil(retry_after))
    return event


def warning(code: str, message: str) -> Event:
    return {"event": "warning", "code": code, "message": message}


def metrics(**timings: Any) -> Event:
    return {"event": "metrics", **timings}
