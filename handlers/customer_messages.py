"""Whatever a customer writes in the private chat: stored with its answer job, then acknowledged."""

from __future__ import annotations

from typing import Any

from aiogram import Router
from aiogram.types import Message, Update

from bot.settings import Settings
from handlers.filters import from_a_person_in_private
from handlers.identity import as_customer
from models import Bot as Tenant
from models import User
from services import conversations
from services.conversations import Incoming
from services.limits import RateLimiter
from services.outbox import OutboxWorker


def _attachments(message: Message) -> list[dict[str, Any]]:
    if message.photo:
        photo = message.photo[-1]
        return [{"type": "photo", "file_id": photo.file_id, "size": photo.file_size}]
    for kind in ("document", "voice", "audio", "video", "video_note", "sticker", "animation"):
        media = getattr(message, kind)
        if media is not None:
            return [{"type": kind, "file_id": media.file_id, "name": getattr(media, "file_name", None),
                     "size": getattr(media, "file_size", None)}]
    if message.location:
        return [{"type": "location", "latitude": message.location.latitude,
                 "longitude": message.location.longitude}]
    if message.contact:
        return [{"type": "contact", "phone_number": message.contact.phone_number,
                 "name": message.contact.first_name}]
    return []


async def customer_wrote(message: Message, tenant: Tenant, settings: Settings, limiter: RateLimiter,
                         outbox: OutboxWorker, event_update: Update, customer: User | None) -> None:
    user = message.from_user
    assert user is not None
    stored = await conversations.record_customer_message(
        tenant.id,
        as_customer(user),
        Incoming(source_key=f"tg:{event_update.update_id}", text=message.text or message.caption or "",
                 attachments=_attachments(message)),
        limiter=limiter, default_locale=settings.default_locale, known=customer,
    )
    if not stored.duplicate:
        outbox.wake()


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.register(customer_wrote, from_a_person_in_private)
    return router
