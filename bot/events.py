"""The event bus over Redis pub/sub (services.events.EventBus), for several instances.

redis-py's PubSub carries the messages; one listener task per instance hands each to the
subscribers of its channel. Channels are namespaced with REDIS_PREFIX and the bot's id.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from bot.settings import Settings
from services.events import Handler, Payload, deliver

log = logging.getLogger(__name__)


def bus_prefix(settings: Settings) -> str:
    """The deployment's channels (named by BOT_TOKEN's bot, as before there were several)."""
    return f"{settings.redis_prefix}:{settings.bot_telegram_id}:events"


class RedisBus:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._handlers: dict[str, list[Handler]] = defaultdict(list)
        self._pubsub: PubSub | None = None
        self._listener: asyncio.Task[None] | None = None

    def subscribe(self, channel: str, handler: Handler) -> None:
        self._handlers[channel].append(handler)

    async def publish(self, channel: str, payload: Payload) -> None:
        await self.redis.publish(f"{self.prefix}:{channel}", json.dumps(payload))

    async def start(self) -> None:
        """Listen on every channel subscribed so far (call after the subscribers are set up)."""
        self._pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        await self._pubsub.subscribe(*(f"{self.prefix}:{channel}" for channel in self._handlers))
        self._listener = asyncio.create_task(self._listen(self._pubsub), name="event-bus")

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        if self._pubsub is not None:
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _listen(self, pubsub: PubSub) -> None:
        while True:
            try:
                message = await pubsub.get_message(timeout=1.0)
            except (RedisError, OSError) as error:  # Redis restarting: PubSub subscribes again on reconnect
                log.warning("event bus: %s; listening again in a second", error)
                await asyncio.sleep(1.0)
                continue
            if message is None or message.get("type") != "message":
                continue
            channel = message["channel"].decode().removeprefix(f"{self.prefix}:")
            try:
                payload = json.loads(message["data"])
            except (ValueError, TypeError):
                log.warning("event bus: a message on %s is not JSON", channel)
                continue
            await deliver(self._handlers.get(channel, []), channel, payload)
