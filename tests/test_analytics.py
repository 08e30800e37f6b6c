"""The staff analytics report: every figure counted by the real database, on the business's days."""

from __future__ import annotations

import itertools
import json
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from tortoise import Tortoise, connections
from tortoise.migrations.api import migrate as apply_migrations

from bot import db
from bot.db import tortoise_config
from models import AuditLog, AuthorKind, Bot, Channel, Conversation, HandoffReason, Message, Role, UsageSlot, User
from services import conversations, handoff
from services.analytics import InvalidPeriod, Period, report
from services.conversations import Customer, Incoming
from services.flow import Posted
from services.knowledge import question_key
from services.limits import MemoryRateLimiter
from tests.conftest import BACKEND, POSTGRES_URL, _with_database
from tests.flow_helpers import make_flow

NUMBERS = itertools.count(1)
NO_REASONS = {reason.value: 0 for reason in HandoffReason}


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
async def bot(database: str) -> Bot:
    return await Bot.create(telegram_id=7000000001, username="shop_bot")


async def customer(bot: Bot) -> User:
    number = next(NUMBERS)
    return await User.create(bot=bot, telegram_id=100000 + number, first_name=f"Customer {number}")


async def staff(bot: Bot, first_name: str, role: Role = Role.MANAGER) -> User:
    return await User.create(bot=bot, telegram_id=900000 + next(NUMBERS), first_name=first_name, role=role)


async def conversation(bot: Bot, created: datetime, *, channel: Channel = Channel.TELEGRAM,
                       handed: datetime | None = None, reason: str = "", reply: datetime | None = None,
                       rating: int | None = None, question: str = "") -> Conversation:
    wording, key = conversations.question_of(question)
    return await Conversation.create(
        uuid=uuid.uuid4(), bot=bot, user=await customer(bot), channel=channel, created_at=created,
        last_message_at=created, handed_off_at=handed, handoff_reason=reason, first_manager_reply_at=reply,
        rating=rating, status="closed" if rating else "open", question=wording, question_key=key)


async def manager_message(conversation: Conversation, author: User, at: datetime, *, note: bool = False) -> None:
    await Message.create(bot_id=conversation.bot_id, conversation=conversation,
                         author_kind=AuthorKind.NOTE if note else AuthorKind.MANAGER, author=author,
                         text="On it", created_at=at)


async def audit(actor: User, action: str, conversation: Conversation, at: datetime) -> None:
    await AuditLog.create(bot_id=conversation.bot_id, actor=actor, action=action,
                          target=str(conversation.uuid), created_at=at)


async def slot(bot: Bot, at: datetime, answers: int, tokens_in: int, tokens_out: int, cost: str) -> None:
    await UsageSlot.create(bot=bot, slot=at, ai_messages=answers, tokens_in=tokens_in, tokens_out=tokens_out,
                           cost=Decimal(cost))


async def write(bot: Bot, telegram_id: int, text: str, key: str) -> None:
    """A customer's message, stored the way the webhook stores it."""
    await conversations.record_customer_message(
        bot.id, Customer(telegram_id, first_name="Customer"), Incoming(source_key=key, text=text),
        limiter=MemoryRateLimiter(burst=1000, per_minute=1000), default_locale="en")


def today_utc() -> Period:
    today = datetime.now(UTC).date()
    return Period(today - timedelta(days=1), today + timedelta(days=1), "UTC")


# --- days -----------------------------------------------------------------------------------------------


