"""uvicorn's connection protocols, with bounds on clients that are slow by fault or on purpose.

**Requests.** uvicorn closes a keep-alive connection idle between requests, but not one
that never finishes a request: a connection that sends nothing, or trickles one header line
or body byte at a time (slowloris), is kept for good and holds one of the process's open
files. :class:`HttpProtocol` closes a connection whose request head is not complete
``REQUEST_HEAD_TIMEOUT`` seconds after it opened or after its previous response, or whose
body arrives slower than ``MIN_BODY_RATE`` on average once ``REQUEST_HEAD_TIMEOUT`` has
passed since its head.

**Clients that stop reading.** A client that stops reading (a frozen tab, a bridge stuck on
something else, an attacker) leaves the server's audio in its socket. uvicorn stops
``send`` once its buffer is full, so memory stays bounded, but the send then waits for good:
the call keeps its seat and its session task, and uvicorn's own close waits for the buffer to
drain, which it never does. :class:`WebSocketProtocol` gives up on such a client after
``SEND_TIMEOUT`` seconds of a send that cannot proceed: the connection is reset, its
buffered audio discarded, and the application sees close code 1008, reason
``client_not_reading``. The kernel would otherwise grow each connection's send buffer to
several MiB, over a minute of a call's audio, before a send ever waits;
``SEND_BUFFER_BYTES`` keeps it to seconds. The timer exists only while a send waits: a
client that reads costs nothing more.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Final

import h11
from uvicorn._types import ASGISendEvent
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from voxline.protocol.errors import CLIENT_NOT_READING, CloseCode

REQUEST_HEAD_TIMEOUT: Final = 10.0
MIN_BODY_RATE: Final = 1024
"""Bytes a second: a phone on a bad line sends a hundred times that."""
SEND_TIMEOUT: Final = 10.0
SEND_BUFFER_BYTES: Final = 128 * 1024
"""Linux doubles it: 256 KiB in flight, five seconds of 24 kHz audio, and still 1 MB/s to a
client 250 ms away."""


class HttpProtocol(H11Protocol):
    _timer: asyncio.TimerHandle | None = None
    _body_started = 0.0
    _body_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()

    def data_received(self, data: bytes) -> None:
        waiting_for = self.conn.their_state
        super().data_received(data)
        if self.transport.get_protocol() is not self:
            # Upgraded to a WebSocket: h11 never sees the upgrade request's end, so its body
            # would seem to stall; the connection's bounds are the WebSocket protocol's now.
            self._cancel_timer()
            return
        state = self.conn.their_state
        if waiting_for is h11.IDLE and state is not h11.IDLE:  # a whole head has arrived
            self._cancel_timer()
            if state is h11.SEND_BODY:
                self._body_started, self._body_bytes = self.loop.time(), len(data)
                self._timer = self.loop.call_at(self._body_deadline(), self._body_checked)
        elif state is h11.SEND_BODY:
            self._body_bytes += len(data)
        elif waiting_for is h11.SEND_BODY:  # the body is complete
            self._cancel_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        super().connection_lost(exc)

    def _await_head(self) -> None:
        self._cancel_timer()
        self._timer = self.loop.call_later(REQUEST_HEAD_TIMEOUT, self._head_timed_out)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _head_timed_out(self) -> None:
        self._timer = None
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self.transport.close()

    def _body_deadline(self) -> float:
        """When the body read so far is due, at ``MIN_BODY_RATE`` after a head start."""
        return self._body_started + REQUEST_HEAD_TIMEOUT + self._body_bytes / MIN_BODY_RATE

    def _body_checked(self) -> None:
        self._timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.SEND_BODY:
            return
        if self.loop.time() >= self._body_deadline():
            self.transport.close()
        else:
            self._timer = self.loop.call_at(self._body_deadline(), self._body_checked)


class WebSocketProtocol(WebSocketsSansIOProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
        super().connection_made(transport)

    async def send(self, message: ASGISendEvent) -> None:
        if not self.writable.is_set() and not self.disconnected:
            try:
                await asyncio.wait_for(self.writable.wait(), SEND_TIMEOUT)
            except TimeoutError:
                self._abandon()
                raise ClientDisconnected from None
        await super().send(message)

    def _abandon(self) -> None:
        """Reset the connection, telling the application why before uvicorn's own 1005."""
        self.queue.put_nowait(
            {
                "type": "websocket.disconnect",
                "code": CloseCode.POLICY_VIOLATION,
                "reason": CLIENT_NOT_READING,
            }
        )
        self.transport.abort()
