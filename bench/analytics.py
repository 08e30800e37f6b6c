"""The staff analytics report on 100k conversations and 1M messages in PostgreSQL: p50 and p99 latency.

A fresh database, migrated by Frontdesk's migrations, is filled in SQL (INSERT ... SELECT over
generate_series, then VACUUM ANALYZE): two bots (90% / 10% of the rows), 60k customers and 23 staff,
100k conversations over 400 days (20% from the widget, 30% handed to people for one of the six
reasons, 90% of those answered by a manager within seconds to an hour, 40% of the closed ones
rated), each opened by one of 3,000 questions in two wordings each (a few asked very often, most
rarely; 15% open with photos only), 1M messages in time order (the customer's turns, the AI's
answers with tokens and cost in `ai_meta`, the managers' replies once handed off), the audit entries
the desk writes (take, close, rate, note) and the usage rows (per customer per UTC day). The AI's
usage per quarter of an hour is then filled from the answers by migration 0007's own backfill.

`services.analytics.report` is called through Tortoise ORM as the Mini App will call it, for the last
7, 30 and 365 days in Asia/Tashkent (one call at a time; the time is the whole `await`). The indexes of
migration 0007 are dropped and made again, interleaved, to show what they buy. Two designs the
report avoids are timed beside it on the same data: top questions counted by reading each
conversation's first customer message and normalising it in Python (instead of the stored
`question_key`), and the AI's tokens and cost summed from the answers' `ai_meta` (instead of
`usage_slot`; given a partial index of its own for the occasion). The figures are checked against
those alternatives, and migration 0007's backfill of existing conversations' questions is timed.

`bash bench/run.sh analytics` starts a throwaway PostgreSQL and runs this (about ten minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shlex
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from importlib import import_module
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from common import DOC_PATH, marks, write_section
from ingest import code_version, machine, pg_execute
from tortoise import connections
from tortoise.expressions import RawSQL

from bot import db
from models import AuthorKind, Message
from services import analytics
from services.analytics import TOP_QUESTIONS, Period, report
from services.conversations import question_of
from services.knowledge import question_key

BEGIN_MARK, END_MARK = marks("analytics.py")
TARGET_P99_MS = 200.0
TIMEZONE = "Asia/Tashkent"
RANGES = (7, 30, 365)
QUESTIONS = 3000
MANAGERS = 20  # the first bot's; the second has three
MIGRATION = import_module("models.migrations.0007_analytics")

# --- the data ------------------------------------------------------------------------------------

LOAD = [
    """INSERT INTO bot (id, telegram_id, username, manager_chat_id, settings, created_at)
       VALUES (1, 7000000003, 'shop_bot', -1001234567890, '{{}}', now() - interval '500 days'),
              (2, 7000000004, 'other_bot', -1009999999999, '{{}}', now() - interval '500 days')""",
    # Customers: every tenth belongs to the second bot. Then the staff: 20 of the first bot, 3 of the second.
    """INSERT INTO "user" (id, bot_id, telegram_id, first_name, last_name, username, language, role, blocked_bot,
                           banned, online, preferences, created_at, last_seen_at)
       SELECT g, CASE WHEN g % 10 = 0 THEN 2 ELSE 1 END, 100000000 + g, 'Customer', md5(g::text), '', 'en',
              'customer', false, false, false, '{{}}', now() - interval '500 days', now()
       FROM generate_series(1, {customers}) AS g""",
    """INSERT INTO "user" (id, bot_id, telegram_id, first_name, last_name, username, language, role, blocked_bot,
                           banned, online, preferences, created_at, last_seen_at)
       SELECT {customers} + g, CASE WHEN g <= {managers} THEN 1 ELSE 2 END, 900000000 + g, 'Manager', g::text, '',
              'en', 'manager', false, false, true, '{{}}', now() - interval '500 days', now()
       FROM generate_series(1, {managers} + 3) AS g""",
    # Conversations in time order over {days} days; the last two days' mostly still open.
    """CREATE TEMP TABLE conv AS
       SELECT g AS id, 1 + (g * 7919) % {customers} AS user_id, random() AS r,
              now() - interval '1 day' * {days} * (1 - g::float8 / {conversations}) AS created_at,
              CASE WHEN random() < 0.85 THEN floor({questions} * power(random(), 3))::int END AS question,
              floor(random() * 2)::int AS wording
       FROM generate_series(1, {conversations}) AS g""",
    """INSERT INTO conversation (id, uuid, bot_id, user_id, channel, mode, status, handoff_reason, handed_off_at,
                                 manager_topic_id, manager_card_id, topic_title, assignee_id, created_at,
                                 first_response_at, first_manager_reply_at, last_message_at, closed_at, rating,
                                 question, question_key)
       SELECT c.id, gen_random_uuid(), u.bot_id, c.user_id, CASE WHEN random() < 0.2 THEN 'widget' ELSE 'telegram' END,
              CASE WHEN s.handed AND s.status <> 'closed' THEN 'human' ELSE 'ai' END, s.status,
              CASE WHEN s.handed THEN (ARRAY['asked_for_person', 'cannot_answer', 'complaint', 'sensitive',
                                             'ai_failure', 'manager_took_over'])[1 + floor(random() * 6)::int]
                   ELSE '' END,
              s.handed_at, CASE WHEN s.handed THEN 1000 + c.id END, CASE WHEN s.handed THEN 2000000 + c.id END, '',
              CASE WHEN s.handed THEN {customers} + CASE WHEN u.bot_id = 1 THEN 1 + c.id % {managers}
                                                         ELSE {managers} + 1 + c.id % 3 END END,
              c.created_at, c.created_at + interval '3 seconds',
              CASE WHEN s.handed AND random() < 0.9
                   THEN s.handed_at + interval '1 second' * (20 + floor(power(random(), 2) * 3600)) END,
              c.created_at + interval '1 minute' * (5 + floor(c.r * 240)),
              CASE WHEN s.status = 'closed' THEN c.created_at + interval '6 hours' END,
              CASE WHEN s.status = 'closed' AND random() < 0.4
                   THEN (ARRAY[1, 2, 3, 4, 4, 5, 5, 5])[1 + floor(random() * 8)::int] END,
              coalesce(q.text, ''), coalesce(q.key, '')
       FROM conv c JOIN "user" u ON u.id = c.user_id
       LEFT JOIN questions q ON q.question = c.question AND q.wording = c.wording
       CROSS JOIN LATERAL (SELECT c.r < 0.3 AS handed,
                                  CASE WHEN c.r < 0.3
                                       THEN c.created_at + interval '1 minute' * (1 + floor(random() * 30))
                                  END AS handed_at,
                                  CASE WHEN c.created_at > now() - interval '2 days'
                                       THEN (CASE WHEN c.r < 0.15 THEN 'waiting' WHEN c.r < 0.3 THEN 'assigned'
                                                  ELSE 'open' END)
                                       ELSE 'closed' END AS status) AS s""",
    # Messages per conversation: mostly a few, 0.5% hundreds; scaled to the wanted total.
    """CREATE TEMP TABLE sizes AS
       SELECT id AS conversation_id,
              CASE WHEN random() < 0.005 THEN 200 + floor(random() * 800) ELSE 1 + floor(-ln(1 - random()) * 7) END
                  AS n
       FROM conversation""",
    """UPDATE sizes SET n = greatest(1, round(n * {messages}::float8 / (SELECT sum(n) FROM sizes)))""",
    # In time order, as live. Odd turns are the customer's (the first one the conversation's question),
    # even ones answers: the AI's, or the assignee's once handed off.
    """CREATE TEMP TABLE msg AS
       SELECT row_number() OVER (ORDER BY t.at, t.conversation_id, t.k) AS id, t.*
       FROM (SELECT c.id AS conversation_id, c.bot_id, c.user_id, c.assignee_id, c.handed_off_at, c.question, k,
                    c.created_at + (c.last_message_at - c.created_at) * (k - 1) / greatest(s.n - 1, 1) AS at
             FROM conversation c JOIN sizes s ON s.conversation_id = c.id
             CROSS JOIN LATERAL generate_series(1, s.n::int) AS k) AS t""",
    """INSERT INTO message (id, bot_id, conversation_id, author_kind, author_id, text, attachments, ai_meta, source_key,
                            reply_to_id, created_at)
       SELECT m.id, m.bot_id, m.conversation_id, a.kind,
              CASE a.kind WHEN 'customer' THEN m.user_id WHEN 'manager' THEN m.assignee_id END,
              CASE WHEN a.kind = 'customer' AND m.question = '' THEN ''  -- photos: no words, so no question
                   WHEN m.k = 1 THEN m.question
                   ELSE 'Message ' || m.k || ' of a conversation: ' || repeat(md5(m.id::text), (1 + m.id % 4)::int)
              END, '[]',
              CASE WHEN a.kind = 'ai' THEN jsonb_build_object(
                  'source', 'ai', 'model', 'gpt-4o-mini', 'tokens_in', 400 + m.id % 1200,
                  'tokens_out', 40 + m.id % 300, 'latency_ms', 900 + m.id % 2000,
                  'cost', ((400 + m.id % 1200) * 0.15 + (40 + m.id % 300) * 0.6) / 1000000)
                   ELSE '{{}}'::jsonb END,
              CASE WHEN a.kind = 'customer' THEN 'tg:' || m.id END,
              CASE WHEN m.k % 2 = 0 THEN lag(m.id) OVER (PARTITION BY m.conversation_id ORDER BY m.k) END,
              m.at
       FROM msg m CROSS JOIN LATERAL (SELECT CASE WHEN m.k % 2 = 1 THEN 'customer'
                                                  WHEN m.handed_off_at IS NOT NULL AND m.at > m.handed_off_at
                                                  THEN 'manager' ELSE 'ai' END AS kind) AS a
       ORDER BY m.id""",
    # What the desk writes: take and close by the assignee, the customer's rating, now and then a note.
    """INSERT INTO audit_log (bot_id, actor_id, action, target, details, created_at)
       SELECT bot_id, actor, action, uuid::text, '{{}}', at FROM (
           SELECT c.bot_id, c.assignee_id AS actor, 'take' AS action, c.uuid,
                  c.handed_off_at + interval '20 seconds' AS at
           FROM conversation c WHERE c.assignee_id IS NOT NULL
           UNION ALL
           SELECT c.bot_id, c.assignee_id, 'close', c.uuid, c.closed_at
           FROM conversation c WHERE c.assignee_id IS NOT NULL AND c.status = 'closed'
           UNION ALL
           SELECT c.bot_id, c.user_id, 'rate', c.uuid, c.closed_at + interval '1 minute'
           FROM conversation c WHERE c.rating IS NOT NULL
           UNION ALL
           SELECT c.bot_id, c.assignee_id, 'note', c.uuid, c.handed_off_at + interval '2 minutes'
           FROM conversation c WHERE c.assignee_id IS NOT NULL AND c.id % 10 = 0) AS entries
       ORDER BY at""",
    # Usage as services/conversations.add_usage keeps it: per customer per UTC day.
    """INSERT INTO usage (bot_id, user_id, day, messages, ai_messages, tokens_in, tokens_out, cost)
       SELECT max(c.bot_id), c.user_id, (m.created_at AT TIME ZONE 'UTC')::date,
              count(*) FILTER (WHERE m.author_kind = 'customer'), count(*) FILTER (WHERE m.author_kind = 'ai'),
              coalesce(sum((m.ai_meta ->> 'tokens_in')::int), 0), coalesce(sum((m.ai_meta ->> 'tokens_out')::int), 0),
              coalesce(sum((m.ai_meta ->> 'cost')::numeric), 0)
       FROM message m JOIN conversation c ON c.id = m.conversation_id
       GROUP BY c.user_id, (m.created_at AT TIME ZONE 'UTC')::date""",
    "SELECT setval(pg_get_serial_sequence('message', 'id'), (SELECT max(id) FROM message))",
    "SELECT setval(pg_get_serial_sequence('conversation', 'id'), (SELECT max(id) FROM conversation))",
    """SELECT setval(pg_get_serial_sequence('user', 'id'), (SELECT max(id) FROM "user"))""",
    "SELECT setval(pg_get_serial_sequence('bot', 'id'), 2)",
]


def question_pool(count: int) -> list[tuple[int, int, str, str]]:
    """(question, wording, text, key): each question in two wordings that differ in case, spacing and punctuation."""
    rng = random.Random(11)
    subjects = ["delivery", "a refund", "the warranty", "opening hours", "payment by card", "an order", "a discount",
                "the size chart", "pickup", "an exchange", "the price", "a gift card"]
    asks = ["How long does {} take", "Can I get {}", "What about {}", "Where do I find {}", "Is there {}",
            "Do you offer {}", "How do I arrange {}"]
    pool = []
    for number in range(count):
        text = f"{rng.choice(asks).format(rng.choice(subjects))} for item {number}?"
        for wording, variant in enumerate((text, f"  {text.lower().rstrip('?')} !! ")):
            shown, key = question_of(variant)
            pool.append((number, wording, shown, key))
    return pool


async def load(url: str, options: Options) -> dict[str, int]:
    connection = await asyncpg.connect(url)
    try:
        async with connection.transaction():
            await connection.execute("CREATE TEMP TABLE questions (question int, wording int, text text, key text)")
            await connection.copy_records_to_table("questions", records=question_pool(QUESTIONS))
            for statement in LOAD:
                await connection.execute(statement.format(
                    customers=options.customers, managers=MANAGERS, conversations=options.conversations,
                    messages=options.messages, days=options.days, questions=QUESTIONS))
        await connection.execute("VACUUM ANALYZE")
        counts = {}
        for table in ("user", "conversation", "message", "audit_log", "usage"):
            counts[table] = int(await connection.fetchval(f'SELECT count(*) FROM "{table}"'))
        counts["handed off"] = int(await connection.fetchval(
            "SELECT count(*) FROM conversation WHERE handed_off_at IS NOT NULL"))
        return counts
    finally:
        await connection.close()


# --- measuring -----------------------------------------------------------------------------------


@dataclass
class Timing:
    seconds: list[float] = field(default_factory=list)

    def percentile(self, share: float) -> float:
        ordered = sorted(self.seconds)
        return 1000 * ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def last(days: int, today: date) -> Period:
    return Period(today - timedelta(days=days - 1), today, TIMEZONE)


async def time_calls(call: Callable[[], Awaitable[Any]], count: int, budget: float, *, warm_up: int = 3,
                     at_least: int = 10) -> Timing:
    """`count` calls (fewer if they take longer than `budget` seconds in all, but `at_least`), after warm-ups."""
    for _ in range(warm_up):
        await call()
    timing = Timing()
    deadline = time.perf_counter() + budget
    while len(timing.seconds) < count and (len(timing.seconds) < at_least or time.perf_counter() < deadline):
        started = time.perf_counter()
        await call()
        timing.seconds.append(time.perf_counter() - started)
    return timing


def summary(rounds: Sequence[Timing], share: float) -> float:
    """The median over the rounds of each round's percentile."""
    return statistics.median(timing.percentile(share) for timing in rounds)


