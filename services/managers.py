"""The manager chat's side of conversations: topics, header cards, copies, edits, healing.

Runs from the managers' outbox queue. Its worker spends the group's budget (about 20 messages a
minute) and never holds up a customer's answer, which runs from the customers' queue. Jobs of one
topic run in order; when they back up, consecutive text messages of one customer are coalesced
into one group message, and nothing is ever dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from decimal import Decimal
from typing import Any, TypeVar

from models import (
    AuthorKind,
    Conversation,
    ConversationMode,
    ConversationStatus,
    Message,
    MessageCopy,
    OutboxJob,
    User,
)
from services import albums, conversations, files, outbox, transcription
from services.i18n import N_, Translate
from services.outbox import JobHandler, JobKind
from services.ports import (
    AlbumItem,
    Button,
    FileUpload,
    MediaUnavailable,
    MessageGone,
    Messenger,
    Messengers,
    NoRights,
    OutgoingText,
    RecipientBlocked,
    TopicClosed,
    TopicGone,
    Where,
)
from services.render import escape, html_to_text, markdown_to_html, sanitize_html
from services.staff import ManagerChat, load_manager_chat, stop_using_topics

log = logging.getLogger(__name__)
T = TypeVar("T")

NO_MANAGER_CHAT_RETRY = 30.0
HISTORY_CHARS = 2500  # of the header card's 4096, for the conversation so far
LINE_CHARS = 400
COALESCE_CHARS = 3500
ALBUM_SETTLE_SECONDS = 1.0  # the parts of an album arrive as separate updates, a moment apart
ALBUM_KINDS = {"photo", "video", "document", "audio"}
CAPTIONED_KINDS = ALBUM_KINDS | {"voice", "animation"}
TRANSCRIPT_CHARS = 4000  # of a message's 4096: a longer transcript is cut (it is whole in the Mini App)
CAPTION_CHARS = 1024  # Telegram's caption limit; a visitor's file may come with up to 4000 characters
PHOTO_MAX_BYTES = 10_000_000  # sendPhoto's limit; a bigger image goes as a document

# The state leads the topic's name, and is its icon too where Telegram's topic icons have it.
STATE_ICONS = {"waiting": "❗", "assigned": "💬", "ai": "🤖", "closed": "✅"}
STATE_NAMES = {"waiting": N_("waiting for a person"), "assigned": N_("with {name}"), "ai": N_("with the AI"),
               "closed": N_("closed")}
REASONS = {
    "asked_for_person": N_("asked for a person"),
    "cannot_answer": N_("the AI could not answer"),
    "complaint": N_("complaint"),
    "sensitive": N_("sensitive matter"),
    "ai_failure": N_("the AI failed"),
    "not_in_knowledge": N_("no answer in the knowledge base"),
    "manager_took_over": N_("a manager took over"),
}
FROM_APP = N_("{name} in the app")
AUTHORS = {"customer": "👤", "ai": "🤖", "manager": "🧑‍💼", "system": "ℹ️", "note": "📝"}
MEDIA_LABELS = {"photo": N_("[photo]"), "video": N_("[video]"), "voice": N_("[voice message]"),
                "document": N_("[file]"), "sticker": N_("[sticker]"), "location": N_("[location]"),
                "contact": N_("[contact]"), "audio": N_("[audio]"), "video_note": N_("[video message]"),
                "animation": N_("[GIF]")}
NO_TOPICS = N_(
    "⚠️ I can no longer create topics here, so conversations now arrive in this chat with a header: reply to "
    "one to answer that customer. Give me the right to manage topics and send /setup to go back to topics.")
CARD_CHANNEL = N_("Channel")
CARD_LANGUAGE = N_("Language")
CARD_REASON = N_("Reason")
CARD_STATE = N_("State")
CARD_AI_COST = N_("AI cost so far")
CARD_HISTORY = N_("The conversation so far")
CARD_EARLIER = N_("… {count} earlier messages")
BUTTON_TAKE = N_("✋ Take")
BUTTON_AI = N_("🤖 Return to AI")
BUTTON_CLOSE = N_("✅ Close")
BUTTON_BAN = N_("🚫 Ban")


def topic_state(conversation: Conversation) -> str:
    if conversation.status == ConversationStatus.CLOSED:
        return "closed"
    if conversation.mode == ConversationMode.AI:
        return "ai"
    return "assigned" if conversation.status == ConversationStatus.ASSIGNED else "waiting"


def customer_name(conversation: Conversation) -> str:
    user = conversation.user
    return user.full_name or (f"@{user.username}" if user.username else f"#{conversation.id}")


def topic_title(conversation: Conversation) -> str:
    return f"{STATE_ICONS[topic_state(conversation)]} {customer_name(conversation)}"[:128]


def card_buttons(conversation_id: int, translate: Translate, locale: str) -> list[list[Button]]:
    def button(label: str, action: str) -> Button:
        return Button(translate(locale, label), callback_data=f"desk:{action}:{conversation_id}")

    return [[button(BUTTON_TAKE, "take"), button(BUTTON_AI, "ai")],
            [button(BUTTON_CLOSE, "close"), button(BUTTON_BAN, "ban")]]


def message_line(message: Message, translate: Translate, locale: str) -> str:
    """One message as staff read it: who, then the text or what was sent (a voice with its transcript)."""
    kinds = [str(a.get("type")) for a in message.attachments]
    label = " ".join(translate(locale, MEDIA_LABELS.get(kind, MEDIA_LABELS["document"])) for kind in kinds)
    body = message.text.strip()
    voice = transcription.spoken(message.attachments)
    if voice is not None and voice.get("transcript"):
        body = f"{body} 🎙 {voice['transcript']}".strip()
    if message.author_kind == AuthorKind.AI:
        body = html_to_text(markdown_to_html(body))
    elif message.author_kind == AuthorKind.MANAGER:
        body = html_to_text(body)  # stored as Telegram HTML, so its formatting reaches the customer's copy
    text = " ".join(part for part in (label, body) if part)
    if len(text) > LINE_CHARS:
        text = text[:LINE_CHARS - 1] + "…"
    return f"{AUTHORS.get(message.author_kind, '')} {escape(text)}"


MANAGER_JOB_KINDS = (JobKind.OPEN_TOPIC, JobKind.TOPIC_COPY, JobKind.TOPIC_STATE, JobKind.TOPIC_EDIT,
                     JobKind.TOPIC_TRANSCRIPT, JobKind.GROUP_POST, JobKind.ADMIN_NOTICE)


class ManagerGroup:
    """One bot's work in its manager chat."""

    def __init__(self, messenger: Messenger, translate: Translate, default_locale: str,
                 album_settle: float = ALBUM_SETTLE_SECONDS) -> None:
        self.album_settle = album_settle  # an album is copied once its items stopped arriving
        self.messenger = messenger
        self.files = files.ConversationFiles(None)  # the visitors' uploads, stored with their messages
        self.translate = translate
        self.default_locale = default_locale

    # --- jobs -------------------------------------------------------------------------------------

    async def open_topic_job(self, job: OutboxJob) -> None:
        conversation = await self._conversation(job.payload["conversation_id"])
        chat = await self._chat(job.bot_id)
        if conversation.manager_card_id is None:
            await self._open(conversation, chat, upto=int(str(job.payload.get("upto_message_id") or 0)))

    async def topic_state_job(self, job: OutboxJob) -> None:
        conversation = await self._conversation(job.payload["conversation_id"])
        chat = await self._chat(job.bot_id)
        if not chat.forum or conversation.manager_topic_id is None:
            return  # a plain group shows no state: its messages carry their own headers
        title = topic_title(conversation)
        closed = conversation.status == ConversationStatus.CLOSED
        try:
            if title != conversation.topic_title:
                await self.messenger.rename_topic(chat.chat_id, int(conversation.manager_topic_id), title,
                                                  STATE_ICONS[topic_state(conversation)])
                conversation.topic_title = title
                await conversation.save(update_fields=["topic_title"])
            if closed:
                await self.messenger.close_topic(chat.chat_id, int(conversation.manager_topic_id))
        except (TopicGone, TopicClosed) as error:
            # Deleted by someone: it is recreated, with its state, when there is something to show.
            log.info("topic of conversation %s: %s", conversation.id, error)

    async def topic_copy_job(self, job: OutboxJob) -> None:
        first = await Message.get_or_none(id=job.payload["message_id"]).prefetch_related("conversation__user",
                                                                                          "author")
        if first is None:
            return
        conversation = first.conversation
        chat = await self._chat(job.bot_id)
        if await MessageCopy.exists(message_id=first.id, chat_id=chat.chat_id):
            return  # delivered before a crash; the job is being run again
        if conversation.manager_card_id is None:
            chat = await self._open(conversation, chat, upto=first.id - 1)
        followers, batch = await self._batch(job, first)
        sent = await self._copy(conversation, chat, batch)
        await self._remember(chat.chat_id, batch, sent)
        await outbox.finish_taken(followers)
        for queued, message in zip([job, *followers], batch, strict=True):
            if queued.payload.get("bookkeeping"):
                await conversations.note_customer_message(message)

    async def topic_edit_job(self, job: OutboxJob) -> None:
        """A customer edited a message: the topic's copy shows the new text."""
        chat = await self._chat(job.bot_id)
        copies = await MessageCopy.filter(message_id=job.payload["message_id"], chat_id=chat.chat_id,
                                          original=False).order_by("telegram_message_id")
        for index, copy in enumerate(copies):
            sharing = await Message.filter(telegram_copies__chat_id=chat.chat_id,
                                           telegram_copies__telegram_message_id=copy.telegram_message_id
                                           ).prefetch_related("conversation__user").order_by("id")
            if not sharing or (index and len(sharing) == 1 and len(sharing[0].attachments) > 1):
                continue  # an album's words are the caption of its first item
            html, caption = self._copy_text(sharing[0].conversation, chat, sharing)
            try:
                await self.messenger.edit(chat.chat_id, int(copy.telegram_message_id), html, caption=caption)
            except MessageGone:
                log.info("the copy of message %s in the manager chat is gone", job.payload["message_id"])

    async def topic_transcript_job(self, job: OutboxJob) -> None:
        """A customer's voice was transcribed: the transcript goes under the voice's copy in the topic (a
        reply to it; without a copy, e.g. the card showed the voice before it was heard, in the topic)."""
        message = await Message.get_or_none(id=job.payload["message_id"]).prefetch_related("conversation__user")
        voice = transcription.spoken(message.attachments) if message is not None else None
        if message is None or voice is None or not voice.get("transcript"):
            return
        chat = await self._chat(job.bot_id)
        conversation = message.conversation
        if conversation.manager_card_id is None:
            return  # the topic opens with its card, which shows the voice with its transcript
        copy = await MessageCopy.filter(message_id=message.id, chat_id=chat.chat_id, original=False).first()
        text = str(voice["transcript"])
        if len(text) > TRANSCRIPT_CHARS:
            text = text[:TRANSCRIPT_CHARS - 1] + "…"
        reply_to = int(copy.telegram_message_id) if copy is not None else None

        async def send(where: Where) -> int:
            return await self.messenger.post(Where(where.chat_id, where.thread_id, reply_to),
                                             OutgoingText(f"🎙 {escape(text)}", silent=True))

        await self._deliver(conversation, chat, message.id, send)

    async def group_post_job(self, job: OutboxJob) -> None:
        """A staff command's answer, or a notice for staff, posted where it was asked for."""
        payload = job.payload
        thread, reply_to = payload.get("thread_id"), payload.get("reply_to")
        where = Where(int(str(payload["chat_id"])), int(str(thread)) if thread else None,
                      int(str(reply_to)) if reply_to else None)
        message = OutgoingText(str(payload["html"]))
        try:
            await self.messenger.post(where, message)
        except (TopicGone, TopicClosed):
            await self.messenger.post(Where(where.chat_id), message)

    # --- the topic --------------------------------------------------------------------------------

    async def _conversation(self, conversation_id: Any) -> Conversation:
        return await Conversation.get(id=conversation_id).prefetch_related("user")

    async def _chat(self, bot_id: int) -> ManagerChat:
        chat = await load_manager_chat(bot_id, self.default_locale)
        if chat is None:
            raise outbox.Postpone(NO_MANAGER_CHAT_RETRY, "no manager chat yet: send /setup in the managers' group")
        return chat

    async def admin_notice_job(self, job: OutboxJob) -> None:
        """A notice for one admin in their private chat with the bot: one who blocked it (or never started it)
        misses it; the audit log has it too."""
        try:
            await self.messenger.post(Where(int(str(job.payload["chat_id"]))), OutgoingText(str(job.payload["html"])))
        except RecipientBlocked as error:
            log.info("admin %s was not told: %s", job.payload["chat_id"], error)

    @staticmethod
    def never_dropped(job: JobHandler) -> JobHandler:
        """A job that cannot reach the group because the bot was removed from it waits (uncounted)
        until the bot is back, rather than failing: nothing meant for managers is dropped."""
        async def run(outbox_job: OutboxJob) -> None:
            try:
                await job(outbox_job)
            except RecipientBlocked as error:
                raise outbox.Postpone(NO_MANAGER_CHAT_RETRY, f"the bot cannot write to the manager chat: {error}"
                                      ) from error

        return run

    def handlers(self) -> dict[str, JobHandler]:
        """Every kind in MANAGER_JOB_KINDS."""
        jobs = {JobKind.OPEN_TOPIC: self.open_topic_job, JobKind.TOPIC_COPY: self.topic_copy_job,
                JobKind.TOPIC_STATE: self.topic_state_job, JobKind.TOPIC_EDIT: self.topic_edit_job,
                JobKind.TOPIC_TRANSCRIPT: self.topic_transcript_job, JobKind.GROUP_POST: self.group_post_job}
        return {**{kind: self.never_dropped(job) for kind, job in jobs.items()},
                JobKind.ADMIN_NOTICE: self.admin_notice_job}

    def _where(self, conversation: Conversation, chat: ManagerChat, reply_to: int | None = None) -> Where:
        thread = conversation.manager_topic_id if chat.forum else None
        return Where(chat.chat_id, int(thread) if thread is not None else None, reply_to)

    async def _open(self, conversation: Conversation, chat: ManagerChat, upto: int, *,
                    anew: bool = False) -> ManagerChat:
        """The conversation's topic (in a forum) and its header card with the history up to `upto`.

        Returns the manager chat as it is now: without the right to create topics, the desk falls
        back to reply-threading in the group (and says so) rather than lose anything.
        """
        if chat.forum and (anew or conversation.manager_topic_id is None):
            title = topic_title(conversation)
            try:
                conversation.manager_topic_id = await self.messenger.create_topic(
                    chat.chat_id, title, STATE_ICONS[topic_state(conversation)])
            except NoRights as error:
                log.warning("manager chat %s: %s; using replies instead of topics", chat.chat_id, error)
                chat = await self._without_topics(conversation.bot_id, chat)
                conversation.manager_topic_id = None
            conversation.topic_title = title
            await conversation.save(update_fields=["manager_topic_id", "topic_title"])
        card = await self.card(conversation, chat.locale, upto)
        conversation.manager_card_id = await self.messenger.post(self._where(conversation, chat), card)
        await conversation.save(update_fields=["manager_card_id"])
        return chat

    async def _without_topics(self, bot_id: int, chat: ManagerChat) -> ManagerChat:
        await stop_using_topics(bot_id)
        await self.messenger.post(Where(chat.chat_id), OutgoingText(escape(self.translate(chat.locale, NO_TOPICS))))
        return replace(chat, forum=False)

    async def _deliver(self, conversation: Conversation, chat: ManagerChat, before: int,
                       send: Callable[[Where], Awaitable[T]]) -> T:
        """Send into the conversation's topic; a closed topic is reopened, a deleted one recreated."""
        try:
            return await send(self._where(conversation, chat))
        except TopicClosed:
            try:
                await self.messenger.reopen_topic(chat.chat_id, int(conversation.manager_topic_id or 0))
                return await send(self._where(conversation, chat))
            except (TopicGone, TopicClosed) as error:
                log.info("reopening the topic of conversation %s failed (%s): recreating it", conversation.id, error)
            except Exception as error:  # no right to reopen: a new topic is the way back
                log.warning("reopening the topic of conversation %s failed (%s): recreating it", conversation.id,
                            error)
        except TopicGone:
            log.info("the topic of conversation %s was deleted: recreating it", conversation.id)
        chat = await self._open(conversation, chat, upto=before, anew=True)
        return await send(self._where(conversation, chat))

    async def card(self, conversation: Conversation, locale: str, upto: int | None = None) -> OutgoingText:
        """The header card: who, where from, why, what it cost, and the conversation so far."""
        def _(message: str) -> str:
            return self.translate(locale, message)

        user = conversation.user
        state = topic_state(conversation)
        assignee = await User.get_or_none(id=conversation.assignee_id)
        state_text = _(STATE_NAMES[state]).format(name=escape(assignee.first_name if assignee else ""))
        who = f"👤 <b>{escape(customer_name(conversation))}</b>"
        if user.username:
            who += f" @{escape(user.username)}"
        reason = REASONS.get(conversation.handoff_reason)
        lines = [who, f"{_(CARD_LANGUAGE)}: {escape(user.language or '?')} · {_(CARD_CHANNEL)}: "
                      f"{escape(str(conversation.channel))} · #{conversation.id}"]
        if reason:
            lines.append(f"{_(CARD_REASON)}: {_(reason)}")
        lines.append(f"{_(CARD_STATE)}: {state_text}")
        query = Message.filter(conversation_id=conversation.id)
        if upto is not None:
            query = query.filter(id__lte=upto)
        messages = await query.order_by("id")
        cost = sum((Decimal(str(m.ai_meta.get("cost") or 0)) for m in messages if m.author_kind == AuthorKind.AI),
                   Decimal(0))
        answers = sum(1 for m in messages if m.author_kind == AuthorKind.AI)
        lines.append(f"{_(CARD_AI_COST)}: ${cost:.4f} ({answers})")
        history = self._history(messages, locale)
        if history:
            lines += ["", f"<b>{_(CARD_HISTORY)}</b>", f"<blockquote expandable>{history}</blockquote>"]
        return OutgoingText("\n".join(lines), card_buttons(conversation.id, self.translate, locale))

    def _history(self, messages: list[Message], locale: str) -> str:
        picked: list[str] = []
        budget = HISTORY_CHARS
        for message in reversed(messages):
            line = message_line(message, self.translate, locale)
            if len(line) > budget:
                break
            budget -= len(line) + 1
            picked.append(line)
        picked.reverse()
        skipped = len(messages) - len(picked)
        if skipped:
            picked.insert(0, escape(self.translate(locale, CARD_EARLIER).format(count=skipped)))
        return "\n".join(picked)

    # --- copies of customer messages -------------------------------------------------------------

    async def _batch(self, job: OutboxJob, first: Message) -> tuple[list[OutboxJob], list[Message]]:
        """The message of `job`, plus the queued messages that go out with it: the rest of its album,
        or (when the queue has backed up) the customer's next text messages."""
        group_id = _album(first)
        if group_id:
            await albums.settle(first, self.album_settle)  # every item of the album is in it now
        elif first.attachments or first.author_kind != AuthorKind.CUSTOMER:
            return [], [first]  # staff's words from the Mini App go one by one, with their author
        followers: list[OutboxJob] = []
        batch = [first]
        size = len(first.text)
        items = len(first.attachments)
        for other in await outbox.pending_behind(job, "topic_copy"):
            message = await Message.get_or_none(id=other.payload["message_id"])
            if message is None:
                break
            if group_id:  # an item that came after its album was sealed goes with it, as in the customer's chat
                items += len(message.attachments)
                if _album(message) != group_id or items > albums.MAX_ITEMS:
                    break
            elif message.attachments or size + len(message.text) > COALESCE_CHARS:
                break
            size += len(message.text)
            followers.append(other)
            batch.append(message)
        return followers, batch

    async def _copy(self, conversation: Conversation, chat: ManagerChat, batch: list[Message]) -> list[int]:
        first = batch[0]
        before = first.id - 1
        if not first.attachments:
            html, _ = self._copy_text(conversation, chat, batch)
            return [await self._deliver(conversation, chat, before, lambda where: self.messenger.post(
                where, OutgoingText(html)))]
        original = await MessageCopy.filter(message_id=first.id, original=True).order_by("telegram_message_id").first()
        kind = str(first.attachments[0].get("type"))
        if original is None and files.fetchable(first.attachments[0]):  # a website visitor's file: its bytes
            uploaded = await self._upload(conversation, chat, first)
            if uploaded is not None:
                return uploaded
        if original is None:  # nothing to copy from (a visitor's file that is gone): describe it instead
            body = "\n\n".join(self._paragraph(m, chat) for m in batch)
            html = body if chat.forum else self._prefixed(conversation, body)
            return [await self._deliver(conversation, chat, before, lambda where: self.messenger.post(
                where, OutgoingText(html)))]
        if len(batch) > 1 or len(first.attachments) > 1:
            items = _album_items(batch)
            if not chat.forum:
                head = items[0]
                items[0] = AlbumItem(head.kind, head.file_id, self._prefixed(conversation, head.caption_html))
            return await self._deliver(conversation, chat, before,
                                       lambda where: self.messenger.send_album(where, items))
        caption: str | None = None
        reply_to: int | None = None
        if not chat.forum:
            if kind in CAPTIONED_KINDS:
                caption = self._prefixed(conversation, escape(first.text))
            else:
                reply_to = int(conversation.manager_card_id or 0) or None

        async def send(where: Where) -> list[int]:
            if reply_to:
                where = Where(where.chat_id, where.thread_id, reply_to)
            return [await self.messenger.copy(where, int(original.chat_id), int(original.telegram_message_id),
                                              caption)]

        return await self._deliver(conversation, chat, before, send)

    async def _upload(self, conversation: Conversation, chat: ManagerChat, message: Message) -> list[int] | None:
        """A stored file (a website visitor's upload) sent from its bytes, with the message as its caption;
        None when it is gone (then it is described)."""
        attachment = message.attachments[0]
        try:
            content = await self.files.stored(attachment, bot_id=message.bot_id,
                                              conversation_id=message.conversation_id)
        except MediaUnavailable as error:
            log.info("the file of message %s is gone: %s", message.id, error)
            return None
        if content is None:
            return None
        kind = str(attachment.get("type"))
        if kind == "photo" and len(content) > PHOTO_MAX_BYTES:
            kind = "document"  # Telegram takes photos up to 10 MB, files up to 50
        upload = FileUpload(kind, str(attachment.get("name") or "file"), content,
                            str(attachment.get("mime_type") or "application/octet-stream"))
        caption = escape(message.text)
        if not chat.forum:
            caption = self._prefixed(conversation, caption)
        if len(html_to_text(caption)) <= CAPTION_CHARS:
            return [await self._deliver(conversation, chat, message.id - 1,
                                        lambda where: self.messenger.upload(where, upload, caption))]

        async def file_then_words(where: Where) -> list[int]:  # too long for a caption: the words follow the file
            header = "" if chat.forum else self._prefixed(conversation, "")
            return [await self.messenger.upload(where, upload, header),
                    await self.messenger.post(where, OutgoingText(caption))]

        return await self._deliver(conversation, chat, message.id - 1, file_then_words)

    def _copy_text(self, conversation: Conversation, chat: ManagerChat, batch: list[Message]) -> tuple[str, bool]:
        """The text of a copy (several coalesced messages are one paragraph each) and whether it is a caption."""
        if batch[0].attachments and len(batch) == 1 and str(batch[0].attachments[0].get("type")) in CAPTIONED_KINDS:
            caption = escape(batch[0].text)
            return (caption if chat.forum else self._prefixed(conversation, caption)), True
        body = "\n\n".join(self._paragraph(m, chat) for m in batch)
        return (body if chat.forum else self._prefixed(conversation, body)), False

    def _paragraph(self, message: Message, chat: ManagerChat) -> str:
        if message.author_kind in (AuthorKind.MANAGER, AuthorKind.NOTE):
            # Written in the Mini App (stored as HTML): the topic says who wrote it there.
            author = message.author.first_name if message.author else ""
            who = self.translate(chat.locale, FROM_APP).format(name=escape(author))
            body = sanitize_html(message.text) if message.author_kind == AuthorKind.MANAGER else escape(message.text)
            return f"{AUTHORS[message.author_kind]} <b>{who}</b>: {body}"
        return escape(message.text) if not message.attachments else message_line(message, self.translate, chat.locale)

    def _prefixed(self, conversation: Conversation, html: str) -> str:
        """In a group without topics every copy says whose it is; a reply to it answers that customer."""
        header = f"👤 <b>{escape(customer_name(conversation))}</b> · #{conversation.id}"
        return f"{header}\n{html}" if html else header

    async def _remember(self, chat_id: int, batch: list[Message], sent: list[int]) -> None:
        rows = []
        each = len(sent) == sum(len(message.attachments) for message in batch)
        start = 0
        for message in batch:
            # An album's items point at their message (one message has several); coalesced texts all at the one.
            telegram_ids = sent[start:start + len(message.attachments)] if each else sent
            start += len(message.attachments)
            rows += [MessageCopy(bot_id=message.bot_id, message_id=message.id, chat_id=chat_id,
                                 telegram_message_id=telegram_id) for telegram_id in telegram_ids]
        await MessageCopy.bulk_create(rows, ignore_conflicts=True)


