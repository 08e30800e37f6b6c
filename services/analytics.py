"""Staff analytics: what one bot's conversations, answers, costs and managers add up to over a period.

The database does the counting (GROUP BY); Python only lays the few aggregated rows out. Days are
the business's: a row belongs to the date its time has in the period's time zone. SQLite has no
time zones, so the zone's UTC offsets over the period are worked out here (they change at most at a
few moments a year) and each row's day is `(epoch seconds + offset) / 86400` in SQL: the same
arithmetic on both databases, whatever time zone data PostgreSQL was built with.

Which rows a figure counts:
- conversations per day, AI-resolved vs handed off, ratings, top questions: the conversations
  *created* in the period (a rating belongs to the conversation it rates);
- first response time: the conversations *handed to people* in the period;
- AI tokens and cost: the AI's answers in the period, from `UsageSlot` (per quarter of an hour, so
  that any time zone's day is a whole number of slots; `Usage` counts by UTC day, which is not the
  business's day, and summing `Message.ai_meta` over a year reads hundreds of thousands of rows);
- managers: what they did in the period (audit entries, their messages).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from fractions import Fraction
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tortoise import connections
from tortoise.expressions import Q, RawSQL
from tortoise.functions import Count, Max, Sum

from models import AuthorKind, Channel, Conversation, HandoffReason, Message, Role, UsageSlot, User

MAX_DAYS = 366
TOP_QUESTIONS = 10
UNIX_EPOCH = date(1970, 1, 1)
DAY = 86400


class InvalidPeriod(ValueError):
    """A period the report cannot cover; `code` says why: bad_range, too_long or bad_timezone."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Period:
    start: date  # inclusive, in the business's time zone
    end: date  # inclusive
    timezone: str  # IANA name, e.g. "Asia/Tashkent"

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise InvalidPeriod("bad_range", f"the period ends ({self.end}) before it starts ({self.start})")
        if (self.end - self.start).days + 1 > MAX_DAYS:
            raise InvalidPeriod("too_long", f"a period covers at most {MAX_DAYS} days")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise InvalidPeriod("bad_timezone", f"unknown time zone {self.timezone!r}") from error

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def days(self) -> tuple[date, ...]:
        return tuple(self.start + timedelta(days=n) for n in range((self.end - self.start).days + 1))

    def previous(self) -> Period:
        """The period of the same length that ends the day before this one starts: what to compare with."""
        length = self.end - self.start + timedelta(days=1)
        return Period(self.start - length, self.start - timedelta(days=1), self.timezone)

    def bounds(self) -> tuple[datetime, datetime]:
        """The period in UTC: from the first moment of its first day to the first moment after its last.

        UTC, not the zone: SQLite compares Tortoise's timestamps as text, and Tortoise binds an aware
        datetime with its own offset, so a bound at +05:00 would be compared wrongly with UTC rows.
        """
        def first_moment(day: date) -> datetime:
            # fold=0: a midnight skipped by a clock change maps to the change itself, a repeated one to its first time.
            return datetime.combine(day, time(0), tzinfo=self.zone).astimezone(UTC)

        return first_moment(self.start), first_moment(self.end + timedelta(days=1))


# --- the report --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcomes:
    """Conversations created in the period: those people never had (`handed_off_at` is null; the AI's,
    open ones too) and those handed to them at least once, by the reason they were handed over."""

    ai_resolved: int
    handed_off: int
    by_reason: dict[str, int]  # handed-off conversations by `handoff_reason`; every known reason is listed

    @property
    def total(self) -> int:
        return self.ai_resolved + self.handed_off

    def share(self, count: int) -> float | None:
        return count / self.total if self.total else None


@dataclass(frozen=True)
class ResponseTimes:
    """Managers' first reply after the handoff, for conversations handed to people in the period."""

    count: int  # handed off and answered by a manager
    median: float | None  # seconds; None without any
    p90: float | None
    unanswered: int  # handed off in the period, no manager reply yet


@dataclass(frozen=True)
class Ratings:
    distribution: tuple[int, int, int, int, int]  # how many conversations got 1, 2, 3, 4 and 5 stars

    @property
    def count(self) -> int:
        return sum(self.distribution)

    @property
    def average(self) -> float | None:
        return sum(stars * n for stars, n in enumerate(self.distribution, 1)) / self.count if self.count else None


