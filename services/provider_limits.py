"""The AI providers' limits: concurrent streams, requests and tokens a minute, and a 429's cool-down.

A `ProviderGate` (one per process, keyed by provider name, shared by every bot) lets an AI call start
when its provider has room. Calls that must wait queue first in first out per bot, and bots take
turns (round-robin), so one busy bot cannot starve another. What is counted lives in a `Ledger`: in
this process, or in Redis (one atomic script per admission) so every instance shares the provider's
budget; the waiting queue itself is each instance's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.tokens import estimate

log = logging.getLogger(__name__)

WINDOW = 60.0  # seconds: requests and tokens "a minute" are counted over the last 60 s
EXPECTED_OUTPUT_TOKENS = 300  # what an answer is expected to write, until the provider says what it did
MESSAGE_OVERHEAD_TOKENS = 4  # a chat message's role and separators
STREAM_LEASE = 120.0  # a stream counted in Redis lapses this long after its instance last renewed it
MAX_PAUSE = 1.0  # the longest the queue sleeps before it looks again (a stream may end on another instance)
REDIS_POLL = 0.2  # how soon to look again when every stream is taken in Redis (they end on other instances)

OnWait = Callable[[bool], Awaitable[None]]
"""Awaited with True when a call starts waiting for a provider's limits, and False when it stops."""


@dataclass(frozen=True)
class ProviderLimits:
    """0 means no limit."""

    max_streams: int = 0
    requests_per_minute: int = 0
    tokens_per_minute: int = 0


UNLIMITED = ProviderLimits()


class Routed(Protocol):
    """A model at a provider (services.ai.Route)."""

    @property
    def key(self) -> str: ...

    @property
    def provider(self) -> str: ...


class Overdue(Exception):
    """No route had room before the call's deadline."""


def request_tokens(messages: Sequence[dict[str, object]], expected_output: int = EXPECTED_OUTPUT_TOKENS) -> int:
    """What a request is counted as against tokens a minute until its real usage is known."""
    prompt = sum(_content_tokens(message.get("content")) + MESSAGE_OVERHEAD_TOKENS for message in messages)
    return prompt + expected_output


IMAGE_TOKENS = 1105  # what one image costs at OpenAI's "high" detail, about; its bytes are no text


def _content_tokens(content: object) -> int:
    """A message's text; an image part (a data URL of megabytes) counts as IMAGE_TOKENS."""
    if isinstance(content, list):
        return sum(IMAGE_TOKENS if isinstance(part, dict) and part.get("type") == "image_url"
                   else estimate(str(part.get("text") or "") if isinstance(part, dict) else str(part))
                   for part in content)
    return estimate(str(content or ""))


@dataclass(frozen=True)
class Refused:
    seconds: float  # until it may be worth asking again
    cooling: bool  # the route cools down after a 429 (else its provider has no room)


class Ledger(Protocol):
    """What a provider has in use; every method is atomic (across instances, for Redis)."""

    async def take(self, provider: str, route: str, limits: ProviderLimits, tokens: int,
                   lease: str) -> Refused | None:
        """Count a stream and a request of `tokens` at `provider` for `route` when the limits allow and the
        route is not cooling down (None); else why not."""
        ...

    async def settle(self, provider: str, lease: str, tokens: int) -> None:
        """The stream ended: it no longer counts, and its request counts `tokens` (what it really used)."""
        ...

    async def cool(self, route: str, seconds: float) -> None:
        """Nothing more goes to `route` for `seconds` (a 429's retry-after); never shortens a cool-down."""
        ...

    async def close(self) -> None: ...


