"""What staff do to a conversation, and what reaches the customer because of it.

Every action is one transaction: the change, its audit entry, and the jobs that show it (the
customer's notice on the customers' queue, the topic's new state on the managers' queue).
A Telegram command, a header-card button and (later) the Mini App call the same functions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from models import (
    AuthorKind,
    Conversation,
    ConversationMode,
    ConversationStatus,
    HandoffReason,
    Message,
    MessageCopy,
    OutboxJob,
    User,
)
from services import conversations, outbox
from services.audit import audit as audit  # staff actions elsewhere log through `desk.audit` too
from services.conversations import announce_to_managers, customer_lane, topic_lane
from services.handoff import give_to_people
from services.i18n import N_, Translate
from services.inbox import InboxFeed
from services.ports import Button, MessageGone, Messenger, OutgoingText, RecipientBlocked, Where
from services.render import escape, sanitize_html
from services.staff import load_manager_chat
from services.widget import WidgetLive

log = logging.getLogger(__name__)

JOINED = N_("{name} from our team has joined the conversation.")
BACK_TO_AI = N_("You're talking to our assistant again. Ask anything, or send /human to reach a person.")
RATE = N_("This conversation is closed. Thank you for writing to us! How would you rate it?")
RATED = N_("Thank you for your rating!")
CUSTOMER_BLOCKED = N_("⚠️ The customer has blocked the bot: this message was not delivered.")


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


async def _notify_customer(conversation: Conversation, notice: str, **params: Any) -> None:
    payload: dict[str, Any] = {"conversation_id": conversation.id, "notice": notice, "params": params}
    if await User.filter(id=conversation.user_id, widget_visitor_id__not_isnull=True).exists():  # type: ignore[attr-defined]
        # A widget shows stored messages in id order: the notice takes its place now, before the
        # manager's message that caused it, and the job writes its text in the visitor's language.
        placeholder = await Message.create(bot_id=conversation.bot_id, conversation_id=conversation.id,  # type: ignore[attr-defined]
                                           author_kind=AuthorKind.SYSTEM, text="",
                                           ai_meta={"source": "desk", "notice": notice})
        payload["message_id"] = placeholder.id
    await outbox.enqueue(conversation.bot_id, "customer_notice", payload,  # type: ignore[attr-defined]
                         lane=customer_lane(conversation))


# --- finding the conversation a manager means ----------------------------------------------------


async def by_topic(bot_id: int, thread_id: int) -> Conversation | None:
    return await Conversation.filter(bot_id=bot_id, manager_topic_id=thread_id).order_by("-id").first(
        ).prefetch_related("user")


async def by_reply(bot_id: int, chat_id: int, replied_message_id: int) -> Conversation | None:
    """In a group without topics: the conversation of the bot's message a manager replied to."""
    copy = await MessageCopy.filter(bot_id=bot_id, chat_id=chat_id, telegram_message_id=replied_message_id).first(
        ).prefetch_related("message__conversation__user")
    if copy is not None:
        return copy.message.conversation
    return await Conversation.filter(bot_id=bot_id, manager_card_id=replied_message_id).first(
        ).prefetch_related("user")


async def by_id(bot_id: int, conversation_id: int) -> Conversation | None:
    return await Conversation.get_or_none(bot_id=bot_id, id=conversation_id).prefetch_related("user")


# --- actions ----------------------------------------------------------------------------------------


async def take(conversation: Conversation, staff: User) -> bool:
    """Assign to `staff`; from the AI too (the manager took over). False if it was theirs already."""
    async with in_transaction():
        current = await Conversation.get(id=conversation.id)
        if current.status == ConversationStatus.CLOSED or (
                current.status == ConversationStatus.ASSIGNED and current.assignee_id == staff.id):  # type: ignore[attr-defined]
            return False
        took_over = HandoffReason.MANAGER_TOOK_OVER if current.mode == ConversationMode.AI else None
        await give_to_people(current, took_over, assignee=staff)
        await _notify_customer(current, "joined", name=staff.first_name)
        await audit(current.bot_id, staff, "take", str(current.uuid))  # type: ignore[attr-defined]
    _refresh(conversation, current)
    return True


