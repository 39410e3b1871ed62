"""FreeSWITCH's Event Socket protocol, sans I/O: bytes in, messages out.

Every message is a block of ``Name: value`` header lines ended by an empty line, followed by
``Content-Length`` bytes of body when that header is present. The ``Content-Type`` header
says what it is: ``auth/request`` (send ``auth``), ``command/reply`` (``Reply-Text: +OK …``
or ``-ERR …``), ``api/response`` (the body is the command's output), ``text/event-plain``
(the body is the event's own header block, values URL-encoded, and maybe a body of its own)
and ``text/disconnect-notice``. Commands are a line ended by an empty line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final
from urllib.parse import unquote

from voxline.protocol.digits import parse_decimal

MAX_HEADER_BYTES: Final = 64 * 1024
MAX_BODY_BYTES: Final = 4 * 1024 * 1024


class EslProtocolError(ValueError):
    """The peer sent something that is not Event Socket framing."""


@dataclass(frozen=True, slots=True)
class EslMessage:
    headers: dict[str, str]
    body: bytes = b""

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")

    @property
    def reply_text(self) -> str:
        return self.headers.get("Reply-Text", "")


@dataclass(frozen=True, slots=True)
class EslEvent:
    """An event from a ``text/event-plain`` body: its headers decoded, and its own body."""

    headers: dict[str, str]
    body: str = ""

    @property
    def name(self) -> str:
        return self.headers.get("Event-Name", "")

    @property
    def unique_id(self) -> str | None:
        return self.headers.get("Unique-ID")


def _header_lines(block: bytes, *, decode_values: bool) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in block.decode("utf-8", "replace").split("\n"):
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise EslProtocolError(f"not a header line: {line[:80]!r}")
        value = value.strip()
        headers[name.strip()] = unquote(value) if decode_values else value
    return headers


@dataclass(slots=True)
class EslParser:
    """Incremental parser: ``feed`` whatever arrived, get every message it completed."""

    _buffer: bytearray = field(default_factory=bytearray)
    _headers: dict[str, str] | None = None  # of a message waiting for its body
    _length: int = 0

    def feed(self, data: bytes) -> list[EslMessage]:
        self._buffer += data
        messages: list[EslMessage] = []
        while (message := self._next()) is not None:
            messages.append(message)
        return messages

    def _next(self) -> EslMessage | None:
        buffer = self._buffer
        if self._headers is None:
            while buffer.startswith(b"\n"):  # stray blank lines between messages
                del buffer[:1]
            end = buffer.find(b"\n\n")
            if end < 0:
                if len(buffer) > MAX_HEADER_BYTES:
                    raise EslProtocolError("header block too long")
                return None
            headers = _header_lines(bytes(buffer[:end]), decode_values=False)
            del buffer[: end + 2]
            length_text = headers.get("Content-Length", "0")
            length = parse_decimal(length_text, 0, MAX_BODY_BYTES)
            if length is None:
                raise EslProtocolError(f"bad Content-Length {length_text[:20]!r}")
            self._headers, self._length = headers, length
        if len(buffer) < self._length:
            return None
        body = bytes(buffer[: self._length])
        del buffer[: self._length]
        message = EslMessage(self._headers, body)
        self._headers, self._length = None, 0
        return message


def parse_event_plain(body: bytes) -> EslEvent:
    """The event inside a ``text/event-plain`` message's body."""
    head, sep, rest = body.partition(b"\n\n")
    headers = _header_lines(head, decode_values=True)
    text = ""
    length = parse_decimal(headers.get("Content-Length", ""), 0, MAX_BODY_BYTES)
    if sep and length is not None:
        text = rest[:length].decode("utf-8", "replace")
    return EslEvent(headers, text)


def command(line: str) -> bytes:
    """One command (``auth …``, ``event plain …``, ``api …``) as sent on the wire."""
    if "\n" in line or "\r" in line:
        raise ValueError("an Event Socket command is a single line")
    return f"{line}\n\n".encode()