@dataclass
class _Window:
    streams: set[str] = field(default_factory=set)
    requests: deque[tuple[float, str]] = field(default_factory=deque)  # (when, lease), oldest first
    tokens: dict[str, int] = field(default_factory=dict)  # lease -> tokens, for the requests in the window
    total: int = 0

    def expire(self, now: float) -> None:
        while self.requests and self.requests[0][0] <= now - WINDOW:
            _, lease = self.requests.popleft()
            self.total -= self.tokens.pop(lease, 0)

    def wait(self, limits: ProviderLimits, tokens: int, now: float) -> float:
        if limits.max_streams and len(self.streams) >= limits.max_streams:
            return MAX_PAUSE  # a stream's end wakes the queue; this is only a backstop
        rpm, count = limits.requests_per_minute, len(self.requests)
        if rpm and count >= rpm:
            return max(self.requests[count - rpm][0] + WINDOW - now, 0.001)
        excess = self.total + tokens - limits.tokens_per_minute
        if limits.tokens_per_minute and excess > 0:
            for when, lease in self.requests:  # a request larger than the whole budget goes alone
                excess -= self.tokens.get(lease, 0)
                if excess <= 0:
                    return max(when + WINDOW - now, 0.001)
        return 0.0


class MemoryLedger:
    """One instance's own count."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._windows: dict[str, _Window] = {}
        self._cool_until: dict[str, float] = {}

    async def take(self, provider: str, route: str, limits: ProviderLimits, tokens: int,
                   lease: str) -> Refused | None:
        now = self.clock()
        cooling = self._cool_until.get(route, 0.0) - now
        if cooling > 0:
            return Refused(cooling, cooling=True)
        window = self._windows.setdefault(provider, _Window())
        window.expire(now)
        wait = window.wait(limits, tokens, now)
        if wait > 0:
            return Refused(wait, cooling=False)
        window.streams.add(lease)
        window.requests.append((now, lease))
        window.tokens[lease] = tokens
        window.total += tokens
        return None

    async def settle(self, provider: str, lease: str, tokens: int) -> None:
        window = self._windows.get(provider)
        if window is None:
            return
        window.streams.discard(lease)
        if lease in window.tokens:
            window.total += tokens - window.tokens[lease]
            window.tokens[lease] = tokens

    async def cool(self, route: str, seconds: float) -> None:
        until = self.clock() + seconds
        self._cool_until[route] = max(until, self._cool_until.get(route, 0.0))

    async def close(self) -> None:
        return None


# KEYS: the route's cool-down, the provider's streams (a sorted set scored by lease expiry), its requests
# (scored by when made) and their tokens (a hash by lease). ARGV: max streams, rpm, tpm, tokens, lease,
# lease seconds, window, the wait when every stream is taken. Returns "" when taken, else "cool:<seconds>"
# (the route cools down) or "full:<seconds>" (the provider has no room).
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local cooling = redis.call('PTTL', KEYS[1])
if cooling > 0 then return 'cool:' .. tostring(cooling / 1000) end
local streams, rpm, tpm, tokens = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local lease, ttl, window = ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
for _, old in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now - window)) do
  redis.call('HDEL', KEYS[4], old)
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - window)
if streams > 0 and redis.call('ZCARD', KEYS[2]) >= streams then return 'full:' .. ARGV[8] end
local count = redis.call('ZCARD', KEYS[3])
if rpm > 0 and count >= rpm then
  local first = redis.call('ZRANGE', KEYS[3], count - rpm, count - rpm, 'WITHSCORES')
  return 'full:' .. tostring(math.max(tonumber(first[2]) + window - now, 0.001))
end
if tpm > 0 and count > 0 then
  local excess = tokens - tpm
  for _, used in ipairs(redis.call('HVALS', KEYS[4])) do excess = excess + tonumber(used) end
  if excess > 0 then
    local requests = redis.call('ZRANGE', KEYS[3], 0, -1, 'WITHSCORES')
    for i = 1, #requests, 2 do
      excess = excess - tonumber(redis.call('HGET', KEYS[4], requests[i]) or 0)
      if excess <= 0 then return 'full:' .. tostring(math.max(tonumber(requests[i + 1]) + window - now, 0.001)) end
    end
  end
end
redis.call('ZADD', KEYS[2], now + ttl, lease)
redis.call('ZADD', KEYS[3], now, lease)
redis.call('HSET', KEYS[4], lease, tokens)
redis.call('EXPIRE', KEYS[2], math.ceil(ttl))
redis.call('EXPIRE', KEYS[3], math.ceil(window) + 1)
redis.call('EXPIRE', KEYS[4], math.ceil(window) + 1)
return ''
"""

