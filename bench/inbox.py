"""Inbox-style queries on 100k conversations and 1M messages in PostgreSQL: p50 and p99 latency.

A fresh database, migrated by Frontdesk's migrations, is filled in SQL (INSERT ... SELECT over
generate_series, then ANALYZE): two bots (90% / 10% of the rows), 60k customers, 100k
conversations over a year (the newest mostly open, the older mostly closed, about 2% of all
waiting for or with managers), 1M messages in time order (a conversation has 1 to ~50 messages,
0.5% have hundreds), and the Telegram copies of every message (the customer's chat, and the
manager group's topic once handed off).

Each query is issued through Tortoise ORM, the way the product issues it: the product's own
function where it only reads (`inbox.conversations_page`, `desk_reports.open_list`,
`desk.by_topic`, `desk.by_reply`, `conversations.history`, `conversations.find_customer`), else
the same queryset the product builds, copied from the line named in the report. Before timing,
the script checks that those functions return the rows the data holds (an inbox page in order
with its previews, the page after a cursor, the topic's, copy's and customer's rows) and exits 1
when they do not. Parameters are random but real (existing conversations, topics, copies, cursors
inside a conversation). One connection, one query at a
time; the time is the whole `await`, ORM included. Then each index the report recommends is
created by hand, the affected queries measured again, the index dropped, and so on, interleaved.

`bash bench/run.sh inbox` (or `make bench`) starts a throwaway PostgreSQL and runs this.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import shlex
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from common import DOC_PATH, marks, write_section
from ingest import code_version, machine, pg_execute
from tortoise.expressions import Q
from tortoise.functions import Count

from bot import db
from models import ConversationStatus, Message, MessageCopy, Role, User
from models.conversations import Conversation
from services import conversations, desk, desk_reports
from services.inbox import (
    SEARCH_HITS,
    InboxQuery,
    InboxView,
    Viewer,
    conversations_page,
    encode_cursor,
    tab_counts,
)

BEGIN_MARK, END_MARK = marks("inbox.py")
TARGET_P99_MS = 20.0
PAGE = 50
INBOX_PAGE = 30  # the Mini App's page (InboxQuery's default)
LONG = 150  # messages in a long conversation
MANAGER_CHAT = -1001234567890
FIRST_TELEGRAM_ID = 100_000_000
WITH_PEOPLE = [ConversationStatus.WAITING, ConversationStatus.ASSIGNED]

# --- the data ------------------------------------------------------------------------------------

LOAD = [
    """INSERT INTO bot (id, telegram_id, username, manager_chat_id, settings, created_at)
       VALUES (1, 7000000003, 'shop_bot', {chat}, '{{}}', now() - interval '400 days'),
              (2, 7000000004, 'other_bot', -1009999999999, '{{}}', now() - interval '400 days')""",
    # Customers: every tenth belongs to the second bot. Then 20 staff members of the first bot.
    """INSERT INTO "user" (id, bot_id, telegram_id, first_name, last_name, username, language, role, blocked_bot,
                           banned, online, created_at, last_seen_at)
       SELECT g, CASE WHEN g % 10 = 0 THEN 2 ELSE 1 END, {first_id} + g, 'Customer', md5(g::text), '', 'en',
              'customer', false, false, false, now() - interval '400 days', now()
       FROM generate_series(1, {customers}) AS g""",
    """INSERT INTO "user" (id, bot_id, telegram_id, first_name, last_name, username, language, role, blocked_bot,
                           banned, online, created_at, last_seen_at)
       SELECT {customers} + g, 1, 900000000 + g, 'Manager', g::text, '', 'en', 'manager', false, false, true,
              now() - interval '400 days', now()
       FROM generate_series(1, 20) AS g""",
    # Conversations in time order; the newest 5% mostly open, the rest mostly closed.
    """CREATE TEMP TABLE conv AS
       SELECT g AS id, 1 + (g * 7919) % {customers} AS user_id, random() AS r,
              now() - interval '365 days' * (1 - g::float8 / {conversations}) AS created_at,
              g > {conversations} * 0.95 AS recent
       FROM generate_series(1, {conversations}) AS g""",
    """INSERT INTO conversation (id, uuid, bot_id, user_id, channel, mode, status, handoff_reason, handed_off_at,
                                 manager_topic_id, manager_card_id, topic_title, assignee_id, created_at,
                                 last_message_at, closed_at)
       SELECT c.id, gen_random_uuid(), u.bot_id, c.user_id, 'telegram', s.mode, s.status,
              CASE WHEN s.handed THEN 'asked_for_person' ELSE '' END,
              CASE WHEN s.handed THEN c.created_at + interval '3 minutes' END,
              CASE WHEN s.handed THEN 1000 + 3 * c.id END, CASE WHEN s.handed THEN 1001 + 3 * c.id END, '',
              CASE WHEN s.status = 'assigned' THEN {customers} + 1 + c.id % 20 END,
              c.created_at, c.created_at + interval '1 minute' * (5 + (c.r * 1000)::int % 240),
              CASE WHEN s.status = 'closed' THEN c.created_at + interval '6 hours' END
       FROM conv c JOIN "user" u ON u.id = c.user_id
       CROSS JOIN LATERAL (SELECT
           CASE WHEN c.recent THEN (CASE WHEN c.r < 0.40 THEN 'open' WHEN c.r < 0.55 THEN 'waiting'
                                         WHEN c.r < 0.70 THEN 'assigned' ELSE 'closed' END)
                ELSE (CASE WHEN c.r < 0.010 THEN 'open' WHEN c.r < 0.013 THEN 'waiting'
                           WHEN c.r < 0.015 THEN 'assigned' ELSE 'closed' END) END AS status) AS st
       CROSS JOIN LATERAL (SELECT st.status,
           st.status IN ('waiting', 'assigned') OR (st.status = 'closed' AND c.r > 0.7) AS handed,
           CASE WHEN st.status IN ('waiting', 'assigned') THEN 'human' ELSE 'ai' END AS mode) AS s""",
    # Messages per conversation: mostly a few, 0.5% hundreds; scaled to the wanted total.
    """CREATE TEMP TABLE sizes AS
       SELECT id AS conversation_id,
              CASE WHEN random() < 0.005 THEN 200 + floor(random() * 800) ELSE 1 + floor(-ln(1 - random()) * 7) END
                  AS n
       FROM conversation""",
    """UPDATE sizes SET n = greatest(1, round(n * {messages}::float8 / (SELECT sum(n) FROM sizes)))""",
    # In time order, so that ids interleave across conversations as they do live. Odd turns are the
    # customer's, even ones answers (the AI's, or a manager's once handed off), each replying to the turn before.
    """CREATE TEMP TABLE msg AS
       SELECT row_number() OVER (ORDER BY t.at, t.conversation_id, t.k) AS id, t.*
       FROM (SELECT c.id AS conversation_id, c.bot_id, c.user_id, u.telegram_id, c.handed_off_at, k,
                    c.created_at + (c.last_message_at - c.created_at) * (k - 1) / greatest(s.n - 1, 1) AS at
             FROM conversation c JOIN sizes s ON s.conversation_id = c.id JOIN "user" u ON u.id = c.user_id
             CROSS JOIN LATERAL generate_series(1, s.n::int) AS k) AS t""",
    """INSERT INTO message (id, bot_id, conversation_id, author_kind, author_id, text, attachments, ai_meta, source_key,
                            reply_to_id, created_at)
       SELECT m.id, m.bot_id, m.conversation_id,
              CASE WHEN m.k % 2 = 1 THEN 'customer' WHEN m.handed_off_at IS NOT NULL AND m.at > m.handed_off_at
                   THEN 'manager' ELSE 'ai' END,
              CASE WHEN m.k % 2 = 1 THEN m.user_id END,
              'Message ' || m.k || ' of a conversation: ' || repeat(md5(m.id::text), (1 + m.id % 4)::int), '[]',
              CASE WHEN m.k % 2 = 0 THEN '{{"model": "gpt-4o-mini", "tokens_in": 900, "tokens_out": 120}}'
                   ELSE '{{}}' END::jsonb,
              CASE WHEN m.k % 2 = 1 THEN 'tg:' || m.id END,
              CASE WHEN m.k % 2 = 0 THEN lag(m.id) OVER (PARTITION BY m.conversation_id ORDER BY m.k) END,
              m.at
       FROM msg m ORDER BY m.id""",
    # Every message shows in the customer's chat (theirs as the original); from the handoff on, in the topic too.
    """INSERT INTO message_copy (bot_id, message_id, chat_id, telegram_message_id, original)
       SELECT m.bot_id, m.id, m.telegram_id, row_number() OVER (PARTITION BY m.user_id ORDER BY m.id), m.k % 2 = 1
       FROM msg m ORDER BY m.id""",
    """INSERT INTO message_copy (bot_id, message_id, chat_id, telegram_message_id, original)
       SELECT m.bot_id, m.id, b.manager_chat_id, 5000000 + m.id, false
       FROM msg m JOIN bot b ON b.id = m.bot_id
       WHERE m.handed_off_at IS NOT NULL AND m.at > m.handed_off_at ORDER BY m.id""",
    "SELECT setval(pg_get_serial_sequence('message', 'id'), (SELECT max(id) FROM message))",
    "SELECT setval(pg_get_serial_sequence('conversation', 'id'), (SELECT max(id) FROM conversation))",
    """SELECT setval(pg_get_serial_sequence('user', 'id'), (SELECT max(id) FROM "user"))""",
    "SELECT setval(pg_get_serial_sequence('bot', 'id'), 2)",
]


async def load(url: str, customers: int, conversations_count: int, messages: int) -> dict[str, int]:
    connection = await asyncpg.connect(url)
    try:
        async with connection.transaction():
            for statement in LOAD:
                await connection.execute(statement.format(
                    chat=MANAGER_CHAT, first_id=FIRST_TELEGRAM_ID, customers=customers,
                    conversations=conversations_count, messages=messages))
        await connection.execute("VACUUM ANALYZE")
        counts = {}
        for table in ("user", "conversation", "message", "message_copy"):
            counts[table] = int(await connection.fetchval(f'SELECT count(*) FROM "{table}"'))
        counts["with people"] = int(await connection.fetchval(
            "SELECT count(*) FROM conversation WHERE status IN ('waiting', 'assigned')"))
        counts["with people, bot 1"] = int(await connection.fetchval(
            "SELECT count(*) FROM conversation WHERE bot_id = 1 AND status IN ('waiting', 'assigned')"))
        return counts
    finally:
        await connection.close()


# --- the parameters ------------------------------------------------------------------------------


@dataclass
class Samples:
    """Real rows to ask about, read once from the loaded database."""

    conversations: list[tuple[int, int, int]]  # (conversation, its first message id, its last message id)
    long_conversations: list[tuple[int, int, int]]
    inbox: list[tuple[datetime, int]]  # the first bot's conversations with people, newest first
    topics: list[int]
    copies: list[tuple[int, int]]  # (chat, Telegram message id) of the first bot
    topic_copies: list[tuple[int, int]]  # (message, chat) of copies in the customer's chat
    cards: list[int]
    answered: list[int]  # customer messages: an answer job asks whether each was answered
    customers: list[tuple[int, int]]  # (user id, telegram id)
    waiting: list[tuple[datetime, int]]  # the first bot's conversations waiting for a person, longest wait first
    searched: list[int]  # messages of the first bot whose own word a search looks for
    viewer: Viewer | None = None  # a manager of the first bot, made once the database is open


async def read_samples(url: str) -> Samples:
    connection = await asyncpg.connect(url)
    try:
        async def rows(sql: str) -> list[tuple[Any, ...]]:
            return [tuple(row) for row in await connection.fetch(sql)]

        spans = await rows("SELECT conversation_id, min(id), max(id), count(*) FROM message WHERE bot_id = 1 "
                           "GROUP BY conversation_id")
        return Samples(
            conversations=[span[:3] for span in spans],
            long_conversations=[span[:3] for span in spans if span[3] >= LONG],
            inbox=await rows("SELECT last_message_at, id FROM conversation WHERE bot_id = 1 "
                             "AND status IN ('waiting', 'assigned') ORDER BY last_message_at DESC, id DESC"),
            topics=[row[0] for row in await rows(
                "SELECT manager_topic_id FROM conversation WHERE bot_id = 1 AND manager_topic_id IS NOT NULL")],
            copies=await rows("SELECT chat_id, telegram_message_id FROM message_copy WHERE bot_id = 1 "
                              "ORDER BY random() LIMIT 20000"),
            topic_copies=await rows("SELECT message_id, chat_id FROM message_copy WHERE bot_id = 1 AND chat_id > 0 "
                                    "ORDER BY random() LIMIT 20000"),
            cards=[row[0] for row in await rows(
                "SELECT manager_card_id FROM conversation WHERE bot_id = 1 AND manager_card_id IS NOT NULL")],
            answered=[row[0] for row in await rows(
                "SELECT id FROM message WHERE bot_id = 1 AND author_kind = 'customer' ORDER BY random() LIMIT 20000")],
            customers=await rows("""SELECT id, telegram_id FROM "user" WHERE bot_id = 1 AND role = 'customer'"""),
            waiting=await rows("SELECT handed_off_at, id FROM conversation WHERE bot_id = 1 "
                               "AND status = 'waiting' ORDER BY handed_off_at, id"),
            searched=[row[0] for row in await rows(
                "SELECT id FROM message WHERE bot_id = 1 ORDER BY random() LIMIT 2000")])
    finally:
        await connection.close()


# --- the queries ---------------------------------------------------------------------------------


def translate(_locale: str, message: str) -> str:
    return message


Query = Callable[[random.Random], Awaitable[Any]]


@dataclass(frozen=True)
class Kind:
    name: str
    where: str  # where the product issues it
    make: Callable[[Samples], Query]
    explain: Callable[[Samples, random.Random], Any] | None = None  # the main statement (queryset or SQL), for EXPLAIN


def inbox_page(cursor: tuple[datetime, int] | None) -> Any:
    """The main statement of `inbox.conversations_page` for the waiting view, for EXPLAIN only."""
    query = Conversation.filter(bot_id=1, status=ConversationStatus.WAITING)
    if cursor is not None:
        at, last_id = cursor
        query = query.filter(Q(handed_off_at__gt=at) | Q(handed_off_at=at, id__gt=last_id), handed_off_at__gte=at)
    return query.order_by("handed_off_at", "id").limit(INBOX_PAGE + 1).select_related("user", "assignee")


def rare_word(samples: Samples, rng: random.Random) -> str:
    """A word of one message: the start of the digest the loader wrote into it."""
    return hashlib.md5(str(rng.choice(samples.searched)).encode()).hexdigest()[:10]


def search_page(samples: Samples, word: str) -> Awaitable[Any]:
    assert samples.viewer is not None
    return conversations_page(samples.viewer, InboxQuery(search=word, limit=INBOX_PAGE))


def search_sql(word: str) -> str:
    """The statement of `inbox.message_hits` on PostgreSQL, its parameters inlined, for EXPLAIN only."""
    query = "'" + word + "':*"
    return ("SELECT conversation_id FROM message WHERE bot_id = 1 AND to_tsvector('simple', text) "
            f"@@ to_tsquery('simple', $${query}$$) GROUP BY conversation_id ORDER BY max(id) DESC "
            f"LIMIT {SEARCH_HITS}")


def open_counts_query() -> Any:
    """The second statement of `inbox.tab_counts`, for EXPLAIN only."""
    return (Conversation.filter(bot_id=1).exclude(status=ConversationStatus.CLOSED).annotate(n=Count("id"))
            .group_by("status", "mode", "assignee_id").values("status", "mode", "assignee_id", "n"))


def all_page(samples: Samples) -> Awaitable[Any]:
    assert samples.viewer is not None
    return conversations_page(samples.viewer, InboxQuery(limit=INBOX_PAGE))


def counts(samples: Samples) -> Awaitable[Any]:
    assert samples.viewer is not None
    return tab_counts(samples.viewer)


def pick_cursor(samples: Samples, rng: random.Random) -> tuple[datetime, int]:
    return samples.waiting[rng.randrange(len(samples.waiting))]


def waiting_page(samples: Samples, cursor: tuple[datetime, int] | None) -> Awaitable[Any]:
    """The product's inbox, as a manager opens it on "waiting" (and pages on)."""
    assert samples.viewer is not None
    return conversations_page(samples.viewer, InboxQuery(view=InboxView.WAITING, limit=INBOX_PAGE,
                                                         cursor=None if cursor is None else encode_cursor(*cursor)))


