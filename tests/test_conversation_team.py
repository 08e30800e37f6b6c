"""The conversation view's tools for a team, through the real server and tgsim: assigning to a teammate,
who is writing, the customer's side panel, saved replies (in the app and with `/r NAME` in the topic),
and a manager's answer added to the knowledge base."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from tgsim import Simulator

from miniapp.auth import MINIAPP
from models import AuditLog, Bot, Conversation, KnowledgeItem, Message, Role, User
from services import staff
from tests.desk_helpers import Desk, in_topic, manager_desk, wait_in_topic
from tests.fake_ai import FakeAI
from tests.miniapp_helpers import app_client
from tests.test_miniapp_api import handed_off

JOINED = "{name} from our team has joined the conversation."


@pytest.fixture
async def desk(database_url: str, sim: Simulator, ai: FakeAI) -> Any:
    async with manager_desk(database_url, sim, ai, STAFF_AUTO_APPROVE="false") as running:
        yield running


def bot_texts(sim: Simulator, user_id: int) -> list[str]:
    return [m.get("text") or "" for m in sim.chat_history(user_id) if m["from"]["is_bot"]]


async def team(desk: Desk, sim: Simulator) -> dict[str, Any]:
    """Mia approved as a manager and Vic as a viewer; both have rows (Boss is in ADMIN_IDS)."""
    vic: dict[str, Any] = sim.create_user("Vic")
    sim.set_member(desk.chat_id, vic["id"], "member")
    bot = await Bot.get(id=desk.frontdesk.app[MINIAPP].default_bot_id)
    bot_id = bot.id
    for person, role in ((desk.mia, Role.MANAGER), (vic, Role.VIEWER), (desk.boss, None)):
        user, _ = await User.get_or_create(bot_id=bot_id, telegram_id=person["id"],
                                           defaults={"first_name": person["first_name"]})
        if role is not None:
            await staff.set_role(bot_id, user, role, None)
    return vic


async def test_assigning_to_a_teammate_tells_the_customer_who_joined_and_is_audited(
        desk: Desk, sim: Simulator) -> None:
    ann, _topic = await handed_off(sim, desk, "Ann")
    vic = await team(desk, sim)
    conversation = await Conversation.get(user__telegram_id=ann["id"])
    mia = await User.get(telegram_id=desk.mia["id"])
    base = f"/api/conversations/{conversation.id}"
    async with app_client(desk.frontdesk, sim, desk.boss["id"]) as boss:
        mates = (await boss.get("/api/teammates"))["teammates"]
        assert {mate["name"] for mate in mates} == {"Boss", "Mia"}  # managers and admins; not the viewer
        row = await boss.post(base + "/assign", {"user_id": mia.id})
        assert (row["state"], row["assignee"]["name"]) == ("assigned", "Mia")
        await sim.wait_until(lambda: JOINED.format(name="Mia") in bot_texts(sim, ann["id"]), 10, "joined")

        status, body = await boss.call("POST", base + "/assign", {"user_id": mia.id})
        assert (status, body["error"]["code"]) == (409, "conflict")
        ann_row = await User.get(telegram_id=ann["id"])
        vic_row = await User.get(telegram_id=vic["id"])
        for nobody in (ann_row.id, vic_row.id, 999_999):  # a customer, a viewer, no one
            status, body = await boss.call("POST", base + "/assign", {"user_id": nobody})
            assert (status, body["error"]["code"]) == (400, "not_a_teammate"), nobody
        status, _ = await boss.call("POST", base + "/assign", {"user_id": "Mia"})
        assert status == 400
    async with app_client(desk.frontdesk, sim, vic["id"]) as viewer:
        status, body = await viewer.call("POST", base + "/assign", {"user_id": mia.id})
        assert (status, body["error"]["code"]) == (403, "read_only")
    async with app_client(desk.frontdesk, sim, ann["id"]) as customer:
        status, _ = await customer.call("GET", base + "/customer")
        assert status == 403
    [entry] = await AuditLog.filter(action="assign")
    assert entry.details == {"to": mia.id, "via": "app"}
    assert entry.target == str(conversation.uuid)
    assert (await Conversation.get(id=conversation.id)).assignee_id == mia.id


async def test_staff_see_who_else_is_typing_and_customers_never_do(desk: Desk, sim: Simulator) -> None:
    ann, _topic = await handed_off(sim, desk, "Ann")
    await team(desk, sim)
    conversation = await Conversation.get(user__telegram_id=ann["id"])
    url = desk.frontdesk.url.replace("http", "ws") + "/api/live"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as boss_socket, \
            session.ws_connect(url) as mia_socket, session.ws_connect(url) as ann_socket:
        for socket, person in ((boss_socket, desk.boss), (mia_socket, desk.mia), (ann_socket, ann)):
            await socket.send_json({"type": "auth", "init_data": sim.init_data(person["id"])})
            assert (await socket.receive_json(timeout=5))["type"] == "ready"
        async with app_client(desk.frontdesk, sim, desk.mia["id"]) as mia:
            await mia.post(f"/api/conversations/{conversation.id}/typing")
        mia_row = await User.get(telegram_id=desk.mia["id"])
        assert await boss_socket.receive_json(timeout=5) == {
            "type": "typing", "id": conversation.id, "by": {"id": mia_row.id, "name": "Mia"}}
        for socket in (mia_socket, ann_socket):  # not the one typing; never a customer
            with pytest.raises(asyncio.TimeoutError):
                await socket.receive_json(timeout=1.0)


async def test_the_side_panel_shows_the_customers_history_notes_and_ratings(desk: Desk, sim: Simulator) -> None:
    ann, topic = await handed_off(sim, desk, "Ann")
    await team(desk, sim)
    sim.send_command(desk.mia["id"], "note", "Prefers oat milk", chat_id=desk.chat_id, thread_id=topic.thread_id)
    sim.send_command(desk.mia["id"], "close", chat_id=desk.chat_id, thread_id=topic.thread_id)
    await sim.wait_until(lambda: "rate" in bot_texts(sim, ann["id"])[-1], 10, "rating asked")
    first = await Conversation.get(user__telegram_id=ann["id"])
    await Conversation.filter(id=first.id).update(rating=4)
    before = len(bot_texts(sim, ann["id"]))
    sim.send_text(ann["id"], "Are you open on Sunday?")
    await sim.wait_until(lambda: len(bot_texts(sim, ann["id"])) > before, 10, "an answer")
    second = await Conversation.filter(user__telegram_id=ann["id"]).order_by("-id").first()
    assert second is not None
    assert second.id != first.id
    async with app_client(desk.frontdesk, sim, desk.boss["id"]) as boss:
        panel = await boss.get(f"/api/conversations/{second.id}/customer")
    assert panel["customer"]["name"] == "Ann"
    assert (panel["channel"], panel["language"]) == ("telegram", "en")
    assert panel["conversation_count"] == 2
    assert [row["id"] for row in panel["conversations"]] == [second.id, first.id]
    assert panel["conversations"][0]["question"] == "Are you open on Sunday?"
    assert [(note["text"], note["author_name"], note["conversation_id"]) for note in panel["notes"]] == [
        ("Prefers oat milk", "Mia", first.id)]
    assert (panel["ratings"], panel["average_rating"]) == (1, 4.0)


async def test_saved_replies_are_managed_in_the_app_and_sent_with_r_in_the_topic(desk: Desk, sim: Simulator) -> None:
    ann, topic = await handed_off(sim, desk, "Ann")
    vic = await team(desk, sim)
    async with app_client(desk.frontdesk, sim, desk.mia["id"]) as mia:
        made = await mia.post("/api/saved-replies", {"name": "Hours", "text": "We are open 9 to 6, <every> day."})
        assert (made["name"], made["author"]["name"]) == ("hours", "Mia")
        for body, code in (({"name": "hours", "text": "again"}, "duplicate"), ({"name": "two words", "text": "x"},
                           "bad_name"), ({"name": "empty", "text": "  "}, "empty_text"),
                           ({"name": "long", "text": "x" * 4001}, "too_long")):
            status, answer = await mia.call("POST", "/api/saved-replies", body)
            assert (status, answer["error"]["code"]) == (409 if code == "duplicate" else 400, code), body
        assert await AuditLog.filter(action="saved_reply_create").count() == 1  # the refused ones left no trace
        other = await mia.post("/api/saved-replies", {"name": "bye", "text": "Bye!"})
        renamed = (await mia.call("PATCH", f"/api/saved-replies/{other['id']}", {"name": "thanks",
                                                                                  "text": "Thank you!"}))[1]
        assert (renamed["name"], renamed["text"]) == ("thanks", "Thank you!")
        listed = (await mia.get("/api/saved-replies"))["replies"]
        assert [reply["name"] for reply in listed] == ["hours", "thanks"]
    async with app_client(desk.frontdesk, sim, vic["id"]) as viewer:
        assert len((await viewer.get("/api/saved-replies"))["replies"]) == 2  # viewers read
        status, _ = await viewer.call("DELETE", f"/api/saved-replies/{other['id']}")
        assert status == 403

    # In the topic, `/r hours` answers the customer as the manager: the customer hears who joined, then it.
    sim.send_command(desk.mia["id"], "r", "HOURS", chat_id=desk.chat_id, thread_id=topic.thread_id)
    await sim.wait_until(lambda: "We are open 9 to 6, <every> day." in bot_texts(sim, ann["id"]), 10, "reply")
    texts = bot_texts(sim, ann["id"])
    assert texts[-2:] == [JOINED.format(name="Mia"), "We are open 9 to 6, <every> day."]
    shown = await wait_in_topic(sim, desk.chat_id, topic.thread_id, 4)
    assert any("Sent the saved reply “hours”" in (m.get("text") or "") and "<every>" in m["text"] for m in shown)
    stored = await Message.filter(author_kind="manager").first()
    assert stored is not None
    assert stored.text == "We are open 9 to 6, &lt;every&gt; day."
    [reply] = await AuditLog.filter(action="reply")
    assert reply.details == {"via": "telegram"}

    # An unknown name sends nothing and says which there are.
    sim.send_command(desk.mia["id"], "r", "nope", chat_id=desk.chat_id, thread_id=topic.thread_id)
    await sim.wait_until(lambda: any("There is no saved reply named “nope”" in (m.get("text") or "")
                                     for m in in_topic(sim, desk.chat_id, topic.thread_id)), 10, "the refusal")
    assert any("hours, thanks" in (m.get("text") or "") for m in in_topic(sim, desk.chat_id, topic.thread_id))
    assert await Message.filter(author_kind="manager").count() == 1

    async with app_client(desk.frontdesk, sim, desk.mia["id"]) as mia:
        assert (await mia.call("DELETE", f"/api/saved-replies/{other['id']}"))[0] == 200
        assert (await mia.call("DELETE", f"/api/saved-replies/{other['id']}"))[0] == 404
    actions = [entry.action for entry in await AuditLog.filter(action__startswith="saved_reply").order_by("id")]
    assert actions == ["saved_reply_create", "saved_reply_create", "saved_reply_update", "saved_reply_delete"]


async def test_a_managers_answer_goes_into_the_knowledge_base(desk: Desk, sim: Simulator) -> None:
    ann, _topic = await handed_off(sim, desk, "Ann")
    await team(desk, sim)
    conversation = await Conversation.get(user__telegram_id=ann["id"])
    base = f"/api/conversations/{conversation.id}"
    async with app_client(desk.frontdesk, sim, desk.mia["id"]) as mia:
        reply = await mia.post(base + "/reply", {"text": "Yes, we deliver to Chilanzar on weekdays."})
        item = await mia.post(f"{base}/messages/{reply['id']}/knowledge",
                              {"question": "Do you deliver to Chilanzar?", "answer": reply["text"]})
        assert (item["question"], item["answer"]) == ("Do you deliver to Chilanzar?",
                                                      "Yes, we deliver to Chilanzar on weekdays.")
        status, body = await mia.call("POST", f"{base}/messages/{reply['id']}/knowledge",
                                      {"question": "Do you deliver to Chilanzar?", "answer": "Again"})
        assert (status, body["error"]["code"]) == (409, "duplicate")
        notice = await Message.filter(conversation_id=conversation.id, author_kind="system").first()
        assert notice is not None
        status, _ = await mia.call("POST", f"{base}/messages/{notice.id}/knowledge",
                                   {"question": "Anything", "answer": "Anything"})
        assert status == 404  # only a manager's reply
    assert await KnowledgeItem.filter(question="Do you deliver to Chilanzar?").count() == 1
    assert await AuditLog.filter(action="knowledge_create").count() == 1
