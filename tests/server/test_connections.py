"""Slow clients: connections that never finish a request head are closed, a client that
stops reading is cut off with 1008 ``client_not_reading``; the others are served meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator

import numpy as np
import numpy.typing as npt
import pytest
import uvicorn
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.support.caller import FRAME_MS, Caller
from tests.support.server import RunningServer
from voxline.server import connections
from voxline.server.connections import SEND_TIMEOUT, HttpProtocol, WebSocketProtocol

RATE = 24000


#: The bound on requests, shortened for these tests (the server's is REQUEST_HEAD_TIMEOUT).
HEAD_TIMEOUT = 1.0

#: What a slow client sends first, then one more line or byte every tenth of the bound.
SLOW_REQUESTS = {
    "idle": (b"", b""),
    "head": (b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n", b"X-Slow: 1\r\n"),
    "body": (
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4000\r\n\r\n",
        b"{",
    ),
}


async def _closed_after(port: int, slow: str) -> float:
    """How long the server keeps a connection that sends nothing, or trickles a request."""
    first, then = SLOW_REQUESTS[slow]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    opened = time.monotonic()
    writer.write(first)
    while not reader.at_eof() and time.monotonic() - opened < 5 * HEAD_TIMEOUT:
        writer.write(then)
        with contextlib.suppress(TimeoutError):  # no answer, just the end
            assert await asyncio.wait_for(reader.read(1024), HEAD_TIMEOUT / 10) == b""
    writer.close()
    return time.monotonic() - opened


async def _answered(port: int, pause: float) -> bytes:
    """The status line of a request whose head and body each arrive in two parts."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for part in (
        b"POST /echo HTTP/1.1\r\n",
        b"Host: localhost\r\nContent-Length: 4\r\n\r\nab",
        b"cd",
    ):
        writer.write(part)
        await asyncio.sleep(pause)
    status = await reader.readline()
    writer.close()
    return status


async def _echo_length(scope: Scope, receive: Receive, send: Send) -> None:
    """An app that reads the whole body before it answers."""
    assert scope["type"] == "http"
    length = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        length += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    await PlainTextResponse(str(length))(scope, receive, send)


@pytest.fixture
async def slow_client_server(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[int]:
    """uvicorn with the server's HTTP protocol, in this process, on a free port."""
    monkeypatch.setattr(connections, "REQUEST_HEAD_TIMEOUT", HEAD_TIMEOUT)
    config = uvicorn.Config(
        _echo_length, host="127.0.0.1", port=0, http=HttpProtocol, lifespan="off", log_level="error"
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn has no event for it
        await asyncio.sleep(0.01)
    yield server.servers[0].sockets[0].getsockname()[1]
    server.should_exit = True
    await serving


async def test_connections_that_never_finish_a_request_are_closed(
    slow_client_server: int,
) -> None:
    port = slow_client_server
    kept = await asyncio.gather(*(_closed_after(port, slow) for slow in list(SLOW_REQUESTS) * 10))
    assert all(HEAD_TIMEOUT - 0.1 < seconds < 2 * HEAD_TIMEOUT for seconds in kept), kept
    # A request that arrives in pieces within the bounds is answered.
    assert await _answered(port, pause=HEAD_TIMEOUT / 4) == b"HTTP/1.1 200 OK\r\n"


async def _echo_messages(scope: Scope, receive: Receive, send: Send) -> None:
    """A WebSocket app that sends back every text message."""
    assert scope["type"] == "websocket"
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while (message := await receive())["type"] == "websocket.receive":
        await send({"type": "websocket.send", "text": message["text"]})


async def test_a_websocket_outlives_the_request_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    """A call lasts past the bounds on its upgrade request: they are for HTTP requests."""
    monkeypatch.setattr(connections, "REQUEST_HEAD_TIMEOUT", HEAD_TIMEOUT)
    config = uvicorn.Config(
        _echo_messages,
        host="127.0.0.1",
        port=0,
        http=HttpProtocol,
        ws=WebSocketProtocol,
        lifespan="off",
        log_level="error",
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn has no event for it
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        async with connect(f"ws://127.0.0.1:{port}/") as ws:
            started = time.monotonic()
            while time.monotonic() - started < 3 * HEAD_TIMEOUT:
                await ws.send("ping")
                assert await asyncio.wait_for(ws.recv(), HEAD_TIMEOUT) == "ping"
                await asyncio.sleep(HEAD_TIMEOUT / 10)
    finally:
        server.should_exit = True
        await serving


@pytest.mark.e2e
async def test_a_client_that_stops_reading_is_cut_off_and_recorded(
    echo_server: RunningServer, question: npt.NDArray[np.int16]
) -> None:
    key = echo_server.create_key()
    # A small receive buffer and a one-message queue: once this client stops reading, the
    # server's sends back up within seconds rather than after megabytes.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", echo_server.port))
    ws = await connect(
        echo_server.ws, sock=sock, subprotocols=["pyai.v1", f"pyai-key.{key}"], max_queue=1
    )
    await ws.send(json.dumps({"type": "configure"}))
    call_id = json.loads(await ws.recv())["call_id"]  # hello; then it never reads again

    # Long turns, each echoed in full before the next: the most audio per second of call.
    turn = np.concatenate([question, question, np.zeros(RATE * 5 // 2, np.int16)]).tobytes()
    step = RATE * FRAME_MS // 1000 * 2
    started = sent = time.monotonic()
    with pytest.raises(ConnectionClosed):
        while time.monotonic() - started < 60:
            for offset in range(0, len(turn), step):
                await ws.send(turn[offset : offset + step])
                sent += FRAME_MS / 1000
                await asyncio.sleep(max(0.0, sent - time.monotonic()))
    cut_off_after = time.monotonic() - started
    record = await echo_server.finished_call(call_id)
    assert (record.close_code, record.close_reason) == (1008, "client_not_reading")
    assert record.turns >= 2
    assert cut_off_after > SEND_TIMEOUT  # it had to stop reading for that long first

    # Everyone else is still served.
    bystander = await Caller.open(echo_server.ws, subprotocols=["pyai.v1", f"pyai-key.{key}"])
    await bystander.send_control({"type": "configure"})
    await bystander.stream(np.concatenate([question, np.zeros(RATE, np.int16)]))
    await bystander.wait_for("turn_begin", timeout=10)
    deadline = time.monotonic() + 10
    while bystander.got.audio_bytes() < question.nbytes * 9 // 10:  # its echo, all of it
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    await bystander.ws.close()
