"""An asyncio client for the realtime socket, on ``websockets``.

One background task reads the socket from the moment the connection opens, so that pings,
the server's close and ``end()`` are handled even while nobody iterates ``events()``; what
it reads waits in a queue for ``events()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from voxline.protocol import frames, server_messages
from voxline.protocol.client_frames import DTMF_DIGITS
from voxline.protocol.connect import KEY_SUBPROTOCOL_PREFIX, RATES, SUBPROTOCOL_MARKER
from voxline.protocol.frames import Framing
from voxline.protocol.server_messages import AgentAudio, ServerEvent

logger = logging.getLogger("voxline.client")

REALTIME_PATH: Final = "/v1/omni"
FRAME_MS: Final = 20
"""Caller audio goes out in frames this long, as a microphone's would."""
MAX_LAG_S: Final = 0.2
"""A real-time sender this far behind its clock (the caller paused) starts a new one."""
FramingName = Literal["raw", "tagged"]
_WS_SCHEMES: Final = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # RFC 7230 token characters


@dataclass(frozen=True, slots=True)
class Closed:
    """The last item of ``events()``: the close code and reason (1006 if none came)."""

    code: int
    reason: str


ClientEvent = ServerEvent | AgentAudio | Closed


def realtime_url(
    base_url: str,
    *,
    session_label: str | None = None,
    rate: int = 24000,
    framing: Framing | FramingName | None = None,
    api_key: str | None = None,
) -> str:
    """The socket URL of a server: ``http(s)://host`` becomes ``ws(s)://host/v1/omni?…``.

    A base path (behind a reverse proxy) is kept; ``framing`` forces the server's framing
    instead of letting it follow the first frame; ``api_key`` is for server-side clients
    only, since URLs end up in logs.
    """
    parts = urlsplit(base_url)
    scheme = _WS_SCHEMES.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
        raise ValueError(f"expected an http(s) or ws(s) URL, got {base_url!r}")
    if rate not in RATES:
        raise ValueError(f"rate must be one of {', '.join(map(str, RATES))}")
    path = parts.path.rstrip("/")
    if not path.endswith(REALTIME_PATH):
        path += REALTIME_PATH
    query = dict(parse_qsl(parts.query))
    query.update(format="pcm16", rate=str(rate))
    if session_label is not None:
        query["session_label"] = session_label
    if framing is not None:
        query["framing"] = Framing(framing).value
    if api_key is not None:
        query["api_key"] = api_key
    return urlunsplit((scheme, parts.netloc, path, urlencode(query), ""))


def realtime_subprotocols(key_or_token: str) -> list[str]:
    """The subprotocols to offer: the marker, then the credential (browsers cannot set
    headers, so the key travels as a subprotocol)."""
    if not _TOKEN.match(key_or_token):
        raise ValueError("the key has characters a subprotocol cannot carry; use api_key=")
    return [SUBPROTOCOL_MARKER, KEY_SUBPROTOCOL_PREFIX + key_or_token]


