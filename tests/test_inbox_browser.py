"""The inbox built for triage in a real browser (Debian's Chromium driven by Playwright): the tabs'
counts, live; a notification, and the title's count, when a conversation starts waiting; keyboard
navigation and search. Screenshots in en, ru and uz at 390 and 1280 px go to SCREENSHOT_DIR."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect
from tgsim import Simulator

from tests.browser_helpers import browser as browser
from tests.browser_helpers import webview_context
from tests.conftest import eventually
from tests.desk_helpers import Desk, manager_desk, topics, wait_for_topic, wait_in_topic
from tests.fake_ai import FakeAI
from tests.miniapp_helpers import app_client
from tests.test_widget_browser import SHOTS

pytestmark = pytest.mark.browser
# Records each notification the page shows (a headless browser has nowhere to show them).
NOTIFICATION_SPY = """
window.__notifications = [];
if (window.Notification) {
  const Real = window.Notification;
  window.Notification = class extends Real {
    constructor(title, options) { super(title, options); window.__notifications.push({ title, body: options.body }); }
  };
}
"""


@pytest.fixture
async def desk(database_url: str, sim: Simulator, ai: FakeAI) -> AsyncIterator[Desk]:
    async with manager_desk(database_url, sim, ai, PUBLIC_BASE_URL="https://desk.example") as running:
        yield running


async def inbox_in_a_browser(browser: Browser, sim: Simulator, desk: Desk, width: int,
                             notifications: bool = False) -> Page:
    """Mia's inbox on a phone or a desktop, opened from Telegram (its initData signed by tgsim)."""
    context = await webview_context(browser, sim, desk.mia["id"],
                                    viewport={"width": width, "height": 900 if width > 500 else 844})
    if notifications:
        await context.grant_permissions(["notifications"], origin=desk.frontdesk.url)
        await context.add_init_script(NOTIFICATION_SPY)
    page = await context.new_page()
    await page.goto(desk.frontdesk.url + "/app/inbox")
    return page


async def handed_off(sim: Simulator, desk: Desk, name: str, text: str, **names: Any) -> dict[str, Any]:
    customer: dict[str, Any] = sim.create_user(name, **names)
    sim.send_text(customer["id"], text)
    await sim.wait_for_messages(customer["id"])
    before = len(topics(sim, desk.chat_id))
    sim.send_command(customer["id"], "human")
    opened = await wait_for_topic(sim, desk.chat_id, before + 1)
    await wait_in_topic(sim, desk.chat_id, opened[-1].thread_id, 1)
    return customer


def count(page: Page, view: str) -> Any:
    return page.locator(f'.inbox-tabs [data-count="{view}"]')


async def test_the_tabs_show_their_counts_and_follow_the_desk_live(
        desk: Desk, sim: Simulator, browser: Browser) -> None:
    ann = sim.create_user("Ann", last_name="Lee")
    sim.send_text(ann["id"], "Do you deliver on Sundays?")
    await sim.wait_for_messages(ann["id"])
    await handed_off(sim, desk, "Bob", "My umbrella arrived broken", last_name="Marsh")
    cid = await handed_off(sim, desk, "Cid", "Where is my order 1042?")
    async with app_client(desk.frontdesk, sim, desk.mia["id"]) as mia:
        rows = (await mia.get("/api/conversations?view=waiting"))["conversations"]
        [cids] = [row for row in rows if row["customer"]["name"] == "Cid"]
        await mia.post(f"/api/conversations/{cids['id']}/actions", {"action": "take"})

        for language in ("en", "ru", "uz"):
            await mia.call("PATCH", "/api/me", {"language": language})
            for width in (390, 1280):
                page = await inbox_in_a_browser(browser, sim, desk, width)
                await expect(page.locator("#conversations li")).to_have_count(3)
                for view, expected in (("all", "3"), ("waiting", "1"), ("unassigned", "2"), ("mine", "1"),
                                       ("ai", "1"), ("closed", "0")):
                    await expect(count(page, view)).to_have_text(expected)
                bob = page.locator("#conversations li", has_text="Bob Marsh")
                await expect(bob.locator(".preview")).to_have_text("My umbrella arrived broken")
                await expect(bob.locator(".waited")).to_be_visible()
                await page.screenshot(path=str(SHOTS / f"inbox-{language}-{width}.png"), full_page=True)
                await page.context.close()
        await mia.call("PATCH", "/api/me", {"language": "en"})

    page = await inbox_in_a_browser(browser, sim, desk, 1280)
    await expect(count(page, "waiting")).to_have_text("1")
    await expect(page).to_have_title("(1) Inbox")
    # A customer asks for a person while the inbox is open: the counts follow without a reload.
    await handed_off(sim, desk, "Dee", "Can I return a gift?")
    await expect(count(page, "waiting")).to_have_text("2", timeout=10_000)
    await expect(count(page, "all")).to_have_text("4")
    await expect(page).to_have_title("(2) Inbox")
    # The waiting tab: the longest wait first.
    await page.get_by_role("radio", name="Waiting").check()
    await expect(page.locator("#conversations li .name")).to_have_text(["Bob Marsh", "Dee"])
    assert cid