def older_page(samples: Samples, rng: random.Random, pool: str = "conversations") -> Any:
    conversation, first, last = rng.choice(getattr(samples, pool))
    return Message.filter(conversation_id=conversation, id__lt=rng.randint(first, last) + 1).order_by("-id").limit(PAGE)


def newer_page(samples: Samples, rng: random.Random, pool: str = "conversations") -> Any:
    conversation, first, last = rng.choice(getattr(samples, pool))
    return Message.filter(conversation_id=conversation, id__gt=rng.randint(first, last) - 1).order_by("id").limit(PAGE)


def copy_lookup(samples: Samples, rng: random.Random) -> Any:
    chat, message = rng.choice(samples.copies)
    return MessageCopy.filter(bot_id=1, chat_id=chat, telegram_message_id=message).first()


def not_closed(samples: Samples, rng: random.Random) -> Any:
    user_id, _ = rng.choice(samples.customers)
    return Conversation.filter(user_id=user_id, status__not=ConversationStatus.CLOSED).order_by("-id").first()


def answered_already(samples: Samples, rng: random.Random) -> Any:
    return Message.filter(reply_to_id=rng.choice(samples.answered)).exists()


def newest_message(samples: Samples, rng: random.Random) -> Any:
    return Message.filter(conversation_id=rng.choice(samples.conversations)[0]).order_by("-id").first().values_list(
        "id", flat=True)


