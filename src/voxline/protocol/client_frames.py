"""Validation of client control frames (docs/protocol.md, "Client frames"), keyed on ``type``.

``parse`` turns a JSON object into one typed frame, plus the warnings and errors the
client should hear about. A malformed frame is never fatal: it yields an ``error`` event
and the session goes on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Final
from urllib.parse import urlsplit

from voxline.protocol import events
from voxline.protocol.connect import names_stored_agent, valid_label
from voxline.protocol.digits import parse_decimal
from voxline.protocol.events import Event

DTMF_DIGITS: Final = frozenset("0123456789*#ABCD")
MAX_TOOL_OUTPUT_BYTES: Final = 6 * 1024
MAX_INPUT_TEXT_CHARS: Final = 4000
MAX_TOOLS: Final = 64
MAX_CONFIGURE_KEYS: Final = 64
"""Keys in one ``configure``, known or not: a frame with more is refused whole."""
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_RATES: Final = (8000, 16000, 24000)
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
_BAD_AGENT_ID: Final = "agent_id must be at most 256 characters, without control characters"


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    endpoint: str | None = None


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """A session's ``configure`` settings, merged frame by frame (unset: the default)."""

    persona: str | None = None
    greeting: str | None = None
    consent_line: str | None = None
    transfer_destination: str | None = None  # fills transfer_to_human's destination
    voice_id: str | None = None
    language: str | None = None
    kb_endpoint: str | None = None
    kb_token: str | None = None
    tools: tuple[Tool, ...] = ()
    audio_out: int | None = None
    # voxline's own turn settings
    endpointing_ms: int | None = None
    barge_in_min_ms: int | None = None
    barge_in_confidence: float | None = None
    vad_threshold: float | None = None
    metrics: bool = False

    def merge(self, frame: Configure) -> SessionConfig:
        """These settings with those ``frame`` sets."""
        return replace(self, **{key: getattr(frame.settings, key) for key in frame.keys})


@dataclass(frozen=True, slots=True)
class Configure:
    """A validated ``configure``: the known ``keys`` it sets, their values in ``settings``,
    the keys it got wrong (``rejected``) and the open bag of ``unknown`` ones; ``agent_id``
    when it names a stored agent, whose profile the session starts from."""

    settings: SessionConfig
    keys: tuple[str, ...]  # in the order sent
    unknown: tuple[str, ...] = ()
    rejected: tuple[str, ...] = ()
    agent_id: str | None = None

    @property
    def honored(self) -> list[str]:
        """The keys taken: the settings, and ``agent_id`` when it names an agent."""
        return [*self.keys, *(("agent_id",) if self.agent_id is not None else ())]

    @classmethod
    def of(cls, **settings: Any) -> Configure:
        """A frame setting ``settings`` (already valid)."""
        return cls(SessionConfig(**settings), tuple(settings))


@dataclass(frozen=True, slots=True)
class Dtmf:
    digits: str


@dataclass(frozen=True, slots=True)
class ToolResult:
    call_id: str
    output: str
    error: str | None = None


@dataclass(frozen=True, slots=True)
class InputText:
    text: str


@dataclass(frozen=True, slots=True)
class SessionEnding:
    reason: str = "session_ending"


ClientFrame = Configure | Dtmf | ToolResult | InputText | SessionEnding


@dataclass(slots=True)
class Parsed:
    frame: ClientFrame | None
    notices: list[Event] = field(default_factory=list)


class _Invalid(ValueError):
    pass


def _string(value: Any, name: str, *, max_len: int, allow_empty: bool = True) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"{name} must be a string")
    if len(value) > max_len:
        raise _Invalid(f"{name} must be at most {max_len} characters")
    if not allow_empty and not value.strip():
        raise _Invalid(f"{name} must not be empty")
    return value


