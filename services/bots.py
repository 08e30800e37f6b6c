"""The bots a deployment serves: added by the platform owner with their tokens, paused, resumed, given a new
token, removed (their data kept for a retention period, then deleted).

Telegram is reached through `Identify` (getMe with a token): the caller passes it in, so this module
imports no Telegram library. Tokens are sealed with ENCRYPTION_KEY before they are stored; the bot from
BOT_TOKEN keeps its token in the settings and is never sealed here.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tortoise.transactions import in_transaction

from models import AuditLog, Bot, BotState
from services import conversations
from services.secrets_box import BoxError, SecretBox

log = logging.getLogger(__name__)

# "123456789:AA..." as BotFather gives it: the bot's id, a colon, the secret part.
TOKEN_SHAPE = re.compile(r"^(\d{1,20}):([A-Za-z0-9_-]{1,100})$")
PAUSED_BY_OWNER, TOKEN_REVOKED = "owner", "revoked"
CHANGED_CHANNEL = "bots"  # the event bus channel saying "the bot table changed": every instance looks at once


class BotError(ValueError):
    """What the platform owner asked for cannot be done; the message says why, in one line. `code` says which
    refusal it is and `name` which bot, for an adapter that words it in the reader's language."""

    def __init__(self, message: str, code: str = "refused", name: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.name = name


class TokenRefused(BotError):
    """Telegram does not accept the token (revoked, or never issued)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "token_refused")


@dataclass(frozen=True)
class BotIdentity:
    telegram_id: int
    username: str


Identify = Callable[[str], Awaitable[BotIdentity]]  # getMe with a token; TokenRefused when Telegram says no


def token_context(telegram_id: int) -> str:
    """What a sealed token is bound to: it opens only as this bot's token."""
    return f"bot-token:{telegram_id}"


def check_token_shape(token: str) -> int:
    """The bot's Telegram id from a well-formed token, or BotError (before Telegram is asked anything)."""
    found = TOKEN_SHAPE.match(token.strip())
    if found is None:
        raise BotError("that is not a bot token: BotFather gives one like 123456789:AAE...", "bad_token")
    return int(found.group(1))


async def add_bot(token: str, identify: Identify, box: SecretBox, by: int | None = None) -> Bot:
    """Start serving a bot: its token is checked with Telegram, sealed and stored. A bot removed earlier (its
    data still kept) comes back with its data; what was set up before any bot existed becomes this bot's."""
    token = token.strip()
    check_token_shape(token)
    identity = await identify(token)
    async with in_transaction():
        bot = await Bot.filter(telegram_id=identity.telegram_id).select_for_update().first()
        if bot is not None and bot.state != BotState.REMOVED:
            raise BotError(f"{_name(bot)} is already here (id {bot.id}, {bot.state.value})", "already_here",
                           _name(bot))
        if bot is None and await Bot.exists(telegram_id=conversations.UNCONFIGURED_BOT_ID):
            await Bot.filter(telegram_id=conversations.UNCONFIGURED_BOT_ID).update(telegram_id=identity.telegram_id)
            bot = await Bot.get(telegram_id=identity.telegram_id)
        if bot is None:
            bot = Bot(telegram_id=identity.telegram_id)
        bot.username = identity.username
        bot.state, bot.paused_reason, bot.removed_at = BotState.ACTIVE, "", None
        _seal(bot, token, box)
        bot.webhook_key = bot.webhook_key or secrets.token_urlsafe(24)
        await bot.save()
        await AuditLog.create(bot_id=bot.id, action="bot.add", target=_name(bot), details=_who(by))
    return bot


async def replace_token(bot: Bot, token: str, identify: Identify, box: SecretBox, by: int | None = None) -> Bot:
    """A new token for the same bot (BotFather's /revoke gives one); another bot's token is refused."""
    token = token.strip()
    if not bot.token_secret and bot.state != BotState.REMOVED:  # only BOT_TOKEN's bot has no sealed token
        raise BotError(f"{_name(bot)}'s token is BOT_TOKEN: set the new one there and restart", "configured_token",
                       _name(bot))
    if check_token_shape(token) != bot.telegram_id:
        raise BotError(f"that token is another bot's, not {_name(bot)}'s", "other_bots_token", _name(bot))
    identity = await identify(token)
    _seal(bot, token, box)
    bot.username = identity.username or bot.username
    if bot.paused_reason == TOKEN_REVOKED:  # the new token is what it was waiting for
        bot.state, bot.paused_reason = BotState.ACTIVE, ""
    await bot.save()
    await AuditLog.create(bot_id=bot.id, action="bot.token", target=_name(bot),
                          details={"last4": bot.token_last4, **_who(by)})
    return bot


async def pause(bot: Bot, reason: str = PAUSED_BY_OWNER, by: int | None = None) -> Bot:
    """Stop serving it, keeping everything; `resume` serves it again."""
    if bot.state == BotState.REMOVED:
        raise BotError(f"{_name(bot)} was removed: add it again with its token", "removed", _name(bot))
    bot.state, bot.paused_reason = BotState.PAUSED, reason
    await bot.save(update_fields=["state", "paused_reason"])
    await AuditLog.create(bot_id=bot.id, action="bot.pause", target=_name(bot), details={"reason": reason, **_who(by)})
    return bot


async def resume(bot: Bot, by: int | None = None) -> Bot:
    if bot.state == BotState.REMOVED:
        raise BotError(f"{_name(bot)} was removed: add it again with its token", "removed", _name(bot))
    if bot.paused_reason == TOKEN_REVOKED:  # Telegram would refuse it again at once
        raise BotError(f"Telegram refused {_name(bot)}'s token: give it the new one (`bots token`)", "token_revoked",
                       _name(bot))
    bot.state, bot.paused_reason = BotState.ACTIVE, ""
    await bot.save(update_fields=["state", "paused_reason"])
    await AuditLog.create(bot_id=bot.id, action="bot.resume", target=_name(bot), details=_who(by))
    return bot


async def remove(bot: Bot, now: datetime | None = None) -> Bot:
    """Stop serving it and forget its token; its data is deleted `retention` after (`purge_removed`). Removing
    it again changes nothing (its retention counts from the first removal)."""
    if bot.state == BotState.REMOVED:
        return bot
    bot.state, bot.paused_reason, bot.removed_at = BotState.REMOVED, "", now or datetime.now(UTC)
    bot.token_secret = bot.token_key_id = ""
    await bot.save(update_fields=["state", "paused_reason", "removed_at", "token_secret", "token_key_id"])
    await AuditLog.create(bot_id=bot.id, action="bot.remove", target=_name(bot), details={})
    return bot


async def purge_removed(retention: timedelta, now: datetime | None = None) -> list[str]:
    """Delete the bots removed longer than `retention` ago, with everything that was theirs (the foreign keys
    cascade); returns their names."""
    cutoff = (now or datetime.now(UTC)) - retention
    gone = []
    for bot in await Bot.filter(state=BotState.REMOVED, removed_at__lt=cutoff):
        async with in_transaction():
            await bot.delete()
        log.info("bots: deleted %s and its data (removed on %s)", _name(bot), bot.removed_at)
        gone.append(_name(bot))
    return gone


async def reseal_tokens(box: SecretBox) -> tuple[int, list[int]]:
    """Re-seal stored bot tokens under the current ENCRYPTION_KEY (after a key change): how many were, and the
    ids of the bots whose token no configured key opens."""
    resealed, unreadable = 0, []
    for bot in await Bot.exclude(token_secret="").order_by("id"):
        if box.is_current(bot.token_key_id):
            continue
        try:
            sealed = box.reseal(bot.token_secret, bot.token_key_id, token_context(bot.telegram_id))
        except BoxError:
            unreadable.append(bot.id)
            continue
        # Only if the row is as read: a token replaced meanwhile is left alone.
        resealed += await Bot.filter(id=bot.id, token_secret=bot.token_secret).update(
            token_secret=sealed.secret, token_key_id=sealed.key_id)
    return resealed, unreadable


def open_token(bot: Bot, box: SecretBox) -> str:
    """The bot's token, for talking to Telegram as it; BotError when it has none here (the BOT_TOKEN bot)."""
    if not bot.token_secret:
        raise BotError(f"{_name(bot)} has no stored token")
    return box.open(bot.token_secret, bot.token_key_id, token_context(bot.telegram_id))


async def is_active(bot_id: int) -> bool:
    """Whether the bot is served by the deployment (not paused, not removed)."""
    return await Bot.filter(id=bot_id, state=BotState.ACTIVE).exists()


async def listed() -> list[Bot]:
    """Every bot, removed ones last."""
    bots = await Bot.all().order_by("id")
    return sorted(bots, key=lambda bot: bot.state == BotState.REMOVED)


async def find(reference: str) -> Bot | None:
    """A bot by its id here, its Telegram id, or its username (with or without @)."""
    reference = reference.strip()
    if reference.isdigit():
        number = int(reference)
        # A row id is a 32-bit integer (PostgreSQL refuses a larger one); Telegram ids are larger.
        by_id = await Bot.get_or_none(id=number) if number < 2**31 else None
        return by_id or await Bot.get_or_none(telegram_id=number)
    name = reference.removeprefix("@")
    return await Bot.filter(username__iexact=name).order_by("id").first() if name else None


async def for_command(reference: str | None, configured_telegram_id: int, telegram_enabled: bool) -> Bot:
    """The bot a command acts on: the one named (`--bot`), else the only one. With several, the command must
    name one: the error lists them. `configured_telegram_id` is BOT_TOKEN's bot (or the placeholder that holds
    what is set up before any bot exists), made here as the server makes it at start."""
    if reference:
        bot = await find(reference)
        if bot is None or bot.state == BotState.REMOVED:
            raise BotError(f"no bot is called {reference!r}; the bots here: {await _names()}")
        return bot
    serving = await Bot.exclude(state=BotState.REMOVED).order_by("id")
    if telegram_enabled or not serving:
        configured = await conversations.ensure_bot(configured_telegram_id)
        serving = await Bot.exclude(state=BotState.REMOVED).order_by("id")
        if len(serving) == 1:
            return configured
    if len(serving) == 1:
        return serving[0]
    raise BotError(f"this deployment has {len(serving)} bots: name one with --bot USERNAME_OR_ID "
                   f"({await _names()})")


def describe(bot: Bot) -> str:
    """One line for `bots list`: id, username, Telegram id, state."""
    state = bot.state.value + (f" ({bot.paused_reason})" if bot.paused_reason else "")
    token = f"token …{bot.token_last4}" if bot.token_last4 else ("BOT_TOKEN" if bot.state != BotState.REMOVED
                                                                   and not bot.token_secret else "-")
    return f"{bot.id}\t{_name(bot)}\t{bot.telegram_id}\t{state}\t{token}"


def _seal(bot: Bot, token: str, box: SecretBox) -> None:
    sealed = box.seal(token, token_context(bot.telegram_id))
    bot.token_secret, bot.token_key_id, bot.token_last4 = sealed.secret, sealed.key_id, token[-4:]


def _who(by: int | None) -> dict[str, object]:
    """Who made a change, for its audit entry: a platform owner's Telegram id (the Mini App); none: the CLI."""
    return {} if by is None else {"by": by}


def _name(bot: Bot) -> str:
    return f"@{bot.username}" if bot.username else f"bot {bot.telegram_id}"


async def _names() -> str:
    bots = await Bot.exclude(state=BotState.REMOVED).order_by("id")
    return ", ".join(f"{_name(bot)} (id {bot.id})" for bot in bots) or "none"


class ServedBots:
    """Which bots are served now, and their tokens, for checking who opened a bot's Mini App: read from the
    database at most every `ttl` seconds per bot, so a request does not open a sealed token each time, and a
    paused or removed bot stops being let in within `ttl`."""

    def __init__(self, configured_token: str, box: SecretBox, ttl: float = 5.0) -> None:
        self.configured_token = configured_token  # BOT_TOKEN: its bot keeps no sealed token
        self.box = box
        self.ttl = ttl
        self._known: dict[int, tuple[float, bool, str]] = {}  # bot id: (when read, active, token or "")

    async def token_of(self, bot_id: int) -> str | None:
        """The token of an active bot; None for a paused, removed or unknown one, or one whose token is not here."""
        active, token = await self._lookup(bot_id)
        return token if active and token else None

    async def is_active(self, bot_id: int) -> bool:
        return (await self._lookup(bot_id))[0]

    async def _lookup(self, bot_id: int) -> tuple[bool, str]:
        now = time.monotonic()
        known = self._known.get(bot_id)
        if known is not None and now - known[0] < self.ttl:
            return known[1], known[2]
        bot = await Bot.get_or_none(id=bot_id) if 0 < bot_id < 2**31 else None
        active = bot is not None and bot.state == BotState.ACTIVE
        token = self._token(bot) if bot is not None and active else ""
        if len(self._known) > 10_000:
            self._known.clear()
        self._known[bot_id] = (now, active, token)
        return active, token

    def _token(self, bot: Bot) -> str:
        if bot.token_secret:
            try:
                return open_token(bot, self.box)
            except BoxError:
                log.warning("bots: the stored token of %s opens with no configured ENCRYPTION_KEY", _name(bot))
                return ""
        found = TOKEN_SHAPE.match(self.configured_token.strip())
        return self.configured_token.strip() if found and int(found.group(1)) == bot.telegram_id else ""
