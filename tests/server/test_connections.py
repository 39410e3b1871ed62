"""Slow clients: connections that never finish a request head are closed, a client that
stops reading is cut off with 1008 ``client_not_reading``; the others are served meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time

import numpy as np
import numpy.typing as npt
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.support.caller import FRAME_MS, Caller
from tests.support.server import RunningServer
from voxline.server.connections import REQUEST_HEAD_TIMEOUT, SEND_TIMEOUT

pytestmark = pytest.mark.e2e

RATE = 24000


async def _closed_after(port: int, trickle: bool) -> float:
    """How long the server keeps a connection that sends nothing, or one header a second."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    opened = time.monotonic()
    if trickle:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
    while not reader.at_eof() and time.monotonic() - opened < 3 * REQUEST_HEAD_TIMEOUT:
        if trickle:
            writer.write(b"X-Slow: 1\r\n")
        with contextlib.suppress(TimeoutError):
            assert await asyncio.wait_for(reader.read(1024), 1.0) == b""  # no answer, just EOF
    writer.close()
    return time.monotonic() - opened


async def _healthy(port: int, pause: float = 0.0) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\n")
    await asyncio.sleep(pause)
    writer.write(b"Host: localhost\r\n\r\n")
    status = await reader.readline()
    writer.close()
    return status


async def test_connections_that_never_finish_a_request_head_are_closed(
    echo_server: RunningServer,
) -> None:
    idle_and_trickling = [_closed_after(echo_server.port, trickle) for trickle in (False, True)]
    kept = await asyncio.gather(*(idle_and_trickling * 20))
    assert all(REQUEST_HEAD_TIMEOUT - 0.5 < seconds < REQUEST_HEAD_TIMEOUT + 3 for seconds in kept)
    # A head that arrives in pieces within the bound is answered.
    assert (
        await _healthy(echo_server.port, pause=REQUEST_HEAD_TIMEOUT / 3) == b"HTTP/1.1 200 OK\r\n"
    )


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
