"""The manager desk's side that is not an event: finding the conversation a manager means, and the
customers' queue jobs that the desk's events cause (`CustomerSide`).

The staff actions themselves (take, give back, close, ban, a reply or a note) are events of
services/flow.py: one call each, for a topic command, a header-card button and the Mini App alike.
"""

from __future__ import annotations

import logging
from typing import Any

from models import (
    AuthorKind,
    Conversation,
    Message,
    MessageCopy,
    OutboxJob,
)
from services.audit import audit as audit  # staff actions elsewhere log through `desk.audit` too
from services.channels import Channels
from services.flow import ConversationFlow, post_to_group
from services.i18n import N_, Translate
from services.ports import Button, RecipientBlocked, Where
from services.render import escape
from services.staff import load_manager_chat

log = logging.getLogger(__name__)

JOINED = N_("{name} from our team has joined the conversation.")
JOINED_NAMELESS = N_("A person from our team has joined the conversation.")
BACK_TO_AI = N_("You're talking to our assistant again. Ask anything, or send /human to reach a person.")
RATE = N_("This conversation is closed. Thank you for writing to us! How would you rate it?")
RATED = N_("Thank you for your rating!")
CUSTOMER_BLOCKED = N_("⚠️ The customer has blocked the bot: this message was not delivered.")


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


# --- the customer's side ---------------------------------------------------------------------------


class CustomerSide:
    """Jobs on the customers' queue that the manager desk causes, shown through the conversation's channel
    (a Telegram customer gets copies in their chat; a website visitor's widget gets the stored message)."""

    def __init__(self, channels: Channels, translate: Translate, default_locale: str, flow: ConversationFlow) -> None:
        self.channels = channels
        self.translate = translate
        self.default_locale = default_locale
        self.flow = flow

    async def to_customer_job(self, job: OutboxJob) -> None:
        message = await Message.get_or_none(id=job.payload["message_id"]).prefetch_related("conversation__user")
        if message is None:
            return
        conversation = message.conversation
        quoted = job.payload.get("reply_to")
        try:
            await self.channels.of(conversation).deliver(conversation.user, message,
                                                         int(str(quoted)) if quoted else None)
        except RecipientBlocked:
            await self._undelivered(message)

    async def _undelivered(self, message: Message) -> None:
        """Tell the managers, under the manager's message, that the customer cannot receive it."""
        bot_id: int = message.bot_id
        chat = await load_manager_chat(bot_id, self.default_locale)
        original = await MessageCopy.get_or_none(message_id=message.id, original=True)
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

    async def customer_edit_job(self, job: OutboxJob) -> None:
        message = await Message.get_or_none(id=job.payload["message_id"]).prefetch_related("conversation__user")
        if message is None:
            return
        await self.channels.of(message.conversation).show_edit(message.conversation.user, message)

    async def customer_notice_job(self, job: OutboxJob) -> None:
        """A notice stored in its place (`flow.queue_notice`): written in the customer's language now if it
        has no text yet, then shown; a notice that cannot reach them is not kept."""
        conversation = await Conversation.get_or_none(id=job.payload["conversation_id"]).prefetch_related("user")
        if conversation is None:
            return
        customer = conversation.user
        channel = self.channels.of(conversation)
        message = await self._notice_message(conversation, job.payload)
        if message is None:
            return
        buttons: list[list[Button]] = []
        if job.payload.get("notice") == "rate":
            buttons = [[Button("⭐" * stars, callback_data=f"rate:{conversation.id}:{stars}") for stars in (1, 2, 3)],
                       [Button("⭐" * stars, callback_data=f"rate:{conversation.id}:{stars}") for stars in (4, 5)]]
        if not await channel.notice(customer, message, buttons):
            await Message.filter(id=message.id).delete()
            return
        await channel.state_changed(await Conversation.get(id=conversation.id))  # the state it told of, as it is now
        await self.flow.notice_shown(conversation, message)

    async def _notice_message(self, conversation: Conversation, payload: dict[str, Any]) -> Message | None:
        message_id = payload.get("message_id")
        message = await Message.get_or_none(id=message_id) if message_id is not None else \
            await Message.create(bot_id=conversation.bot_id, conversation_id=conversation.id,
                                 author_kind=AuthorKind.SYSTEM, text="",  # queued before notices kept their place
                                 ai_meta={"source": "desk", "notice": payload.get("notice")})
        if message is None or message.text:
            return message
        text = self._notice_text(str(conversation.user.language), str(payload["notice"]),
                                 dict(payload.get("params") or {}))
        await Message.filter(id=message.id).update(text=text)
        message.text = text
        return message

    def _notice_text(self, locale: str, notice: str, params: dict[str, Any]) -> str:
        if notice == "joined":
            if not params.get("name"):  # a staff member with no name yet (an admin signed in from the shell)
                return self.translate(locale, JOINED_NAMELESS)
            return self.translate(locale, JOINED).format(name=params["name"])
        if notice == "back_to_ai":
            return self.translate(locale, BACK_TO_AI)
        if notice == "rate":
            return self.translate(locale, RATE)
        raise ValueError(f"unknown notice {notice!r}")