async def give_back(conversation: Conversation, staff: User) -> bool:
    """Return to the AI: it answers the customer's next message."""
    async with in_transaction():
        current = await Conversation.get(id=conversation.id)
        if current.status == ConversationStatus.CLOSED or current.mode == ConversationMode.AI:
            return False
        current.mode, current.status, current.assignee = ConversationMode.AI, ConversationStatus.OPEN, None
        await current.save(update_fields=["mode", "status", "assignee_id"])
        await announce_to_managers(current, first=False)
        await _notify_customer(current, "back_to_ai")
        await audit(current.bot_id, staff, "return_to_ai", str(current.uuid))  # type: ignore[attr-defined]
    _refresh(conversation, current)
    return True


async def close(conversation: Conversation, staff: User | None, *, ask_rating: bool = True,
                action: str = "close") -> bool:
    """Close; the customer is asked to rate it, and their next message starts a new conversation."""
    async with in_transaction():
        current = await Conversation.get(id=conversation.id)
        if current.status == ConversationStatus.CLOSED:
            return False
        current.status, current.closed_at = ConversationStatus.CLOSED, datetime.now(UTC)
        await current.save(update_fields=["status", "closed_at"])
        if current.handed_off_at is not None:
            await announce_to_managers(current, first=False)
        customer = await User.get(id=current.user_id)  # type: ignore[attr-defined]
        if ask_rating and customer.preferences.get("rating_requests", True):
            await _notify_customer(current, "rate")
        await audit(current.bot_id, staff, action, str(current.uuid))  # type: ignore[attr-defined]
    _refresh(conversation, current)
    return True


async def set_banned(conversation: Conversation, staff: User, banned: bool) -> bool:
    """A banned customer's messages are ignored: not stored, not answered, not shown to staff."""
    customer = conversation.user
    if customer.banned == banned:
        return False
    async with in_transaction():
        await User.filter(id=customer.id).update(banned=banned)
        customer.banned = banned
        await audit(customer.bot_id, staff, "ban" if banned else "unban", str(customer.id),  # type: ignore[attr-defined]
                    conversation=str(conversation.uuid))
    if banned:
        await close(conversation, staff, ask_rating=False, action="close_on_ban")
    return True


async def rate(bot_id: int, customer: User, conversation_id: int, stars: int) -> bool:
    """The customer's rating of their own closed conversation, 1 to 5; they may change their mind."""
    if not 1 <= stars <= 5:
        return False
    updated = await Conversation.filter(bot_id=bot_id, id=conversation_id, user_id=customer.id,
                                        status=ConversationStatus.CLOSED).update(rating=stars)
    if updated:
        await audit(bot_id, customer, "rate", str(conversation_id), stars=stars)
    return bool(updated)


def _refresh(conversation: Conversation, current: Conversation) -> None:
    for name in ("mode", "status", "assignee_id", "handoff_reason", "handed_off_at", "closed_at"):
        setattr(conversation, name, getattr(current, name))


# --- what managers write --------------------------------------------------------------------------


def _stored_html(posted: Posted) -> str:
    """A manager's message is kept as Telegram HTML, reduced to the tags every place that shows it allows."""
    return sanitize_html(posted.html) if posted.html else posted.text


