"""Customers, their conversations and their messages: the one place inbound messages are stored."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F, Q
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from models import (
    AuthorKind,
    Bot,
    Channel,
    Conversation,
    ConversationMode,
    ConversationStatus,
    Message,
    MessageCopy,
    StoredFile,
    Usage,
    UsageSlot,
    User,
)
from services import albums, outbox, transcription
from services.files import NewFile, stored_attachment
from services.i18n import pick_locale
from services.knowledge import question_key, words
from services.limits import RateLimiter, Verdict
from services.outbox import JobKind

MAX_TEXT_CHARS = 4096
LAST_SEEN_PRECISION = timedelta(hours=1)
QUESTION_CHARS = 256  # as much of a conversation's question as is kept beside it (for the analytics)
MICRODOLLAR = Decimal("0.000001")  # usage keeps costs to the micro-dollar


@dataclass(frozen=True)
class Customer:
    """Who wrote, as the channel tells it."""

    telegram_id: int | None
    first_name: str = ""
    last_name: str = ""
    username: str = ""
    language_code: str = ""
    widget_visitor_id: str | None = None  # a website visitor (telegram_id is None then)

    def rate_key(self, bot_id: int) -> str:
        """Their one key in the customer rate limiter, whatever they do (write, /improve) and wherever."""
        who = f"tg:{self.telegram_id}" if self.widget_visitor_id is None else f"w:{self.widget_visitor_id}"
        return f"{bot_id}:{who}"

    def lookup(self) -> dict[str, Any]:
        """How their row is found: by Telegram id, or by widget visitor id."""
        if self.widget_visitor_id is not None:
            return {"widget_visitor_id": self.widget_visitor_id}
        return {"telegram_id": self.telegram_id}


@dataclass(frozen=True)
class Incoming:
    source_key: str  # the Telegram update id or the widget's client message id
    text: str = ""
    attachments: list[dict[str, Any]] = field(default_factory=list)
    telegram_message_id: int | None = None  # in the customer's private chat
    files: list[NewFile] = field(default_factory=list)  # a widget visitor's upload: stored with the message
    album: str = ""  # Telegram's media_group_id: the items of one album are stored as one message (services/albums)


@dataclass(frozen=True)
class Stored:
    message: Message | None  # None: a re-delivery of something already stored, or from a banned customer

    @property
    def duplicate(self) -> bool:
        return self.message is None


IGNORED = Stored(None)


UNCONFIGURED_BOT_ID = 0  # the tenant of what was set up (knowledge, persona) before BOT_TOKEN was known


async def ensure_bot(telegram_id: int, username: str = "") -> Bot:
    """The tenant row of this bot. The first real bot adopts what was set up before it had a token."""
    if telegram_id != UNCONFIGURED_BOT_ID and not await Bot.exists(telegram_id=telegram_id):
        await Bot.filter(telegram_id=UNCONFIGURED_BOT_ID).update(telegram_id=telegram_id)
    bot, _ = await Bot.get_or_create(telegram_id=telegram_id, defaults={"username": username})
    if username and bot.username != username:
        bot.username = username
        await bot.save(update_fields=["username"])
    return bot


async def find_customer(bot_id: int, telegram_id: int) -> User | None:
    return await User.get_or_none(bot_id=bot_id, telegram_id=telegram_id)


async def register_customer(bot_id: int, who: Customer, default_locale: str) -> User:
    """Create the customer on first contact, refresh their names later; the language stays theirs."""
    user = await User.get_or_none(bot_id=bot_id, **who.lookup())
    if user is None:
        # INSERT ... ON CONFLICT DO NOTHING: a concurrent first message from the same person must
        # not abort the surrounding transaction (PostgreSQL aborts it on a unique violation).
        await User.bulk_create([User(
            bot_id=bot_id, telegram_id=who.telegram_id, widget_visitor_id=who.widget_visitor_id,
            first_name=who.first_name[:256], last_name=who.last_name[:256], username=who.username[:64],
            language=pick_locale(who.language_code, default=default_locale))], ignore_conflicts=True)
        return await User.get(bot_id=bot_id, **who.lookup())
    return await refresh_customer(user, who)


async def refresh_customer(user: User, who: Customer) -> User:
    """Bring a known customer's names up to date; written only when something changed (or an hour went by)."""
    if not _changed(user, who):
        return user
    user.first_name, user.last_name, user.username = who.first_name[:256], who.last_name[:256], who.username[:64]
    user.last_seen_at = datetime.now(UTC)
    user.blocked_bot = False  # they wrote to us, so they have not blocked the bot
    await user.save(update_fields=["first_name", "last_name", "username", "last_seen_at", "blocked_bot"])
    return user


