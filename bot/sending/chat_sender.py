"""services.ports.Messenger over aiogram: what the domain sends, as Bot API calls."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.enums import ParseMode
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest, TelegramForbiddenError
from aiogram.types import (
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaAudio,
    InputMediaDocument,
    InputMediaPhoto,
    InputMediaVideo,
    LinkPreviewOptions,
    ReplyParameters,
)

from bot.sending.priorities import send_priority
from services.ports import (
    AlbumItem,
    FileUpload,
    GroupRights,
    MediaUnavailable,
    MessageGone,
    NoRights,
    OutgoingText,
    RecipientBlocked,
    SendPriority,
    TopicClosed,
    TopicGone,
    Where,
)

log = logging.getLogger(__name__)

# Every text and caption the bot sends is HTML (services.render writes it; handlers escape theirs).
BOT_DEFAULTS = DefaultBotProperties(parse_mode=ParseMode.HTML)


def _markup(message: OutgoingText) -> InlineKeyboardMarkup | None:
    if not message.buttons:
        return None
    return InlineKeyboardMarkup(inline_keyboard=[
        [InlineKeyboardButton(text=b.text, callback_data=b.callback_data or None, url=b.url or None) for b in row]
        for row in message.buttons
    ])


class TelegramChatSender:
    """services.ports.Messenger over aiogram (whose session carries the SenderMiddleware).

    Everything it sends is HTML, by the bot's default parse mode (BOT_DEFAULTS)."""

    def __init__(self, bot: Bot) -> None:
        if bot.default.parse_mode != ParseMode.HTML:  # else customers would see the tags
            raise ValueError("TelegramChatSender needs a Bot made with default=BOT_DEFAULTS (parse mode HTML)")
        self.bot = bot
        self._topic_icons: dict[str, str] | None = None

    async def send_text(self, chat_id: int, message: OutgoingText) -> int:
        return await self.post(Where(chat_id), message)

    async def send_draft(self, chat_id: int, draft_id: int, html: str) -> None:
        with _translated_errors():
            await self.bot.send_message_draft(chat_id=chat_id, draft_id=draft_id, text=html, can_stop=True)

    async def send_typing(self, chat_id: int) -> None:
        with _translated_errors():
            await self.bot.send_chat_action(chat_id=chat_id, action="typing")

    async def post(self, where: Where, message: OutgoingText) -> int:
        priority = send_priority.set(SendPriority.FOLLOW_UP if message.after_preview else SendPriority.FIRST_WORDS)
        try:
            return await self._post(where, message)
        finally:
            send_priority.reset(priority)

    async def _post(self, where: Where, message: OutgoingText) -> int:
        with _translated_errors():
            sent = await self.bot.send_message(
                where.chat_id, message.html, reply_markup=_markup(message),
                message_thread_id=where.thread_id, reply_parameters=_reply(where),
                link_preview_options=LinkPreviewOptions(is_disabled=True), disable_notification=message.silent or None)
        return sent.message_id

    async def copy(self, where: Where, from_chat_id: int, message_id: int, caption_html: str | None = None,
                   *, silent: bool = False) -> int:
        with _translated_errors():  # no caption (None): the copy keeps the original's
            copied = await self.bot.copy_message(
                where.chat_id, from_chat_id, message_id, message_thread_id=where.thread_id,
                reply_parameters=_reply(where), disable_notification=silent or None, caption=caption_html)
        return copied.message_id

    async def send_album(self, where: Where, items: list[AlbumItem]) -> list[int]:
        kinds = {"photo": InputMediaPhoto, "video": InputMediaVideo, "document": InputMediaDocument,
                 "audio": InputMediaAudio}
        media = [kinds[item.kind](media=item.file_id, caption=item.caption_html or None) for item in items]
        with _translated_errors():
            sent = await self.bot.send_media_group(where.chat_id, media,
                                                   message_thread_id=where.thread_id,
                                                   reply_parameters=_reply(where))
        return [message.message_id for message in sent]

    async def upload(self, where: Where, file: FileUpload, caption_html: str = "") -> int:
        caption = caption_html or None
        with _translated_errors():
            if file.kind == "photo":
                try:
                    sent = await self.bot.send_photo(where.chat_id, BufferedInputFile(file.content, file.name),
                                                     caption=caption, message_thread_id=where.thread_id,
                                                     reply_parameters=_reply(where))
                    return sent.message_id
                except TelegramBadRequest as error:  # a photo Telegram will not take as one (its size, its sides)
                    if "PHOTO_" not in error.message and "IMAGE_PROCESS_FAILED" not in error.message:
                        raise
                    log.info("telegram: %s; sending the photo as a file", error.message)
            sent = await self.bot.send_document(where.chat_id, BufferedInputFile(file.content, file.name),
                                                caption=caption, message_thread_id=where.thread_id,
                                                reply_parameters=_reply(where))
        return sent.message_id

    async def edit(self, chat_id: int, message_id: int, html: str, *, caption: bool = False) -> None:
        try:
            with _translated_errors():
                if caption:
                    await self.bot.edit_message_caption(chat_id=chat_id, message_id=message_id, caption=html)
                else:
                    await self.bot.edit_message_text(html, chat_id=chat_id, message_id=message_id,
                                                     link_preview_options=LinkPreviewOptions(is_disabled=True))
        except TelegramBadRequest as error:
            if "message is not modified" not in error.message:
                raise

    async def download(self, file_id: str, max_bytes: int) -> bytes:
        try:
            with _translated_errors():
                found = await self.bot.get_file(file_id)
                if found.file_path is None or (found.file_size or 0) > max_bytes:
                    raise MediaUnavailable(f"file {file_id}: {found.file_size} bytes, at most {max_bytes}")
                data = await self.bot.download_file(found.file_path)
        except TelegramBadRequest as error:  # "file is too big" past the Bot API's 20 MB, or a wrong id
            raise MediaUnavailable(error.message) from error
        if data is None:
            raise MediaUnavailable(f"file {file_id}: no bytes")
        content = data.read()
        if len(content) > max_bytes:
            raise MediaUnavailable(f"file {file_id}: {len(content)} bytes, at most {max_bytes}")
        return content

    async def remove_buttons(self, chat_id: int, message_id: int) -> None:
        try:
            with _translated_errors():
                await self.bot.edit_message_reply_markup(chat_id=chat_id, message_id=message_id)
        except (TelegramBadRequest, MessageGone) as error:
            log.info("telegram: could not remove buttons from %s/%s: %s", chat_id, message_id, error)

    async def create_topic(self, chat_id: int, name: str, icon: str = "") -> int:
        with _translated_errors():
            topic = await self.bot.create_forum_topic(chat_id, name[:128],
                                                      icon_custom_emoji_id=await self._topic_icon(icon))
        return topic.message_thread_id

    async def rename_topic(self, chat_id: int, thread_id: int, name: str, icon: str = "") -> None:
        try:
            with _translated_errors():
                await self.bot.edit_forum_topic(chat_id, thread_id, name=name[:128],
                                                icon_custom_emoji_id=await self._topic_icon(icon))
        except TelegramBadRequest as error:
            if "TOPIC_NOT_MODIFIED" not in error.message:
                raise

    async def _topic_icon(self, emoji: str) -> str | None:
        """The custom emoji id of a topic icon showing `emoji`, if Telegram offers one.

        Bots may only use the icons getForumTopicIconStickers lists; asked once, then remembered.
        """
        if not emoji:
            return None
        if self._topic_icons is None:
            try:
                stickers = await self.bot.get_forum_topic_icon_stickers()
            except TelegramAPIError as error:
                log.info("telegram: no topic icons (%s)", error)
                stickers = []
            self._topic_icons = topic_icon_ids([(s.emoji or "", s.custom_emoji_id or "") for s in stickers])
        return self._topic_icons.get(_bare(emoji))

    async def close_topic(self, chat_id: int, thread_id: int) -> None:
        await self._topic_state(chat_id, thread_id, closed=True)

    async def reopen_topic(self, chat_id: int, thread_id: int) -> None:
        await self._topic_state(chat_id, thread_id, closed=False)

    async def _topic_state(self, chat_id: int, thread_id: int, *, closed: bool) -> None:
        try:
            with _translated_errors():
                if closed:
                    await self.bot.close_forum_topic(chat_id, thread_id)
                else:
                    await self.bot.reopen_forum_topic(chat_id, thread_id)
        except TelegramBadRequest as error:
            if "TOPIC_NOT_MODIFIED" not in error.message:  # already in that state
                raise

    async def member_status(self, chat_id: int, user_id: int) -> str:
        try:
            member = await self.bot.get_chat_member(chat_id, user_id)
        except (TelegramBadRequest, TelegramForbiddenError):
            return "left"
        return str(member.status)

    async def group_rights(self, chat_id: int) -> GroupRights:
        chat = await self.bot.get_chat(chat_id)
        member = await self.bot.get_chat_member(chat_id, self.bot.id)
        status = str(member.status)
        return GroupRights(
            is_member=status not in ("left", "kicked"),
            is_admin=status in ("administrator", "creator"),
            can_manage_topics=status == "creator" or bool(getattr(member, "can_manage_topics", False)),
            is_forum=bool(chat.is_forum))


def _bare(emoji: str) -> str:
    return emoji.replace("\ufe0f", "")  # "❗️" and "❗" are one icon


def topic_icon_ids(stickers: list[tuple[str, str]]) -> dict[str, str]:
    """Emoji -> custom emoji id, from getForumTopicIconStickers' (emoji, custom_emoji_id) pairs."""
    return {_bare(emoji): emoji_id for emoji, emoji_id in stickers if emoji and emoji_id}


def _reply(where: Where) -> ReplyParameters | None:
    return ReplyParameters(message_id=where.reply_to, allow_sending_without_reply=True) if where.reply_to else None


@contextlib.contextmanager
def _translated_errors() -> Iterator[None]:
    """Telegram's error texts as the domain's exceptions; everything else passes through."""
    try:
        yield
    except TelegramForbiddenError as error:
        raise RecipientBlocked(str(error)) from error
    except TelegramBadRequest as error:
        text = error.message
        if "message thread not found" in text:
            raise TopicGone(text) from error
        if "TOPIC_CLOSED" in text:
            raise TopicClosed(text) from error
        if "to copy not found" in text or "to edit not found" in text or "to forward not found" in text:
            raise MessageGone(text) from error
        if "not enough rights" in text:
            raise NoRights(text) from error
        raise
