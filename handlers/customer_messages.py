"""Whatever a customer writes in the private chat: stored with its answer job, then acknowledged."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import Message, Update

from bot.settings import Settings
from handlers.filters import from_a_person_in_private
from handlers.identity import as_customer
from handlers.media import attachments
from models import Bot as Tenant
from models import User
from services import conversations, desk
from services.conversations import Incoming
from services.inbox import InboxFeed
from services.limits import RateLimiter
from services.outbox import Outboxes


async def customer_wrote(message: Message, tenant: Tenant, settings: Settings, limiter: RateLimiter,
                         outbox: Outboxes, event_update: Update, customer: User | None,
                         inbox_feed: InboxFeed) -> None:
    user = message.from_user
    assert user is not None
    stored = await conversations.record_customer_message(
        tenant.id,
        as_customer(user),
        Incoming(source_key=f"tg:{event_update.update_id}", text=message.text or message.caption or "",
                 attachments=attachments(message), telegram_message_id=message.message_id),
        limiter=limiter, default_locale=settings.default_locale, known=customer,
    )
    if stored.message is not None:
        outbox.wake()
        await inbox_feed.customer_wrote(stored.message)


async def customer_edited(message: Message, tenant: Tenant, outbox: Outboxes) -> None:
    """An edit reaches the copy managers see; the AI's answer to the first version stands."""
    if await desk.record_edit(tenant.id, message.chat.id, message.message_id, message.text or message.caption or ""):
        outbox.wake()


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.register(customer_wrote, from_a_person_in_private)
    router.edited_message.register(customer_edited, from_a_person_in_private)
    return router