async def test_conversations_per_day_count_the_business_days_not_utc_ones(bot: Bot) -> None:
    # Tashkent is UTC+5 all year: its 9 March runs from 8 March 19:00 UTC to 9 March 19:00 UTC.
    await conversation(bot, utc("2025-03-08 18:59:59.999999"))  # 8 March, 23:59:59 in Tashkent: before
    await conversation(bot, utc("2025-03-08 19:00:00"))
    await conversation(bot, utc("2025-03-09 18:59:59.999999"), channel=Channel.WIDGET)
    await conversation(bot, utc("2025-03-09 19:00:00"))
    await conversation(bot, utc("2025-03-09 23:30:00"))  # still 9 March in UTC, 10 March in Tashkent
    await conversation(bot, utc("2025-03-10 19:00:00"))  # 11 March there: after

    result = (await report(bot.id, Period(date(2025, 3, 9), date(2025, 3, 10), "Asia/Tashkent"))).to_dict()

    assert result["days"] == ["2025-03-09", "2025-03-10"]
    assert result["conversations_per_day"] == {"telegram": [1, 2], "widget": [1, 0]}


@pytest.mark.parametrize(("zone", "start", "end", "moments", "expected"), [
    # Berlin moves to summer time on 30 March 2025 at 01:00 UTC: that day has 23 hours.
    ("Europe/Berlin", date(2025, 3, 29), date(2025, 3, 31),
     ["2025-03-28 22:59:59", "2025-03-28 23:00:00", "2025-03-29 23:30:00", "2025-03-30 21:59:59",
      "2025-03-30 22:00:00", "2025-03-31 21:59:59", "2025-03-31 22:00:00"], [1, 2, 2]),
    # ...and back on 26 October at 01:00 UTC: that day has 25 hours.
    ("Europe/Berlin", date(2025, 10, 26), date(2025, 10, 27),
     ["2025-10-25 21:59:59", "2025-10-25 22:00:00", "2025-10-26 22:59:59", "2025-10-26 23:00:00"], [2, 1]),
    # Half and three-quarter hours: Newfoundland (UTC-3:30 in winter) and Nepal (UTC+5:45).
    ("America/St_Johns", date(2025, 1, 15), date(2025, 1, 15),
     ["2025-01-15 03:29:59", "2025-01-15 03:30:00", "2025-01-16 03:29:59", "2025-01-16 03:30:00"], [2]),
    ("Asia/Kathmandu", date(2025, 1, 15), date(2025, 1, 16),
     ["2025-01-14 18:14:59", "2025-01-14 18:15:00", "2025-01-15 18:14:59", "2025-01-15 18:15:00"], [2, 1]),
])
async def test_days_follow_the_zone_through_clock_changes_and_odd_offsets(
        bot: Bot, zone: str, start: date, end: date, moments: list[str], expected: list[int]) -> None:
    for moment in moments:
        await conversation(bot, utc(moment))

    result = (await report(bot.id, Period(start, end, zone))).to_dict()

    assert result["conversations_per_day"]["telegram"] == expected


# --- how conversations went ------------------------------------------------------------------------------

MARCH = Period(date(2025, 3, 1), date(2025, 3, 31), "UTC")


async def test_conversations_resolved_by_the_ai_and_handed_off_by_reason(bot: Bot) -> None:
    for _ in range(3):
        await conversation(bot, utc("2025-03-05 10:00"))
    for reason in ("asked_for_person", "asked_for_person", "complaint", ""):  # "": from before reasons were kept
        await conversation(bot, utc("2025-03-06 10:00"), handed=utc("2025-03-06 10:05"), reason=reason)
    await conversation(bot, utc("2025-02-28 23:00"), handed=utc("2025-03-01 09:00"), reason="complaint")  # February's

    outcomes = (await report(bot.id, MARCH)).to_dict()["outcomes"]

    assert outcomes == {"total": 7, "ai_resolved": 3, "handed_off": 4, "ai_resolved_share": 3 / 7,
                        "handed_off_share": 4 / 7,
                        "handed_off_by_reason": {**NO_REASONS, "asked_for_person": 2, "complaint": 1, "unknown": 1}}