async def record_manager_message(conversation: Conversation, staff: User, posted: Posted, *, note: bool,
                                 live: WidgetLive | None = None) -> bool:
    """Store a manager's message and the job that copies it to the customer (not for a note).

    A manager writing in a waiting conversation takes it; in one the AI has, takes it over. A
    website visitor's open widget is shown the message at once (`live`); the job shows it again
    if this instance dies first, and the widget keeps one copy per id. Returns False for a
    re-delivery.
    """
    kind = AuthorKind.NOTE if note else AuthorKind.MANAGER
    bot_id: int = conversation.bot_id  # type: ignore[attr-defined]
    if not note and (conversation.mode == ConversationMode.AI or conversation.status == ConversationStatus.WAITING):
        await take(conversation, staff)  # first, so the customer hears who joined before the reply
    try:
        async with in_transaction():
            message = await Message.create(bot_id=bot_id, conversation_id=conversation.id, author_kind=kind,
                                           author=staff, text=_stored_html(posted),
                                           attachments=posted.attachments, source_key=posted.source_key)
            await MessageCopy.create(bot_id=bot_id, message=message, chat_id=posted.chat_id,
                                     telegram_message_id=posted.telegram_message_id, original=True)
            if note:
                await audit(bot_id, staff, "note", str(conversation.uuid))
                return True
            quoted = await _customer_side_of(conversation, posted)
            await outbox.enqueue(bot_id, "to_customer", {"message_id": message.id, "reply_to": quoted},
                                 lane=customer_lane(conversation))
            now = datetime.now(UTC)
            await Conversation.filter(id=conversation.id, first_manager_reply_at=None).update(
                first_manager_reply_at=now)
            await Conversation.filter(id=conversation.id).update(last_message_at=now)
    except IntegrityError:
        if await Message.exists(bot_id=bot_id, source_key=posted.source_key):
            return False
        raise
    visitor = conversation.user.widget_visitor_id
    if live is not None and visitor is not None and not note:
        await live.message(visitor, message)
    return True


MAX_APP_TEXT = 4000


async def write_from_app(conversation: Conversation, staff: User, text: str, *, note: bool,
                         live: WidgetLive | None = None) -> Message:
    """A reply or an internal note typed in the Mini App.

    A reply reaches the customer the way a topic reply does (it takes the conversation first, and
    the customers' queue delivers it), and both are copied into the topic so the managers in
    Telegram see what was said from the app.
    """
    text = text.strip()
    if not text:
        raise ValueError("empty")
    if len(text) > MAX_APP_TEXT:
        raise ValueError("too_long")
    bot_id: int = conversation.bot_id  # type: ignore[attr-defined]
    if not note and (conversation.mode == ConversationMode.AI or conversation.status == ConversationStatus.WAITING):
        await take(conversation, staff)
    async with in_transaction():
        message = await Message.create(bot_id=bot_id, conversation_id=conversation.id,
                                       author_kind=AuthorKind.NOTE if note else AuthorKind.MANAGER, author=staff,
                                       # Like everywhere else: notes are plain text, staff replies Telegram HTML.
                                       text=text if note else escape(text), ai_meta={"source": "app"})
        if not note:
            await outbox.enqueue(bot_id, "to_customer", {"message_id": message.id}, lane=customer_lane(conversation))
            now = datetime.now(UTC)
            await Conversation.filter(id=conversation.id, first_manager_reply_at=None).update(
                first_manager_reply_at=now)
            await Conversation.filter(id=conversation.id).update(last_message_at=now)
        if conversation.handed_off_at is not None or not note:
            await outbox.enqueue(bot_id, "topic_copy", {"message_id": message.id}, lane=topic_lane(conversation),
                                 queue=outbox.MANAGERS, priority=1)
        await audit(bot_id, staff, "note" if note else "reply", str(conversation.uuid), via="app")
    message.author = staff
    visitor = conversation.user.widget_visitor_id
    if live is not None and visitor is not None and not note:
        await live.message(visitor, message)
    return message


async def _customer_side_of(conversation: Conversation, posted: Posted) -> int | None:
    """A manager replying to a message in the topic replies to the same message in the customer's chat."""
    if posted.replying_to is None or conversation.user.telegram_id is None:
        return None
    replied = await MessageCopy.filter(bot_id=conversation.bot_id, chat_id=posted.chat_id,  # type: ignore[attr-defined]
                                       telegram_message_id=posted.replying_to).first()
    if replied is None:
        return None
    there = await MessageCopy.filter(message_id=replied.message_id,  # type: ignore[attr-defined]
                                     chat_id=conversation.user.telegram_id).first()
    return int(there.telegram_message_id) if there is not None else None