async def top_questions_in_python(bot_id: int, period: Period) -> list[tuple[str, int]]:
    """Top questions without the stored question: each conversation's first customer message with text,
    read and normalised in Python (what `Conversation.question_key` avoids)."""
    lo, hi = period.bounds()
    rows = await connections.get("default").execute_query_dict(
        """SELECT m.text FROM message m JOIN (
               SELECT min(m.id) AS id FROM message m JOIN conversation c ON c.id = m.conversation_id
               WHERE c.bot_id = $1 AND c.created_at >= $2 AND c.created_at < $3 AND m.author_kind = 'customer'
                 AND m.text <> '' GROUP BY m.conversation_id) AS first ON first.id = m.id""", [bot_id, lo, hi])
    counts = Counter(key for row in rows if (key := question_of(row["text"])[1]))
    return counts.most_common(TOP_QUESTIONS)


async def usage_from_answers(bot_id: int, period: Period) -> dict[int, tuple[int, int, int, float]]:
    """The AI's answers, tokens and cost per day summed from the answers' `ai_meta` (what `usage_slot` avoids),
    each cost rounded to the micro-dollar as `add_usage` keeps it."""
    days = analytics._Days(period, analytics._Sql("postgres"))
    rows = await (Message.filter(bot_id=bot_id, author_kind=AuthorKind.AI, created_at__gte=days.lo,
                                 created_at__lt=days.hi)
                  .annotate(day=days.of('"created_at"'), answers=RawSQL("COUNT(ai_meta -> 'tokens_in')"),
                            tokens_in=RawSQL("SUM((ai_meta ->> 'tokens_in')::BIGINT)"),
                            tokens_out=RawSQL("SUM((ai_meta ->> 'tokens_out')::BIGINT)"),
                            cost=RawSQL("SUM(ROUND((ai_meta ->> 'cost')::NUMERIC, 6))"))
                  .group_by("day").values("day", "answers", "tokens_in", "tokens_out", "cost"))
    return {days.index(row["day"]): (int(row["answers"]), int(row["tokens_in"] or 0), int(row["tokens_out"] or 0),
                                     round(float(row["cost"] or 0), 6)) for row in rows}