async def set_language(user: User, locale: str) -> None:
    user.language = locale
    await user.save(update_fields=["language"])


async def set_blocked(bot_id: int, telegram_id: int, blocked: bool = True) -> None:
    """Whether the customer blocked the bot; nothing is sent to them while they have."""
    await User.filter(bot_id=bot_id, telegram_id=telegram_id).update(blocked_bot=blocked)


def topic_lane(conversation: Conversation) -> str:
    """Everything posted into one conversation's place in the manager chat runs in this lane, in order."""
    return f"topic:{conversation.uuid}"


def customer_lane(conversation: Conversation) -> str:
    """Everything sent to the customer of one conversation runs in this lane, in order."""
    return str(conversation.uuid)


def voice_lane(conversation: Conversation) -> str:
    """The customer's voice, heard for the managers while they hold the conversation, one at a time."""
    return f"voice:{conversation.uuid}"


def _not_closed(user: User) -> QuerySet[Conversation]:
    # `status__not` rather than .exclude(): equivalent (status is never null), and on the ingest hot
    # path Tortoise builds it in two thirds of the time.
    return Conversation.filter(user_id=user.id, status__not=ConversationStatus.CLOSED)


async def open_conversation(user: User, text: str = "") -> Conversation:
    """The customer's current conversation, or a new one (opened by `text`, if it has words)."""
    conversation = await _not_closed(user).order_by("-id").first()
    if conversation is None:
        conversation = await _new_conversation(user, text)
    return conversation


def question_of(text: str) -> tuple[str, str]:
    """What a conversation keeps of the customer message that is its question: the wording (shortened)
    and the digest of its words; empty for a message without words (a photo, an emoji)."""
    if not words(text):
        return "", ""
    wording = " ".join(text.split())
    if len(wording) > QUESTION_CHARS:
        wording = wording[:QUESTION_CHARS - 1] + "…"
    return wording, question_key(text)


async def _new_conversation(user: User, text: str = "") -> Conversation:
    channel = Channel.TELEGRAM if user.widget_visitor_id is None else Channel.WIDGET
    question, key = question_of(text)
    return await Conversation.create(uuid=uuid.uuid4(), bot_id=user.bot_id, user=user,
                                     channel=channel, question=question, question_key=key)


async def _note_question(conversation: Conversation, text: str) -> None:
    """A conversation opened without words (a photo, /new) gets its question from the first message with some."""
    question, key = question_of(text)
    if key:
        await Conversation.filter(id=conversation.id, question_key="").update(question=question, question_key=key)


async def current_conversation(user: User) -> Conversation | None:
    """The customer's open conversation, if any (nothing is created)."""
    return await _not_closed(user).order_by("-id").first()


async def start_new_conversation(user: User) -> Conversation:
    """Close what is open; the next message starts afresh, without the old history."""
    async with in_transaction():
        open_ones = await _not_closed(user)
        await _not_closed(user).update(status=ConversationStatus.CLOSED, closed_at=datetime.now(UTC))
        for closed in open_ones:
            if closed.handed_off_at is not None:
                closed.status = ConversationStatus.CLOSED
                await announce_to_managers(closed, first=False)  # its topic shows it closed
        return await _new_conversation(user)