async def test_first_response_median_and_p90_are_exact_over_conversations_handed_off_in_the_period(bot: Bot) -> None:
    handed = utc("2025-03-10 10:00:00")
    for wait in (timedelta(seconds=3600), timedelta(seconds=10), timedelta(seconds=20, microseconds=250),
                 timedelta(seconds=30, microseconds=750)):
        await conversation(bot, utc("2025-03-10 09:00"), handed=handed, reason="cannot_answer", reply=handed + wait)
    # Created in February, handed off in March: it counts; handed off in February, answered in March: it does not.
    await conversation(bot, utc("2025-02-27 09:00"), handed=utc("2025-03-02 00:00"), reason="complaint",
                       reply=utc("2025-03-02 00:01:40"))
    await conversation(bot, utc("2025-02-27 09:00"), handed=utc("2025-02-28 23:59"), reason="complaint",
                       reply=utc("2025-03-01 00:01"))
    await conversation(bot, utc("2025-03-20 09:00"), handed=utc("2025-03-20 09:01"), reason="complaint")  # no reply yet

    first = (await report(bot.id, MARCH)).to_dict()["first_response"]

    # Waits 10, 20.000250, 30.000750, 100, 3600 s: the median is the third; p90 lies 60% of the way from
    # the fourth to the fifth (rank 0.9 * 4 = 3.6), as PostgreSQL's percentile_cont puts it.
    assert first == {"count": 5, "median_seconds": 30.00075, "p90_seconds": 2200.0, "unanswered": 1}


async def test_first_response_of_a_single_conversation_and_of_none(bot: Bot) -> None:
    await conversation(bot, utc("2025-03-10 09:00"), handed=utc("2025-03-10 09:00"), reason="complaint",
                       reply=utc("2025-03-10 09:00:42.5"))

    one = (await report(bot.id, MARCH)).to_dict()["first_response"]
    none = (await report(bot.id, Period(date(2025, 4, 1), date(2025, 4, 30), "UTC"))).to_dict()["first_response"]

    assert one == {"count": 1, "median_seconds": 42.5, "p90_seconds": 42.5, "unanswered": 0}
    assert none == {"count": 0, "median_seconds": None, "p90_seconds": None, "unanswered": 0}


async def test_ratings_count_average_and_distribution(bot: Bot) -> None:
    for stars in (5, 5, 4, 1):
        await conversation(bot, utc("2025-03-15 12:00"), rating=stars)
    await conversation(bot, utc("2025-03-15 12:00"))  # not rated
    await conversation(bot, utc("2025-04-01 00:00"), rating=3)  # April's

    ratings = (await report(bot.id, MARCH)).to_dict()["ratings"]

    assert ratings == {"count": 4, "average": 3.75, "distribution": [1, 0, 0, 1, 2]}


# --- what customers asked ---------------------------------------------------------------------------------


async def test_top_questions_group_wordings_and_show_the_most_recent_one(bot: Bot) -> None:
    await write(bot, 1, "How much is delivery?", "tg:1")
    await write(bot, 1, "how much is delivery", "tg:2")  # a follow-up in the same conversation: not a question
    await write(bot, 1, "Thanks!", "tg:3")
    await write(bot, 2, "how much is   DELIVERY", "tg:4")
    await write(bot, 3, "", "tg:5")  # a photo opens the conversation: its question is the next message with words
    await write(bot, 3, "👍", "tg:6")
    await write(bot, 3, "Do you ship to Samarkand?", "tg:7")
    await write(bot, 4, "Do you ship to SAMARKAND", "tg:8")
    for number in range(11):
        await write(bot, 10 + number, f"Question number {number}?", f"tg:{100 + number}")
    await write(bot, 5, "How much is delivery!!", "tg:9")

    top = (await report(bot.id, today_utc())).to_dict()["top_questions"]

    assert top[:2] == [{"text": "How much is delivery!!", "count": 3}, {"text": "Do you ship to SAMARKAND", "count": 2}]
    # The rest asked once each; among equals the most recent first, ten in all.
    assert top[2:] == [{"text": f"Question number {number}?", "count": 1} for number in range(10, 2, -1)]