@dataclass(frozen=True)
class IndexTrial:
    name: str
    ddl: str
    serves: str


INDEXES = [  # as migration 0007 makes them
    IndexTrial("conversation_created_idx", "CREATE INDEX conversation_created_idx ON conversation (bot_id, created_at)",
               "the period's conversations: per day, outcomes, ratings, top questions"),
    IndexTrial("conversation_handed_off_idx",
               "CREATE INDEX conversation_handed_off_idx ON conversation (bot_id, handed_off_at)",
               "first response times: the conversations handed off in the period"),
    IndexTrial("message_manager_idx", "CREATE INDEX message_manager_idx ON message (bot_id, created_at, author_id) "
               "WHERE author_kind = 'manager'", "managers' replies"),
    IndexTrial("audit_log_action_idx",
               "CREATE INDEX audit_log_action_idx ON audit_log (bot_id, action, created_at)",
               "managers' takes and closes"),
    IndexTrial("user_role_idx", 'CREATE INDEX user_role_idx ON "user" (bot_id, role)', "the staff among the customers"),
]
ANSWERS_INDEX = "CREATE INDEX bench_message_ai_idx ON message (bot_id, created_at) WHERE author_kind = 'ai'"
PARTS = {  # the report's parts, each timed alone
    "conversations (per day, outcomes, ratings)": analytics._conversations,
    "first response": analytics._first_response,
    "top questions": analytics._top_questions,
    "AI usage": analytics._ai_usage,
    "managers": analytics._managers,
}
WITH, WITHOUT = "with the indexes", "without them"


