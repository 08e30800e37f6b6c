"""The intake's workers: each stored Telegram update goes through aiogram's dispatcher once, one chat at a time.

The webhook only stores an update and answers (services/intake.py); this is where it is handled, exactly as the
webhook handled it before (the same dispatcher, middlewares and handlers), on every instance that works.
A chat's updates run in the order they arrived, one at a time: the claim takes only a chat's oldest unfinished
update, and only while nothing else of that chat runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiogram import Bot as AiogramBot
from aiogram import Dispatcher
from aiogram.exceptions import TelegramNetworkError, TelegramRetryAfter, TelegramServerError
from aiogram.types import Update, User
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from tortoise.exceptions import DBConnectionError, OperationalError

from bot.observability import new_request_id, request_id_var, update_id_var
from models import UpdateState
from services.intake import UNLIMITED, ClaimedUpdate, UpdateStore, now_ms
from services.outbox import per_bot_cap

log = logging.getLogger(__name__)

CLAIM_BATCH = 64
NOT_SERVED_YET = 2000  # ms: a bot still starting on this instance (or served only by another) is looked at again
# Failures that say nothing about the update: the database, Redis or Telegram away for a while. An update that
# meets one is tried again however long it takes (the chat waits, in order); any other error ends after
# INTAKE_MAX_ATTEMPTS, so one update nothing can handle does not hold its chat for ever.
PASSING = (OSError, asyncio.TimeoutError, DBConnectionError, OperationalError, RedisConnectionError,
           RedisTimeoutError, TelegramNetworkError, TelegramServerError, TelegramRetryAfter)


def lane_of(update: Update) -> int:
    """The chat an update belongs to: its updates run one at a time, in order.

    A button's press goes in its message's chat, after what that chat sent before it (stricter than Telegram,
    which queues presses apart: a customer's press waits for their previous message, as it should).
    """
    for event in (update.message, update.edited_message, update.channel_post, update.edited_channel_post,
                  update.business_message, update.edited_business_message, update.my_chat_member,
                  update.chat_member):
        if event is not None:
            return event.chat.id
    if (query := update.callback_query) is not None:
        return query.message.chat.id if query.message is not None else query.from_user.id
    for name in type(update).model_fields:  # any other kind names its person
        event = getattr(update, name)
        person = getattr(event, "from_user", None) or getattr(event, "user", None)
        if isinstance(person, User):
            return person.id
    return 0  # names no chat: such updates of a bot run one at a time


@dataclass(frozen=True)
class IntakeSettings:
    workers: int = 32  # updates one instance handles at once (INTAKE_WORKERS)
    lease_seconds: float = 60.0  # how long a crashed instance's update waits before another takes it
    max_attempts: int = 10  # for errors that are the update's own
    idle_poll_seconds: float = 0.1  # a worker apart from the receiver looks this often (its own wake it hears)
    per_bot: int | None = None  # of them, one bot's at most while several bots are served (INTAKE_UPDATES_PER_BOT)


@dataclass
class Served:
    """What the worker needs of the fleet: the aiogram Bot serving a bot's row here, or None."""

    bot_of: Callable[[int], AiogramBot | None]
    is_active: Callable[[int], Awaitable[bool]]  # paused or removed bots' updates are dropped, as they were


class IntakeWorker:
    """Claims stored updates, feeds each to the dispatcher, and marks them handled in batches."""

    def __init__(self, store: UpdateStore, dispatcher: Dispatcher, served: Served, settings: IntakeSettings,
                 observe: Callable[[str], None] = lambda outcome: None,
                 bots_served: Callable[[], int] | None = None) -> None:
        self.store = store
        self.bots_served = bots_served  # how many bots this deployment serves: the cap per bot protects the others
        self.dispatcher = dispatcher
        self.served = served
        self.settings = settings
        self.observe = observe  # handled, retried, failed, dropped
        self.owner = f"intake-{uuid.uuid4().hex[:12]}"
        self._running: dict[int, asyncio.Task[None]] = {}
        self._handled: list[int] = []  # finished since the last flush
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def lease_ms(self) -> int:
        return int(self.settings.lease_seconds * 1000)

    def wake(self) -> None:
        self._wakeup.set()

    def start(self) -> None:
        if self.settings.workers <= 0:
            return
        self._tasks = [asyncio.create_task(self._loop(), name="intake"),
                       asyncio.create_task(self._keep_leases(), name="intake-leases")]

    async def stop(self, grace: float = 10.0) -> None:
        """Claim nothing more, give running updates `grace` seconds, then hand the rest back (not cancelled at
        once: a Tortoise SQLite transaction cancelled while it begins leaks its connection lock)."""
        self._stopping = True
        self._wakeup.set()
        if self._tasks:
            await asyncio.wait(self._tasks[:1], timeout=grace)
        running = dict(self._running)
        if running:
            _, unfinished = await asyncio.wait(running.values(), timeout=grace)
            late = [update_id for update_id, task in running.items() if task in unfinished]
            if late:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self.store.release(self.owner, late))
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.shield(self._flush())
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _loop(self) -> None:
        while not self._stopping:
            self._wakeup.clear()  # before claiming: a wake-up during the claim is kept
            claimed: list[ClaimedUpdate] = []
            marked = 0
            try:
                free = self.settings.workers - len(self._running)
                if free > 0:
                    claimed = await self.store.claim(self.owner, now_ms(), self.lease_ms, min(free, CLAIM_BATCH),
                                                     self._per_bot())
            except Exception:
                log.exception("intake: claiming updates failed")
            if self._stopping:
                with contextlib.suppress(Exception):
                    await self.store.release(self.owner, [update.id for update in claimed])
                break
            for update in claimed:
                self._running[update.id] = asyncio.create_task(self._run_and_free(update),
                                                               name=f"intake-update-{update.id}")
            try:
                # After the claim, so a new update starts without waiting for this statement; the chats whose
                # updates it marks may have their next one waiting, which the next claim, at once, takes.
                marked = await self._flush()
            except Exception:
                log.exception("intake: marking handled updates failed")
            if marked or (len(claimed) == CLAIM_BATCH and len(self._running) < self.settings.workers):
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self.settings.idle_poll_seconds)

    def _per_bot(self) -> int:
        cap = per_bot_cap(self.settings.per_bot, self.bots_served)
        return UNLIMITED if cap is None else cap

    async def _flush(self) -> int:
        """Mark what finished since the last time handled, in one statement; how many."""
        if not self._handled:
            return 0
        handled, self._handled = self._handled, []
        try:
            await self.store.finish(self.owner, handled, now_ms())
        except Exception:
            self._handled.extend(handled)  # next time; meanwhile their chats wait
            raise
        return len(handled)

    async def _keep_leases(self) -> None:
        while True:
            await asyncio.sleep(self.settings.lease_seconds / 3)
            running = [*self._running, *self._handled]
            if running:
                try:
                    await self.store.renew(self.owner, running, now_ms() + self.lease_ms)
                except Exception:
                    log.exception("intake: renewing the leases of running updates failed")

    async def _run_and_free(self, update: ClaimedUpdate) -> None:
        try:
            await self.run(update)
        finally:
            self._running.pop(update.id, None)
            self._wakeup.set()  # a slot is free, and this update's chat may have its next one waiting

    async def run(self, update: ClaimedUpdate) -> None:
        """Handle one claimed update; whatever happens, it ends handled, retried, given up or dropped."""
        update_id_var.set(update.update_id)
        request_id_var.set(new_request_id())
        bot = self.served.bot_of(update.bot_id)
        try:
            if bot is None:
                await self._not_served(update)
                return
            parsed = Update.model_validate_json(update.body, context={"bot": bot})
            await self.dispatcher.feed_update(bot, parsed)
        except Exception as error:
            await self._failed(update, error)
            return
        self._handled.append(update.id)
        self.observe("handled")

    async def _not_served(self, update: ClaimedUpdate) -> None:
        if await self.served.is_active(update.bot_id):  # starting here, or its token opens only elsewhere
            await self.store.retry(self.owner, update.id, now_ms() + NOT_SERVED_YET, "its bot is not served here")
            return
        await self.store.give_up(self.owner, update.id, UpdateState.DROPPED, now_ms())
        self.observe("dropped")

    async def _failed(self, update: ClaimedUpdate, error: Exception) -> None:
        described = f"{type(error).__name__}: {error}"
        passing = isinstance(error, PASSING)
        try:
            if passing or update.attempts < self.settings.max_attempts:
                delay = min(2 ** update.attempts, 60)
                log.warning("update %s of bot %s failed (%s); trying again in %ss", update.update_id, update.bot_id,
                            described, delay, exc_info=not passing)
                await self.store.retry(self.owner, update.id, now_ms() + delay * 1000, described)
                self.observe("retried")
                return
            log.error("update %s of bot %s failed %s times; given up (its body is kept)", update.update_id,
                      update.bot_id, update.attempts, exc_info=error)
            await self.store.give_up(self.owner, update.id, UpdateState.FAILED, now_ms(), described)
            self.observe("failed")
        except Exception:  # the database is away too: the lease runs out and the update is taken again
            log.exception("intake: update %s could not be marked after failing", update.update_id)
