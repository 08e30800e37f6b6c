"""Knowledge and persona set up before the bot had a token belong to the bot once it has one."""

from __future__ import annotations

from models import Bot, KnowledgeItem
from services import conversations, knowledge


async def test_the_first_bot_adopts_what_was_set_up_without_a_token(database: str) -> None:
    unconfigured = await conversations.ensure_bot(conversations.UNCONFIGURED_BOT_ID)
    await knowledge.import_entries(unconfigured.id, [knowledge.Entry("Do you deliver?", "Yes, within the city.")])
    bot = await conversations.ensure_bot(7000000001, "frontdesk_bot")
    assert bot.id == unconfigured.id
    assert bot.username == "frontdesk_bot"
    assert await KnowledgeItem.filter(bot_id=bot.id).count() == 1
    other = await conversations.ensure_bot(7000000002)  # a second bot starts empty
    assert other.id != bot.id
    assert await Bot.all().count() == 2
