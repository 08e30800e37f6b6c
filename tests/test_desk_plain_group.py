"""A manager group without topics: copies carry a header, and a reply answers that customer."""

from __future__ import annotations

from typing import Any

from tgsim import Simulator

from models import Conversation, ConversationStatus
from tests.conftest import outbox_idle
from tests.desk_helpers import manager_desk, topics
from tests.fake_ai import FakeAI


def bot_messages(sim: Simulator, chat_id: int) -> list[dict[str, Any]]:
    return [m for m in sim.chat_history(chat_id) if m.get("from", {}).get("is_bot")]


async def test_replies_thread_conversations_in_a_group_without_topics(
        database_url: str, sim: Simulator, ai: FakeAI) -> None:
    async with manager_desk(database_url, sim, ai, forum=False) as desk:
        ann = sim.create_user("Ann")
        bob = sim.create_user("Bob")
        for customer in (ann, bob):
            sim.send_command(customer["id"], "human")
        await sim.wait_until(lambda: len(bot_messages(sim, desk.chat_id)) == 2, 10, "two header cards")
        sim.send_text(ann["id"], "Is the terrace open?")
        sim.send_photo(bob["id"], caption="Wrong order")
        await sim.wait_until(lambda: len(bot_messages(sim, desk.chat_id)) == 4, 10, "two copies")
        ann_copy = next(m for m in bot_messages(sim, desk.chat_id) if "terrace" in (m.get("text") or ""))
        bob_copy = next(m for m in bot_messages(sim, desk.chat_id) if "photo" in m)
        assert ann_copy["text"].startswith("👤 Ann · #")
        assert bob_copy["caption"].startswith("👤 Bob · #")
        assert bob_copy["caption"].endswith("Wrong order")

        sim.send_text(desk.mia["id"], "Yes, until 22:00!", chat_id=desk.chat_id, reply_to=ann_copy["message_id"])
        sim.send_text(desk.mia["id"], "Sorry Bob, fixing it", chat_id=desk.chat_id, reply_to=bob_copy["message_id"])
        sim.send_text(desk.mia["id"], "Just chatting with the team", chat_id=desk.chat_id)
        await sim.wait_until(lambda: bot_messages(sim, ann["id"])[-1].get("text") == "Yes, until 22:00!", 5,
                             "Ann's answer")
        await sim.wait_until(lambda: bot_messages(sim, bob["id"])[-1].get("text") == "Sorry Bob, fixing it", 5,
                             "Bob's answer")
        await outbox_idle(sim)  # the team's chat was taken too, and whatever it caused has gone out
        assert not any("chatting" in (m.get("text") or "") for m in bot_messages(sim, ann["id"]) + bot_messages(
            sim, bob["id"]))

        bob_card = next(m for m in bot_messages(sim, desk.chat_id) if "Bob" in (m.get("text") or "")
                        and m.get("reply_markup"))
        sim.send_command(desk.mia["id"], "close", chat_id=desk.chat_id)  # not a reply: which conversation?
        closing = sim.send_text(desk.boss["id"], "/close", chat_id=desk.chat_id, reply_to=bob_card["message_id"])
        assert closing["reply_to_message"]["message_id"] == bob_card["message_id"]
        await sim.wait_until(lambda: "rate" in (bot_messages(sim, bob["id"])[-1].get("text") or ""), 5, "closed")
        assert (await Conversation.get(user__telegram_id=bob["id"])).status == ConversationStatus.CLOSED
        assert (await Conversation.get(user__telegram_id=ann["id"])).status == ConversationStatus.ASSIGNED


async def test_without_the_right_to_create_topics_the_desk_falls_back_to_replies(
        database_url: str, sim: Simulator, ai: FakeAI) -> None:
    async with manager_desk(database_url, sim, ai) as desk:
        ann = sim.create_user("Ann")
        sim.send_command(ann["id"], "human")
        await sim.wait_until(lambda: len(topics(sim, desk.chat_id)) == 1, 10, "Ann's topic")
        [topic] = topics(sim, desk.chat_id).values()
        sim.set_member(desk.chat_id, sim.bot_id, "administrator", can_manage_topics=False)

        bob = sim.create_user("Bob")
        sim.send_command(bob["id"], "human")
        await sim.wait_until(lambda: any("can no longer create topics" in (m.get("text") or "")
                                         for m in bot_messages(sim, desk.chat_id)), 10, "staff told")
        sim.send_text(bob["id"], "Is anyone there?")
        await sim.wait_until(lambda: any((m.get("text") or "").endswith("Is anyone there?")
                                         for m in bot_messages(sim, desk.chat_id)), 10, "Bob's copy")
        copy = next(m for m in bot_messages(sim, desk.chat_id) if (m.get("text") or "").endswith("Is anyone there?"))
        assert copy["text"].startswith("👤 Bob · #")
        assert "message_thread_id" not in copy
        assert len(topics(sim, desk.chat_id)) == 1

        sim.send_text(desk.mia["id"], "Yes, Bob!", chat_id=desk.chat_id, reply_to=copy["message_id"])
        sim.send_text(desk.mia["id"], "Still here, Ann", chat_id=desk.chat_id, thread_id=topic.thread_id)
        await sim.wait_until(lambda: bot_messages(sim, bob["id"])[-1].get("text") == "Yes, Bob!", 5, "Bob's answer")
        await sim.wait_until(lambda: bot_messages(sim, ann["id"])[-1].get("text") == "Still here, Ann", 5,
                             "Ann's answer from her old topic")