def _album_items(batch: list[Message]) -> list[AlbumItem]:
    """The items of an album as the managers get it: each attachment with its own caption (a message of one
    attachment, an album item stored before albums were one message, has its caption as its text)."""
    items = []
    for message in batch:
        for attachment in message.attachments:
            caption = str(attachment.get("caption") or "") if len(message.attachments) > 1 else message.text
            items.append(AlbumItem(str(attachment["type"]), str(attachment["file_id"]), escape(caption)))
    return items


def _album(message: Message) -> str:
    return str(message.attachments[0].get("media_group_id") or "") if message.attachments else ""


class ManagerDesks:
    """The manager group's jobs of every bot, each run with its own bot's messenger: bots may share one group
    (each in its own topics), and a bot writes only as itself."""

    def __init__(self, messengers: Messengers, translate: Translate, default_locale: str,
                 album_settle: float = ALBUM_SETTLE_SECONDS) -> None:
        self.messengers = messengers
        self.translate = translate
        self.default_locale = default_locale
        self.album_settle = album_settle
        self._desks: dict[int, tuple[Messenger, dict[str, JobHandler]]] = {}

    def _desk(self, bot_id: int) -> dict[str, JobHandler]:
        messenger = self.messengers.of(bot_id)
        if messenger is None:  # paused, or starting on this instance: its jobs wait for it, uncounted
            raise outbox.Postpone(NO_MANAGER_CHAT_RETRY, f"bot {bot_id} is not served here now")
        known = self._desks.get(bot_id)
        if known is None or known[0] is not messenger:  # first use, or a new token since
            group = ManagerGroup(messenger, self.translate, self.default_locale, self.album_settle)
            known = self._desks[bot_id] = (messenger, group.handlers())
        return known[1]

    def handlers(self) -> dict[str, JobHandler]:
        def of_kind(kind: str) -> JobHandler:
            async def run(job: OutboxJob) -> None:
                await self._desk(job.bot_id)[kind](job)

            return run

        return {kind: of_kind(kind) for kind in MANAGER_JOB_KINDS}
