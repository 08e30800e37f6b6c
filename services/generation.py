"""Answers being generated right now, so a customer's "stop" reaches the stream writing them, and
the preview the customer watches meanwhile (`sendMessageDraft`).

The stop button's update may reach any instance; it is published on the event bus, and the
instance streaming that answer stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator

from services.events import EventBus, LocalBus, Payload
from services.ports import ChatSender, RecipientBlocked
from services.render import TELEGRAM_TEXT_LIMIT, markdown_to_html, split_html, visible_length

log = logging.getLogger(__name__)

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

    @contextlib.contextmanager
    def streaming(self, sender: ChatSender, chat_id: int, draft_id: int, interval: float,
                  render: Callable[[str], str] = markdown_to_html) -> Iterator[DraftStreamer]:
        """A preview of text being written into a private chat, stoppable by the customer while it lasts.

        Pass the streamer's `update` as the model's progress callback: it raises GenerationStopped
        once the customer pressed stop.
        """
        stop = self.start(chat_id, draft_id)
        try:
            yield DraftStreamer(sender, chat_id, draft_id, interval, stop, render)
        finally:
            self.finish(chat_id, draft_id)


class DraftStreamer:
    """Shows text as it is written with sendMessageDraft, at most once per interval.

    A draft is a preview, so a failed draft never fails the answer; only a block stops it.
    `render` turns the text so far (the model's Markdown) into the Telegram HTML shown.
    """

    def __init__(self, sender: ChatSender, chat_id: int, draft_id: int, interval: float,
                 stop: asyncio.Event, render: Callable[[str], str] = markdown_to_html) -> None:
        self.sender = sender
        self.chat_id = chat_id
        self.draft_id = draft_id
        self.interval = interval
        self.stop = stop
        self.render = render
        self._last = 0.0

    async def update(self, text_so_far: str) -> None:
        if self.stop.is_set():
            raise GenerationStopped(text_so_far)
        now = time.monotonic()
        if now - self._last < self.interval:
            return
        self._last = now
        html = self.render(text_so_far)
        if visible_length(html) > TELEGRAM_TEXT_LIMIT:
            html = split_html(html)[-1]
        if not html:
            return
        try:
            await self.sender.send_draft(self.chat_id, self.draft_id, html)
        except RecipientBlocked:
            raise
        except Exception as error:  # a preview is best effort
            log.info("draft update failed: %s", error)
