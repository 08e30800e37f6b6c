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
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from services.events import EventBus, LocalBus, Payload
from services.ports import ChatSender, DraftBudget, RecipientBlocked, SendPriority
from services.render import TELEGRAM_TEXT_LIMIT, markdown_to_html, split_html, visible_length

log = logging.getLogger(__name__)

STOP_CHANNEL = "generation.stop"

# At most this long a stream's newer pieces wait unread: a stop, and the answer's end, are noticed within it.
MAX_READ_PAUSE = 0.5


def read_pause(streams: int, per_second: float, interval: float) -> float:
    """How long each of `streams` answers showing their text at most every `interval` seconds, through a budget
    of `per_second` updates shared by all of them, may leave the model's next pieces unread.

    Nothing while the budget shows every stream at its interval: then each read may show. Past that, a
    stream's next update is about streams / per_second away, and reading its pieces sooner only spends the
    event loop's time (every other answer's, and other bots' customers') on text no one can see yet."""
    return min(MAX_READ_PAUSE, max(0.0, streams / per_second - interval))


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
        self._boards: dict[int, DraftBoard] = {}  # per sender (a bot)

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

    def board(self, sender: ChatSender, budget: DraftBudget | None = None) -> DraftBoard:
        """The drafts of one bot, spent from its budget (`budget`: that bot's, the same on every call)."""
        board = self._boards.get(id(sender))
        if board is None:
            board = self._boards[id(sender)] = DraftBoard(sender, budget)
        return board

    @contextlib.asynccontextmanager
    async def streaming(self, sender: ChatSender, chat_id: int, draft_id: int, interval: float,
                        render: Callable[[str], str] = markdown_to_html,
                        budget: DraftBudget | None = None, per_second: float = 30.0) -> AsyncIterator[DraftStreamer]:
        """A preview of text being written into a private chat, stoppable by the customer while it lasts.

        Pass the streamer's `update` as the model's progress callback: it raises GenerationStopped
        once the customer pressed stop. On leaving, no draft of it is pending or on its way, so the
        message that follows is never overtaken by its own preview.
        """
        stop = self.start(chat_id, draft_id)
        board = self.board(sender, budget)
        streamer = DraftStreamer(board, chat_id, draft_id, interval, stop, render, per_second)
        try:
            yield streamer
        finally:
            self.finish(chat_id, draft_id)
            streamer.shown = board.sent(streamer.key) > 0
            blocked = await asyncio.shield(board.withdraw((chat_id, draft_id)))
        if blocked:  # a draft found the chat closed to the bot: the answer is not sent into it either
            raise RecipientBlocked("the customer blocked the bot")


DraftKey = tuple[int, int]  # (chat id, draft id)


@dataclass
class _Offer:
    text: str  # the answer so far, as the model wrote it
    render: Callable[[str], str]  # to the HTML shown; done only when the draft is sent, as most are replaced
    offered_at: float


