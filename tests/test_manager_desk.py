"""The manager desk through tgsim: handoff, one forum topic per conversation, both directions, commands."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tgsim import Simulator

from bot.i18n import create_i18n, translator
from handlers.manager_desk import SETUP_NEED_ADMIN, SETUP_NEED_FORUM, SETUP_READY, DeskAction
from models import (
    AuditLog,
    AuthorKind,
    Bot,
    Conversation,
    ConversationMode,
    ConversationStatus,
    HandoffReason,
    Message,
    MessageCopy,
    User,
)
from tests.conftest import Frontdesk, eventually, formatted, outbox_idle, updates_handled
from tests.desk_helpers import (
    BOSS_ID,
    Desk,
    delete_topic,
    edit_text,
    in_topic,
    manager_desk,
    send_album,
    topics,
    wait_for_topic,
    wait_in_topic,
)
from tests.fake_ai import FakeAI


@pytest.fixture
async def desk(database_url: str, sim: Simulator, ai: FakeAI) -> Any:
    async with manager_desk(database_url, sim, ai) as running:
        yield running


def says(sim: Simulator, chat_id: int, text: str, thread_id: int | None = None) -> bool:
    """Whether a message in the chat (or one topic of it) contains `text`."""
    return any(text in (m.get("text") or "") for m in sim.chat_history(chat_id, thread_id=thread_id))


def customer_texts(sim: Simulator, chat_id: int) -> list[str]:
    return [m.get("text") or m.get("caption") or "" for m in sim.chat_history(chat_id) if m["from"]["is_bot"]]


async def handed_off(sim: Simulator, desk: Desk, name: str = "Ann", **fields: Any) -> tuple[dict[str, Any], Any]:
    """A customer who asked for a person with /human, and the topic that opened for them."""
    customer = sim.create_user(name, **fields)
    before = len(topics(sim, desk.chat_id))
    sim.send_command(customer["id"], "human")
    await sim.wait_for_messages(customer["id"])
    opened = await wait_for_topic(sim, desk.chat_id, before + 1)
    topic = opened[-1]
    await wait_in_topic(sim, desk.chat_id, topic.thread_id, 1)  # the header card
    return customer, topic


async def test_talk_to_a_person_opens_a_topic_with_a_header_card(desk: Desk, sim: Simulator, ai: FakeAI) -> None:
    ann = sim.create_user("Ann", last_name="Lee", username="ann_lee", language_code="en")
    ai.script.reply = "We open at **seven**."
    sim.send_text(ann["id"], "When do you open?")
    await sim.wait_for_messages(ann["id"])
    sim.send_command(ann["id"], "start")  # the greeting offers "talk to a person"
    [_, greeting] = await sim.wait_for_messages(ann["id"], 2)
    button = greeting["reply_markup"]["inline_keyboard"][0][0]
    sim.press_button(ann["id"], ann["id"], greeting["message_id"], data=button["callback_data"])

    [topic] = await wait_for_topic(sim, desk.chat_id)
    assert topic.name == "❗ Ann Lee"
    [card] = await wait_in_topic(sim, desk.chat_id, topic.thread_id, 1)
    assert "Ann Lee" in formatted(card, "bold")
    assert "@ann_lee" in card["text"]
    assert "When do you open?" in card["text"]
    assert "We open at seven." in card["text"]
    assert "asked for a person" in card["text"]
    buttons = [b["text"] for row in card["reply_markup"]["inline_keyboard"] for b in row]
    assert buttons == ["✋ Take", "🤖 Return to AI", "✅ Close", "🚫 Ban"]
    # The customer's notice and the group's card are jobs of two queues: either may come first.
    await sim.wait_until(lambda: customer_texts(sim, ann["id"])[-1].startswith("Sure! I've asked a person to join."),
                         10, "the customer told a person is asked")
    conversation = await Conversation.get(user__telegram_id=ann["id"])
    assert conversation.mode == ConversationMode.HUMAN
    assert conversation.handoff_reason == HandoffReason.ASKED_FOR_PERSON
    assert conversation.manager_topic_id == topic.thread_id

    # From now on every message reaches the topic, and the AI stays out.
    requests = len(ai.requests)
    sim.send_text(ann["id"], "Also, do you have oat milk?")
    [_, copied] = await wait_in_topic(sim, desk.chat_id, topic.thread_id, 2)
    assert copied["text"] == "Also, do you have oat milk?"
    await outbox_idle(sim)
    assert len(ai.requests) == requests


async def test_human_keeps_its_notice_in_the_conversation_as_the_widget_does(
        desk: Desk, sim: Simulator) -> None:
    """/human's notice is stored with the handoff, so staff read in the transcript what the customer was told
    (before issue 16 only the widget's and the AI's handoff notices were kept); asked again, it is said again
    and nothing more is stored."""
    ann, _ = await handed_off(sim, desk)
    await sim.wait_until(lambda: customer_texts(sim, ann["id"])[-1].startswith("Sure! I've asked a person"),
                         5, "the notice")
    told = sim.chat_history(ann["id"])[-1]
    conversation = await Conversation.get(user__telegram_id=ann["id"])
    [stored] = await Message.filter(conversation_id=conversation.id, author_kind=AuthorKind.SYSTEM)
    assert stored.text == told["text"]
    assert stored.ai_meta["notice"] == "handoff"

    async def copy_recorded() -> bool:  # the job records it once Telegram's answer to its send is back
        return await MessageCopy.exists(message_id=stored.id, chat_id=ann["id"],
                                        telegram_message_id=told["message_id"])
    await eventually(copy_recorded, "the notice's copy recorded")

    sim.send_command(ann["id"], "human")
    await sim.wait_until(lambda: len([t for t in customer_texts(sim, ann["id"]) if t == told["text"]]) == 2,
                         5, "said again")
    assert await Message.filter(conversation_id=conversation.id, author_kind=AuthorKind.SYSTEM).count() == 1


async def test_a_manager_answers_in_the_topic_and_the_customer_gets_text_and_photo(
        desk: Desk, sim: Simulator) -> None:
    ann, topic = await handed_off(sim, desk)
    sim.send_text(desk.mia["id"], "Hi Ann, Mia here. Let me check.", chat_id=desk.chat_id,
                  thread_id=topic.thread_id)
    await sim.wait_until(lambda: any("Mia here" in t for t in customer_texts(sim, ann["id"])), 5, "reply")
    texts = customer_texts(sim, ann["id"])
    assert texts[-2] == "Mia from our team has joined the conversation."
    assert texts[-1] == "Hi Ann, Mia here. Let me check."
    sim.send_photo(desk.mia["id"], caption="Our menu", chat_id=desk.chat_id, thread_id=topic.thread_id)
    await sim.wait_until(lambda: any("photo" in m for m in sim.chat_history(ann["id"])), 5, "photo")
    photo = sim.chat_history(ann["id"])[-1]
    assert photo["caption"] == "Our menu"

    conversation = await Conversation.get(user__telegram_id=ann["id"]).prefetch_related("assignee")
    assert conversation.status == ConversationStatus.ASSIGNED
    assert conversation.assignee is not None
    assert conversation.assignee.first_name == "Mia"
    assert conversation.first_manager_reply_at is not None
    assert topics(sim, desk.chat_id)[topic.thread_id].name == "💬 Ann"


async def test_customer_photo_and_album_reach_the_topic(desk: Desk, sim: Simulator) -> None:
    ann, topic = await handed_off(sim, desk)
    sim.send_photo(ann["id"], caption="This one")
    send_album(sim, ann["id"], 3, caption="Three of them")
    sim.send_location(ann["id"], 41.31, 69.28)
    sim.send_document(ann["id"], file_name="receipt.pdf", content=b"%PDF-1.4", mime_type="application/pdf")
    sim.send_contact(ann["id"], "+998901234567")
    shown = await wait_in_topic(sim, desk.chat_id, topic.thread_id, 1 + 1 + 3 + 3)
    single, *album, location, document, contact = shown[1:]
    assert document["document"]["file_name"] == "receipt.pdf"
    assert contact["contact"]["phone_number"] == "+998901234567"
    assert single["caption"] == "This one"
    assert "photo" in single
    assert len({m["media_group_id"] for m in album}) == 1
    assert all("photo" in m for m in album)
    assert album[0]["caption"] == "Three of them"
    assert location["location"]["latitude"] == pytest.approx(41.31)


async def test_edits_reach_the_copy_on_the_other_side(desk: Desk, sim: Simulator) -> None:
    ann, topic = await handed_off(sim, desk)
    asked = sim.send_text(ann["id"], "I want a lattte")
    [_, copy] = await wait_in_topic(sim, desk.chat_id, topic.thread_id, 2)
    edit_text(sim, ann["id"], asked["message_id"], "I want a latte")
    await sim.wait_until(lambda: in_topic(sim, desk.chat_id, topic.thread_id)[1]["text"] == "I want a latte", 5,
                         "the topic's copy edited")

    answered = sim.send_text(desk.mia["id"], "Coming right up", chat_id=desk.chat_id, thread_id=topic.thread_id)
    await sim.wait_until(lambda: "Coming right up" in customer_texts(sim, ann["id"]), 5, "reply")
    edit_text(sim, desk.chat_id, answered["message_id"], "Coming right up, with oat milk")
    await sim.wait_until(lambda: customer_texts(sim, ann["id"])[-1] == "Coming right up, with oat milk", 5,
                         "the customer's copy edited")
    # The edits replaced the stored texts: the transcript keeps each message once, as it reads now.
    stored = [m.text for m in await Message.filter(conversation__user__telegram_id=ann["id"], author_kind__in=(
        AuthorKind.CUSTOMER, AuthorKind.MANAGER)).order_by("id")]
    assert stored[-2:] == ["I want a latte", "Coming right up, with oat milk"]
    assert "I want a lattte" not in stored
    assert "Coming right up" not in stored
    assert copy["message_id"] == in_topic(sim, desk.chat_id, topic.thread_id)[1]["message_id"]


async def test_notes_never_reach_the_customer(desk: Desk, sim: Simulator) -> None:
    ann, topic = await handed_off(sim, desk)
    sim.send_text(desk.mia["id"], "// she asked the same last week", chat_id=desk.chat_id, thread_id=topic.thread_id)
    sim.send_command(desk.mia["id"], "note", "VIP customer", chat_id=desk.chat_id, thread_id=topic.thread_id)
    sim.send_text(desk.mia["id"], "Hello!", chat_id=desk.chat_id, thread_id=topic.thread_id)
    await sim.wait_until(lambda: "Hello!" in customer_texts(sim, ann["id"]), 5, "reply")
    await outbox_idle(sim)
    texts = " ".join(customer_texts(sim, ann["id"]))
    assert "last week" not in texts
    assert "VIP" not in texts
    notes = [str(text) for text in await Message.filter(author_kind="note").values_list("text", flat=True)]
    assert sorted(notes) == ["VIP customer", "she asked the same last week"]


async def test_take_return_to_ai_and_close_with_a_rating(desk: Desk, sim: Simulator, ai: FakeAI) -> None:
    ann, topic = await handed_off(sim, desk)
    sim.send_command(desk.mia["id"], "take", chat_id=desk.chat_id, thread_id=topic.thread_id)
    await sim.wait_until(lambda: customer_texts(sim, ann["id"])[-1].startswith("Mia from our team"), 5, "joined")
    await sim.wait_until(lambda: topics(sim, desk.chat_id)[topic.thread_id].name == "💬 Ann", 5, "renamed")

    sim.send_text(desk.mia["id"], "Tea & cake are on us", chat_id=desk.chat_id, thread_id=topic.thread_id)
    await sim.wait_until(lambda: customer_texts(sim, ann["id"])[-1] == "Tea & cake are on us", 5, "reply")
    sim.send_command(desk.mia["id"], "ai", chat_id=desk.chat_id, thread_id=topic.thread_id)
    await sim.wait_until(lambda: customer_texts(sim, ann["id"])[-1].startswith("You're talking to our assistant"),
                         5, "back to AI")
    ai.script.reply = "The AI is back."
    sim.send_text(ann["id"], "one more question")
    await sim.wait_until(lambda: customer_texts(sim, ann["id"])[-1] == "The AI is back.", 5, "AI answer")
    # The AI read the manager's words as the customer did.
    assert {"role": "assistant", "content": "Tea & cake are on us"} in ai.requests[-1]["messages"]
    await sim.wait_until(lambda: topics(sim, desk.chat_id)[topic.thread_id].name == "🤖 Ann", 5, "renamed")

    sim.send_command(desk.boss["id"], "close", chat_id=desk.chat_id, thread_id=topic.thread_id)
    await sim.wait_until(lambda: "How would you rate it?" in customer_texts(sim, ann["id"])[-1], 5, "rating asked")
    rating = sim.chat_history(ann["id"])[-1]
    five = rating["reply_markup"]["inline_keyboard"][1][1]
    assert five["text"] == "⭐⭐⭐⭐⭐"
    query = sim.press_button(ann["id"], ann["id"], rating["message_id"], data=five["callback_data"])
    await sim.wait_until(lambda: sim.callback_answer(query["id"]) is not None, 5, "rating answered")
    conversation = await Conversation.get(user__telegram_id=ann["id"])
    assert conversation.status == ConversationStatus.CLOSED
    assert conversation.rating == 5
    await sim.wait_until(lambda: topics(sim, desk.chat_id)[topic.thread_id].closed, 5, "topic closed")
    assert topics(sim, desk.chat_id)[topic.thread_id].name == "✅ Ann"
    actions = [str(a) for a in await AuditLog.all().order_by("id").values_list("action", flat=True)]
    # A reply from the topic is in the audit log as one from the Mini App is (it was not, before issue 16).
    assert [a for a in actions if a != "setup"] == ["take", "reply", "return_to_ai", "close", "rate"]
    reply = await AuditLog.get(action="reply")
    assert reply.details == {"via": "telegram"}
    assert reply.actor_id == (await User.get(telegram_id=desk.mia["id"])).id


async def test_header_card_buttons_do_what_the_commands_do(desk: Desk, sim: Simulator) -> None:
    ann, topic = await handed_off(sim, desk)
    card = in_topic(sim, desk.chat_id, topic.thread_id)[0]
    take = card["reply_markup"]["inline_keyboard"][0][0]
    query = sim.press_button(desk.mia["id"], desk.chat_id, card["message_id"], data=take["callback_data"])
    await sim.wait_until(lambda: sim.callback_answer(query["id"]) is not None, 5, "answered")
    assert sim.callback_answer(query["id"])["text"] == "✋ Mia took this conversation."
    await sim.wait_until(lambda: customer_texts(sim, ann["id"])[-1].startswith("Mia from our team"), 5, "joined")
    offered = {DeskAction.unpack(button["callback_data"]).action
               for row in card["reply_markup"]["inline_keyboard"] for button in row}
    assert offered == {"take", "ai", "close", "ban"}
    conversation = await Conversation.get(user__telegram_id=ann["id"])

    def push(who: dict[str, Any], action: str) -> str:
        data = DeskAction(action=action, conversation=conversation.id).pack()
        return str(sim.press_button(who["id"], desk.chat_id, card["message_id"], data=data)["id"])

    async def press(who: dict[str, Any], action: str) -> str:
        pressed = push(who, action)
        await sim.wait_until(lambda: sim.callback_answer(pressed) is not None, 5, f"{action} answered")
        return str((sim.callback_answer(pressed) or {}).get("text"))

    # Someone who is not in the manager group presses Close: ignored. Mia's press after it is answered.
    stranger = sim.create_user("Eve")
    ignored = push(stranger, "close")
    assert await press(desk.mia, "ai") == "🤖 The AI answers this conversation again."
    assert sim.callback_answer(ignored) is None
    returned = await Conversation.get(id=conversation.id)
    assert (returned.mode, returned.status) == (ConversationMode.AI, ConversationStatus.OPEN)
    assert await press(desk.mia, "close") == "✅ Closed. The customer was asked for a rating."
    assert (await Conversation.get(id=conversation.id)).status == ConversationStatus.CLOSED
    await sim.wait_until(lambda: "rate" in customer_texts(sim, ann["id"])[-1], 5, "the rating request")
    assert await press(desk.boss, "ban") == "🚫 Banned: this customer's messages are ignored from now on."
    assert (await User.get(telegram_id=ann["id"])).banned


async def test_a_deleted_topic_is_recreated_and_nothing_is_lost(desk: Desk, sim: Simulator) -> None:
    ann, topic = await handed_off(sim, desk)
    delete_topic(sim, desk.chat_id, topic.thread_id)
    sim.send_text(ann["id"], "Hello? Anyone?")
    opened = await wait_for_topic(sim, desk.chat_id, 1)
    [new] = [t for t in opened if t.thread_id != topic.thread_id]
    card, copied = await wait_in_topic(sim, desk.chat_id, new.thread_id, 2)
    assert "Ann" in card["text"]
    assert card["reply_markup"]
    assert copied["text"] == "Hello? Anyone?"
    assert (await Conversation.get(user__telegram_id=ann["id"])).manager_topic_id == new.thread_id


async def test_a_closed_topic_is_reopened(desk: Desk, sim: Simulator) -> None:
    ann, topic = await handed_off(sim, desk)
    # The bot may no longer write into closed topics; it still manages the topics it created.
    sim.set_member(desk.chat_id, sim.bot_id, "administrator", can_manage_topics=False)
    sim.close_topic(desk.chat_id, topic.thread_id, by=desk.boss["id"])
    sim.send_text(ann["id"], "Are you there?")
    await sim.wait_until(lambda: in_topic(sim, desk.chat_id, topic.thread_id)[-1].get("text") == "Are you there?",
                         5, "delivered into the reopened topic")
    assert not topics(sim, desk.chat_id)[topic.thread_id].closed
    assert any(call["ok"] is False and "TOPIC_CLOSED" in call.get("description", "")
               for call in sim.calls("sendMessage"))


async def test_a_banned_customer_reaches_no_one(desk: Desk, sim: Simulator, ai: FakeAI) -> None:
    ann, topic = await handed_off(sim, desk)
    sim.send_command(desk.boss["id"], "ban", chat_id=desk.chat_id, thread_id=topic.thread_id)
    await sim.wait_until(lambda: topics(sim, desk.chat_id)[topic.thread_id].closed, 5, "closed on ban")
    await sim.wait_until(lambda: any(m.get("text", "").startswith("🚫 Banned")
                                     for m in in_topic(sim, desk.chat_id, topic.thread_id)), 5, "the ban said")
    shown = len(in_topic(sim, desk.chat_id, topic.thread_id))
    seen = len(customer_texts(sim, ann["id"]))
    sim.send_text(ann["id"], "let me in")
    await outbox_idle(sim)
    assert len(customer_texts(sim, ann["id"])) == seen
    assert len(in_topic(sim, desk.chat_id, topic.thread_id)) == shown
    assert ai.requests == []
    assert not await Message.exists(text="let me in")
    assert (await User.get(telegram_id=ann["id"])).banned

    sim.send_command(desk.boss["id"], "unban", chat_id=desk.chat_id, thread_id=topic.thread_id)
    await updates_handled(sim)
    assert not (await User.get(telegram_id=ann["id"])).banned
    sim.send_text(ann["id"], "thank you")
    await sim.wait_until(lambda: len(customer_texts(sim, ann["id"])) == seen + 1, 5, "answered again")


async def test_only_staff_in_the_manager_chat_are_heard(desk: Desk, sim: Simulator) -> None:
    ann, topic = await handed_off(sim, desk)
    muted = sim.create_user("Rex")
    sim.set_member(desk.chat_id, muted["id"], "restricted", can_send_messages=True, until_date=0)
    sim.send_command(muted["id"], "close", chat_id=desk.chat_id, thread_id=topic.thread_id)
    sim.send_text(muted["id"], "I am not staff", chat_id=desk.chat_id, thread_id=topic.thread_id)
    other = sim.create_group("Elsewhere", owner=muted["id"], members=[ann["id"]], supergroup=True)
    sim.send_command(muted["id"], "open", chat_id=other["id"])
    sim.send_command(ann["id"], "take")  # a customer trying a staff command in their own chat
    await outbox_idle(sim)
    conversation = await Conversation.get(user__telegram_id=ann["id"])
    assert conversation.status == ConversationStatus.WAITING
    assert "I am not staff" not in customer_texts(sim, ann["id"])
    assert [m for m in sim.chat_history(other["id"]) if m.get("from", {}).get("is_bot")] == []
    assert len(in_topic(sim, desk.chat_id, topic.thread_id)) == 1 + 2 + 1  # card, Rex's two, Ann's /take


async def test_group_commands_open_stats_presence_and_info(desk: Desk, sim: Simulator) -> None:
    _ann, topic = await handed_off(sim, desk)
    sim.send_command(desk.mia["id"], "online", chat_id=desk.chat_id)
    await sim.wait_until(lambda: says(sim, desk.chat_id, "Mia is online"), 5, "online")
    bob = sim.create_user("Bob")
    sim.send_command(bob["id"], "human")
    [notice] = await sim.wait_for_messages(bob["id"])
    assert "usually within a few minutes" in notice["text"]

    sim.send_command(desk.mia["id"], "open", chat_id=desk.chat_id)
    await sim.wait_until(lambda: says(sim, desk.chat_id, "Open conversations: 2"), 5, "open list")
    listing = next(m for m in sim.chat_history(desk.chat_id) if "Open conversations" in (m.get("text") or ""))
    links = [e["url"] for e in listing["entities"] if e["type"] == "text_link"]
    assert any(link.endswith(f"/{topic.thread_id}") for link in links)

    sim.send_command(desk.mia["id"], "stats", chat_id=desk.chat_id)
    await sim.wait_until(lambda: says(sim, desk.chat_id, "Handed to people: 2"), 5, "stats")
    sim.send_command(desk.mia["id"], "info", chat_id=desk.chat_id, thread_id=topic.thread_id)
    await sim.wait_until(lambda: says(sim, desk.chat_id, "Conversations: 1", topic.thread_id), 5, "info")
    sim.send_command(desk.mia["id"], "away", chat_id=desk.chat_id)
    await sim.wait_until(lambda: says(sim, desk.chat_id, "Mia is away"), 5, "away")
    carl = sim.create_user("Carl")
    sim.send_command(carl["id"], "human")
    [notice] = await sim.wait_for_messages(carl["id"])
    assert "as soon as someone is free" in notice["text"]


async def test_the_ai_hands_off_with_its_tool_and_when_it_fails(desk: Desk, sim: Simulator, ai: FakeAI) -> None:
    ai.script.handoff_reason = "complaint"
    ai.script.reply = ""
    ann = sim.create_user("Ann")
    sim.send_text(ann["id"], "My coffee was cold and nobody cared!")
    [topic] = await wait_for_topic(sim, desk.chat_id)
    [card] = await wait_in_topic(sim, desk.chat_id, topic.thread_id, 1)
    assert "complaint" in card["text"]
    assert "My coffee was cold" in card["text"]
    [notice] = await sim.wait_for_messages(ann["id"])
    assert notice["text"].startswith("I can't answer this myself right now, so I've passed your conversation")

    ai.script.handoff_reason = None
    ai.script.failing_models = {"main-model": 500, "backup-model": 500}
    bob = sim.create_user("Bob")
    sim.send_text(bob["id"], "xyzzy plugh")
    [_, second] = await wait_for_topic(sim, desk.chat_id, 2)
    [card] = await wait_in_topic(sim, desk.chat_id, second.thread_id, 1)
    assert "the AI failed" in card["text"]
    conversation = await Conversation.get(user__telegram_id=bob["id"])
    assert conversation.handoff_reason == HandoffReason.AI_FAILURE


async def test_outside_working_hours_the_customer_is_told_when_we_are_back(
        database_url: str, sim: Simulator, ai: FakeAI) -> None:
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%a").lower()
    async with manager_desk(database_url, sim, ai, WORKING_HOURS=f"{tomorrow} 09:00-10:00",
                            TIMEZONE="UTC") as desk:
        ann = sim.create_user("Ann")
        sim.send_command(ann["id"], "human")
        [notice] = await sim.wait_for_messages(ann["id"])
        weekday = (datetime.now(UTC) + timedelta(days=1)).strftime("%A")
        assert notice["text"].endswith(f"when we're back: {weekday} 09:00.")
        await wait_for_topic(sim, desk.chat_id)  # people still see it at once


@pytest.mark.parametrize("frontdesk_settings", [{"ADMIN_IDS": str(BOSS_ID)}], indirect=True)
async def test_setup_in_a_group_says_what_the_bot_is_missing(frontdesk: Frontdesk, sim: Simulator) -> None:
    translate = translator(create_i18n("en"))
    boss = sim.create_user("Boss", id=BOSS_ID, language_code="ru")
    plain = sim.create_group("Shop staff", owner=boss["id"], supergroup=True, bot_status="member")
    sim.send_command(boss["id"], "setup", chat_id=plain["id"])
    [reply] = await sim.wait_for_messages(plain["id"])
    assert translate("ru", SETUP_NEED_ADMIN) in reply["text"]  # in the admin's language
    assert translate("ru", SETUP_NEED_FORUM) in reply["text"]

    stranger = sim.create_user("Stranger")
    forum = sim.create_group("Desk", owner=stranger["id"], members=[boss["id"]], forum=True)
    sim.send_command(stranger["id"], "setup", chat_id=forum["id"])  # not one of ADMIN_IDS: ignored
    await outbox_idle(sim)
    assert [m for m in sim.chat_history(forum["id"]) if m.get("from", {}).get("is_bot")] == []
    sim.send_command(boss["id"], "setup", chat_id=forum["id"])
    [reply] = await sim.wait_for_messages(forum["id"])
    assert translate("ru", SETUP_READY) in reply["text"]
    bot = await Bot.first()
    assert bot is not None
    assert bot.manager_chat_id == forum["id"]


async def test_managers_hear_when_the_customer_has_blocked_the_bot(desk: Desk, sim: Simulator) -> None:
    ann, topic = await handed_off(sim, desk)
    sim.block_bot(ann["id"])
    reply = sim.send_text(desk.mia["id"], "Ann, your order is ready", chat_id=desk.chat_id, thread_id=topic.thread_id)
    await sim.wait_until(lambda: says(sim, desk.chat_id, "blocked the bot", topic.thread_id), 10, "a warning")
    warning = in_topic(sim, desk.chat_id, topic.thread_id)[-1]
    assert warning["reply_to_message"]["message_id"] == reply["message_id"]
    assert (await User.get(telegram_id=ann["id"])).blocked_bot


async def test_admins_set_working_hours_from_the_group(desk: Desk, sim: Simulator) -> None:
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    spec = f"{tomorrow:%a} 09:00-10:00".lower()
    sim.send_command(desk.mia["id"], "hours", spec, chat_id=desk.chat_id)
    await sim.wait_until(lambda: says(sim, desk.chat_id, "Only the bot's admins can change this."), 5, "refused")
    sim.send_command(desk.boss["id"], "hours", "sometimes maybe", chat_id=desk.chat_id)
    await sim.wait_until(lambda: says(sim, desk.chat_id, "I couldn't read those hours"), 5, "not understood")
    sim.send_command(desk.boss["id"], "hours", f"{spec} Asia/Tashkent", chat_id=desk.chat_id)
    await sim.wait_until(lambda: says(sim, desk.chat_id, f"Working hours are now: {spec} (Asia/Tashkent)."), 5, "set")

    ann = sim.create_user("Ann")
    sim.send_command(ann["id"], "human")
    [notice] = await sim.wait_for_messages(ann["id"])
    assert "(Asia/Tashkent)" in notice["text"]
    assert "09:00" in notice["text"]

    sim.send_command(desk.boss["id"], "hours", "off", chat_id=desk.chat_id)
    await sim.wait_until(lambda: says(sim, desk.chat_id, "Working hours cleared."), 5, "cleared")
    bot = await Bot.first()
    assert bot is not None
    assert bot.settings["working_hours"] == ""


async def test_a_managers_reply_to_a_message_quotes_it_in_the_customers_chat(desk: Desk, sim: Simulator) -> None:
    ann, topic = await handed_off(sim, desk)
    asked = sim.send_text(ann["id"], "Do you have oat milk?")
    sim.send_text(ann["id"], "And soy?")
    shown = await wait_in_topic(sim, desk.chat_id, topic.thread_id, 2)
    copy = next(m for m in shown if "oat milk" in (m.get("text") or ""))
    sim.send_text(desk.mia["id"], "Both!", chat_id=desk.chat_id, thread_id=topic.thread_id, reply_to=copy["message_id"])
    sim.send_text(desk.mia["id"], "Anything else?", chat_id=desk.chat_id, thread_id=topic.thread_id)
    await sim.wait_until(lambda: customer_texts(sim, ann["id"])[-1] == "Anything else?", 5, "replies")
    both = next(m for m in sim.chat_history(ann["id"]) if m.get("text") == "Both!")
    assert both["reply_to_message"]["message_id"] == asked["message_id"]
    plain = next(m for m in sim.chat_history(ann["id"]) if m.get("text") == "Anything else?")
    assert "reply_to_message" not in plain


async def test_customer_voice_video_round_video_sticker_and_gif_reach_the_topic(desk: Desk, sim: Simulator) -> None:
    ann, topic = await handed_off(sim, desk)
    sim.send_voice(ann["id"], duration=2)
    sim.send_video(ann["id"], caption="The leak")
    sim.send_video_note(ann["id"])
    sim.send_sticker(ann["id"], emoji="😡")
    sim.send_animation(ann["id"])
    shown = await wait_in_topic(sim, desk.chat_id, topic.thread_id, 1 + 5 + 2)  # the voices' transcripts too
    heard = [m for m in shown[1:] if (m.get("text") or "").startswith("🎙")]
    voice, video, video_note, sticker, animation = [m for m in shown[1:] if m not in heard]
    assert sorted(m["reply_to_message"]["message_id"] for m in heard) == [voice["message_id"],
                                                                          video_note["message_id"]]
    assert voice["voice"]["duration"] == 2
    assert video["caption"] == "The leak"
    assert "video_note" in video_note
    assert sticker["sticker"]["emoji"] == "😡"
    assert "animation" in animation
    await outbox_idle(sim)  # every job of these messages done, the customers' and the group's
    # People answer now: the customer got nothing back but the handoff notice.
    assert len([m for m in sim.chat_history(ann["id"]) if m["from"]["is_bot"]]) == 1
    stored = await Message.filter(author_kind=AuthorKind.CUSTOMER).exclude(attachments=[]).order_by("id")
    assert [m.attachments[0]["type"] for m in stored] == ["voice", "video", "video_note", "sticker", "animation"]
