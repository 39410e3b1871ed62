"""An asyncio client of FreeSWITCH's Event Socket (inbound mode, ``mod_event_socket``).

One connection per server process, kept open: it authenticates, subscribes to the events
the phone transport needs, routes them by channel (``Unique-ID``) to whoever listens for that
channel, and runs ``api`` commands, whose replies come back in the order they were sent. When
the connection drops it reconnects with a growing delay; commands meanwhile wait a little for
it, then fail. The framing is :mod:`voxline.telephony.esl_protocol`'s, with no I/O of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Sequence

from voxline.telephony.esl_protocol import (
    EslEvent,
    EslMessage,
    EslParser,
    EslProtocolError,
    command,
    parse_event_plain,
)

log = logging.getLogger(__name__)

RECONNECT_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0)
READ_BYTES = 64 * 1024


class EslError(RuntimeError):
    """A command failed: no connection, no reply in time, or FreeSWITCH answered ``-ERR``."""


class EventSocket:
    def __init__(
        self,
        host: str,
        port: int,
        password: str,
        *,
        events: Sequence[str] = ("DTMF", "CHANNEL_HANGUP"),
        timeout: float = 5.0,
        reconnect_delays: Sequence[float] = RECONNECT_DELAYS,
    ) -> None:
        self.host, self.port = host, port
        self._password = password
        self._events = " ".join(events)
        self._timeout = timeout
        self._delays = reconnect_delays
        self.connected = asyncio.Event()
        self.connections = 0  # successful logins so far
        self._writer: asyncio.StreamWriter | None = None
        self._pending: deque[asyncio.Future[EslMessage]] = deque()
        self._listeners: dict[str, asyncio.Queue[EslEvent]] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._maintain(), name="esl")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def listen(self, unique_id: str) -> asyncio.Queue[EslEvent]:
        """The events of one channel, from now until :meth:`unlisten`."""
        queue: asyncio.Queue[EslEvent] = asyncio.Queue()
        self._listeners[unique_id] = queue
        return queue

    def unlisten(self, unique_id: str) -> None:
        self._listeners.pop(unique_id, None)

    async def api(self, line: str) -> str:
        """Run ``api <line>`` and return its output; ``EslError`` on ``-ERR`` or no answer."""
        try:
            async with asyncio.timeout(self._timeout):
                await self.connected.wait()
                reply = await self._request(f"api {line}")
        except TimeoutError:
            raise EslError(f"no answer from FreeSWITCH to {line.split()[0]}") from None
        text = reply.body.decode("utf-8", "replace").strip()
        if text.startswith("-ERR"):
            raise EslError(text)
        return text

    # ---- the connection ---------------------------------------------------------------

    def _request(self, line: str) -> asyncio.Future[EslMessage]:
        if self._writer is None:
            raise EslError("not connected to FreeSWITCH")
        future: asyncio.Future[EslMessage] = asyncio.get_running_loop().create_future()
        self._pending.append(future)
        self._writer.write(command(line))
        return future

    async def _maintain(self) -> None:
        failures = 0
        while True:
            try:
                await self._session()
                failures = 0
            except (OSError, EslError, EslProtocolError) as exc:
                log.warning("event socket %s:%s: %s", self.host, self.port, exc)
            finally:
                self._disconnected()
            delay = self._delays[min(failures, len(self._delays) - 1)]
            failures += 1
            await asyncio.sleep(delay)

    async def _session(self) -> None:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), self._timeout
        )
        parser = EslParser()
        try:
            greeting = await asyncio.wait_for(self._first(reader, parser), self._timeout)
            if greeting.content_type != "auth/request":
                raise EslError(f"expected auth/request, got {greeting.content_type!r}")
            self._writer = writer
            reading = asyncio.ensure_future(self._read(reader, parser))
            try:
                await self._expect_ok(self._request(f"auth {self._password}"), "auth")
                await self._expect_ok(self._request(f"event plain {self._events}"), "event")
                self.connections += 1
                self.connected.set()
                await reading
            finally:
                reading.cancel()
        finally:
            writer.close()

    async def _first(self, reader: asyncio.StreamReader, parser: EslParser) -> EslMessage:
        while True:
            data = await reader.read(READ_BYTES)
            if not data:
                raise EslError("connection closed before auth/request")
            messages = parser.feed(data)
            if messages:
                return messages[0]

    async def _expect_ok(self, reply: asyncio.Future[EslMessage], what: str) -> None:
        message = await asyncio.wait_for(reply, self._timeout)
        if not message.reply_text.startswith("+OK"):
            raise EslError(f"{what} refused: {message.reply_text or message.content_type}")

    async def _read(self, reader: asyncio.StreamReader, parser: EslParser) -> None:
        try:
            while data := await reader.read(READ_BYTES):
                for message in parser.feed(data):
                    if not self._dispatch(message):
                        return
        finally:
            self._disconnected()

    def _dispatch(self, message: EslMessage) -> bool:
        """Route one message; False when FreeSWITCH says it is disconnecting."""
        kind = message.content_type
        if kind in ("command/reply", "api/response"):
            if self._pending:
                future = self._pending.popleft()
                if not future.done():
                    future.set_result(message)
        elif kind == "text/event-plain":
            event = parse_event_plain(message.body)
            queue = self._listeners.get(event.unique_id or "")
            if queue is not None:
                queue.put_nowait(event)
        elif kind == "text/disconnect-notice":
            return False
        return True

    def _disconnected(self) -> None:
        self.connected.clear()
        self._writer = None
        while self._pending:
            future = self._pending.popleft()
            if not future.done():
                future.set_exception(EslError("connection to FreeSWITCH lost"))