@dataclass(frozen=True)
class TopQuestion:
    text: str  # the most recent wording of the group
    count: int  # conversations in the period opened by it


@dataclass(frozen=True)
class AIUsage:
    """The AI's answers per day of the period (aligned with `Report.days`)."""

    answers: tuple[int, ...]
    tokens_in: tuple[int, ...]
    tokens_out: tuple[int, ...]
    cost: tuple[float, ...]  # dollars, to the micro-dollar (transcriptions' too)
    # Over the whole period: voice messages transcribed, their seconds, images given to a vision model.
    transcriptions: int = 0
    audio_seconds: int = 0
    images: int = 0


@dataclass(frozen=True)
class ManagerActivity:
    user_id: int
    name: str
    taken: int  # conversations they took (audit `take`)
    replies: int  # messages they sent to customers (notes not counted)
    closed: int  # conversations they closed (audit `close`)


@dataclass(frozen=True)
class Report:
    period: Period
    days: tuple[date, ...]
    conversations_per_day: dict[str, tuple[int, ...]]  # channel -> counts aligned with `days`
    outcomes: Outcomes
    first_response: ResponseTimes
    ratings: Ratings
    top_questions: tuple[TopQuestion, ...]
    ai_usage: AIUsage
    managers: tuple[ManagerActivity, ...]

    def to_dict(self) -> dict[str, Any]:
        """The report in JSON types only (dates as ISO strings)."""
        outcomes, usage = self.outcomes, self.ai_usage
        return {
            "period": {"start": self.period.start.isoformat(), "end": self.period.end.isoformat(),
                       "timezone": self.period.timezone},
            "days": [day.isoformat() for day in self.days],
            "conversations_per_day": {channel: list(counts) for channel, counts in self.conversations_per_day.items()},
            "outcomes": {"total": outcomes.total, "ai_resolved": outcomes.ai_resolved,
                         "handed_off": outcomes.handed_off, "ai_resolved_share": outcomes.share(outcomes.ai_resolved),
                         "handed_off_share": outcomes.share(outcomes.handed_off),
                         "handed_off_by_reason": dict(outcomes.by_reason)},
            "first_response": {"count": self.first_response.count, "median_seconds": self.first_response.median,
                               "p90_seconds": self.first_response.p90, "unanswered": self.first_response.unanswered},
            "ratings": {"count": self.ratings.count, "average": self.ratings.average,
                        "distribution": list(self.ratings.distribution)},
            "top_questions": [{"text": question.text, "count": question.count} for question in self.top_questions],
            "ai_usage": {"answers": list(usage.answers), "tokens_in": list(usage.tokens_in),
                         "tokens_out": list(usage.tokens_out), "cost": list(usage.cost),
                         "total": {"answers": sum(usage.answers), "tokens_in": sum(usage.tokens_in),
                                   "tokens_out": sum(usage.tokens_out), "cost": round(sum(usage.cost), 6),
                                   "transcriptions": usage.transcriptions, "audio_seconds": usage.audio_seconds,
                                   "images": usage.images}},
            "managers": [{"user_id": m.user_id, "name": m.name, "taken": m.taken, "replies": m.replies,
                          "closed": m.closed} for m in self.managers],
        }


async def report(bot_id: int, period: Period) -> Report:
    """Everything the analytics page shows for one bot over `period` (see the module's docstring).

    The figures' queries run side by side (on PostgreSQL, on the pool's connections), so call it
    outside a transaction.
    """
    days = _Days(period, _Sql(connections.get("default").capabilities.dialect))
    (per_day, outcomes, ratings), first_response, top_questions, ai_usage, managers = await asyncio.gather(
        _conversations(bot_id, days), _first_response(bot_id, days), _top_questions(bot_id, days),
        _ai_usage(bot_id, days), _managers(bot_id, days))
    return Report(period=period, days=period.days, conversations_per_day=per_day, outcomes=outcomes,
                  first_response=first_response, ratings=ratings, top_questions=top_questions, ai_usage=ai_usage,
                  managers=managers)


# --- SQL the ORM cannot say ----------------------------------------------------------------------------


