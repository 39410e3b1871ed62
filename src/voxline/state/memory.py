"""In-process state backend, for a server running as a single process."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

#: How often expired entries of buckets nobody touches again are swept away.
_SWEEP_INTERVAL_S = 60.0


def gcra(tat: float, now: float, limit: int, window_s: float) -> tuple[float | None, float]:
    """One GCRA step: (retry-after or None, new theoretical arrival time).

    ``tat`` is when the bucket would next be empty; an event is allowed if, after adding
    one emission interval to it, it lies no more than a whole window ahead of now.
    """
    new_tat = max(tat, now) + window_s / limit
    allow_at = new_tat - window_s
    if now < allow_at:
        return allow_at - now, tat
    return None, new_tat


class MemoryBackend:
    """A :class:`~voxline.state.backend.StateBackend` in this process's memory.

    No method awaits, so each runs to completion before another coroutine on the event
    loop can start: that is what makes them atomic. Use it from one event loop. Time is
    the monotonic clock, immune to wall-clock steps.
    """

    def __init__(self, *, process_id: str | None = None) -> None:
        self.process_id = process_id or uuid.uuid4().hex
        self._presence: tuple[str, float] | None = None
        self._slots: dict[str, dict[str, float]] = {}
        self._tats: dict[str, float] = {}
        self._counters: dict[str, tuple[float, float]] = {}
        self._values: dict[str, tuple[str, float]] = {}
        self._next_sweep = time.monotonic() + _SWEEP_INTERVAL_S

    def _now(self) -> float:
        now = time.monotonic()
        if now >= self._next_sweep:
            self._sweep(now)
            self._next_sweep = now + _SWEEP_INTERVAL_S
        return now

    def _sweep(self, now: float) -> None:
        for bucket in list(self._slots):
            self._live_leases(bucket, now)
        self._tats = {k: tat for k, tat in self._tats.items() if tat > now}
        self._counters = {k: v for k, v in self._counters.items() if v[1] > now}
        self._values = {k: v for k, v in self._values.items() if v[1] > now}

    def _live_leases(self, bucket: str, now: float) -> dict[str, float]:
        leases = self._slots.get(bucket, {})
        live = {lease: expiry for lease, expiry in leases.items() if expiry > now}
        if live:
            self._slots[bucket] = live
        else:
            self._slots.pop(bucket, None)
        return live

    async def acquire_slot(self, bucket: str, limit: int, lease_id: str, ttl_s: float) -> bool:
        now = self._now()
        leases = self._live_leases(bucket, now)
        if lease_id not in leases and len(leases) >= limit:
            return False
        self._slots[bucket] = {**leases, lease_id: now + ttl_s}
        return True

    async def refresh_slot(self, bucket: str, lease_id: str, ttl_s: float) -> bool:
        now = self._now()
        leases = self._live_leases(bucket, now)
        if lease_id not in leases:
            return False
        leases[lease_id] = now + ttl_s
        return True

    async def release_slot(self, bucket: str, lease_id: str) -> None:
        leases = self._slots.get(bucket)
        if leases is not None:
            leases.pop(lease_id, None)
            if not leases:
                del self._slots[bucket]

    async def hit(self, bucket: str, limit: int, window_s: float) -> float | None:
        now = self._now()
        retry_after, self._tats[bucket] = gcra(self._tats.get(bucket, now), now, limit, window_s)
        return retry_after

    async def peek(self, bucket: str, limit: int, window_s: float) -> float | None:
        now = self._now()
        retry_after, _ = gcra(self._tats.get(bucket, now), now, limit, window_s)
        return retry_after

    def _usage(self, bucket: str, now: float) -> float:
        total, expiry = self._counters.get(bucket, (0.0, 0.0))
        return total if expiry > now else 0.0

    async def add_usage(self, bucket: str, amount: float, ttl_s: float) -> float:
        now = self._now()
        total = self._usage(bucket, now) + amount
        self._counters[bucket] = (total, now + ttl_s)
        return total

    async def get_usage(self, bucket: str) -> float:
        return self._usage(bucket, self._now())

    async def put(self, key: str, value: dict[str, Any], ttl_s: float) -> None:
        # Stored as JSON, as Redis stores it: a copy, and only what Redis could hold.
        self._values[key] = (json.dumps(value), self._now() + ttl_s)

    async def get(self, key: str) -> dict[str, Any] | None:
        encoded, expiry = self._values.get(key, ("", 0.0))
        if expiry <= self._now():
            return None
        value: dict[str, Any] = json.loads(encoded)
        return value

    async def settling(self) -> float:
        """Never: this state lives and dies with the sessions it holds the leases of."""
        return 0.0

    async def announce(self, presence: dict[str, Any], ttl_s: float) -> None:
        self._presence = (json.dumps(presence), self._now() + ttl_s)

    async def presences(self) -> dict[str, dict[str, Any]]:
        if self._presence is None or self._presence[1] <= self._now():
            return {}
        return {self.process_id: json.loads(self._presence[0])}

    async def free_lapsed(self) -> list[str]:
        """None: no other process shares this state."""
        return []

    async def withdraw(self) -> None:
        self._presence = None
        self._slots.clear()

    async def close(self) -> None:
        self._presence = None
        self._slots.clear()
        self._tats.clear()
        self._counters.clear()
        self._values.clear()
