"""RETENTION_DAYS: old conversations go, with everything in them; recent ones stay; it is audited."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from tgsim import Simulator

from models import AuditLog, AuthorKind, Bot, Conversation, Message, MessageCopy, User
from services.retention import purge_old_conversations, run_retention
from tests.conftest import eventually, free_port, frontdesk_environment, running_frontdesk
from tests.fake_ai import FakeAI


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


async def test_a_running_frontdesk_with_retention_days_purges_old_conversations(
        database_url: str, sim: Simulator, ai: FakeAI) -> None:
    """RETENTION_DAYS set: the purge runs as the server starts, and hourly after."""
    env = frontdesk_environment(database_url, sim, ai, free_port())
    async with running_frontdesk(env):
        ann, bea = sim.create_user("Ann"), sim.create_user("Bea")
        for customer in (ann, bea):
            sim.send_text(customer["id"], "hello")
            await sim.wait_for_messages(customer["id"])
        old = await Conversation.get(user__telegram_id=ann["id"])
        recent = await Conversation.get(user__telegram_id=bea["id"])
        await Conversation.filter(id=old.id).update(last_message_at=datetime.now(UTC) - timedelta(days=40))
        await Conversation.filter(id=recent.id).update(last_message_at=datetime.now(UTC) - timedelta(days=5))
    async with running_frontdesk({**env, "PORT": str(free_port()), "RETENTION_DAYS": "30"}):
        await eventually(lambda: _audited(1), "the purge, done and audited")
        assert not await Conversation.exists(id=old.id)
        assert not await Message.exists(conversation_id=old.id)
        assert await Conversation.exists(id=recent.id)
        assert await Message.filter(conversation_id=recent.id).count() == 2
        [entry] = await AuditLog.filter(action="retention")
        assert entry.details["conversations"] == 1


async def _audited(purges: int) -> bool:
    return await AuditLog.filter(action="retention").count() == purges


async def test_the_purge_runs_again_every_interval(database: str) -> None:
    bot = await Bot.create(telegram_id=1, username="shop_bot")
    ann = await User.create(bot=bot, telegram_id=10, first_name="Ann")
    first = await _conversation(bot, ann, last_message_days_ago=40)
    running = asyncio.create_task(run_retention(30, timedelta(days=30), every=0.05))
    try:
        await eventually(lambda: _audited(1), "the first purge, done and audited")
        assert not await Conversation.exists(id=first.id)
        later = await _conversation(bot, ann, last_message_days_ago=40)  # grew old since
        await eventually(lambda: _audited(2), "the next purge, done and audited")
        assert not await Conversation.exists(id=later.id)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
