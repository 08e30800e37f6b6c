"""Whatever a customer writes in the private chat: stored with its answer job, then acknowledged."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import Message, Update

from handlers.filters import from_a_person_in_private
from handlers.identity import as_customer
from handlers.media import attachments
from models import User
from services.conversations import Incoming
from services.flow import ConversationFlow


async def customer_wrote(message: Message, tenant_id: int, event_update: Update, customer: User | None,
                         flow: ConversationFlow) -> None:
    user = message.from_user
    assert user is not None
    await flow.customer_wrote(
        tenant_id,
        as_customer(user),
        Incoming(source_key=f"tg:{event_update.update_id}", text=message.text or message.caption or "",
                 attachments=attachments(message), telegram_message_id=message.message_id,
                 album=message.media_group_id or ""),
        known=customer,
    )


async def customer_edited(message: Message, tenant_id: int, flow: ConversationFlow) -> None:
    """An edit reaches the copy managers see; the AI's answer to the first version stands."""
    await flow.customer_edited(tenant_id, message.chat.id, message.message_id, message.text or message.caption or "")


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.register(customer_wrote, from_a_person_in_private)
    router.edited_message.register(customer_edited, from_a_person_in_private)
    return router
