"""Redis state backend, shared by every server process pointed at the same Redis."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError, ReadOnlyError, TimeoutError

from voxline.state.backend import StateUnavailable

#: Errors that mean Redis is out of reach for now, not that a command is wrong: refused or
#: dropped connections, timeouts, loading after a restart, a replica promoted mid-command.
_OUTAGE = (ConnectionError, TimeoutError, ReadOnlyError)
#: How long one command may take before Redis counts as unreachable: a caller is being
#: admitted meanwhile.
_SOCKET_TIMEOUT_S = 2.0


@contextmanager
def _reachable() -> Iterator[None]:
    try:
        yield
    except _OUTAGE as exc:
        raise StateUnavailable(f"redis unreachable: {exc}") from exc


# Scripts read the clock with TIME, so every process judges expiry by the Redis server's
# clock rather than its own. Scores and times are formatted explicitly: Lua would print
# numbers with 14 significant digits, rounding epoch seconds to 0.1 ms.
_PRELUDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local function fmt(x) return string.format('%.6f', x) end
local function prune(key) redis.call('ZREMRANGEBYSCORE', key, '-inf', fmt(now)) end
local function expire_with_last_lease(key)
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  redis.call('PEXPIREAT', key, string.format('%d', math.ceil(tonumber(last[2]) * 1000)))
end
local function hold(held, key, lease, ttl)
  redis.call('SADD', held, key .. '\\n' .. lease)
  redis.call('PEXPIRE', held, string.format('%d', math.ceil(tonumber(ttl) * 1000)))
end
"""

# KEYS: leases (sorted set of lease id by expiry), the holder's leases (a set of
# "<leases key>\n<lease id>", which lives as long as the holder's last lease).
# ARGV: limit, lease id, ttl.
_ACQUIRE = (
    _PRELUDE
    + """
prune(KEYS[1])
if not redis.call('ZSCORE', KEYS[1], ARGV[2])
    and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], fmt(now + tonumber(ARGV[3])), ARGV[2])
expire_with_last_lease(KEYS[1])
hold(KEYS[2], KEYS[1], ARGV[2], ARGV[3])
return 1
"""
)

# KEYS: leases, the holder's leases. ARGV: lease id, ttl.
_REFRESH = (
    _PRELUDE
    + """
prune(KEYS[1])
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], 'XX', fmt(now + tonumber(ARGV[2])), ARGV[1])
expire_with_last_lease(KEYS[1])
hold(KEYS[2], KEYS[1], ARGV[1], ARGV[2])
return 1
"""
)

# KEYS: the announced processes. ARGV: the namespace's key prefix. The ids of the
# processes whose announcement lapsed, their leases removed.
_FREE_LAPSED = """
local freed = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. 'process:' .. id) == 0 then
    local held = ARGV[1] .. 'held:' .. id
    for _, entry in ipairs(redis.call('SMEMBERS', held)) do
      local cut = string.find(entry, '\\n', 1, true)
      redis.call('ZREM', string.sub(entry, 1, cut - 1), string.sub(entry, cut + 1))
    end
    redis.call('DEL', held)
    redis.call('SREM', KEYS[1], id)
    table.insert(freed, id)
  end
end
return freed
"""

# GCRA. KEYS: theoretical arrival time. ARGV: limit, window, "1" to count the event.
_HIT = (
    _PRELUDE
    + """
local window = tonumber(ARGV[2])
local tat = math.max(tonumber(redis.call('GET', KEYS[1])) or now, now)
local new_tat = tat + window / tonumber(ARGV[1])
local allow_at = new_tat - window
if now < allow_at then
  return fmt(allow_at - now)
end
if ARGV[3] == '1' then
  local ttl_ms = math.max(1, math.ceil((new_tat - now) * 1000))
  redis.call('SET', KEYS[1], fmt(new_tat), 'PX', string.format('%d', ttl_ms))
end
return false
"""
)


# KEYS: when this Redis's data was first used. ARGV: settling time. The seconds left.
_SETTLING = (
    _PRELUDE
    + """
local born = tonumber(redis.call('GET', KEYS[1]))
if not born then
  born = now
  redis.call('SET', KEYS[1], fmt(now))
end
return fmt(math.max(0, born + tonumber(ARGV[1]) - now))
"""
)


#: The set of announced processes outlives the last of them by this much: it is emptied as
#: processes lapse, but not if every process of a deployment stops at once.
_PROCESSES_TTL_S = 24 * 3600.0


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


