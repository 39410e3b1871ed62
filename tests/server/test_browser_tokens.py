"""Browser tokens end to end (docs/protocol.md: "REST companions", "Errors and limits"):
minting over HTTP, then using the token at the socket from a browser origin, against real
server processes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.api import ORIGIN, assert_envelope, mint, mint_token, open_with_token
from tests.support.caller import Caller
from tests.support.server import OPEN_LIMITS, RunningServer, run_server

pytestmark = pytest.mark.e2e

DEV_ORIGIN = "http://localhost:5173"


async def refused_with_token(
    server: RunningServer, token: str, origin: str | None = ORIGIN
) -> tuple[int | None, str | None, dict[str, Any]]:
    caller = await open_with_token(server, token, origin)
    event = await caller.wait_for("error", timeout=5)
    got = await caller.closed()
    assert got.names() == ["error"]
    return got.close_code, got.close_reason, event


async def open_once_free(server: RunningServer, token: str, origin: str = ORIGIN) -> Caller:
    """Open a session with ``token`` as soon as its previous session has let go of it."""
    deadline = time.monotonic() + 3
    while True:
        caller = await open_with_token(server, token, origin)
        try:
            await caller.wait_for("hello")
        except AssertionError:
            # Refused and closed: the slot was still held.
            if time.monotonic() > deadline:
                raise
        else:
            return caller
        await asyncio.sleep(0.05)


async def assert_session_works(caller: Caller) -> None:
    hello = await caller.wait_for("hello")
    assert hello["call_id"].startswith("call_")
    await caller.wait_for("configured")
    await caller.send_control({"type": "dtmf", "digit": "7"})
    assert (await caller.wait_for("dtmf"))["digit"] == "7"


# Minting: POST /v1/omni/sessions


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer",
        "Basic dXNlcjpwYXNz",
    ],
)
async def test_minting_needs_a_valid_bearer_key(
    echo_server: RunningServer, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    async with httpx.AsyncClient(base_url=echo_server.http) as client:
        response = await client.post(
            "/v1/omni/sessions", json={"allowed_origins": [ORIGIN]}, headers=headers
        )
    assert_envelope(response, 401, "unauthorized", "authentication_error")


async def test_a_key_with_the_wildcard_scope_mints(echo_server: RunningServer) -> None:
    key = echo_server.create_key(scopes=("omni:*",))
    assert (await mint(echo_server, key)).status_code == 200


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "allowed_origins"),
        ({"allowed_origins": []}, "allowed_origins"),
        ({"allowed_origins": "https://app.example.com"}, "allowed_origins"),
        ({"allowed_origins": ["*"]}, "allowed_origins"),
        ({"allowed_origins": [ORIGIN, "https://*.example.com"]}, "allowed_origins"),
        ({"allowed_origins": ["https://app.example.com/checkout"]}, "allowed_origins"),
        ({"allowed_origins": ["https://app.example.com/"]}, "allowed_origins"),
        ({"allowed_origins": ["app.example.com"]}, "allowed_origins"),
        ({"allowed_origins": [ORIGIN], "ttl_seconds": 0}, "ttl_seconds"),
        ({"allowed_origins": [ORIGIN], "ttl_seconds": 601}, "ttl_seconds"),
        ({"allowed_origins": [ORIGIN], "ttl_seconds": "60"}, "ttl_seconds"),
        ({"allowed_origins": [ORIGIN], "session_label": "x" * 257}, "session_label"),
        ([ORIGIN], None),
    ],
)
async def test_invalid_mint_requests_are_400_naming_the_field(
    echo_server: RunningServer, body: Any, param: str | None
) -> None:
    key = echo_server.create_key()
    response = await mint(echo_server, key, body)
    assert_envelope(response, 400, "invalid_request", "invalid_request_error", param)


@pytest.mark.parametrize("content", [b"allowed_origins=https://app.example.com", b"{", b""])
async def test_a_body_that_is_not_json_is_400(echo_server: RunningServer, content: bytes) -> None:
    key = echo_server.create_key()
    response = await mint(echo_server, key, content=content)
    # An empty body is an empty request: it lacks allowed_origins.
    param = "allowed_origins" if content == b"" else None
    assert_envelope(response, 400, "invalid_request", "invalid_request_error", param)


@pytest.mark.parametrize(
    "content",
    [
        b'{"allowed_origins": ["https://app.example.com"], "session_label": "caf\xe9"}',
        b"[" * 10_000,
        b"1" * 5_000,
    ],
    ids=["invalid-utf8", "deeply-nested", "huge-integer"],
)
async def test_a_body_that_is_not_valid_json_text_is_400_too(
    echo_server: RunningServer, content: bytes
) -> None:
    key = echo_server.create_key()
    response = await mint(echo_server, key, content=content)
    assert_envelope(response, 400, "invalid_request", "invalid_request_error")


async def test_minted_token_shape(echo_server: RunningServer) -> None:
    key = echo_server.create_key()
    before = time.time()
    response = await mint(
        echo_server,
        key,
        {"allowed_origins": [ORIGIN, DEV_ORIGIN], "ttl_seconds": 120, "session_label": "desk"},
    )
    after = time.time()
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"object", "token", "expires_at", "url", "session_label"}
    assert body["object"] == "omni.session"
    assert body["session_label"] == "desk"
    assert isinstance(body["token"], str) and body["token"].startswith("vxt_")
    assert len(body["token"]) >= 40
    assert isinstance(body["expires_at"], int)
    assert (before + 120) * 1000 - 1000 <= body["expires_at"] <= (after + 120) * 1000 + 1000
    assert body["url"] == echo_server.ws
    assert body["url"].startswith("ws://") and body["url"].endswith("/v1/omni")

    defaults = await mint_token(echo_server, key)
    assert defaults["session_label"] is None
    assert abs(defaults["expires_at"] - (time.time() + 60) * 1000) < 2000
    assert defaults["token"] != body["token"]


# The token at the socket


async def test_the_token_opens_a_session_from_an_allowed_origin(
    echo_server: RunningServer,
) -> None:
    key = echo_server.create_key()
    token = (await mint(echo_server, key, {"allowed_origins": [ORIGIN, DEV_ORIGIN]})).json()
    for origin in (DEV_ORIGIN, ORIGIN):
        caller = await open_once_free(echo_server, token["token"], origin)
        assert caller.ws.subprotocol == "pyai.v1"
        await assert_session_works(caller)
        await caller.send_control({"type": "session_ending"})
        got = await caller.closed()
        assert got.close_code == 1000
        assert "error" not in got.names()


async def test_origins_match_after_normalisation(echo_server: RunningServer) -> None:
    key = echo_server.create_key()
    minted = await mint(echo_server, key, {"allowed_origins": ["HTTPS://App.Example.com:443"]})
    caller = await open_with_token(echo_server, minted.json()["token"], "https://app.example.com")
    await assert_session_works(caller)
    await caller.close()


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example.com",
        "http://app.example.com",
        "https://app.example.com:8443",
        "https://app.example.com.evil.example",
        "null",
        None,
    ],
)
async def test_the_token_is_refused_from_any_other_origin(
    echo_server: RunningServer, origin: str | None
) -> None:
    key = echo_server.create_key()
    token = (await mint_token(echo_server, key))["token"]
    code, reason, event = await refused_with_token(echo_server, token, origin)
    assert (code, event["code"]) == (4403, "origin_not_allowed")
    assert reason is not None and "origin_not_allowed" in reason
    # The refusal neither spends nor locks the token for its rightful page.
    caller = await open_with_token(echo_server, token)
    await caller.wait_for("hello")
    await caller.close()


async def test_the_token_admits_one_session_at_a_time(echo_server: RunningServer) -> None:
    key = echo_server.create_key()
    token = (await mint_token(echo_server, key))["token"]
    first = await open_with_token(echo_server, token)
    await first.wait_for("hello")
    code, reason, event = await refused_with_token(echo_server, token)
    assert (code, event["code"]) == (4429, "concurrency_limit_exceeded")
    assert reason == "concurrency_limit_exceeded"
    # The key itself still has room: only the token is taken.
    other = await Caller.open(echo_server.ws, subprotocols=[f"pyai-key.{key}"])
    await other.wait_for("hello")
    await other.close()
    # One concurrent session, not one session: the token works again once the first ended.
    await first.close()
    again = await open_once_free(echo_server, token)
    await again.wait_for("hello")
    await again.close()


async def test_an_expired_token_is_4401(echo_server: RunningServer) -> None:
    key = echo_server.create_key()
    minted = await mint_token(echo_server, key, ttl_seconds=1)
    await asyncio.sleep(max(0.0, minted["expires_at"] / 1000 - time.time()) + 0.1)
    code, _, event = await refused_with_token(echo_server, minted["token"])
    assert (code, event["code"]) == (4401, "unauthorized")


async def test_a_token_is_not_a_secret_key(echo_server: RunningServer) -> None:
    key = echo_server.create_key(scopes=("omni:session", "calls:read"))
    token = (await mint_token(echo_server, key))["token"]
    assert_envelope(await mint(echo_server, token), 401, "unauthorized", "authentication_error")
    async with httpx.AsyncClient(base_url=echo_server.http) as client:
        calls = await client.get("/v1/calls", headers={"Authorization": f"Bearer {token}"})
    assert_envelope(calls, 401, "unauthorized", "authentication_error")


async def test_the_token_session_label_names_the_session(echo_server: RunningServer) -> None:
    key = echo_server.create_key()
    token = (await mint_token(echo_server, key, session_label="front-desk"))["token"]
    caller = await open_with_token(echo_server, token)
    started = await caller.wait_for("session_started")
    await caller.close()
    assert started["session_label"] == started["agent_id"] == "front-desk"


# Rate limits on minting


@pytest.fixture(scope="module")
def paced_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    env = {**OPEN_LIMITS, "VOXLINE_LIMITS_CONNECTS_PER_MINUTE_PER_KEY": "20"}
    with run_server(tmp_path_factory.mktemp("mint-paced"), env=env) as server:
        yield server


async def test_waiting_retry_after_is_enough(paced_server: RunningServer) -> None:
    # 20 a minute: a burst of 20, then one every 3 s from the first.
    key = paced_server.create_key()
    async with httpx.AsyncClient(base_url=paced_server.http) as client:
        headers = {"Authorization": f"Bearer {key}"}
        body = {"allowed_origins": [ORIGIN]}
        first = await client.post("/v1/omni/sessions", json=body, headers=headers)
        started = time.monotonic()
        assert first.status_code == 200
        for _ in range(19):
            assert (await client.post("/v1/omni/sessions", json=body, headers=headers)).is_success
        # At least 1.6 s after the first, the next slot is at most 1.4 s away.
        if time.monotonic() > started + 1.6:
            pytest.skip("the burst took too long to place the next request")
        await asyncio.sleep(started + 1.6 - time.monotonic())
        refused = await client.post("/v1/omni/sessions", json=body, headers=headers)
        assert refused.status_code == 429
        await asyncio.sleep(int(refused.headers["Retry-After"]))
        retried = await client.post("/v1/omni/sessions", json=body, headers=headers)
    assert retried.status_code == 200, retried.text
