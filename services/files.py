"""Files in conversations: what a website visitor attaches (kept as `StoredFile` rows) and what anyone may fetch.

A visitor's upload is checked here (its type from its bytes, never from what the browser says; its size),
stored with its message (services.conversations), and named by the message's attachment
(`{"type": "photo"|"document", "stored_file_id", "name", "mime_type", "size"}`). A file is served only
through a message its asker may see: a visitor's own conversations (services.widget's rule), a staff
member's visible conversation. Telegram files (a manager's photo in the topic) come through the
Messenger's download, stored ones from the database; either way with a type that cannot run in a page.
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass, field
from typing import Any

from models import Message, StoredFile
from services.ports import MediaUnavailable, Messengers
from services.vision import image_type

TELEGRAM_DOWNLOAD_LIMIT = 20_000_000  # the Bot API's getFile cap
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
DEFAULT_UPLOAD_TYPES = ("image/jpeg", "image/png", "image/webp", "image/gif", "application/pdf", DOCX, "text/plain")
PHOTO_TYPES = frozenset({"image/jpeg", "image/png", "image/webp"})  # shown as a photo; other files as documents
EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp", "image/gif": ".gif",
              "application/pdf": ".pdf", DOCX: ".docx", "text/plain": ".txt"}
TEXT_EXTENSIONS = (".txt", ".csv", ".md", ".log")
NAMES = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WebP", "image/gif": "GIF", "application/pdf": "PDF",
         DOCX: "DOCX", "text/plain": "TXT"}  # what a visitor is told they may send
# Served with their own type (as a download); anything else is application/octet-stream.
DOWNLOAD_TYPES = frozenset({"application/pdf", DOCX, "text/plain"})
MAX_NAME = 120


class UploadRefused(ValueError):
    """A visitor's file is not taken: `code` is `file_too_large`, `file_type` or `empty_file`."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class NewFile:
    """A file to store with the customer's message (in its transaction)."""

    name: str
    mime_type: str
    content: bytes = field(repr=False)

    @property
    def kind(self) -> str:
        return "photo" if self.mime_type in PHOTO_TYPES else "document"


@dataclass(frozen=True)
class UploadRules:
    """WIDGET_UPLOAD_MAX_BYTES and WIDGET_UPLOAD_TYPES."""

    max_bytes: int = 10_000_000
    types: tuple[str, ...] = DEFAULT_UPLOAD_TYPES

    def accept(self) -> str:
        """The file picker's `accept`: the types and their usual extensions."""
        extra = [".jpeg"] if "image/jpeg" in self.types else []
        if "text/plain" in self.types:
            extra += list(TEXT_EXTENSIONS[1:])
        return ",".join([*self.types, *(EXTENSIONS[t] for t in self.types if t in EXTENSIONS), *extra])

    def names(self) -> str:
        return ", ".join(NAMES[kind] for kind in self.types)

    def check(self, name: str, content: bytes) -> NewFile:
        """The file as it will be stored; UploadRefused when it is too big, empty or of a type not taken."""
        if len(content) > self.max_bytes:
            raise UploadRefused("file_too_large")
        if not content:
            raise UploadRefused("empty_file")
        kind = sniff(content, name)
        if kind is None or kind not in self.types:
            raise UploadRefused("file_type")
        return NewFile(safe_name(name, kind), kind, content)


def sniff(content: bytes, name: str) -> str | None:
    """The file's type from its bytes (and, for text, its name); None for anything we do not take."""
    image = image_type(content)
    if image is not None:
        return image
    if content.startswith(b"%PDF-"):
        return "application/pdf"
    if content.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(content)) as archive:
                return DOCX if "word/document.xml" in archive.namelist() else None
        except zipfile.BadZipFile:
            return None
    if name.lower().endswith(TEXT_EXTENSIONS) and b"\x00" not in content:
        try:
            content.decode("utf-8")
        except UnicodeDecodeError:
            return None
        return "text/plain"
    return None


def safe_name(name: str, mime_type: str) -> str:
    """A file name to show and to offer for download: no path, no control characters, a fitting extension."""
    base = re.sub(r"[\x00-\x1f\x7f/\\\"<>:|?*]+", "_", name.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]).strip(" .")
    extension = EXTENSIONS.get(mime_type, "")
    if not base:
        base = "file" + extension
    if extension and not base.lower().endswith((extension, ".jpeg" if extension == ".jpg" else extension)):
        base += extension
    return base[-MAX_NAME:]