@dataclass
class Measured:
    report: dict[str, dict[int, list[Timing]]] = field(default_factory=dict)  # setting -> days -> per round
    alternatives: dict[str, dict[int, list[Timing]]] = field(default_factory=dict)
    parts: dict[str, dict[int, Timing]] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)
    figures: dict[int, dict[str, Any]] = field(default_factory=dict)


async def set_indexes(url: str, present: bool) -> None:
    for trial in INDEXES:
        exists = await pg_fetchval(url, "SELECT to_regclass($1) IS NOT NULL", trial.name)
        if present and not exists:
            await pg_execute(url, trial.ddl)
        elif not present and exists:
            await pg_execute(url, f"DROP INDEX {trial.name}")
    await pg_execute(url, 'ANALYZE conversation, message, audit_log, "user"')


async def pg_fetchval(url: str, sql: str, *args: Any) -> Any:
    connection = await asyncpg.connect(url)
    try:
        return await connection.fetchval(sql, *args)
    finally:
        await connection.close()


def same_top(stored: list[tuple[str, int]], python: list[tuple[str, int]]) -> bool:
    """The same counts, and the same questions but where a tie at the bottom lets either be the tenth."""
    counts = [count for _, count in stored]
    if counts != [count for _, count in python]:
        return False
    floor = counts[-1] if counts else 0
    return {key for key, n in stored if n > floor} == {key for key, n in python if n > floor}


