"""Answers being generated right now, so a customer's "stop" reaches the stream writing them.

The stop button's update may reach any instance; it is published on the event bus, and the
instance streaming that answer stops it.
"""

from __future__ import annotations

import asyncio

from services.events import EventBus, LocalBus, Payload

STOP_CHANNEL = "generation.stop"


class GenerationStopped(Exception):
    """The customer pressed stop; `text` is what had been written so far."""

    def __init__(self, text: str) -> None:
        super().__init__("generation stopped by the customer")
        self.text = text


class Generations:
    def __init__(self, bus: EventBus | None = None) -> None:
        self._running: dict[tuple[int, int], asyncio.Event] = {}
        self.bus: EventBus = bus or LocalBus()
        self.bus.subscribe(STOP_CHANNEL, self._stop_here)

    def start(self, chat_id: int, draft_id: int) -> asyncio.Event:
        return self._running.setdefault((chat_id, draft_id), asyncio.Event())

    def finish(self, chat_id: int, draft_id: int) -> None:
        self._running.pop((chat_id, draft_id), None)

    async def stop(self, chat_id: int, draft_id: int) -> None:
        """Ask whichever instance writes this answer to stop it."""
        await self.bus.publish(STOP_CHANNEL, {"chat_id": chat_id, "draft_id": draft_id})

    async def _stop_here(self, event: Payload) -> None:
        running = self._running.get((int(event["chat_id"]), int(event["draft_id"])))
        if running is not None:
            running.set()