async def test_top_questions_count_only_the_periods_conversations(bot: Bot) -> None:
    await conversation(bot, utc("2025-03-31 23:59:59"), question="Where is my order?")
    await conversation(bot, utc("2025-04-01 00:00:00"), question="where is my order")
    await conversation(bot, utc("2025-04-02 00:00:00"), question="WHERE is my order")
    await conversation(bot, utc("2025-04-02 00:00:00"))  # opened by a photo, no words since

    top = (await report(bot.id, Period(date(2025, 4, 1), date(2025, 4, 30), "UTC"))).to_dict()["top_questions"]

    assert top == [{"text": "WHERE is my order", "count": 2}]


# --- what the AI cost -------------------------------------------------------------------------------------


async def test_ai_tokens_and_cost_per_business_day(bot: Bot) -> None:
    await slot(bot, utc("2025-03-08 18:45"), 1, 900, 100, "0.5")  # 8 March, 23:45 in Tashkent: before
    await slot(bot, utc("2025-03-08 19:00"), 2, 1000, 200, "0.001250")
    await slot(bot, utc("2025-03-09 18:45"), 1, 500, 50, "0.000250")  # UTC's 9 March, and Tashkent's
    await slot(bot, utc("2025-03-09 19:00"), 3, 3000, 600, "0.003")  # UTC's 9 March, Tashkent's 10th
    await slot(bot, utc("2025-03-10 19:00"), 1, 900, 100, "0.5")  # 11 March there: after

    usage = (await report(bot.id, Period(date(2025, 3, 9), date(2025, 3, 10), "Asia/Tashkent"))).to_dict()["ai_usage"]

    assert usage == {"answers": [3, 3], "tokens_in": [1500, 3000], "tokens_out": [250, 600], "cost": [0.0015, 0.003],
                     "total": {"answers": 6, "tokens_in": 4500, "tokens_out": 850, "cost": 0.0045,
                               "transcriptions": 0, "audio_seconds": 0, "images": 0}}


async def test_each_ai_answer_is_counted_when_it_is_written(bot: Bot) -> None:
    someone = await customer(bot)
    await conversations.add_usage(bot.id, someone.id, ai_messages=1, tokens_in=1200, tokens_out=300, cost=0.0015)
    # Kept to the micro-dollar, half a micro-dollar rounded up (as PostgreSQL's numeric would, and SQLite must).
    await conversations.add_usage(bot.id, someone.id, ai_messages=1, tokens_in=800, tokens_out=100, cost=0.0002504)
    await conversations.add_usage(bot.id, someone.id, ai_messages=1, tokens_in=1, tokens_out=1, cost=0.0000005)
    await conversations.add_usage(bot.id, someone.id, messages=1)  # the customer's own message costs nothing

    usage = (await report(bot.id, today_utc())).to_dict()["ai_usage"]

    assert usage["total"] == {"answers": 3, "tokens_in": 2001, "tokens_out": 401, "cost": 0.001751,
                              "transcriptions": 0, "audio_seconds": 0, "images": 0}


# --- managers ---------------------------------------------------------------------------------------------


async def test_managers_with_what_they_took_replied_and_closed_most_replies_first(bot: Bot) -> None:
    anna, boris = await staff(bot, "Anna"), await staff(bot, "Boris")
    carol = await staff(bot, "Carol", Role.ADMIN)  # did nothing this month
    dmitri = await staff(bot, "Dmitri", Role.CUSTOMER)  # no longer staff, but replied this month
    first, second, third = [await conversation(bot, utc("2025-03-03 10:00")) for _ in range(3)]
    await audit(anna, "take", first, utc("2025-03-03 10:01"))
    await audit(anna, "take", first, utc("2025-03-03 11:00"))  # the same conversation again: still one
    await audit(anna, "take", second, utc("2025-03-04 10:00"))
    await audit(anna, "close", first, utc("2025-03-05 10:00"))
    await audit(anna, "take", third, utc("2025-02-28 10:00"))  # February's
    await audit(boris, "take", third, utc("2025-03-03 10:02"))
    await audit(first.user, "rate", first, utc("2025-03-05 10:01"))  # a customer's entry
    for _ in range(3):
        await manager_message(first, anna, utc("2025-03-03 10:05"))
    await manager_message(first, anna, utc("2025-03-03 10:06"), note=True)  # a note reaches no customer
    for _ in range(5):
        await manager_message(third, boris, utc("2025-03-03 10:07"))
    await manager_message(third, boris, utc("2025-04-01 00:00"))  # April's
    await manager_message(second, dmitri, utc("2025-03-04 10:00"))

    managers = (await report(bot.id, MARCH)).to_dict()["managers"]

    assert managers == [
        {"user_id": boris.id, "name": "Boris", "taken": 1, "replies": 5, "closed": 0},
        {"user_id": anna.id, "name": "Anna", "taken": 2, "replies": 3, "closed": 1},
        {"user_id": dmitri.id, "name": "Dmitri", "taken": 0, "replies": 1, "closed": 0},
        {"user_id": carol.id, "name": "Carol", "taken": 0, "replies": 0, "closed": 0},
    ]


