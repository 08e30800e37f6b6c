"""A business's settings have one owner: changes made at once all survive, /hours is audited as the
Mini App's hours are, and an odd row reads as the defaults (services/tenant_settings.py)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tgsim import Simulator

from models import AuditLog, Bot, Role, User
from services import bot_settings, knowledge_suggestions, staff, widget
from services.ports import GroupRights
from tests.conftest import ROOT
from tests.desk_helpers import Desk, manager_desk
from tests.fake_ai import FakeAI
from tests.miniapp_helpers import app_client
from tests.test_manager_desk import says


@pytest.fixture
async def desk(database_url: str, sim: Simulator, ai: FakeAI) -> AsyncIterator[Desk]:
    async with manager_desk(database_url, sim, ai, PUBLIC_BASE_URL="https://desk.example") as running:
        yield running


async def test_settings_changed_at_once_from_different_places_all_survive(database: str) -> None:
    """/hours, /setup, a dismissed suggestion, the demo site, an admin's limits and a role, all at once."""
    bot = await Bot.create(telegram_id=7000000001, username="shop_bot")
    boss = await User.create(bot=bot, telegram_id=1, first_name="Boss", role=Role.ADMIN)
    mia = await User.create(bot=bot, telegram_id=2, first_name="Mia", role=Role.PENDING)
    forum = GroupRights(is_member=True, is_admin=True, can_manage_topics=True, is_forum=True)
    await asyncio.gather(
        staff.set_working_hours(bot.id, "mon-fri 09:00-18:00", "Asia/Tashkent", boss),
        staff.register_manager_chat(bot.id, -100123, forum, "ru"),
        knowledge_suggestions.dismiss_suggestion(bot.id, "a" * 64, boss),
        widget.ensure_demo_site(bot.id, ["http://localhost:8080"]),
        bot_settings.set_limits(bot.id, daily_ai_quota=5, burst=None, per_minute=None, actor=boss),
        staff.set_role(bot.id, mia, Role.VIEWER, boss))
    stored = (await Bot.get(id=bot.id)).settings
    assert (stored.get("working_hours"), stored.get("timezone")) == ("mon-fri 09:00-18:00", "Asia/Tashkent")
    assert (stored.get("manager_forum"), stored.get("manager_locale")) == (True, "ru")
    assert stored.get("knowledge_dismissed") == ["a" * 64]
    assert stored.get("demo_site_created") is True
    assert stored.get("daily_ai_quota") == 5
    assert stored.get("staff_roles") == {str(mia.id): "viewer"}


async def test_hours_set_in_the_group_are_audited_like_the_mini_apps(desk: Desk, sim: Simulator) -> None:
    sim.send_command(desk.boss["id"], "hours", "mon-fri 09:00-18:00 Asia/Tashkent", chat_id=desk.chat_id)
    await sim.wait_until(lambda: says(sim, desk.chat_id, "Working hours are now"), 5, "set from the group")
    async with app_client(desk.frontdesk, sim, desk.boss["id"]) as boss:
        status, body = await boss.call("PUT", "/api/admin/settings/hours", {
            "working_hours": "sat 10:00-14:00", "timezone": "UTC", "offline_text": {"en": "Closed, back {when}"}})
        assert status == 200, body
    group, app = await AuditLog.filter(action="working_hours").order_by("id").prefetch_related("actor")
    bot = await Bot.get()
    assert (group.target, app.target) == (f"bot:{bot.id}", f"bot:{bot.id}")
    assert group.actor is not None
    assert app.actor is not None
    assert group.actor.first_name == app.actor.first_name == "Boss"
    assert group.details == {"hours": "mon-fri 09:00-18:00", "timezone": "Asia/Tashkent", "offline_text": {},
                             "via": "group"}
    assert app.details == {"hours": "sat 10:00-14:00", "timezone": "UTC",
                           "offline_text": {"en": "Closed, back {when}"}, "via": "app"}


async def test_hours_set_in_the_group_keep_the_offline_text(desk: Desk, sim: Simulator) -> None:
    async with app_client(desk.frontdesk, sim, desk.boss["id"]) as boss:
        status, body = await boss.call("PUT", "/api/admin/settings/hours", {
            "working_hours": "sat 10:00-14:00", "timezone": "UTC", "offline_text": {"en": "Closed, back {when}"}})
        assert status == 200, body
        sim.send_command(desk.boss["id"], "hours", "off", chat_id=desk.chat_id)
        await sim.wait_until(lambda: says(sim, desk.chat_id, "Working hours cleared."), 5, "cleared")
        hours = (await boss.get("/api/admin/settings"))["hours"]
    assert (hours["working_hours"], hours["always_open"]) == ("", True)
    assert hours["offline_text"]["en"] == "Closed, back {when}"
    [_, group] = await AuditLog.filter(action="working_hours").order_by("id")
    assert group.details["offline_text"] == {"en": "Closed, back {when}"}


ODD_ROW: dict[str, Any] = {
    "working_hours": 5, "timezone": ["Asia/Tashkent"], "offline_text": ["closed"], "ai_routes": "all",
    "daily_ai_quota": "lots", "customer_rate": {"burst": "many", "per_minute": -3}, "manager_forum": "perhaps",
    "staff_roles": [1, 2], "granted_admins": "everyone", "knowledge_dismissed": {"a": 1},
    "demo_site_created": "no idea", "written_by_a_newer_version": {"kept": True},
}


async def test_an_odd_settings_row_reads_as_the_defaults_and_keeps_what_it_does_not_know(
        desk: Desk, sim: Simulator) -> None:
    bot = await Bot.get()
    await Bot.filter(id=bot.id).update(settings=ODD_ROW)
    async with app_client(desk.frontdesk, sim, desk.boss["id"]) as boss:
        status, shown = await boss.call("GET", "/api/admin/settings")
        assert status == 200, shown
        assert (shown["hours"]["always_open"], shown["ai"]["customized"]) == (True, False)
        assert shown["limits"]["effective"] == shown["limits"]["defaults"]
        assert shown["limits"]["overrides"] == {"daily_ai_quota": None, "burst": None, "per_minute": None}
        status, body = await boss.call("PUT", "/api/admin/settings/limits", {"daily_ai_quota": 7})
        assert status == 200, body
    assert (await Bot.get(id=bot.id)).settings == {"daily_ai_quota": 7,
                                                  "written_by_a_newer_version": {"kept": True}}


KEY_READS = re.compile(r"\.settings\.get\(|\.settings\[|\b(bot|tenant|row)\.settings\s*=")


def test_only_the_settings_model_reads_and_writes_the_column() -> None:
    """Every key of `Bot.settings` is a field in services/tenant_settings.py; nothing else looks inside."""
    owner = ROOT / "services" / "tenant_settings.py"
    offenders = [f"{path.relative_to(ROOT)}:{number}"
                 for folder in ("bot", "services", "handlers", "miniapp")
                 for path in sorted((ROOT / folder).rglob("*.py")) if path != owner
                 for number, line in enumerate(Path(path).read_text().splitlines(), 1) if KEY_READS.search(line)]
    assert offenders == []
