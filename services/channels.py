"""Where a customer talks to us: a Telegram private chat or a website's widget, one class each.

A conversation's channel is chosen once, when it starts (`Conversation.channel`), and `Channels.of`
gives its object. The flows (answering, the manager desk's deliveries) ask the channel to show
things and never ask which channel it is. A new channel is one class here plus its adapter (a
router or a view that turns what arrives into `services.flow` calls).

Every method is told the customer's row and the stored message it shows: what must survive a
crash is in the database before a channel is asked to show it (except an answer's preview, which
is best effort).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

from models import Channel, Conversation, Message, MessageCopy, User
from services import conversations
from services.files import ConversationFiles
from services.generation import Generations, Typing, read_pause
from services.outbox import Postpone
from services.ports import Button, ChatSender, MessageGone, Messenger, Messengers, OutgoingText, RecipientBlocked, Where
from services.render import escape, split_html
from services.widget import WidgetLive

log = logging.getLogger(__name__)

# Telegram is off (no BOT_TOKEN): a Telegram customer's job waits for it rather than failing.
WITHOUT_TELEGRAM_RETRY = 300.0

# Website answers streaming at once up to which each updates at the full pace.
WIDGET_STREAMS_AT_FULL_PACE = 40


@dataclass(frozen=True)
class Abilities:
    """What the customer can do there, and so what we may offer or expect."""

    commands: bool  # types /human, /new, /language
    edits: bool  # edits a message after sending it; the managers' copy follows
    blocks: bool  # can block us: after that nothing more reaches them there
    links_to_telegram: bool  # can join this chat to their Telegram account


Record = Callable[[list[int]], Awaitable[Message]]  # stores a reply, given where it was sent


class Preview(Protocol):
    """An answer shown while the model writes it; `update` is the model's progress callback."""

    shown: bool  # the customer saw some of it (set when the preview ends)

    async def update(self, text_so_far: str) -> None: ...

    def read_pause(self) -> float:
        """How long the model's next pieces may wait unread (services/generation.py's read_pause)."""
        ...


class CustomerChannel(Protocol):
    kind: Channel
    abilities: Abilities

    def reachable(self, customer: User) -> bool:
        """Whether anything can be shown to them now; raises `Postpone` while the channel is off."""
        ...

    async def reply(self, customer: User, html: str, record: Record, *, previewed: bool = False) -> Message:
        """Our reply (an answer, a notice) to their message: shown and stored by `record`, in the order
        the channel needs (Telegram: sent first, stored with its message ids; the widget: stored
        first, then shown under the id it got)."""
        ...

    def preview(self, customer: User, reply_to: Message) -> AbstractAsyncContextManager[Preview]:
        """An answer to `reply_to`, shown as it is written (Telegram: a stoppable draft)."""
        ...

    def typing(self, customer: User, reply_to: Message) -> Typing:
        """"typing…" while the answer to `reply_to` waits for its turn at the AI provider."""
        ...

    async def deliver(self, customer: User, message: Message, reply_to: int | None = None) -> None:
        """A message a person wrote (a manager's reply), stored already; at most once per chat."""
        ...

    async def show_edit(self, customer: User, message: Message) -> None:
        """A message they were shown was edited: replace it where they see it."""
        ...

    async def notice(self, customer: User, message: Message, buttons: Sequence[Sequence[Button]] = ()) -> bool:
        """One of our notices, stored already (its text in their language); False if it cannot reach them."""
        ...

    async def media(self, bot_id: int, attachment: dict[str, object], max_bytes: int) -> bytes | None:
        """The bytes of a file the customer sent (None: this channel cannot fetch them); MediaUnavailable
        when it is gone or larger than `max_bytes`."""
        ...

    async def state_changed(self, conversation: Conversation) -> None:
        """The conversation changed hands (AI, waiting, a person, closed): show it where that is shown."""
        ...

    async def show_at_once(self, conversation: Conversation, message: Message, client_id: str | None = None) -> None:
        """A message just stored in the conversation (the customer's own, a manager's reply): a channel with a
        live screen shows it now; the outbox delivers what must reach the customer either way."""
        ...


class Channels:
    """Each channel's object, by the kind a conversation was started on."""

    def __init__(self, *channels: CustomerChannel) -> None:
        self._by_kind = {channel.kind: channel for channel in channels}

    def of(self, conversation: Conversation) -> CustomerChannel:
        return self._by_kind[Channel(conversation.channel)]

    def __getitem__(self, kind: Channel) -> CustomerChannel:
        return self._by_kind[kind]


# --- Telegram ----------------------------------------------------------------------------------------------