async def announce_to_managers(conversation: Conversation, *, first: bool) -> None:
    """Queue the manager chat's view of a change; call inside the transaction that made it."""
    bot_id: int = conversation.bot_id
    if first:
        # The header card shows the history up to here; later messages are copied one by one.
        last = await Message.filter(conversation_id=conversation.id).order_by("-id").first().values_list(
            "id", flat=True)
        await outbox.enqueue(bot_id, JobKind.OPEN_TOPIC,
                             {"conversation_id": conversation.id, "upto_message_id": last or 0},
                             lane=topic_lane(conversation), queue=outbox.MANAGERS, priority=1)
    else:
        await outbox.enqueue(bot_id, JobKind.TOPIC_STATE, {"conversation_id": conversation.id},
                             lane=topic_lane(conversation), queue=outbox.MANAGERS, priority=1)


async def record_customer_message(bot_id: int, who: Customer, incoming: Incoming, *, limiter: RateLimiter,
                                  default_locale: str, known: User | None = None) -> Stored:
    """Store the message and the job that answers it in one transaction.

    This is the webhook's hot path, so it does the least it can: the customer row is written
    only when new or changed, and counters and timestamps are left to the worker. A re-delivery
    (same source key) stores nothing and returns a duplicate. A customer over their rate gets
    their message stored and one "slow down" notice, not one answer each. Once a conversation has
    been handed to people, each message is also queued for its topic in the manager chat; while
    people have it, the AI gets no job at all. The conversation keeps its question (its first message
    with words) for the analytics, in its own INSERT when this message opens it.
    """
    if known is not None and known.banned:
        return IGNORED  # a banned customer reaches no one, and costs nothing
    if incoming.telegram_message_id is not None and incoming.attachments:  # where its media can be copied from
        incoming = replace(incoming, attachments=[{**a, "telegram_message_id": incoming.telegram_message_id}
                                                  for a in incoming.attachments])
    if not incoming.album or who.telegram_id is None or not incoming.attachments:
        verdict = await limiter.check(who.rate_key(bot_id))
        return await _store(bot_id, who, incoming, verdict, default_locale, known)
    # An album's item: appended to the album's message, or its first item creates that message. The album
    # is one message to the rate too: its later items take nothing from the customer's allowance.
    key = albums.album_key(who.telegram_id, incoming.album)
    verdict = Verdict.ALLOW if await albums.is_open(bot_id, key) else await limiter.check(who.rate_key(bot_id))
    incoming = replace(incoming, attachments=[albums.item(a, incoming.text) for a in incoming.attachments])
    stored = await _store(bot_id, who, incoming, verdict, default_locale, known, album_key=key)
    if stored.duplicate:  # or another instance stored the album's first item meanwhile: this one is appended now
        stored = await _store(bot_id, who, incoming, verdict, default_locale, known, album_key=key)
    return stored


async def _store(bot_id: int, who: Customer, incoming: Incoming, verdict: Verdict, default_locale: str,
                 known: User | None, *, album_key: str | None = None) -> Stored:
    """The message and its jobs in one transaction. An album's item (`album_key`) is appended to the album's
    message in the same transaction that would otherwise create it: atomic on SQLite (one transaction at a
    time), and on PostgreSQL the album's unique source key makes the loser of a race fail and come again."""
    text = incoming.text[:MAX_TEXT_CHARS * 4]
    source_key = incoming.source_key
    try:
        async with in_transaction():
            if album_key is not None:
                added, album = await albums.add_item(bot_id, album_key, incoming.attachments[0])
                if added == albums.Added.DUPLICATE:
                    return IGNORED
                if added == albums.Added.APPENDED:
                    assert album is not None
                    await _album_item_to_managers(album, incoming, who)
                    await album.fetch_related("conversation", "author")  # what its event names
                    return Stored(album)
                if added == albums.Added.NEW_ALBUM:
                    source_key = album_key
            user = await (refresh_customer(known, who) if known is not None
                          else register_customer(bot_id, who, default_locale))
            conversation = await open_conversation(user, text)
            attachments = [*incoming.attachments, *[await _store_file(conversation, new) for new in incoming.files]]
            message = await Message.create(
                bot_id=bot_id, conversation=conversation, author_kind=AuthorKind.CUSTOMER, author=user,
                text=text, attachments=attachments, source_key=source_key,
                ai_meta={"album": albums.first_state()} if source_key == album_key else {})
            if not conversation.question_key:
                await _note_question(conversation, text)
            with_ai = conversation.mode == ConversationMode.AI
            job_kind = {Verdict.ALLOW: JobKind.ANSWER, Verdict.WARN: JobKind.SLOW_DOWN}.get(verdict)
            # People have it, but no manager chat hears of it (Telegram off, or no /setup yet): the answer job
            # still gives the message its outcome (the customer is told it waits in the inbox) and its bookkeeping.
            inbox_only = not with_ai and not await _has_manager_chat(bot_id)
            if inbox_only:
                job_kind = JobKind.ANSWER
            # A voice is heard while people have it too (its answer job transcribes it for them, and says nothing).
            heard = not with_ai and verdict == Verdict.ALLOW and transcription.spoken(incoming.attachments) is not None
            answered = with_ai or inbox_only or heard
            # Only heard, it says nothing to the customer: it runs beside their lane, so no reply of the
            # managers' waits for a transcription.
            lane = voice_lane(conversation) if heard and not inbox_only else customer_lane(conversation)
            if job_kind is not None and answered:
                await outbox.enqueue(bot_id, job_kind, {"message_id": message.id}, lane=lane)
            if conversation.handed_off_at is not None:
                # Managers see every message from the first handoff on, whatever the rate.
                await _to_managers(conversation, message, incoming, who, bookkeeping=not answered)
    except IntegrityError:
        if await Message.exists(bot_id=bot_id, source_key=source_key):
            return Stored(None)  # a re-delivery of a message stored before (or an album's, stored meanwhile)
        raise
    return Stored(message)