class _Sql:
    """The few expressions whose SQL differs between SQLite and PostgreSQL."""

    def __init__(self, dialect: str) -> None:
        if dialect not in ("sqlite", "postgres"):
            raise RuntimeError(f"analytics supports SQLite and PostgreSQL, not {dialect}")
        self.postgres = dialect == "postgres"

    def placeholder(self, number: int) -> str:
        return f"${number}" if self.postgres else "?"

    def epoch(self, column: str) -> str:
        """Whole seconds since 1970 (UTC) of a timestamp column."""
        if self.postgres:
            return f"FLOOR(DATE_PART('epoch', {column}))::BIGINT"
        # Tortoise keeps text, "YYYY-MM-DD HH:MM:SS[.ffffff]+HH:MM". SQLite's date functions round a fraction
        # to milliseconds (23:59:59.9999 would be the next day), so they are given the time without it.
        return f"CAST(STRFTIME('%s', SUBSTR({column}, 1, 19) || SUBSTR({column}, -6)) AS INTEGER)"

    def micros_between(self, earlier: str, later: str) -> str:
        """Exact microseconds from one timestamp column to another."""
        if self.postgres:
            return f"(EXTRACT(EPOCH FROM {later} - {earlier}) * 1000000)::BIGINT"

        def micros(column: str) -> str:
            fraction = f"CASE WHEN SUBSTR({column}, 20, 1) = '.' THEN CAST(SUBSTR({column}, 21, 6) AS INTEGER) " \
                       "ELSE 0 END"
            return f"({self.epoch(column)} * 1000000 + {fraction})"
        return f"({micros(later)} - {micros(earlier)})"


class _Days:
    """The period's days, and the SQL that puts a timestamp column on one of them."""

    def __init__(self, period: Period, sql: _Sql) -> None:
        self.period, self.sql = period, sql
        self.lo, self.hi = period.bounds()
        self.count = len(period.days)
        self._changes = _offsets(int(self.lo.timestamp()), int(self.hi.timestamp()), period.zone)

    def of(self, column: str) -> RawSQL:
        """The day of `column` as a number of days since 1970-01-01 (in the period's time zone)."""
        seconds = self.sql.epoch(column)
        if len(self._changes) > 1:
            whens = " ".join(f"WHEN {seconds} < {since} THEN {before}"
                             for (_, before), (since, _) in pairwise(self._changes))
            shift = f"CASE {whens} ELSE {self._changes[-1][1]} END"
        else:
            shift = str(self._changes[0][1])
        return RawSQL(f"(({seconds}) + {shift}) / {DAY}")

    def index(self, day_number: Any) -> int:
        """The position in `Period.days` of a day number from `of`."""
        return (UNIX_EPOCH + timedelta(days=int(day_number)) - self.period.start).days

    def series(self) -> list[int]:
        return [0] * self.count


def _offsets(start: int, stop: int, zone: ZoneInfo) -> list[tuple[int, int]]:
    """[(since, offset)]: the zone's UTC offset in seconds from each epoch second `since` on, over [start, stop).

    Sampled once a day (a zone changes its clocks months apart), each change found to the second.
    """
    def offset(moment: int) -> int:
        utcoffset = datetime.fromtimestamp(moment, zone).utcoffset()
        return int(utcoffset.total_seconds()) if utcoffset is not None else 0

    changes = [(start, offset(start))]
    samples = [*range(start, stop, DAY), stop - 1]
    for before, after in pairwise(samples):
        old, new = offset(before), offset(after)
        if old == new:
            continue
        while after - before > 1:
            middle = (before + after) // 2
            before, after = (middle, after) if offset(middle) == old else (before, middle)
        changes.append((after, new))
    return changes


def _in_period(days: _Days, column: str = "created_at") -> dict[str, datetime]:
    return {f"{column}__gte": days.lo, f"{column}__lt": days.hi}


# --- the figures ---------------------------------------------------------------------------------------


STARS = range(1, 6)