async def record_edit(bot_id: int, chat_id: int, telegram_message_id: int, text: str) -> Message | None:
    """Someone edited a message we keep: store the new text and queue the edit of its copies."""
    original = await MessageCopy.filter(bot_id=bot_id, chat_id=chat_id, telegram_message_id=telegram_message_id,
                                        original=True).first().prefetch_related("message__conversation")
    if original is None:
        return None
    message = original.message
    if message.author_kind == AuthorKind.MANAGER:
        text = sanitize_html(text)  # as when it was first written
    async with in_transaction():
        await Message.filter(id=message.id).update(text=text)
        message.text = text
        if message.author_kind == AuthorKind.CUSTOMER:
            await outbox.enqueue(bot_id, "topic_edit", {"message_id": message.id},
                                 lane=topic_lane(message.conversation), queue=outbox.MANAGERS, priority=1)
        elif message.author_kind == AuthorKind.MANAGER:
            await outbox.enqueue(bot_id, "customer_edit", {"message_id": message.id},
                                 lane=customer_lane(message.conversation))
    return message


async def post_to_group(bot_id: int, where: Where, html: str) -> OutboxJob:
    """Queue a message for staff in the manager chat, ahead of the copies waiting there."""
    return await outbox.enqueue(bot_id, "group_post", {"chat_id": where.chat_id, "thread_id": where.thread_id,
                                                       "reply_to": where.reply_to, "html": html},
                                lane=f"group:{where.chat_id}", queue=outbox.MANAGERS, priority=0)


# --- the customer's side ---------------------------------------------------------------------------


