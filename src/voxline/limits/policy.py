"""The product's limits: connect rates, failed-auth blocking, concurrency and daily caps.

Refusals are the protocol's :class:`Rejection`, ready to render as an HTTP error or as an
error event and close code. Rates are GCRA (see :meth:`StateBackend.hit`): a limit of N per
minute admits N at once, then one every 60/N seconds.
"""

from __future__ import annotations

import ipaddress
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from voxline.auth.keys import ApiKey
from voxline.config import LimitSettings
from voxline.protocol.errors import Rejection
from voxline.state.backend import StateBackend

__all__ = ["LimitPolicy", "Rejection", "SessionLease"]

_MINUTE = 60.0
#: A day's usage outlives the day by this much, so that a process whose clock lags a little
#: still finds it.
_USAGE_GRACE_S = 3600.0
#: How long a key refused for having its HTTP audio requests all under way is told to wait:
#: a piece of speech or of a clip takes about a second.
AUDIO_REQUEST_RETRY_AFTER_S = 1.0


def _address_bucket(address: str) -> str:
    """The unit an address is limited as: the address, or its /64 for IPv6.

    One IPv6 host usually controls a whole /64, so limiting single addresses would let it
    pick a fresh one per attempt.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class SessionLease:
    """The concurrency slots held by one session (or one HTTP audio request).

    Slots lapse after ``ttl_s`` unless refreshed, so call :meth:`refresh` every
    :attr:`refresh_interval_s` while the session lasts, and :meth:`release` when it ends.
    """

    def __init__(
        self,
        backend: StateBackend,
        slots: tuple[tuple[str, int], ...],
        lease_id: str,
        ttl_s: float,
    ) -> None:
        self._backend = backend
        self._slots = slots
        self.lease_id = lease_id
        self.ttl_s = ttl_s
        self._released = False

    @property
    def refresh_interval_s(self) -> float:
        return self.ttl_s / 3

    async def refresh(self) -> bool:
        """Extend every slot; False if one was lost, and the session should then end.

        A slot that lapsed (a stalled event loop, a Redis failover) is taken again if its
        limit still allows, since then no other session was refused for want of it.
        """
        if self._released:
            return False
        held = True
        for bucket, limit in self._slots:
            if not (
                await self._backend.refresh_slot(bucket, self.lease_id, self.ttl_s)
                or await self._backend.acquire_slot(bucket, limit, self.lease_id, self.ttl_s)
            ):
                held = False
        return held

    async def release(self) -> None:
        """Give the slots back. Safe to call more than once."""
        if self._released:
            return
        self._released = True
        for bucket, _ in self._slots:
            await self._backend.release_slot(bucket, self.lease_id)


class LimitPolicy:
    """Checks made before and during a session; every state lives in ``backend``."""

    def __init__(
        self,
        backend: StateBackend,
        settings: LimitSettings,
        *,
        lease_ttl_s: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._backend = backend
        self._settings = settings
        self._lease_ttl_s = lease_ttl_s
        self._clock = clock

    async def check_auth_block(self, address: str) -> float | None:
        """Seconds to wait if ``address`` failed authentication too often, else None.

        Checking counts nothing, so a blocked client that keeps trying is not held off for
        longer; only further failures are counted, by :meth:`record_auth_failure`.
        """
        return await self._backend.peek(
            f"auth-failures:{_address_bucket(address)}",
            self._settings.auth_failures_per_minute_per_address,
            _MINUTE,
        )

    async def record_auth_failure(self, address: str) -> None:
        await self._backend.hit(
            f"auth-failures:{_address_bucket(address)}",
            self._settings.auth_failures_per_minute_per_address,
            _MINUTE,
        )

    async def check_connect(self, address: str, key_id: str) -> Rejection | None:
        """Count a connection attempt against the address's and the key's rates."""
        retry_after = await self._backend.hit(
            f"connects:address:{_address_bucket(address)}",
            self._settings.connects_per_minute_per_address,
            _MINUTE,
        )
        if retry_after is not None:
            return Rejection(
                "rate_limit_exceeded", "too many connections from this address", retry_after
            )
        retry_after = await self._backend.hit(
            f"connects:key:{key_id}", self._settings.connects_per_minute_per_key, _MINUTE
        )
        if retry_after is not None:
            return Rejection(
                "rate_limit_exceeded", "too many connections for this key", retry_after
            )
        return None

    async def check_page_token(self, address: str) -> Rejection | None:
        """Count a page token minted for ``address``. The page key is everyone's, so each
        address gets its own share of it before the key's connect rate is spent."""
        retry_after = await self._backend.hit(
            f"page-tokens:address:{_address_bucket(address)}",
            self._settings.page_tokens_per_minute_per_address,
            _MINUTE,
        )
        if retry_after is None:
            return None
        return Rejection(
            "rate_limit_exceeded", "too many page tokens for this address", retry_after
        )

    def daily_cap(self, key: ApiKey) -> float | None:
        """Seconds of audio ``key`` may use per UTC day: its own cap, else test keys' default."""
        if key.daily_audio_seconds is not None:
            return key.daily_audio_seconds
        return self._settings.test_daily_audio_seconds if key.env == "test" else None

    def _today(self) -> tuple[str, float]:
        """Today's UTC date and the seconds left until it ends."""
        now = datetime.fromtimestamp(self._clock(), UTC)
        midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
        return now.date().isoformat(), (midnight - now).total_seconds()

    async def usage_today(self, key: ApiKey) -> float:
        """Seconds of audio ``key`` has used today (UTC)."""
        day, _ = self._today()
        return await self._backend.get_usage(f"audio:{key.id}:{day}")

    async def check_daily_cap(self, key: ApiKey) -> Rejection | None:
        """``daily_cap_exceeded`` if ``key`` has used its audio for today."""
        cap = self.daily_cap(key)
        if cap is None:
            return None
        day, until_midnight = self._today()
        if await self._backend.get_usage(f"audio:{key.id}:{day}") < cap:
            return None
        return Rejection(
            "daily_cap_exceeded",
            f"this key has used its {cap:g} seconds of audio for today (UTC)",
            until_midnight,
        )

    async def _check_settled(self) -> Rejection | None:
        """``service_unavailable`` while the shared state is settling: the leases of what is
        under way may not all be back in it yet."""
        settling = await self._backend.settling()
        if settling <= 0:
            return None
        return Rejection(
            "service_unavailable",
            "the server's shared state is recovering; try again shortly",
            settling,
        )

    async def acquire_session(
        self, key: ApiKey, *, token_id: str | None = None
    ) -> SessionLease | Rejection:
        """Admit a session for ``key`` (through browser token ``token_id``, if given)."""
        unsettled = await self._check_settled()
        if unsettled is not None:
            return unsettled
        spent = await self.check_daily_cap(key)
        if spent is not None:
            return spent
        slots: list[tuple[str, int, str]] = []
        if token_id is not None:
            slots.append((f"sessions:token:{token_id}", 1, "this session token is already in use"))
        limit = (
            key.concurrency if key.concurrency is not None else self._settings.default_concurrency
        )
        slots.append(
            (f"sessions:key:{key.id}", limit, f"this key already has {limit} concurrent sessions")
        )
        capacity = self._settings.max_sessions
        if capacity is not None:
            slots.append(
                (
                    # A process's capacity, not the cluster's.
                    f"sessions:server:{self._backend.process_id}",
                    capacity,
                    f"this server is at capacity ({capacity} sessions); try again shortly",
                )
            )
        lease_id = uuid.uuid4().hex
        taken: list[str] = []
        for bucket, bucket_limit, message in slots:
            if not await self._backend.acquire_slot(
                bucket, bucket_limit, lease_id, self._lease_ttl_s
            ):
                for held in taken:
                    await self._backend.release_slot(held, lease_id)
                return Rejection("concurrency_limit_exceeded", message, None)
            taken.append(bucket)
        return SessionLease(
            self._backend,
            tuple((bucket, bucket_limit) for bucket, bucket_limit, _ in slots),
            lease_id,
            self._lease_ttl_s,
        )

    async def acquire_audio_request(self, key: ApiKey) -> SessionLease | Rejection:
        """One of ``key``'s slots for HTTP speech and transcription requests under way, in
        every process sharing the state; ``concurrency_limit_exceeded`` when all are held."""
        unsettled = await self._check_settled()
        if unsettled is not None:
            return unsettled
        limit = self._settings.max_http_audio_requests_per_key
        bucket = f"audio-requests:key:{key.id}"
        lease_id = uuid.uuid4().hex
        if not await self._backend.acquire_slot(bucket, limit, lease_id, self._lease_ttl_s):
            return Rejection(
                "concurrency_limit_exceeded",
                f"this key already has {limit} speech and transcription requests under way",
                AUDIO_REQUEST_RETRY_AFTER_S,
            )
        return SessionLease(self._backend, ((bucket, limit),), lease_id, self._lease_ttl_s)

    async def add_audio(self, key: ApiKey, seconds: float) -> bool:
        """Count audio (a call's caller and agent audio, the HTTP API's speech and clips)
        toward today's usage; False once the key's cap, if it has one, is used up."""
        day, until_midnight = self._today()
        total = await self._backend.add_usage(
            f"audio:{key.id}:{day}", seconds, until_midnight + _USAGE_GRACE_S
        )
        cap = self.daily_cap(key)
        return cap is None or total < cap