def stored_attachment(stored: StoredFile, kind: str) -> dict[str, Any]:
    return {"type": kind, "stored_file_id": stored.id, "name": stored.name, "mime_type": stored.mime_type,
            "size": stored.size}


def fetchable(attachment: dict[str, Any]) -> bool:
    """Whether the file behind an attachment can be served (a location or a contact has none)."""
    return isinstance(attachment.get("stored_file_id"), int) or isinstance(attachment.get("file_id"), str)


def shows_as_image(attachment: dict[str, Any]) -> bool:
    if attachment.get("type") == "photo":
        return True
    return attachment.get("type") in ("document", "sticker") and str(attachment.get("mime_type") or "") in PHOTO_TYPES


def attachment_json(attachment: dict[str, Any]) -> dict[str, Any]:
    """What a page is told of an attachment: its kind and name, whether its file can be fetched and shown, and a
    voice's transcript once it was heard."""
    row: dict[str, Any] = {
        "type": str(attachment.get("type")), "name": str(attachment.get("name") or attachment.get("file_name") or ""),
        "file": fetchable(attachment), "image": fetchable(attachment) and shows_as_image(attachment)}
    if attachment.get("transcript"):
        row["transcript"] = str(attachment["transcript"])
    return row


@dataclass(frozen=True)
class ServedFile:
    content: bytes = field(repr=False)
    mime_type: str  # safe to send as Content-Type
    name: str
    inline: bool  # an image, shown in place; anything else is a download


class ConversationFiles:
    """The bytes behind a message's attachment, for whoever was found allowed to see that message."""

    def __init__(self, messengers: Messengers | None, telegram_max_bytes: int = TELEGRAM_DOWNLOAD_LIMIT) -> None:
        self.messengers = messengers  # None: only stored files (a widget's) are served
        self.telegram_max_bytes = telegram_max_bytes

    async def stored(self, attachment: dict[str, Any], *, bot_id: int | None = None,
                     conversation_id: int | None = None, max_bytes: int | None = None) -> bytes | None:
        """A stored file's bytes (None: the attachment names none); MediaUnavailable when it is gone or too big.

        `bot_id` and `conversation_id` hold it to the message that names it (a request's, never trusted alone)."""
        file_id = attachment.get("stored_file_id")
        if not isinstance(file_id, int) or isinstance(file_id, bool):
            return None
        query = StoredFile.filter(id=file_id)
        if bot_id is not None:
            query = query.filter(bot_id=bot_id)
        if conversation_id is not None:
            query = query.filter(conversation_id=conversation_id)
        row = await query.first()
        if row is None:
            raise MediaUnavailable(f"stored file {file_id} is gone")
        if max_bytes is not None and row.size > max_bytes:
            raise MediaUnavailable(f"stored file {file_id}: {row.size} bytes, at most {max_bytes}")
        return bytes(row.content)

    async def serve(self, message: Message, index: int) -> ServedFile | None:
        """The file of the message's `index`-th attachment, or None (no such attachment, gone, unreachable)."""
        if not 0 <= index < len(message.attachments):
            return None
        attachment = message.attachments[index]
        if not isinstance(attachment, dict) or not fetchable(attachment):
            return None
        try:
            content = await self.stored(attachment, bot_id=int(message.bot_id),
                                      conversation_id=int(message.conversation_id))
            if content is None:
                messenger = self.messengers.of(int(message.bot_id)) if self.messengers is not None else None
                if messenger is None:  # a file id is good only with the bot that received it
                    return None
                content = await messenger.download(str(attachment["file_id"]), self.telegram_max_bytes)
        except MediaUnavailable:
            return None
        image = image_type(content)
        name = str(attachment.get("name") or attachment.get("file_name") or "")
        if image is not None:
            return ServedFile(content, image, safe_name(name or f"{attachment.get('type')}-{message.id}", image), True)
        claimed = str(attachment.get("mime_type") or "")
        mime = claimed if claimed in DOWNLOAD_TYPES else "application/octet-stream"
        return ServedFile(content, mime, safe_name(name or f"file-{message.id}", mime), False)