class CustomerSide:
    """Jobs on the customers' queue that the manager desk causes.

    A Telegram customer gets copies in their chat; a website visitor's widget gets the stored
    message over the event bus (and finds it in the history after a reload).
    """

    def __init__(self, messenger: Messenger | None, translate: Translate, default_locale: str,
                 live: WidgetLive | None = None, feed: InboxFeed | None = None) -> None:
        self._messenger = messenger  # None: Telegram is off
        self.translate = translate
        self.default_locale = default_locale
        self.live = live
        self.feed = feed

    async def to_customer_job(self, job: OutboxJob) -> None:
        message = await Message.get_or_none(id=job.payload["message_id"]).prefetch_related("conversation__user")
        if message is None:
            return
        customer = message.conversation.user
        if customer.widget_visitor_id is not None:
            await self._to_widget(customer, message)
            return
        if customer.telegram_id is None:
            return
        if await MessageCopy.exists(message_id=message.id, chat_id=customer.telegram_id):
            return  # delivered before a crash
        original = await MessageCopy.get_or_none(message_id=message.id, original=True)
        if customer.blocked_bot:
            await self._undelivered(message, original)
            return
        quoted = job.payload.get("reply_to")
        where = Where(int(customer.telegram_id), None, int(str(quoted)) if quoted else None)
        try:
            silent = bool(customer.preferences.get("silent", False))
            if original is None:  # written in the Mini App: there is no Telegram message to copy
                sent = await self.messenger.post(where, OutgoingText(message.text, silent=silent))
            else:
                sent = await self.messenger.copy(where, int(original.chat_id), int(original.telegram_message_id),
                                                 silent=silent)
        except RecipientBlocked:
            await conversations.set_blocked(customer.bot_id, int(customer.telegram_id))  # type: ignore[attr-defined]
            await self._undelivered(message, original)
            return
        except MessageGone:
            log.info("manager message %s was deleted before it could be copied", message.id)
            return
        await MessageCopy.create(bot_id=customer.bot_id, message=message, chat_id=customer.telegram_id,  # type: ignore[attr-defined]
                                 telegram_message_id=sent)

    async def _undelivered(self, message: Message, original: MessageCopy | None) -> None:
        """Tell the managers, under the manager's message, that the customer cannot receive it."""
        bot_id: int = message.bot_id  # type: ignore[attr-defined]
        chat = await load_manager_chat(bot_id, self.default_locale)
        if original is None:  # written in the Mini App: under its copy in the topic, if there is one yet
            if chat is None:
                return
            original = await MessageCopy.filter(message_id=message.id, chat_id=chat.chat_id).first()
            if original is None:
                where = Where(chat.chat_id, message.conversation.manager_topic_id, None)
                await post_to_group(bot_id, where, escape(self.translate(chat.locale, CUSTOMER_BLOCKED)))
                return
        where = Where(int(original.chat_id), message.conversation.manager_topic_id, int(original.telegram_message_id))
        await post_to_group(bot_id, where, escape(self.translate(chat.locale if chat else self.default_locale,
                                                                 CUSTOMER_BLOCKED)))

    @property
    def messenger(self) -> Messenger:
        """Telegram, for a Telegram customer's job; without it the job waits (BOT_TOKEN may come back)."""
        if self._messenger is None:
            raise outbox.Postpone(300.0, "Telegram is off (BOT_TOKEN is not set)")
        return self._messenger

    async def _to_widget(self, customer: User, message: Message) -> None:
        if self.live is not None and customer.widget_visitor_id is not None:
            await self.live.message(customer.widget_visitor_id, message)

    async def customer_edit_job(self, job: OutboxJob) -> None:
        message = await Message.get_or_none(id=job.payload["message_id"]).prefetch_related("conversation__user")
        if message is None:
            return
        customer = message.conversation.user
        if customer.widget_visitor_id is not None:
            await self._to_widget(customer, message)  # the widget replaces the message with the same id
            return
        copy = await MessageCopy.filter(message_id=message.id, chat_id=customer.telegram_id, original=False).first()
        if copy is None:
            return
        try:
            await self.messenger.edit(int(copy.chat_id), int(copy.telegram_message_id), message.text,
                                      caption=bool(message.attachments))
        except (MessageGone, RecipientBlocked) as error:
            log.info("could not apply an edit to the customer's copy of message %s: %s", message.id, error)

    async def customer_notice_job(self, job: OutboxJob) -> None:
        conversation = await Conversation.get_or_none(id=job.payload["conversation_id"]).prefetch_related("user")
        if conversation is None:
            return
        customer = conversation.user
        widget = customer.widget_visitor_id is not None
        if not widget and (customer.telegram_id is None or customer.blocked_bot):
            return
        locale = str(customer.language)
        notice = str(job.payload["notice"])
        params: dict[str, Any] = dict(job.payload.get("params") or {})  # type: ignore[call-overload]
        buttons: list[list[Button]] = []
        if notice == "joined":
            text = self.translate(locale, JOINED).format(name=params.get("name") or "")
        elif notice == "back_to_ai":
            text = self.translate(locale, BACK_TO_AI)
        elif notice == "rate":
            text = self.translate(locale, RATE)
            buttons = [[Button("⭐" * stars, callback_data=f"rate:{conversation.id}:{stars}") for stars in (1, 2, 3)],
                       [Button("⭐" * stars, callback_data=f"rate:{conversation.id}:{stars}") for stars in (4, 5)]]
        else:
            raise ValueError(f"unknown notice {notice!r}")
        if widget:
            await self._notice_to_widget(conversation, customer, text, job.payload.get("message_id"))
            return
        try:
            await self.messenger.send_text(int(customer.telegram_id), OutgoingText(
                escape(text), buttons, silent=bool(customer.preferences.get("silent", False))))
        except RecipientBlocked:
            await conversations.set_blocked(customer.bot_id, int(customer.telegram_id))  # type: ignore[attr-defined]
            return
        await Message.create(bot_id=conversation.bot_id, conversation_id=conversation.id,  # type: ignore[attr-defined]
                             author_kind=AuthorKind.SYSTEM, text=text, ai_meta={"source": "desk", "notice": notice})
        if self.feed is not None:
            await self.feed.changed(conversation)

    async def _notice_to_widget(self, conversation: Conversation, customer: User, text: str,
                                message_id: Any) -> None:
        """The notice's text goes into the place kept for it, then is shown live with the new state."""
        await Message.filter(id=message_id).update(text=text)
        message = await Message.get_or_none(id=message_id)
        if message is None:
            return
        if self.live is not None and customer.widget_visitor_id is not None:
            await self.live.message(customer.widget_visitor_id, message)
            await self.live.status(await Conversation.get(id=conversation.id))
