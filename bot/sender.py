"""The outbound sender: the only path to the Bot API.

aiogram has no outgoing rate limiter and never retries a 429, so every request passes through
this session middleware. It paces sends to Telegram's limits (per private chat, per group, per
bot), waits out `retry_after`, and retries server and network errors with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.enums import ParseMode
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaAudio,
    InputMediaDocument,
    InputMediaPhoto,
    InputMediaVideo,
    LinkPreviewOptions,
    ReplyParameters,
)
from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.ports import (
    AlbumItem,
    GroupRights,
    MessageGone,
    NoRights,
    OutgoingText,
    RecipientBlocked,
    SendPriority,
    TopicClosed,
    TopicGone,
    Where,
)

log = logging.getLogger(__name__)

# Every text and caption the bot sends is HTML (services.render writes it; handlers escape theirs).
BOT_DEFAULTS = DefaultBotProperties(parse_mode=ParseMode.HTML)

# Methods that put a message into a chat, and so count against Telegram's flood limits.
PACED_METHODS = {
    "sendMessage", "sendPhoto", "sendDocument", "sendVoice", "sendVideo", "sendAudio", "sendAnimation",
    "sendSticker", "sendLocation", "sendContact", "sendVideoNote", "sendPoll", "sendDice", "sendVenue",
    "sendMediaGroup", "copyMessage", "copyMessages", "forwardMessage", "forwardMessages",
    "editMessageText", "editMessageCaption", "editMessageMedia", "createForumTopic",
    # Each leaves a service message in the group, so they are spent from its budget too.
    "editForumTopic", "closeForumTopic", "reopenForumTopic",
}


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


# How long a send waits while a more urgent one waits for the budget: about one message's turn.
YIELD = 0.05


class WaitingSends:
    """How many sends of this process wait for the budget, by priority: a send gives way to any more
    urgent one waiting, so a short budget goes to first words, then answers, then draft updates."""

    def __init__(self) -> None:
        self._waiting = [0] * len(SendPriority)

    def yields(self, priority: SendPriority) -> bool:
        return any(self._waiting[:priority])

    def start(self, priority: SendPriority) -> None:
        self._waiting[priority] += 1

    def stop(self, priority: SendPriority) -> None:
        self._waiting[priority] -= 1
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


# How urgent the send being made in this task is (TelegramChatSender sets it around a send).
send_priority: contextvars.ContextVar[SendPriority] = contextvars.ContextVar(
    "send_priority", default=SendPriority.FIRST_WORDS)


# KEYS: the bot-wide window, the chat's window (group) or bucket (private chat).
# ARGV: count, is_group, per_second, group_per_minute, private_per_second, private_burst, a unique id.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local count = tonumber(ARGV[1])
local function window_wait(key, span, limit)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - span)
  local n = redis.call('ZCARD', key)
  local overflow = n + count - limit
  if overflow <= 0 then return 0 end
  if overflow > n then return span end
  local entry = redis.call('ZRANGE', key, overflow - 1, overflow - 1, 'WITHSCORES')
  return tonumber(entry[2]) + span - now
end
local wait = window_wait(KEYS[1], 1.0, tonumber(ARGV[3]))
local group = ARGV[2] == '1'
local tokens = 0
if group then
  wait = math.max(wait, window_wait(KEYS[2], 60.0, tonumber(ARGV[4])))
else
  local rate, burst = tonumber(ARGV[5]), tonumber(ARGV[6])
  local state = redis.call('HMGET', KEYS[2], 'tokens', 'ts')
  tokens = tonumber(state[1]) or burst
  tokens = math.min(burst, tokens + (now - (tonumber(state[2]) or now)) * rate)
  wait = math.max(wait, (count - tokens) / rate)
end
if wait > 0 then return tostring(wait) end
for i = 1, count do
  local member = ARGV[7] .. ':' .. i
  redis.call('ZADD', KEYS[1], now, member)
  if group then redis.call('ZADD', KEYS[2], now, member) end
end
redis.call('EXPIRE', KEYS[1], 2)
if group then
  redis.call('EXPIRE', KEYS[2], 61)
else
  redis.call('HSET', KEYS[2], 'tokens', tostring(tokens - count), 'ts', tostring(now))
  redis.call('EXPIRE', KEYS[2], 60)
end
return '0'
"""


# KEYS: the bot-wide window, the group's window (or none). ARGV: count, the reservation's id.
# Moves the reservation's entries to Redis's now, if they are still in the windows.
_SETTLE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
for k = 1, #KEYS do
  for i = 1, tonumber(ARGV[1]) do
    redis.call('ZADD', KEYS[k], 'XX', now, ARGV[2] .. ':' .. i)
  end
