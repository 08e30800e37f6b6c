"""The persona editor and the admins' settings in a real browser (Debian's Chromium via Playwright),
opened as Telegram would open them; screenshots in the light and dark themes go to SCREENSHOT_DIR."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from playwright.async_api import Browser, Page, expect
from tgsim import Simulator

from models import AuditLog, Bot, Persona, WidgetSite
from tests.desk_helpers import Desk, manager_desk
from tests.fake_ai import FakeAI
from tests.miniapp_helpers import app_client
from tests.test_miniapp_browser import browser, shot, telegram_page

__all__ = ["browser"]  # the fixture, shared with the Mini App's other browser tests
pytestmark = pytest.mark.browser


@pytest.fixture
async def desk(database_url: str, sim: Simulator, ai: FakeAI) -> AsyncIterator[Desk]:
    async with manager_desk(database_url, sim, ai, PUBLIC_BASE_URL="https://desk.example") as running:
        yield running


async def save_persona(page: Page, text: str) -> None:
    if not await page.locator("#text").is_visible():  # the prompt itself is one click away from the form
        await page.locator("#raw summary").click()
    await page.locator("#text").fill(text)
    await page.get_by_role("button", name="Save as a new version").click()


async def test_a_manager_edits_the_persona_sees_the_diff_and_rolls_back(
        desk: Desk, sim: Simulator, ai: FakeAI, browser: Browser) -> None:
    page = await telegram_page(browser, sim, desk.mia["id"])
    await page.goto(desk.frontdesk.url + "/app/persona")
    await expect(page.locator("#active-label")).to_have_text("The built-in default is in use: saving makes version 1.")
    await expect(page.get_by_role("button", name="Save as a new version")).to_be_disabled()  # nothing changed yet

    await save_persona(page, "You are Pat, the bakery's assistant.\nBe kind.\nNever promise delivery dates.")
    await expect(page.locator("#toast")).to_contain_text("Saved as version 1.")
    await expect(page.locator("#active-label")).to_contain_text("Active: version 1 · ")
    await expect(page.locator("#active-label")).to_contain_text("Mia")

    await save_persona(page, "You are Pat, the bakery's assistant.\nBe kind and brief.\n<b>Sign as Pat.</b>")
    await expect(page.locator("#toast")).to_contain_text("Saved as version 2.")
    await expect(page.locator("#versions li")).to_have_count(2)
    await expect(page.locator("#changes-title")).to_have_text("What version 2 changed")
    await expect(page.locator("#diff li.removed .text")).to_have_text(["Be kind.", "Never promise delivery dates."])
    await expect(page.locator("#diff li.added .text")).to_have_text(["Be kind and brief.", "<b>Sign as Pat.</b>"])
    await expect(page.locator("#diff li.added mark").first).to_have_text(" and brief")
    assert await page.locator("#diff b").count() == 0  # the diff is text, never markup
    await shot(page, "persona-light")

    # Version 1 was better: roll back to it.
    await page.locator("#versions li[data-version='1'] button").click()
    await expect(page.locator("#changes-title")).to_have_text("What version 1 changed")
    await expect(page.locator("#changes-summary")).to_contain_text("Compared with the built-in default")
    await page.get_by_role("button", name="Make this version active again").click()
    await expect(page.locator("#toast")).to_contain_text("Version 1 is active again, as version 3.")
    await expect(page.locator("#versions li").first).to_contain_text("restored from version 1")
    await expect(page.locator("#text")).to_have_value(
        "You are Pat, the bakery's assistant.\nBe kind.\nNever promise delivery dates.")
    rows = await Persona.all().order_by("version")
    assert [(row.version, row.active) for row in rows] == [(1, False), (2, False), (3, True)]
    assert rows[2].text == rows[0].text

    ann = sim.create_user("Ann")
    sim.send_text(ann["id"], "Hello")
    await sim.wait_for_messages(ann["id"], timeout=10)
    assert str(ai.requests[-1]["messages"][0]["content"]).startswith("You are Pat, the bakery's assistant.\nBe kind.\n")

    dark = await telegram_page(browser, sim, desk.mia["id"], "dark")
    await dark.goto(desk.frontdesk.url + "/app/persona")
    await dark.locator("#versions li[data-version='2'] button").click()
    await expect(dark.locator("#changes-title")).to_have_text("What version 2 changed")
    await shot(dark, "persona-dark")


async def test_an_admin_changes_working_hours_and_adds_a_widget_site(
        desk: Desk, sim: Simulator, browser: Browser) -> None:
    async with app_client(desk.frontdesk, sim, desk.mia["id"]) as mia:
        await mia.get("/api/me")  # Mia has opened the app: she is on the team
    page = await telegram_page(browser, sim, desk.boss["id"])
    await page.goto(desk.frontdesk.url + "/app/admin")
    await expect(page.get_by_role("link", name="Admin")).to_be_visible()
    await expect(page.locator("#hours-now")).to_have_text("No working hours are set: someone is always in.")
    # The days and times are picked; the picker writes the text the server keeps.
    for day in ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"):
        await page.get_by_role("checkbox", name=day).check()
    await page.get_by_label("Saturday: from").fill("10:00")
    await page.get_by_label("Saturday: until").fill("14:00")
    await page.locator("select[name=timezone]").select_option("Asia/Tashkent")
    await page.locator("textarea[name=offline_en]").fill("We're closed. Back on {when}!")
    await page.locator("#hours-form").get_by_role("button", name="Save").click()
    await expect(page.locator("#toast")).to_have_text("Saved")
    await expect(page.locator("#hours-now")).not_to_have_text("No working hours are set: someone is always in.")
    bot = await Bot.get(id=(await WidgetSite.get(public_key="demo")).bot_id)
    assert (bot.settings["working_hours"], bot.settings["timezone"]) == (
        "mon-fri 09:00-18:00, sat 10:00-14:00", "Asia/Tashkent")
    assert bot.settings["offline_text"] == {"en": "We're closed. Back on {when}!"}
    await page.reload()
    await expect(page.get_by_role("checkbox", name="Saturday")).to_be_checked()
    await expect(page.get_by_role("checkbox", name="Sunday")).not_to_be_checked()
    await expect(page.get_by_label("Saturday: until")).to_have_value("14:00")
    await expect(page.locator("select[name=timezone]")).to_have_value("Asia/Tashkent")
    await shot(page, "admin-hours-light")

    # Mistakes are shown at the field and stay there; nothing changes.
    await page.get_by_label("Sunday", exact=True).check()
    await page.get_by_label("Sunday: from").fill("15:00")
    await page.get_by_label("Sunday: until").fill("11:00")
    await page.locator("#hours-form").get_by_role("button", name="Save").click()
    await expect(page.locator("#error-sun")).to_have_text("The end is before the start.")
    await expect(page.get_by_label("Sunday: until")).to_have_attribute("aria-invalid", "true")
    await page.get_by_label("Sunday", exact=True).uncheck()
    await page.locator("#hours-text summary").click()
    await page.locator("input[name=working_hours]").fill("weekdays 9 to 5")
    await page.locator("#hours-form").get_by_role("button", name="Save").click()
    await expect(page.locator("#hours-error")).to_contain_text("Write the working hours like")
    await expect(page.locator("input[name=working_hours]")).to_have_attribute("aria-invalid", "true")
    assert (await Bot.get(id=bot.id)).settings["working_hours"] == "mon-fri 09:00-18:00, sat 10:00-14:00"

    await page.get_by_role("radio", name="Website").check()
    await expect(page.locator("#site-list form.site")).to_have_count(1)  # the demo site
    await page.locator("#add-site summary").click()
    await page.locator("#new-site textarea[name=allowed_origins]").fill("https://shop.example")
    await page.locator("#new-site input[name=title]").fill("Shop")
    await page.locator("#new-site").get_by_role("button", name="Add the website").click()
    new = page.locator("#site-list form.site").nth(1)
    await expect(new.locator(".site-title")).to_have_text("Shop")
    site = await WidgetSite.get(title="Shop")
    assert site.allowed_origins == ["https://shop.example"]
    await expect(new.locator("[data-field=embed]")).to_have_text(
        f'<script src="https://desk.example/widget.js" data-site="{site.public_key}" async></script>')
    await expect(new.locator("[data-field=secret]")).to_be_hidden()
    await new.get_by_role("button", name="Show").click()
    await expect(new.locator("[data-field=secret]")).to_have_text(site.secret)
    await page.evaluate("window.scrollTo(0, 0)")
    await shot(page, "admin-sites-light")
    assert await AuditLog.filter(action="site_add").count() == 1

    for section in ("ai", "limits", "team"):
        await page.goto(desk.frontdesk.url + f"/app/admin#{section}")
        await expect(page.locator(f"[data-section={section}]")).to_be_visible()
        await page.evaluate("window.scrollTo(0, 0)")
        await shot(page, f"admin-{section}-light")

    dark = await telegram_page(browser, sim, desk.boss["id"], "dark")
    for section in ("hours", "ai", "limits", "sites", "team"):
        await dark.goto(desk.frontdesk.url + f"/app/admin#{section}")
        await expect(dark.locator(f"[data-section={section}]").first).to_be_visible()  # hours: the business too
        await dark.evaluate("window.scrollTo(0, 0)")
        await shot(dark, f"admin-{section}-dark")


async def test_managers_do_not_get_the_admin_page(desk: Desk, sim: Simulator, browser: Browser) -> None:
    page = await telegram_page(browser, sim, desk.mia["id"])
    await page.goto(desk.frontdesk.url + "/app/admin")
    await expect(page.locator("#status")).to_have_text("This page is for the business's admins.")
    await expect(page.locator("#sections")).to_be_hidden()
    await expect(page.get_by_role("link", name="Persona")).to_be_visible()
    await expect(page.get_by_role("link", name="Admin")).to_be_hidden()


@pytest.mark.parametrize("lang", ["en", "ru", "uz"])
async def test_an_admin_makes_a_new_site_secret_and_copies_it(desk: Desk, sim: Simulator, browser: Browser,
                                                              lang: str) -> None:
    old = await WidgetSite.get(public_key="demo")
    page = await telegram_page(browser, sim, desk.boss["id"])
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    await page.goto(desk.frontdesk.url + f"/app/admin?lang={lang}#sites")
    form = page.locator("#site-list form.site").first
    overlap = form.locator("input[name=overlap_hours]")
    await expect(overlap).to_have_value("24")  # WIDGET_SECRET_OVERLAP_HOURS
    await expect(form.locator("[data-field=previous]")).to_be_hidden()
    await overlap.fill("6")
    await form.locator("[data-act=rotate]").click()
    secret = form.locator("[data-field=secret]")
    await expect(secret).to_be_visible()  # shown at once, to be copied
    site = await WidgetSite.get(public_key="demo")
    assert site.secret != old.secret
    assert site.previous_secret == old.secret
    await expect(secret).to_have_text(site.secret)
    asked = await page.evaluate("window.__FD_CONFIRMS__")
    assert len(asked) == 1
    assert "6" in asked[0]
    assert site.previous_secret_until is not None
    assert timedelta(hours=5) < site.previous_secret_until - datetime.now(UTC) <= timedelta(hours=6)
    await expect(form.locator("[data-field=previous]")).to_be_visible()
    await form.locator("[data-act=copy-secret]").click()
    assert await page.evaluate("navigator.clipboard.readText()") == site.secret
    [entry] = await AuditLog.filter(action="site_rotate_secret")
    assert entry.details == {"overlap_hours": 6}
    for width in (390, 1280):
        await page.set_viewport_size({"width": width, "height": 900})
        await page.evaluate("window.scrollTo(0, 0)")
        await shot(page, f"admin-site-secret-{lang}-{width}")
