"""Update ids already handled, so a re-delivered update is acknowledged without running again.

Stored messages are also unique by update id in the database; this spares the work, and keeps a
re-delivered command (which stores nothing) from being answered twice.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Protocol

from redis.asyncio import Redis

# Telegram keeps an unacknowledged update for 24 hours, so that is as long as it can come back.
UPDATE_MEMORY_SECONDS = 24 * 3600


class RecentUpdates(Protocol):
    async def seen(self, update_id: int) -> bool: ...

    async def remember(self, update_id: int) -> None: ...


class MemoryRecentUpdates:
    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[int, None] = OrderedDict()

    async def seen(self, update_id: int) -> bool:
        return update_id in self._seen

    async def remember(self, update_id: int) -> None:
        self._seen[update_id] = None
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)


class RedisRecentUpdates:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    async def seen(self, update_id: int) -> bool:
        return bool(await self.redis.exists(f"{self.prefix}:update:{update_id}"))

    async def remember(self, update_id: int) -> None:
        await self.redis.set(f"{self.prefix}:update:{update_id}", 1, ex=UPDATE_MEMORY_SECONDS)