def card_lookup(samples: Samples, rng: random.Random) -> Any:
    return Conversation.filter(bot_id=1, manager_card_id=rng.choice(samples.cards)).first()


KINDS = [
    Kind("inbox, first page", "services/inbox.py conversations_page, waiting view: the longest wait first, "
         "30 a page, with each one's preview", lambda s: lambda rng: waiting_page(s, None),
         lambda s, rng: inbox_page(None)),
    Kind("inbox, next page", "the same, after a (handed_off_at, id) cursor",
         lambda s: lambda rng: waiting_page(s, pick_cursor(s, rng)),
         lambda s, rng: inbox_page(pick_cursor(s, rng))),
    Kind("inbox, all, first page", "services/inbox.py conversations_page, all: newest activity first, 30, previews",
         lambda s: lambda rng: all_page(s),
         lambda s, rng: Conversation.filter(bot_id=1).order_by("-last_message_at", "-id").limit(INBOX_PAGE + 1)
         .select_related("user", "assignee")),
    Kind("inbox tab counts", "services/inbox.py tab_counts: all, waiting, unassigned, mine, AI, closed",
         lambda s: lambda rng: counts(s), lambda s, rng: open_counts_query()),
    Kind("inbox search, a rare word", "services/inbox.py conversations_page, q = a word of one message "
         "(message_hits, then the page)", lambda s: lambda rng: search_page(s, rare_word(s, rng)),
         lambda s, rng: search_sql(rare_word(s, rng))),
    Kind("inbox search, a word of every message", "the same, q = 'conversation' (in all 1M messages): the worst case",
         lambda s: lambda rng: search_page(s, "conversation"), lambda s, rng: search_sql("conversation")),
    Kind("/open", "services/desk_reports.py open_list: waiting + assigned by handed_off_at, 30, with user and assignee",
         lambda s: lambda rng: desk_reports.open_list(1, MANAGER_CHAT, True, translate, "en"),
         lambda s, rng: Conversation.filter(bot_id=1, status__in=WITH_PEOPLE).order_by("handed_off_at").limit(30)),
    Kind("messages, older page", "a conversation's messages before a cursor (id < cursor), 50",
         lambda s: lambda rng: older_page(s, rng), older_page),
    Kind("messages, newer page", "a conversation's messages after a cursor (id > cursor), 50",
         lambda s: lambda rng: newer_page(s, rng), newer_page),
    Kind("messages, older page, long conversation", "the same, in the 0.5% of conversations with hundreds",
         lambda s: lambda rng: older_page(s, rng, "long_conversations"),
         lambda s, rng: older_page(s, rng, "long_conversations")),
    Kind("AI context", "services/conversations.py history (each AI answer): the last 80 turns",
         lambda s: lambda rng: conversations.history((span := rng.choice(s.conversations))[0], before_id=span[2]),
         lambda s, rng: newest_message(s, rng)),
    Kind("topic → conversation", "services/desk.py by_topic (each message a manager writes in a topic)",
         lambda s: lambda rng: desk.by_topic(1, rng.choice(s.topics)),
         lambda s, rng: Conversation.filter(bot_id=1, manager_topic_id=rng.choice(s.topics)).order_by("-id").first()),
    Kind("copy → conversation", "services/desk.py by_reply (a reply in a group without topics)",
         lambda s: lambda rng: desk.by_reply(1, *rng.choice(s.copies)), copy_lookup),
    Kind("copy by chat + message id", "services/desk.py record_edit and _customer_side_of (edits, quoted replies)",
         lambda s: lambda rng: copy_lookup(s, rng), copy_lookup),
    Kind("a message's copy in a chat", "services/desk.py _customer_side_of, services/managers.py",
         lambda s: lambda rng: MessageCopy.filter(message_id=(pick := rng.choice(s.topic_copies))[0],
                                                  chat_id=pick[1]).first(),
         lambda s, rng: MessageCopy.filter(message_id=(pick := rng.choice(s.topic_copies))[0],
                                           chat_id=pick[1]).first()),
    Kind("header card → conversation", "services/desk.py by_reply, second step (a reply to a header card)",
         lambda s: lambda rng: card_lookup(s, rng), card_lookup),
    Kind("customer by Telegram id", "services/conversations.py find_customer (each update, in the middleware)",
         lambda s: lambda rng: conversations.find_customer(1, rng.choice(s.customers)[1]),
         lambda s, rng: User.filter(bot_id=1, telegram_id=rng.choice(s.customers)[1]).first()),
    Kind("customer's open conversation", "services/conversations.py open_conversation (each customer message)",
         lambda s: lambda rng: not_closed(s, rng), not_closed),
    Kind("answered already?", "services/answering.py _load (each answer job): Message.exists(reply_to_id=...)",
         lambda s: lambda rng: answered_already(s, rng), answered_already),
    Kind("newest message of a conversation", "services/conversations.py announce_to_managers (each first handoff)",
         lambda s: lambda rng: newest_message(s, rng), newest_message),
]


