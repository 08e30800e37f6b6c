"""The business's own settings, as its admins set them in the Mini App.

What customers are told when nobody is in, which of the deployment's AI models answer and in
what order, and how much each customer may ask. They live in `Bot.settings` beside the working
hours (services/tenant_settings.py holds every key), each falling back to the deployment's
environment, and each change is audit-logged with the admin who made it. Readers read fresh, so a
change applies from the next answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from models import Bot, User
from services import tenant_settings
from services.i18n import SUPPORTED_LOCALES
from services.limits import AdjustableRateLimiter, Verdict
from services.schedule import WorkingHours
from services.tenant_settings import CustomerRate

MAX_OFFLINE_TEXT = 1000


class SettingError(ValueError):
    """A setting cannot be stored as asked; `code` says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


# --- working hours and the offline text ----------------------------------------------------------------


def offline_text(bot: Bot, locale: str) -> str:
    """The admins' own words for after hours in this language; "" keeps the translated default."""
    return tenant_settings.of(bot).offline_text.get(locale, "")


def offline_texts(bot: Bot) -> dict[str, str]:
    return {locale: offline_text(bot, locale) for locale in SUPPORTED_LOCALES}


async def set_hours(bot_id: int, hours: str, timezone: str, offline: dict[str, str] | None,
                    actor: User | None, via: str = "app") -> WorkingHours:
    """The working hours, their time zone and the offline texts together (None keeps the texts);
    InvalidHours changes nothing. `via` says where: "app", or "group" for /hours."""
    parsed = WorkingHours.parse(hours, timezone)
    texts: dict[str, str] = {locale: text.strip() for locale, text in (offline or {}).items()
             if locale in SUPPORTED_LOCALES and text.strip()}
    if any(len(text) > MAX_OFFLINE_TEXT for text in texts.values()):
        raise SettingError("too_long", f"an offline text is longer than {MAX_OFFLINE_TEXT} characters")
    async with tenant_settings.edit(bot_id) as draft:
        texts = draft.settings.offline_text if offline is None else texts
        draft.settings = draft.settings.changed(working_hours=hours.strip(), timezone=timezone, offline_text=texts)
        draft.audit(actor, "working_hours", hours=hours.strip(), timezone=timezone, offline_text=texts, via=via)
    return parsed


# --- the AI's models ------------------------------------------------------------------------------------


async def route_order(bot_id: int) -> list[str]:
    """The keys of the routes the admins chose, in order; [] for the deployment's own order."""
    bot = await Bot.get_or_none(id=bot_id)
    return list(tenant_settings.of(bot).ai_routes) if bot is not None else []


async def set_route_order(bot_id: int, order: list[str], configured: list[str], actor: User | None) -> None:
    """The first route answers, the rest are fallbacks in order; [] goes back to the deployment's order."""
    if any(key not in configured for key in order):
        raise SettingError("unknown_route", "not one of the deployment's models")
    if len(set(order)) != len(order):
        raise SettingError("duplicate_route", "a model is listed twice")
    await tenant_settings.update(bot_id, {"ai_routes": list(order)}, actor=actor, action="ai_models",
                                 order=list(order))


# --- quotas and rates -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    daily_ai_quota: int
    burst: int
    per_minute: float


def limits(bot: Bot, defaults: Limits) -> Limits:
    own = tenant_settings.of(bot)
    return Limits(defaults.daily_ai_quota if own.daily_ai_quota is None else own.daily_ai_quota,
                  own.customer_rate.burst or defaults.burst, own.customer_rate.per_minute or defaults.per_minute)


def overrides(bot: Bot) -> dict[str, Any]:
    """Only what the admins set: a missing key follows the environment."""
    own = tenant_settings.of(bot)
    return {"daily_ai_quota": own.daily_ai_quota, "burst": own.customer_rate.burst,
            "per_minute": own.customer_rate.per_minute}


async def daily_ai_quota(bot_id: int, default: int) -> int:
    """AI answers a customer may get today: the admins' number, else DAILY_AI_QUOTA."""
    bot = await Bot.get_or_none(id=bot_id)
    return daily_ai_quota_of(tenant_settings.of(bot), default) if bot is not None else default