end
return 0
"""


# KEYS: the bot-wide window. ARGV: per_second, a unique id. A draft's place in it, or how long to wait.
_RESERVE_DRAFT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local limit = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 1.0)
local n = redis.call('ZCARD', KEYS[1])
if n + 1 > limit then
  local entry = redis.call('ZRANGE', KEYS[1], n - limit, n - limit, 'WITHSCORES')
  return tostring(tonumber(entry[2]) + 1.0 - now)
end
redis.call('ZADD', KEYS[1], now, ARGV[2])
redis.call('EXPIRE', KEYS[1], 2)
return '0'
"""


class RedisPacer:
    """The same budget as Pacer, kept in Redis on Redis's clock: shared by every instance, so
    Telegram's limits hold for the bot as a whole however many instances send. A send holds its
    place from its reservation until its answer came back, as in Pacer."""

    def __init__(self, redis: Redis, prefix: str, limits: Limits) -> None:
        self.redis = redis
        self.prefix = prefix
        self.limits = limits
        self._script = redis.register_script(_RESERVE)
        self._settle = redis.register_script(_SETTLE)
        self._draft = redis.register_script(_RESERVE_DRAFT)
        self.queue = WaitingSends()  # this instance's sends waiting (other instances' are not seen)
        # This instance's sends waiting for their answer, per chat: the reservation's id ("" when
        # it was made by the in-process fallback) and its count.
        self._in_flight: dict[int, deque[tuple[str, int]]] = {}
        # While Redis is unreachable (restarting, say) this instance paces itself alone: answers keep
        # going out, and a 429 from instances together is waited out, rather than every send failing.
        self._alone = Pacer(limits)
        self._unreachable = False

    async def reserve(self, chat_id: int, count: int = 1, priority: SendPriority = SendPriority.FIRST_WORDS) -> float:
        if self.queue.yields(priority):
            return YIELD
        group = chat_id < 0
        limits = self.limits
        reservation = uuid.uuid4().hex
        try:
            wait = float(await self._script(
                keys=[f"{self.prefix}:pace:all", f"{self.prefix}:pace:{chat_id}"],
                args=[count, 1 if group else 0, limits.per_second, limits.group_per_minute, limits.private_per_second,
                      limits.private_burst, reservation]))
        except (RedisError, OSError) as error:
            if not self._unreachable:
                log.warning("telegram: the shared budget in Redis is unreachable (%s); pacing this instance alone",
                            error)
                self._unreachable = True
            wait = await self._alone.reserve(chat_id, count)
            reservation = ""
        else:
            if self._unreachable:
                log.warning("telegram: the shared budget in Redis is back")
                self._unreachable = False
        if wait <= 0:
            self._in_flight.setdefault(chat_id, deque()).append((reservation, count))
        return wait

    async def reserve_draft(self, priority: SendPriority = SendPriority.UPDATE) -> float:
        if self.queue.yields(priority):
            return YIELD
        reservation = f"draft-{uuid.uuid4().hex}"
        try:
            wait = max(0.0, float(await self._draft(keys=[f"{self.prefix}:pace:all"],
                                                    args=[self.limits.per_second, f"{reservation}:1"])))
        except (RedisError, OSError):  # the next message's reservation logs it
            wait, reservation = self._alone.draft_wait(time.monotonic(), priority), ""
        if wait <= 0:
            self._in_flight.setdefault(DRAFTS, deque()).append((reservation, 1))
        return wait

    async def settle_draft(self) -> None:
        await self.settle(DRAFTS)

    async def settle(self, chat_id: int, count: int = 1) -> None:
        in_flight = self._in_flight.get(chat_id)
        if not in_flight:
            return
        reservation, count = in_flight.popleft()
        if not in_flight:
            del self._in_flight[chat_id]
        if not reservation:
            await self._alone.settle(chat_id, count)
            return
        keys = [f"{self.prefix}:pace:all"] + ([f"{self.prefix}:pace:{chat_id}"] if chat_id < 0 else [])
        try:
            await self._settle(keys=keys, args=[count, reservation])
        except (RedisError, OSError) as error:  # the reservation then counts from when it was made
            log.info("telegram: could not settle a send in the shared budget: %s", error)

    async def acquire(self, chat_id: int, count: int = 1) -> None:
        await acquire(self, chat_id, count)