async def check(measured: Measured, today: date) -> None:
    """The report's figures against the designs it avoids, computed from the raw rows."""
    for days in RANGES:
        period = last(days, today)
        result = (await report(1, period)).to_dict()
        measured.figures[days] = result
        stored = [(question_key(q["text"]), q["count"]) for q in result["top_questions"]]
        measured.checks[f"top questions, {days} days"] = same_top(stored, await top_questions_in_python(1, period))
        answers = await usage_from_answers(1, period)
        usage = result["ai_usage"]
        measured.checks[f"AI usage, {days} days"] = all(
            (usage["answers"][i], usage["tokens_in"][i], usage["tokens_out"][i], usage["cost"][i]) ==
            answers.get(i, (0, 0, 0, 0.0)) for i in range(days))


async def measure(options: Options, url: str) -> Measured:
    today = datetime.now(ZoneInfo(TIMEZONE)).date()
    measured = Measured(report={WITH: {d: [] for d in RANGES}, WITHOUT: {d: [] for d in RANGES}},
                        alternatives={"top questions in Python": {d: [] for d in RANGES},
                                      "AI usage from ai_meta": {d: [] for d in RANGES}})
    await db.open_database(url, run_migrations=False)
    try:
        await check(measured, today)
        print(f"checks: {measured.checks}", file=sys.stderr, flush=True)
        for name, part in PARTS.items():
            for days in RANGES:
                span = analytics._Days(last(days, today), analytics._Sql("postgres"))
                measured.parts.setdefault(name, {})[days] = await time_calls(
                    lambda part=part, span=span: part(1, span), 30, options.budget / 4)  # type: ignore[misc]
        for round_ in range(options.rounds):  # with, without, with, ...: drift hits both alike
            for setting in (WITH, WITHOUT):
                await set_indexes(url, setting == WITH)
                for days in RANGES:
                    period = last(days, today)
                    timing = await time_calls(lambda period=period: report(1, period),  # type: ignore[misc]
                                              options.count, options.budget)
                    measured.report[setting][days].append(timing)
                    print(f"round {round_ + 1}, {setting}, {days} days: p50 {timing.percentile(0.5):.1f} ms, "
                          f"p99 {timing.percentile(0.99):.1f} ms ({len(timing.seconds)} calls)",
                          file=sys.stderr, flush=True)
        await set_indexes(url, True)
        await pg_execute(url, ANSWERS_INDEX)
        await pg_execute(url, "ANALYZE message")
        for days in RANGES:  # once: they are slow, and only there to compare with
            period = last(days, today)
            for name, alternative in (("top questions in Python", top_questions_in_python),
                                      ("AI usage from ai_meta", usage_from_answers)):
                measured.alternatives[name][days].append(await time_calls(
                    lambda alternative=alternative, period=period: alternative(1, period),  # type: ignore[misc]
                    30, options.budget / 4, warm_up=1, at_least=5))
        await pg_execute(url, "DROP INDEX bench_message_ai_idx")
        return measured
    finally:
        await db.close_database()