class TelegramChannel:
    """A customer's private chat with their bot. While that bot is not served here, its work waits."""

    kind = Channel.TELEGRAM
    abilities = Abilities(commands=True, edits=True, blocks=True, links_to_telegram=False)

    def __init__(self, messengers: Messengers, generations: Generations, draft_interval: float,
                 render_draft: Callable[[str], str], drafts_per_second: float = 30.0) -> None:
        # render_draft: the model's Markdown so far as the draft shows it (HTML, without citation marks)
        self.messengers = messengers
        self.generations = generations
        self.draft_interval = draft_interval
        self.render_draft = render_draft
        self.drafts_per_second = drafts_per_second  # each bot's Telegram budget (TELEGRAM_MESSAGES_PER_SECOND)

    def messenger(self, bot_id: int) -> Messenger:
        """The customer's bot's: only it may write to their chat. Its work waits while that bot is not served."""
        messenger = self.messengers.of(bot_id)
        if messenger is None:
            raise Postpone(WITHOUT_TELEGRAM_RETRY, f"bot {bot_id} is not served here now (no BOT_TOKEN, or paused)")
        return messenger

    def reachable(self, customer: User) -> bool:
        if customer.telegram_id is None or customer.blocked_bot:
            return False
        self.messenger(customer.bot_id)  # Postpone while their bot is not served here: the work waits for it
        return True

    async def reply(self, customer: User, html: str, record: Record, *, previewed: bool = False) -> Message:
        silent = _silent(customer)
        messenger = self.messenger(customer.bot_id)
        sent = [await self._blocking(customer, messenger.send_text(
                    _chat(customer), OutgoingText(part, silent=silent, after_preview=previewed)))
                for part in split_html(html)]
        return await record(sent)

    @asynccontextmanager
    async def preview(self, customer: User, reply_to: Message) -> AsyncIterator[Preview]:
        sender: ChatSender = self.messenger(customer.bot_id)
        streaming = self.generations.streaming(sender, _chat(customer), reply_to.id,  # a unique, non-zero id
                                               self.draft_interval, render=self.render_draft,
                                               budget=self.messengers.budget_of(customer.bot_id),
                                               per_second=self.drafts_per_second)
        try:
            async with streaming as draft:
                yield draft
        except RecipientBlocked:
            await _mark_blocked(customer)
            raise

    def typing(self, customer: User, reply_to: Message) -> Typing:
        sender, chat_id = self.messenger(customer.bot_id), _chat(customer)
        return Typing(lambda: sender.send_typing(chat_id), self.messengers.budget_of(customer.bot_id))

    async def deliver(self, customer: User, message: Message, reply_to: int | None = None) -> None:
        chat_id = customer.telegram_id
        if chat_id is None or await MessageCopy.exists(message_id=message.id, chat_id=chat_id):
            return  # delivered before a crash
        original = await MessageCopy.get_or_none(message_id=message.id, original=True)
        if customer.blocked_bot:
            raise RecipientBlocked("the customer blocked the bot")
        where = Where(int(chat_id), None, reply_to)
        messenger = self.messenger(customer.bot_id)
        try:
            if original is None:  # written in the Mini App: there is no Telegram message to copy
                sent = await messenger.post(where, OutgoingText(message.text, silent=_silent(customer)))
            else:
                sent = await messenger.copy(where, int(original.chat_id), int(original.telegram_message_id),
                                                 silent=_silent(customer))
        except RecipientBlocked:
            await _mark_blocked(customer)
            raise
        except MessageGone:
            log.info("manager message %s was deleted before it could be copied", message.id)
            return
        await MessageCopy.create(bot_id=customer.bot_id, message=message, chat_id=chat_id,
                                 telegram_message_id=sent)

    async def show_edit(self, customer: User, message: Message) -> None:
        copy = await MessageCopy.filter(message_id=message.id, chat_id=customer.telegram_id, original=False).first()
        if copy is None:
            return
        try:
            await self.messenger(customer.bot_id).edit(int(copy.chat_id), int(copy.telegram_message_id), message.text,
                                      caption=bool(message.attachments))
        except (MessageGone, RecipientBlocked) as error:
            log.info("could not apply an edit to the customer's copy of message %s: %s", message.id, error)

    async def notice(self, customer: User, message: Message, buttons: Sequence[Sequence[Button]] = ()) -> bool:
        if not self.reachable(customer):
            return False
        chat_id = _chat(customer)
        if await MessageCopy.exists(message_id=message.id, chat_id=chat_id):
            return True  # shown before a crash
        try:
            sent = await self.messenger(customer.bot_id).send_text(chat_id, OutgoingText(
                escape(message.text), [list(row) for row in buttons], silent=_silent(customer)))
        except RecipientBlocked:
            await _mark_blocked(customer)
            return False
        await MessageCopy.create(bot_id=customer.bot_id, message=message, chat_id=chat_id,
                                 telegram_message_id=sent)
        return True

    async def media(self, bot_id: int, attachment: dict[str, object], max_bytes: int) -> bytes | None:
        file_id = attachment.get("file_id")
        if not isinstance(file_id, str):
            return None
        return await self.messenger(bot_id).download(file_id, max_bytes)  # a file id is good only with its bot

    async def state_changed(self, conversation: Conversation) -> None:
        """A private chat has no place that shows who answers: the notices say it."""

    async def show_at_once(self, conversation: Conversation, message: Message, client_id: str | None = None) -> None:
        """Telegram shows the customer their own message; a manager's reply reaches them by the outbox."""

    async def _blocking(self, customer: User, sending: Awaitable[int]) -> int:
        try:
            return await sending
        except RecipientBlocked:
            await _mark_blocked(customer)
            raise


