"""Filters shared by the routers.

Plain async functions rather than magic filters (`F.chat.type == ...`): aiogram runs a sync
filter through `asyncio.to_thread`, a thread hop on every update.
"""

from __future__ import annotations

from aiogram.types import ChatMemberUpdated, Message


async def in_private_chat(event: Message | ChatMemberUpdated) -> bool:
    return event.chat.type == "private"


async def from_a_person_in_private(message: Message) -> bool:
    return message.chat.type == "private" and message.from_user is not None and not message.from_user.is_bot
