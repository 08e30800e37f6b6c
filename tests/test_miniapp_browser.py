"""The Mini App in a real browser (Debian's Chromium driven by Playwright), as Telegram would open it.

Telegram's telegram-web-app.js cannot be fetched here: a local stub stands in for it, carrying
initData that tgsim signed with the bot's token. Screenshots of each page in Telegram's light and
dark themes go to SCREENSHOT_DIR (default build/screenshots).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import Browser, Page, Route, expect
from tgsim import Simulator

from models import Conversation, LoginLink, WebSession
from tests.browser_helpers import THEMES, webview_page
from tests.browser_helpers import browser as browser
from tests.conftest import eventually, free_port
from tests.desk_helpers import Desk, in_topic, manager_desk, topics, wait_for_topic, wait_in_topic
from tests.fake_ai import FakeAI
from tests.miniapp_helpers import dashboard_link
from tests.test_widget_browser import SHOTS

pytestmark = pytest.mark.browser
@pytest.fixture
async def desk(database_url: str, sim: Simulator, ai: FakeAI) -> AsyncIterator[Desk]:
    async with manager_desk(database_url, sim, ai, PUBLIC_BASE_URL="https://desk.example") as running:
        yield running


async def telegram_page(browser: Browser, sim: Simulator, user_id: int, theme: str = "light",
                        accept_downloads: bool = False) -> Page:
    """A page as Telegram's webview shows it: a phone-sized window with the user's signed initData."""
    return await webview_page(browser, sim, user_id, themes=THEMES[theme], color_scheme=theme,
                              viewport={"width": 420, "height": 820}, accept_downloads=accept_downloads)


async def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"miniapp-{name}.png"), full_page=True)


async def test_a_customer_reads_their_history_and_exports_their_data(
        desk: Desk, sim: Simulator, ai: FakeAI, browser: Browser) -> None:
    ai.script.reply = "We deliver within **two days**."
    ann = sim.create_user("Ann", language_code="en")
    sim.send_text(ann["id"], "How fast is delivery?")
    await sim.wait_for_messages(ann["id"])
    for theme in ("light", "dark"):
        page = await telegram_page(browser, sim, ann["id"], theme, accept_downloads=True)
        await page.goto(desk.frontdesk.url + "/app/")
        row = page.locator("#conversations li")
        await expect(row).to_have_count(1)
        await expect(row.locator(".preview")).to_have_text("We deliver within two days.")
        await expect(page.get_by_role("link", name="Inbox")).to_be_hidden()  # staff's pages are not offered
        await shot(page, f"customer-history-{theme}")
        await row.locator("a").click()
        await expect(page.locator("#transcript .msg.customer .body")).to_have_text("How fast is delivery?")
        await expect(page.locator("#transcript .msg.ai .body b")).to_have_text("two days")
        await expect(page.locator("#composer")).to_be_hidden()  # customers read; staff write
        await shot(page, f"customer-conversation-{theme}")
        await page.context.close()

    page = await telegram_page(browser, sim, ann["id"], accept_downloads=True)
    await page.goto(desk.frontdesk.url + "/app/settings")
    await expect(page.locator("input[name=language][value=en]")).to_be_checked()
    async with page.expect_download() as download_info:
        await page.get_by_role("link", name="Export my data").click()
    download = await download_info.value
    exported = json.loads(Path(await download.path()).read_text())
    assert exported["person"]["first_name"] == "Ann"
    assert exported["conversations"][0]["messages"][0]["text"] == "How fast is delivery?"
    await shot(page, "customer-settings-light")

    # Switching the language re-renders the app in it.
    await page.get_by_role("radio", name="Русский").check()
    await expect(page.locator("h1")).to_have_text("Мои настройки")


async def test_a_manager_works_a_conversation_live_from_the_inbox(
        desk: Desk, sim: Simulator, ai: FakeAI, browser: Browser) -> None:
    page = await telegram_page(browser, sim, desk.mia["id"])
    await page.goto(desk.frontdesk.url + "/app/")
    await expect(page).to_have_url(desk.frontdesk.url + "/app/inbox")  # staff land in the inbox
    await expect(page.locator("#status")).to_have_text("Nothing here right now.")

    # A customer writes while the inbox is open: the conversation appears without a reload.
    bea = sim.create_user("Bea", last_name="Stone")
    sim.send_command(bea["id"], "human")
    row = page.locator("#conversations li", has_text="Bea Stone")
    await expect(row).to_be_visible(timeout=10_000)
    await expect(row.locator(".badge.waiting")).to_have_text("Waiting")
    await shot(page, "manager-inbox-light")

    await row.locator("a").click()
    await expect(page.locator("#who")).to_have_text("Bea Stone")
    await expect(page.locator("#state")).to_have_text("Waiting")
    await page.locator("#text").fill("Hello Bea, I'm Mia. How can I help?")
    await page.locator("#send").click()
    await expect(page.locator("#transcript .msg.manager .body").last).to_have_text(
        "Hello Bea, I'm Mia. How can I help?")
    await expect(page.locator("#state")).to_have_text("With Mia")
    await sim.wait_until(lambda: any(m.get("text") == "Hello Bea, I'm Mia. How can I help?"
                                     for m in sim.chat_history(bea["id"])), 10, "the reply in Bea's chat")

    # Bea answers in Telegram: the transcript shows it live.
    sim.send_text(bea["id"], "My parcel is late")
    await expect(page.locator("#transcript .msg.customer .body").last).to_have_text("My parcel is late",
                                                                                   timeout=10_000)
    # An internal note stays with the team.
    await page.get_by_role("radio", name="Note").check()
    await page.locator("#text").fill("Check the courier's tracking")
    await page.locator("#send").click()
    await expect(page.locator("#transcript .msg.note .body")).to_have_text("Check the courier's tracking")
    await shot(page, "manager-conversation-light")

    await page.get_by_role("button", name="Return to AI").click()
    await expect(page.locator("#state")).to_have_text("With the AI")
    await sim.wait_until(lambda: "assistant again" in (sim.chat_history(bea["id"])[-1].get("text") or ""), 10,
                         "the back-to-AI notice")
    assert not any("courier" in (m.get("text") or "") for m in sim.chat_history(bea["id"]))
    [topic] = await wait_for_topic(sim, desk.chat_id)
    await wait_in_topic(sim, desk.chat_id, topic.thread_id, 3)
    assert any("Hello Bea" in (m.get("text") or "") for m in in_topic(sim, desk.chat_id, topic.thread_id))
    conversation = await Conversation.get(user__telegram_id=bea["id"])
    assert conversation.mode == "ai"

    dark = await telegram_page(browser, sim, desk.mia["id"], "dark")
    await dark.goto(desk.frontdesk.url + "/app/inbox")
    await expect(dark.locator("#conversations li")).to_have_count(1)
    await shot(dark, "manager-inbox-dark")
    await dark.goto(desk.frontdesk.url + f"/app/conversations/{conversation.id}")
    await expect(dark.locator("#transcript .msg.note")).to_have_count(1)
    said = [text for text in await dark.locator("#transcript .msg .body").all_inner_texts()
            if text in ("Hello Bea, I'm Mia. How can I help?", "My parcel is late", "Check the courier's tracking")]
    assert said == ["Hello Bea, I'm Mia. How can I help?", "My parcel is late", "Check the courier's tracking"]
    await shot(dark, "manager-conversation-dark")
    assert topics(sim, desk.chat_id)


async def test_outside_telegram_without_a_session_the_app_says_how_to_sign_in(
        desk: Desk, browser: Browser) -> None:
    context = await browser.new_context()

    async def no_telegram(route: Route) -> None:
        await route.fulfill(status=200, content_type="application/javascript", body="")

    await context.route("https://telegram.org/**", no_telegram)
    page = await context.new_page()
    await page.goto(desk.frontdesk.url + "/app/inbox")
    await expect(page.locator("#status")).to_have_text("Please open this app from the bot in Telegram.")
    await expect(page.locator("#conversations li")).to_have_count(0)


async def test_a_staff_member_signs_in_with_the_button_and_another_sites_form_signs_no_one_in(
        desk: Desk, sim: Simulator, browser: Browser) -> None:
    """The browser login: the page's button works in a real browser (its token and SameSite cookie
    travel together), and a hidden auto-submitting form on another site, posting the attacker's own
    link, gets the refusal page and no session (login CSRF)."""
    attackers_link = await dashboard_link(sim, desk.boss["id"])
    attackers_token = attackers_link.rsplit("token=", 1)[1]
    login = desk.frontdesk.url + "/app/login"
    evil = web.Application()

    async def evil_page(request: web.Request) -> web.Response:
        return web.Response(content_type="text/html", text=f"""<!doctype html><body>
            <form id="f" method="post" action="{login}"><input type="hidden" name="token" value="{attackers_token}">
            </form><script>document.getElementById("f").submit()</script></body>""")

    evil.router.add_get("/", evil_page)
    runner = web.AppRunner(evil, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "localhost", port).start()  # localhost: another site than 127.0.0.1
    try:
        context = await browser.new_context()
        await context.route("https://telegram.org/**", lambda route: route.fulfill(
            status=200, content_type="application/javascript", body=""))
        page = await context.new_page()
        # Mia opened her own link's page earlier: this browser holds a login cookie of its own.
        mias_link = await dashboard_link(sim, desk.mia["id"])
        await page.goto(desk.frontdesk.url + mias_link.removeprefix("https://desk.example"))
        await page.goto(f"http://localhost:{port}/")
        await page.wait_for_url(login)
        await expect(page.locator("p.error")).to_contain_text("could not be confirmed as coming from this page")
        await expect(page.locator("#sign-in")).to_have_count(0)
        assert (await context.request.get(desk.frontdesk.url + "/api/me")).status == 401
        assert not await WebSession.exists()

        await page.goto(desk.frontdesk.url + mias_link.removeprefix("https://desk.example"))
        await page.locator("#sign-in").click()
        await page.wait_for_url(desk.frontdesk.url + "/app/inbox")
        me = await (await context.request.get(desk.frontdesk.url + "/api/me")).json()
        assert (me["name"], me["role"]) == ("Mia", "manager")
        await context.close()
    finally:
        await runner.cleanup()
    assert await LoginLink.filter(used_at=None).count() == 1  # the attacker's link was never spent


async def test_staff_see_the_passages_an_answer_was_given_and_customers_its_sources(
        desk: Desk, sim: Simulator, ai: FakeAI, browser: Browser) -> None:
    from miniapp.knowledge_api import KNOWLEDGE
    from models import KnowledgeSource, SourceStatus, User
    from tests.test_knowledge_answers import MENU, cite_passage, until_ready

    sources = desk.frontdesk.app[KNOWLEDGE].sources
    assert sources is not None
    source = await sources.add_file(1, "menu.md", MENU)
    assert (await until_ready(source.id)).status == SourceStatus.READY
    ai.script.answer_messages = cite_passage("Delivery")
    ann = sim.create_user("Ann", language_code="en")
    sim.send_text(ann["id"], "how much to bring coffee to my flat?")
    await sim.wait_for_messages(ann["id"])
    conversation = await Conversation.get(user__telegram_id=ann["id"])
    title = (await KnowledgeSource.get(id=source.id)).title

    page = await telegram_page(browser, sim, ann["id"])
    await page.goto(desk.frontdesk.url + f"/app/conversations/{conversation.id}")
    await expect(page.locator("#transcript .msg.ai .sources")).to_have_text(f"Sources: {title}")
    await expect(page.locator("#transcript .msg.ai .passages-box")).to_have_count(0)  # staff only
    await page.context.close()

    for locale, width, height in (("en", 420, 820), ("ru", 420, 820), ("uz", 1280, 800)):
        await User.filter(telegram_id=desk.mia["id"]).update(language=locale)  # her choice in the app's settings
        page = await telegram_page(browser, sim, desk.mia["id"])
        await page.set_viewport_size({"width": width, "height": height})
        await page.goto(desk.frontdesk.url + f"/app/conversations/{conversation.id}")
        box = page.locator("#transcript .msg.ai .passages-box")
        await box.locator("summary").click()
        labels = await box.locator(".passage-label").all_inner_texts()
        assert any(label.startswith(f"{title} › Delivery") for label in labels), labels
        await shot(page, f"manager-passages-{locale}-{width}")
        await page.context.close()


async def test_a_managers_message_shows_its_formatting_and_nothing_it_smuggled_in(
        desk: Desk, sim: Simulator, browser: Browser) -> None:
    from models import AuthorKind, Message, User
    from tests.desk_helpers import send_formatted
    from tests.test_render import HOSTILE_LANGUAGE, PHISHING_URL

    ann = sim.create_user("Ann", language_code="en")
    sim.send_command(ann["id"], "human")
    [topic] = await wait_for_topic(sim, desk.chat_id)
    conversation = await Conversation.get(user__telegram_id=ann["id"])
    send_formatted(sim, desk.mia["id"], "Our menu is here: bold and code", [
        {"type": "bold", "offset": 18, "length": 4}, {"type": "code", "offset": 27, "length": 4},
        {"type": "text_link", "offset": 4, "length": 4, "url": "https://shop.example/menu"}],
        chat_id=desk.chat_id, thread_id=topic.thread_id)
    send_formatted(sim, desk.mia["id"], "Sign in here, or there, then run this", [
        {"type": "text_link", "offset": 8, "length": 4, "url": PHISHING_URL},
        {"type": "text_link", "offset": 17, "length": 5, "url": "javascript:alert(document.cookie)"},
        {"type": "pre", "offset": 33, "length": 4, "language": HOSTILE_LANGUAGE}],
        chat_id=desk.chat_id, thread_id=topic.thread_id)
    managers = Message.filter(conversation_id=conversation.id, author_kind=AuthorKind.MANAGER)

    async def both_stored() -> bool:
        return await managers.count() == 2

    await eventually(both_stored, "both messages stored")
    stored = [message.text for message in await managers]
    assert not any(word in stored[1] for word in ("<form", "<input", "<img", "javascript:", "onerror"))
    # A row stored before messages were cleaned on the way in, as aiogram's html_text wrote it.
    mia = await User.get(telegram_id=desk.mia["id"])
    await Message.create(bot_id=conversation.bot_id, conversation_id=conversation.id,
                         author_kind=AuthorKind.MANAGER, author=mia,
                         text=f'Old: <a href="{PHISHING_URL}">sign in</a> <pre><code language="language-'
                              f'{HOSTILE_LANGUAGE}">run</code></pre>')

    page = await telegram_page(browser, sim, ann["id"])
    await page.goto(desk.frontdesk.url + f"/app/conversations/{conversation.id}")
    bodies = page.locator("#transcript .msg.manager .body")
    await expect(bodies).to_have_count(3)
    await expect(bodies.nth(0).locator("b")).to_have_text("bold")
    await expect(bodies.nth(0).locator("code")).to_have_text("code")
    await expect(bodies.nth(0).locator("a")).to_have_attribute("href", "https://shop.example/menu")
    await expect(bodies.nth(1)).to_have_text("Sign in here, or there, then run this")
    await expect(bodies.nth(1).locator("a")).to_have_count(1)  # the manager's link, with its whole address
    await expect(bodies.nth(1).locator("a")).to_have_attribute("href", PHISHING_URL)
    for smuggled in ("form", "input", "button", "img", "[onerror]", "[language]"):
        await expect(page.locator(f"#transcript {smuggled}")).to_have_count(0)
    hrefs = await page.locator("#transcript .msg.manager a").evaluate_all("links => links.map(a => a.href)")
    assert all(href.startswith("https://") for href in hrefs), hrefs
    await shot(page, "manager-formatting-light")

