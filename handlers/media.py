"""What a Telegram message carries besides text, as the services store it."""

from __future__ import annotations

from typing import Any

from aiogram.types import Message

MEDIA_KINDS = ("document", "voice", "audio", "video", "video_note", "sticker", "animation")


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
                    "size": getattr(media, "file_size", None)}
    if message.location:
        return {"type": "location", "latitude": message.location.latitude, "longitude": message.location.longitude}
    if message.contact:
        return {"type": "contact", "phone_number": message.contact.phone_number, "name": message.contact.first_name}
    return None