# --- measuring -----------------------------------------------------------------------------------


@dataclass
class Timing:
    kind: Kind
    seconds: list[float] = field(default_factory=list)

    def percentile(self, share: float) -> float:
        ordered = sorted(self.seconds)
        return 1000 * ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


async def time_kind(kind: Kind, samples: Samples, count: int, budget: float, seed: int) -> Timing:
    """`count` queries (fewer if they take longer than `budget` seconds in all), after a short warm-up."""
    rng = random.Random(seed)
    query = kind.make(samples)
    for _ in range(min(20, count)):
        await query(rng)
    timing = Timing(kind)
    deadline = time.perf_counter() + budget
    while len(timing.seconds) < count and (len(timing.seconds) < 50 or time.perf_counter() < deadline):
        started = time.perf_counter()
        await query(rng)
        timing.seconds.append(time.perf_counter() - started)
    return timing


async def plan(kind: Kind, samples: Samples, url: str) -> str:
    """The main statement's plan, as EXPLAIN ANALYZE shows it for one random sample: its scans."""
    if kind.explain is None:
        return ""
    queryset = kind.explain(samples, random.Random(7))
    sql = queryset if isinstance(queryset, str) else queryset.sql(params_inline=True)
    connection = await asyncpg.connect(url)
    try:
        lines = [row[0] for row in await connection.fetch(f"EXPLAIN (ANALYZE, COSTS OFF) {sql}")]
    finally:
        await connection.close()
    scans = [line.strip().removeprefix("->").strip().split("  (")[0] for line in lines
             if " Scan " in line or line.strip().startswith(("Seq Scan", "Index", "Bitmap"))]
    took = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("Execution Time")), "?")
    return f"{'; '.join(dict.fromkeys(scans))} ({took})"


