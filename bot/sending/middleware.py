"""The session middleware every Bot API request passes: paced, a 429 waited out, failures retried.

aiogram has no outgoing rate limiter and never retries a 429, so this does both.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType

from bot.sending.pacing import Budget, Limits, Pacer, acquire
from bot.sending.priorities import send_priority

log = logging.getLogger(__name__)

# Methods that put a message into a chat, and so count against Telegram's flood limits.
PACED_METHODS = {
    "sendMessage", "sendPhoto", "sendDocument", "sendVoice", "sendVideo", "sendAudio", "sendAnimation",
    "sendSticker", "sendLocation", "sendContact", "sendVideoNote", "sendPoll", "sendDice", "sendVenue",
    "sendMediaGroup", "copyMessage", "copyMessages", "forwardMessage", "forwardMessages",
    "editMessageText", "editMessageCaption", "editMessageMedia", "createForumTopic",
    # Each leaves a service message in the group, so they are spent from its budget too.
    "editForumTopic", "closeForumTopic", "reopenForumTopic",
}


class CallObserver(Protocol):
    def telegram_call(self, method: str, result: str) -> None: ...

    def telegram_wait(self, reason: str, seconds: float) -> None: ...


class SenderMiddleware(BaseRequestMiddleware):
    def __init__(self, limits: Limits | None = None, retries: int = 5, max_backoff: float = 30.0,
                 observer: CallObserver | None = None, pacer: Budget | None = None,
                 on_unauthorized: Callable[[Bot], None] | None = None,
                 budget_of: Callable[[int], Budget | None] | None = None) -> None:
        self.pacer: Budget = pacer or Pacer(limits or Limits())
        # One session for many bots (bot/fleet.py): each bot's own budget by its Telegram id, `pacer` otherwise.
        self.budget_of = budget_of
        self.on_unauthorized = on_unauthorized  # Telegram refused the token (bot/fleet.py checks, then pauses)
        self.observer = observer
        self.retries = retries
        self.max_backoff = max_backoff
        # aiogram parametrizes Response[<return type>] on every call; pydantic caches that class
        # only while someone references it, and rebuilding it costs 9-16% of CPU under load.
        self._response_types: dict[Any, Any] = {}

    async def __call__(self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot,
                       method: TelegramMethod[TelegramType]) -> Any:
        returning = method.__returning__
        if returning not in self._response_types:
            self._response_types[returning] = Response[returning]  # type: ignore[valid-type]
        name = method.__api_method__
        chat_id = getattr(method, "chat_id", None)
        paced = name in PACED_METHODS and isinstance(chat_id, int)
        count = len(getattr(method, "media", None) or [1]) if name == "sendMediaGroup" else 1
        pacer = (self.budget_of(bot.id) if self.budget_of is not None else None) or self.pacer
        attempt = 0
        while True:
            if paced:
                await acquire(pacer, chat_id, count, send_priority.get())  # type: ignore[arg-type]
            try:
                try:
                    result = await make_request(bot, method)
                finally:
                    if paced:  # the request reached Telegram (or never will): it counts from now
                        await pacer.settle(chat_id, count)  # type: ignore[arg-type]
            except TelegramRetryAfter as error:
                log.warning("telegram: %s flood-limited, waiting %ss", name, error.retry_after)
                self._observe(name, "429", error.retry_after)
                await asyncio.sleep(error.retry_after)
            except (TelegramServerError, TelegramNetworkError) as error:
                attempt += 1
                delay = min(0.5 * 2 ** (attempt - 1), self.max_backoff)
                self._observe(name, "retry" if attempt <= self.retries else "error", delay)
                if attempt > self.retries:
                    raise
                log.warning("telegram: %s failed (%s), retry %s in %.1fs", name, type(error).__name__, attempt, delay)
                await asyncio.sleep(delay)
            except TelegramUnauthorizedError:
                self._observe(name, "error")
                if self.on_unauthorized is not None:
                    self.on_unauthorized(bot)
                raise
            except TelegramAPIError:
                self._observe(name, "error")
                raise
            else:
                self._observe(name, "ok")
                return result

    def _observe(self, method: str, result: str, waited: float = 0.0) -> None:
        if self.observer is None:
            return
        self.observer.telegram_call(method, result)
        if waited:
            self.observer.telegram_wait("429" if result == "429" else "failure", waited)