class DraftBoard:
    """The drafts of every answer streaming through one bot on this instance, sent fairly and within
    Telegram's budget.

    A stream offers its latest text and goes on; one pump sends the waiting drafts, the one whose
    stream has had the fewest drafts first (so a customer's first words go before another's tenth
    update), then the longest waiting. When many answers stream at once the budget allows fewer
    drafts than are offered: a stream's newer text replaces its unsent one, so the updates thin out
    and each customer still sees the answer grow. Telegram's messages take the budget before drafts.
    """

    def __init__(self, sender: ChatSender, budget: DraftBudget | None) -> None:
        self.sender = sender
        self.budget = budget
        self._offers: dict[DraftKey, _Offer] = {}
        self._sent: dict[DraftKey, int] = {}  # drafts sent per stream
        self._in_flight: dict[DraftKey, asyncio.Task[None]] = {}
        self._blocked: set[DraftKey] = set()
        self._wake = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None
        self._waiting_as: SendPriority | None = None  # how urgent the draft the pump waits to send is

    def offer(self, key: DraftKey, text: str, render: Callable[[str], str]) -> None:
        """Show `text` (rendered) as the stream's draft as soon as its turn comes, replacing an unsent one."""
        if key in self._blocked:
            raise RecipientBlocked("the customer blocked the bot")
        earlier = self._offers.get(key)
        self._offers[key] = _Offer(text, render, earlier.offered_at if earlier else time.monotonic())
        self._sent.setdefault(key, 0)
        self._wake.set()
        if self._pump is None or self._pump.done():
            self._pump = asyncio.create_task(self._run(), name="draft-pump")

    def sent(self, key: DraftKey) -> int:
        return self._sent.get(key, 0)

    @property
    def streams(self) -> int:
        """Answers streaming through this bot on this instance (from their first offer to their end)."""
        return len(self._sent)

    async def withdraw(self, key: DraftKey) -> bool:
        """The stream ended: drop its unsent draft and wait for one on its way. Whether a draft found
        that the customer blocked the bot."""
        self._offers.pop(key, None)
        self._sent.pop(key, None)
        in_flight = self._in_flight.get(key)
        if in_flight is not None:
            await asyncio.wait([in_flight])
        blocked = key in self._blocked
        self._blocked.discard(key)
        return blocked

    async def _run(self) -> None:
        try:
            await self._pump_drafts()
        finally:
            self._wait_as(None)

    async def _pump_drafts(self) -> None:
        while self._offers:
            key = self._next()
            if key is None:  # every waiting stream has a draft on its way
                self._wait_as(None)
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 0.5)
                continue
            priority = SendPriority.FIRST_WORDS if self._sent.get(key, 0) == 0 else SendPriority.UPDATE
            # Counted as waiting from now until no such draft is left, not only after a refusal: a less
            # urgent send slipping in between two of them would take a first draft's place.
            self._wait_as(priority)
            wait = await self.budget.reserve_draft(priority) if self.budget is not None else 0.0
            if wait > 0:
                await asyncio.sleep(min(wait, 0.1))
                continue
            offer = self._offers.pop(key, None)
            html = _draft_html(offer) if offer is not None else ""
            if not html:
                continue  # withdrawn meanwhile, or nothing to show: one draft's budget spent on nothing
            self._sent[key] = self._sent.get(key, 0) + 1
            self._in_flight[key] = asyncio.create_task(self._send(key, html), name="draft-send")

    def _wait_as(self, priority: SendPriority | None) -> None:
        if self.budget is None or priority == self._waiting_as:
            return
        if self._waiting_as is not None:
            self.budget.queue.stop(self._waiting_as)
        if priority is not None:
            self.budget.queue.start(priority)
        self._waiting_as = priority

    def _next(self) -> DraftKey | None:
        ready = [key for key in self._offers if key not in self._in_flight]
        if not ready:
            return None
        return min(ready, key=lambda key: (self._sent.get(key, 0), self._offers[key].offered_at))

    async def _send(self, key: DraftKey, html: str) -> None:
        try:
            await self.sender.send_draft(key[0], key[1], html)
        except RecipientBlocked:
            self._blocked.add(key)
        except Exception as error:  # a preview is best effort
            log.info("draft update failed: %s", error)
        finally:
            if self.budget is not None:
                await self.budget.settle_draft()
            self._in_flight.pop(key, None)
            self._wake.set()


class Typing:
    """Shows "typing…" while an answer waits for its turn at the AI provider, refreshed before Telegram's
    five seconds run out. Best effort; spent from the bot's budget like a draft update, so at rush hour
    it gives way to everyone's words."""

    EVERY = 4.5  # seconds between refreshes
    RETRY = 0.25  # seconds, when the budget had no room

    def __init__(self, show: Callable[[], Awaitable[None]], budget: DraftBudget | None = None) -> None:
        self.show = show
        self.budget = budget
        self._task: asyncio.Task[None] | None = None

    async def waiting(self, waiting: bool) -> None:
        """Start showing it (True), or stop (False); each once, whatever is called."""
        if waiting and self._task is None:
            self._task = asyncio.create_task(self._keep_showing(), name="typing")
        elif not waiting and self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _keep_showing(self) -> None:
        while True:
            if self.budget is not None and await self.budget.reserve_draft(SendPriority.UPDATE) > 0:
                await asyncio.sleep(self.RETRY)
                continue
            try:
                await self.show()
            except RecipientBlocked:
                return
            except Exception as error:  # best effort
                log.info("typing action failed: %s", error)
            finally:
                if self.budget is not None:
                    await self.budget.settle_draft()
            await asyncio.sleep(self.EVERY)


def _draft_html(offer: _Offer) -> str:
    """The draft as shown: the end of an answer grown past one message (its start is sent by then)."""
    html = offer.render(offer.text)
    if visible_length(html) > TELEGRAM_TEXT_LIMIT:
        html = split_html(html)[-1]
    return html


class DraftStreamer:
    """Offers the text as it is written to the bot's draft board, at most once per interval.

    A draft is a preview, so a failed draft never fails the answer; only a block stops it.
    `render` turns the text so far (the model's Markdown) into the Telegram HTML shown.
    """

    def __init__(self, board: DraftBoard, chat_id: int, draft_id: int, interval: float,
                 stop: asyncio.Event, render: Callable[[str], str] = markdown_to_html,
                 per_second: float = 30.0) -> None:
        self.board = board
        self.per_second = per_second  # the bot's Telegram budget, which every draft of it shares
        self.key = (chat_id, draft_id)
        self.interval = interval
        self.stop = stop
        self.render = render
        self._last = 0.0
        self.shown = False  # whether the customer saw a draft of it (known when the stream ends)

    def read_pause(self) -> float:
        """See read_pause: the bot's drafts share its Telegram budget."""
        return read_pause(self.board.streams, self.per_second, self.interval)

    async def update(self, text_so_far: str) -> None:
        if self.stop.is_set():
            raise GenerationStopped(text_so_far)
        now = time.monotonic()
        if now - self._last < self.interval or not text_so_far.strip():
            return
        self._last = now
        self.board.offer(self.key, text_so_far, self.render)