async def fill_slots(url: str) -> float:
    """Migration 0007's backfill of `usage_slot` from the answers, as an existing deployment runs it."""
    await db.open_database(url, run_migrations=False)
    try:
        started = time.perf_counter()
        await MIGRATION.fill_usage_slots(None, _Editor(connections.get("default")))
        return time.perf_counter() - started
    finally:
        await db.close_database()


async def time_question_backfill(url: str) -> tuple[float, int, bool]:
    """Forget every conversation's question, run migration 0007's backfill, and compare with what was loaded."""
    connection = await asyncpg.connect(url)
    try:
        await connection.execute("CREATE TEMP TABLE loaded AS SELECT id, question, question_key FROM conversation")
        await connection.execute("UPDATE conversation SET question = '', question_key = ''")
        await db.open_database(url, run_migrations=False)
        try:
            started = time.perf_counter()
            await MIGRATION.note_questions(None, _Editor(connections.get("default")))
            took = time.perf_counter() - started
        finally:
            await db.close_database()
        filled = int(await connection.fetchval("SELECT count(*) FROM conversation WHERE question_key <> ''"))
        same = not await connection.fetchval(
            """SELECT count(*) FROM conversation c JOIN loaded l ON l.id = c.id
               WHERE (c.question, c.question_key) IS DISTINCT FROM (l.question, l.question_key)""")
        return took, filled, same
    finally:
        await connection.close()


@dataclass
class _Editor:
    """What a migration's RunPython gets as its schema editor, as far as the backfills use it."""

    client: Any


