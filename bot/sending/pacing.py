"""Telegram's flood limits for one process: per private chat, per group and for the whole bot."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from bot.sending.priorities import YIELD, WaitingSends
from services.ports import SendPriority


@dataclass(frozen=True)
class Limits:
    per_second: float = 30.0  # the whole bot
    private_per_second: float = 1.0  # one private chat, sustained ...
    private_burst: int = 3  # ... after a short burst
    group_per_minute: int = 20  # one group


class Pacer:
    """Token buckets for private chats, sliding windows for groups and the whole bot.

    Telegram counts a message when it arrives, which is some time after we reserved it. So a
    send holds its place in the windows from its reservation until its answer came back (`settle`
    moves its stamp to then): however late a request travels, the windows never admit more
    arrivals than the limit.
    """

    def __init__(self, limits: Limits, max_chats: int = 10_000) -> None:
        self.limits = limits
        self.max_chats = max_chats
        self._private: dict[int, tuple[float, float]] = {}
        self._groups: dict[int, deque[float]] = {}
        self._all: deque[float] = deque()
        self._in_flight: dict[int, deque[tuple[float, int]]] = {}
        self.queue = WaitingSends()

    def wait_time(self, chat_id: int, count: int, now: float) -> float:
        limits = self.limits
        if len(self._private) + len(self._groups) >= self.max_chats:
            self._forget_idle_chats(now)
        waits = [_window_wait(self._all, now, 1.0, int(limits.per_second), count)]
        if chat_id < 0:
            waits.append(_window_wait(self._groups.setdefault(chat_id, deque()), now, 60.0,
                                      limits.group_per_minute, count))
        else:
            tokens, last = self._private.get(chat_id, (float(limits.private_burst), now))
            tokens = min(float(limits.private_burst), tokens + (now - last) * limits.private_per_second)
            self._private[chat_id] = (tokens, now)
            waits.append(max(0.0, (count - tokens) / limits.private_per_second))
        return max(waits)

    def _forget_idle_chats(self, now: float) -> None:
        """Chats whose budget is whole again need no state: a fresh entry behaves the same."""
        limits = self.limits
        for chat_id, (tokens, last) in list(self._private.items()):
            if tokens + (now - last) * limits.private_per_second >= limits.private_burst:
                del self._private[chat_id]
        for chat_id, window in list(self._groups.items()):
            if not window or window[-1] <= now - 60.0:
                del self._groups[chat_id]

    def take(self, chat_id: int, count: int, now: float) -> None:
        self._all.extend([now] * count)
        if chat_id < 0:
            self._groups[chat_id].extend([now] * count)
        else:
            tokens, _ = self._private[chat_id]
            self._private[chat_id] = (tokens - count, now)
        self._in_flight.setdefault(chat_id, deque()).append((now, count))

    async def settle(self, chat_id: int, count: int = 1, now: float | None = None) -> None:
        """A send to the chat got its answer: its place in the windows counts from now."""
        in_flight = self._in_flight.get(chat_id)
        if not in_flight:
            return
        stamp, count = in_flight.popleft()
        if not in_flight:
            del self._in_flight[chat_id]
        now = time.monotonic() if now is None else now
        _restamp(self._all, stamp, count, now)
        if chat_id in self._groups:
            _restamp(self._groups[chat_id], stamp, count, now)

    async def reserve(self, chat_id: int, count: int = 1, priority: SendPriority = SendPriority.FIRST_WORDS) -> float:
        """Take the budget for `count` messages now, or say how long to wait before asking again."""
        if self.queue.yields(priority):
            return YIELD
        now = time.monotonic()
        wait = self.wait_time(chat_id, count, now)
        if wait <= 0:
            self.take(chat_id, count, now)
        return max(wait, 0.0)

    async def acquire(self, chat_id: int, count: int = 1) -> None:
        await acquire(self, chat_id, count)

    async def reserve_draft(self, priority: SendPriority = SendPriority.UPDATE) -> float:
        """A draft takes a place in the bot-wide window only, and only while no more urgent send waits."""
        return self.draft_wait(time.monotonic(), priority)

    def draft_wait(self, now: float, priority: SendPriority = SendPriority.UPDATE) -> float:
        if self.queue.yields(priority):
            return YIELD
        wait = _window_wait(self._all, now, 1.0, int(self.limits.per_second), 1)
        if wait <= 0:
            self._all.append(now)
            self._in_flight.setdefault(DRAFTS, deque()).append((now, 1))
        return max(wait, 0.0)

    async def settle_draft(self) -> None:
        await self.settle(DRAFTS)


# Drafts in flight are kept as if sent to this chat (no chat has id 0), to settle them as sends are.
DRAFTS = 0


def _restamp(window: deque[float], stamp: float, count: int, now: float) -> None:
    """Move `count` entries stamped `stamp` to `now` (the latest time yet, so the window stays sorted)."""
    kept: list[float] = []
    moved = 0
    for entry in window:
        if entry == stamp and moved < count:
            moved += 1
        else:
            kept.append(entry)
    if moved:  # none when the entries already left the window (a send in flight for over its span)
        window.clear()
        window.extend(kept)
        window.extend([now] * moved)


class Budget(Protocol):
    queue: WaitingSends

    async def reserve_draft(self, priority: SendPriority = SendPriority.UPDATE) -> float:
        """Take the bot-wide budget for one draft now (0), or say how long to wait before asking again."""
        ...

    async def settle_draft(self) -> None:
        """A draft reserved got its answer: its place counts from now."""
        ...

    async def reserve(self, chat_id: int, count: int = 1, priority: SendPriority = SendPriority.FIRST_WORDS) -> float:
        """Take the budget for `count` messages now (0), or say how long to wait before asking again."""
        ...

    async def settle(self, chat_id: int, count: int = 1) -> None:
        """The oldest reserved send to the chat got its answer (whatever it was)."""
        ...


async def acquire(budget: Budget, chat_id: int, count: int = 1,
                  priority: SendPriority = SendPriority.FIRST_WORDS) -> None:
    """Wait until the budget allows `count` messages to the chat, and take it; while this waits, less
    urgent sends wait too."""
    wait = await budget.reserve(chat_id, count, priority)
    if wait <= 0:
        return
    budget.queue.start(priority)
    try:
        while wait > 0:
            await asyncio.sleep(wait)
            wait = await budget.reserve(chat_id, count, priority)
    finally:
        budget.queue.stop(priority)


def _window_wait(window: deque[float], now: float, span: float, limit: int, count: int) -> float:
    while window and window[0] <= now - span:
        window.popleft()
    overflow = len(window) + count - limit
    if overflow <= 0:
        return 0.0
    if overflow > len(window):
        return span
    return window[overflow - 1] + span - now
