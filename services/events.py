"""Live events between the parts of Frontdesk, and between instances.

A small publish/subscribe port: the in-process bus is the embedded default; with REDIS_URL the
composition root plugs in a Redis pub/sub bus, so an event published on one instance (a stop
button pressed, a manager's reply for a widget socket) reaches the instance that needs it.
Events are best-effort and carry no state of their own: whatever must survive is in the database.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

log = logging.getLogger(__name__)

Payload = dict[str, Any]
Handler = Callable[[Payload], Awaitable[None]]


class EventBus(Protocol):
    def subscribe(self, channel: str, handler: Handler) -> None:
        """Call `handler` with every event published on `channel` (by any instance)."""
        ...

    async def publish(self, channel: str, payload: Payload) -> None: ...


class LocalBus:
    """One process: publishing calls the subscribers directly."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = defaultdict(list)

    def subscribe(self, channel: str, handler: Handler) -> None:
        self._handlers[channel].append(handler)

    async def publish(self, channel: str, payload: Payload) -> None:
        await deliver(self._handlers.get(channel, []), channel, payload)


async def deliver(handlers: list[Handler], channel: str, payload: Payload) -> None:
    """Run every handler; one failing handler neither stops the others nor the publisher."""
    results = await asyncio.gather(*(handler(payload) for handler in handlers), return_exceptions=True)
    for result in results:
        if isinstance(result, Exception):
            log.error("event handler for %s failed: %r", channel, result)