class RedisBackend:
    """A :class:`~voxline.state.backend.StateBackend` in Redis.

    Leases live in a sorted set per bucket scored by expiry; a Lua script prunes lapsed
    leases, counts and adds in one atomic step, and notes the lease among its process's
    (a set per process), so that another process can free them all when this one lapses.
    Keys are prefixed with ``namespace`` so that one Redis can serve several deployments.

    ``settle_s`` is how long after its data was born (first used, or lost in a restart) this
    Redis is :meth:`settling`: long enough for every live session's watchdog to re-assert
    its lease. The birth is a key in Redis itself, gone with the data it dates.
    """

    def __init__(
        self,
        url: str,
        *,
        namespace: str = "voxline",
        settle_s: float = 0.0,
        process_id: str | None = None,
    ) -> None:
        self.process_id = process_id or uuid.uuid4().hex
        self._redis = Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=_SOCKET_TIMEOUT_S,
            socket_connect_timeout=_SOCKET_TIMEOUT_S,
        )
        self._namespace = namespace
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._refresh = self._redis.register_script(_REFRESH)
        self._hit = self._redis.register_script(_HIT)
        self._settling = self._redis.register_script(_SETTLING)
        self._free_lapsed = self._redis.register_script(_FREE_LAPSED)
        self._settle_s = settle_s

    def _key(self, kind: str, name: str) -> str:
        return f"{self._namespace}:{kind}:{name}"

    @property
    def _held(self) -> str:
        return self._key("held", self.process_id)

    async def acquire_slot(self, bucket: str, limit: int, lease_id: str, ttl_s: float) -> bool:
        with _reachable():
            key = self._key("slots", bucket)
            return bool(await self._acquire(keys=[key, self._held], args=[limit, lease_id, ttl_s]))

    async def refresh_slot(self, bucket: str, lease_id: str, ttl_s: float) -> bool:
        with _reachable():
            key = self._key("slots", bucket)
            return bool(await self._refresh(keys=[key, self._held], args=[lease_id, ttl_s]))

    async def release_slot(self, bucket: str, lease_id: str) -> None:
        with _reachable():
            key = self._key("slots", bucket)
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.zrem(key, lease_id)
                pipe.srem(self._held, f"{key}\n{lease_id}")
                await pipe.execute()

    async def _gcra(self, bucket: str, limit: int, window_s: float, count: bool) -> float | None:
        with _reachable():
            key = self._key("rate", bucket)
            retry_after = await self._hit(keys=[key], args=[limit, window_s, "1" if count else "0"])
            return None if retry_after is None else float(retry_after)

    async def hit(self, bucket: str, limit: int, window_s: float) -> float | None:
        return await self._gcra(bucket, limit, window_s, count=True)

    async def peek(self, bucket: str, limit: int, window_s: float) -> float | None:
        return await self._gcra(bucket, limit, window_s, count=False)

    async def add_usage(self, bucket: str, amount: float, ttl_s: float) -> float:
        with _reachable():
            key = self._key("usage", bucket)
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incrbyfloat(key, amount)
                pipe.pexpire(key, _ms(ttl_s))
                total, _ = await pipe.execute()
            return float(total)

    async def get_usage(self, bucket: str) -> float:
        with _reachable():
            total = await self._redis.get(self._key("usage", bucket))
            return 0.0 if total is None else float(total)

    async def put(self, key: str, value: dict[str, Any], ttl_s: float) -> None:
        with _reachable():
            await self._redis.set(self._key("value", key), json.dumps(value), px=_ms(ttl_s))

    async def get(self, key: str) -> dict[str, Any] | None:
        with _reachable():
            encoded = await self._redis.get(self._key("value", key))
            if encoded is None:
                return None
            value: dict[str, Any] = json.loads(encoded)
            return value

    async def settling(self) -> float:
        with _reachable():
            left = await self._settling(keys=[self._key("born", "data")], args=[self._settle_s])
            return float(left)

    async def announce(self, presence: dict[str, Any], ttl_s: float) -> None:
        with _reachable():
            processes = self._key("processes", "all")
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(self._key("process", self.process_id), json.dumps(presence), px=_ms(ttl_s))
                pipe.sadd(processes, self.process_id)
                pipe.pexpire(processes, _ms(_PROCESSES_TTL_S))
                await pipe.execute()

    async def presences(self) -> dict[str, dict[str, Any]]:
        with _reachable():
            ids = sorted(str(i) for i in await self._redis.smembers(self._key("processes", "all")))
            if not ids:
                return {}
            encoded = await self._redis.mget([self._key("process", i) for i in ids])
            return {i: json.loads(e) for i, e in zip(ids, encoded, strict=True) if e is not None}

    async def free_lapsed(self) -> list[str]:
        with _reachable():
            freed = await self._free_lapsed(
                keys=[self._key("processes", "all")], args=[f"{self._namespace}:"]
            )
            return sorted(freed)

    async def withdraw(self) -> None:
        with _reachable():
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(self._key("process", self.process_id))
                pipe.sadd(self._key("processes", "all"), self.process_id)  # lapsed, so freed
                await pipe.execute()
        await self.free_lapsed()

    async def close(self) -> None:
        await self._redis.aclose()
