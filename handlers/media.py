"""What a Telegram message carries besides text, as the services store it."""

from __future__ import annotations

import html
from typing import Any

from aiogram.types import Message
from aiogram.utils.text_decorations import HtmlDecoration

# An animation (GIF) also carries `document`, as Telegram sends it: it is looked for first.
MEDIA_KINDS = ("animation", "document", "voice", "audio", "video", "video_note", "sticker")


class _EscapedHtml(HtmlDecoration):
    """aiogram's HTML decoration puts attribute values in as they come (a link's address, a code block's
    language), so `"` in one ends the attribute; here every value is escaped, and a language is a class
    as Telegram writes it."""

    def _tag(self, tag: str, content: str, *, attrs: dict[str, str] | None = None,
             flags: list[str] | None = None) -> str:
        escaped = {name: html.escape(value, quote=True) for name, value in (attrs or {}).items()}
        return super()._tag(tag, content, attrs=escaped, flags=flags)

    def pre_language(self, value: str, language: str) -> str:
        return self._tag(self.PRE_TAG, self._tag(self.CODE_TAG, value, attrs={"class": f"language-{language}"}))


_ESCAPED_HTML = _EscapedHtml()


def html_text(message: Message) -> str:
    """The message's text (or caption) as Telegram HTML, rebuilt from its entities, well-formed whatever they hold."""
    return _ESCAPED_HTML.unparse(message.text or message.caption or "",
                                 message.entities or message.caption_entities or [])


def attachments(message: Message) -> list[dict[str, Any]]:
    found = _attachment(message)
    if found and message.media_group_id:
        found["media_group_id"] = message.media_group_id  # the parts of one album go out together
    return [found] if found else []


def _attachment(message: Message) -> dict[str, Any] | None:
    if message.photo:
        photo = message.photo[-1]
        return {"type": "photo", "file_id": photo.file_id, "size": photo.file_size}
    for kind in MEDIA_KINDS:
        media = getattr(message, kind)
        if media is not None:
            return {"type": kind, "file_id": media.file_id, "name": getattr(media, "file_name", None),
                    "size": getattr(media, "file_size", None), "mime_type": getattr(media, "mime_type", None),
                    "duration": getattr(media, "duration", None)}  # seconds: voice, audio, video, video notes
    if message.location:
        return {"type": "location", "latitude": message.location.latitude, "longitude": message.location.longitude}
    if message.contact:
        return {"type": "contact", "phone_number": message.contact.phone_number, "name": message.contact.first_name}
    return None
