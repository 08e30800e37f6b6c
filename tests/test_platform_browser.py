"""The platform page in a real browser (Debian's Chromium via Playwright), opened as Telegram opens the Mini App:
the platform's owner adds a bot by its token, sees its state and errors, pauses it; a bot's admin sees no
Platform tab. Screenshots at a phone's and a desktop's width, in each language, go to SCREENSHOT_DIR."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from playwright.async_api import Browser, Page, expect
from tgsim import Simulator

from models import AuthorKind, Bot, JobStatus, OutboxJob, UsageSlot
from services import budgets
from tests.browser_helpers import DESKTOP, PHONE, THEMES, webview_page
from tests.browser_helpers import browser as browser
from tests.conftest import ENCRYPTION_KEY, Frontdesk, free_port, frontdesk_environment, running_frontdesk
from tests.desk_helpers import BOSS_ID
from tests.fake_ai import FakeAI
from tests.test_platform import CAFE_TOKEN, SHOP_TOKEN, _customer, _job, _messages
from tests.test_widget_browser import SHOTS

pytestmark = pytest.mark.browser
OWNERS = {"en": 5_550_001, "ru": 5_550_002, "uz": 5_550_003}  # the platform's owners, one per language


@pytest.fixture
async def platform(database_url: str, sim: Simulator, ai: FakeAI) -> AsyncIterator[Frontdesk]:
    for locale, owner in OWNERS.items():
        sim.create_user("Olga", id=owner, language_code=locale)
    sim.create_user("Boss", id=BOSS_ID, language_code="en")
    env = frontdesk_environment(database_url, sim, ai, free_port(), ADMIN_IDS=str(BOSS_ID),
                                PLATFORM_ADMIN_IDS=",".join(map(str, OWNERS.values())), ENCRYPTION_KEY=ENCRYPTION_KEY)
    async with running_frontdesk(env) as running:
        yield running


async def platform_page(browser: Browser, sim: Simulator, frontdesk: Frontdesk, user_id: int,
                        viewport: dict[str, int] = PHONE) -> Page:
    page = await webview_page(browser, sim, user_id, themes=THEMES["light"], viewport=viewport)
    await page.goto(frontdesk.url + "/app/platform")
    return page


async def test_the_platform_owner_adds_a_bot_and_pauses_it(
        platform: Frontdesk, sim: Simulator, browser: Browser) -> None:
    sim.add_bot(SHOP_TOKEN, username="shop_two_bot")
    page = await platform_page(browser, sim, platform, OWNERS["en"])
    await expect(page.locator("nav a[href='/app/platform']")).to_be_visible()
    await expect(page.locator("#bots tbody tr")).to_have_count(1)  # BOT_TOKEN's bot
    await expect(page.locator("#bots tbody tr").first).to_contain_text("token from BOT_TOKEN")

    token = page.get_by_label("Bot token").first
    await token.fill("not a token")
    await page.get_by_role("button", name="Add the bot").click()
    await expect(page.locator("#add-error")).to_have_text(
        "That is not a bot token: @BotFather gives one like 123456789:AAE…")
    await expect(token).to_have_attribute("aria-invalid", "true")
    await token.fill(SHOP_TOKEN)
    await page.get_by_role("button", name="Add the bot").click()
    await expect(page.locator("#toast")).to_have_text("@shop_two_bot was added and is being served.")
    shop = page.locator("#bots tbody tr", has_text="@shop_two_bot")
    await expect(shop).to_contain_text("Serving")
    await expect(shop).to_contain_text("token …" + SHOP_TOKEN[-4:])
    await expect(token).to_have_value("")  # the token is not left on the screen

    await shop.get_by_role("button", name="Pause").click()
    await expect(shop).to_contain_text("Paused")
    await expect(shop).to_contain_text("paused by a platform owner")
    assert await page.evaluate("window.__FD_CONFIRMS__") == [
        "Pause @shop_two_bot? It stops answering its customers until you resume it. Nothing is deleted."]
    assert (await Bot.get(username="shop_two_bot")).state == "paused"
    await expect(shop.get_by_role("button", name="Resume")).to_be_visible()

    # A bot whose work failed, and one whose token Telegram refused, stand out.
    shop_id = (await Bot.get(username="shop_two_bot")).id
    await OutboxJob.create(bot_id=shop_id, kind="answer", status=JobStatus.FAILED, run_after=datetime.now(UTC),
                           finished_at=datetime.now(UTC))
    await Bot.filter(id=shop_id).update(paused_reason="revoked")
    await page.reload()
    await expect(shop).to_have_class("troubled bot-paused")
    await expect(shop).to_contain_text("Token revoked")
    await expect(shop).to_contain_text("Failed jobs: 1")
    await expect(shop.get_by_role("button", name="Resume")).to_have_count(0)  # a new token serves it again

    boss = await platform_page(browser, sim, platform, BOSS_ID)
    await expect(boss.locator("nav a[href='/app/admin']")).to_be_visible()
    await expect(boss.locator("nav a[href='/app/platform']")).to_be_hidden()
    await expect(boss.locator("#status")).to_have_text("Not found.")
    await expect(boss.locator("#platform")).to_be_hidden()


async def test_screenshots_of_the_platform_page(platform: Frontdesk, sim: Simulator, browser: Browser) -> None:
    sim.add_bot(SHOP_TOKEN, username="shop_two_bot")
    sim.add_bot(CAFE_TOKEN, username="cafe_bot")
    page = await platform_page(browser, sim, platform, OWNERS["en"])
    for token in (SHOP_TOKEN, CAFE_TOKEN):
        await page.get_by_label("Bot token").first.fill(token)
        await page.get_by_role("button", name="Add the bot").click()
        await expect(page.locator("#bots tbody tr")).to_have_count(2 if token == SHOP_TOKEN else 3)
    cafe, shop = await Bot.get(username="cafe_bot"), await Bot.get(username="shop_two_bot")
    await Bot.filter(id=cafe.id).update(state="paused", paused_reason="revoked")
    now = datetime.now(UTC)
    ann, talk = await _customer(shop.id, 901)
    for kind, today, earlier in ((AuthorKind.CUSTOMER, 14, 230), (AuthorKind.AI, 12, 201), (AuthorKind.MANAGER, 2, 25)):
        await _messages(talk, ann, kind, today, now - timedelta(hours=2))
        await _messages(talk, ann, kind, earlier, now - timedelta(days=5))
    await UsageSlot.create(bot_id=shop.id, slot=budgets.month_start(now), cost=Decimal("3.42"))
    await budgets.set_budget(shop.id, Decimal("25"))
    await _job(cafe.id, JobStatus.FAILED, now - timedelta(hours=1))
    SHOTS.mkdir(parents=True, exist_ok=True)
    for locale, owner in OWNERS.items():
        for width, viewport in (("390", PHONE), ("1280", DESKTOP)):
            page = await platform_page(browser, sim, platform, owner, viewport)
            await expect(page.locator("html")).to_have_attribute("lang", locale)
            await expect(page.locator("#bots tbody tr")).to_have_count(3)
            await expect(page.locator("#bots tbody tr.troubled")).to_have_count(1)
            await page.screenshot(path=str(SHOTS / f"platform-{locale}-{width}.png"), full_page=True)
