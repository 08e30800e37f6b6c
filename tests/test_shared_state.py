"""Rate limits and Telegram pacing: the same behaviour in process and on a real Redis."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis

from bot.sending import YIELD, Limits, RedisPacer
from services.limits import MemoryRateLimiter, RateLimiter, RedisRateLimiter, Verdict
from services.ports import SendPriority

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


# The SQLite half of `make test` has no Redis; the PostgreSQL half runs these.
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="needs a Redis server (tests/run.sh starts one)")
TwoInstances = Callable[[Limits], tuple[RedisPacer, RedisPacer]]


@pytest.fixture
async def two_instances() -> AsyncIterator[TwoInstances]:
    """Two instances' budgets on one Redis, under a fresh prefix."""
    client = Redis.from_url(REDIS_URL)
    prefix = f"test-{uuid.uuid4().hex}"
    yield lambda limits: (RedisPacer(client, prefix, limits), RedisPacer(client, prefix, limits))
    await client.aclose()


@needs_redis
async def test_instances_on_one_redis_share_telegrams_limits_for_the_bot(two_instances: TwoInstances) -> None:
    first, second = two_instances(Limits(per_second=30, private_per_second=1, private_burst=3, group_per_minute=3))
    group = -1001234
    assert [await pacer.reserve(group) for pacer in (first, second, first)] == [0, 0, 0]
    assert 55 < await second.reserve(group) <= 60  # the fourth message of the minute, from either
    assert [await pacer.reserve(42) for pacer in (first, second, first)] == [0, 0, 0]
    assert 0.5 < await second.reserve(42) <= 1.0  # after the burst, about one a second
    assert await second.reserve(43) == 0  # another chat has its own budget
    assert await first.reserve(-1009999, count=2) == 0  # an album counts each item
    assert await second.reserve(-1009999, count=2) > 55
    assert await second.reserve(-1009999) == 0


@needs_redis
async def test_the_bot_wide_budget_is_shared_too(two_instances: TwoInstances) -> None:
    first, second = two_instances(Limits(per_second=4, private_per_second=1, private_burst=3, group_per_minute=20))
    taken = [await pacer.reserve(chat) for pacer, chat in ((first, 1), (second, 2), (first, 3), (second, 4))]
    assert taken == [0, 0, 0, 0]
    assert 0 < await first.reserve(5) <= 1.0  # a fifth chat waits for the bot's second to pass


@needs_redis
async def test_a_shared_send_holds_its_place_until_its_answer_came_back(two_instances: TwoInstances) -> None:
    first, second = two_instances(Limits(per_second=2, private_per_second=1, private_burst=3, group_per_minute=20))
    assert [await first.reserve(1), await second.reserve(2)] == [0, 0]
    await asyncio.sleep(0.6)  # the requests travel slowly: real time, as the budget is kept on Redis's clock
    answered = time.monotonic()
    await first.settle(1)
    await second.settle(2)
    wait = await first.reserve(3)
    since_answers = time.monotonic() - answered
    # The bot's second counts from the answers, not from the reservations 0.6 s before them: the next
    # send waits out the rest of a second after the answers (bounds that hold however slow the machine).
    assert 1.0 - since_answers - 0.002 <= wait <= 1.0  # 0.002: Redis keeps times in microseconds, rounded


@needs_redis
async def test_drafts_share_the_bot_wide_budget_across_instances_and_give_way(two_instances: TwoInstances) -> None:
    first, second = two_instances(Limits(per_second=3, private_per_second=1, private_burst=3, group_per_minute=20))
    assert [await first.reserve_draft(), await second.reserve_draft(), await first.reserve(1)] == [0, 0, 0]
    assert 0 < await second.reserve_draft() <= 1.0  # the bot's second is full, whoever filled it
    assert 0 < await second.reserve(2) <= 1.0
    await first.settle_draft()  # a draft's place counts from its answer, as a message's does
    await second.settle_draft()
    first.queue.start(SendPriority.FIRST_WORDS)  # a message of this instance waits for the budget ...
    try:
        assert await first.reserve_draft(SendPriority.UPDATE) == YIELD  # ... so a draft update gives way
    finally:
        first.queue.stop(SendPriority.FIRST_WORDS)