async def test_a_conversation_through_the_desk_shows_in_every_figure(bot: Bot) -> None:
    """The figures read what the desk writes: audit actions, the manager's message, the handoff's times."""
    manager = await staff(bot, "Anna")
    await write(bot, 42, "Where is my order?", "tg:1")
    talk = await Conversation.get(bot_id=bot.id).prefetch_related("user")
    await handoff.hand_off(talk.id, HandoffReason.ASKED_FOR_PERSON)
    talk = await Conversation.get(id=talk.id).prefetch_related("user")
    flow = make_flow()
    await flow.take(talk, manager)
    await flow.manager_wrote(talk, manager, Posted("tg:2", -100123, 7, text="It ships today"), note=False)
    await flow.close(talk, manager)
    await flow.rate(bot.id, talk.user, talk.id, 4)

    result = (await report(bot.id, today_utc())).to_dict()

    assert sum(result["conversations_per_day"]["telegram"]) == 1
    assert result["outcomes"]["handed_off_by_reason"]["asked_for_person"] == 1
    stored = await Conversation.get(id=talk.id)
    assert stored.first_manager_reply_at is not None
    assert stored.handed_off_at is not None
    wait = (stored.first_manager_reply_at - stored.handed_off_at).total_seconds()
    assert result["first_response"] == {"count": 1, "median_seconds": wait, "p90_seconds": wait, "unanswered": 0}
    assert result["ratings"] == {"count": 1, "average": 4.0, "distribution": [0, 0, 0, 1, 0]}
    assert result["top_questions"] == [{"text": "Where is my order?", "count": 1}]
    assert result["managers"] == [{"user_id": manager.id, "name": "Anna", "taken": 1, "replies": 1, "closed": 1}]


# --- edges ------------------------------------------------------------------------------------------------


async def test_an_empty_period_has_zeros_and_no_averages(bot: Bot) -> None:
    anna = await staff(bot, "Anna")

    result = (await report(bot.id, MARCH)).to_dict()

    zeros = [0] * 31
    assert result == {
        "period": {"start": "2025-03-01", "end": "2025-03-31", "timezone": "UTC"},
        "days": [f"2025-03-{day:02d}" for day in range(1, 32)],
        "conversations_per_day": {"telegram": zeros, "widget": zeros},
        "outcomes": {"total": 0, "ai_resolved": 0, "handed_off": 0, "ai_resolved_share": None,
                     "handed_off_share": None, "handed_off_by_reason": NO_REASONS},
        "first_response": {"count": 0, "median_seconds": None, "p90_seconds": None, "unanswered": 0},
        "ratings": {"count": 0, "average": None, "distribution": [0, 0, 0, 0, 0]},
        "top_questions": [],
        "ai_usage": {"answers": zeros, "tokens_in": zeros, "tokens_out": zeros, "cost": [0.0] * 31,
                     "total": {"answers": 0, "tokens_in": 0, "tokens_out": 0, "cost": 0.0, "transcriptions": 0,
                               "audio_seconds": 0, "images": 0}},
        "managers": [{"user_id": anna.id, "name": "Anna", "taken": 0, "replies": 0, "closed": 0}],
    }