# KEYS: the streams, the tokens. ARGV: lease, tokens used.
_SETTLE = """
redis.call('ZREM', KEYS[1], ARGV[1])
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then redis.call('HSET', KEYS[2], ARGV[1], ARGV[2]) end
return 1
"""

# KEYS: the route's cool-down. ARGV: milliseconds.
_COOL = """
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], '1', 'PX', ARGV[1]) end
return 1
"""

# KEYS: the streams. ARGV: lease seconds, then this instance's leases in that set.
_RENEW = """
local t = redis.call('TIME')
local expiry = tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], 'XX', expiry, ARGV[i]) end
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[1])))
return 1
"""


class RedisLedger:
    """The count every instance shares, on Redis's clock. A stream counted here is renewed while it
    runs and lapses when its instance is gone. When Redis cannot be reached, this instance counts
    alone (logged once) rather than fail answers."""

    def __init__(self, redis: Redis, prefix: str, lease_seconds: float = STREAM_LEASE) -> None:
        self.redis = redis
        self.prefix = prefix
        self.lease_seconds = lease_seconds
        self._take = redis.register_script(_TAKE)
        self._settle = redis.register_script(_SETTLE)
        self._cool = redis.register_script(_COOL)
        self._renew = redis.register_script(_RENEW)
        self._alone = MemoryLedger()
        self._local: set[str] = set()  # leases the in-process fallback gave
        self._held: dict[str, set[str]] = {}  # provider -> this instance's leases in Redis
        self._renewing: asyncio.Task[None] | None = None
        self._unreachable = False

    def _keys(self, provider: str) -> list[str]:
        base = f"{self.prefix}:ai:{provider}"
        return [f"{base}:streams", f"{base}:requests", f"{base}:tokens"]

    async def take(self, provider: str, route: str, limits: ProviderLimits, tokens: int,
                   lease: str) -> Refused | None:
        try:
            answer = await self._take(
                keys=[f"{self.prefix}:ai-cool:{route}", *self._keys(provider)],
                args=[limits.max_streams, limits.requests_per_minute, limits.tokens_per_minute, tokens, lease,
                      self.lease_seconds, WINDOW, REDIS_POLL])
        except (RedisError, OSError) as error:
            self._lost(error)
            refused = await self._alone.take(provider, route, limits, tokens, lease)
            if refused is None:
                self._local.add(lease)
            return refused
        self._back()
        why, _, seconds = (answer.decode() if isinstance(answer, bytes) else str(answer)).partition(":")
        if why:
            return Refused(float(seconds), cooling=why == "cool")
        self._held.setdefault(provider, set()).add(lease)
        self._keep_renewing()
        return None

    async def settle(self, provider: str, lease: str, tokens: int) -> None:
        if lease in self._local:
            self._local.discard(lease)
            await self._alone.settle(provider, lease, tokens)
            return
        self._held.get(provider, set()).discard(lease)
        streams, _, used = self._keys(provider)
        try:
            await self._settle(keys=[streams, used], args=[lease, tokens])
        except (RedisError, OSError) as error:  # the stream then lapses with its lease
            log.info("AI limits: could not end a stream in Redis: %s", error)

    async def cool(self, route: str, seconds: float) -> None:
        await self._alone.cool(route, seconds)  # also here: it holds while Redis is away
        try:
            await self._cool(keys=[f"{self.prefix}:ai-cool:{route}"], args=[max(1, int(seconds * 1000))])
        except (RedisError, OSError) as error:
            self._lost(error)

    async def close(self) -> None:
        if self._renewing is not None:
            self._renewing.cancel()
            await asyncio.gather(self._renewing, return_exceptions=True)

    def _keep_renewing(self) -> None:
        if self._renewing is None or self._renewing.done():
            self._renewing = asyncio.create_task(self._renew_leases(), name="ai-stream-leases")

    async def _renew_leases(self) -> None:
        while any(self._held.values()):
            await asyncio.sleep(self.lease_seconds / 4)
            for provider, leases in list(self._held.items()):
                if leases:
                    try:
                        await self._renew(keys=self._keys(provider)[:1], args=[self.lease_seconds, *leases])
                    except (RedisError, OSError) as error:
                        self._lost(error)

    def _lost(self, error: Exception) -> None:
        if not self._unreachable:
            log.warning("AI limits: Redis is unreachable (%s); this instance counts the providers' use alone",
                        error)
            self._unreachable = True

    def _back(self) -> None:
        if self._unreachable:
            log.warning("AI limits: Redis is back; the providers' use is counted with the other instances")
            self._unreachable = False