def _http_url(value: Any, name: str) -> str:
    url = _string(value, name, max_len=2048)
    try:  # urlsplit raises on an unclosed "[" in the host, .port on a port out of range
        parts = urlsplit(url)
        parts.port  # noqa: B018
    except ValueError:
        raise _Invalid(f"{name} must be an http(s) URL") from None
    # urlsplit silently drops tabs and newlines, so they are checked on the text itself.
    if parts.scheme not in ("http", "https") or not parts.hostname or _CONTROL_CHARS.search(url):
        raise _Invalid(f"{name} must be an http(s) URL")
    return url


def _int_range(lo: int, hi: int) -> Callable[[Any, str], int]:
    def check(value: Any, name: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise _Invalid(f"{name} must be an integer from {lo} to {hi}")
        return value

    return check


def _float_range(lo: float, hi: float) -> Callable[[Any, str], float]:
    def check(value: Any, name: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
            raise _Invalid(f"{name} must be a number from {lo} to {hi}")
        return float(value)

    return check


def _boolean(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"{name} must be true or false")
    return value


def _audio_out(value: Any, name: str) -> int:
    """``"pcm16@16000"`` or ``16000``: the agent's audio rate for this session."""
    rate: Any = value
    if isinstance(value, str):
        fmt, _, rate_text = value.partition("@")
        rate = parse_decimal(rate_text, min(_RATES), max(_RATES))
        if fmt != "pcm16" or rate is None:
            raise _Invalid(f'{name} must look like "pcm16@24000"')
    if isinstance(rate, bool) or not isinstance(rate, int) or rate not in _RATES:
        raise _Invalid(f"{name} rate must be one of {', '.join(map(str, _RATES))}")
    return int(rate)


def _tools(value: Any, name: str) -> tuple[Tool, ...]:
    if not isinstance(value, list) or len(value) > MAX_TOOLS:
        raise _Invalid(f"{name} must be a list of at most {MAX_TOOLS} tools")
    tools: list[Tool] = []
    for index, item in enumerate(value):
        where = f"{name}[{index}]"
        if not isinstance(item, dict):
            raise _Invalid(f"{where} must be an object")
        tool_name = item.get("name")
        if not isinstance(tool_name, str) or not _TOOL_NAME.match(tool_name):
            raise _Invalid(f"{where}.name must be 1-64 letters, digits, _ or -")
        description = _string(item.get("description", ""), f"{where}.description", max_len=4000)
        parameters = item.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(parameters, dict):
            raise _Invalid(f"{where}.parameters must be a JSON Schema object")
        endpoint = item.get("endpoint")
        if endpoint is not None:
            endpoint = _http_url(endpoint, f"{where}.endpoint")
        tools.append(Tool(tool_name, description, parameters, endpoint))
    return tuple(tools)


def _text(max_len: int) -> Callable[[Any, str], str]:
    return lambda value, name: _string(value, name, max_len=max_len)


_CONFIGURE_KEYS: Final[dict[str, Callable[[Any, str], Any]]] = {
    "persona": _text(20_000),
    "greeting": _text(2000),
    "consent_line": _text(2000),
    "transfer_destination": _text(256),
    "voice_id": _text(256),
    "language": _text(32),
    "kb_endpoint": _http_url,
    "kb_token": _text(4096),
    "tools": _tools,
    "audio_out": _audio_out,
    # voxline's own turn settings
    "endpointing_ms": _int_range(100, 5000),
    "barge_in_min_ms": _int_range(0, 2000),
    "barge_in_confidence": _float_range(0.5, 1.0),
    "vad_threshold": _float_range(0.05, 0.95),
    "metrics": _boolean,
}


CONFIGURE_KEYS: Final = frozenset(_CONFIGURE_KEYS)


def check_setting(key: str, value: Any) -> Any:
    """``value`` for the ``configure`` key ``key``, checked as ``configure`` checks it;
    ``ValueError`` with ``configure``'s own message if it is not valid."""
    check = _CONFIGURE_KEYS.get(key)
    if check is None:
        raise _Invalid(f"{key} is not a configure setting")
    return check(value, key)


def _configure(message: dict[str, Any]) -> tuple[Configure | None, list[Event]]:
    if len(message.keys() - {"type", "event"}) > MAX_CONFIGURE_KEYS:
        refusal = f"a configure may set at most {MAX_CONFIGURE_KEYS} keys; none were applied"
        return None, [events.error("invalid_configure", refusal)]
    settings: dict[str, Any] = {}
    unknown: list[str] = []
    rejected: list[str] = []
    notices: list[Event] = []
    agent_id: str | None = None
    for key, value in message.items():
        if key in ("type", "event"):
            continue
        if key == "agent_id" and names_stored_agent(value):
            if valid_label(value):
                agent_id = value
            else:
                rejected.append(key)
                notices.append(events.error("invalid_configure", _BAD_AGENT_ID, param=key))
            continue
        check = _CONFIGURE_KEYS.get(key)
        if check is None:
            unknown.append(key)
            continue
        if value is None:
            continue
        try:
            settings[key] = check(value, key)
        except _Invalid as exc:
            rejected.append(key)
            notices.append(events.error("invalid_configure", str(exc), param=key))
    frame = Configure(
        SessionConfig(**settings), tuple(settings), tuple(unknown), tuple(rejected), agent_id
    )
    return frame, notices


def _dtmf(message: dict[str, Any]) -> Dtmf:
    raw = message.get("digits", message.get("digit"))
    if not isinstance(raw, str) or not 1 <= len(raw) <= 64:
        raise _Invalid("dtmf needs digit or digits: a string of 0-9 * # A-D")
    digits = raw.upper()
    if not set(digits) <= DTMF_DIGITS:
        raise _Invalid("dtmf digits must each be one of 0-9 * # A-D")
    return Dtmf(digits)


def truncate_utf8(text: str, limit: int) -> str:
    data = text.encode()
    return text if len(data) <= limit else data[:limit].decode(errors="ignore")


def _tool_result(message: dict[str, Any]) -> ToolResult:
    call_id = message.get("call_id")
    if not isinstance(call_id, str) or not call_id:
        raise _Invalid("tool_result needs call_id")
    output: Any = None
    for key in ("output", "result", "content"):
        if key in message:
            output = message[key]
            break
    error = message.get("error")
    if output is None and error is None:
        raise _Invalid("tool_result needs output, result or content (or error)")
    text = output if isinstance(output, str) else json.dumps(output, ensure_ascii=False)
    return ToolResult(
        call_id,
        truncate_utf8(text if output is not None else "", MAX_TOOL_OUTPUT_BYTES),
        None if error is None else truncate_utf8(str(error), 1024),
    )


def _input_text(message: dict[str, Any]) -> InputText:
    text = _string(
        message.get("text"), "input_text.text", max_len=MAX_INPUT_TEXT_CHARS, allow_empty=False
    )
    return InputText(text.strip())


_FRAMES: Final[dict[str, Callable[[dict[str, Any]], ClientFrame]]] = {
    "dtmf": _dtmf,
    "tool_result": _tool_result,
    "input_text": _input_text,
    "session_ending": lambda message: SessionEnding(),
}


def parse(message: dict[str, Any]) -> Parsed:
    """One client control message to a frame, with its notices (warnings, errors)."""
    notices: list[Event] = []
    kind = message.get("type")
    if kind is None and isinstance(message.get("event"), str):
        kind = message["event"]
        notices.append(
            events.warning(
                "client_used_event_key",
                'client frames are keyed on "type"; "event" is for server events',
            )
        )
    if not isinstance(kind, str):
        notices.append(events.error("invalid_frame", 'control frames need a string "type"'))
        return Parsed(None, notices)
    if kind == "configure":
        frame, problems = _configure(message)
        return Parsed(frame, notices + problems)
    builder = _FRAMES.get(kind)
    if builder is None:
        notices.append(events.error("unknown_type", f"unknown control frame type {kind[:64]!r}"))
        return Parsed(None, notices)
    try:
        return Parsed(builder(message), notices)
    except _Invalid as exc:
        notices.append(events.error(f"invalid_{kind}", str(exc)))
        return Parsed(None, notices)