def _window_wait(window: deque[float], now: float, span: float, limit: int, count: int) -> float:
    while window and window[0] <= now - span:
        window.popleft()
    overflow = len(window) + count - limit
    if overflow <= 0:
        return 0.0
    if overflow > len(window):
        return span
    return window[overflow - 1] + span - now


class CallObserver(Protocol):
    def telegram_call(self, method: str, result: str) -> None: ...

    def telegram_wait(self, reason: str, seconds: float) -> None: ...


class SenderMiddleware(BaseRequestMiddleware):
    def __init__(self, limits: Limits | None = None, retries: int = 5, max_backoff: float = 30.0,
                 observer: CallObserver | None = None, pacer: Budget | None = None) -> None:
        self.pacer: Budget = pacer or Pacer(limits or Limits())
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
        attempt = 0
        while True:
            if paced:
                await acquire(self.pacer, chat_id, count, send_priority.get())  # type: ignore[arg-type]
            try:
                try:
                    result = await make_request(bot, method)
                finally:
                    if paced:  # the request reached Telegram (or never will): it counts from now
                        await self.pacer.settle(chat_id, count)  # type: ignore[arg-type]
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


def _markup(message: OutgoingText) -> InlineKeyboardMarkup | None:
    if not message.buttons:
        return None
    return InlineKeyboardMarkup(inline_keyboard=[
        [InlineKeyboardButton(text=b.text, callback_data=b.callback_data or None, url=b.url or None) for b in row]
        for row in message.buttons
    ])


