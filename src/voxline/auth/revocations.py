"""Which keys were revoked while their calls run, asked of the store once per interval for
all of this process's calls together.

Each live call checks its key every few seconds (a revoked key ends its calls). Asking the
store per call cost one query per call per check: 150 a second at 300 calls. Here one query,
``KeyStore.revoked_since``, answers for every call; the calls of a key revoked by any
process (``voxline keys revoke``, another worker) end within one interval.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Final

from voxline.auth.keys import KeyStore
from voxline.store.database import DatabaseUnavailable

log = logging.getLogger(__name__)

CHECK_INTERVAL: Final = 2.0
#: How far before the last check a revocation is looked for: the ``revoked_at`` of a key
#: revoked by another machine is that machine's clock, which may run behind this one's.
CLOCK_SKEW: Final = 60.0


class Revocations:
    def __init__(
        self,
        keys: KeyStore,
        *,
        interval: float = CHECK_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = keys
        self._interval = interval
        self._clock = clock
        self._wall_clock = wall_clock
        # Calls admitted before this object existed were admitted by this process, which
        # starts with it: no key can have been revoked under them earlier than now.
        self._since = wall_clock()
        self._due = clock()
        self._revoked: set[str] = set()
        self._lock = asyncio.Lock()
        self._unreachable = False

    async def revoked(self, key_id: str) -> bool:
        """Whether ``key_id`` was revoked after this process started (as of one interval
        ago at most)."""
        if self._clock() >= self._due:
            async with self._lock:
                if self._clock() >= self._due:  # else another call refreshed meanwhile
                    await self._refresh()
        return key_id in self._revoked

    async def _refresh(self) -> None:
        asked_at = self._wall_clock()
        try:
            found = await asyncio.to_thread(self._keys.revoked_since, self._since - CLOCK_SKEW)
        except DatabaseUnavailable as exc:
            # Calls go on as their keys stood: a revocation made meanwhile is seen once the
            # database answers again, since it is asked for everything since the last answer.
            if not self._unreachable:
                log.warning("cannot check for revoked keys: %s", exc)
            self._unreachable = True
            self._due = self._clock() + self._interval
            return
        if self._unreachable:
            log.info("checking for revoked keys again")
            self._unreachable = False
        self._revoked.update(found)
        self._since = asked_at
        self._due = self._clock() + self._interval
