"""What an owner and their customers see in the Mini App, in a real browser: the tabs each one is offered,
the customer's own view of a conversation, and the owner's settings pages. Screenshots in en, ru and uz
at a phone's width and a desktop's go to SCREENSHOT_DIR (default build/screenshots)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, Page, expect
from tgsim import Simulator

from tests.desk_helpers import Desk, manager_desk, wait_for_topic
from tests.fake_ai import FakeAI
from tests.miniapp_helpers import app_client
from tests.test_miniapp_browser import browser, telegram_page
from tests.test_widget_browser import SHOTS

__all__ = ["browser"]
pytestmark = pytest.mark.browser
WIDTHS = (390, 1280)


@pytest.fixture
async def desk(database_url: str, sim: Simulator, ai: FakeAI) -> AsyncIterator[Desk]:
    async with manager_desk(database_url, sim, ai) as running:
        yield running


async def shots_in_every_language(desk: Desk, sim: Simulator, page: Page, user_id: int, path: str, name: str,
                                  ready: str) -> None:
    """The page in en, ru and uz, each at a phone's width and a desktop's (the person's language is switched
    as the settings page does; the page follows it)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    async with app_client(desk.frontdesk, sim, user_id) as client:
        for language in ("en", "ru", "uz"):
            status, _ = await client.call("PATCH", "/api/me", {"language": language})
            assert status == 200
            for width in WIDTHS:
                await page.set_viewport_size({"width": width, "height": 900})
                await page.goto(f"{desk.frontdesk.url}{path}?lang={language}")
                await expect(page.locator("html")).to_have_attribute("lang", language)
                await expect(page.locator(ready).first).to_be_visible()
                await page.screenshot(path=str(SHOTS / f"owner-{name}-{language}-{width}.png"), full_page=True)
        await client.call("PATCH", "/api/me", {"language": "en"})


TABS = "() => [...document.querySelectorAll('nav.tabs a')].filter((a) => !a.hidden).map((a) => a.textContent.trim())"


async def visible_tabs(page: Page) -> list[str]:
    return [str(name) for name in await page.evaluate(TABS)]


async def test_a_customer_sees_who_helps_them_and_their_own_messages_on_the_right(
        desk: Desk, sim: Simulator, ai: FakeAI, browser: Browser) -> None:
    ai.script.reply = "We deliver within two days."
    ann = sim.create_user("Ann", language_code="en")
    sim.send_text(ann["id"], "How fast is delivery?")
    await sim.wait_for_messages(ann["id"])
    sim.send_command(ann["id"], "human")
    [topic] = await wait_for_topic(sim, desk.chat_id)
    sim.send_text(desk.mia["id"], "Hi Ann, Mia here.", chat_id=desk.chat_id, thread_id=topic.thread_id)
    await sim.wait_until(lambda: any("Mia here" in (m.get("text") or "") for m in sim.chat_history(ann["id"])),
                         10, "Mia's reply")
    page = await telegram_page(browser, sim, ann["id"])
    await page.goto(desk.frontdesk.url + "/app/")
    row = page.locator("#conversations li")
    await expect(row.locator(".badge.assigned")).to_have_text("With Mia")
    # A deployment with an AI offers customers the prompt studio (they can run it); never the staff's pages.
    assert await visible_tabs(page) == ["My conversations", "Prompt studio", "My settings"]
    await row.locator("a").click()
    mine = page.locator("#transcript .msg.customer").first
    answer = page.locator("#transcript .msg.ai").first
    await expect(mine).to_be_visible()
    await expect(page.locator("#transcript .msg.manager")).to_be_visible()
    mine_box, answer_box = await mine.bounding_box(), await answer.bounding_box()
    assert mine_box is not None
    assert answer_box is not None
    body = await page.evaluate("() => document.querySelector('#transcript').getBoundingClientRect().right")
    assert abs(mine_box["x"] + mine_box["width"] - body) < 2  # against the right edge
    assert answer_box["x"] < mine_box["x"]  # the answers on the left
    await expect(page.locator("#state")).to_have_text("With Mia")
    await shots_in_every_language(desk, sim, page, ann["id"], page.url.removeprefix(desk.frontdesk.url),
                                  "customer-conversation", "#transcript .msg")
    await page.context.close()


async def test_without_an_ai_a_customer_is_offered_only_their_own_pages(database_url: str, sim: Simulator,
                                                                       browser: Browser) -> None:
    async with manager_desk(database_url, sim, None) as desk:
        bob = sim.create_user("Bob", language_code="en")
        page = await telegram_page(browser, sim, bob["id"])
        await page.goto(desk.frontdesk.url + "/app/settings")
        await expect(page.locator("input[name=language][value=en]")).to_be_checked()
        assert await visible_tabs(page) == ["My conversations", "My settings"]
        await expect(page.locator("#browsers")).to_be_hidden()  # signing in from browsers is for staff
        page_of_mia = await telegram_page(browser, sim, desk.mia["id"])
        await page_of_mia.goto(desk.frontdesk.url + "/app/settings")
        await expect(page_of_mia.locator("#browsers")).to_be_visible()
        assert "Prompt studio" in await visible_tabs(page_of_mia)
        await page.context.close()
        await page_of_mia.context.close()


async def test_the_owners_pages_read_right_in_every_language(desk: Desk, sim: Simulator, browser: Browser) -> None:
    ann = sim.create_user("Ann", language_code="en")
    sim.send_text(ann["id"], "Do you sell gift cards?")
    await sim.wait_for_messages(ann["id"])
    sim.send_voice(ann["id"], content=b"And vouchers?", duration=75)  # a voice heard: the analytics count it
    await sim.wait_for_messages(ann["id"], 2)
    page = await telegram_page(browser, sim, desk.boss["id"])
    await page.goto(f"{desk.frontdesk.url}/app/analytics")
    await expect(page.locator("#stat-media")).to_have_text("Voice messages heard: 1 (2 min) · images seen: 0")
    async with app_client(desk.frontdesk, sim, desk.boss["id"]) as boss:
        status, _ = await boss.call("PUT", "/api/admin/settings/hours", {
            "working_hours": "mon-fri 09:00-18:00, sat 10:00-14:00", "timezone": "Asia/Tashkent"})
        assert status == 200
    await shots_in_every_language(desk, sim, page, desk.boss["id"], "/app/analytics", "analytics", "#per-day canvas")
    await shots_in_every_language(desk, sim, page, desk.boss["id"], "/app/admin", "admin-hours", "#week .day")
    await page.context.close()