class TelegramChatSender:
    """services.ports.Messenger over aiogram (whose session carries the SenderMiddleware).

    Everything it sends is HTML, by the bot's default parse mode (BOT_DEFAULTS)."""

    def __init__(self, bot: Bot) -> None:
        if bot.default.parse_mode != ParseMode.HTML:  # else customers would see the tags
            raise ValueError("TelegramChatSender needs a Bot made with default=BOT_DEFAULTS (parse mode HTML)")
        self.bot = bot
        self._topic_icons: dict[str, str] | None = None

    async def send_text(self, chat_id: int, message: OutgoingText) -> int:
        return await self.post(Where(chat_id), message)

    async def send_draft(self, chat_id: int, draft_id: int, html: str) -> None:
        with _translated_errors():
            await self.bot.send_message_draft(chat_id=chat_id, draft_id=draft_id, text=html, can_stop=True)

    async def send_typing(self, chat_id: int) -> None:
        with _translated_errors():
            await self.bot.send_chat_action(chat_id=chat_id, action="typing")

    async def post(self, where: Where, message: OutgoingText) -> int:
        priority = send_priority.set(SendPriority.FOLLOW_UP if message.after_preview else SendPriority.FIRST_WORDS)
        try:
            return await self._post(where, message)
        finally:
            send_priority.reset(priority)

    async def _post(self, where: Where, message: OutgoingText) -> int:
        with _translated_errors():
            sent = await self.bot.send_message(
                where.chat_id, message.html, reply_markup=_markup(message),
                message_thread_id=where.thread_id, reply_parameters=_reply(where),
                link_preview_options=LinkPreviewOptions(is_disabled=True), disable_notification=message.silent or None)
        return sent.message_id

    async def copy(self, where: Where, from_chat_id: int, message_id: int, caption_html: str | None = None,
                   *, silent: bool = False) -> int:
        with _translated_errors():  # no caption (None): the copy keeps the original's
            copied = await self.bot.copy_message(
                where.chat_id, from_chat_id, message_id, message_thread_id=where.thread_id,
                reply_parameters=_reply(where), disable_notification=silent or None, caption=caption_html)
        return copied.message_id

    async def send_album(self, where: Where, items: list[AlbumItem]) -> list[int]:
        kinds = {"photo": InputMediaPhoto, "video": InputMediaVideo, "document": InputMediaDocument,
                 "audio": InputMediaAudio}
        media = [kinds[item.kind](media=item.file_id, caption=item.caption_html or None) for item in items]
        with _translated_errors():
            sent = await self.bot.send_media_group(where.chat_id, media,
                                                   message_thread_id=where.thread_id,
                                                   reply_parameters=_reply(where))
        return [message.message_id for message in sent]

    async def edit(self, chat_id: int, message_id: int, html: str, *, caption: bool = False) -> None:
        try:
            with _translated_errors():
                if caption:
                    await self.bot.edit_message_caption(chat_id=chat_id, message_id=message_id, caption=html)
                else:
                    await self.bot.edit_message_text(html, chat_id=chat_id, message_id=message_id,
                                                     link_preview_options=LinkPreviewOptions(is_disabled=True))
        except TelegramBadRequest as error:
            if "message is not modified" not in error.message:
                raise

    async def remove_buttons(self, chat_id: int, message_id: int) -> None:
        try:
            with _translated_errors():
                await self.bot.edit_message_reply_markup(chat_id=chat_id, message_id=message_id)
        except (TelegramBadRequest, MessageGone) as error:
            log.info("telegram: could not remove buttons from %s/%s: %s", chat_id, message_id, error)

    async def create_topic(self, chat_id: int, name: str, icon: str = "") -> int:
        with _translated_errors():
            topic = await self.bot.create_forum_topic(chat_id, name[:128],
                                                      icon_custom_emoji_id=await self._topic_icon(icon))
        return topic.message_thread_id

    async def rename_topic(self, chat_id: int, thread_id: int, name: str, icon: str = "") -> None:
        try:
            with _translated_errors():
                await self.bot.edit_forum_topic(chat_id, thread_id, name=name[:128],
                                                icon_custom_emoji_id=await self._topic_icon(icon))
        except TelegramBadRequest as error:
            if "TOPIC_NOT_MODIFIED" not in error.message:
                raise

    async def _topic_icon(self, emoji: str) -> str | None:
        """The custom emoji id of a topic icon showing `emoji`, if Telegram offers one.

        Bots may only use the icons getForumTopicIconStickers lists; asked once, then remembered.
        """
        if not emoji:
            return None
        if self._topic_icons is None:
            try:
                stickers = await self.bot.get_forum_topic_icon_stickers()
            except TelegramAPIError as error:
                log.info("telegram: no topic icons (%s)", error)
                stickers = []
            self._topic_icons = topic_icon_ids([(s.emoji or "", s.custom_emoji_id or "") for s in stickers])
        return self._topic_icons.get(_bare(emoji))

    async def close_topic(self, chat_id: int, thread_id: int) -> None:
        await self._topic_state(chat_id, thread_id, closed=True)

    async def reopen_topic(self, chat_id: int, thread_id: int) -> None:
        await self._topic_state(chat_id, thread_id, closed=False)

    async def _topic_state(self, chat_id: int, thread_id: int, *, closed: bool) -> None:
        try:
            with _translated_errors():
                if closed:
                    await self.bot.close_forum_topic(chat_id, thread_id)
                else:
                    await self.bot.reopen_forum_topic(chat_id, thread_id)
        except TelegramBadRequest as error:
            if "TOPIC_NOT_MODIFIED" not in error.message:  # already in that state
                raise

    async def member_status(self, chat_id: int, user_id: int) -> str:
        try:
            member = await self.bot.get_chat_member(chat_id, user_id)
        except (TelegramBadRequest, TelegramForbiddenError):
            return "left"
        return str(member.status)

    async def group_rights(self, chat_id: int) -> GroupRights:
        chat = await self.bot.get_chat(chat_id)
        member = await self.bot.get_chat_member(chat_id, self.bot.id)
        status = str(member.status)
        return GroupRights(
            is_member=status not in ("left", "kicked"),
            is_admin=status in ("administrator", "creator"),
            can_manage_topics=status == "creator" or bool(getattr(member, "can_manage_topics", False)),
            is_forum=bool(chat.is_forum))


def _bare(emoji: str) -> str:
    return emoji.replace("\ufe0f", "")  # "❗️" and "❗" are one icon


def topic_icon_ids(stickers: list[tuple[str, str]]) -> dict[str, str]:
    """Emoji -> custom emoji id, from getForumTopicIconStickers' (emoji, custom_emoji_id) pairs."""
    return {_bare(emoji): emoji_id for emoji, emoji_id in stickers if emoji and emoji_id}


def _reply(where: Where) -> ReplyParameters | None:
    return ReplyParameters(message_id=where.reply_to, allow_sending_without_reply=True) if where.reply_to else None


@contextlib.contextmanager
def _translated_errors() -> Iterator[None]:
    """Telegram's error texts as the domain's exceptions; everything else passes through."""
    try:
        yield
    except TelegramForbiddenError as error:
        raise RecipientBlocked(str(error)) from error
    except TelegramBadRequest as error:
        text = error.message
        if "message thread not found" in text:
            raise TopicGone(text) from error
        if "TOPIC_CLOSED" in text:
            raise TopicClosed(text) from error
        if "to copy not found" in text or "to edit not found" in text or "to forward not found" in text:
            raise MessageGone(text) from error
        if "not enough rights" in text:
            raise NoRights(text) from error
        raise
