"""The platform owner's view of the bots: each one's state with its traffic, AI cost and errors.

A page of bots costs a fixed number of queries whatever its size: the bots, their count, and one GROUP BY bot_id
per kind of figure (messages, AI cost, failed jobs), each limited to the page's bots. So a page of 50 bots out of
1,000 reads the figures of 50.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tortoise.expressions import Q
from tortoise.functions import Count, Sum

from models import AuthorKind, Bot, JobStatus, Message, OutboxJob, UsageSlot
from services.budgets import month_start

DAY, MONTH = timedelta(hours=24), timedelta(days=30)
ANSWERS = (AuthorKind.AI, AuthorKind.MANAGER)  # what the bot's customers got back: the AI's and people's replies


@dataclass(frozen=True)
class Traffic:
    messages_in: int = 0  # from customers (Telegram and the website)
    answers_out: int = 0  # the AI's and the team's replies to them


@dataclass(frozen=True)
class Figures:
    day: Traffic = Traffic()  # the last 24 hours
    month: Traffic = Traffic()  # the last 30 days
    ai_cost: Decimal = Decimal(0)  # this calendar month (UTC), what the monthly budget counts
    failed_jobs: int = 0  # outbox jobs that gave up in the last 24 hours


@dataclass(frozen=True)
class BotsPage:
    bots: list[Bot]
    figures: dict[int, Figures] = field(default_factory=dict)
    total: int = 0  # bots matching the search, on every page
    next_after: int | None = None  # ask for the next page with after=<this>; None: this is the last


def _matching(search: str) -> Q:
    """By id, Telegram id or username (any part of it, with or without @)."""
    search = search.strip().removeprefix("@")
    if not search:
        return Q()
    if search.isdigit():
        number = int(search)
        return Q(telegram_id=number) | Q(id=number) if number < 2**31 else Q(telegram_id=number)
    return Q(username__icontains=search)


async def bots_page(after: int = 0, limit: int = 50, search: str = "", now: datetime | None = None) -> BotsPage:
    """Bots in the order they were added, after the bot with id `after`, with their figures."""
    matching = _matching(search)
    rows = await Bot.filter(matching, id__gt=after).order_by("id").limit(limit + 1)
    bots, more = rows[:limit], len(rows) > limit
    total = await Bot.filter(matching).count()
    if not bots:
        return BotsPage([], {}, total)
    figures = await figures_of([bot.id for bot in bots], now or datetime.now(UTC))
    return BotsPage(bots, figures, total, bots[-1].id if more else None)


async def figures_of(bot_ids: list[int], now: datetime) -> dict[int, Figures]:
    day_ago, month_ago = now - DAY, now - MONTH
    traffic = await (Message.filter(bot_id__in=bot_ids, created_at__gte=month_ago,
                                    author_kind__in=[AuthorKind.CUSTOMER, *ANSWERS])
                     .annotate(in_month=Count("id"), in_day=Count("id", _filter=Q(created_at__gte=day_ago)))
                     .group_by("bot_id", "author_kind").values("bot_id", "author_kind", "in_month", "in_day"))
    costs = await (UsageSlot.filter(bot_id__in=bot_ids, slot__gte=month_start(now))
                   .annotate(total=Sum("cost")).group_by("bot_id").values("bot_id", "total"))
    failed = await (OutboxJob.filter(bot_id__in=bot_ids, status=JobStatus.FAILED, finished_at__gte=day_ago)
                    .annotate(jobs=Count("id")).group_by("bot_id").values("bot_id", "jobs"))
    counts: dict[int, list[int]] = {bot_id: [0, 0, 0, 0] for bot_id in bot_ids}  # day in, day out, month in, out
    for row in traffic:
        column = 0 if row["author_kind"] == AuthorKind.CUSTOMER else 1
        counts[row["bot_id"]][column] += int(row["in_day"])
        counts[row["bot_id"]][column + 2] += int(row["in_month"])
    cost_of = {row["bot_id"]: Decimal(str(row["total"])) for row in costs if row["total"] is not None}
    failed_of = {row["bot_id"]: int(row["jobs"]) for row in failed}
    return {bot_id: Figures(Traffic(day_in, day_out), Traffic(month_in, month_out),
                            cost_of.get(bot_id, Decimal(0)), failed_of.get(bot_id, 0))
            for bot_id, (day_in, day_out, month_in, month_out) in counts.items()}
