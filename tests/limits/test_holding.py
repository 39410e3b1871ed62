"""A lease held while a piece of work runs: refreshed meanwhile, given back however it ends."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.keys import api_key
from voxline.config import LimitSettings
from voxline.limits.holding import held
from voxline.limits.policy import LimitPolicy, Rejection, SessionLease
from voxline.state.backend import StateBackend

TTL = 0.2


def _policy(backend: StateBackend) -> LimitPolicy:
    return LimitPolicy(backend, LimitSettings(max_http_audio_requests_per_key=1), lease_ttl_s=TTL)


async def _lease(policy: LimitPolicy) -> SessionLease:
    lease = await policy.acquire_audio_request(api_key())
    assert isinstance(lease, SessionLease)
    return lease


async def _free(policy: LimitPolicy) -> bool:
    taken = await policy.acquire_audio_request(api_key())
    if isinstance(taken, Rejection):
        return False
    await taken.release()
    return True


async def test_a_lease_is_kept_past_its_ttl_while_held_and_given_back_after(
    backend: StateBackend,
) -> None:
    policy = _policy(backend)
    async with held(await _lease(policy)):
        await asyncio.sleep(TTL * 3)  # three TTLs: only refreshes keep it
        assert not await _free(policy)
    assert await _free(policy)


async def test_a_lease_is_given_back_when_the_work_fails(backend: StateBackend) -> None:
    policy = _policy(backend)
    with pytest.raises(ValueError, match="bad request"):
        async with held(await _lease(policy)):
            raise ValueError("bad request")
    assert await _free(policy)


async def test_a_lease_is_given_back_when_the_work_is_cancelled(backend: StateBackend) -> None:
    policy = _policy(backend)
    lease = await _lease(policy)
    entered = asyncio.Event()

    async def work() -> None:
        async with held(lease):
            entered.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(work())
    await entered.wait()
    assert not await _free(policy)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await _free(policy)