async def _conversations(bot_id: int, days: _Days) -> tuple[dict[str, tuple[int, ...]], Outcomes, Ratings]:
    """The period's conversations per day and channel; and by how they went and how they were rated.

    Two small GROUP BYs side by side: one over (day, channel), the other over (reason, rating).
    """
    period = Conversation.filter(bot_id=bot_id, **_in_period(days))
    per_day_rows, outcome_rows = await asyncio.gather(
        period.annotate(day=days.of('"created_at"'), conversations=Count("id")).group_by("day", "channel")
        .values_list("day", "channel", "conversations"),
        period.annotate(conversations=Count("id"), by_ai=Count("id", _filter=Q(handed_off_at__isnull=True)))
        .group_by("handoff_reason", "rating").values_list("handoff_reason", "rating", "conversations", "by_ai"))
    per_day = {str(channel): days.series() for channel in Channel}
    for day, channel, conversations in per_day_rows:
        per_day.setdefault(str(channel), days.series())[days.index(day)] += int(conversations)
    by_reason = dict.fromkeys((str(reason) for reason in HandoffReason), 0)
    ratings = dict.fromkeys(STARS, 0)
    ai_resolved = handed_off = 0
    for reason, rating, conversations, by_ai in outcome_rows:
        ai_resolved += int(by_ai)
        if handed := int(conversations) - int(by_ai):
            handed_off += handed
            by_reason[reason or "unknown"] = by_reason.get(reason or "unknown", 0) + handed
        if rating in ratings:
            ratings[int(rating)] += int(conversations)
    return ({channel: tuple(counts) for channel, counts in per_day.items()},
            Outcomes(ai_resolved=ai_resolved, handed_off=handed_off, by_reason=by_reason),
            Ratings(distribution=(ratings[1], ratings[2], ratings[3], ratings[4], ratings[5])))


async def _first_response(bot_id: int, days: _Days) -> ResponseTimes:
    """Median and p90 are exact (linear between the two nearest ranks, like PostgreSQL's percentile_cont):
    the database ranks the waits and returns only the rows at the ranks needed."""
    sql, p = days.sql, days.sql.placeholder
    wait = sql.micros_between('"handed_off_at"', '"first_manager_reply_at"')
    # Ranks 1-based; for n waits the p-quantile lies between ranks floor(p(n-1)) + 1 and ceil(p(n-1)) + 1.
    query = f"""SELECT rn, n, wait FROM (
        SELECT {wait} AS wait, ROW_NUMBER() OVER (ORDER BY {wait}) AS rn, COUNT(*) OVER () AS n
        FROM "conversation"
        WHERE "bot_id" = {p(1)} AND "handed_off_at" >= {p(2)} AND "handed_off_at" < {p(3)}
          AND "first_manager_reply_at" IS NOT NULL) AS ranked
        WHERE rn IN ((n - 1) / 2 + 1, n / 2 + 1, (n - 1) * 9 / 10 + 1, ((n - 1) * 9 + 9) / 10 + 1)"""
    unanswered, rows = await asyncio.gather(
        Conversation.filter(bot_id=bot_id, first_manager_reply_at__isnull=True, **_in_period(days, "handed_off_at"))
        .count(),
        connections.get("default").execute_query_dict(query, [bot_id, days.lo, days.hi]))
    if not rows:
        return ResponseTimes(count=0, median=None, p90=None, unanswered=unanswered)
    count = int(rows[0]["n"])
    waits = {int(row["rn"]): int(row["wait"]) for row in rows}

    def quantile(share: Fraction) -> float:
        position = share * (count - 1)
        low = int(position)
        high = low + (1 if position > low else 0)
        micros = waits[low + 1] + (waits[high + 1] - waits[low + 1]) * (position - low)
        return float(micros / 1_000_000)

    return ResponseTimes(count=count, median=quantile(Fraction(1, 2)), p90=quantile(Fraction(9, 10)),
                         unanswered=unanswered)


async def _top_questions(bot_id: int, days: _Days) -> tuple[TopQuestion, ...]:
    """What customers asked most: each conversation's question, grouped by the digest of its words.

    A conversation's question is the customer's first message with words in it (kept on the
    conversation when it is written: `question`, `question_key`). The opening message is what brought
    the customer; later ones are follow-ups, answers to the AI's own questions and thanks, which would
    crowd the list, and counting one per conversation keeps one talkative customer from filling it.
    Words are compared lowercased, without punctuation or spacing, so "Delivery time?" and "delivery
    time" are one question; the text shown is the group's most recent wording.
    """
    groups = await (Conversation.filter(bot_id=bot_id, **_in_period(days)).exclude(question_key="")
                    .annotate(conversations=Count("id"), latest=Max("id")).group_by("question_key")
                    .order_by("-conversations", "-latest").limit(TOP_QUESTIONS)
                    .values_list("latest", "conversations"))
    wording = dict(await Conversation.filter(id__in=[latest for latest, _ in groups]).values_list("id", "question"))
    return tuple(TopQuestion(text=str(wording.get(latest, "")), count=int(count)) for latest, count in groups)


