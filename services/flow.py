"""What happens to a conversation: one function per event, and the listeners that follow from it.

Each event is one call here: it stores the change and queues the work in one transaction, and
after the commit it publishes a `ConversationEvent`. What follows from an event lives in its
listeners, subscribed once at start (bot/app.py `subscribe_listeners`): the outbox wakes up, open
Mini App pages hear of it, a website visitor's widget shows it, and the audit log records staff
actions. The adapters (handlers/, miniapp/) call one function and render its result; none of them
wakes the outbox or tells the inbox itself (tests/test_architecture.py checks it).

Listeners of two kinds: `recorders` run inside the event's transaction (the audit entry is written
with the change or not at all), `listeners` run after the commit and are best effort (a bus that is
away never fails a change already made: whatever they show is in the database).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from models import (
    AuthorKind,
    Bot,
    Conversation,
    ConversationMode,
    ConversationStatus,
    HandoffReason,
    Message,
    MessageCopy,
    OutboxJob,
    User,
)
from services import conversations, handoff, outbox
from services.conversations import Customer, Incoming, Stored, announce_to_managers, customer_lane, topic_lane
from services.i18n import Translate
from services.limits import RateLimiter
from services.outbox import JobKind
from services.ports import Where
from services.render import escape, sanitize_html
from services.staff import WorkingHoursSource

log = logging.getLogger(__name__)


class EventKind(StrEnum):
    CUSTOMER_WROTE = "customer_wrote"
    CUSTOMER_EDITED = "customer_edited"
    TRANSCRIBED = "transcribed"  # the customer's voice was heard: its transcript is stored with it
    PERSON_REQUESTED = "person_requested"  # the customer asked for a person
    AI_HANDED_OFF = "ai_handed_off"  # the AI (or its failure, or the quota) gave the conversation to people
    ANSWERED = "answered"  # the customer's message got its outcome from the AI or the knowledge base
    NOTICE_SHOWN = "notice_shown"  # one of our notices reached the customer
    MANAGER_REPLIED = "manager_replied"
    NOTE_ADDED = "note_added"
    MANAGER_EDITED = "manager_edited"
    TAKEN = "taken"
    ASSIGNED = "assigned"  # a staff member gave it to a teammate
    GIVEN_BACK = "given_back"  # to the AI
    CLOSED = "closed"
    BANNED = "banned"
    UNBANNED = "unbanned"
    RATED = "rated"


# The events that change who answers the conversation (the widget shows it).
STATE_CHANGES = frozenset({EventKind.PERSON_REQUESTED, EventKind.AI_HANDED_OFF, EventKind.TAKEN,
                           EventKind.ASSIGNED, EventKind.GIVEN_BACK, EventKind.CLOSED})


@dataclass(frozen=True)
class ConversationEvent:
    kind: EventKind
    conversation: Conversation  # as the change left it
    actor: User | None = None  # who did it: a staff member, or the customer who rated
    message: Message | None = None  # the message it stored, if any
    client_id: str | None = None  # the widget's own id of the customer's message
    via: str = ""  # where staff did it: "telegram" or "app"
    cause: str = ""  # why, when it followed from another action (a close on a ban)
    details: dict[str, Any] = field(default_factory=dict)  # what the audit log keeps besides
    notice_queued: bool = False  # a notice tells the customer of it (and its channel shows the new state then)

    @property
    def bot_id(self) -> int:
        return int(self.conversation.bot_id)


Listener = Callable[[ConversationEvent], Awaitable[None]]


class ConversationEvents:
    """Who hears of each event: recorders inside its transaction, listeners after its commit."""

    def __init__(self) -> None:
        self._recorders: list[Listener] = []
        self._listeners: list[Listener] = []

    def record_with(self, recorder: Listener) -> None:
        """`recorder` runs inside the transaction of every event: its writes commit with the change."""
        self._recorders.append(recorder)

    def subscribe(self, listener: Listener) -> None:
        """`listener` hears of every event once it is committed; its failures are logged, never raised."""
        self._listeners.append(listener)

    @asynccontextmanager
    async def change(self) -> AsyncIterator[Changes]:
        """One transaction; the events emitted in it are published after it commits (and never if it fails)."""
        changes = Changes(self._recorders)
        async with in_transaction():
            yield changes
        for event in changes.events:
            await self.publish(event)

    async def publish(self, event: ConversationEvent) -> None:
        """Tell the listeners of an event whose change is committed already."""
        results = await asyncio.gather(*(listener(event) for listener in self._listeners), return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                log.error("a listener of %s on conversation %s failed: %r", event.kind, event.conversation.id, result)


class Changes:
    def __init__(self, recorders: list[Listener]) -> None:
        self._recorders = recorders
        self.events: list[ConversationEvent] = []

    async def emit(self, event: ConversationEvent) -> None:
        for recorder in self._recorders:
            await recorder(event)
        self.events.append(event)


# --- the customer's notices ---------------------------------------------------------------------------------


async def queue_notice(conversation: Conversation, notice: str, text: str = "", **params: Any) -> Message:
    """One of our notices to the customer: stored now, in its place among the conversation's messages, and
    shown by the customers' queue (`CustomerSide.customer_notice_job`) through the conversation's channel.

    Without `text`, the job writes it in the customer's language then (a desk notice: "X joined", "rate
    us"); a stored message with no text yet is shown nowhere.
    """
    message = await Message.create(bot_id=conversation.bot_id, conversation_id=conversation.id,
                                   author_kind=AuthorKind.SYSTEM, text=text,
                                   ai_meta={"source": "desk", "notice": notice})
    await outbox.enqueue(conversation.bot_id, JobKind.CUSTOMER_NOTICE,
                         {"conversation_id": conversation.id, "notice": notice, "params": params,
                          "message_id": message.id},
                         lane=customer_lane(conversation))
    return message


async def post_to_group(bot_id: int, where: Where, html: str) -> OutboxJob:
    """Queue a message for staff in the manager chat, ahead of the copies waiting there."""
    return await outbox.enqueue(bot_id, JobKind.GROUP_POST, {"chat_id": where.chat_id, "thread_id": where.thread_id,
                                                       "reply_to": where.reply_to, "html": html},
                                lane=f"group:{where.chat_id}", queue=outbox.MANAGERS, priority=0)


# --- what staff write -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Posted:
    """A message a manager wrote in the manager chat."""

    source_key: str
    chat_id: int
    telegram_message_id: int
    text: str = ""
    html: str = ""
    attachments: list[dict[str, Any]] = field(default_factory=list)
    replying_to: int | None = None  # the message in the manager chat it replies to, if any
    as_text: bool = False  # the customer gets `html`, not a copy of this message (a command: `/r NAME`)


@dataclass(frozen=True)
class Typed:
    """A reply or a note typed in the Mini App (plain text)."""

    text: str


MAX_APP_TEXT = 4000


@dataclass(frozen=True)
class Asked:
    """The customer asked for a person: their conversation, and whether this handed it to people."""

    conversation: Conversation
    handed: bool
    notice: str  # what they are told (stored and shown when handed; the adapter says it again otherwise)


class ConversationFlow:
    """The conversation events, each one call (see the module's docstring)."""

    def __init__(self, events: ConversationEvents, *, limiter: RateLimiter, default_locale: str,
                 translate: Translate, hours: WorkingHoursSource, wake: Callable[[], None] = lambda: None) -> None:
        self.events = events
        self.wake = wake  # the outbox: a job is waiting
        self.limiter = limiter
        self.default_locale = default_locale
        self.translate = translate
        self.hours = hours

    # --- the customer ---------------------------------------------------------------------------------

    async def customer_wrote(self, bot_id: int, who: Customer, incoming: Incoming, *, known: User | None = None,
                             client_id: str | None = None) -> Stored:
        """Stored with its answer job (or its copy for the managers); nothing for a re-delivery or a ban."""
        stored = await conversations.record_customer_message(bot_id, who, incoming, limiter=self.limiter,
                                                             default_locale=self.default_locale, known=known)
        if stored.message is not None:
            message = stored.message
            await self.events.publish(ConversationEvent(EventKind.CUSTOMER_WROTE, message.conversation,
                                                        actor=message.author, message=message, client_id=client_id))
        return stored

    async def customer_edited(self, bot_id: int, chat_id: int, telegram_message_id: int, text: str) -> bool:
        """An edit reaches the managers' copy; the AI's answer to the first version stands."""
        return await self._edited(bot_id, chat_id, telegram_message_id, text, EventKind.CUSTOMER_EDITED)

    async def ask_for_person(self, user: User, reason: HandoffReason = HandoffReason.ASKED_FOR_PERSON) -> Asked:
        """The customer's conversation goes to people; they are told when to expect one.

        The notice is stored with the handoff and shown through the conversation's channel, on every
        channel the same way. Asked again while people have it, nothing changes.
        """
        bot = await Bot.get(id=user.bot_id)  # fresh: working hours may have changed
        notice = await handoff.handoff_notice(bot, self.hours(bot), self.translate, str(user.language), reason)
        async with self.events.change() as changes:
            conversation = await conversations.open_conversation(user)
            if not await handoff.hand_off(conversation.id, reason):
                return Asked(await Conversation.get(id=conversation.id), False, notice)
            conversation = await Conversation.get(id=conversation.id)
            message = await queue_notice(conversation, "handoff", notice)
            await changes.emit(ConversationEvent(EventKind.PERSON_REQUESTED, conversation, actor=user,
                                                 message=message, details={"reason": reason.value},
                                                 notice_queued=True))
        return Asked(conversation, True, notice)

    async def rate(self, bot_id: int, customer: User, conversation_id: int, stars: int) -> bool:
        """The customer's rating of their own closed conversation, 1 to 5; they may change their mind."""
        if not 1 <= stars <= 5:
            return False
        async with self.events.change() as changes:
            updated = await Conversation.filter(bot_id=bot_id, id=conversation_id, user_id=customer.id,
                                                status=ConversationStatus.CLOSED).update(rating=stars)
            if updated:
                conversation = await Conversation.get(id=conversation_id)
                await changes.emit(ConversationEvent(EventKind.RATED, conversation, actor=customer,
                                                     details={"stars": stars}))
        return bool(updated)

    async def transcribed(self, message: Message) -> None:
        """The customer's voice was heard (its transcript is in `message.attachments`): stored with the message,
        and, once people have seen the conversation, posted in its topic under the voice's copy (queued after
        the copy, in the topic's lane, whichever of the two jobs ran first)."""
        async with self.events.change() as changes:
            await Message.filter(id=message.id).update(attachments=message.attachments)
            conversation = await Conversation.get(id=message.conversation_id)
            if conversation.handed_off_at is not None:
                await outbox.enqueue(conversation.bot_id, JobKind.TOPIC_TRANSCRIPT, {"message_id": message.id},
                                     lane=topic_lane(conversation), queue=outbox.MANAGERS, priority=1)
            await changes.emit(ConversationEvent(EventKind.TRANSCRIBED, conversation, message=message))

    # --- the AI's outcomes (from the outbox's answer job) -------------------------------------------------

    async def ai_handed_off(self, conversation: Conversation, reason: HandoffReason) -> Conversation:
        """The AI gave the conversation to people (it could not answer, failed, or the quota ran out)."""
        async with self.events.change() as changes:
            if await handoff.hand_off(conversation.id, reason):
                current = await Conversation.get(id=conversation.id)
                await changes.emit(ConversationEvent(EventKind.AI_HANDED_OFF, current,
                                                     details={"reason": reason.value}))
                return current
        return conversation

    async def answered(self, conversation: Conversation, message: Message | None = None) -> None:
        """The customer's message has its outcome, recorded already by the answer job."""
        await self.events.publish(ConversationEvent(EventKind.ANSWERED, conversation, message=message))

    async def notice_shown(self, conversation: Conversation, message: Message) -> None:
        await self.events.publish(ConversationEvent(EventKind.NOTICE_SHOWN, conversation, message=message))

    # --- staff -----------------------------------------------------------------------------------------------

    async def take(self, conversation: Conversation, staff: User, *, via: str = "telegram") -> bool:
        """Assign to `staff`; from the AI too (the manager took over). False if it was theirs already."""
        return await self._give(conversation, staff, staff, EventKind.TAKEN, via)

    async def assign(self, conversation: Conversation, staff: User, *, to: User, via: str = "app") -> bool:
        """`staff` gives the conversation to a teammate (the caller checked that they may act); the customer
        hears who joined, as on a take. False if it is closed, or the teammate's already."""
        return await self._give(conversation, staff, to, EventKind.ASSIGNED, via, {"to": to.id})

    async def _give(self, conversation: Conversation, staff: User, to: User, kind: EventKind, via: str,
                    details: dict[str, Any] | None = None) -> bool:
        async with self.events.change() as changes:
            current = await Conversation.select_for_update().get(id=conversation.id)
            if current.status == ConversationStatus.CLOSED or (
                    current.status == ConversationStatus.ASSIGNED and current.assignee_id == to.id):
                return False
            took_over = HandoffReason.MANAGER_TOOK_OVER if current.mode == ConversationMode.AI else None
            await handoff.give_to_people(current, took_over, assignee=to)
            await queue_notice(current, "joined", name=to.first_name)
            await changes.emit(ConversationEvent(kind, current, actor=staff, via=via, details=details or {},
                                                 notice_queued=True))
        _refresh(conversation, current)
        return True

    async def give_back(self, conversation: Conversation, staff: User, *, via: str = "telegram") -> bool:
        """Return to the AI: it answers the customer's next message."""
        async with self.events.change() as changes:
            current = await Conversation.select_for_update().get(id=conversation.id)
            if current.status == ConversationStatus.CLOSED or current.mode == ConversationMode.AI:
                return False
            current.mode, current.status, current.assignee = ConversationMode.AI, ConversationStatus.OPEN, None
            await current.save(update_fields=["mode", "status", "assignee_id"])
            await announce_to_managers(current, first=False)
            await queue_notice(current, "back_to_ai")
            await changes.emit(ConversationEvent(EventKind.GIVEN_BACK, current, actor=staff, via=via,
                                                 notice_queued=True))
        _refresh(conversation, current)
        return True

    async def close(self, conversation: Conversation, staff: User | None, *, via: str = "telegram",
                    ask_rating: bool = True, cause: str = "") -> bool:
        """Close; the customer is asked to rate it, and their next message starts a new conversation."""
        async with self.events.change() as changes:
            current = await Conversation.select_for_update().get(id=conversation.id)
            if current.status == ConversationStatus.CLOSED:
                return False
            current.status, current.closed_at = ConversationStatus.CLOSED, datetime.now(UTC)
            await current.save(update_fields=["status", "closed_at"])
            if current.handed_off_at is not None:
                await announce_to_managers(current, first=False)
            customer = await User.get(id=current.user_id)
            rating = ask_rating and bool(customer.preferences.get("rating_requests", True))
            if rating:
                await queue_notice(current, "rate")
            await changes.emit(ConversationEvent(EventKind.CLOSED, current, actor=staff, via=via, cause=cause,
                                                 notice_queued=rating))
        _refresh(conversation, current)
        return True

    async def set_banned(self, conversation: Conversation, staff: User, banned: bool, *,
                         via: str = "telegram") -> bool:
        """A banned customer's messages are ignored: not stored, not answered, not shown to staff."""
        customer = conversation.user
        if customer.banned == banned:
            return False
        async with self.events.change() as changes:
            await User.filter(id=customer.id).update(banned=banned)
            customer.banned = banned
            await changes.emit(ConversationEvent(EventKind.BANNED if banned else EventKind.UNBANNED, conversation,
                                                 actor=staff, via=via))
        if banned:
            await self.close(conversation, staff, via=via, ask_rating=False, cause="ban")
        return True

    async def manager_wrote(self, conversation: Conversation, staff: User, written: Posted | Typed, *,
                            note: bool) -> Message | None:
        """A manager's reply (copied to the customer) or an internal note, from a topic or the Mini App.

        A manager replying in a waiting conversation takes it; in one the AI has, takes it over, so the
        customer hears who joined before the reply. What is typed in the app is copied into the topic
        too, so the managers in Telegram see what was said. None for a re-delivery.
        """
        if isinstance(written, Typed):
            _check(written)  # before taking the conversation: a reply refused changes nothing
        if not note and (conversation.mode == ConversationMode.AI or conversation.status == ConversationStatus.WAITING):
            await self.take(conversation, staff, via="telegram" if isinstance(written, Posted) else "app")
        try:
            async with self.events.change() as changes:
                if isinstance(written, Posted):
                    message = await _store_posted(conversation, staff, written, note=note)
                else:
                    message = await _store_typed(conversation, staff, written, note=note)
                if not note:
                    now = datetime.now(UTC)
                    await Conversation.filter(id=conversation.id, first_manager_reply_at=None).update(
                        first_manager_reply_at=now)
                    await Conversation.filter(id=conversation.id).update(last_message_at=now)
                await changes.emit(ConversationEvent(
                    EventKind.NOTE_ADDED if note else EventKind.MANAGER_REPLIED, conversation, actor=staff,
                    message=message, via="telegram" if isinstance(written, Posted) else "app"))
        except IntegrityError:
            if isinstance(written, Posted) and await Message.exists(bot_id=conversation.bot_id,
                                                                    source_key=written.source_key):
                return None
            raise
        message.author = staff
        return message

    async def tell_staff(self, bot_id: int, where: Where, html: str) -> None:
        """Our answer to staff in the manager chat (a command's reply), ahead of the copies waiting there."""
        await post_to_group(bot_id, where, html)
        self.wake()

    async def manager_edited(self, bot_id: int, chat_id: int, telegram_message_id: int, html: str) -> bool:
        return await self._edited(bot_id, chat_id, telegram_message_id, html, EventKind.MANAGER_EDITED)

    async def _edited(self, bot_id: int, chat_id: int, telegram_message_id: int, text: str,
                      kind: EventKind) -> bool:
        """Someone edited a message we keep: store the new text and queue the edit of its copies."""
        original = await MessageCopy.filter(bot_id=bot_id, chat_id=chat_id, telegram_message_id=telegram_message_id,
                                            original=True).first().prefetch_related("message__conversation")
        if original is None:
            return False
        message = original.message
        if message.author_kind == AuthorKind.MANAGER:
            text = sanitize_html(text)  # as when it was first written
        async with self.events.change() as changes:
            await Message.filter(id=message.id).update(text=text)
            message.text = text
            if message.author_kind == AuthorKind.CUSTOMER:
                await outbox.enqueue(bot_id, JobKind.TOPIC_EDIT, {"message_id": message.id},
                                     lane=topic_lane(message.conversation), queue=outbox.MANAGERS, priority=1)
            elif message.author_kind == AuthorKind.MANAGER:
                await outbox.enqueue(bot_id, JobKind.CUSTOMER_EDIT, {"message_id": message.id},
                                     lane=customer_lane(message.conversation))
            await changes.emit(ConversationEvent(kind, message.conversation, message=message))
        return True


def _refresh(conversation: Conversation, current: Conversation) -> None:
    for name in ("mode", "status", "assignee_id", "handoff_reason", "handed_off_at", "closed_at"):
        setattr(conversation, name, getattr(current, name))


def _stored_html(posted: Posted) -> str:
    """A manager's message is kept as Telegram HTML, reduced to the tags every place that shows it allows."""
    return sanitize_html(posted.html) if posted.html else posted.text


async def _store_posted(conversation: Conversation, staff: User, posted: Posted, *, note: bool) -> Message:
    bot_id: int = conversation.bot_id
    message = await Message.create(bot_id=bot_id, conversation_id=conversation.id,
                                   author_kind=AuthorKind.NOTE if note else AuthorKind.MANAGER, author=staff,
                                   text=_stored_html(posted), attachments=posted.attachments,
                                   source_key=posted.source_key)
    if not posted.as_text:  # the message in the chat is what the customer gets, and its edits theirs
        await MessageCopy.create(bot_id=bot_id, message=message, chat_id=posted.chat_id,
                                 telegram_message_id=posted.telegram_message_id, original=True)
    if not note:
        quoted = await _customer_side_of(conversation, posted)
        await outbox.enqueue(bot_id, JobKind.TO_CUSTOMER, {"message_id": message.id, "reply_to": quoted},
                             lane=customer_lane(conversation))
    return message


def _check(typed: Typed) -> None:
    text = typed.text.strip()
    if not text:
        raise ValueError("empty")
    if len(text) > MAX_APP_TEXT:
        raise ValueError("too_long")


async def _store_typed(conversation: Conversation, staff: User, typed: Typed, *, note: bool) -> Message:
    text = typed.text.strip()
    bot_id: int = conversation.bot_id
    message = await Message.create(bot_id=bot_id, conversation_id=conversation.id,
                                   author_kind=AuthorKind.NOTE if note else AuthorKind.MANAGER, author=staff,
                                   # Like everywhere else: notes are plain text, staff replies Telegram HTML.
                                   text=text if note else escape(text), ai_meta={"source": "app"})
    if not note:
        await outbox.enqueue(bot_id, JobKind.TO_CUSTOMER, {"message_id": message.id}, lane=customer_lane(conversation))
    if conversation.handed_off_at is not None or not note:
        await outbox.enqueue(bot_id, JobKind.TOPIC_COPY, {"message_id": message.id}, lane=topic_lane(conversation),
                             queue=outbox.MANAGERS, priority=1)
    return message


async def _customer_side_of(conversation: Conversation, posted: Posted) -> int | None:
    """A manager replying to a message in the topic replies to the same message in the customer's chat (where
    the customer's chat has copies of messages: a widget has none, and the reply quotes nothing there)."""
    if posted.replying_to is None:
        return None
    replied = await MessageCopy.filter(bot_id=conversation.bot_id, chat_id=posted.chat_id,
                                       telegram_message_id=posted.replying_to).first()
    if replied is None:
        return None
    there = await MessageCopy.filter(message_id=replied.message_id,
                                     chat_id=conversation.user.telegram_id).first()
    return int(there.telegram_message_id) if there is not None else None
