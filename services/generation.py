"""Answers being generated right now, so a customer's "stop" reaches the stream writing them.

In-process: the stream and the stop button's update meet in one instance. (A scaled-out
deployment routes the stop through the event bus to whichever instance streams the answer.)
"""

from __future__ import annotations

import asyncio


class GenerationStopped(Exception):
    """The customer pressed stop; `text` is what had been written so far."""

    def __init__(self, text: str) -> None:
        super().__init__("generation stopped by the customer")
        self.text = text


class Generations:
    def __init__(self) -> None:
        self._running: dict[tuple[int, int], asyncio.Event] = {}

    def start(self, chat_id: int, draft_id: int) -> asyncio.Event:
        return self._running.setdefault((chat_id, draft_id), asyncio.Event())

    def finish(self, chat_id: int, draft_id: int) -> None:
        self._running.pop((chat_id, draft_id), None)

    def stop(self, chat_id: int, draft_id: int) -> bool:
        """Ask the stream to stop; False when no such answer is being written here."""
        event = self._running.get((chat_id, draft_id))
        if event is None:
            return False
        event.set()
        return True