@pytest.mark.parametrize(("start", "end", "zone", "code"), [
    (date(2025, 3, 10), date(2025, 3, 9), "UTC", "bad_range"),
    (date(2024, 1, 1), date(2025, 1, 1), "UTC", "too_long"),  # 367 days
    (date(2025, 3, 1), date(2025, 3, 31), "Mars/Olympus_Mons", "bad_timezone"),
    (date(2025, 3, 1), date(2025, 3, 31), "", "bad_timezone"),
    (date(2025, 3, 1), date(2025, 3, 31), "../../etc/passwd", "bad_timezone"),
])
def test_a_period_the_report_cannot_cover_is_refused_with_a_code(start: date, end: date, zone: str,
                                                                  code: str) -> None:
    with pytest.raises(InvalidPeriod) as refused:
        Period(start, end, zone)
    assert refused.value.code == code
    assert isinstance(refused.value, ValueError)


def test_a_leap_year_and_a_single_day_are_periods() -> None:
    assert len(Period(date(2024, 1, 1), date(2024, 12, 31), "Asia/Tashkent").days) == 366
    assert Period(date(2025, 3, 9), date(2025, 3, 9), "UTC").days == (date(2025, 3, 9),)


async def test_another_bots_data_never_leaks_in(bot: Bot) -> None:
    async def fill(owner: Bot, manager: User, quarter: int) -> None:
        talk = await conversation(owner, utc("2025-03-10 10:00"), channel=Channel.WIDGET,
                                  handed=utc("2025-03-10 10:01"), reason="complaint",
                                  reply=utc("2025-03-10 10:02"), rating=2, question="Is it broken?")
        await audit(manager, "take", talk, utc("2025-03-10 10:01"))
        await audit(manager, "close", talk, utc("2025-03-10 10:30"))
        await manager_message(talk, manager, utc("2025-03-10 10:02"))
        await slot(owner, utc("2025-03-10 10:00") + timedelta(minutes=15 * quarter), 2, 2000, 300, "0.002")

    ours = await staff(bot, "Anna")
    await fill(bot, ours, 0)
    alone = (await report(bot.id, MARCH)).to_dict()
    other = await Bot.create(telegram_id=7000000002, username="other_bot")
    await fill(other, await staff(other, "Boris"), 0)
    # Rows of the other bot that name our manager (they should not exist; they must not count if they do).
    await fill(other, ours, 1)

    assert (await report(bot.id, MARCH)).to_dict() == alone
    assert (await report(other.id, MARCH)).to_dict()["outcomes"]["total"] == 2  # it was there to leak


async def test_the_report_is_plain_json(bot: Bot) -> None:
    await conversation(bot, utc("2025-03-10 10:00"), handed=utc("2025-03-10 10:01"), reason="complaint",
                       reply=utc("2025-03-10 10:02"), rating=5, question="Is it broken?")
    await slot(bot, utc("2025-03-10 10:00"), 1, 10, 5, "0.000015")

    result = (await report(bot.id, MARCH)).to_dict()

    def kinds(value: Any) -> set[type]:
        if isinstance(value, dict):
            assert all(isinstance(key, str) for key in value)
            return {dict}.union(*(kinds(item) for item in value.values()))
        if isinstance(value, list):
            return {list}.union(*(kinds(item) for item in value))
        return {type(value)}

    assert kinds(result) <= {dict, list, str, int, float, type(None)}
    assert json.loads(json.dumps(result)) == result


# --- the migration ----------------------------------------------------------------------------------------


@pytest.fixture
async def blank_database_url(tmp_path: Path) -> Any:
    """A database nothing has been migrated into yet."""
    if BACKEND == "sqlite":
        yield f"sqlite://{tmp_path / 'blank.sqlite3'}"
        return
    name = f"frontdesk_blank_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(POSTGRES_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    yield _with_database(POSTGRES_URL, name)
    admin = await asyncpg.connect(POSTGRES_URL)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


