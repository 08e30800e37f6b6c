"""The widget in a real browser (Debian's Chromium driven by Playwright): what a visitor sees.

Screenshots go to SCREENSHOT_DIR (default: build/screenshots), one per step worth looking at.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from playwright.async_api import Browser, Page, async_playwright, expect
from tgsim import Simulator

from models import AuthorKind, Message, WidgetSite
from services import widget
from tests.conftest import ROOT, Frontdesk, eventually, free_port
from tests.desk_helpers import manager_desk, wait_for_topic, wait_in_topic
from tests.fake_ai import FakeAI
from tests.widget_helpers import open_widget

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
# From ../shared/BROWSER-TESTS.md: without the background-networking flags Chromium floods the closed network.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = Path(os.environ.get("SCREENSHOT_DIR", ROOT / "build" / "screenshots"))


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


async def _page(browser: Browser, locale: str = "en-US", **options: Any) -> Page:
    options.setdefault("viewport", {"width": 1000, "height": 760})
    context = await browser.new_context(locale=locale, **options)
    return await context.new_page()


async def _shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"widget-{name}.png"))


async def _say(page: Page, text: str) -> None:
    box = page.locator("textarea")
    await box.fill(text)
    await box.press("Enter")


@contextlib.asynccontextmanager
async def shop_site(port: int, page: Callable[[web.Request], Awaitable[web.Response]]) -> AsyncIterator[None]:
    """The business's own website on its own origin (127.0.0.1:port), serving `page` at `/`."""
    shop = web.Application()
    shop.router.add_get("/", page)
    runner = web.AppRunner(shop, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield
    finally:
        await runner.cleanup()


async def test_the_demo_page_chat_answers_and_keeps_its_history_over_a_reload(
        frontdesk: Frontdesk, ai: FakeAI, browser: Browser) -> None:
    ai.script.reply = "We open at **seven** every weekday."
    ai.script.chunk_size, ai.script.chunk_delay = 6, 0.05
    page = await _page(browser)
    await page.goto(frontdesk.url + "/")
    bubble = page.locator(".bubble")
    await expect(bubble).to_have_attribute("aria-label", "Open the chat")
    await bubble.click()
    await expect(page.locator(".panel")).to_be_visible()
    await expect(page.locator(".greeting")).to_have_text("Hi! How can we help you today?")
    await _say(page, "When do you open?")
    answer = page.locator(".msg.ai[data-id]")
    await expect(answer).to_contain_text("We open at seven every weekday.")
    await expect(answer.locator("b")).to_have_text("seven")  # the answer's formatting survives
    await expect(page.locator(".msg.customer[data-id]")).to_have_text("When do you open?")
    await _shot(page, "1-answered")

    await page.reload()
    await page.locator(".bubble").click()
    await expect(page.locator(".msg.ai[data-id]")).to_contain_text("We open at seven every weekday.")
    await expect(page.locator(".msg.customer")).to_have_count(1)
    await expect(page.locator(".msg.customer")).to_have_text("When do you open?")
    await _shot(page, "2-after-reload")
    # The page's own styles and the widget's stay apart: the widget lives in a shadow root.
    assert await page.evaluate("document.querySelectorAll('.msg').length") == 0
    assert await page.evaluate("getComputedStyle(document.querySelector('h1')).fontSize") == "28px"


async def test_the_widget_speaks_the_visitors_language_and_works_from_the_keyboard(
        frontdesk: Frontdesk, ai: FakeAI, browser: Browser) -> None:
    ai.script.reply = "Здравствуйте!"
    page = await _page(browser, locale="ru-RU")
    await page.goto(frontdesk.url + "/")
    await expect(page.locator(".bubble")).to_have_attribute("aria-label", "Открыть чат")
    await page.keyboard.press("Tab")  # the bubble is the only control on the demo page
    await expect(page.locator(".bubble")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.locator("textarea")).to_be_focused()
    await expect(page.locator("textarea")).to_have_attribute("placeholder", "Напишите сообщение…")
    await expect(page.locator(".greeting")).to_have_text("Здравствуйте! Чем можем помочь?")
    await page.keyboard.type("Привет")
    await page.keyboard.press("Enter")
    await expect(page.locator(".msg.ai[data-id]")).to_have_text("АссистентЗдравствуйте!")
    await page.keyboard.press("Escape")
    await expect(page.locator(".panel")).to_be_hidden()
    await expect(page.locator(".bubble")).to_be_focused()
    await page.set_viewport_size({"width": 390, "height": 700})  # a phone
    await page.locator(".bubble").click()
    box = await page.locator(".panel").bounding_box()
    assert box is not None
    assert box["width"] == 390
    await expect(page.locator(".bubble")).to_be_hidden()  # the panel's own close button is in reach
    await _shot(page, "3-phone-ru")


@pytest.mark.parametrize("frontdesk_settings", [{"DEFAULT_LOCALE": "ru"}], indirect=True)
async def test_a_visitor_in_no_language_we_speak_gets_the_deployments_default_as_on_telegram(
        frontdesk: Frontdesk, browser: Browser) -> None:
    """The bot and the Mini App fall back to DEFAULT_LOCALE; the widget's script used to fall back to English."""
    page = await _page(browser, locale="de-DE")
    await page.goto(frontdesk.url + "/")
    await page.locator(".bubble").click()
    await expect(page.locator("textarea")).to_have_attribute("placeholder", "Напишите сообщение…")
    await expect(page.locator(".greeting")).to_have_text("Здравствуйте! Чем можем помочь?")


class CuttableProxy:
    """A TCP proxy between the browser and Frontdesk whose network can be cut and restored."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers |= {writer, up_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}


async def test_a_cut_network_loses_nothing(frontdesk: Frontdesk, ai: FakeAI, browser: Browser) -> None:
    proxy = CuttableProxy(frontdesk.settings.port)
    await proxy.start()
    site = await WidgetSite.get(public_key="demo")
    site.allowed_origins = [*site.allowed_origins, f"http://127.0.0.1:{proxy.port}"]
    await site.save(update_fields=["allowed_origins"])
    page = await _page(browser)
    await page.goto(f"http://127.0.0.1:{proxy.port}/")
    await page.locator(".bubble").click()

    ai.script.hold = asyncio.Event()  # the answer is written while the visitor is cut off
    ai.script.reply = "Yes, we deliver within two kilometres."
    await _say(page, "Do you deliver?")
    await expect(page.locator(".msg.customer[data-id]")).to_have_count(1)
    await proxy.cut()
    await expect(page.locator(".note")).to_contain_text("You're offline")
    ai.script.hold.set()
    await _say(page, "And on Sundays?")  # typed while offline: kept, sent when back
    await expect(page.locator(".msg.customer.pending")).to_have_text("And on Sundays?")
    await _shot(page, "4-offline")
    await eventually(Message.filter(author_kind=AuthorKind.AI).exists, "the answer written while the visitor is away")

    await proxy.start()
    await expect(page.locator(".msg.ai[data-id]").first).to_contain_text("we deliver within two kilometres",
                                                                         timeout=20_000)
    await expect(page.locator(".msg.customer[data-id]")).to_have_count(2, timeout=20_000)
    await expect(page.locator(".msg.customer.pending")).to_have_count(0)
    await expect(page.locator(".msg.ai[data-id]")).to_have_count(2, timeout=10_000)
    await expect(page.locator(".note")).to_be_hidden()
    await _shot(page, "5-back-online")
    texts = [m.text for m in await Message.filter(author_kind=AuthorKind.CUSTOMER).order_by("id")]
    assert texts == ["Do you deliver?", "And on Sundays?"]
    await proxy.cut()


async def test_a_managers_reply_in_the_topic_appears_live(
        database_url: str, sim: Simulator, ai: FakeAI, browser: Browser) -> None:
    ai.script.reply = "Let me see what I can do."
    async with manager_desk(database_url, sim, ai) as desk:
        page = await _page(browser)
        await page.goto(desk.frontdesk.url + "/")
        await page.locator(".bubble").click()
        await _say(page, "My cake order is wrong")
        await expect(page.locator(".msg.ai[data-id]")).to_have_count(1)
        await page.get_by_role("button", name="Talk to a person").click()
        await expect(page.locator(".msg.system")).to_contain_text("I've asked a person to join")
        [topic] = await wait_for_topic(sim, desk.chat_id)
        await wait_in_topic(sim, desk.chat_id, topic.thread_id, 1)
        sim.send_text(desk.mia["id"], "Hi, Mia here. Sorry about the cake!", chat_id=desk.chat_id,
                      thread_id=topic.thread_id)
        await expect(page.locator(".msg.manager")).to_contain_text("Hi, Mia here. Sorry about the cake!",
                                                                   timeout=5_000)
        await expect(page.locator("header p")).to_have_text("You're chatting with Mia")
        # Retried rather than read once: the name above the message is a block only once the message is laid out.
        await expect(page.locator(".msg.system, .msg.manager")).to_have_text(
            [re.compile("asked a person to join"), "Mia from our team has joined the conversation.",
             "Mia\nHi, Mia here. Sorry about the cake!"], use_inner_text=True)
        await _shot(page, "6-manager-reply")


async def test_a_shop_on_another_origin_with_a_strict_csp_embeds_the_widget(
        frontdesk: Frontdesk, ai: FakeAI, browser: Browser) -> None:
    """The business's own page, on its own origin, allowing only Frontdesk's host in its CSP."""
    ai.script.reply = "Our croissants are baked at six."
    shop_port = free_port()
    shop_origin = f"http://127.0.0.1:{shop_port}"
    site = await widget.create_site(
        (await WidgetSite.get(public_key="demo")).bot_id, [shop_origin],
        title="Bean There", color="#7c2d12")
    host = frontdesk.url.removeprefix("http://")
    policy = (f"default-src 'none'; script-src http://{host}; connect-src http://{host} ws://{host}; "
              "style-src 'self'")
    page_html = (f'<!doctype html><html><head><title>Bean There</title></head><body><h1>Bean There</h1>'
                 f'<script src="{frontdesk.url}/widget.js" data-site="{site.public_key}" async></script>'
                 f'</body></html>')

    async def shop_page(request: web.Request) -> web.Response:
        return web.Response(text=page_html, content_type="text/html",
                            headers={"Content-Security-Policy": policy})

    async with shop_site(shop_port, shop_page):
        page = await _page(browser)
        violations: list[str] = []
        page.on("console", lambda message: violations.append(message.text)
                if "Content Security Policy" in message.text else None)
        await page.goto(shop_origin + "/")
        await page.locator(".bubble").click()
        await expect(page.locator("header h2")).to_have_text("Bean There")
        await expect(page.locator(".bubble")).to_have_css("background-color", "rgb(124, 45, 18)")
        await _say(page, "When are croissants ready?")
        await expect(page.locator(".msg.ai[data-id]")).to_contain_text("Our croissants are baked at six.")
        await _shot(page, "7-other-origin-csp")
        assert violations == []


@pytest.mark.parametrize(("locale", "width", "label"), [("en-US", 390, "Sources:"), ("ru-RU", 1000, "Источники:"),
                                                       ("uz-UZ", 390, "Manbalar:")])
async def test_an_answer_from_a_web_page_shows_its_source_as_a_link(
        frontdesk: Frontdesk, ai: FakeAI, browser: Browser, locale: str, width: int, label: str) -> None:
    from miniapp.knowledge_api import KNOWLEDGE
    from models import SourceStatus
    from tests.test_knowledge_answers import CATERING_PAGE, cite_passage, until_ready

    async def catering(request: web.Request) -> web.Response:
        return web.Response(text=CATERING_PAGE, content_type="text/html")

    site = web.Application()
    site.router.add_get("/catering", catering)
    runner = web.AppRunner(site)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/catering"
    try:
        sources = frontdesk.app[KNOWLEDGE].sources
        assert sources is not None
        source = await sources.add_url(1, url, whole_site=False, allow_private=True)  # the site is on this machine
        ready = await until_ready(source.id)
        assert ready.status == SourceStatus.READY
        ai.script.answer_messages = cite_passage("Office breakfasts")
        page = await _page(browser, locale)
        await page.set_viewport_size({"width": width, "height": 760})
        await page.goto(frontdesk.url + "/")
        await page.locator(".bubble").click()
        await _say(page, "breakfast for our office of 30?")
        line = page.locator(".msg.ai[data-id] .sources")
        await expect(line).to_have_text(f"{label} {ready.title}")
        await expect(line.locator("a")).to_have_attribute("href", url)
        await expect(line.locator("a")).to_have_attribute("target", "_blank")
        await _shot(page, f"sources-{locale}-{width}")
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(("locale", "width"), [("en-US", 390), ("en-US", 1280), ("ru-RU", 390), ("ru-RU", 1280),
                                               ("uz-UZ", 390), ("uz-UZ", 1280)])
async def test_a_visitor_continues_in_telegram_after_confirming_there(
        frontdesk: Frontdesk, ai: FakeAI, sim: Simulator, browser: Browser, locale: str, width: int) -> None:
    ai.script.reply = "Yes, we deliver on Sundays."
    ann = sim.create_user("Ann")
    page = await _page(browser, locale)
    await page.set_viewport_size({"width": width, "height": 760})
    await page.goto(frontdesk.url + "/")
    await page.locator(".bubble").click()
    await _say(page, "Do you deliver on Sundays?")
    await expect(page.locator(".msg.ai[data-id]")).to_contain_text("Yes, we deliver on Sundays.")
    await page.locator(".foot button").click()
    go = page.locator(".msg.offer a.go")
    await expect(go).to_have_attribute("href", re.compile(r"^https://t\.me/frontdesk_test_bot\?start=link-[\w-]+$"))
    await expect(go).to_have_attribute("target", "_blank")
    await _shot(page, f"link-offer-{locale}-{width}")

    code = str(await go.get_attribute("href")).partition("?start=")[2]
    sim.send_command(ann["id"], "start", code)
    await sim.wait_until(lambda: "reply_markup" in sim.chat_history(ann["id"])[-1], 10, "the question")
    question = sim.chat_history(ann["id"])[-1]
    [[yes], _] = question["reply_markup"]["inline_keyboard"]
    sim.press_button(ann["id"], ann["id"], question["message_id"], data=yes["callback_data"])
    await expect(page.locator(".msg.offer")).to_have_count(0)
    await expect(page.locator(".msg.system").last).to_be_visible()
    if locale == "en-US":
        await expect(page.locator(".msg.system").last).to_have_text("This chat is now linked with your Telegram "
                                                                    "account.")
    await _shot(page, f"linked-{locale}-{width}")


async def test_a_shop_logs_its_user_out_and_their_old_token_opens_nothing(
        frontdesk: Frontdesk, ai: FakeAI, browser: Browser) -> None:
    ai.script.reply = "Your parcel left the warehouse."
    shop_port = free_port()
    shop_origin = f"http://127.0.0.1:{shop_port}"
    site = await widget.create_site((await WidgetSite.get(public_key="demo")).bot_id,
                                    [shop_origin], title="Bean There")
    signed = {"in": True}

    async def shop_page(request: web.Request) -> web.Response:
        user = ""
        if signed["in"]:  # the shop's server signs its logged-in user on every page it renders
            moment = int(time.time())
            user = (f'data-user-id="dana-7" data-user-time="{moment}" data-user-name="Dana" '
                    f'data-user-hash="{widget.identity_signature(site, "dana-7", moment)}"')
        return web.Response(content_type="text/html", text=(
            f'<!doctype html><html><body><h1>Bean There</h1><button id="out">Log out</button>'
            f'<script src="{frontdesk.url}/widget.js" data-site="{site.public_key}" {user} async></script>'
            '<script>document.getElementById("out").onclick = () => '
            'FrontdeskWidget.logout().then(() => { document.body.dataset.out = "yes"; });</script></body></html>'))

    async with shop_site(shop_port, shop_page):
        page = await _page(browser)
        await page.goto(shop_origin + "/")
        await page.locator(".bubble").click()
        await _say(page, "Where is parcel 88-12?")
        await expect(page.locator(".msg.ai[data-id]")).to_contain_text("Your parcel left the warehouse.")
        token = await page.evaluate(f"localStorage.getItem('frontdesk:{site.public_key}:token')")
        assert token

        signed["in"] = False
        await page.locator("#out").click()
        await expect(page.locator("body")).to_have_attribute("data-out", "yes")
        await expect(page.locator(".msg[data-id]")).to_have_count(0)  # the chat is cleared
        assert await page.evaluate(f"localStorage.getItem('frontdesk:{site.public_key}:token')") != token
        await page.reload()
        await page.locator(".bubble").click()
        await _say(page, "hello?")
        await expect(page.locator(".msg.customer[data-id]")).to_have_text("hello?")
        await expect(page.locator(".msg.customer[data-id]")).to_have_count(1)  # a new, anonymous visitor
        async with aiohttp.ClientSession() as http, http.get(
                f"{frontdesk.url}/widget/api/history?site={site.public_key}",
                headers={"Authorization": f"Bearer {token}", "Origin": shop_origin}) as replay:
            assert replay.status == 401
            assert "88-12" not in await replay.text()
        await _shot(page, "after-logout")


@pytest.mark.parametrize("frontdesk_settings", [{"AI_MAX_STREAMS": 1}], indirect=True)
async def test_an_answer_waiting_its_turn_shows_typing_dots_then_the_answer(
        frontdesk: Frontdesk, ai: FakeAI, browser: Browser) -> None:
    ai.script.reply = "Ready."
    typing_label = {"en": "Typing…", "ru": "Печатает…", "uz": "Yozmoqda…"}
    async with aiohttp.ClientSession() as http:
        for language, width in (("en", 1280), ("ru", 390), ("uz", 390), ("uz", 1280)):
            ai.script.hold = asyncio.Event()
            ai.received.clear()
            busy, _ = await open_widget(http, frontdesk.url)
            await busy.send_message("an order of twenty cakes, please")  # the provider's one stream is busy
            await asyncio.wait_for(ai.received.wait(), 10)
            page = await _page(browser, locale=f"{language}-{language.upper()}",
                               viewport={"width": width, "height": 760})
            await page.goto(frontdesk.url + "/")
            await page.locator(".bubble").click()
            await _say(page, "Are you open now?")
            dots = page.locator(".msg.ai.draft .dots")
            await expect(dots).to_be_visible()
            await expect(dots).to_have_attribute("aria-label", typing_label[language])
            await _shot(page, f"typing-{language}-{width}")
            ai.script.hold.set()
            await expect(page.locator(".msg.ai[data-id]")).to_contain_text("Ready.")
            await expect(dots).to_have_count(0)
            await page.context.close()
            await busy.socket.close()
