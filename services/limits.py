"""Per-customer rate limits: a token bucket per key that remembers whether the key was warned.

Two implementations with one interface: in-process for a single instance, and on Redis (one
atomic script per check) so that every instance of a scaled-out deployment shares the budget.
"""

from __future__ import annotations

import ipaddress
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from redis.asyncio import Redis


def address_group(address: str) -> str:
    """What per-address limits count by: an IPv4 address, or an IPv6 address's /64.

    One home or phone gets a whole /64 and may use any of its addresses, so counting IPv6
    addresses apart would give one visitor unlimited quota.
    """
    try:
        ip = ipaddress.ip_address(address.strip().strip("[]").partition("%")[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class Verdict(Enum):
    ALLOW = "allow"
    WARN = "warn"  # over the limit for the first time in this burst: say "slow down" once
    DROP = "drop"  # still over the limit: store, but say nothing more


class RateLimiter(Protocol):
    async def check(self, key: str) -> Verdict: ...


class AdjustableRateLimiter(RateLimiter, Protocol):
    def set_rate(self, burst: int, per_minute: float) -> None: ...


@dataclass
class _Bucket:
    tokens: float
    updated: float
    warned: bool = False


class MemoryRateLimiter:
    def __init__(self, burst: int, per_minute: float, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 100_000) -> None:
        self.burst = float(burst)
        self.rate = per_minute / 60.0
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: dict[str, _Bucket] = {}

    def set_rate(self, burst: int, per_minute: float) -> None:
        self.burst = float(burst)
        self.rate = per_minute / 60.0

    async def check(self, key: str) -> Verdict:
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._forget_full_buckets(now)
            bucket = self._buckets[key] = _Bucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            bucket.warned = False
            return Verdict.ALLOW
        if bucket.warned:
            return Verdict.DROP
        bucket.warned = True
        return Verdict.WARN

    def _forget_full_buckets(self, now: float) -> None:
        for key, bucket in list(self._buckets.items()):
            if bucket.tokens + (now - bucket.updated) * self.rate >= self.burst:
                del self._buckets[key]


# KEYS[1] the bucket; ARGV: burst, rate per second, now. Returns 0 allow, 1 warn, 2 drop.
_TOKEN_BUCKET = """
local burst, rate, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated', 'warned')
local tokens = tonumber(state[1]) or burst
local updated = tonumber(state[2]) or now
local warned = state[3] == '1'
tokens = math.min(burst, tokens + math.max(0, now - updated) * rate)
local verdict = 0
if tokens >= 1 then
  tokens = tokens - 1
  warned = false
elseif warned then
  verdict = 2
else
  warned = true
  verdict = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(now), 'warned', warned and '1' or '0')
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 60)
return verdict
"""


class RedisRateLimiter:
    def __init__(self, redis: Redis, prefix: str, burst: int, per_minute: float) -> None:
        self.redis = redis
        self.prefix = prefix
        self.burst = burst
        self.rate = per_minute / 60.0
        self._script = redis.register_script(_TOKEN_BUCKET)

    def set_rate(self, burst: int, per_minute: float) -> None:
        self.burst = burst
        self.rate = per_minute / 60.0

    async def check(self, key: str) -> Verdict:
        # Redis's clock, not ours: instances' clocks may disagree.
        seconds, micros = await self.redis.time()
        verdict = await self._script(keys=[f"{self.prefix}:rate:{key}"],
                                     args=[self.burst, self.rate, seconds + micros / 1_000_000])
        return (Verdict.ALLOW, Verdict.WARN, Verdict.DROP)[int(verdict)]


class ConcurrencyLimiter(Protocol):
    """At most `limit` things at once per key (a person's studio runs): `acquire` gives a lease or None."""

    limit: int

    async def acquire(self, key: str) -> str | None: ...

    async def release(self, key: str, lease: str) -> None: ...


class MemoryConcurrencyLimiter:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._held: dict[str, set[str]] = {}

    async def acquire(self, key: str) -> str | None:
        held = self._held.setdefault(key, set())
        if len(held) >= self.limit:
            return None
        lease = uuid.uuid4().hex
        held.add(lease)
        return lease

    async def release(self, key: str, lease: str) -> None:
        held = self._held.get(key, set())
        held.discard(lease)
        if not held:
            self._held.pop(key, None)


# KEYS[1] the key's leases (a sorted set scored by when taken); ARGV: limit, now, lease seconds, lease.
# A lease outlives its holder only when an instance dies mid-run: it lapses after `lease seconds`.
_ACQUIRE = """
local limit, now, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
if redis.call('ZCARD', KEYS[1]) >= limit then
  return 0
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('EXPIRE', KEYS[1], ttl)
return 1
"""


class RedisConcurrencyLimiter:
    """The same limit across every instance sharing the Redis."""

    def __init__(self, redis: Redis, prefix: str, limit: int, lease_seconds: int = 900) -> None:
        self.redis = redis
        self.prefix = prefix
        self.limit = limit
        self.lease_seconds = lease_seconds
        self._script = redis.register_script(_ACQUIRE)

    async def acquire(self, key: str) -> str | None:
        seconds, micros = await self.redis.time()
        lease = uuid.uuid4().hex
        taken = await self._script(keys=[f"{self.prefix}:running:{key}"],
                                   args=[self.limit, seconds + micros / 1_000_000, self.lease_seconds, lease])
        return lease if int(taken) else None

    async def release(self, key: str, lease: str) -> None:
        await self.redis.zrem(f"{self.prefix}:running:{key}", lease)