@dataclass(frozen=True)
class IndexTrial:
    name: str
    ddl: str
    kinds: tuple[str, ...]  # the queries it is meant for
    why: str


INDEXES = [
    IndexTrial("message_conversation_id_idx",
               "CREATE INDEX message_conversation_id_idx ON message (conversation_id, id)",
               ("messages, older page", "messages, newer page", "messages, older page, long conversation",
                "AI context", "newest message of a conversation"),
               "message has no index on conversation_id (Tortoise makes none for a foreign key)"),
    IndexTrial("message_reply_to_id_idx",
               "CREATE INDEX message_reply_to_id_idx ON message (reply_to_id)",
               ("answered already?",), "nothing indexes reply_to_id; only answers have one"),
    IndexTrial("conversation_with_people_idx",
               "CREATE INDEX conversation_with_people_idx ON conversation (bot_id, last_message_at DESC, id DESC) "
               "WHERE status IN ('waiting', 'assigned')",
               ("inbox, first page", "inbox, next page"), "the inbox reads the few conversations people have"),
    IndexTrial("conversation_waiting_idx",
               "CREATE INDEX conversation_waiting_idx ON conversation (bot_id, handed_off_at) "
               "WHERE status IN ('waiting', 'assigned')", ("/open",), "/open's order"),
    IndexTrial("conversation_open_idx",
               "CREATE INDEX conversation_open_idx ON conversation (bot_id, channel, status, mode, assignee_id) "
               "WHERE status <> 'closed'", ("inbox tab counts",),
               "the tab counts group the open conversations, a few percent of all (migration 0014)"),
    IndexTrial("conversation_card_idx",
               "CREATE INDEX conversation_card_idx ON conversation (bot_id, manager_card_id) "
               "WHERE manager_card_id IS NOT NULL", ("header card → conversation",),
               "nothing indexes manager_card_id"),
]


