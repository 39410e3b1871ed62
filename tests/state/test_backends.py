"""State backends, in memory and on a real Redis: slots, rates, counters and values that
expire, shared by every backend on one store."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

import pytest
from redis.asyncio import Redis

from voxline.bench.process import free_port
from voxline.state import memory
from voxline.state.backend import StateBackend, StateUnavailable
from voxline.state.memory import MemoryBackend
from voxline.state.redis import RedisBackend

# Short enough to keep the suite fast, long enough not to lapse between two awaits.
TTL = 0.2

BackendFactory = Callable[[], StateBackend]


async def test_slots_up_to_the_limit_then_released(backend: StateBackend) -> None:
    assert await backend.acquire_slot("b", 2, "a", 10)
    assert await backend.acquire_slot("b", 2, "b", 10)
    assert not await backend.acquire_slot("b", 2, "c", 10)
    await backend.release_slot("b", "a")
    assert await backend.acquire_slot("b", 2, "c", 10)
    # Buckets are independent; releasing what is not held is harmless.
    assert await backend.acquire_slot("other", 1, "a", 10)
    await backend.release_slot("b", "nobody")
    assert not await backend.acquire_slot("b", 2, "d", 10)


async def test_acquiring_a_held_lease_again_takes_no_second_slot(backend: StateBackend) -> None:
    assert await backend.acquire_slot("b", 2, "a", 10)
    assert await backend.acquire_slot("b", 2, "a", 10)
    assert await backend.acquire_slot("b", 2, "b", 10)
    assert await backend.acquire_slot("b", 2, "a", 10)


async def test_leases_lapse_unless_refreshed(backend: StateBackend) -> None:
    assert await backend.acquire_slot("b", 2, "kept", TTL)
    assert await backend.acquire_slot("b", 2, "dropped", TTL)
    await asyncio.sleep(TTL * 0.6)
    assert await backend.refresh_slot("b", "kept", TTL)
    await asyncio.sleep(TTL * 0.6)
    # "dropped" lapsed: its slot is free again, and it cannot be refreshed back.
    assert not await backend.refresh_slot("b", "dropped", TTL)
    assert await backend.acquire_slot("b", 2, "new", TTL)
    assert not await backend.acquire_slot("b", 2, "third", TTL)
    assert await backend.refresh_slot("b", "kept", TTL)


async def test_backends_on_one_store_share_slots(backend_factory: BackendFactory) -> None:
    first, second = backend_factory(), backend_factory()
    assert await first.acquire_slot("b", 1, "a", 10)
    assert not await second.acquire_slot("b", 1, "b", 10)
    await second.release_slot("b", "a")
    assert await second.acquire_slot("b", 1, "b", 10)
    assert not await first.acquire_slot("b", 1, "a", 10)


async def test_slot_of_a_dead_process_is_freed_by_expiry(backend_factory: BackendFactory) -> None:
    dead, alive = backend_factory(), backend_factory()
    assert await dead.acquire_slot("b", 1, "a", TTL)
    assert not await alive.acquire_slot("b", 1, "b", TTL)
    await asyncio.sleep(TTL * 1.2)
    assert await alive.acquire_slot("b", 1, "b", TTL)


async def test_hit_allows_a_burst_then_tells_when_to_retry(backend: StateBackend) -> None:
    for _ in range(4):
        assert await backend.hit("r", 4, 0.4) is None
    retry_after = await backend.hit("r", 4, 0.4)
    assert retry_after is not None
    assert 0.05 < retry_after <= 0.1
    # Refused hits are not counted: the wait does not grow.
    again = await backend.hit("r", 4, 0.4)
    assert again is not None
    assert again <= retry_after
    await asyncio.sleep(retry_after + 0.01)
    assert await backend.hit("r", 4, 0.4) is None
    assert await backend.hit("r", 4, 0.4) is not None
    assert await backend.hit("other", 4, 0.4) is None


async def test_peek_counts_nothing(backend: StateBackend) -> None:
    for _ in range(10):
        assert await backend.peek("r", 2, 60) is None
    assert await backend.hit("r", 2, 60) is None
    assert await backend.peek("r", 2, 60) is None
    assert await backend.hit("r", 2, 60) is None
    retry_after = await backend.peek("r", 2, 60)
    assert retry_after is not None
    assert 29 < retry_after <= 30
    assert await backend.hit("r", 2, 60) is not None


async def test_backends_on_one_store_share_rates(backend_factory: BackendFactory) -> None:
    first, second = backend_factory(), backend_factory()
    assert await first.hit("r", 2, 60) is None
    assert await second.hit("r", 2, 60) is None
    assert await first.hit("r", 2, 60) is not None


async def test_usage_adds_up_and_expires(backend: StateBackend) -> None:
    assert await backend.get_usage("u") == 0.0
    assert await backend.add_usage("u", 1.5, TTL) == pytest.approx(1.5)
    assert await backend.add_usage("u", 2.25, TTL) == pytest.approx(3.75)
    assert await backend.get_usage("u") == pytest.approx(3.75)
    await asyncio.sleep(TTL * 1.2)
    assert await backend.get_usage("u") == 0.0


async def test_values_round_trip_as_copies_and_expire(backend_factory: BackendFactory) -> None:
    backend, other = backend_factory(), backend_factory()
    value = {"a": [1, "two"], "b": None}
    await backend.put("k", value, TTL)
    value["a"].append(3)  # type: ignore[attr-defined]
    assert await other.get("k") == {"a": [1, "two"], "b": None}
    assert await backend.get("missing") is None
    await asyncio.sleep(TTL * 1.2)
    assert await backend.get("k") is None


# -- processes that come and go -------------------------------------------------------------


async def test_a_process_is_present_while_it_announces_itself(backend: StateBackend) -> None:
    assert await backend.presences() == {}
    await backend.announce({"node": "a", "sessions": 3}, TTL)
    assert await backend.presences() == {backend.process_id: {"node": "a", "sessions": 3}}
    await asyncio.sleep(TTL * 1.2)
    assert await backend.presences() == {}
    await backend.announce({"node": "a", "sessions": 0}, TTL)
    await backend.withdraw()
    assert await backend.presences() == {}


@pytest.mark.e2e
async def test_the_seats_of_a_process_that_lapses_are_freed_at_once(redis_url: str) -> None:
    namespace = f"test-{uuid.uuid4().hex}"
    dead, alive = (RedisBackend(redis_url, namespace=namespace) for _ in range(2))
    try:
        await dead.announce({"node": "a"}, TTL)
        await alive.announce({"node": "b"}, 60)
        # Leases far longer than the announcement: only the lapse can free them.
        assert await dead.acquire_slot("key", 2, "call-1", 60)
        assert await dead.acquire_slot("key", 2, "call-2", 60)
        assert await dead.acquire_slot("server", 1, "call-1", 60)
        assert await alive.acquire_slot("other", 1, "call-3", 60)
        await dead.release_slot("key", "call-2")
        assert set(await alive.presences()) == {dead.process_id, alive.process_id}
        assert await alive.free_lapsed() == []
        assert not await alive.acquire_slot("key", 1, "call-4", 60)

        await asyncio.sleep(TTL * 1.2)
        assert await alive.presences() == {alive.process_id: {"node": "b"}}
        assert await alive.free_lapsed() == [dead.process_id]
        assert await alive.free_lapsed() == []
        assert await alive.acquire_slot("key", 1, "call-4", 60)
        assert await alive.acquire_slot("server", 1, "call-5", 60)
        assert not await alive.acquire_slot("other", 1, "call-6", 60)  # the living keep theirs

        # A process that was only stalled takes its seat again if it is still free.
        assert await dead.refresh_slot("key", "call-1", 60) is False
        assert not await dead.acquire_slot("key", 1, "call-1", 60)
    finally:
        for backend in (dead, alive):
            await backend.close()


@pytest.mark.e2e
async def test_a_withdrawn_process_leaves_nothing_behind(redis_url: str) -> None:
    namespace = f"test-{uuid.uuid4().hex}"
    backend = RedisBackend(redis_url, namespace=namespace)
    client = Redis.from_url(redis_url)
    try:
        await backend.announce({"node": "a"}, 60)
        assert await backend.acquire_slot("key", 1, "call-1", 60)
        await backend.withdraw()
        assert await client.keys(f"{namespace}:*") == []
    finally:
        await client.aclose()
        await backend.close()


# -- nothing is left behind -----------------------------------------------------------------


@pytest.mark.e2e
async def test_redis_keys_expire_on_their_own(redis_url: str) -> None:
    backend = RedisBackend(redis_url, namespace="test-expiry")
    try:
        await backend.acquire_slot("s", 2, "a", TTL)
        await backend.acquire_slot("s", 2, "b", TTL / 2)
        await backend.hit("r", 1, TTL)
        await backend.add_usage("u", 1, TTL)
        await backend.put("v", {}, TTL)
        client = Redis.from_url(redis_url)
        try:
            # The lease set, the process's leases, the rate, the usage and the value.
            assert len(await client.keys("test-expiry:*")) == 5
            # The lease set lives exactly as long as its last lease.
            assert 0 < await client.pttl("test-expiry:slots:s") <= TTL * 1000
            await asyncio.sleep(TTL * 1.2)
            assert await client.keys("test-expiry:*") == []
        finally:
            await client.aclose()
    finally:
        await backend.close()


async def test_memory_sweeps_what_nobody_touches_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "_SWEEP_INTERVAL_S", 0.0)
    backend = MemoryBackend()
    await backend.acquire_slot("s", 2, "a", TTL)
    await backend.hit("r", 1, TTL)
    await backend.add_usage("u", 1, TTL)
    await backend.put("v", {}, TTL)
    await asyncio.sleep(TTL * 1.2)
    await backend.get("other")
    assert vars(backend) | {"_next_sweep": None} == {
        "process_id": backend.process_id,
        "_presence": None,
        "_slots": {},
        "_tats": {},
        "_counters": {},
        "_values": {},
        "_next_sweep": None,
    }


# -- outages and restarts -------------------------------------------------------------------


@pytest.mark.e2e
async def test_redis_settles_after_its_data_is_born_again(redis_url: str) -> None:
    namespace = f"test-{uuid.uuid4().hex}"
    backend = RedisBackend(redis_url, namespace=namespace, settle_s=0.5)
    client = Redis.from_url(redis_url)
    try:
        assert 0 < await backend.settling() <= 0.5
        await asyncio.sleep(0.6)
        assert await backend.settling() == 0
        # Lost with the data (a restart without persistence): settling again.
        await client.delete(*await client.keys(f"{namespace}:*"))
        assert await backend.settling() > 0
    finally:
        await client.aclose()
        await backend.close()
    assert await MemoryBackend().settling() == 0


@pytest.mark.e2e
async def test_an_unreachable_redis_is_reported_as_such_promptly() -> None:
    backend = RedisBackend(f"redis://127.0.0.1:{free_port()}/0")
    attempts: list[Callable[[], Awaitable[object]]] = [
        lambda: backend.acquire_slot("s", 1, "a", TTL),
        lambda: backend.refresh_slot("s", "a", TTL),
        lambda: backend.release_slot("s", "a"),
        lambda: backend.hit("r", 1, TTL),
        lambda: backend.add_usage("u", 1, TTL),
        lambda: backend.get("v"),
        backend.settling,
    ]
    try:
        for attempt in attempts:
            started = time.monotonic()
            with pytest.raises(StateUnavailable):
                await attempt()
            assert time.monotonic() - started < 3
    finally:
        await backend.close()