async def test_the_migration_gives_existing_conversations_their_question_and_usage(blank_database_url: str) -> None:
    url = blank_database_url
    try:
        await apply_migrations(config=tortoise_config(url), target="models.0006_miniapp")
    finally:
        await Tortoise.close_connections()
    await db.open_database(url, run_migrations=False)
    client = connections.get("default")
    postgres = client.capabilities.dialect == "postgres"

    async def insert(table: str, **values: Any) -> None:
        marks = [f"${n}" if postgres else "?" for n in range(1, len(values) + 1)]
        await client.execute_query(f'INSERT INTO "{table}" ({", ".join(values)}) VALUES ({", ".join(marks)})',
                                   list(values.values()))

    def meta(**values: Any) -> str:
        return json.dumps(values)

    moment = utc("2025-03-10 10:00")
    await insert("bot", id=1, telegram_id=7000000001, username="shop_bot", settings="{}", created_at=moment)
    await insert("user", id=1, bot_id=1, telegram_id=5, first_name="Customer", last_name="", username="",
                 language="en", role="customer", blocked_bot=False, banned=False, online=False, preferences="{}",
                 created_at=moment, last_seen_at=moment)
    for conversation_id in (1, 2):
        await insert("conversation", id=conversation_id, uuid=str(uuid.uuid4()), bot_id=1, user_id=1,
                     channel="telegram", mode="ai", status="closed", handoff_reason="", topic_title="",
                     created_at=moment, last_message_at=moment)
    messages = [  # (conversation, author, text, ai_meta, minutes after 10:00)
        (1, "customer", "", "{}", 0),  # a photo
        (1, "customer", "👍", "{}", 1),
        (1, "customer", "Where is my ORDER??", "{}", 2),
        (1, "ai", "It ships today", meta(source="ai", tokens_in=900, tokens_out=100, cost=0.00125), 7),
        (1, "customer", "Thanks", "{}", 8),
        (1, "ai", "You're welcome", meta(source="ai", tokens_in=1000, tokens_out=50, cost=0.00025), 14),
        (1, "ai", "From the knowledge base", meta(source="knowledge", knowledge_item=3), 14),
        (1, "ai", "Partly written", meta(source="ai", stopped=True), 14),
        (2, "customer", "", "{}", 15),  # photos only: no question
        (2, "ai", "Nice photo", meta(source="ai", tokens_in=300, tokens_out=30, cost=0.0001), 15),
        (2, "ai", "Anything else?", meta(source="ai", tokens_in=10, tokens_out=5, cost=0.0000125), 16),  # rounds up
    ]
    for number, (conversation_id, author, text, ai_meta, minutes) in enumerate(messages, 1):
        await insert("message", id=number, bot_id=1, conversation_id=conversation_id, author_kind=author, text=text,
                     attachments="[]", ai_meta=ai_meta, created_at=moment + timedelta(minutes=minutes))
    await db.close_database()

    await db.migrate(url)
    await db.open_database(url, run_migrations=False)
    try:
        questions = await Conversation.all().order_by("id").values_list("question", "question_key")
        slots = await UsageSlot.all().order_by("slot").values_list("slot", "ai_messages", "tokens_in", "tokens_out",
                                                                   "cost")
        usage = (await report(1, Period(date(2025, 3, 10), date(2025, 3, 10), "UTC"))).to_dict()
    finally:
        await db.close_database()

    assert questions == [("Where is my ORDER??", question_key("where is my order")), ("", "")]
    assert slots == [(utc("2025-03-10 10:00"), 2, 1900, 150, Decimal("0.0015")),
                     (utc("2025-03-10 10:15"), 2, 310, 35, Decimal("0.000113"))]
    assert usage["top_questions"] == [{"text": "Where is my ORDER??", "count": 1}]
    assert usage["ai_usage"]["total"] == {"answers": 4, "tokens_in": 2210, "tokens_out": 185, "cost": 0.001613,
                                          "transcriptions": 0, "audio_seconds": 0, "images": 0}