# --- the report ----------------------------------------------------------------------------------


@dataclass
class Options:
    customers: int
    conversations: int
    messages: int
    count: int
    budget: float
    rounds: int
    postgres_url: str
    doc: Path | None


def table(timings: Sequence[Timing], plans: dict[str, str]) -> str:
    lines = ["| query | where the product issues it | queries | p50 ms | p99 ms | p99 < 20 ms | plan of the main "
             "statement (EXPLAIN ANALYZE, one sample) |", "| --- | --- | ---: | ---: | ---: | :---: | --- |"]
    for timing in timings:
        p99 = timing.percentile(0.99)
        lines.append(f"| {timing.kind.name} | {timing.kind.where} | {len(timing.seconds)} | "
                     f"{timing.percentile(0.5):.2f} | {p99:.2f} | {'yes' if p99 < TARGET_P99_MS else '**no**'} | "
                     f"{plans.get(timing.kind.name, '')} |")
    return "\n".join(lines)


Trials = dict[str, dict[str, tuple[list[Timing], list[Timing]]]]  # index -> query -> (without, with), per round


def index_table(trials: Trials, plans: dict[str, str]) -> str:
    lines = ["| index (migrations 0005, 0014) | query | p50 ms without → with | p99 ms without → with | plan with it |",
             "| --- | --- | ---: | ---: | --- |"]
    for trial in INDEXES:
        for kind, (without, with_) in trials.get(trial.name, {}).items():
            def pooled(timings: list[Timing], share: float) -> float:
                return Timing(timings[0].kind, [s for t in timings for s in t.seconds]).percentile(share)

            lines.append(f"| `{trial.ddl.removeprefix('CREATE INDEX ')}` | {kind} | "
                         f"{pooled(without, 0.5):.2f} → {pooled(with_, 0.5):.2f} | "
                         f"{pooled(without, 0.99):.2f} → {pooled(with_, 0.99):.2f} | {plans.get(kind, '')} |")
    return "\n".join(lines)


