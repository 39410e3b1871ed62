"""The server's edge against a real ``voxline serve``: request sizes refused before they are
read, secrets kept out of its log, client numbers and URLs read strictly, page tokens
limited per address, and forwarded headers believed only from trusted proxies."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.caller import Caller
from tests.support.keys import create_key
from tests.support.server import OPEN_LIMITS, RunningServer, run_server

pytestmark = pytest.mark.e2e

STREAM_TOKEN = "fs-stream-token-0123456789abcdef"
TWILIO_TOKEN = "twilio-auth-token-0123456789abcdef"
PAGE_TOKENS_PER_MINUTE = 3


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """An echo server with phone lines and the browser page on, few page tokens an address."""
    data_dir = tmp_path_factory.mktemp("edge")
    _, web_key = create_key(data_dir, label="page")
    env = {
        **OPEN_LIMITS,
        "VOXLINE_WEB_KEY": web_key,
        "VOXLINE_LIMITS_PAGE_TOKENS_PER_MINUTE_PER_ADDRESS": str(PAGE_TOKENS_PER_MINUTE),
        "VOXLINE_FREESWITCH_STREAM_TOKEN": STREAM_TOKEN,
        "VOXLINE_TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "VOXLINE_TWILIO_PUBLIC_HOST": "voice.example.com",
    }
    with run_server(data_dir, env=env) as running:
        yield running


def exchange(server: RunningServer, head: bytes, body: bytes = b"") -> tuple[float, bytes]:
    """Send ``head`` and as much of ``body`` as the server takes; the seconds until the
    reply's first bytes, and the whole reply."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        start = time.monotonic()
        try:
            sock.sendall(head)
            for offset in range(0, len(body), 16 * 1024):
                sock.sendall(body[offset : offset + 16 * 1024])
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed while the body was still coming
        reply = sock.recv(65536)
        elapsed = time.monotonic() - start
        while chunk := _recv(sock):
            reply += chunk
    return elapsed, reply


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except (ConnectionResetError, TimeoutError):
        return b""


def status_and_body(reply: bytes) -> tuple[int, bytes]:
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def assert_too_large(reply: bytes) -> None:
    status, body = status_and_body(reply)
    assert status == 413, reply[:300]
    error = json.loads(body)["error"]
    assert (error["code"], error["type"]) == ("message_too_large", "invalid_request_error")


@pytest.mark.parametrize(
    "path",
    [
        "/twilio/voice",
        "/v1/omni/sessions",
        "/web/token",
        "/v1/calls",
        "/v1/audio/speech",
        "/v1/audio/transcriptions",
        "/v1/agents",
    ],
)
def test_a_400_mb_body_is_refused_before_it_is_read(server: RunningServer, path: str) -> None:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 400000000\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n\r\n"
    ).encode()
    elapsed, reply = exchange(server, head, b"a" * (256 * 1024))
    assert_too_large(reply)
    assert elapsed < 1.0


def test_a_chunked_body_is_cut_off_at_the_limit(server: RunningServer) -> None:
    head = b"POST /twilio/voice HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunk = b"4000\r\n" + b"a" * 0x4000 + b"\r\n"  # 16 KiB a chunk, 8 MiB offered
    elapsed, reply = exchange(server, head, chunk * 512)
    assert_too_large(reply)
    assert b"connection: close" in reply.lower()
    assert elapsed < 2.0


def test_the_agents_routes_have_a_limit_of_their_own(server: RunningServer) -> None:
    """Profiles may carry their knowledge: 1 MiB, past which they are refused as any other."""
    for path in ("/v1/agents", "/v1/agents/agent_x"):
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {{}}\r\n\r\n"
        _, reply = exchange(server, head.format(200 * 1024).encode(), b"{" * (200 * 1024))
        assert status_and_body(reply)[0] == 401  # read, and then refused for want of a key
        big = 1024 * 1024 + 1
        _, reply = exchange(server, head.format(big).encode(), b"{" * big)
        assert_too_large(reply)
    _, reply = exchange(
        server,
        f"POST /v1/agentsx HTTP/1.1\r\nHost: x\r\nContent-Length: {70 * 1024}\r\n\r\n".encode(),
        b"{" * (70 * 1024),
    )
    assert_too_large(reply)


