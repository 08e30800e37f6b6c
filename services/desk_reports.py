"""What staff ask the desk: a customer's card, the open conversations, today's numbers."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from tortoise.functions import Sum

from models import AuthorKind, Conversation, ConversationStatus, Message, Usage, User
from services.i18n import N_, Translate
from services.managers import STATE_ICONS, STATE_NAMES, customer_name, topic_state
from services.render import escape

INFO_TITLE = N_("Customer")
INFO_LANGUAGE = N_("Language")
INFO_SINCE = N_("First seen")
INFO_CONVERSATIONS = N_("Conversations")
INFO_RATING = N_("Average rating")
INFO_AI_COST = N_("AI cost, all time")
INFO_BANNED = N_("🚫 Banned")
INFO_BLOCKED = N_("⚠️ Has blocked the bot")
OPEN_TITLE = N_("Open conversations: {count}")
OPEN_NONE = N_("No conversation is waiting for a person. 🎉")
STATS_TITLE = N_("Today ({day})")
STATS_CONVERSATIONS = N_("Conversations: {count}")
STATS_BY_AI = N_("Resolved by the AI: {count}")
STATS_HANDED_OFF = N_("Handed to people: {count}")
STATS_FIRST_RESPONSE = N_("Median first response by a person: {value}")
STATS_RATING = N_("Average rating: {value}")
NO_DATA = N_("no data yet")
OPEN_LIMIT = 30


def topic_link(chat_id: int, message_id: int) -> str:
    """A t.me link to a message (or topic) of a supergroup, which staff members can open."""
    internal = str(chat_id).removeprefix("-100") if str(chat_id).startswith("-100") else str(abs(chat_id))
    return f"https://t.me/c/{internal}/{message_id}"


async def info_card(conversation: Conversation, translate: Translate, locale: str) -> str:
    def _(message: str) -> str:
        return translate(locale, message)

    user: User = conversation.user
    total = await Conversation.filter(user_id=user.id).count()
    ratings = [int(str(r)) for r in await Conversation.filter(user_id=user.id, rating__not_isnull=True).values_list(
        "rating", flat=True)]
    cost = (await Usage.filter(user_id=user.id).annotate(total=Sum("cost")).first().values("total") or {}).get("total")
    handle = f" @{escape(user.username)}" if user.username else ""
    lines = [f"👤 <b>{escape(customer_name(conversation))}</b>{handle}",
             f"{_(INFO_TITLE)} #{user.id} · Telegram ID <code>{user.telegram_id or '-'}</code>",
             f"{_(INFO_LANGUAGE)}: {escape(user.language or '?')}",
             f"{_(INFO_SINCE)}: {user.created_at:%Y-%m-%d}",
             f"{_(INFO_CONVERSATIONS)}: {total}"]
    if ratings:
        lines.append(f"{_(INFO_RATING)}: {statistics.mean(ratings):.1f} ⭐ ({len(ratings)})")
    lines.append(f"{_(INFO_AI_COST)}: ${Decimal(str(cost or 0)):.4f}")
    if user.banned:
        lines.append(_(INFO_BANNED))
    if user.blocked_bot:
        lines.append(_(INFO_BLOCKED))
    return "\n".join(lines)


async def open_list(bot_id: int, chat_id: int, forum: bool, translate: Translate, locale: str) -> str:
    waiting = await Conversation.filter(bot_id=bot_id, status__in=[ConversationStatus.WAITING,
                                                                   ConversationStatus.ASSIGNED]
                                        ).order_by("handed_off_at").limit(OPEN_LIMIT).prefetch_related("user",
                                                                                                        "assignee")
    if not waiting:
        return escape(translate(locale, OPEN_NONE))
    lines = [f"<b>{escape(translate(locale, OPEN_TITLE).format(count=len(waiting)))}</b>"]
    for conversation in waiting:
        state = topic_state(conversation)
        name = escape(customer_name(conversation))
        target = conversation.manager_topic_id if forum else conversation.manager_card_id
        label = f'<a href="{topic_link(chat_id, int(target))}">{name}</a>' if target else name
        assignee = conversation.assignee.first_name if conversation.assignee else ""
        status = escape(translate(locale, STATE_NAMES[state]).format(name=assignee))
        lines.append(f"{STATE_ICONS[state]} {label} · {status} · #{conversation.id}")
    return "\n".join(lines)


@dataclass(frozen=True)
class DayStats:
    conversations: int
    resolved_by_ai: int
    handed_off: int
    median_first_response: timedelta | None
    average_rating: float | None


async def day_stats(bot_id: int, zone: ZoneInfo, now: datetime) -> DayStats:
    """Today in the business's time zone: conversations started, how they went, how fast people were."""
    start = datetime.combine(now.astimezone(zone).date(), time(0), tzinfo=zone)
    today = await Conversation.filter(bot_id=bot_id, created_at__gte=start)
    answered_ids = {int(str(i)) for i in await Message.filter(conversation_id__in=[c.id for c in today],
                                                              author_kind=AuthorKind.AI).values_list(
        "conversation_id", flat=True)}
    handed = [c for c in today if c.handed_off_at is not None]
    waits = sorted(c.first_manager_reply_at - c.handed_off_at for c in handed
                   if c.first_manager_reply_at is not None and c.handed_off_at is not None)
    ratings = [int(c.rating) for c in today if c.rating is not None]
    return DayStats(
        conversations=len(today),
        resolved_by_ai=sum(1 for c in today if c.handed_off_at is None and c.id in answered_ids),
        handed_off=len(handed),
        median_first_response=waits[len(waits) // 2] if waits else None,
        average_rating=statistics.mean(ratings) if ratings else None,
    )


def stats_text(stats: DayStats, day: str, translate: Translate, locale: str) -> str:
    def _(message: str) -> str:
        return translate(locale, message)

    response = _format_duration(stats.median_first_response) if stats.median_first_response else _(NO_DATA)
    rating = f"{stats.average_rating:.1f} ⭐" if stats.average_rating is not None else _(NO_DATA)
    lines = [f"<b>{escape(_(STATS_TITLE).format(day=day))}</b>",
             _(STATS_CONVERSATIONS).format(count=stats.conversations),
             _(STATS_BY_AI).format(count=stats.resolved_by_ai),
             _(STATS_HANDED_OFF).format(count=stats.handed_off),
             _(STATS_FIRST_RESPONSE).format(value=response),
             _(STATS_RATING).format(value=rating)]
    return "\n".join(escape(line) if index else line for index, line in enumerate(lines))


def _format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"

