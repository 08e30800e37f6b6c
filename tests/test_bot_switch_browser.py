"""A person on the team of two businesses (two bots of one deployment) moves between them from the Mini App's
header, in a real browser (Debian's Chromium via Playwright); the header's screenshots at a phone's and a
desktop's width, in English, Russian and Uzbek, go to SCREENSHOT_DIR."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, Page, expect
from tgsim import Simulator

from bot.bot_tokens import token_identifier
from models import Bot, User
from services import bot_settings, bots, knowledge_admin, team
from services.secrets_box import SecretBox, parse_key
from tests.browser_helpers import browser as browser
from tests.browser_helpers import webview_page
from tests.conftest import ENCRYPTION_KEY, TOKEN
from tests.desk_helpers import Desk, manager_desk
from tests.fake_ai import FakeAI
from tests.miniapp_helpers import dashboard_link
from tests.test_widget_browser import SHOTS

pytestmark = pytest.mark.browser
SHOP_TOKEN = "7100000002:SHOP-two-token-for-the-tests"


@pytest.fixture
async def desk(database_url: str, sim: Simulator, ai: FakeAI) -> AsyncIterator[Desk]:
    async with manager_desk(database_url, sim, ai) as running:
        yield running


async def _two_businesses(desk: Desk, sim: Simulator) -> tuple[Bot, Bot]:
    """The tea house (BOT_TOKEN's bot, Mia manages its desk from the manager group) and the bakery (a bot the
    platform owner added; Mia joined its team by invitation), each with one knowledge item."""
    sim.add_bot(SHOP_TOKEN, username="bakery_bot")
    bakery = await bots.add_bot(SHOP_TOKEN, token_identifier(desk.frontdesk.settings),
                                SecretBox(parse_key(ENCRYPTION_KEY)))
    tea = await Bot.get(telegram_id=int(TOKEN.partition(":")[0]))
    for bot, name, question in ((tea, "Tea House", "Do you sell oolong?"), (bakery, "Bakery", "Is there rye bread?")):
        user, _ = await User.get_or_create(bot_id=bot.id, telegram_id=desk.mia["id"],
                                           defaults={"first_name": "Mia"})
        await bot_settings.set_business_name(bot.id, name, None)
        await knowledge_admin.create_item(bot.id, question=question, answer="Yes.", actor=user)
    mia_there = await User.get(bot_id=bakery.id, telegram_id=desk.mia["id"])
    invite = await team.create_invite(bakery.id, "manager", mia_there)
    assert await team.claim(bakery.id, invite.code, mia_there) is not None
    assert await team.accept(bakery.id, invite.invite.id, mia_there) == "manager"
    return tea, bakery


async def _header_shots(page: Page, telegram_id: int, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    for locale in ("en", "ru", "uz"):
        await User.filter(telegram_id=telegram_id).update(language=locale)
        # The page's language: the cookie the app keeps (its own switch reloads once a visit).
        await page.context.add_cookies([{"name": "frontdesk_lang", "value": locale, "domain": "127.0.0.1",
                                         "path": "/"}])
        for width in (390, 1280):
            await page.set_viewport_size({"width": width, "height": 700})
            await page.reload()
            await expect(page.locator("html")).to_have_attribute("lang", locale)
            await expect(page.locator("#bot-select")).to_be_visible()
            await page.screenshot(path=str(SHOTS / f"miniapp-{name}-{locale}-{width}.png"),
                                  clip={"x": 0, "y": 0, "width": width, "height": 220})


async def test_staff_of_two_bots_switch_between_them_from_the_header(
        desk: Desk, sim: Simulator, browser: Browser) -> None:
    tea, bakery = await _two_businesses(desk, sim)
    context = await browser.new_context(viewport={"width": 1280, "height": 700})
    await context.route("https://telegram.org/**", lambda route: route.fulfill(
        status=200, content_type="application/javascript", body=""))
    page = await context.new_page()
    await page.goto(await dashboard_link(sim, desk.mia["id"]))  # a browser signed in from the tea house's bot
    await page.locator("#sign-in").click()
    await page.wait_for_url(desk.frontdesk.url + "/app/inbox")
    switcher = page.locator("#bot-select")
    await expect(switcher).to_be_visible()
    await expect(switcher.locator("option")).to_have_text(["Tea House", "Bakery"])
    await expect(switcher).to_have_value(str(tea.id))
    await page.goto(desk.frontdesk.url + "/app/knowledge")
    await expect(page.locator("#items")).to_contain_text("Do you sell oolong?")

    await page.locator("#bot-select").select_option(label="Bakery")
    await page.wait_for_url(f"{desk.frontdesk.url}/app/inbox?bot={bakery.id}")
    await expect(page.locator("#bot-select")).to_have_value(str(bakery.id))
    await page.goto(desk.frontdesk.url + "/app/knowledge")
    await expect(page.locator("#items")).to_contain_text("Is there rye bread?")
    await expect(page.locator("#items")).not_to_contain_text("oolong")
    me = await (await context.request.get(desk.frontdesk.url + "/api/me")).json()
    assert (me["bot_id"], me["role"]) == (bakery.id, "manager")
    await _header_shots(page, desk.mia["id"], "bot-switch-browser")

    # The switch back works the same way.
    await page.locator("#bot-select").select_option(label="Tea House")
    await page.wait_for_url(f"{desk.frontdesk.url}/app/inbox?bot={tea.id}")
    await context.close()

    # Inside Telegram the app is signed by the bot that opened it: choosing the bakery opens the bakery bot's chat.
    webview = await webview_page(browser, sim, desk.mia["id"], viewport={"width": 390, "height": 700})
    await webview.goto(f"{desk.frontdesk.url}/app/inbox?bot={tea.id}")
    await expect(webview.locator("#bot-select")).to_be_visible()
    await webview.locator("#bot-select").select_option(label="Bakery")
    assert await webview.evaluate("window.__FD_OPENED__") == ["https://t.me/bakery_bot"]
    await expect(webview.locator("#bot-select")).to_have_value(str(tea.id))  # this page stays the tea house's
    await _header_shots(webview, desk.mia["id"], "bot-switch-telegram")
    await webview.context.close()

    customer = await webview_page(browser, sim, sim.create_user("Ann")["id"])
    await customer.goto(f"{desk.frontdesk.url}/app/?bot={tea.id}")  # one business only: no switcher
    await expect(customer.locator("#status")).to_contain_text("No conversations yet")  # signed in: the app ran
    await expect(customer.locator("#bot-switch")).to_be_hidden()
    await customer.context.close()