async def _ai_usage(bot_id: int, days: _Days) -> AIUsage:
    rows = await (UsageSlot.filter(bot_id=bot_id, **_in_period(days, "slot"))
                  .annotate(day=days.of('"slot"'), answers=Sum("ai_messages"), tokens_in_=Sum("tokens_in"),
                            tokens_out_=Sum("tokens_out"), cost_=Sum("cost"), transcriptions_=Sum("transcriptions"),
                            audio_seconds_=Sum("audio_seconds"), images_=Sum("images"))
                  .group_by("day").values("day", "answers", "tokens_in_", "tokens_out_", "cost_", "transcriptions_",
                                          "audio_seconds_", "images_"))
    answers, tokens_in, tokens_out, cost = days.series(), days.series(), days.series(), [0.0] * days.count
    for row in rows:
        index = days.index(row["day"])
        answers[index], tokens_in[index] = int(row["answers"] or 0), int(row["tokens_in_"] or 0)
        tokens_out[index], cost[index] = int(row["tokens_out_"] or 0), round(float(row["cost_"] or 0), 6)
    return AIUsage(answers=tuple(answers), tokens_in=tuple(tokens_in), tokens_out=tuple(tokens_out),
                   cost=tuple(cost), transcriptions=sum(int(row["transcriptions_"] or 0) for row in rows),
                   audio_seconds=sum(int(row["audio_seconds_"] or 0) for row in rows),
                   images=sum(int(row["images_"] or 0) for row in rows))


async def _managers(bot_id: int, days: _Days) -> tuple[ManagerActivity, ...]:
    """Every staff member, and anyone else who acted as one in the period, most replies first."""
    p = days.sql.placeholder
    # Each conversation once per manager and action (taken twice is one conversation taken). DISTINCT in
    # a subquery lets PostgreSQL hash the pairs; COUNT(DISTINCT ...) would sort them all. Tortoise cannot
    # select from a subquery, hence the SQL.
    taken_and_closed = f"""SELECT actor_id, action, COUNT(*) AS conversations FROM (
        SELECT DISTINCT actor_id, action, target FROM "audit_log"
        WHERE "bot_id" = {p(1)} AND "action" IN ('take', 'close') AND "actor_id" IS NOT NULL
          AND "created_at" >= {p(2)} AND "created_at" < {p(3)}) AS done GROUP BY actor_id, action"""
    replied, actions = await asyncio.gather(
        # COUNT(author_id), not COUNT(id): message_manager_idx holds author_id, so the index alone answers.
        Message.filter(bot_id=bot_id, author_kind=AuthorKind.MANAGER, author_id__not_isnull=True, **_in_period(days))
        .annotate(messages=Count("author_id")).group_by("author_id").values_list("author_id", "messages"),
        connections.get("default").execute_query_dict(taken_and_closed, [bot_id, days.lo, days.hi]))
    replies = dict(replied)
    done = {(int(row["actor_id"]), str(row["action"])): int(row["conversations"]) for row in actions}
    active = {int(user_id) for user_id in replies} | {actor for actor, _ in done}
    staff = await User.filter(Q(bot_id=bot_id), Q(role__in=[Role.MANAGER, Role.ADMIN]) | Q(id__in=active)).values(
        "id", "first_name", "last_name", "username")
    people = [ManagerActivity(
        user_id=int(user["id"]),
        name=f"{user['first_name']} {user['last_name']}".strip() or user["username"] or f"user {user['id']}",
        taken=done.get((int(user["id"]), "take"), 0), replies=int(replies.get(user["id"], 0)),
        closed=done.get((int(user["id"]), "close"), 0)) for user in staff]
    return tuple(sorted(people, key=lambda m: (-m.replies, -m.taken, -m.closed, m.name, m.user_id)))