@dataclass
class Turn:
    """A call's turn at a provider: which of the offered routes, and what it counts against the limits."""

    index: int
    provider: str
    lease: str
    tokens: int
    used: int | None = None  # the tokens the call really used, when known: set it before the turn ends


@dataclass
class _Waiter:
    routes: Sequence[Routed]
    tokens: int
    future: asyncio.Future[Turn]


class GateObserver(Protocol):
    def ai_wait(self, seconds: float) -> None: ...

    def ai_throttled(self, route: str) -> None: ...


class ProviderGate:
    """Admits AI calls within their providers' limits; calls that must wait queue fairly."""

    def __init__(self, ledger: Ledger | None = None, limits: dict[str, ProviderLimits] | None = None, *,
                 max_wait: float = 30.0, observer: GateObserver | None = None) -> None:
        self.ledger: Ledger = ledger if ledger is not None else MemoryLedger()
        self.limits = limits or {}
        self.max_wait = max_wait  # the longest one call waits for room, over all its tries
        self.observer = observer
        self._queues: dict[int, deque[_Waiter]] = {}  # tenant -> its waiters, in order; in turn order
        self._wake = asyncio.Event()
        self._serving: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> int:
        return sum(len(queue) for queue in self._queues.values())

    def deadline(self) -> float:
        """When a call starting now stops waiting (on the event loop's clock)."""
        return asyncio.get_running_loop().time() + self.max_wait

    @contextlib.asynccontextmanager
    async def turn(self, routes: Sequence[Routed], tenant: int, tokens: int, *, deadline: float,
                   on_wait: OnWait | None = None) -> AsyncIterator[Turn]:
        """Wait (fairly) until one of `routes` may be called, the first in their order that may; raises
        Overdue at `deadline`. The turn is given back however the block ends."""
        turn = await self._enter(routes, tenant, tokens, deadline, on_wait)
        try:
            yield turn
        finally:
            await asyncio.shield(self._leave(turn))

    async def cool(self, route: Routed, seconds: float) -> None:
        """The provider refused `route` (429): skip it for `seconds`."""
        log.warning("AI model %s is rate limited by its provider for %.1f s", route.key, seconds)
        if self.observer is not None:
            self.observer.ai_throttled(route.key)
        await self.ledger.cool(route.key, seconds)

    async def close(self) -> None:
        if self._serving is not None:
            self._serving.cancel()
            await asyncio.gather(self._serving, return_exceptions=True)
        await self.ledger.close()

    async def _enter(self, routes: Sequence[Routed], tenant: int, tokens: int, deadline: float,
                     on_wait: OnWait | None) -> Turn:
        loop = asyncio.get_running_loop()
        waiter = _Waiter(routes, tokens, loop.create_future())
        full: dict[str, float] = {}
        cooling: dict[str, float] = {}
        if not self._queues:  # nobody waits: no queue to keep in order
            outcome = await self._try(waiter, full, cooling)
            if isinstance(outcome, Turn):
                return outcome
        if _hopeless(routes, full, cooling, deadline - loop.time()):
            raise Overdue(f"no room at the AI providers within {self.max_wait:g} s")
        self._queues.setdefault(tenant, deque()).append(waiter)
        self._serve()
        return await self._wait(waiter, tenant, deadline, on_wait)

    async def _wait(self, waiter: _Waiter, tenant: int, deadline: float, on_wait: OnWait | None) -> Turn:
        loop = asyncio.get_running_loop()
        started = loop.time()
        turn: Turn | None = None
        try:
            if on_wait is not None:
                await on_wait(True)
            turn = await asyncio.wait_for(waiter.future, max(0.0, deadline - loop.time()))
            return turn
        except TimeoutError:
            raise Overdue(f"no room at the AI providers within {self.max_wait:g} s") from None
        finally:
            self._forget(tenant, waiter)
            if turn is None:
                await self._abandon(waiter)
            if self.observer is not None:
                self.observer.ai_wait(loop.time() - started)
            if on_wait is not None:
                try:
                    await on_wait(False)
                except BaseException:
                    if turn is not None:
                        await asyncio.shield(self._leave(turn))
                    raise

    async def _abandon(self, waiter: _Waiter) -> None:
        """The waiter stopped waiting: a turn given it meanwhile goes back."""
        future = waiter.future
        if not future.done():
            future.cancel()
        elif not future.cancelled() and future.exception() is None:
            await asyncio.shield(self._leave(future.result()))

    async def _leave(self, turn: Turn) -> None:
        await self.ledger.settle(turn.provider, turn.lease, turn.tokens if turn.used is None else turn.used)
        self._wake.set()

    def _forget(self, tenant: int, waiter: _Waiter) -> None:
        queue = self._queues.get(tenant)
        if queue is not None and waiter in queue:
            queue.remove(waiter)
            if not queue:
                del self._queues[tenant]

    def _serve(self) -> None:
        self._wake.set()
        if self._serving is None or self._serving.done():
            self._serving = asyncio.create_task(self._serve_queues(), name="ai-provider-queue")

    async def _serve_queues(self) -> None:
        while self._queues:
            self._wake.clear()
            try:
                pause = await self._serve_one()
            except Exception:  # a bug here must not leave every waiter waiting to its deadline
                log.exception("AI limits: the waiting queue failed; trying again")
                pause = MAX_PAUSE
            if pause > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), pause)

    async def _serve_one(self) -> float:
        """Give a turn to the first bot, in turn order, whose first waiter has room (it goes last in the
        order): 0.0; else how long until one might."""
        full: dict[str, float] = {}  # providers found without room in this pass, and when they may have it
        cooling: dict[str, float] = {}  # the same for routes
        soonest = MAX_PAUSE
        for tenant, queue in list(self._queues.items()):
            if not queue:  # its waiters left while this pass waited for the ledger
                continue
            waiter = queue[0]
            outcome = await self._try(waiter, full, cooling)
            if isinstance(outcome, float):
                soonest = min(soonest, outcome)
                continue
            self._forget(tenant, waiter)
            if waiter.future.done():  # it stopped waiting meanwhile
                await self._leave(outcome)
            else:
                waiter.future.set_result(outcome)
                if tenant in self._queues:
                    self._queues[tenant] = self._queues.pop(tenant)  # to the back of the turn order
            return 0.0
        return soonest

    async def _try(self, waiter: _Waiter, full: dict[str, float], cooling: dict[str, float]) -> Turn | float:
        soonest = MAX_PAUSE
        for index, route in enumerate(waiter.routes):
            known = cooling.get(route.key) or full.get(route.provider)
            if known:
                soonest = min(soonest, known)
                continue
            lease = uuid.uuid4().hex
            limits = self.limits.get(route.provider, UNLIMITED)
            refused = await self.ledger.take(route.provider, route.key, limits, waiter.tokens, lease)
            if refused is None:
                return Turn(index, route.provider, lease, waiter.tokens)
            if refused.cooling:  # the route's own cool-down says nothing of its provider's room
                cooling[route.key] = refused.seconds
            else:
                full[route.provider] = refused.seconds
            soonest = min(soonest, refused.seconds)
        return soonest


def _hopeless(routes: Sequence[Routed], full: dict[str, float], cooling: dict[str, float], left: float) -> bool:
    """Waiting is pointless past the deadline, or when every route cools down beyond it."""
    every_route_cools = bool(cooling) and not full and len(cooling) == len({route.key for route in routes})
    return left <= 0 or (every_route_cools and min(cooling.values()) > left)
