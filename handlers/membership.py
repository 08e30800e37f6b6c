"""A customer blocking or unblocking the bot (my_chat_member in their private chat)."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import ChatMemberUpdated

from handlers.filters import in_private_chat
from services import conversations


async def bot_membership_changed(update: ChatMemberUpdated, tenant_id: int) -> None:
    blocked = update.new_chat_member.status == "kicked"
    await conversations.set_blocked(tenant_id, update.from_user.id, blocked)


def create_router() -> Router:
    router = Router(name=__name__)
    router.my_chat_member.register(bot_membership_changed, in_private_chat)
    return router