def test_a_body_under_the_limit_is_read(server: RunningServer) -> None:
    response = httpx.post(
        f"{server.http}/twilio/voice",
        content=b"CallSid=CA1&" + b"x" * (60 * 1024),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 403  # read, and then refused for its signature
    assert "X-Twilio-Signature" in response.json()["error"]["message"]


def test_audio_uploads_have_a_limit_of_their_own(server: RunningServer) -> None:
    def declared(path: str, length: int) -> int:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n"
            "Content-Type: multipart/form-data; boundary=b\r\n\r\n"
        ).encode()
        status, _ = status_and_body(exchange(server, head)[1])
        return status

    # Refused before a byte is read, for want of a key (401), not for its size.
    assert declared("/v1/audio/transcriptions", 25 * 1024 * 1024) == 401
    assert declared("/v1/audio/transcriptions", 25 * 1024 * 1024 + 1) == 413
    assert declared("/v1/audio/speech", 65 * 1024) == 413


def test_a_1_mb_header_is_refused_and_the_server_keeps_serving(server: RunningServer) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1024 * 1024) + b"\r\n\r\n"
    elapsed, reply = exchange(server, head)
    assert status_and_body(reply)[0] == 400
    assert elapsed < 1.0
    assert httpx.get(f"{server.http}/healthz").json() == {"status": "ok"}


def test_headers_of_a_few_kilobytes_are_fine(server: RunningServer) -> None:
    response = httpx.get(f"{server.http}/healthz", headers={"X-Filler": "a" * 16 * 1024})
    assert response.status_code == 200


async def test_no_secret_reaches_the_log(server: RunningServer) -> None:
    key = server.create_key()
    async with httpx.AsyncClient(base_url=server.http) as client:
        minted = await client.post("/web/token", headers={"Origin": server.http})
    assert minted.status_code == 200, minted.text
    browser_token = minted.json()["token"]
    ways_in: list[tuple[str, dict[str, Any]]] = [
        (f"{server.ws}?api_key={key}", {}),
        (server.ws, {"subprotocols": ["pyai.v1", f"pyai-key.{key}"]}),
        (server.ws, {"additional_headers": {"Authorization": f"Bearer {key}"}}),
        (server.ws, {"subprotocols": ["pyai.v1", f"pyai-key.{browser_token}"]}),
        (f"{server.ws}?api_key={browser_token}", {"origin": server.http}),
        (f"ws://127.0.0.1:{server.port}/freeswitch/audio?token={STREAM_TOKEN}", {}),
    ]
    for url, options in ways_in:
        try:
            caller = await Caller.open(url, **options)
            await caller.send_control({"type": "configure"})
            await asyncio.sleep(0.1)
            await caller.close()
        except Exception:  # refused or closed early: only what reached the log matters here
            pass
    async with httpx.AsyncClient(base_url=server.http) as client:
        await client.post(
            f"/twilio/voice?token={TWILIO_TOKEN}",
            data={"CallSid": "CA1", "From": "+15550001"},
            headers={"X-Twilio-Signature": "forged", "Authorization": f"Bearer {key}"},
        )
        await client.get(f"/v1/calls?key={key}", headers={"Authorization": f"Bearer {key}"})
    await asyncio.sleep(0.3)  # the access log lines of the last requests

    log = server.log()
    assert "api_key=vx_test_" in log  # the request was logged, the secret masked
    for secret in (key, browser_token, STREAM_TOKEN, TWILIO_TOKEN):
        assert secret not in log


@pytest.mark.parametrize("rate", ["²", "١٦٠٠٠", "１６０００", "+16000"])
async def test_a_rate_in_other_digits_is_a_bad_request(server: RunningServer, rate: str) -> None:
    key = server.create_key()
    caller = await Caller.open(
        f"{server.ws}?rate={rate}", subprotocols=["pyai.v1", f"pyai-key.{key}"]
    )
    await caller.send_control({"type": "configure"})
    got = await caller.closed()
    assert got.close_code == 4400
    assert got.first("error")["code"] == "invalid_rate"
    assert "Traceback" not in server.log()