async def test_a_new_waiting_conversation_notifies_and_the_keyboard_works_the_list(
        desk: Desk, sim: Simulator, browser: Browser) -> None:
    ann = sim.create_user("Ann")
    sim.send_text(ann["id"], "Hello")
    await sim.wait_for_messages(ann["id"])
    page = await inbox_in_a_browser(browser, sim, desk, 1280, notifications=True)
    await expect(page.locator("#conversations li")).to_have_count(1)
    await page.locator("#alerts summary").click()
    await page.get_by_label("Browser notification").check()
    await expect(page.get_by_label("Browser notification")).to_be_checked()

    await handed_off(sim, desk, "Bea", "My umbrella arrived broken", last_name="Stone")
    expected = [{"title": "Waiting for a person: Bea Stone", "body": "My umbrella arrived broken"}]

    async def notified() -> bool:
        return bool(await page.evaluate("window.__notifications") == expected)
    await eventually(notified, "the notification", within=10)
    bea = page.locator("#conversations li", has_text="Bea Stone")
    await expect(bea.locator(".dot")).to_be_visible()  # unread
    await expect(bea.locator(".reason")).to_have_text("asked for a person")
    await page.screenshot(path=str(SHOTS / "inbox-notified-en-1280.png"))

    # The choice is kept in this browser: a reload keeps it on; Ann writing again notifies no one.
    await page.reload()
    await expect(page.get_by_label("Browser notification")).to_be_checked()
    sim.send_text(ann["id"], "Are you there?")
    await sim.wait_for_messages(ann["id"], 2)
    assert await page.evaluate("window.__notifications") == []

    # The keyboard: ? shows the help, j/k move, Enter opens.
    await page.evaluate("document.activeElement && document.activeElement.blur()")
    await page.keyboard.press("?")
    await expect(page.locator("#help")).to_be_visible()
    await page.screenshot(path=str(SHOTS / "inbox-help-en-1280.png"))
    await page.keyboard.press("Escape")
    await expect(page.locator("#help")).to_be_hidden()
    await page.keyboard.press("j")
    await expect(page.locator("#conversations li.selected")).to_have_count(1)
    await page.keyboard.press("k")
    await expect(page.locator("#conversations li").first).to_have_class(re.compile(r"\bselected\b"))
    selected_name = await page.locator("#conversations li.selected .name").inner_text()
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/app/conversations/*")
    await expect(page.locator("#who")).to_have_text(selected_name)
    await page.go_back()
    await expect(page.locator("#conversations li", has_text=selected_name).locator(".dot")).to_have_count(0)

    # Search finds what was written.
    await page.keyboard.press("/")
    await page.keyboard.type("umbrella")
    await expect(page.locator("#conversations li .name")).to_have_text(["Bea Stone"])
