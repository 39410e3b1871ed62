"""Browser tokens: minting, verification, origin locking and request validation."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable

import pytest

from tests.support.keys import api_key
from voxline.auth.tokens import (
    DEFAULT_TTL_SECONDS,
    BrowserTokens,
    TokenError,
    TokenRequest,
    TokenRequestError,
    normalize_origin,
    validate_origin,
    validate_token_request,
)
from voxline.config import LimitSettings
from voxline.limits.policy import LimitPolicy, Rejection, SessionLease
from voxline.state.backend import StateBackend

ORIGIN = "https://app.example.com"

KEY = api_key(key_id="key_0123abcd", scopes=("omni:*",))


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def test_mint_then_verify(backend: StateBackend) -> None:
    tokens = BrowserTokens(backend)
    before = time.time()
    minted = await tokens.mint(
        KEY, allowed_origins=[ORIGIN], ttl_seconds=120, session_label="support-bot"
    )
    assert minted.token.startswith("vxt_")
    assert len(minted.token) >= 4 + 43
    assert int(before * 1000) + 120_000 <= minted.expires_at <= time.time() * 1000 + 120_000
    assert minted.session_label == "support-bot"
    claims = await tokens.verify(minted.token, ORIGIN)
    assert claims.key_id == KEY.id
    assert claims.token_id == minted.token_id
    assert claims.allowed_origins == (ORIGIN,)
    assert claims.session_label == "support-bot"
    assert claims.expires_at == minted.expires_at
    # Tokens are single-use per session, not per verification.
    assert await tokens.verify(minted.token, ORIGIN) == claims


async def test_claims_are_stored_under_a_digest_only(backend: StateBackend) -> None:
    minted = await BrowserTokens(backend).mint(KEY, allowed_origins=[ORIGIN])
    assert minted.token_id not in minted.token
    assert await backend.get(f"token:{minted.token}") is None
    assert await backend.get(f"token:{minted.token_id}") is not None


async def test_tokens_are_shared_between_processes(
    backend_factory: Callable[[], StateBackend],
) -> None:
    minted = await BrowserTokens(backend_factory()).mint(KEY, allowed_origins=[ORIGIN])
    claims = await BrowserTokens(backend_factory()).verify(minted.token, ORIGIN)
    assert claims.key_id == KEY.id


async def test_expired_tokens_are_refused(backend: StateBackend) -> None:
    clock = Clock()
    tokens = BrowserTokens(backend, clock=clock)
    minted = await tokens.mint(KEY, allowed_origins=[ORIGIN], ttl_seconds=30)
    clock.now += 29.9
    await tokens.verify(minted.token, ORIGIN)
    clock.now += 0.1
    with pytest.raises(TokenError) as caught:
        await tokens.verify(minted.token, ORIGIN)
    assert caught.value.code == "unauthorized"


async def test_tokens_expire_from_the_backend_too(backend: StateBackend) -> None:
    clock = Clock()
    tokens = BrowserTokens(backend, clock=clock)
    minted = await tokens.mint(KEY, allowed_origins=[ORIGIN], ttl_seconds=1)
    # Pretend the verifying process's clock lags, so that only the backend's expiry is left,
    # and shorten that expiry rather than wait for it.
    clock.now -= 3600
    claims = await backend.get(f"token:{minted.token_id}")
    assert claims is not None
    await backend.put(f"token:{minted.token_id}", claims, 0.05)
    await tokens.verify(minted.token, ORIGIN)
    await asyncio.sleep(0.1)
    with pytest.raises(TokenError, match="unknown or expired"):
        await tokens.verify(minted.token, ORIGIN)


@pytest.mark.parametrize(
    "token", ["", "vxt_", "vxt_unknown", "vx_live_notatoken", "Bearer x", "\ud800", "vxt_" * 1000]
)
async def test_unknown_tokens_are_refused(backend: StateBackend, token: str) -> None:
    await BrowserTokens(backend).mint(KEY, allowed_origins=[ORIGIN])
    with pytest.raises(TokenError) as caught:
        await BrowserTokens(backend).verify(token, ORIGIN)
    assert caught.value.code == "unauthorized"


@pytest.mark.parametrize(
    "origin",
    [
        None,
        "",
        "null",
        "https://evil.example.com",
        "http://app.example.com",
        "https://app.example.com:8443",
        "https://app.example.com.evil.net",
        "https://sub.app.example.com",
        "not a url",
    ],
)
async def test_other_origins_are_refused(backend: StateBackend, origin: str | None) -> None:
    tokens = BrowserTokens(backend)
    minted = await tokens.mint(KEY, allowed_origins=[ORIGIN, "http://localhost:3000"])
    with pytest.raises(TokenError) as caught:
        await tokens.verify(minted.token, origin)
    assert caught.value.code == "origin_not_allowed"


@pytest.mark.parametrize(
    "origin", ["https://APP.Example.com", "https://app.example.com:443", "http://localhost:3000"]
)
async def test_origins_match_after_normalisation(backend: StateBackend, origin: str) -> None:
    tokens = BrowserTokens(backend)
    minted = await tokens.mint(
        KEY, allowed_origins=["HTTPS://app.example.com", "http://localhost:3000"]
    )
    await tokens.verify(minted.token, origin)


async def test_only_active_keys_with_the_session_scope_mint(backend: StateBackend) -> None:
    tokens = BrowserTokens(backend)
    for key in (
        dataclasses.replace(KEY, scopes=frozenset({"billing:read"})),
        dataclasses.replace(KEY, revoked_at=1.0),
    ):
        with pytest.raises(TokenError) as caught:
            await tokens.mint(key, allowed_origins=[ORIGIN])
        assert caught.value.code == "forbidden"
    await tokens.mint(
        dataclasses.replace(KEY, scopes=frozenset({"omni:session"})), allowed_origins=[ORIGIN]
    )


async def test_mint_validates_its_arguments(backend: StateBackend) -> None:
    tokens = BrowserTokens(backend)
    with pytest.raises(TokenRequestError) as caught:
        await tokens.mint(KEY, allowed_origins=["*"])
    assert caught.value.param == "allowed_origins"
    with pytest.raises(TokenRequestError) as caught:
        await tokens.mint(KEY, allowed_origins=[ORIGIN], ttl_seconds=601)
    assert caught.value.param == "ttl_seconds"


async def test_a_token_admits_one_session_at_a_time(backend: StateBackend) -> None:
    tokens = BrowserTokens(backend)
    policy = LimitPolicy(backend, LimitSettings(default_concurrency=10))
    minted = await tokens.mint(KEY, allowed_origins=[ORIGIN])
    claims = await tokens.verify(minted.token, ORIGIN)
    lease = await policy.acquire_session(KEY, token_id=claims.token_id)
    assert isinstance(lease, SessionLease)
    claims = await tokens.verify(minted.token, ORIGIN)
    refused = await policy.acquire_session(KEY, token_id=claims.token_id)
    assert isinstance(refused, Rejection)
    assert refused.code == "concurrency_limit_exceeded"
    # Another token from the same key is its own session.
    other = await tokens.mint(KEY, allowed_origins=[ORIGIN])
    assert isinstance(await policy.acquire_session(KEY, token_id=other.token_id), SessionLease)
    await lease.release()
    assert isinstance(await policy.acquire_session(KEY, token_id=claims.token_id), SessionLease)


# -- request validation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "normal"),
    [
        ("https://app.example.com", "https://app.example.com"),
        ("HTTPS://App.Example.COM", "https://app.example.com"),
        ("https://app.example.com:443", "https://app.example.com"),
        ("http://app.example.com:80", "http://app.example.com"),
        ("http://app.example.com:443", "http://app.example.com:443"),
        ("https://app.example.com:", "https://app.example.com"),
        ("http://localhost:3000", "http://localhost:3000"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("http://[0:0::1]", "http://[::1]"),
        ("https://bücher.example", "https://xn--bcher-kva.example"),
    ],
)
def test_origins_normalise(given: str, normal: str) -> None:
    assert normalize_origin(given) == normal
    assert validate_origin(given) == normal


@pytest.mark.parametrize(
    "origin",
    [
        "*",
        "https://*.example.com",
        "app.example.com",
        "//app.example.com",
        "ftp://app.example.com",
        "wss://app.example.com",
        "https://",
        "https://app.example.com/",
        "https://app.example.com/path",
        "https://app.example.com?q=1",
        "https://app.example.com?",
        "https://app.example.com#top",
        "https://user:pw@app.example.com",
        "https://app.example.com:99999",
        "https://app.example.com:port",
        "https://app example.com",
        "https://app.example.com\n",
        "https://app.exa\tmple.com",
        "https://[not-ipv6]",
        "https://a..b",
        "null",
        "",
    ],
)
def test_invalid_origins_are_rejected(origin: str) -> None:
    with pytest.raises(TokenRequestError) as caught:
        validate_origin(origin)
    assert caught.value.param == "allowed_origins"
    assert isinstance(caught.value, ValueError)


def test_token_request_defaults_and_normalises() -> None:
    request = validate_token_request(
        {"allowed_origins": ["https://a.example", "HTTPS://A.example:443"], "extra": 1}
    )
    assert request == TokenRequest(["https://a.example"], DEFAULT_TTL_SECONDS, None)
    request = validate_token_request(
        {"allowed_origins": ["https://a.example"], "ttl_seconds": 600, "session_label": "x"}
    )
    assert (request.ttl_seconds, request.session_label) == (600, "x")
    assert validate_token_request({"allowed_origins": [ORIGIN], "ttl_seconds": 1}).ttl_seconds == 1


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ([], None),
        ("{}", None),
        ({}, "allowed_origins"),
        ({"allowed_origins": []}, "allowed_origins"),
        ({"allowed_origins": ORIGIN}, "allowed_origins"),
        ({"allowed_origins": [ORIGIN, 7]}, "allowed_origins"),
        ({"allowed_origins": [ORIGIN, "*"]}, "allowed_origins"),
        ({"allowed_origins": [ORIGIN] * 51}, "allowed_origins"),
        ({"allowed_origins": [ORIGIN], "ttl_seconds": 0}, "ttl_seconds"),
        ({"allowed_origins": [ORIGIN], "ttl_seconds": 601}, "ttl_seconds"),
        ({"allowed_origins": [ORIGIN], "ttl_seconds": 60.5}, "ttl_seconds"),
        ({"allowed_origins": [ORIGIN], "ttl_seconds": "60"}, "ttl_seconds"),
        ({"allowed_origins": [ORIGIN], "ttl_seconds": True}, "ttl_seconds"),
        ({"allowed_origins": [ORIGIN], "session_label": 5}, "session_label"),
        ({"allowed_origins": [ORIGIN], "session_label": "x" * 257}, "session_label"),
        ({"allowed_origins": [ORIGIN], "session_label": "a\nb"}, "session_label"),
    ],
)
def test_invalid_token_requests_name_the_parameter(payload: object, param: str | None) -> None:
    with pytest.raises(TokenRequestError) as caught:
        validate_token_request(payload)
    assert caught.value.param == param
    assert str(caught.value)
