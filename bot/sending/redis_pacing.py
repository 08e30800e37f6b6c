"""The same budget kept in Redis, so Telegram's limits hold for the bot across every instance."""

from __future__ import annotations

import logging
import time
import uuid
from collections import deque

from redis.asyncio import Redis
from redis.exceptions import RedisError

from bot.sending.pacing import DRAFTS, Limits, Pacer, acquire
from bot.sending.priorities import YIELD, WaitingSends
from services.ports import SendPriority

log = logging.getLogger(__name__)


# KEYS: the bot-wide window, the chat's window (group) or bucket (private chat).
# ARGV: count, is_group, per_second, group_per_minute, private_per_second, private_burst, a unique id.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local count = tonumber(ARGV[1])
local function window_wait(key, span, limit)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - span)
  local n = redis.call('ZCARD', key)
  local overflow = n + count - limit
  if overflow <= 0 then return 0 end
  if overflow > n then return span end
  local entry = redis.call('ZRANGE', key, overflow - 1, overflow - 1, 'WITHSCORES')
  return tonumber(entry[2]) + span - now
end
local wait = window_wait(KEYS[1], 1.0, tonumber(ARGV[3]))
local group = ARGV[2] == '1'
local tokens = 0
if group then
  wait = math.max(wait, window_wait(KEYS[2], 60.0, tonumber(ARGV[4])))
else
  local rate, burst = tonumber(ARGV[5]), tonumber(ARGV[6])
  local state = redis.call('HMGET', KEYS[2], 'tokens', 'ts')
  tokens = tonumber(state[1]) or burst
  tokens = math.min(burst, tokens + (now - (tonumber(state[2]) or now)) * rate)
  wait = math.max(wait, (count - tokens) / rate)
end
if wait > 0 then return tostring(wait) end
for i = 1, count do
  local member = ARGV[7] .. ':' .. i
  redis.call('ZADD', KEYS[1], now, member)
  if group then redis.call('ZADD', KEYS[2], now, member) end
end
redis.call('EXPIRE', KEYS[1], 2)
if group then
  redis.call('EXPIRE', KEYS[2], 61)
else
  redis.call('HSET', KEYS[2], 'tokens', tostring(tokens - count), 'ts', tostring(now))
  redis.call('EXPIRE', KEYS[2], 60)
end
return '0'
"""


# KEYS: the bot-wide window, the group's window (or none). ARGV: count, the reservation's id.
# Moves the reservation's entries to Redis's now, if they are still in the windows.
_SETTLE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
for k = 1, #KEYS do
  for i = 1, tonumber(ARGV[1]) do
    redis.call('ZADD', KEYS[k], 'XX', now, ARGV[2] .. ':' .. i)
  end
end
return 0
"""


# KEYS: the bot-wide window. ARGV: per_second, a unique id. A draft's place in it, or how long to wait.
_RESERVE_DRAFT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local limit = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 1.0)
local n = redis.call('ZCARD', KEYS[1])
if n + 1 > limit then
  local entry = redis.call('ZRANGE', KEYS[1], n - limit, n - limit, 'WITHSCORES')
  return tostring(tonumber(entry[2]) + 1.0 - now)
end
redis.call('ZADD', KEYS[1], now, ARGV[2])
redis.call('EXPIRE', KEYS[1], 2)
return '0'
"""


class RedisPacer:
    """The same budget as Pacer, kept in Redis on Redis's clock: shared by every instance, so
    Telegram's limits hold for the bot as a whole however many instances send. A send holds its
    place from its reservation until its answer came back, as in Pacer."""

    def __init__(self, redis: Redis, prefix: str, limits: Limits) -> None:
        self.redis = redis
        self.prefix = prefix
        self.limits = limits
        self._script = redis.register_script(_RESERVE)
        self._settle = redis.register_script(_SETTLE)
        self._draft = redis.register_script(_RESERVE_DRAFT)
        self.queue = WaitingSends()  # this instance's sends waiting (other instances' are not seen)
        # This instance's sends waiting for their answer, per chat: the reservation's id ("" when
        # it was made by the in-process fallback) and its count.
        self._in_flight: dict[int, deque[tuple[str, int]]] = {}
        # While Redis is unreachable (restarting, say) this instance paces itself alone: answers keep
        # going out, and a 429 from instances together is waited out, rather than every send failing.
        self._alone = Pacer(limits)
        self._unreachable = False

    async def reserve(self, chat_id: int, count: int = 1, priority: SendPriority = SendPriority.FIRST_WORDS) -> float:
        if self.queue.yields(priority):
            return YIELD
        group = chat_id < 0
        limits = self.limits
        reservation = uuid.uuid4().hex
        try:
            wait = float(await self._script(
                keys=[f"{self.prefix}:pace:all", f"{self.prefix}:pace:{chat_id}"],
                args=[count, 1 if group else 0, limits.per_second, limits.group_per_minute, limits.private_per_second,
                      limits.private_burst, reservation]))
        except (RedisError, OSError) as error:
            if not self._unreachable:
                log.warning("telegram: the shared budget in Redis is unreachable (%s); pacing this instance alone",
                            error)
                self._unreachable = True
            wait = await self._alone.reserve(chat_id, count)
            reservation = ""
        else:
            if self._unreachable:
                log.warning("telegram: the shared budget in Redis is back")
                self._unreachable = False
        if wait <= 0:
            self._in_flight.setdefault(chat_id, deque()).append((reservation, count))
        return wait

    async def reserve_draft(self, priority: SendPriority = SendPriority.UPDATE) -> float:
        if self.queue.yields(priority):
            return YIELD
        reservation = f"draft-{uuid.uuid4().hex}"
        try:
            wait = max(0.0, float(await self._draft(keys=[f"{self.prefix}:pace:all"],
                                                    args=[self.limits.per_second, f"{reservation}:1"])))
        except (RedisError, OSError):  # the next message's reservation logs it
            wait, reservation = self._alone.draft_wait(time.monotonic(), priority), ""
        if wait <= 0:
            self._in_flight.setdefault(DRAFTS, deque()).append((reservation, 1))
        return wait

    async def settle_draft(self) -> None:
        await self.settle(DRAFTS)

    async def settle(self, chat_id: int, count: int = 1) -> None:
        in_flight = self._in_flight.get(chat_id)
        if not in_flight:
            return
        reservation, count = in_flight.popleft()
        if not in_flight:
            del self._in_flight[chat_id]
        if not reservation:
            await self._alone.settle(chat_id, count)
            return
        keys = [f"{self.prefix}:pace:all"] + ([f"{self.prefix}:pace:{chat_id}"] if chat_id < 0 else [])
        try:
            await self._settle(keys=keys, args=[count, reservation])
        except (RedisError, OSError) as error:  # the reservation then counts from when it was made
            log.info("telegram: could not settle a send in the shared budget: %s", error)

    async def acquire(self, chat_id: int, count: int = 1) -> None:
        await acquire(self, chat_id, count)
