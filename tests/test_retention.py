"""RETENTION_DAYS: old conversations go, with everything in them; recent ones stay; it is audited."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from models import AuditLog, AuthorKind, Bot, Conversation, Message, MessageCopy, User
from services.retention import purge_old_conversations


async def _conversation(bot: Bot, user: User, last_message_days_ago: int) -> Conversation:
    conversation = await Conversation.create(uuid=uuid.uuid4(), bot=bot, user=user)
    message = await Message.create(bot=bot, conversation=conversation, author_kind=AuthorKind.CUSTOMER,
                                   text="hello", source_key=f"tg:{uuid.uuid4().hex}")
    await MessageCopy.create(bot=bot, message=message, chat_id=int(user.telegram_id or 0),
                             telegram_message_id=message.id, original=True)
    moment = datetime.now(UTC) - timedelta(days=last_message_days_ago)
    await Conversation.filter(id=conversation.id).update(last_message_at=moment)
    return conversation


async def test_conversations_idle_longer_than_the_retention_are_deleted_with_their_messages(
        database: str) -> None:
    bot = await Bot.create(telegram_id=1, username="shop_bot")
    ann = await User.create(bot=bot, telegram_id=10, first_name="Ann")
    old = await _conversation(bot, ann, last_message_days_ago=40)
    recent = await _conversation(bot, ann, last_message_days_ago=5)

    assert await purge_old_conversations(bot.id, days=30) == 1

    assert not await Conversation.exists(id=old.id)
    assert not await Message.exists(conversation_id=old.id)
    assert await MessageCopy.all().count() == 1  # the recent conversation's
    assert await Conversation.exists(id=recent.id)
    assert await Message.exists(conversation_id=recent.id)
    assert await User.exists(id=ann.id)  # the customer stays; only old conversations go
    [entry] = await AuditLog.filter(action="retention")
    assert entry.details["conversations"] == 1
    assert await purge_old_conversations(bot.id, days=30) == 0
    assert await AuditLog.filter(action="retention").count() == 1  # nothing purged, nothing logged
