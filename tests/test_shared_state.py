"""Rate limits and update de-duplication: the same behaviour in process and on a real Redis."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from bot.dedup import MemoryRecentUpdates, RecentUpdates, RedisRecentUpdates
from services.limits import MemoryRateLimiter, RateLimiter, RedisRateLimiter, Verdict

REDIS_URL = os.environ.get("TEST_REDIS_URL", "")
KINDS = ["memory", "redis"] if REDIS_URL else ["memory"]


@pytest.fixture(params=KINDS)
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[RateLimiter]:
    if request.param == "memory":
        yield MemoryRateLimiter(burst=3, per_minute=60)
        return
    client = Redis.from_url(REDIS_URL)
    yield RedisRateLimiter(client, f"test-{uuid.uuid4().hex}", burst=3, per_minute=60)
    await client.aclose()


@pytest.fixture(params=KINDS)
async def recent(request: pytest.FixtureRequest) -> AsyncIterator[RecentUpdates]:
    if request.param == "memory":
        yield MemoryRecentUpdates()
        return
    client = Redis.from_url(REDIS_URL)
    yield RedisRecentUpdates(client, f"test-{uuid.uuid4().hex}")
    await client.aclose()


async def test_limiter_allows_a_burst_then_warns_once_then_drops(limiter: RateLimiter) -> None:
    verdicts = [await limiter.check("customer") for _ in range(6)]
    assert verdicts == [Verdict.ALLOW] * 3 + [Verdict.WARN, Verdict.DROP, Verdict.DROP]
    assert await limiter.check("someone else") == Verdict.ALLOW


async def test_limiter_refills_over_time() -> None:
    now = [0.0]
    limiter = MemoryRateLimiter(burst=2, per_minute=60, clock=lambda: now[0])
    assert [await limiter.check("c") for _ in range(3)] == [Verdict.ALLOW, Verdict.ALLOW, Verdict.WARN]
    now[0] = 1.0
    assert await limiter.check("c") == Verdict.ALLOW  # one token back after a second, and warned again later
    assert await limiter.check("c") == Verdict.WARN


async def test_recent_updates_remember_what_was_handled(recent: RecentUpdates) -> None:
    assert not await recent.seen(10)
    await recent.remember(10)
    assert await recent.seen(10)
    assert not await recent.seen(11)
