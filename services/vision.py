"""Photos and image files customers send, as a vision model sees them: OpenAI image content parts."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from services.i18n import N_

CANNOT_SEE = N_("I can't see images, so I've passed your conversation to a person.")
NOT_OPENED = N_("I couldn't open your image, so I've passed your conversation to a person.")
# What the model reads beside a photo sent without words (a system-side note, not shown to anyone).
WITHOUT_WORDS = "(The customer sent this image without any words.)"

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".gif")


def images_of(attachments: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The attachments a vision model may see: photos, and documents that are image files."""
    return [attachment for attachment in attachments if _is_image(attachment)]


def _is_image(attachment: dict[str, Any]) -> bool:
    if attachment.get("type") == "photo":
        return True
    if attachment.get("type") != "document":
        return False
    mime = str(attachment.get("mime_type") or "")
    name = str(attachment.get("name") or "").lower()
    return mime.startswith("image/") or name.endswith(IMAGE_EXTENSIONS)


def image_type(data: bytes) -> str | None:
    """The image's media type from its first bytes; None for anything vision models are not given."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def image_part(data: bytes) -> dict[str, Any] | None:
    """An `image_url` content part holding the image as a data URL; None when the bytes are no image."""
    kind = image_type(data)
    if kind is None:
        return None
    return {"type": "image_url", "image_url": {"url": f"data:{kind};base64,{base64.b64encode(data).decode()}"}}