def _chat(customer: User) -> int:
    chat_id = customer.telegram_id
    assert chat_id is not None
    return int(chat_id)


def _silent(customer: User) -> bool:
    return bool(customer.preferences.get("silent", False))


async def _mark_blocked(customer: User) -> None:
    """The customer blocked the bot: we stop writing to them until they write again."""
    if customer.telegram_id is not None:
        await conversations.set_blocked(customer.bot_id, int(customer.telegram_id))


# --- the website widget -------------------------------------------------------------------------------------


class WidgetChannel:
    """A visitor's widget on a website: what is shown goes over the event bus to whichever instance
    holds their sockets; a widget that was away reads the history when it comes back."""

    kind = Channel.WIDGET
    abilities = Abilities(commands=False, edits=False, blocks=False, links_to_telegram=True)

    def __init__(self, live: WidgetLive, delta_interval: float, shown_text: Callable[[str], str],
                 files: ConversationFiles | None = None) -> None:
        self.live = live
        self.files = files or ConversationFiles(None)  # the visitors' uploads are stored with their messages
        self.shown_text = shown_text  # what of the model's text so far the visitor sees (Markdown)
        self.delta_interval = delta_interval  # a widget shows the answer growing at about this pace
        self.streaming = 0  # website answers streaming now

    def reachable(self, customer: User) -> bool:
        return customer.widget_visitor_id is not None

    async def reply(self, customer: User, html: str, record: Record, *, previewed: bool = False) -> Message:
        message = await record([])
        await self.live.message(_visitor(customer), message)
        return message

    @asynccontextmanager
    async def preview(self, customer: User, reply_to: Message) -> AsyncIterator[Preview]:
        preview = _WidgetPreview(self.live, _visitor(customer), reply_to.id, self._pace, self.shown_text,
                                 self._read_pause)
        self.streaming += 1
        try:
            yield preview
        finally:
            self.streaming -= 1

    def _pace(self) -> float:
        """Seconds between a widget answer's updates: a few a second, fewer while many answers stream
        at once (each update renders and sends the whole text so far), never fewer than one a second."""
        crowd = self.streaming / WIDGET_STREAMS_AT_FULL_PACE
        return min(1.0, self.delta_interval * max(1.0, crowd))

    def _read_pause(self) -> float:
        """The model's pieces wait unread as long as the slower pace leaves them unseen (see read_pause)."""
        return read_pause(self.streaming, WIDGET_STREAMS_AT_FULL_PACE / self.delta_interval, self.delta_interval)

    def typing(self, customer: User, reply_to: Message) -> Typing:
        live, visitor, reply_id = self.live, _visitor(customer), reply_to.id
        return Typing(lambda: live.typing(visitor, reply_id))

    async def deliver(self, customer: User, message: Message, reply_to: int | None = None) -> None:
        await self.live.message(_visitor(customer), message)  # the widget keeps one copy per id

    async def show_edit(self, customer: User, message: Message) -> None:
        await self.live.message(_visitor(customer), message)  # the widget replaces the message with the same id

    async def notice(self, customer: User, message: Message, buttons: Sequence[Sequence[Button]] = ()) -> bool:
        """The widget draws its own buttons (a rating request carries its conversation: `message_frame`)."""
        await self.live.message(_visitor(customer), message)
        return True

    async def media(self, bot_id: int, attachment: dict[str, object], max_bytes: int) -> bytes | None:
        # named by our own stored message, of this bot
        return await self.files.stored(attachment, bot_id=bot_id, max_bytes=max_bytes)

    async def state_changed(self, conversation: Conversation) -> None:
        await self.live.status(conversation)

    async def show_at_once(self, conversation: Conversation, message: Message, client_id: str | None = None) -> None:
        """Every open tab of the visitor shows it (the customer's own message with their client id)."""
        await self.live.message(_visitor(await conversations.customer_of(conversation)), message, client_id)


def _visitor(customer: User) -> str:
    visitor = customer.widget_visitor_id
    assert visitor is not None
    return str(visitor)


class _WidgetPreview:
    """Shows a website visitor the answer as it is written: the first words at once, then the text so
    far every `interval()` seconds."""

    def __init__(self, live: WidgetLive, visitor_id: str, reply_to: int, interval: Callable[[], float],
                 shown_text: Callable[[str], str], read_pause: Callable[[], float]) -> None:
        self.live = live
        self.shown_text = shown_text
        self.visitor_id = visitor_id
        self.reply_to = reply_to
        self.interval = interval
        self.read_pause = read_pause
        self.shown = False
        self._last = 0.0

    async def update(self, text_so_far: str) -> None:
        now = time.monotonic()
        if now - self._last < self.interval() or not text_so_far.strip():
            return
        self._last = now
        try:
            await self.live.delta(self.visitor_id, self.reply_to, self.shown_text(text_so_far))
            self.shown = True
        except Exception as error:  # a preview is best effort; the answer is recorded either way
            log.info("widget preview failed: %s", error)
