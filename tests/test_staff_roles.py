"""Who may act as staff: admins approve new members of the manager chat as managers or read-only
viewers; browser sessions are short and can be ended; a staff member's Mini App sign-in ages fast."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tgsim import Simulator

from models import AuditLog, Bot, Conversation, Message, Role, User, WebSession
from services import staff
from tests.conftest import eventually
from tests.desk_helpers import Desk, manager_desk, wait_in_topic
from tests.fake_ai import FakeAI
from tests.miniapp_helpers import AppClient, app_client, dashboard_link, sign_in
from tests.test_manager_desk import customer_texts, handed_off


@pytest.fixture
async def desk(database_url: str, sim: Simulator, ai: FakeAI) -> AsyncIterator[Desk]:
    async with manager_desk(database_url, sim, ai, STAFF_AUTO_APPROVE="false") as running:
        yield running


async def _role(client: AppClient) -> str:
    return str((await client.get("/api/me"))["role"])


async def _team_role(boss: AppClient, name: str) -> tuple[int, str]:
    members = (await boss.get("/api/admin/staff"))["members"]
    member = next(m for m in members if m["name"] == name)
    return int(member["id"]), str(member["role"])


async def test_a_new_member_waits_for_approval_then_a_viewer_reads_and_a_manager_answers(
        desk: Desk, sim: Simulator) -> None:
    ann, topic = await handed_off(sim, desk)
    chat, thread = desk.chat_id, topic.thread_id
    async with app_client(desk.frontdesk, sim, desk.mia["id"]) as mia, \
            app_client(desk.frontdesk, sim, desk.boss["id"]) as boss:
        # Pending: in the group, but nothing they write reaches the customer, and the app is closed to them.
        assert await _role(mia) == "pending"
        assert (await mia.call("GET", "/api/conversations"))[0] == 200  # their own, as a customer
        conversation_id = (await boss.get("/api/conversations"))["conversations"][0]["id"]
        assert (await mia.call("GET", f"/api/conversations/{conversation_id}"))[0] == 404
        sim.send_text(desk.mia["id"], "Hi Ann, Mia here!", chat_id=chat, thread_id=thread)
        [*_, notice] = await wait_in_topic(sim, chat, thread, 3)
        assert "has not approved you yet" in notice["text"]
        user_id, role = await _team_role(boss, "Mia")
        assert role == "pending"

        # A viewer: reads every conversation, changes nothing, and the group tells them so.
        await _set_role(boss, user_id, "viewer")
        assert await _role(mia) == "viewer"
        assert (await mia.call("GET", f"/api/conversations/{conversation_id}"))[0] == 200
        status, body = await mia.call("POST", f"/api/conversations/{conversation_id}/reply", {"text": "From the app"})
        assert (status, body["error"]["code"]) == (403, "read_only")
        assert "viewer" in body["error"]["message"]
        sim.send_text(desk.mia["id"], "Hi again", chat_id=chat, thread_id=thread)
        [*_, notice] = await wait_in_topic(sim, chat, thread, 5)
        assert "your role is viewer" in notice["text"]

        # Approved as a manager: the reply reaches the customer.
        await _set_role(boss, user_id, "manager")
        sim.send_text(desk.mia["id"], "Sorry for the wait, Ann.", chat_id=chat, thread_id=thread)
        await eventually(lambda: _said(sim, ann["id"], "Sorry for the wait, Ann."), "the reply at Ann's")
    texts = customer_texts(sim, ann["id"])
    assert not any("Mia here" in text or "Hi again" in text or "From the app" in text for text in texts)
    assert not await Message.filter(text__contains="Mia here").exists()
    actions = [row.action for row in await AuditLog.filter(target=f"user:{user_id}").order_by("id")]
    assert actions == ["make_viewer", "make_manager"]


async def _set_role(boss: AppClient, user_id: int, role: str) -> None:
    status, body = await boss.call("PUT", f"/api/admin/staff/{user_id}/role", {"role": role})
    assert status == 200, body


async def _said(sim: Simulator, chat_id: int, text: str) -> bool:
    return text in customer_texts(sim, chat_id)


async def test_a_pending_members_card_buttons_do_nothing(desk: Desk, sim: Simulator) -> None:
    _, topic = await handed_off(sim, desk)
    [card] = await wait_in_topic(sim, desk.chat_id, topic.thread_id, 1)
    take = card["reply_markup"]["inline_keyboard"][0][0]
    sim.press_button(desk.mia["id"], desk.chat_id, card["message_id"], data=take["callback_data"])
    [answer] = await sim.wait_for_calls("answerCallbackQuery")
    assert answer["params"]["show_alert"] is True
    assert "has not approved you yet" in answer["params"]["text"]
    conversation = await Conversation.get(manager_topic_id=topic.thread_id)
    assert conversation.assignee_id is None


async def test_managers_at_work_before_approvals_existed_stay_managers(database: str) -> None:
    bot = await Bot.create(telegram_id=7000000001, username="shop_bot")
    mia = await User.create(bot=bot, telegram_id=11, first_name="Mia", role=Role.MANAGER)
    await staff.adopt_existing_staff(bot.id)
    newcomer = await User.create(bot=bot, telegram_id=12, first_name="Neo", role=Role.PENDING)
    await staff.adopt_existing_staff(bot.id)  # once only: a later member is not adopted
    bot = await Bot.get(id=bot.id)
    assert staff.member_role(bot, mia, auto_approve=False) == Role.MANAGER
    assert staff.member_role(bot, newcomer, auto_approve=False) == Role.PENDING


async def test_browser_sessions_are_short_listed_and_can_be_ended(
        database_url: str, sim: Simulator, ai: FakeAI) -> None:
    async with manager_desk(database_url, sim, ai, STAFF_SESSION_HOURS="2") as running, \
            app_client(running.frontdesk) as laptop, app_client(running.frontdesk) as phone, \
            app_client(running.frontdesk, sim, running.boss["id"]) as boss:
        assert await sign_in(laptop, await dashboard_link(sim, running.mia["id"])) == 303
        cookie = next(c for c in laptop.session.cookie_jar if c.key == "frontdesk_session")
        assert cookie["max-age"] == str(2 * 3600)
        assert await sign_in(phone, await dashboard_link(sim, running.mia["id"])) == 303
        sessions = (await laptop.get("/api/me/sessions"))["sessions"]
        assert [s["current"] for s in sessions] == [False, True]  # newest first: the phone's
        # Signed out of the phone from the laptop: the phone's cookie opens nothing any more.
        await laptop.call("DELETE", f"/api/me/sessions/{sessions[0]['id']}")
        assert (await phone.call("GET", "/api/me"))[0] == 401
        assert (await laptop.call("GET", "/api/me"))[0] == 200
        # An admin signs a member out of every browser.
        user_id, _ = await _team_role(boss, "Mia")
        await boss.post(f"/api/admin/staff/{user_id}/sign-out", {})
        assert (await laptop.call("GET", "/api/me"))[0] == 401
        # A session made when they lasted 7 days ends when today's setting says.
        assert await sign_in(laptop, await dashboard_link(sim, running.mia["id"])) == 303
        now = datetime.now(UTC)
        await WebSession.all().update(created_at=now - timedelta(hours=3), expires_at=now + timedelta(days=4))
        assert (await laptop.call("GET", "/api/me"))[0] == 401


async def test_a_staff_members_mini_app_sign_in_ages_in_an_hour_a_customers_in_a_day(
        desk: Desk, sim: Simulator) -> None:
    two_hours_ago = int(time.time()) - 2 * 3600
    fields: dict[str, Any] = {"auth_date": two_hours_ago}
    ann = sim.create_user("Ann")
    async with app_client(desk.frontdesk, sim, desk.boss["id"], **fields) as boss, \
            app_client(desk.frontdesk, sim, ann["id"], **fields) as customer:
        assert (await boss.call("GET", "/api/me"))[0] == 401
        assert (await customer.call("GET", "/api/me"))[0] == 200