async def _store_file(conversation: Conversation, new: NewFile) -> dict[str, Any]:
    stored = await StoredFile.create(bot_id=conversation.bot_id, conversation=conversation, name=new.name,
                                     mime_type=new.mime_type, size=len(new.content), content=new.content)
    return stored_attachment(stored, new.kind)


async def _album_item_to_managers(album: Message, incoming: Incoming, who: Customer) -> None:
    """An item appended to an album the managers see: its Telegram message points at the album's message too
    (a caption edited there reaches the topic's copy); the album's copy job sends every item."""
    if incoming.telegram_message_id is None or who.telegram_id is None:
        return
    if await MessageCopy.filter(bot_id=album.bot_id, message_id=album.id, original=True).exists():
        await MessageCopy.bulk_create([MessageCopy(bot_id=album.bot_id, message_id=album.id, chat_id=who.telegram_id,
                                                   telegram_message_id=incoming.telegram_message_id, original=True)],
                                      ignore_conflicts=True)


async def show_to_managers(message: Message, customer: User) -> None:
    """A message the AI handed to people because of what it carries (photos it cannot see, a file it cannot
    read): copied into the conversation's topic after its header card, which only names it, so that the
    people see it too."""
    conversation = await Conversation.get(id=message.conversation_id)
    async with in_transaction():
        if customer.telegram_id is not None:
            originals = {a.get("telegram_message_id") for a in message.attachments} - {None}
            await MessageCopy.bulk_create([MessageCopy(bot_id=message.bot_id, message_id=message.id,
                                                       chat_id=customer.telegram_id, telegram_message_id=telegram_id,
                                                       original=True) for telegram_id in originals],
                                          ignore_conflicts=True)
        await outbox.enqueue(message.bot_id, JobKind.TOPIC_COPY, {"message_id": message.id},
                             lane=topic_lane(conversation), queue=outbox.MANAGERS, priority=1)


async def _has_manager_chat(bot_id: int) -> bool:
    return await Bot.filter(id=bot_id, manager_chat_id__isnull=False).exists()


async def _to_managers(conversation: Conversation, message: Message, incoming: Incoming, who: Customer, *,
                       bookkeeping: bool) -> None:
    if incoming.telegram_message_id is not None and who.telegram_id is not None:
        await MessageCopy.create(bot_id=message.bot_id, message=message, chat_id=who.telegram_id,
                                 telegram_message_id=incoming.telegram_message_id, original=True)
    await outbox.enqueue(message.bot_id, JobKind.TOPIC_COPY, {"message_id": message.id, "bookkeeping": bookkeeping},
                         lane=topic_lane(conversation), queue=outbox.MANAGERS, priority=1)


