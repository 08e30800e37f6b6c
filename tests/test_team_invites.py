"""Inviting a teammate with a one-time link the bot gives, and removing one: the invitee is on the team
only after they confirm in the bot, with the role the admin chose, without joining the manager chat;
a removed member loses their role and browser sessions, even while still in the manager chat."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from tgsim import Simulator

from models import AuditLog, User
from tests.desk_helpers import Desk, manager_desk
from tests.fake_ai import FakeAI
from tests.miniapp_helpers import AppClient, app_client, dashboard_link, sign_in

LINK_START = "https://t.me/frontdesk_test_bot?start=invite-"


@pytest.fixture
async def desk(database_url: str, sim: Simulator, ai: FakeAI) -> AsyncIterator[Desk]:
    async with manager_desk(database_url, sim, ai, STAFF_AUTO_APPROVE="false") as running:
        yield running


async def _invite(boss: AppClient, role: str) -> str:
    status, body = await boss.call("POST", "/api/admin/staff/invites", {"role": role})
    assert status == 201, body
    assert body["link"].startswith(LINK_START)
    return str(body["link"].partition("?start=")[2])


async def _last(sim: Simulator, person: dict[str, Any], starts: str) -> dict[str, Any]:
    await sim.wait_until(lambda: sim.chat_history(person["id"])[-1].get("text", "").startswith(starts), 10, starts)
    last: dict[str, Any] = sim.chat_history(person["id"])[-1]
    return last


async def _role(sim: Simulator, desk: Desk, person: dict[str, Any]) -> str:
    async with app_client(desk.frontdesk, sim, person["id"]) as client:
        return str((await client.get("/api/me"))["role"])


async def test_an_invited_viewer_joins_from_the_link_without_the_manager_chat_then_is_removed(
        desk: Desk, sim: Simulator) -> None:
    zoe, max_ = sim.create_user("Zoe"), sim.create_user("Max")
    async with app_client(desk.frontdesk, sim, desk.boss["id"]) as boss:
        code = await _invite(boss, "viewer")
        team = await boss.get("/api/admin/staff")
        assert [(i["role"], i["created_by"], i["opened"]) for i in team["invites"]] == [("viewer", "Boss", False)]

        sim.send_command(zoe["id"], "start", code)
        question = await _last(sim, zoe, "Boss invites you to the team")
        assert "as a viewer" in question["text"]
        [[join], [no]] = question["reply_markup"]["inline_keyboard"]
        assert (join["text"], no["text"]) == ("Join the team", "No, thanks")
        assert await _role(sim, desk, zoe) == "customer"  # nothing before "Join"
        # The link is Zoe's now: Max, given it too, cannot take it.
        sim.send_command(max_["id"], "start", code)
        await _last(sim, max_, "This invitation has expired or was already used")
        assert (await boss.get("/api/admin/staff"))["invites"][0]["opened"] is True

        sim.press_button(zoe["id"], zoe["id"], question["message_id"], data=join["callback_data"])
        await _last(sim, zoe, "Welcome to the team! You're a viewer")
        assert await _role(sim, desk, zoe) == "viewer"
        sim.send_command(zoe["id"], "help")  # the team's commands: she is on it by invitation, not by the chat
        assert "For the team:\n/dashboard" in (await _last(sim, zoe, "Just write your question"))["text"]
        assert await _role(sim, desk, max_) == "customer"
        team = await boss.get("/api/admin/staff")
        assert team["invites"] == []
        member = next(m for m in team["members"] if m["name"] == "Zoe")
        assert (member["role"], member["invited"]) == ("viewer", True)
        # Used once.
        sim.send_command(zoe["id"], "start", code)
        await _last(sim, zoe, "You're already on the team")

        # Not in the manager chat, she still signs in to the desk in a browser.
        async with app_client(desk.frontdesk) as browser:
            assert await sign_in(browser, await dashboard_link(sim, zoe["id"])) == 303
            assert (await browser.get("/api/me"))["role"] == "viewer"
            status, body = await boss.call("DELETE", f"/api/admin/staff/{member['id']}")
            assert status == 200, body
            assert "Zoe" not in [m["name"] for m in body["members"]]
            assert (await browser.call("GET", "/api/me"))[0] == 401  # her browser session ended
    assert await _role(sim, desk, zoe) == "customer"
    sim.send_command(zoe["id"], "dashboard")
    await _last(sim, zoe, "The dashboard is for the business's team.")
    sim.send_command(zoe["id"], "help")
    assert "For the team" not in (await _last(sim, zoe, "Just write your question"))["text"]
    actions = [row.action for row in await AuditLog.filter(action__in=["team_invite", "team_join", "remove_member"])
               .order_by("id")]
    assert actions == ["team_invite", "team_join", "remove_member"]


async def test_a_removed_manager_chat_member_stays_removed_until_invited_again(
        database_url: str, sim: Simulator, ai: FakeAI) -> None:
    # Every member of the manager chat is a manager here, with nobody's approval.
    async with manager_desk(database_url, sim, ai, STAFF_AUTO_APPROVE="true") as desk, \
            app_client(desk.frontdesk, sim, desk.boss["id"]) as boss:
        assert await _role(sim, desk, desk.mia) == "manager"
        mia_id = (await User.get(telegram_id=desk.mia["id"])).id
        assert (await boss.call("DELETE", f"/api/admin/staff/{mia_id}"))[0] == 200
        assert await _role(sim, desk, desk.mia) == "customer"  # still in the chat, no longer on the team
        assert "Mia" not in [m["name"] for m in (await boss.get("/api/admin/staff"))["members"]]

        code = await _invite(boss, "manager")
        sim.send_command(desk.mia["id"], "start", code)
        question = await _last(sim, desk.mia, "Boss invites you to the team")
        [[join], _] = question["reply_markup"]["inline_keyboard"]
        sim.press_button(desk.mia["id"], desk.mia["id"], question["message_id"], data=join["callback_data"])
        await _last(sim, desk.mia, "Welcome to the team! You're a manager")
        assert await _role(sim, desk, desk.mia) == "manager"


async def test_admin_ids_and_yourself_cannot_be_removed_and_only_admins_invite(desk: Desk, sim: Simulator) -> None:
    ann = sim.create_user("Ann")
    async with app_client(desk.frontdesk, sim, desk.boss["id"]) as boss, \
            app_client(desk.frontdesk, sim, desk.mia["id"]) as mia:
        await mia.get("/api/me")
        mia_id = (await User.get(telegram_id=desk.mia["id"])).id
        assert (await mia.call("POST", "/api/admin/staff/invites", {"role": "manager"}))[0] == 403  # pending
        assert (await boss.call("PUT", f"/api/admin/staff/{mia_id}/role", {"role": "admin"}))[0] == 200
        boss_id = (await User.get(telegram_id=desk.boss["id"])).id
        status, body = await mia.call("DELETE", f"/api/admin/staff/{boss_id}")
        assert (status, body["error"]["code"]) == (409, "owner")
        status, body = await mia.call("DELETE", f"/api/admin/staff/{mia_id}")
        assert (status, body["error"]["code"]) == (409, "yourself")
        assert (await boss.call("POST", "/api/admin/staff/invites", {"role": "admin"}))[0] == 400
        assert (await boss.call("DELETE", "/api/admin/staff/invites/nope"))[0] == 404
        assert await _role(sim, desk, desk.boss) == "admin"

        # A cancelled invitation's link stops working; "No, thanks" uses one up.
        code = await _invite(mia, "manager")
        invite_id = (await boss.get("/api/admin/staff"))["invites"][0]["id"]
        assert (await boss.call("DELETE", f"/api/admin/staff/invites/{invite_id}"))[0] == 200
        sim.send_command(ann["id"], "start", code)
        await _last(sim, ann, "This invitation has expired or was already used")
        code = await _invite(boss, "manager")
        sim.send_command(ann["id"], "start", code)
        question = await _last(sim, ann, "Boss invites you to the team")
        [_, [no]] = question["reply_markup"]["inline_keyboard"]
        sim.press_button(ann["id"], ann["id"], question["message_id"], data=no["callback_data"])
        await _last(sim, ann, "You did not join")
        assert await _role(sim, desk, ann) == "customer"
        assert (await boss.get("/api/admin/staff"))["invites"] == []
