"""The limit policy, over state backends in memory and on a real Redis: concurrency, daily
audio caps, connect rates and blocks after failed authentications."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest

from tests.support.keys import api_key
from tests.support.redis_server import BackendFactory
from voxline.config import LimitSettings
from voxline.limits.policy import LimitPolicy, Rejection, SessionLease
from voxline.state.backend import StateBackend
from voxline.state.redis import RedisBackend

# Short enough to keep the suite fast, long enough not to lapse between two awaits.
TTL = 0.2


def settings(**overrides: float) -> LimitSettings:
    values: dict[str, float] = {
        "default_concurrency": 2,
        "test_daily_audio_seconds": 10.0,
        "connects_per_minute_per_key": 1000,
        "connects_per_minute_per_address": 1000,
        "auth_failures_per_minute_per_address": 1000,
    }
    values.update(overrides)
    return LimitSettings(**values)  # type: ignore[arg-type]


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


# -- policy ---------------------------------------------------------------------------------


async def test_sessions_limited_per_key(backend: StateBackend) -> None:
    policy = LimitPolicy(backend, settings(default_concurrency=2))
    key = api_key()
    first = await policy.acquire_session(key)
    second = await policy.acquire_session(key)
    assert isinstance(first, SessionLease)
    assert isinstance(second, SessionLease)
    refused = await policy.acquire_session(key)
    assert refused == Rejection(
        "concurrency_limit_exceeded", "this key already has 2 concurrent sessions", None
    )
    # Another key has its own allowance.
    assert isinstance(await policy.acquire_session(api_key(key_id="key_00000002")), SessionLease)
    await first.release()
    await first.release()  # idempotent: must not free the slot of another session
    third = await policy.acquire_session(key)
    assert isinstance(third, SessionLease)
    assert isinstance(await policy.acquire_session(key), Rejection)


async def test_a_key_concurrency_overrides_the_default(backend: StateBackend) -> None:
    policy = LimitPolicy(backend, settings(default_concurrency=5))
    key = api_key(concurrency=1)
    assert isinstance(await policy.acquire_session(key), SessionLease)
    assert isinstance(await policy.acquire_session(key), Rejection)


async def test_one_session_per_browser_token(backend: StateBackend) -> None:
    policy = LimitPolicy(backend, settings(default_concurrency=2))
    key = api_key()
    lease = await policy.acquire_session(key, token_id="t1")
    assert isinstance(lease, SessionLease)
    refused = await policy.acquire_session(key, token_id="t1")
    assert isinstance(refused, Rejection)
    assert refused.code == "concurrency_limit_exceeded"
    assert "token" in refused.message
    # The refusal held nothing: the key's second slot is still free.
    other = await policy.acquire_session(key, token_id="t2")
    assert isinstance(other, SessionLease)
    await lease.release()
    assert isinstance(await policy.acquire_session(key, token_id="t1"), SessionLease)


async def test_refusal_by_the_key_frees_the_token_slot(backend: StateBackend) -> None:
    policy = LimitPolicy(backend, settings())
    key = api_key(concurrency=1)
    held = await policy.acquire_session(key)
    assert isinstance(held, SessionLease)
    assert isinstance(await policy.acquire_session(key, token_id="t"), Rejection)
    await held.release()
    assert isinstance(await policy.acquire_session(key, token_id="t"), SessionLease)


async def test_session_leases_lapse_unless_refreshed(backend_factory: BackendFactory) -> None:
    key = api_key(concurrency=1)
    one = LimitPolicy(backend_factory(), settings(), lease_ttl_s=TTL)
    two = LimitPolicy(backend_factory(), settings(), lease_ttl_s=TTL)
    lease = await one.acquire_session(key)
    assert isinstance(lease, SessionLease)
    assert lease.refresh_interval_s == pytest.approx(TTL / 3)
    for _ in range(2):
        await asyncio.sleep(TTL * 0.6)
        assert await lease.refresh()
    assert isinstance(await two.acquire_session(key), Rejection)
    await asyncio.sleep(TTL * 1.2)
    # The holder stalled past its TTL: the slot went to another session, and is lost.
    taken = await two.acquire_session(key)
    assert isinstance(taken, SessionLease)
    assert not await lease.refresh()
    await lease.release()
    assert await taken.refresh()
    assert isinstance(await one.acquire_session(key), Rejection)


async def test_refresh_retakes_a_lapsed_slot_still_free(backend: StateBackend) -> None:
    policy = LimitPolicy(backend, settings(), lease_ttl_s=TTL)
    key = api_key(concurrency=1)
    lease = await policy.acquire_session(key)
    assert isinstance(lease, SessionLease)
    await asyncio.sleep(TTL * 1.2)
    assert await lease.refresh()
    assert isinstance(await policy.acquire_session(key), Rejection)
    await lease.release()
    assert not await lease.refresh()
    assert isinstance(await policy.acquire_session(key), SessionLease)


async def test_test_keys_have_a_daily_audio_cap(backend: StateBackend) -> None:
    now = utc("2024-05-01T23:00:00")
    policy = LimitPolicy(backend, settings(test_daily_audio_seconds=10), clock=lambda: now)
    key = api_key(env="test")
    assert policy.daily_cap(key) == 10
    assert await policy.add_audio(key, 6)
    assert not await policy.add_audio(key, 4)
    refused = await policy.acquire_session(key)
    assert isinstance(refused, Rejection)
    assert refused.code == "daily_cap_exceeded"
    assert refused.retry_after == pytest.approx(3600)
    # Another key's usage is its own; a new UTC day starts afresh.
    assert isinstance(
        await policy.acquire_session(api_key(key_id="key_2", env="test")), SessionLease
    )
    now = utc("2024-05-02T00:00:01")
    assert isinstance(await policy.acquire_session(key), SessionLease)
    assert await policy.add_audio(key, 9.5)


async def test_explicit_caps_apply_to_any_key_and_live_keys_have_none_by_default(
    backend: StateBackend,
) -> None:
    policy = LimitPolicy(backend, settings(test_daily_audio_seconds=10))
    live = api_key(env="live")
    assert policy.daily_cap(live) is None
    assert await policy.add_audio(live, 1e6)
    assert isinstance(await policy.acquire_session(live), SessionLease)
    capped = api_key(key_id="key_capped", env="live", daily_audio_seconds=100)
    assert policy.daily_cap(capped) == 100
    assert policy.daily_cap(api_key(env="test", daily_audio_seconds=100)) == 100
    assert await policy.add_audio(capped, 99)
    assert not await policy.add_audio(capped, 1)
    refused = await policy.acquire_session(capped)
    assert isinstance(refused, Rejection)
    assert refused.code == "daily_cap_exceeded"
    assert refused.retry_after is not None
    assert 0 < refused.retry_after <= 86400


async def test_connects_limited_per_key(backend: StateBackend) -> None:
    policy = LimitPolicy(backend, settings(connects_per_minute_per_key=2))
    assert await policy.check_connect("10.0.0.1", "key_a") is None
    assert await policy.check_connect("10.0.0.2", "key_a") is None
    refused = await policy.check_connect("10.0.0.3", "key_a")
    assert isinstance(refused, Rejection)
    assert refused.code == "rate_limit_exceeded"
    assert refused.retry_after is not None
    assert 29 < refused.retry_after <= 30
    assert await policy.check_connect("10.0.0.3", "key_b") is None


async def test_connects_limited_per_address(backend: StateBackend) -> None:
    policy = LimitPolicy(backend, settings(connects_per_minute_per_address=2))
    assert await policy.check_connect("10.0.0.1", "key_a") is None
    assert await policy.check_connect("10.0.0.1", "key_b") is None
    refused = await policy.check_connect("10.0.0.1", "key_c")
    assert isinstance(refused, Rejection)
    assert refused.code == "rate_limit_exceeded"
    assert "address" in refused.message
    assert await policy.check_connect("10.0.0.2", "key_c") is None


async def test_failed_authentications_block_an_address(backend: StateBackend) -> None:
    policy = LimitPolicy(backend, settings(auth_failures_per_minute_per_address=3))
    for _ in range(3):
        assert await policy.check_auth_block("192.0.2.1") is None
        await policy.record_auth_failure("192.0.2.1")
    retry_after = await policy.check_auth_block("192.0.2.1")
    assert retry_after is not None
    assert 19 < retry_after <= 20
    # Checking is free: it never prolongs the block.
    assert await policy.check_auth_block("192.0.2.1") == pytest.approx(retry_after, abs=0.5)
    assert await policy.check_auth_block("192.0.2.2") is None
    # The same host written as an IPv4-mapped IPv6 address is the same host.
    assert await policy.check_auth_block("::ffff:192.0.2.1") is not None


async def test_ipv6_addresses_are_limited_per_64(backend: StateBackend) -> None:
    policy = LimitPolicy(backend, settings(auth_failures_per_minute_per_address=2))
    await policy.record_auth_failure("2001:db8:1:2::1")
    await policy.record_auth_failure("2001:db8:1:2:ffff::9")
    assert await policy.check_auth_block("2001:db8:1:2::abcd") is not None
    assert await policy.check_auth_block("2001:db8:1:3::1") is None


@pytest.mark.e2e
async def test_each_process_sharing_redis_has_its_own_capacity(redis_url: str) -> None:
    namespace = f"test-{uuid.uuid4().hex}"
    backends = [RedisBackend(redis_url, namespace=namespace) for _ in range(2)]
    try:
        full, other = (LimitPolicy(b, settings(max_sessions=1)) for b in backends)
        assert isinstance(await full.acquire_session(api_key(key_id="key_00000001")), SessionLease)
        assert isinstance(await full.acquire_session(api_key(key_id="key_00000002")), Rejection)
        assert isinstance(await other.acquire_session(api_key(key_id="key_00000002")), SessionLease)
    finally:
        for backend in backends:
            await backend.close()


async def test_a_server_at_capacity_refuses_every_key(backend: StateBackend) -> None:
    policy = LimitPolicy(backend, settings(max_sessions=2))
    held = [await policy.acquire_session(api_key(key_id=f"key_0000000{i}")) for i in (1, 2)]
    assert all(isinstance(lease, SessionLease) for lease in held)
    refused = await policy.acquire_session(api_key(key_id="key_00000003"))
    assert refused == Rejection(
        "concurrency_limit_exceeded",
        "this server is at capacity (2 sessions); try again shortly",
        None,
    )
    # The refusal held nothing of the key's own allowance, and a freed seat is taken again.
    lease = held[0]
    assert isinstance(lease, SessionLease)
    await lease.release()
    assert isinstance(await policy.acquire_session(api_key(key_id="key_00000003")), SessionLease)


async def test_page_tokens_limited_per_address(backend: StateBackend) -> None:
    policy = LimitPolicy(backend, settings(page_tokens_per_minute_per_address=2))
    assert await policy.check_page_token("198.51.100.7") is None
    assert await policy.check_page_token("198.51.100.7") is None
    refused = await policy.check_page_token("198.51.100.7")
    assert isinstance(refused, Rejection) and refused.code == "rate_limit_exceeded"
    assert refused.retry_after is not None and 0 < refused.retry_after <= 30
    assert await policy.check_page_token("198.51.100.8") is None
    # Its own budget: the address's connects are untouched.
    assert await policy.check_connect("198.51.100.7", "key_a") is None


async def test_http_audio_requests_limited_per_key_in_every_process(
    backend_factory: BackendFactory,
) -> None:
    one, two = (
        LimitPolicy(backend_factory(), settings(max_http_audio_requests_per_key=2))
        for _ in range(2)
    )
    key = api_key(concurrency=1)
    first = await one.acquire_audio_request(key)
    second = await two.acquire_audio_request(key)
    assert isinstance(first, SessionLease) and isinstance(second, SessionLease)
    for policy in (one, two):
        refused = await policy.acquire_audio_request(key)
        assert refused == Rejection(
            "concurrency_limit_exceeded",
            "this key already has 2 speech and transcription requests under way",
            1.0,
        )
    # Sessions and another key's requests have allowances of their own.
    assert isinstance(await one.acquire_session(key), SessionLease)
    assert isinstance(await two.acquire_audio_request(api_key(key_id="key_00000002")), SessionLease)
    await first.release()
    assert isinstance(await two.acquire_audio_request(key), SessionLease)
    assert isinstance(await one.acquire_audio_request(key), Rejection)


async def test_http_audio_request_slots_lapse_unless_refreshed(backend: StateBackend) -> None:
    policy = LimitPolicy(backend, settings(max_http_audio_requests_per_key=1), lease_ttl_s=TTL)
    key = api_key()
    lease = await policy.acquire_audio_request(key)
    assert isinstance(lease, SessionLease)
    await asyncio.sleep(TTL * 0.6)
    assert await lease.refresh()
    await asyncio.sleep(TTL * 0.6)
    assert isinstance(await policy.acquire_audio_request(key), Rejection)
    await asyncio.sleep(TTL * 1.2)
    # Its holder stopped refreshing it (a process that died): the slot is free again.
    assert isinstance(await policy.acquire_audio_request(key), SessionLease)
