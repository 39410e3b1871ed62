"""FreeSWITCH, simulated on the wire: a ``mod_audio_stream`` channel, and an Event Socket
server (``mod_event_socket``, inbound mode).

The audio stream is what ``uuid_audio_stream <uuid> start <url> mono 16k <metadata>`` makes:
a WebSocket client that sends the metadata as its first text message, then the caller as
binary L16 frames (16 kHz mono, 20 ms), and plays the binary frames it gets. The Event
Socket speaks the real protocol: ``auth/request`` on connect, ``command/reply`` to ``auth``
and ``event plain …``, ``api/response`` with ``Content-Length`` to ``api …``, events as
``text/event-plain`` (URL-encoded header values), ``text/disconnect-notice`` on the way out.
``uuid_kill`` hangs the channel up: a ``CHANNEL_HANGUP`` event follows.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import quote

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.support.phone import Pcm, RealTimeCaller

RATE = 16000
PASSWORD = "ClueCon"
T = TypeVar("T")


def esl_message(headers: dict[str, str], body: bytes = b"") -> bytes:
    if body:
        headers = {"Content-Length": str(len(body)), **headers}
    head = "".join(f"{name}: {value}\n" for name, value in headers.items())
    return f"{head}\n".encode() + body


def event_plain(headers: dict[str, str]) -> bytes:
    """An event as ``text/event-plain``: its own header block, values URL-encoded."""
    body = "".join(f"{name}: {quote(value)}\n" for name, value in headers.items()) + "\n"
    return esl_message({"Content-Type": "text/event-plain"}, body.encode())


class FakeEventSocket:
    """An Event Socket server on a loopback port, recording the commands it gets."""

    def __init__(self, password: str = PASSWORD) -> None:
        self.password = password
        self.commands: list[str] = []  # every command line, auth included
        self.api_commands: list[str] = []
        self.api_times: list[float] = []  # time.monotonic() of each, as it arrived
        self.logins = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        await self.drop_connections()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def drop_connections(self) -> None:
        """FreeSWITCH going away: a disconnect notice, then the socket closes."""
        for writer in list(self._writers):
            notice = b"Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"
            writer.write(esl_message({"Content-Type": "text/disconnect-notice"}, notice))
            writer.close()
        self._writers.clear()

    async def event(self, headers: dict[str, str]) -> None:
        for writer in list(self._writers):
            writer.write(event_plain(headers))
            await writer.drain()

    async def dtmf(self, channel: str, digit: str) -> None:
        await self.event(
            {
                "Event-Name": "DTMF",
                "Core-UUID": "fs-core",
                "Unique-ID": channel,
                "Channel-Name": f"sofia/internal/1000@127.0.0.1 ({channel[:8]})",
                "DTMF-Digit": digit,
                "DTMF-Duration": "2000",
                "DTMF-Source": "RTP",
            }
        )

    async def hangup(self, channel: str, cause: str = "NORMAL_CLEARING") -> None:
        await self.event(
            {"Event-Name": "CHANNEL_HANGUP", "Unique-ID": channel, "Hangup-Cause": cause}
        )

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(esl_message({"Content-Type": "auth/request"}))
        authed = False
        try:
            while True:
                block = await reader.readuntil(b"\n\n")
                line = block.decode().strip()
                self.commands.append(line)
                verb, _, rest = line.partition(" ")
                if verb == "auth":
                    if rest != self.password:
                        writer.write(reply("-ERR invalid"))
                        return
                    authed = True
                    self.logins += 1
                    self._writers.add(writer)
                    writer.write(reply("+OK accepted"))
                elif not authed:
                    writer.write(reply("-ERR command not found"))
                elif verb == "event":
                    writer.write(reply(f"+OK event listener enabled {rest.split()[0]}"))
                elif verb == "api":
                    self.api_commands.append(rest)
                    self.api_times.append(time.monotonic())
                    name, _, args = rest.partition(" ")
                    output = b"+OK\n" if name.startswith("uuid_") else b"-ERR no such command\n"
                    writer.write(esl_message({"Content-Type": "api/response"}, output))
                    await writer.drain()
                    if name == "uuid_kill":
                        await self.hangup(args.split()[0])
                else:
                    writer.write(reply("-ERR command not found"))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


def reply(text: str) -> bytes:
    return esl_message({"Content-Type": "command/reply", "Reply-Text": text})


class ThreadedEventSocket:
    """A :class:`FakeEventSocket` on its own thread and loop, outliving tests' loops."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.server = FakeEventSocket()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def run(self, make: Callable[[], Awaitable[T]]) -> T:
        async def call() -> T:
            return await make()

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(10)

    async def arun(self, make: Callable[[], Awaitable[T]]) -> T:
        async def call() -> T:
            return await make()

        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(call(), self.loop))

    @contextmanager
    def running(self) -> Iterator[FakeEventSocket]:
        self._thread.start()
        self.run(self.server.start)
        try:
            yield self.server
        finally:
            self.run(self.server.stop)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)


class AudioStreamChannel(RealTimeCaller):
    """One channel's ``mod_audio_stream`` WebSocket."""

    rate = RATE

    def __init__(self, ws: ClientConnection, channel: str) -> None:
        super().__init__()
        self.ws = ws
        self.channel = channel
        self.close_code: int | None = None
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(
        cls,
        url: str,
        channel: str,
        metadata: dict[str, Any] | None,
        *,
        channel_in_url: bool = False,
    ) -> AudioStreamChannel:
        """The stream of ``channel``, named in its metadata, or with ``channel_in_url`` in the
        URL's query (``&uuid=``), as the example dialplan names it; then the metadata is sent
        as it is, if there is any (None: ``uuid_audio_stream`` was given none)."""
        if channel_in_url:
            url += f"&uuid={channel}"
        else:
            metadata = {"uuid": channel, **(metadata or {})}
        ws = await connect(url)
        stream = cls(ws, channel)
        if metadata is not None:
            with contextlib.suppress(ConnectionClosed):  # a refused stream may be closed already
                await ws.send(json.dumps(metadata))
        return stream

    async def send_frame(self, pcm: Pcm) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self.ws.send(pcm.astype("<i2").tobytes())

    async def closed(self, timeout: float = 5.0) -> None:
        await asyncio.wait_for(asyncio.shield(self._reader), timeout)

    async def hang_up(self) -> None:
        await self.ws.close()
        await self.closed()

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                assert isinstance(message, bytes), "mod_audio_stream plays binary L16 only"
                pcm = np.frombuffer(message, dtype="<i2").astype(np.int16)
                self.heard.audio.append((time.monotonic(), pcm))
        except ConnectionClosed:
            pass
        self.ended = True
        self.close_code = self.ws.close_code
