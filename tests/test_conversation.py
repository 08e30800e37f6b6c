"""The customer <-> AI loop through the real webhook, as the customer's chat shows it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from tgsim import Simulator

from bot.settings import Settings
from models import AuthorKind, Conversation, ConversationMode, ConversationStatus, Message, OutboxJob, User
from services import knowledge
from tests.conftest import (
    ROOT,
    Frontdesk,
    eventually,
    formatted,
    free_port,
    frontdesk_environment,
    outbox_idle,
    running_frontdesk,
    updates_handled,
)
from tests.fake_ai import FakeAI


async def load_demo_knowledge(frontdesk: Frontdesk) -> None:
    entries = knowledge.parse_file(ROOT / "demo" / "knowledge.md")
    tenant_id = await _tenant_id()
    await knowledge.import_entries(tenant_id, entries)


async def _tenant_id() -> int:
    from models import Bot

    bot = await Bot.first()
    assert bot is not None
    return bot.id


def bot_texts(sim: Simulator, chat_id: int) -> list[str]:
    return [m["text"] for m in sim.chat_history(chat_id) if m["from"]["is_bot"]]


async def settle(sim: Simulator) -> None:
    """Wait until the bot has done everything it will do, so a check that it sent nothing more holds."""
    await outbox_idle(sim)


async def test_knowledge_base_answers_its_own_question_without_the_ai(
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    await load_demo_knowledge(frontdesk)
    ann = sim.create_user("Ann")
    sim.send_text(ann["id"], "What are your opening hours?")
    [answer] = await sim.wait_for_messages(ann["id"])
    assert answer["text"].startswith("📚 From our knowledge base:")
    assert "Monday to Friday 7:00–20:00" in answer["text"]
    assert "Monday to Friday 7:00–20:00" in formatted(answer, "bold")
    assert ai.requests == []


async def test_ai_answer_streams_as_drafts_then_arrives_as_one_message(
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    await load_demo_knowledge(frontdesk)
    ai.script.reply = "Our **oat** milk is free of charge, and we also have almond and soy milk for your latte."
    ai.script.chunk_delay = 0.03
    ann = sim.create_user("Ann")
    sim.send_text(ann["id"], "is oat milk more expensive?")
    [answer] = await sim.wait_for_messages(ann["id"])
    assert answer["text"] == "Our oat milk is free of charge, and we also have almond and soy milk for your latte."
    drafts = [call["params"] for call in sim.calls("sendMessageDraft")]
    assert len(drafts) >= 3
    assert all(draft["chat_id"] == ann["id"] for draft in drafts)
    assert len({draft["draft_id"] for draft in drafts}) == 1
    assert [len(d["text"]) for d in drafts] == sorted(len(d["text"]) for d in drafts)
    await settle(sim)
    assert len(sim.calls("sendMessage")) == 1
    # The AI was grounded: persona, the matching knowledge item, and the question.
    [request] = ai.requests
    system = request["messages"][0]["content"]
    assert "Do you offer plant-based milk?" in system
    assert request["messages"][-1] == {"role": "user", "content": "is oat milk more expensive?"}
    stored = await Message.filter(author_kind=AuthorKind.AI).first()
    assert stored is not None
    assert stored.ai_meta["model"] == "main-model"
    assert int(str(stored.ai_meta["tokens_in"])) > 0
    assert int(str(stored.ai_meta["tokens_out"])) > 0
    assert "latency_ms" in stored.ai_meta
    assert "cost" in stored.ai_meta


async def test_model_markup_and_special_characters_render_as_telegram_formatting(
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ai.script.reply = (
        "Use **bold** and `a < b && c > d` here.\n\n"
        "See [our menu](https://example.com/menu?a=1&b=2) & enjoy <script>alert(1)</script>.\n\n"
        "```python\nif x < 3 and y > 2: print('&')\n```"
    )
    ann = sim.create_user("Ann <b>& Co</b>")
    sim.send_command(ann["id"], "start")
    await sim.wait_for_messages(ann["id"])
    sim.send_text(ann["id"], "show me formatting")
    [_, answer] = await sim.wait_for_messages(ann["id"], 2)
    text = answer["text"]
    assert "a < b && c > d" in text
    assert "& enjoy <script>alert(1)</script>." in text
    assert formatted(answer, "bold") == ["bold"]
    assert formatted(answer, "code") == ["a < b && c > d"]
    assert formatted(answer, "pre") == ["if x < 3 and y > 2: print('&')"]
    link = next(e for e in answer["entities"] if e["type"] == "text_link")
    assert link["url"] == "https://example.com/menu?a=1&b=2"
    greeting = sim.chat_history(ann["id"])[1]
    assert greeting["text"].startswith("Hello, Ann <b>& Co</b>!")


async def test_a_6000_character_answer_arrives_split_on_paragraphs(
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI, flood_off: None) -> None:
    sentence = "The quick brown fox jumps over the lazy dog."
    paragraphs = [f"Paragraph {n}. " + " ".join([sentence] * 12) for n in range(11)]
    ai.script.reply = "\n\n".join(paragraphs)
    assert len(ai.script.reply) > 6000
    ai.script.chunk_size = 400
    ann = sim.create_user("Ann")
    sim.send_text(ann["id"], "tell me everything")
    parts = await sim.wait_for_messages(ann["id"], 2)
    await settle(sim)
    parts = [m for m in sim.chat_history(ann["id"]) if m["from"]["is_bot"]]
    assert len(parts) == 2
    assert all(len(part["text"]) <= 4096 for part in parts)
    assert parts[0]["text"].endswith("lazy dog.")  # cut at a paragraph end, not mid-sentence
    assert parts[1]["text"].startswith("Paragraph ")
    assert "\n\n".join(part["text"] for part in parts) == ai.script.reply.strip()


async def test_a_redelivered_update_is_answered_once(frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ann = sim.create_user("Ann")
    update = {
        "update_id": 777001,
        "message": {"message_id": 5001, "date": 1_700_000_000, "text": "hello?",
                    "chat": {"id": ann["id"], "type": "private", "first_name": "Ann"},
                    "from": {"id": ann["id"], "is_bot": False, "first_name": "Ann"}},
    }
    headers = {"X-Telegram-Bot-Api-Secret-Token": frontdesk.settings.webhook_secret}
    async with aiohttp.ClientSession() as http:
        for _ in range(3):
            async with http.post(frontdesk.url + "/telegram/webhook", json=update, headers=headers) as response:
                assert response.status == 200
    await sim.wait_for_messages(ann["id"])
    await settle(sim)
    assert bot_texts(sim, ann["id"]) == ["Hello from the AI."]
    assert await Message.filter(author_kind=AuthorKind.CUSTOMER).count() == 1
    assert len(ai.requests) == 1


async def test_wrong_secret_is_refused_and_nothing_is_stored(frontdesk: Frontdesk, sim: Simulator) -> None:
    update = {"update_id": 1, "message": {"message_id": 1, "date": 1, "text": "hi",
                                          "chat": {"id": 42, "type": "private"}, "from": {"id": 42, "is_bot": False,
                                                                                       "first_name": "Eve"}}}
    async with aiohttp.ClientSession() as http:
        for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "guess"}):
            async with http.post(frontdesk.url + "/telegram/webhook", json=update, headers=headers) as response:
                assert response.status == 401
                assert (await response.json())["ok"] is False
    assert await Message.all().count() == 0
    assert await User.all().count() == 0
    assert await OutboxJob.all().count() == 0


async def test_bad_update_body_gets_a_json_400(frontdesk: Frontdesk) -> None:
    headers = {"X-Telegram-Bot-Api-Secret-Token": frontdesk.settings.webhook_secret}
    async with aiohttp.ClientSession() as http, http.post(
            frontdesk.url + "/telegram/webhook", data=b"{not json", headers=headers) as response:
        assert response.status == 400
        assert "error" in await response.json()


async def test_failing_models_fall_back_then_to_knowledge_then_to_a_person(
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    await load_demo_knowledge(frontdesk)
    ai.script.failing_models = {"main-model": 500}
    ai.script.reply = "The backup model says hi."
    ann = sim.create_user("Ann")
    sim.send_text(ann["id"], "how are you today?")
    [first] = await sim.wait_for_messages(ann["id"])
    assert first["text"] == "The backup model says hi."
    assert [r["model"] for r in ai.requests] == ["main-model", "backup-model"]

    ai.script.failing_models = {"main-model": 500, "backup-model": 503}
    sim.send_text(ann["id"], "where is your wifi password written")
    [_, second] = await sim.wait_for_messages(ann["id"], 2)
    assert second["text"].startswith("📚 From our knowledge base:")
    assert "BeanThere-Guest" in second["text"]

    sim.send_text(ann["id"], "xyzzy plugh")
    [_, _, third] = await sim.wait_for_messages(ann["id"], 3)
    assert "passed your conversation to a person" in third["text"]


@pytest.mark.parametrize("frontdesk_settings", [{"use_ai": False}], indirect=True)
async def test_without_any_ai_the_knowledge_base_and_the_person_message_still_work(
        frontdesk_settings: dict[str, Any], frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    await load_demo_knowledge(frontdesk)
    ann = sim.create_user("Ann", language_code="ru")
    sim.send_text(ann["id"], "Do you have wifi?")
    [first] = await sim.wait_for_messages(ann["id"])
    assert first["text"].startswith("📚 Из нашей базы знаний:")
    sim.send_text(ann["id"], "Можно ли принести собаку?")
    [_, second] = await sim.wait_for_messages(ann["id"], 2)
    assert second["text"].startswith("Сейчас я не могу ответить на это сам")
    assert ai.requests == []


async def test_photos_stickers_and_documents_are_stored_and_answered_sensibly(
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ann = sim.create_user("Ann", language_code="uz")
    sim.send_sticker(ann["id"])
    [reply] = await sim.wait_for_messages(ann["id"])
    assert reply["text"].startswith("Ajoyib stiker!")
    sim.send_photo(ann["id"])  # no model here sees images (AI_VISION_MODELS): a person will
    [_, reply] = await sim.wait_for_messages(ann["id"], 2)
    assert reply["text"].startswith("Men rasmlarni ko‘ra olmayman")
    # A file is read for the AI (tests/test_customer_files.py); people have the conversation now: it waits for them.
    sim.send_document(ann["id"], file_name="menu.pdf", content=b"%PDF-1.4")
    await outbox_idle(sim)
    stored = await Message.filter(author_kind=AuthorKind.CUSTOMER).order_by("id")
    assert [m.attachments[0]["type"] for m in stored] == ["sticker", "photo", "document"]
    assert stored[2].attachments[0]["name"] == "menu.pdf"
    assert ai.requests == []


async def test_a_customer_who_blocked_the_bot_is_marked_and_not_written_to(
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    hold = ai.script.hold = asyncio.Event()
    ann = sim.create_user("Ann")
    sim.send_text(ann["id"], "a question")
    await asyncio.wait_for(ai.received.wait(), 5)
    sim.block_bot(ann["id"])
    hold.set()
    await sim.wait_until(lambda: any(call.get("error_code") == 403 for call in sim.calls()))
    await settle(sim)
    refused = [call for call in sim.calls() if call["method"] in ("sendMessage", "sendMessageDraft")]
    assert refused
    assert all(call["error_code"] == 403 for call in refused)
    assert len(refused) == 1  # stopped at the first refusal, not retried against a wall
    user = await User.get(telegram_id=ann["id"])
    assert user.blocked_bot
    assert await OutboxJob.filter(status="done").count() == 1


async def test_blocking_and_unblocking_the_bot_is_remembered(frontdesk: Frontdesk, sim: Simulator) -> None:
    ann = sim.create_user("Ann")
    sim.send_command(ann["id"], "start")
    await sim.wait_for_messages(ann["id"])
    sim.block_bot(ann["id"])
    await updates_handled(sim)
    assert (await User.get(telegram_id=ann["id"])).blocked_bot
    sim.unblock_bot(ann["id"])
    await updates_handled(sim)
    assert not (await User.get(telegram_id=ann["id"])).blocked_bot


async def test_a_flooding_customer_gets_one_slow_down_not_an_answer_each(
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ann = sim.create_user("Ann")
    for n in range(12):
        sim.send_text(ann["id"], f"message {n}")
    await sim.wait_until_delivered()
    await sim.wait_until(lambda: len(bot_texts(sim, ann["id"])) >= 6, timeout=15)
    await settle(sim)
    texts = bot_texts(sim, ann["id"])
    assert texts.count("Hello from the AI.") == 5  # the burst
    assert texts.count("You're sending messages very quickly. Please wait a moment, then write again.") == 1
    assert len(texts) == 6
    assert await Message.filter(author_kind=AuthorKind.CUSTOMER).count() == 12
    assert len([call for call in sim.calls() if call.get("error_code") == 429]) <= 1  # paced, give or take jitter


async def test_the_ai_can_hand_the_conversation_to_a_person(frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ai.script.reply = "I'm sorry to hear that."
    ai.script.handoff_reason = "complaint"
    ann = sim.create_user("Ann")
    sim.send_text(ann["id"], "my coffee was cold and the barista was rude")
    [answer] = await sim.wait_for_messages(ann["id"])
    assert answer["text"] == "I'm sorry to hear that."
    conversation = await Conversation.get(user__telegram_id=ann["id"])
    assert conversation.mode == ConversationMode.HUMAN
    assert conversation.handoff_reason == "complaint"
    sim.send_text(ann["id"], "hello? anyone?")
    await settle(sim)
    # The AI keeps out of it now. No manager chat is set up, so people see it in the app's inbox only,
    # and the customer is told that it waits there rather than hearing nothing.
    assert bot_texts(sim, ann["id"]) == ["I'm sorry to hear that.", "Thanks, I've added this to your conversation "
                                         "in our team's inbox. Someone will answer you right here."]
    assert len(ai.requests) == 1


async def test_talk_to_a_person_button_stops_the_ai(frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ann = sim.create_user("Ann", language_code="ru")
    sim.send_command(ann["id"], "start")
    [greeting] = await sim.wait_for_messages(ann["id"])
    sim.press_button(ann["id"], ann["id"], greeting["message_id"], text="👤 Поговорить с человеком")
    [_, confirmation] = await sim.wait_for_messages(ann["id"], 2)
    assert confirmation["text"].startswith("Конечно! Я позвал человека.")
    sim.send_text(ann["id"], "мне нужен менеджер")
    await settle(sim)
    assert ai.requests == []
    conversation = await Conversation.get(user__telegram_id=ann["id"])
    assert conversation.handoff_reason == "asked_for_person"


async def test_the_ai_sees_the_recent_conversation_but_not_before_new(
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ai.script.replies = ["Latte is 3 dollars.", "A large one is 4.", "Hello again."]
    ann = sim.create_user("Ann")
    sim.send_text(ann["id"], "how much is a latte?")
    await sim.wait_for_messages(ann["id"])
    sim.send_text(ann["id"], "and a large one?")
    await sim.wait_for_messages(ann["id"], 2)
    assert ai.requests[1]["messages"][1:] == [
        {"role": "user", "content": "how much is a latte?"},
        {"role": "assistant", "content": "Latte is 3 dollars."},
        {"role": "user", "content": "and a large one?"},
    ]
    sim.send_command(ann["id"], "new")
    await sim.wait_for_messages(ann["id"], 3)
    sim.send_text(ann["id"], "hi")
    await sim.wait_for_messages(ann["id"], 4)
    assert ai.requests[2]["messages"][1:] == [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("frontdesk_settings", [{"DAILY_AI_QUOTA": 1}], indirect=True)
async def test_a_customer_over_the_daily_ai_quota_is_told_and_handed_to_people(
        frontdesk_settings: dict[str, Any], frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ann = sim.create_user("Ann")
    sim.send_text(ann["id"], "first question")
    await sim.wait_for_messages(ann["id"])
    sim.send_text(ann["id"], "second question")
    [_, second] = await sim.wait_for_messages(ann["id"], 2)
    assert second["text"].startswith(
        "You've reached today's limit of AI answers, so I've passed your conversation to a person.")
    assert len(ai.requests) == 1
    assert ai.requests[0]["max_tokens"] == frontdesk.settings.ai_max_output_tokens  # each answer's cost is bounded
    # The conversation is with people now: the next message waits for them, not for the AI.
    conversation = await Conversation.get(user__telegram_id=ann["id"])
    assert (conversation.mode, conversation.status) == (ConversationMode.HUMAN, ConversationStatus.WAITING)
    sim.send_text(ann["id"], "third question")
    await settle(sim)
    assert bot_texts(sim, ann["id"])[2:] == ["Thanks, I've added this to your conversation in our team's inbox. "
                                             "Someone will answer you right here."]  # no manager chat: the inbox
    assert len(ai.requests) == 1


async def test_the_stop_button_ends_the_answer_where_it_was(frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ai.script.reply = " ".join(f"word{n}" for n in range(200))
    ai.script.chunk_size = 10
    ai.script.chunk_delay = 0.05
    ann = sim.create_user("Ann")
    sim.send_text(ann["id"], "tell me a long story")
    [first_draft] = await sim.wait_for_calls("sendMessageDraft")
    assert first_draft["params"]["can_stop"] is True
    sim.stop_generation(ann["id"], first_draft["params"]["draft_id"])
    [answer] = await sim.wait_for_messages(ann["id"], timeout=10)
    await settle(sim)
    assert ai.script.reply.startswith(answer["text"])
    assert len(answer["text"]) < len(ai.script.reply) / 2
    assert len(bot_texts(sim, ann["id"])) == 1
    stored = await Message.get(author_kind=AuthorKind.AI)
    assert stored.ai_meta["stopped"] is True


async def test_quick_messages_are_answered_in_order_each_seeing_the_last_answer(
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ai.script.replies = ["First answer.", "Second answer.", "Third answer."]
    ai.script.chunk_delay = 0.02
    ann = sim.create_user("Ann")
    for text in ("one", "two", "three"):
        sim.send_text(ann["id"], text)
    await sim.wait_for_messages(ann["id"], 3, timeout=15)
    assert bot_texts(sim, ann["id"]) == ["First answer.", "Second answer.", "Third answer."]
    assert [m["content"] for m in ai.requests[2]["messages"][1:]] == [
        "one", "First answer.", "two", "Second answer.", "three"]


async def test_two_first_messages_of_a_new_customer_at_once_are_both_stored(
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ann = sim.create_user("Ann")
    headers = {"X-Telegram-Bot-Api-Secret-Token": frontdesk.settings.webhook_secret}

    def update(n: int) -> dict[str, Any]:
        return {"update_id": 900 + n, "message": {
            "message_id": 9000 + n, "date": 1_700_000_000, "text": f"question {n}",
            "chat": {"id": ann["id"], "type": "private", "first_name": "Ann"},
            "from": {"id": ann["id"], "is_bot": False, "first_name": "Ann"}}}

    async with aiohttp.ClientSession() as http:
        async def post(n: int) -> int:
            async with http.post(frontdesk.url + "/telegram/webhook", json=update(n), headers=headers) as response:
                return response.status

        assert list(await asyncio.gather(post(1), post(2))) == [200, 200]
    await updates_handled(sim)
    assert await User.filter(telegram_id=ann["id"]).count() == 1
    assert await Message.filter(author_kind=AuthorKind.CUSTOMER).count() == 2
    await sim.wait_for_messages(ann["id"], 2)


async def test_a_fallback_model_at_another_provider_answers_when_the_main_one_fails(
        database_url: str, sim: Simulator, ai: FakeAI) -> None:
    spare = await FakeAI().start()
    try:
        spare.script.reply = "The spare provider answers."
        ai.script.failing_models = {"main-model": 500}
        env = frontdesk_environment(
            database_url, sim, ai, free_port(), AI_FALLBACK_MODELS="other-model@spare",
            AI_PROVIDERS=json.dumps({"spare": {"base_url": spare.base_url, "api_key": "spare-key"}}))
        async with running_frontdesk(env):
            ann = sim.create_user("Ann")
            sim.send_text(ann["id"], "anyone there?")
            [answer] = await sim.wait_for_messages(ann["id"])
        assert answer["text"] == "The spare provider answers."
        assert [r["model"] for r in ai.requests] == ["main-model"]
        assert [r["model"] for r in spare.requests] == ["other-model"]
    finally:
        await spare.stop()


async def test_video_sticker_and_gif_get_a_sensible_reply_not_the_ai(
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ann = sim.create_user("Ann")  # voice and round videos are heard: tests/test_voice.py
    sends = [sim.send_video, sim.send_sticker, sim.send_animation]
    for count, send in enumerate(sends, start=1):  # one at a time: each reply belongs to its message
        send(ann["id"])
        await sim.wait_for_messages(ann["id"], count)
    video, sticker, animation = bot_texts(sim, ann["id"])
    assert sticker == "Nice sticker! How can I help you? Just type your question."
    read_only_text = "I've received your message, but I can only read text. Please type your question."
    assert [video, animation] == [read_only_text] * 2
    stored = await Message.filter(author_kind=AuthorKind.CUSTOMER).order_by("id")
    assert [m.attachments[0]["type"] for m in stored] == ["video", "sticker", "animation"]
    assert ai.requests == []


# --- settings no other test sets ------------------------------------------------------------------


@pytest.mark.parametrize("frontdesk_settings", [{"AI_PRICES": "main-model=2/10;other-model=100/100"}], indirect=True)
async def test_ai_prices_set_the_recorded_cost_of_each_answer(
        frontdesk_settings: dict[str, Any], frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ann = sim.create_user("Ann")
    sim.send_text(ann["id"], "how much is a latte?")
    await sim.wait_for_messages(ann["id"])

    async def recorded() -> bool:  # sent first, then recorded with its cost
        return await Message.exists(author_kind=AuthorKind.AI)

    await eventually(recorded, "the answer recorded")
    answer = await Message.get(author_kind=AuthorKind.AI)
    meta: dict[str, Any] = dict(answer.ai_meta)
    assert meta["model"] == "main-model"
    assert meta["tokens_in"] > 0
    assert meta["tokens_out"] > 0
    expected = (meta["tokens_in"] * 2 + meta["tokens_out"] * 10) / 1_000_000
    assert meta["cost"] == pytest.approx(expected)


@pytest.mark.parametrize("frontdesk_settings", [{"AI_TIMEOUT": "1"}], indirect=True)
async def test_a_model_slower_than_ai_timeout_counts_as_failed(
        frontdesk_settings: dict[str, Any], frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ai.script.hold = asyncio.Event()  # every model hangs, past the one second allowed
    ann = sim.create_user("Ann")
    sim.send_text(ann["id"], "xyzzy plugh")
    [notice] = await sim.wait_for_messages(ann["id"], timeout=30)
    assert "passed your conversation to a person" in notice["text"]
    assert sorted({r["model"] for r in ai.requests}) == ["backup-model", "main-model"]


@pytest.mark.parametrize("frontdesk_settings", [{"DEFAULT_LOCALE": "ru"}], indirect=True)
async def test_customers_in_another_language_get_the_default_locale(
        frontdesk_settings: dict[str, Any], frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    hans, ann = sim.create_user("Hans", language_code="de"), sim.create_user("Ann", language_code="en")
    for customer in (hans, ann):
        sim.send_sticker(customer["id"])  # a photo goes to a vision model or a person (tests/test_vision.py)
    [to_hans] = await sim.wait_for_messages(hans["id"])
    [to_ann] = await sim.wait_for_messages(ann["id"])
    assert to_hans["text"].startswith("Отличный стикер!")
    assert to_ann["text"].startswith("Nice sticker!")


@pytest.mark.parametrize("frontdesk_settings", [{"WEBHOOK_SECRET": "an-explicit-webhook-secret-42"}], indirect=True)
async def test_an_explicit_webhook_secret_is_the_one_telegram_must_send(
        frontdesk_settings: dict[str, Any], frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    [registered] = [call for call in sim.calls("setWebhook") if call["ok"]]
    assert registered["params"]["secret_token"] == "an-explicit-webhook-secret-42"
    ann = sim.create_user("Ann")
    sent = sim.send_text(ann["id"], "hello")
    await sim.wait_for_messages(ann["id"])  # Telegram's delivery, with that secret, was taken
    derived = Settings(_env_file=None, BOT_TOKEN=frontdesk.settings.bot_token).webhook_secret
    assert derived != "an-explicit-webhook-secret-42"
    async with aiohttp.ClientSession() as http, http.post(
            frontdesk.url + "/telegram/webhook", json={"update_id": 999, "message": sent},
            headers={"X-Telegram-Bot-Api-Secret-Token": derived}) as response:
        assert response.status == 401


@pytest.mark.parametrize("frontdesk_settings", [{}, {"KB_DIRECT_THRESHOLD": "0.99"}], indirect=True)
async def test_kb_direct_threshold_is_the_bar_for_answering_without_the_ai(
        frontdesk_settings: dict[str, Any], frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    await load_demo_knowledge(frontdesk)
    ai.script.reply = "The AI answers."
    ann = sim.create_user("Ann")
    sim.send_text(ann["id"], "Do you have Wi-Fi? Thanks!")  # the item's question, with a word more
    [reply] = await sim.wait_for_messages(ann["id"])
    if frontdesk.settings.kb_direct_threshold == 0.8:  # the default: close enough
        assert reply["text"].startswith("📚 From our knowledge base:")
        assert ai.requests == []
    else:
        assert reply["text"] == "The AI answers."


@pytest.mark.parametrize("frontdesk_settings", [{}, {"AI_CONTEXT_TOKENS": "300"}], indirect=True)
async def test_ai_context_tokens_bounds_how_much_of_the_conversation_the_ai_is_sent(
        frontdesk_settings: dict[str, Any], frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ann = sim.create_user("Ann")
    sim.send_text(ann["id"], "EARLIER " + "my espresso machine makes a grinding noise " * 25)  # ~250 tokens
    await sim.wait_for_messages(ann["id"])
    sim.send_text(ann["id"], "what should I do?")
    await sim.wait_for_messages(ann["id"], 2)
    sent = json.dumps(ai.requests[-1]["messages"])
    assert "what should I do?" in sent
    assert ("EARLIER" in sent) == (frontdesk.settings.ai_context_tokens == 3000)