class NotDone(Exception):
    """A query the benchmark times did not return the rows the data holds."""


async def check_rows(samples: Samples) -> None:
    """The product's functions answer with the rows the loaded data holds, or the timings mean nothing."""
    if len(samples.waiting) <= 2 * INBOX_PAGE:
        raise NotDone(f"only {len(samples.waiting)} conversations wait for a person: load more")
    first = await waiting_page(samples, None)
    shown = [(c.handed_off_at, c.id) for c in first.conversations]
    if shown != samples.waiting[:INBOX_PAGE] or first.next_cursor is None:
        raise NotDone("the inbox's first page is not the longest waiting conversations, in order")
    if set(first.previews) != {c.id for c in first.conversations}:
        raise NotDone("an inbox row came without its last message")
    rng = random.Random(0)
    at = rng.randrange(len(samples.waiting) - INBOX_PAGE)
    following = await waiting_page(samples, samples.waiting[at])
    if [(c.handed_off_at, c.id) for c in following.conversations] != samples.waiting[at + 1:at + 1 + INBOX_PAGE]:
        raise NotDone("the inbox's next page is not the conversations after the cursor")
    topic = rng.choice(samples.topics)
    if (found := await desk.by_topic(1, topic)) is None or found.manager_topic_id != topic:
        raise NotDone("desk.by_topic found no conversation for a topic the data has")
    if await desk.by_reply(1, *rng.choice(samples.copies)) is None:
        raise NotDone("desk.by_reply found no conversation for a copy the data has")
    user_id, telegram_id = rng.choice(samples.customers)
    if (customer := await conversations.find_customer(1, telegram_id)) is None or customer.id != user_id:
        raise NotDone("conversations.find_customer did not find a customer the data has")
    conversation, _, last = rng.choice(samples.conversations)
    if not await conversations.history(conversation, before_id=last):
        raise NotDone("conversations.history is empty for a conversation with messages")


async def measure_all(options: Options, url: str) -> tuple[list[Timing], dict[str, str], Trials, dict[str, str]]:
    samples = await read_samples(url)
    await db.open_database(url, run_migrations=False)
    try:
        manager = await User.create(bot_id=1, telegram_id=FIRST_TELEGRAM_ID - 1, first_name="Mia", role=Role.MANAGER)
        samples.viewer = Viewer(manager, Role.MANAGER)
        await check_rows(samples)
        timings = []
        for index, kind in enumerate(KINDS):
            timings.append(await time_kind(kind, samples, options.count, options.budget, seed=index))
            print(f"{kind.name}: p50 {timings[-1].percentile(0.5):.2f} ms, p99 {timings[-1].percentile(0.99):.2f} ms "
                  f"({len(timings[-1].seconds)} queries)", file=sys.stderr, flush=True)
        plans = {kind.name: await plan(kind, samples, url) for kind in KINDS}
        by_name = {kind.name: kind for kind in KINDS}
        trials: Trials = {}
        plans_with: dict[str, str] = {}
        for trial in INDEXES:
            results = trials.setdefault(trial.name, {name: ([], []) for name in trial.kinds})
            table_name = trial.ddl.split(" ON ")[1].split()[0]
            for round_ in range(options.rounds):  # without, with, without, with, ...: drift hits both alike
                for present in (False, True):
                    # The migrations made the index: drop it to measure without, make it again for with.
                    await pg_execute(url, trial.ddl if present else f"DROP INDEX {trial.name}")
                    await pg_execute(url, f"ANALYZE {table_name}")
                    for name in trial.kinds:
                        results[name][present].append(await time_kind(
                            by_name[name], samples, options.count // options.rounds, options.budget / options.rounds,
                            seed=1000 * round_ + trial.kinds.index(name)))
                    if present and round_ == options.rounds - 1:
                        for name in trial.kinds:
                            plans_with[name] = await plan(by_name[name], samples, url)
            for name in trial.kinds:
                without, with_ = results[name]
                print(f"{trial.name} / {name}: p99 {max(t.percentile(0.99) for t in without):.2f} → "
                      f"{max(t.percentile(0.99) for t in with_):.2f} ms", file=sys.stderr, flush=True)
        return timings, plans, trials, plans_with
    finally:
        await db.close_database()


