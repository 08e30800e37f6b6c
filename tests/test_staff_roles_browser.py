"""Approving a new member on the Team page, and what a viewer's desk looks like, in a real browser
(Debian's Chromium via Playwright); screenshots at a phone and a desktop width go to SCREENSHOT_DIR."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, expect
from tgsim import Simulator

from models import Role, User
from tests.desk_helpers import Desk, manager_desk
from tests.fake_ai import FakeAI
from tests.miniapp_helpers import app_client
from tests.test_manager_desk import handed_off
from tests.test_miniapp_browser import browser, shot, telegram_page

__all__ = ["browser"]
pytestmark = pytest.mark.browser


@pytest.fixture
async def desk(database_url: str, sim: Simulator, ai: FakeAI) -> AsyncIterator[Desk]:
    async with manager_desk(database_url, sim, ai, STAFF_AUTO_APPROVE="false") as running:
        yield running


async def test_an_admin_approves_a_viewer_who_then_reads_without_acting(
        desk: Desk, sim: Simulator, browser: Browser) -> None:
    await handed_off(sim, desk)
    async with app_client(desk.frontdesk, sim, desk.mia["id"]) as mia:
        assert (await mia.get("/api/me"))["role"] == "pending"  # Mia opened the app: she waits on the team list
    boss = await telegram_page(browser, sim, desk.boss["id"])
    await boss.goto(desk.frontdesk.url + "/app/admin#team")
    row = boss.locator("#team-list li", has_text="Mia")
    await expect(row.locator(".badge")).to_have_text("Waiting for approval")
    await row.get_by_role("button", name="Approve as viewer").click()
    await expect(row.locator(".badge")).to_have_text("Viewer (reads only)")
    await expect(row.get_by_role("button", name="Make manager")).to_be_visible()
    assert (await User.get(telegram_id=desk.mia["id"])).role == Role.VIEWER

    page = await telegram_page(browser, sim, desk.mia["id"])
    await page.goto(desk.frontdesk.url + "/app/inbox")
    await expect(page.locator(".role-banner")).to_have_text(
        "Your role is viewer: you can read everything here but not change it.")
    await page.locator("#conversations li a").first.click()
    await expect(page.locator("#summary")).to_be_visible()
    await expect(page.locator("#actions")).to_be_hidden()  # no Take, Close or Ban for a viewer
    await expect(page.locator("#composer")).to_be_hidden()
    await page.goto(desk.frontdesk.url + "/app/knowledge")
    await expect(page.locator("#total")).not_to_be_empty()  # the list is there to read
    await expect(page.locator("#filters")).to_be_visible()
    await expect(page.locator("#editor")).to_be_hidden()  # but nothing offers to change it
    await expect(page.locator("#add-url")).to_be_hidden()
    manager = await telegram_page(browser, sim, desk.boss["id"])
    await manager.goto(desk.frontdesk.url + "/app/knowledge")
    await expect(manager.locator("#editor")).to_be_visible()  # for those who may change it, it is there

    for locale in ("en", "ru", "uz"):
        await User.filter(telegram_id__in=[desk.boss["id"], desk.mia["id"]]).update(language=locale)
        for width in (390, 1280):
            await boss.set_viewport_size({"width": width, "height": 820})
            await boss.goto(desk.frontdesk.url + "/app/admin#team")
            await expect(boss.locator("#team-list li")).to_have_count(2)
            await shot(boss, f"team-roles-{locale}-{width}")
            await page.set_viewport_size({"width": width, "height": 820})
            await page.goto(desk.frontdesk.url + "/app/inbox")
            await expect(page.locator(".role-banner")).to_be_visible()
            await shot(page, f"viewer-inbox-{locale}-{width}")