def daily_ai_quota_of(settings: tenant_settings.TenantSettings, default: int) -> int:
    """daily_ai_quota from the bot's settings read already."""
    return default if settings.daily_ai_quota is None else settings.daily_ai_quota


async def set_limits(bot_id: int, *, daily_ai_quota: int | None, burst: int | None, per_minute: float | None,
                     actor: User | None) -> None:
    """None for any of them: follow the deployment's environment again."""
    await tenant_settings.update(
        bot_id, {"daily_ai_quota": daily_ai_quota, "customer_rate": CustomerRate(burst=burst, per_minute=per_minute)},
        actor=actor, action="limits", daily_ai_quota=daily_ai_quota, burst=burst, per_minute=per_minute)


class BotRateLimiter:
    """The per-customer rate as the admins set it, re-read at most every `refresh` seconds.

    The limiter sits on the webhook's path, so the setting is not read on every message: this
    instance applies a change at once (`reload`), other instances within `refresh` seconds.
    """

    def __init__(self, inner: AdjustableRateLimiter, bot_id: int, defaults: Limits, refresh: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.inner = inner
        self.bot_id = bot_id
        self.defaults = defaults
        self.refresh = refresh
        self.clock = clock
        self._read_at: float | None = None

    async def check(self, key: str) -> Verdict:
        if self._read_at is None or self.clock() - self._read_at >= self.refresh:
            await self.reload()
        return await self.inner.check(key)

    async def reload(self) -> None:
        self._read_at = self.clock()
        bot = await Bot.get_or_none(id=self.bot_id)
        current = limits(bot, self.defaults) if bot is not None else self.defaults
        self.set_rate(current.burst, current.per_minute)

    def set_rate(self, burst: int, per_minute: float) -> None:
        self.inner.set_rate(burst, per_minute)


class RatesByBot:
    """Every bot's customer rate, each as its own admins set it. A rate key starts with its bot's id
    (services.conversations.Customer.rate_key), so one limiter serves the customers of every bot."""

    def __init__(self, make_inner: Callable[[int], AdjustableRateLimiter], defaults: Limits,
                 refresh: float = 30.0) -> None:
        self.make_inner = make_inner  # a bot's own buckets (in memory, or under its Redis keys)
        self.defaults = defaults
        self.refresh = refresh
        self._bots: dict[int, BotRateLimiter] = {}

    def of(self, bot_id: int) -> BotRateLimiter:
        rates = self._bots.get(bot_id)
        if rates is None:
            rates = self._bots[bot_id] = BotRateLimiter(self.make_inner(bot_id), bot_id, self.defaults, self.refresh)
        return rates

    async def check(self, key: str) -> Verdict:
        bot_id, _, _ = key.partition(":")
        return await self.of(int(bot_id)).check(key)

    async def reload(self, bot_id: int) -> None:
        """The bot's admins changed its rate: this instance applies it at once (the others within `refresh`)."""
        await self.of(bot_id).reload()


# --- the business's name ---------------------------------------------------------------------------------


def business_name(bot: Bot) -> str:
    return tenant_settings.of(bot).business_name


async def set_business_name(bot_id: int, name: str, actor: User | None, *, via: str = "app",
                            only_if_unset: bool = False) -> str:
    """What customers and staff see the business called ("": none); one line, audited. `only_if_unset`: the
    demo names its shop unless the owner named theirs already."""
    name = " ".join(name.split())  # one line: no newlines or runs of spaces in a header
    if len(name) > tenant_settings.MAX_BUSINESS_NAME:
        raise SettingError("too_long", f"the business name is longer than {tenant_settings.MAX_BUSINESS_NAME} "
                                       "characters")
    if any(not character.isprintable() for character in name):
        raise SettingError("bad_name", "the business name holds characters that cannot be shown")
    async with tenant_settings.edit(bot_id) as draft:
        if only_if_unset and draft.settings.business_name:
            return draft.settings.business_name
        if name != draft.settings.business_name:
            draft.settings = draft.settings.changed(business_name=name)
            draft.audit(actor, "business_name", name=name, via=via)
    return name