class OmniClient:
    """One realtime session. Open it with :meth:`connect`.

    ``framing`` is how this client frames what it sends; the server answers in kind.
    ``rate`` is the caller audio's sample rate, the socket URL's ``rate``.
    Sending after the connection closed raises ``websockets.exceptions.ConnectionClosed``.
    """

    def __init__(self, connection: ClientConnection, framing: Framing, rate: int = 24000) -> None:
        self._ws = connection
        self.framing = framing
        self.rate = rate
        self._frame_bytes = 2 * rate * FRAME_MS // 1000
        self._clock = 0.0  # when the audio sent in real time so far ends, on the loop's clock
        self._inbound: Framing | None = None
        self._queue: asyncio.Queue[ClientEvent] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    def connect(
        cls,
        url: str,
        key: str | None,
        *,
        framing: Framing | FramingName = Framing.TAGGED,
        configure: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> _Connect:
        """Open a session: ``await OmniClient.connect(…)`` or ``async with OmniClient.connect(…)``.

        ``key`` (a secret key or a browser token) is offered as a subprotocol; ``None`` when
        the URL carries ``api_key``. The first frame is always a ``configure`` (empty unless
        ``configure`` is given): the server holds ``hello`` until it comes, and it picks the
        framing, text JSON meaning raw. If the server refuses the session after the upgrade
        (a bad key, say), this still returns: ``events()`` yields its ``error`` and then
        ``Closed`` with the code. ``options`` go to ``websockets.asyncio.client.connect``.
        """
        return _Connect(
            functools.partial(cls._open, url, key, Framing(framing), configure or {}, options)
        )

    @classmethod
    async def _open(
        cls,
        url: str,
        key: str | None,
        framing: Framing,
        configure: Mapping[str, Any],
        options: dict[str, Any],
    ) -> OmniClient:
        offered = realtime_subprotocols(key) if key is not None else [SUBPROTOCOL_MARKER]
        connection = await ws_connect(
            url,
            subprotocols=[Subprotocol(entry) for entry in offered],
            # PCM hardly compresses: permessage-deflate would only cost CPU on both ends.
            **{"compression": None, **options},
        )
        client = cls(connection, framing, _url_rate(url))
        try:
            await client.configure(**configure)
        except ConnectionClosed:
            pass  # refused after the upgrade: events() says why
        except BaseException:
            await client.close()
            raise
        return client

    async def __aenter__(self) -> OmniClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol the server selected."""
        return self._ws.subprotocol

    @property
    def close_code(self) -> int | None:
        return self._ws.close_code

    @property
    def close_reason(self) -> str | None:
        return self._ws.close_reason

    async def configure(self, **fields: Any) -> None:
        """Send ``configure``; the server merges it into the session's settings and answers
        with ``configured`` and ``config_ack``."""
        message = {"type": "configure", **fields}
        message["type"] = "configure"  # a frame's kind, never a setting
        await self._send_control(message)

    async def send_audio(self, pcm16: bytes, *, realtime: bool = False) -> None:
        """Send caller audio of any length: PCM16 LE mono at the connection's rate, in
        20 ms frames (the server refuses a message over 64 KiB).

        The server takes audio at real time, give or take a 2 s burst (a client sending
        faster is closed with 4429 ``audio_too_fast``). A live source is paced by its
        microphone; for recorded audio pass ``realtime=True``: each frame then leaves when
        the audio sent before it has played, continuing across calls (after a pause of the
        caller's, from then on).
        """
        if len(pcm16) % 2:
            raise ValueError("PCM16 audio must have an even number of bytes")
        loop = asyncio.get_running_loop()
        step = self._frame_bytes
        for offset in range(0, len(pcm16), step):
            frame = pcm16[offset : offset + step]
            if realtime:
                now = loop.time()
                if now - self._clock > MAX_LAG_S:
                    self._clock = now
                elif self._clock > now:
                    await asyncio.sleep(self._clock - now)
                self._clock += len(frame) / (2 * self.rate)
            await self._ws.send(frames.encode_audio(frame, self.framing))

    async def dtmf(self, digits: str) -> None:
        if not digits or not set(digits.upper()) <= DTMF_DIGITS:
            raise ValueError("DTMF digits are each one of 0-9 * # A-D")
        await self._send_control({"type": "dtmf", "digits": digits})

    async def input_text(self, text: str) -> None:
        """A typed caller turn."""
        await self._send_control({"type": "input_text", "text": text})

    async def tool_result(self, call_id: str, output: Any, *, error: str | None = None) -> None:
        """Answer a ``tool_call``; ``output`` is a string or any JSON value."""
        message: dict[str, Any] = {"type": "tool_result", "call_id": call_id, "output": output}
        if error is not None:
            message["error"] = error
        await self._send_control(message)

    async def end(self) -> None:
        """End the session: send ``session_ending``, then wait for ``session_end`` and the
        server's close. Bound the wait with ``asyncio.timeout``; leaving the ``async with``
        block closes from this side."""
        with contextlib.suppress(ConnectionClosed):
            await self._send_control({"type": "session_ending"})
        await asyncio.shield(self._reader)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection at once (``end()`` is the polite way)."""
        await self._ws.close(code, reason)
        await asyncio.shield(self._reader)

    async def events(self) -> AsyncIterator[ClientEvent]:
        """Server events and agent audio as they arrive, ending with one :class:`Closed`.

        Iterate from one task at a time; after the end, iterating again yields the same
        ``Closed`` at once.
        """
        while True:
            item = await self._queue.get()
            if isinstance(item, Closed):
                self._queue.put_nowait(item)
                yield item
                return
            yield item

    async def _send_control(self, message: dict[str, Any]) -> None:
        # Client frames are framed like server events: text JSON (raw) or 0x03 + JSON.
        await self._ws.send(frames.encode_event(message, self.framing))

    async def _read(self) -> None:
        try:
            async for message in self._ws:
                if self._inbound is None:
                    self._inbound = server_messages.framing_of(message)
                item = server_messages.decode(message, self._inbound)
                if item is None:
                    logger.debug("dropped a malformed server message (%d long)", len(message))
                else:
                    self._queue.put_nowait(item)
        except ConnectionClosed:
            pass
        finally:
            self._queue.put_nowait(Closed(self._ws.close_code or 1006, self._ws.close_reason or ""))


def _url_rate(url: str) -> int:
    """The caller audio rate a socket URL asks for; the server's default when it names none."""
    rate = dict(parse_qsl(urlsplit(url).query)).get("rate", "")
    return int(rate) if rate.isdigit() and int(rate) in RATES else 24000


class _Connect:
    """What :meth:`OmniClient.connect` returns: awaitable, or an async context manager."""

    def __init__(self, open_client: Callable[[], Awaitable[OmniClient]]) -> None:
        self._open = open_client
        self._client: OmniClient | None = None

    def __await__(self) -> Generator[Any, None, OmniClient]:
        return self._open().__await__()

    async def __aenter__(self) -> OmniClient:
        self._client = await self._open()
        return self._client

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._client is not None:
            await self._client.close()


async def stream_pcm(
    client: OmniClient,
    pcm: bytes,
    rate: int,
    frame_ms: int = 20,
    *,
    start: float | None = None,
) -> None:
    """Send ``pcm`` in ``frame_ms`` frames, in real time, as a microphone would.

    Frame ``i`` goes out at ``start + i * frame_ms`` on the event loop's monotonic clock
    (``start`` defaults to now), so a late wake-up never delays the frames after it.
    """
    samples, remainder = divmod(rate * frame_ms, 1000)
    if remainder or samples <= 0:
        raise ValueError(f"{frame_ms} ms is not a whole number of samples at {rate} Hz")
    if len(pcm) % 2:
        raise ValueError("PCM16 audio must have an even number of bytes")
    loop = asyncio.get_running_loop()
    origin = loop.time() if start is None else start
    step = samples * 2
    for index, offset in enumerate(range(0, len(pcm), step)):
        delay = origin + index * frame_ms / 1000 - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        await client.send_audio(pcm[offset : offset + step])
