"""The shared-state primitives that limits and browser tokens are built on."""

from __future__ import annotations

from typing import Any, Protocol


class StateUnavailable(Exception):
    """The backend cannot be reached (Redis down, restarting or failing over).

    Callers fail closed on it: no new session is admitted while limits cannot be checked,
    and live sessions carry on, their leases re-asserted once the backend answers again.
    """


class StateBackend(Protocol):
    """Expiring shared state: in process (:class:`MemoryBackend`) or across processes (Redis).

    Every method is atomic: concurrent callers, in one process or several, never see a
    half-done update. Times are in seconds. Buckets and keys are free-form strings.

    Each backend speaks for one server process, :attr:`process_id`, which holds the slots
    it acquires. A process that announces itself (:meth:`announce`) has its slots given back by the
    others as soon as its announcement lapses (:meth:`free_lapsed`), rather than lease by
    lease as their TTLs run out.
    """

    process_id: str

    async def acquire_slot(self, bucket: str, limit: int, lease_id: str, ttl_s: float) -> bool:
        """Take one of ``limit`` concurrent slots in ``bucket`` for ``ttl_s`` seconds.

        A lease that is not refreshed within its TTL lapses and frees its slot, so a process
        that dies holding slots gives them back. Acquiring a lease already held renews it.
        """
        ...

    async def refresh_slot(self, bucket: str, lease_id: str, ttl_s: float) -> bool:
        """Extend a lease to ``ttl_s`` from now. False if it had lapsed (it is not retaken)."""
        ...

    async def release_slot(self, bucket: str, lease_id: str) -> None:
        """Give a slot back; releasing a lease that is not held does nothing."""
        ...

    async def hit(self, bucket: str, limit: int, window_s: float) -> float | None:
        """Count one event against ``limit`` per ``window_s``.

        None if it is allowed (and counted); otherwise the seconds to wait before one
        would be, and the event is not counted. The algorithm is GCRA: an allowance of
        ``limit`` events at once, refilled steadily at ``limit / window_s``.
        """
        ...

    async def peek(self, bucket: str, limit: int, window_s: float) -> float | None:
        """What :meth:`hit` would return now, without counting anything."""
        ...

    async def add_usage(self, bucket: str, amount: float, ttl_s: float) -> float:
        """Add to a counter and return its new total; the counter expires ``ttl_s`` from now."""
        ...

    async def get_usage(self, bucket: str) -> float:
        """A counter's total; 0 if it never existed or expired."""
        ...

    async def put(self, key: str, value: dict[str, Any], ttl_s: float) -> None:
        """Store a JSON-serialisable mapping for ``ttl_s`` seconds."""
        ...

    async def get(self, key: str) -> dict[str, Any] | None:
        """A stored mapping (a copy), or None if absent or expired."""
        ...

    async def settling(self) -> float:
        """Seconds before this state can be trusted to hold every live session's lease; 0
        once it can.

        Shared state that was lost (a Redis restarted empty) holds none of the leases of the
        sessions still running; their watchdogs take them again within a few seconds. New
        sessions must wait that long, or they could take the seats of running ones.
        """
        ...

    async def announce(self, presence: dict[str, Any], ttl_s: float) -> None:
        """This process is alive, as ``presence`` (JSON-serialisable) describes it, for the
        next ``ttl_s`` seconds: announce again before then."""
        ...

    async def presences(self) -> dict[str, dict[str, Any]]:
        """The last announcement of every process sharing this state that has not lapsed,
        by process id."""
        ...

    async def free_lapsed(self) -> list[str]:
        """Give back every slot held by a process whose announcement lapsed (it died, or
        lost touch with this state for longer than its TTL); the ids of those processes.

        A process that was only stalled takes its slots again at its sessions' next
        refresh, as it would after its leases lapsed (see ``SessionLease.refresh``).
        """
        ...

    async def withdraw(self) -> None:
        """This process stops: forget its announcement and give back what it still holds."""
        ...

    async def close(self) -> None: ...
