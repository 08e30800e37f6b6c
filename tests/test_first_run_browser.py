"""The first run in a real browser, without Telegram or an AI: the demo shop's widget in English, Russian
and Uzbek, a handoff that says where it waits, and the owner signing in to the inbox with the shell's link.

Screenshots (390 px and 1280 px wide) go to SCREENSHOT_DIR (default: build/screenshots), as first-run-*.png.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, Route, ViewportSize, expect
from tgsim import Simulator

from models import Bot
from services import bot_settings, knowledge
from tests.conftest import ROOT, Frontdesk
from tests.test_first_run import OWNER, dashboard_link
from tests.test_widget_browser import SHOTS, browser  # noqa: F401  (the fixture)

pytestmark = pytest.mark.browser
NO_TELEGRAM = {"BOT_TOKEN": "", "use_ai": False, "ADMIN_IDS": str(OWNER)}
WIDTHS: dict[str, ViewportSize] = {"phone": {"width": 390, "height": 780}, "desktop": {"width": 1280, "height": 800}}
ASKED = {
    "en": ("What are your opening hours?", "Monday to Friday 7:00–20:00", "Can I bring my dog?",
           "Hi! Welcome to Bean There. How can we help you today?"),
    "ru": ("Какие у вас часы работы?", "с понедельника по пятницу с 7:00 до 20:00", "Можно прийти с собакой?",
           "Bean There"),
    "uz": ("Ish vaqtingiz qanday?", "dushanbadan jumagacha 7:00 dan 20:00 gacha", "Itim bilan kelsam bo‘ladimi?",
           "Bean There"),
}


async def _demo_shop() -> None:
    bot = await Bot.get(telegram_id=0)
    for path in sorted((ROOT / "demo").glob("knowledge*.md")):
        await knowledge.import_entries(bot.id, knowledge.parse_file(path))
    await bot_settings.set_business_name(bot.id, "Bean There", None, via="test")


async def _shots(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width, size in WIDTHS.items():
        await page.set_viewport_size(size)
        await page.screenshot(path=str(SHOTS / f"first-run-{name}-{width}.png"))


async def _say(page: Page, text: str) -> None:
    box = page.locator("textarea")
    await box.fill(text)
    await box.press("Enter")


@pytest.mark.parametrize("frontdesk_settings", [NO_TELEGRAM], indirect=True)
@pytest.mark.parametrize("lang", ["en", "ru", "uz"])
async def test_the_demo_shops_widget_answers_hands_off_and_says_where_it_waits(
        frontdesk: Frontdesk, browser: Browser, lang: str) -> None:  # noqa: F811
    await _demo_shop()
    question, answer, unknown, greeting = ASKED[lang]
    context = await browser.new_context(locale=lang, viewport=WIDTHS["phone"])
    page = await context.new_page()
    await page.goto(frontdesk.url + "/")
    await page.locator(".bubble").click()
    await expect(page.locator("header h2")).to_have_text("Bean There")  # the business's name, not "Frontdesk"
    await expect(page.locator(".greeting")).to_contain_text(greeting)
    await _say(page, question)
    await expect(page.locator(".msg.ai[data-id]")).to_contain_text(answer)  # the demo knowledge, in their language
    await _say(page, unknown)
    notices = page.locator(".msg.system[data-id]")
    await expect(notices).to_have_count(1)
    await _say(page, "?")
    await expect(notices).to_have_count(2)  # a later message gets its outcome too
    if lang == "en":
        await expect(notices.nth(0)).to_contain_text("It's waiting in our team's inbox, and someone will answer "
                                                     "you right here.")
        await expect(notices.nth(1)).to_contain_text("I've added this to your conversation in our team's inbox.")
    await expect(page.locator("header p")).not_to_have_text("")
    await _shots(page, f"widget-{lang}")
    await context.close()


@pytest.mark.parametrize("frontdesk_settings", [NO_TELEGRAM], indirect=True)
async def test_without_telegram_the_owner_signs_in_with_the_shells_link_and_sees_the_handoff(
        frontdesk: Frontdesk, sim: Simulator, browser: Browser, database_url: str, tmp_path: Path,  # noqa: F811
        ) -> None:
    await _demo_shop()
    visitor = await browser.new_context(locale="en", viewport=WIDTHS["phone"])
    chat = await visitor.new_page()
    await chat.goto(frontdesk.url + "/")
    await chat.locator(".bubble").click()
    await _say(chat, "Can I book the whole café for a birthday?")
    await expect(chat.locator(".msg.system[data-id]")).to_have_count(1)

    made = await asyncio.to_thread(dashboard_link, tmp_path, database_url, "--name", "Olga",
                                   ADMIN_IDS=str(OWNER), PORT=str(frontdesk.settings.port))
    assert made.returncode == 0, made.stderr
    link = made.stdout.strip()  # http://localhost:PORT/...: the address as printed, opened as printed
    owner = await browser.new_context(viewport=WIDTHS["desktop"])

    async def no_telegram(route: Route) -> None:  # telegram.org is unreachable here, as on a closed network
        await route.fulfill(status=200, content_type="application/javascript", body="")

    await owner.route("https://telegram.org/**", no_telegram)
    page = await owner.new_page()
    await page.goto(link)
    await page.locator("#sign-in").click()
    await page.wait_for_url("**/app/inbox")
    row = page.locator("#conversations li")
    await expect(row).to_have_count(1)
    await expect(row).to_have_attribute("data-state", "waiting")  # (its preview is the inbox's own business)
    await _shots(page, "inbox")
    await page.goto(frontdesk.url.replace("127.0.0.1", "localhost") + "/app/admin")
    name = page.locator("#business-form input[name=business_name]")
    await expect(name).to_have_value("Bean There")
    await name.fill("Bean There Café")
    await page.locator("#business-form button[type=submit]").click()
    await expect(page.locator("#toast")).to_have_text("Saved")
    assert bot_settings.business_name(await Bot.get(telegram_id=0)) == "Bean There Café"
    await _shots(page, "admin")
    await owner.close()
    await visitor.close()