@pytest.mark.parametrize(
    "configure",
    [
        {"kb_endpoint": "http://["},
        {"kb_endpoint": "http://kb.example:99999/"},
        {"tools": [{"name": "t", "endpoint": "https://[::1/x"}]},
        {"audio_out": "pcm16@²"},
        {"audio_out": "pcm16@１６０００"},
        {f"x_{index}": index for index in range(65)},
    ],
)
async def test_a_bad_configure_is_an_error_and_the_session_goes_on(
    server: RunningServer, configure: dict[str, Any]
) -> None:
    key = server.create_key()
    caller = await Caller.open(server.ws, subprotocols=["pyai.v1", f"pyai-key.{key}"])
    await caller.send_control({"type": "configure", "voice_id": "first"})
    await caller.wait_for("configured")
    await caller.send_control({"type": "configure", **configure})
    error = await caller.wait_for("error")
    assert error["code"] == "invalid_configure"
    await caller.send_control({"type": "configure", "x_later": 1})
    # The next frame's acknowledgement names only its own unknown keys.
    assert (await _ack_ignoring(caller, "x_later"))["ignored"] == ["x_later"]
    await caller.send_control({"type": "session_ending"})
    got = await caller.closed()
    assert got.close_code == 1000
    assert "Traceback" not in server.log()


async def _ack_ignoring(caller: Caller, key: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for _, event in caller.got.events:
            if event["event"] == "config_ack" and key in event["ignored"]:
                return event
        await asyncio.sleep(0.01)
    raise AssertionError(f"no config_ack ignoring {key}; got {caller.got.names()}")


def _page_tokens(server: RunningServer, origin: str, forwarded_for: str | None = None) -> int:
    headers = {"Origin": origin}
    if forwarded_for is not None:
        headers["X-Forwarded-For"] = forwarded_for
    return httpx.post(f"{server.http}/web/token", headers=headers).status_code


def test_page_tokens_are_limited_per_address_whatever_it_forwards(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "page"
    _, web_key = create_key(data_dir, label="page")
    env = {
        **OPEN_LIMITS,
        "VOXLINE_WEB_KEY": web_key,
        "VOXLINE_LIMITS_PAGE_TOKENS_PER_MINUTE_PER_ADDRESS": str(PAGE_TOKENS_PER_MINUTE),
    }
    with run_server(data_dir, env=env) as server:
        statuses = [
            _page_tokens(server, server.http, forwarded_for=f"203.0.113.{index}")
            for index in range(PAGE_TOKENS_PER_MINUTE + 1)
        ]
        # No proxy is trusted: a forwarded address is not the client's.
        assert statuses == [200] * PAGE_TOKENS_PER_MINUTE + [429]
        refused = httpx.post(f"{server.http}/web/token", headers={"Origin": server.http})
        assert refused.json()["error"]["code"] == "rate_limit_exceeded"
        assert int(refused.headers["Retry-After"]) >= 1
        # The page key itself is still good for the socket: only its page tokens stopped.
        assert httpx.get(f"{server.http}/healthz").status_code == 200


def test_behind_a_trusted_proxy_forwarded_addresses_and_the_public_url_count(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "proxied"
    _, web_key = create_key(data_dir, label="page")
    public = "https://voice.example.com"
    env = {
        **OPEN_LIMITS,
        "VOXLINE_WEB_KEY": web_key,
        "VOXLINE_LIMITS_PAGE_TOKENS_PER_MINUTE_PER_ADDRESS": "1",
        "VOXLINE_TRUSTED_PROXIES": '["127.0.0.1"]',
        "VOXLINE_PUBLIC_URL": public,
    }
    with run_server(data_dir, env=env) as server:
        # Each forwarded client has its own page tokens.
        assert _page_tokens(server, public, "203.0.113.1") == 200
        assert _page_tokens(server, public, "203.0.113.2") == 200
        assert _page_tokens(server, public, "203.0.113.1") == 429
        # With a public URL, the request's own Host is no origin of the page.
        assert _page_tokens(server, server.http, "203.0.113.3") == 403
