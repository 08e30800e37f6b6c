"""What the domain needs from the outside world, as protocols the composition root fills in."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Protocol


class RecipientBlocked(Exception):
    """The person blocked the bot (or never started it): nothing more can be sent to them."""


class MediaUnavailable(Exception):
    """A file a customer sent cannot be fetched: gone, or larger than the caller allows."""


class TopicGone(Exception):
    """The forum topic was deleted ("message thread not found")."""


class TopicClosed(Exception):
    """The forum topic was closed by someone, and the bot may not write into closed topics."""


class NoRights(Exception):
    """The bot lacks an admin right it needs in that chat (e.g. to create topics)."""


class MessageGone(Exception):
    """The message to copy or edit no longer exists."""


@dataclass(frozen=True)
class Button:
    text: str
    callback_data: str = ""
    url: str = ""


class SendPriority(IntEnum):
    """Which sends take the bot's budget first when it is short (rush hour)."""

    FIRST_WORDS = 0  # any message, or an answer's first draft: someone waits for a first word from us
    FOLLOW_UP = 1  # an answer whose draft the customer already reads
    UPDATE = 2  # a draft's later update, a typing action


@dataclass(frozen=True)
class OutgoingText:
    html: str
    buttons: list[list[Button]] = field(default_factory=list)
    silent: bool = False  # no notification sound (the customer's own setting)
    after_preview: bool = False  # the customer reads it as a draft already: others' first words go first


@dataclass(frozen=True)
class Where:
    """A place in a chat: the chat, a forum topic in it, a message to reply to."""

    chat_id: int
    thread_id: int | None = None
    reply_to: int | None = None


@dataclass(frozen=True)
class AlbumItem:
    kind: str  # photo, video, document, audio
    file_id: str
    caption_html: str = ""


@dataclass(frozen=True)
class FileUpload:
    """A file sent from its bytes (a website visitor's upload, which Telegram has never seen)."""

    kind: str  # photo or document
    name: str
    content: bytes = field(repr=False)
    mime_type: str = "application/octet-stream"


@dataclass(frozen=True)
class GroupRights:
    is_member: bool
    is_admin: bool
    can_manage_topics: bool
    is_forum: bool


class ChatSender(Protocol):
    """Sends to a customer's chat. Implementations pace, retry and raise RecipientBlocked."""

    async def send_text(self, chat_id: int, message: OutgoingText) -> int:
        """Send one message (at most 4096 visible characters); return its message id."""
        ...

    async def send_draft(self, chat_id: int, draft_id: int, html: str) -> None:
        """Show or update a streamed preview of an answer being written, with a stop button."""
        ...

    async def send_typing(self, chat_id: int) -> None:
        """Show "typing…" in the chat for a few seconds (until a message is sent)."""
        ...


class Messenger(ChatSender, Protocol):
    """Everything the manager desk does in Telegram. Errors come as the exceptions above."""

    async def post(self, where: Where, message: OutgoingText) -> int: ...

    async def copy(self, where: Where, from_chat_id: int, message_id: int, caption_html: str | None = None,
                   *, silent: bool = False) -> int:
        """Copy a message (media and formatting survive); `caption_html` replaces its caption."""
        ...

    async def send_album(self, where: Where, items: list[AlbumItem]) -> list[int]: ...

    async def upload(self, where: Where, file: FileUpload, caption_html: str = "") -> int:
        """Send a file from its bytes (sendPhoto, or sendDocument for other files and photos Telegram refuses)."""
        ...

    async def edit(self, chat_id: int, message_id: int, html: str, *, caption: bool = False) -> None:
        """Replace a message's text (or caption); an edit that changes nothing is not an error."""
        ...

    async def remove_buttons(self, chat_id: int, message_id: int) -> None: ...

    async def create_topic(self, chat_id: int, name: str, icon: str = "") -> int:
        """A forum topic; `icon` is an emoji, used when Telegram offers it as a topic icon."""
        ...

    async def rename_topic(self, chat_id: int, thread_id: int, name: str, icon: str = "") -> None: ...

    async def close_topic(self, chat_id: int, thread_id: int) -> None: ...

    async def reopen_topic(self, chat_id: int, thread_id: int) -> None: ...

    async def member_status(self, chat_id: int, user_id: int) -> str:
        """creator, administrator, member, restricted, left or kicked."""
        ...

    async def group_rights(self, chat_id: int) -> GroupRights: ...

    async def download(self, file_id: str, max_bytes: int) -> bytes:
        """A file's bytes (a customer's voice note, photo or document, via getFile); MediaUnavailable when
        it is gone or above `max_bytes`."""
        ...


class WaitingQueue(Protocol):
    def start(self, priority: SendPriority) -> None:
        """A send of this priority waits for the budget (less urgent ones give way meanwhile)."""
        ...

    def stop(self, priority: SendPriority) -> None: ...


class DraftBudget(Protocol):
    """Telegram's budget for one bot as a whole (bot/sending/'s pacers): Telegram's limits are per bot."""

    @property
    def queue(self) -> WaitingQueue: ...

    async def settle_draft(self) -> None:
        """A draft reserved got its answer: Telegram counted it on arrival, so its place counts from now."""
        ...

    async def reserve_draft(self, priority: SendPriority = SendPriority.UPDATE) -> float:
        """Take one send for a draft now (0), or say how long to wait before asking again; a more
        urgent send waiting for the budget goes first."""
        ...


class Messengers(Protocol):
    """Each bot's Messenger, by the bot's id (the tenant row's): every conversation, job and member belongs
    to one bot, and only that bot may write to its chats."""

    def of(self, bot_id: int) -> Messenger | None:
        """None: that bot is not served here now (Telegram is off, or it is paused, removed or starting)."""
        ...

    def budget_of(self, bot_id: int) -> DraftBudget | None: ...
