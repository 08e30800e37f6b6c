"""The AI's view of a conversation's past: `conversations.history`."""

from __future__ import annotations

from models import AuthorKind, Message
from services import conversations
from services.conversations import Customer


async def test_the_past_of_a_message_survives_many_newer_messages(database: str) -> None:
    # A customer kept writing while their first answers queued: 100 messages are newer than the
    # one being answered, and its own past must still reach the AI.
    bot = await conversations.ensure_bot(1)
    user = await conversations.register_customer(bot.id, Customer(telegram_id=42, first_name="Ann"), "en")
    conversation = await conversations.open_conversation(user)

    async def say(text: str, author: AuthorKind = AuthorKind.CUSTOMER, reply_to: Message | None = None) -> Message:
        return await Message.create(bot_id=bot.id, conversation=conversation, author_kind=author, text=text,
                                    reply_to=reply_to)

    first = await say("Do you sell gift cards?")
    await say("Yes, from $10.", AuthorKind.AI, reply_to=first)
    answering = await say("Can I pay for one by card?")
    for number in range(100):
        await say(f"and another thing {number}")
    past = await conversations.history(conversation.id, before_id=answering.id)
    assert [m.text for m in past] == ["Do you sell gift cards?", "Yes, from $10."]