# --- the report ----------------------------------------------------------------------------------


@dataclass
class Options:
    customers: int
    conversations: int
    messages: int
    days: int
    count: int
    budget: float
    rounds: int
    postgres_url: str
    doc: Path | None
    keep: bool = False
    reuse: str = ""


def table(measured: Measured) -> str:
    lines = ["| range | p50 ms | p99 ms | p99 < 200 ms | without the indexes: p50 ms | p99 ms |",
             "| --- | ---: | ---: | :---: | ---: | ---: |"]
    for days in RANGES:
        with_, without = measured.report[WITH][days], measured.report[WITHOUT][days]
        p99 = summary(with_, 0.99)
        lines.append(f"| last {days} days | {summary(with_, 0.5):.1f} | {p99:.1f} | "
                     f"{'yes' if p99 < TARGET_P99_MS else '**no**'} | {summary(without, 0.5):.1f} | "
                     f"{summary(without, 0.99):.1f} |")
    return "\n".join(lines)


def parts_table(measured: Measured) -> str:
    lines = ["| part of the report (each alone) | " +
             " | ".join(f"{days} days: p50 ms" for days in RANGES) + " |",
             "| --- |" + " ---: |" * len(RANGES)]
    for name, alone in measured.parts.items():
        lines.append(f"| {name} | " + " | ".join(f"{alone[days].percentile(0.5):.1f}" for days in RANGES) + " |")
    for name, once in measured.alternatives.items():
        lines.append(f"| *instead:* {name} | " + " | ".join(f"{summary(once[days], 0.5):.1f}" for days in RANGES)
                     + " |")
    return "\n".join(lines)


def figures(measured: Measured) -> str:
    lines = []
    for days in RANGES:
        result = measured.figures[days]
        outcomes, response = result["outcomes"], result["first_response"]
        lines.append(
            f"- last {days} days: {outcomes['total']:,} conversations ({outcomes['handed_off']:,} handed off), "
            f"first response median {response['median_seconds']:.0f} s / p90 {response['p90_seconds']:.0f} s over "
            f"{response['count']:,}, {result['ratings']['count']:,} ratings, the top question asked "
            f"{result['top_questions'][0]['count']:,} times, {result['ai_usage']['total']['answers']:,} AI answers, "
            f"{result['ai_usage']['total']['tokens_in']:,} tokens in, ${result['ai_usage']['total']['cost']:,.2f}; "
            f"the same as the alternatives computed: top questions "
            f"{'yes' if measured.checks[f'top questions, {days} days'] else '**no**'}, AI usage per day "
            f"{'yes' if measured.checks[f'AI usage, {days} days'] else '**no**'}")
    return "\n".join(lines)


def generated_section(options: Options, counts: dict[str, int], loaded: float, slots: float, measured: Measured,
                      backfill: tuple[float, int, bool], software: str, code: str) -> str:
    command = f"`{shlex.join(['python', 'bench/analytics.py', *sys.argv[1:]])}`"
    if launcher := os.environ.get("BENCH_LAUNCHER", ""):
        command = f"`{launcher}`, which runs {command}"
    took, filled, same = backfill
    calls = [len(t.seconds) for by_days in measured.report.values() for rounds in by_days.values() for t in rounds]
    return "\n".join([
        BEGIN_MARK,
        f"- **Date:** {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- **Machine:** {machine()}",
        f"- **Software:** {software}",
        f"- **Frontdesk:** commit {code} (schema from its migrations)",
        f"- **Command:** {command}",
        f"- **Data:** {counts['user']:,} users, {counts['conversation']:,} conversations over {options.days} days "
        f"({counts['handed off']:,} handed off), {counts['message']:,} messages, {counts['audit_log']:,} audit "
        f"entries, {counts['usage']:,} usage rows; loaded in SQL and analysed in {loaded:.0f} s; then "
        f"{counts['usage_slot']:,} usage slots filled by migration 0007's backfill in {slots:.1f} s",
        f"- **Load:** `report(1, Period(...))` for the first bot (90% of the rows), periods ending today in "
        f"{TIMEZONE}; one call at a time (its queries run side by side on Tortoise's pool), up to {options.count} "
        f"calls per cell, fewer where {options.budget:g} s ran out (at least 10; {min(calls)} to {max(calls)} "
        f"here), after 3 warm-up calls; the time is the whole `await`. {options.rounds} rounds, with and without "
        "the indexes of migration 0007 interleaved; each cell is the median over the rounds of that round's "
        "p50 or p99.",
        "", table(measured), "",
        "Where the time goes, and what the two designs the report avoids would cost (with the indexes; p50 of "
        f"up to 30 calls, or fewer where {options.budget / 4:g} s ran out, at least 10 for the parts and 5 for the "
        "alternatives; the ai_meta sum with a partial index `message (bot_id, created_at) WHERE author_kind = "
        "'ai'` made for it):", "",
        parts_table(measured), "",
        "What the report counted:", "", figures(measured), "",
        f"Migration 0007's backfill of the questions of existing conversations, run again on this data: "
        f"{took:.1f} s for {counts['conversation']:,} conversations ({filled:,} with a question), "
        f"{'the same questions as loaded' if same else '**different questions from those loaded**'}.",
        END_MARK])


