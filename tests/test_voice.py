"""Customers' voice (issue 18): a voice message is transcribed and answered like text."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from tgsim import Simulator

from models import AuthorKind, Conversation, ConversationMode, Message, Usage, UsageSlot
from services.analytics import Period, report
from tests.conftest import Frontdesk, outbox_idle
from tests.desk_helpers import in_topic, manager_desk, wait_for_topic, wait_in_topic
from tests.fake_ai import FakeAI
from tests.miniapp_helpers import app_client


async def test_a_voice_message_gets_the_ais_answer_to_its_transcript(
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ai.script.answer = lambda question: f"You asked: {question}"
    ann = sim.create_user("Ann")
    sim.send_voice(ann["id"], content=b"Do you deliver on Sundays?", duration=3)
    [answer] = await sim.wait_for_messages(ann["id"])
    assert answer["text"] == "You asked: Do you deliver on Sundays?"
    [heard] = ai.transcription_requests
    assert heard["model"] == "whisper-1"  # TRANSCRIBE_* empty: the AI provider's address, with whisper-1
    [voice] = await Message.filter(author_kind=AuthorKind.CUSTOMER)
    assert voice.attachments[0]["transcript"] == "Do you deliver on Sundays?"  # stored with the message


# --- managers read it ------------------------------------------------------------------------------------


async def test_while_people_have_it_a_voice_is_transcribed_under_its_copy_and_the_ai_stays_silent(
        database_url: str, sim: Simulator, ai: FakeAI) -> None:
    async with manager_desk(database_url, sim, ai) as desk:
        ann = sim.create_user("Ann")
        sim.send_command(ann["id"], "human")
        await sim.wait_for_messages(ann["id"])
        [topic] = await wait_for_topic(sim, desk.chat_id)
        sim.send_voice(ann["id"], content=b"My parcel never came", duration=4)
        _card, copy, heard = await wait_in_topic(sim, desk.chat_id, topic.thread_id, 3)
        assert copy["voice"]["duration"] == 4
        assert heard["text"] == "🎙 My parcel never came"
        assert heard["reply_to_message"]["message_id"] == copy["message_id"]  # under the voice itself
        await outbox_idle(sim)
        assert ai.requests == []  # people have it: the AI wrote nothing
        assert len([m for m in sim.chat_history(ann["id"]) if m["from"]["is_bot"]]) == 1  # the handoff notice only
        assert len(in_topic(sim, desk.chat_id, topic.thread_id)) == 3  # posted once
        usage = await Usage.get(user__telegram_id=ann["id"])
        assert (usage.messages, usage.transcriptions, usage.audio_seconds, usage.ai_messages) == (1, 1, 4, 0)

        conversation = await Conversation.get(user__telegram_id=ann["id"])
        async with app_client(desk.frontdesk, sim, desk.boss["id"]) as client:
            page = await client.get(f"/api/conversations/{conversation.id}/messages")
        [voice] = [message for message in page["messages"] if message["attachments"]]
        assert voice["attachments"] == [{"type": "voice", "name": "", "transcript": "My parcel never came",
                                         "file": True, "image": False}]  # staff can also fetch the voice itself


async def test_in_a_group_without_topics_the_transcript_replies_to_the_voices_copy(
        database_url: str, sim: Simulator, ai: FakeAI) -> None:
    async with manager_desk(database_url, sim, ai, forum=False) as desk:
        ann = sim.create_user("Ann")
        sim.send_command(ann["id"], "human")
        await sim.wait_for_messages(ann["id"])
        sim.send_voice(ann["id"], content=b"Is it ready?", duration=2)

        def shown() -> list[dict[str, Any]]:
            return [m for m in sim.chat_history(desk.chat_id) if m.get("from", {}).get("is_bot")]

        await sim.wait_until(lambda: any(m.get("text") == "🎙 Is it ready?" for m in shown()), 10, "the transcript")
        [copy] = [m for m in shown() if "voice" in m]
        [heard] = [m for m in shown() if m.get("text") == "🎙 Is it ready?"]
        assert heard["reply_to_message"]["message_id"] == copy["message_id"]


async def test_a_managers_reply_does_not_wait_for_a_voice_being_transcribed(
        database_url: str, sim: Simulator, ai: FakeAI) -> None:
    async with manager_desk(database_url, sim, ai) as desk:
        ann = sim.create_user("Ann")
        sim.send_command(ann["id"], "human")
        await sim.wait_for_messages(ann["id"])
        [topic] = await wait_for_topic(sim, desk.chat_id)
        hold = ai.script.hold = asyncio.Event()  # the transcriber takes its time
        sim.send_voice(ann["id"], content=b"Hello? Anyone?", duration=2)
        await sim.wait_until(lambda: len(ai.transcription_requests) == 1, 10, "the voice being transcribed")
        sim.send_text(desk.mia["id"], "Hi Ann, Mia here.", chat_id=desk.chat_id, thread_id=topic.thread_id)
        await sim.wait_until(lambda: any(m.get("text") == "Hi Ann, Mia here." for m in sim.chat_history(ann["id"])),
                             10, "the manager's reply, while the voice is still being heard")
        hold.set()
        await sim.wait_until(lambda: [m.get("text") for m in in_topic(sim, desk.chat_id, topic.thread_id)
                                      if m.get("text", "").startswith("🎙")] == ["🎙 Hello? Anyone?"], 10,
                             "the transcript, once heard")


async def test_a_voice_the_ai_heard_before_the_handoff_shows_its_transcript_on_the_topics_card(
        database_url: str, sim: Simulator, ai: FakeAI) -> None:
    ai.script.handoff_reason = "cannot_answer"
    ai.script.reply = ""
    async with manager_desk(database_url, sim, ai) as desk:
        ann = sim.create_user("Ann")
        sim.send_voice(ann["id"], content=b"Can I pay in instalments?", duration=3)
        [topic] = await wait_for_topic(sim, desk.chat_id)
        [card] = await wait_in_topic(sim, desk.chat_id, topic.thread_id, 1)
        assert "🎙 Can I pay in instalments?" in card["text"]


# --- limits ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("frontdesk_settings", [{"TRANSCRIBE_MAX_SECONDS": "60"}], indirect=True)
async def test_a_voice_longer_than_allowed_goes_to_people_untranscribed_with_a_notice(
        frontdesk_settings: dict[str, Any], frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ann = sim.create_user("Ann")
    sim.send_voice(ann["id"], content=b"A very long story", duration=61)
    [notice] = await sim.wait_for_messages(ann["id"])
    assert notice["text"].startswith("Your voice message is too long for me to listen to, so I've passed it "
                                      "to a person.")
    assert ai.transcription_requests == []
    assert ai.requests == []
    conversation = await Conversation.get(user__telegram_id=ann["id"])
    assert conversation.mode == ConversationMode.HUMAN


@pytest.mark.parametrize("frontdesk_settings", [{"CUSTOMER_DAILY_TRANSCRIPTIONS": "1"}], indirect=True)
async def test_past_the_daily_transcriptions_a_voice_goes_to_people_with_a_notice(
        frontdesk_settings: dict[str, Any], frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ai.script.answer = lambda question: f"You asked: {question}"
    ann, bob = sim.create_user("Ann"), sim.create_user("Bob")
    sim.send_voice(ann["id"], content=b"Are you open today?", duration=2)
    [answer] = await sim.wait_for_messages(ann["id"])
    assert answer["text"] == "You asked: Are you open today?"
    sim.send_voice(ann["id"], content=b"And tomorrow?", duration=2)
    _answer, notice = await sim.wait_for_messages(ann["id"], 2)
    assert notice["text"].startswith("You've reached today's limit of voice messages I can listen to, so I've "
                                      "passed yours to a person.")
    assert [request["file"] for request in ai.transcription_requests] == [b"Are you open today?"]
    sim.send_voice(bob["id"], content=b"Do you deliver?", duration=2)  # the quota is each customer's own
    [answer] = await sim.wait_for_messages(bob["id"])
    assert answer["text"] == "You asked: Do you deliver?"


@pytest.mark.parametrize("frontdesk_settings", [{"TRANSCRIBE_PRICE_PER_MINUTE": "0.006",
                                                 "AI_PRICES": "main-model=1000/2000"}], indirect=True)
async def test_transcriptions_are_counted_with_their_seconds_and_cost(
        frontdesk_settings: dict[str, Any], frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ann = sim.create_user("Ann")
    sim.send_voice(ann["id"], content=b"Where is my order?", duration=90)
    await sim.wait_for_messages(ann["id"])
    await outbox_idle(sim)
    answer = await Message.get(author_kind=AuthorKind.AI)
    ai_cost = Decimal(str(answer.ai_meta["cost"]))
    assert ai_cost > 0
    usage = await Usage.get(user__telegram_id=ann["id"])
    assert (usage.transcriptions, usage.audio_seconds, usage.ai_messages) == (1, 90, 1)
    assert usage.cost == ai_cost + Decimal("0.009")  # a minute and a half at $0.006 a minute, and the answer
    [slot] = await UsageSlot.all()
    assert (slot.transcriptions, slot.audio_seconds, slot.ai_messages) == (1, 90, 1)
    assert slot.cost == ai_cost + Decimal("0.009")
    today = datetime.now(UTC).date()
    total = (await report(usage.bot_id, Period(today, today, "UTC"))).to_dict()["ai_usage"]["total"]
    assert (total["transcriptions"], total["audio_seconds"], total["images"]) == (1, 90, 0)
