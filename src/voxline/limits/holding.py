"""A lease held for as long as a piece of work runs: an HTTP request, say."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from voxline.limits.policy import SessionLease
from voxline.state.backend import StateUnavailable

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def held(lease: SessionLease) -> AsyncIterator[None]:
    """Keep ``lease`` while the block runs, refreshed every ``refresh_interval_s``, and give
    it back when the block ends, however it ends.

    While the shared state is unreachable the lease is not refreshed, and is taken again
    once it answers if its limit still allows (:meth:`SessionLease.refresh`); one that
    cannot be given back lapses by itself after its TTL, or as soon as its process is taken
    for dead."""
    keeper = asyncio.create_task(_keep(lease))
    try:
        yield
    finally:
        keeper.cancel()
        with contextlib.suppress(StateUnavailable):
            await lease.release()


async def _keep(lease: SessionLease) -> None:
    while True:
        await asyncio.sleep(lease.refresh_interval_s)
        try:
            await lease.refresh()
        except StateUnavailable:
            continue
        except Exception:
            log.exception("refreshing a lease failed; retrying")