def parse_options(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--customers", type=int, default=60_000)
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=400, help="the conversations' span, ending now")
    parser.add_argument("--count", type=int, default=200, help="calls per cell")
    parser.add_argument("--budget", type=float, default=15.0, help="seconds per cell at most (at least 10 calls)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of with / without the index")
    parser.add_argument("--no-doc", action="store_true", help="only print the table")
    parser.add_argument("--keep", action="store_true", help="keep the database (development)")
    parser.add_argument("--reuse", default="", help="measure this loaded database instead (development)")
    args = parser.parse_args(argv)
    postgres_url = os.environ.get("BENCH_POSTGRES_URL", "")
    if not postgres_url:
        parser.error("BENCH_POSTGRES_URL is not set (bash bench/run.sh sets it)")
    return Options(args.customers, args.conversations, args.messages, args.days, args.count, args.budget,
                   args.rounds, postgres_url, None if args.no_doc else DOC_PATH, args.keep, args.reuse)


async def run(options: Options) -> int:
    from urllib.parse import urlsplit, urlunsplit

    name = f"frontdesk_analytics_{uuid.uuid4().hex[:10]}"
    url = options.reuse or urlunsplit(urlsplit(options.postgres_url)._replace(path=f"/{name}"))
    if not options.reuse:
        await pg_execute(options.postgres_url, f'CREATE DATABASE "{name}"')
    try:
        counts: dict[str, int] = {}
        loaded = slots = 0.0
        if not options.reuse:
            await db.migrate(url)
            started = time.perf_counter()
            counts = await load(url, options)
            loaded = time.perf_counter() - started
            slots = await fill_slots(url)
            counts["usage_slot"] = int(await pg_fetchval(url, "SELECT count(*) FROM usage_slot"))
            print(f"loaded {counts} in {loaded:.0f} s, usage slots in {slots:.1f} s", file=sys.stderr, flush=True)
        measured = await measure(options, url)
        backfill = await time_question_backfill(url)
        print(f"question backfill: {backfill[0]:.1f} s, {backfill[1]} questions, same as loaded: {backfill[2]}",
              file=sys.stderr, flush=True)
        version = await pg_fetchval(url, "SELECT current_setting('server_version')")
        buffers = await pg_fetchval(url, "SELECT current_setting('shared_buffers')")
        software = f"PostgreSQL {version} (shared_buffers={buffers}, otherwise its defaults)"
    finally:
        if options.keep or options.reuse:
            print(f"kept {url}", file=sys.stderr)
        else:
            await pg_execute(options.postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(table(measured))
    print(parts_table(measured))
    print(figures(measured))
    if options.doc is not None and not options.reuse:
        section = generated_section(options, counts, loaded, slots, measured, backfill, software, code_version())
        write_section(options.doc, "analytics.py", section, "Staff analytics on 100k conversations and 1M messages")
        print(f"wrote {options.doc}", file=sys.stderr)
    return 0 if all(measured.checks.values()) and backfill[2] else 1


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(run(parse_options(argv)))


if __name__ == "__main__":
    sys.exit(main())