def _changed(user: User, who: Customer) -> bool:
    names = (who.first_name[:256], who.last_name[:256], who.username[:64])
    return names != (user.first_name, user.last_name, user.username) or user.blocked_bot or \
        datetime.now(UTC) - user.last_seen_at >= LAST_SEEN_PRECISION


async def note_customer_message(message: Message) -> None:
    """The bookkeeping the hot path leaves to the worker: the conversation's time, today's count."""
    await Conversation.filter(id=message.conversation_id).update(
        last_message_at=message.created_at)
    assert message.author_id is not None  # a customer's message: its author is the customer
    await add_usage(message.bot_id, message.author_id, messages=1)


async def add_usage(bot_id: int, user_id: int, *, messages: int = 0, ai_messages: int = 0, tokens_in: int = 0,
                    tokens_out: int = 0, cost: float = 0.0) -> None:
    """Add to the customer's counters for today (the row is created on first use), and the AI's part
    to the bot's current quarter of an hour (what the analytics count by day in any time zone).

    The cost is rounded here, half up as PostgreSQL's numeric(12, 6) rounds: SQLite keeps floats, and
    only figures rounded alike add up alike on both.
    """
    now = datetime.now(UTC)
    dollars = Decimal(str(cost)).quantize(MICRODOLLAR, ROUND_HALF_UP)
    if ai_messages or tokens_in or tokens_out or dollars:
        slot = now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0)
        await add_counters(UsageSlot, {"bot_id": bot_id, "slot": slot}, ai_messages=ai_messages,
                           tokens_in=tokens_in, tokens_out=tokens_out, cost=dollars)
    await add_counters(Usage, {"user_id": user_id, "day": now.date()}, {"bot_id": bot_id}, messages=messages,
                       ai_messages=ai_messages, tokens_in=tokens_in, tokens_out=tokens_out, cost=dollars)


async def add_counters(model: type[Usage] | type[UsageSlot], key: dict[str, Any], more: dict[str, Any] | None = None,
               **amounts: int | Decimal) -> None:
    """Add `amounts` to the counters of the row with `key`, creating it on first use."""
    increments = {name: F(name) + amount for name, amount in amounts.items()}
    if await model.filter(**key).update(**increments):
        return
    try:
        fields: dict[str, Any] = {**key, **(more or {}), **amounts}
        await model.create(**fields)
    except IntegrityError:  # created meanwhile by another worker
        await model.filter(**key).update(**increments)


async def ai_messages_today(user_id: int, day: date | None = None) -> int:
    usage = await Usage.get_or_none(user_id=user_id, day=day or datetime.now(UTC).date())
    return usage.ai_messages if usage else 0


async def history(conversation_id: int, before_id: int | None = None, limit: int = 40) -> list[Message]:
    """The customer-visible messages up to `before_id`, oldest first, each answer after its question.

    Answers are written after the customer's later messages were stored (they queue while the
    AI writes), so an answer's place is after the message it replies to, not its own id.
    """
    query = Message.filter(conversation_id=conversation_id,
                           author_kind__in=[AuthorKind.CUSTOMER, AuthorKind.AI, AuthorKind.MANAGER])
    if before_id is not None:
        # In SQL, not after the LIMIT: many messages newer than `before_id` must not crowd out its past.
        query = query.filter(Q(id__lt=before_id) | Q(reply_to_id__lt=before_id))
    recent = await query.order_by("-id").limit(limit * 2)

    def place(message: Message) -> tuple[int, int, int]:
        replied = message.reply_to_id
        return (replied, 1, message.id) if replied is not None else (message.id, 0, message.id)

    ordered = sorted(recent, key=place)
    if before_id is not None:
        ordered = [m for m in ordered if place(m)[0] < before_id]
    return ordered[-limit:]


async def customer_of(conversation: Conversation) -> User:
    """The conversation's customer, from what was loaded with it when it was."""
    user = conversation.user
    if isinstance(user, User):
        return user
    return await User.get(id=conversation.user_id)