def generated_section(options: Options, counts: dict[str, int], loaded: float, timings: Sequence[Timing],
                      plans: dict[str, str], trials: Trials, plans_with: dict[str, str], software: str,
                      code: str) -> str:
    command = f"`{shlex.join(['python', 'bench/inbox.py', *sys.argv[1:]])}`"
    if launcher := os.environ.get("BENCH_LAUNCHER", ""):
        command = f"`{launcher}`, which runs {command}"
    misses = [t.kind.name for t in timings if t.percentile(0.99) >= TARGET_P99_MS]
    return "\n".join([
        BEGIN_MARK,
        f"- **Date:** {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- **Machine:** {machine()}",
        f"- **Software:** {software}",
        f"- **Frontdesk:** commit {code} (schema from its migrations)",
        f"- **Command:** {command}",
        f"- **Data:** {counts['user']:,} users, {counts['conversation']:,} conversations "
        f"({counts['with people']:,} waiting for or with people, {counts['with people, bot 1']:,} of them the "
        f"measured bot's), {counts['message']:,} messages, {counts['message_copy']:,} Telegram copies; loaded in "
        f"SQL and analysed in {loaded:.0f} s",
        f"- **Load:** one connection, one query at a time, up to {options.count} queries per row (fewer where "
        f"{options.budget:g} s ran out), random real parameters, after 20 warm-up queries; the time is the whole "
        "`await`, Tortoise included.",
        "", table(timings, plans), "",
        f"Over the target (p99 ≥ {TARGET_P99_MS:g} ms): {', '.join(misses) if misses else 'none'}.",
        "", "### What each index of migrations 0005 and 0014 buys", "",
        f"Each index was dropped in the benchmark database, the queries it serves measured, the index made "
        f"again and the queries measured again, {options.rounds} times (without, with, without, with, ...); "
        "p50/p99 pool the rounds.", "", index_table(trials, plans_with), END_MARK])


def parse_options(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--customers", type=int, default=60_000)
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--count", type=int, default=2000, help="queries per row")
    parser.add_argument("--budget", type=float, default=8.0, help="seconds per row at most (at least 50 queries)")
    parser.add_argument("--rounds", type=int, default=2, help="without/with rounds per index")
    parser.add_argument("--no-doc", action="store_true", help="only print the table")
    args = parser.parse_args(argv)
    postgres_url = os.environ.get("BENCH_POSTGRES_URL", "")
    if not postgres_url:
        parser.error("BENCH_POSTGRES_URL is not set (bash bench/run.sh sets it)")
    return Options(args.customers, args.conversations, args.messages, args.count, args.budget, args.rounds,
                   postgres_url, None if args.no_doc else DOC_PATH)


async def run(options: Options) -> int:
    from urllib.parse import urlsplit, urlunsplit

    name = f"frontdesk_inbox_{uuid.uuid4().hex[:10]}"
    url = urlunsplit(urlsplit(options.postgres_url)._replace(path=f"/{name}"))
    await pg_execute(options.postgres_url, f'CREATE DATABASE "{name}"')
    try:
        await db.migrate(url)
        started = time.perf_counter()
        counts = await load(url, options.customers, options.conversations, options.messages)
        loaded = time.perf_counter() - started
        print(f"loaded {counts} in {loaded:.0f} s", file=sys.stderr, flush=True)
        timings, plans, trials, plans_with = await measure_all(options, url)
        connection = await asyncpg.connect(url)
        try:
            version = await connection.fetchval("SELECT current_setting('server_version')")
            buffers = await connection.fetchval("SELECT current_setting('shared_buffers')")
            software = f"PostgreSQL {version} (shared_buffers={buffers}, otherwise its defaults)"
        finally:
            await connection.close()
    finally:
        await pg_execute(options.postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(table(timings, plans))
    if options.doc is not None:
        section = generated_section(options, counts, loaded, timings, plans, trials, plans_with, software,
                                    code_version())
        write_section(options.doc, "inbox.py", section, "Inbox queries on 100k conversations and 1M messages")
        print(f"wrote {options.doc}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return asyncio.run(run(parse_options(argv)))
    except NotDone as error:
        print(f"inbox: the work did not happen: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
