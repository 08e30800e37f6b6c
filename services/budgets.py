"""A bot's monthly AI budget, in dollars, set by the platform owner (`python -m bot bots budget`).

What counts is the bot's AI cost this calendar month (UTC): the `cost` of its `UsageSlot` rows, which every
AI answer, transcription and image answer adds to (services.quotas). Once it reaches the budget the AI stops
answering the bot's customers until the month ends: the knowledge base and people still answer (the caller,
services.answering, decides how). The bot's admins are told once a month: in the manager chat, else each of
ADMIN_IDS in their private chat with the bot; and the audit log says when.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from tortoise.functions import Sum

from models import UsageSlot, User
from services import outbox, tenant_settings
from services.flow import post_to_group
from services.i18n import N_, Translate
from services.outbox import JobKind
from services.ports import Messengers, Where
from services.render import escape
from services.tenant_settings import TenantSettings

log = logging.getLogger(__name__)

USED_UP = N_("This month's AI budget of ${budget} is used up (${spent} so far). Until {resumes} (UTC) the AI "
             "does not answer: customers get answers from the knowledge base, and the rest go to your team. "
             "The platform owner can raise the budget.")
CENT = Decimal("0.01")
MAX_BUDGET = Decimal(10) ** 9  # what TenantSettings.monthly_ai_budget holds (12 digits, 2 of them cents)


def month_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month(now: datetime) -> datetime:
    start = month_start(now)
    return start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)


def month_key(now: datetime) -> str:
    return f"{month_start(now):%Y-%m}"


async def spent_this_month(bot_id: int, now: datetime | None = None) -> Decimal:
    """The bot's AI cost since the month began (UTC): one SUM over its slots (indexed by bot and slot)."""
    start = month_start(now or datetime.now(UTC))
    row = await UsageSlot.filter(bot_id=bot_id, slot__gte=start).annotate(total=Sum("cost")).first().values("total")
    total = (row or {}).get("total")
    return Decimal(str(total)) if total is not None else Decimal(0)


def parse_amount(text: str) -> Decimal | None:
    """`bots budget`'s AMOUNT: dollars ("25", "12.50"), or "off" (None: no budget); ValueError otherwise."""
    if text.strip().lower() == "off":
        return None
    try:
        amount = Decimal(text.strip().removeprefix("$"))
        if amount.is_finite() and 0 <= amount < MAX_BUDGET and amount == amount.quantize(CENT):
            return amount
    except ArithmeticError:
        pass
    raise ValueError(f"the budget is dollars and cents, like 25 or 12.50, or off; not {text!r}")


async def set_budget(bot_id: int, amount: Decimal | None) -> TenantSettings:
    """The platform owner's change, audit-logged. A new budget is a new start: reached again this month, the
    admins are told again."""
    return await tenant_settings.update(
        bot_id, {"monthly_ai_budget": amount, "budget_told": ""}, action="bot.budget",
        budget=None if amount is None else str(amount), via="cli")


class BudgetWatch:
    """Asked before each AI answer: whether the bot's budget still allows one."""

    def __init__(self, translate: Translate, default_locale: str, admin_ids: frozenset[int], *,
                 messengers: Messengers, wake: Callable[[], None]) -> None:
        self.translate = translate
        self.default_locale = default_locale
        self.admin_ids = admin_ids  # told in private when the bot has no manager chat
        self.messengers = messengers  # a bot not served here cannot message anyone: the audit log alone says it
        self.wake = wake

    async def allows_ai(self, bot_id: int, settings: tenant_settings.TenantSettings | None = None) -> bool:
        """Whether the bot's monthly AI budget has room (`settings`: the bot's, when read already)."""
        budget = (settings or await tenant_settings.load(bot_id)).monthly_ai_budget
        if budget is None:
            return True
        now = datetime.now(UTC)
        spent = await spent_this_month(bot_id, now)
        if spent < budget:
            return True
        if await self._tell_once(bot_id, budget, spent, now):
            self.wake()
        return False

    async def _tell_once(self, bot_id: int, budget: Decimal, spent: Decimal, now: datetime) -> bool:
        """Tell the admins, unless this month's were told already (decided under the bot's lock, so two answers
        at once tell them once)."""
        month = month_key(now)
        async with tenant_settings.edit(bot_id) as draft:
            if draft.settings.budget_told == month:
                return False
            draft.settings = draft.settings.changed(budget_told=month)
            draft.audit(None, "bot.budget_reached", budget=str(budget), spent=str(spent), month=month)
            params: dict[str, Any] = {"budget": f"{budget:.2f}", "spent": f"{spent:.2f}",
                                      "resumes": f"{next_month(now):%Y-%m-%d}"}
            if draft.bot.manager_chat_id is not None:
                locale = draft.settings.manager_locale or self.default_locale
                await post_to_group(bot_id, Where(int(draft.bot.manager_chat_id)), self._text(locale, params))
            elif self.messengers.of(bot_id) is not None:
                languages = dict(await User.filter(bot_id=bot_id, telegram_id__in=sorted(self.admin_ids))
                                 .values_list("telegram_id", "language"))
                for admin in sorted(self.admin_ids):
                    locale = str(languages.get(admin) or self.default_locale)
                    await outbox.enqueue(bot_id, JobKind.ADMIN_NOTICE,
                                         {"chat_id": admin, "html": self._text(locale, params)},
                                         lane=f"admin:{admin}", queue=outbox.MANAGERS)
        log.warning("bot %s: this month's AI budget of $%s is used up ($%s): the AI is paused until %s", bot_id,
                    params["budget"], params["spent"], params["resumes"])
        return True

    def _text(self, locale: str, params: dict[str, Any]) -> str:
        return escape(self.translate(locale, USED_UP).format(**params))
