"""Documents and websites on the knowledge page, in a real browser at a phone's width and a desktop's:
upload a file and watch it become ready, add a website and watch it being read, see why a file is
refused beside the button that sent it, switch a source off and delete one."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from playwright.async_api import Browser, FilePayload, Page, ViewportSize, expect
from tgsim import Simulator

from models import AuditLog, KnowledgeChunk, KnowledgePage, KnowledgeSource, OutboxJob, SourceKind, SourceStatus
from tests.browser_helpers import THEMES, webview_page
from tests.browser_helpers import browser as browser
from tests.desk_helpers import Desk, manager_desk
from tests.test_miniapp_sources import MENU, SHOP, local_site
from tests.test_widget_browser import SHOTS

pytestmark = pytest.mark.browser
__all__ = ["browser"]

PHONE: ViewportSize = {"width": 390, "height": 844}
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
READY = 60_000  # ms: indexing runs the real embedding model on two busy cores


@pytest.fixture
async def desk(database_url: str, sim: Simulator) -> AsyncIterator[Desk]:
    # The test sites are on this machine: staff may add them as the operator may allow an intranet.
    async with manager_desk(database_url, sim, None, KNOWLEDGE_MAX_FILE_MB=1,
                            KNOWLEDGE_ALLOW_PRIVATE_URLS="true") as running:
        yield running


async def knowledge_page(browser: Browser, desk: Desk, sim: Simulator, user_id: int,
                         viewport: ViewportSize = PHONE, theme: str = "light") -> Page:
    """The knowledge page as Telegram's webview opens it for `user_id`."""
    page = await webview_page(browser, sim, user_id, themes=THEMES[theme], color_scheme=theme, viewport=viewport)
    await page.goto(desk.frontdesk.url + "/app/knowledge")
    await expect(page.locator("#status")).to_be_empty()
    return page


async def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"sources-{name}.png"), full_page=True)


def payload(name: str, mime_type: str, data: bytes) -> FilePayload:
    return {"name": name, "mimeType": mime_type, "buffer": data}


def polls(page: Page) -> list[str]:
    """Every time the page asks for the list of sources."""
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url)
            if request.method == "GET" and request.url.endswith("/api/knowledge/sources") else None)
    return asked


async def test_a_document_uploaded_on_the_page_becomes_ready_and_the_page_stops_asking(
        desk: Desk, sim: Simulator, browser: Browser) -> None:
    page = await knowledge_page(browser, desk, sim, desk.mia["id"])
    await expect(page.locator("#sources-empty")).to_have_text(
        "None yet. The AI answers from your documents and websites, and names them as sources.")
    asked = polls(page)
    await page.locator("#source-file").set_input_files(
        files=[payload("menu.md", "text/markdown", MENU.encode())])

    row = page.locator("#source-list li", has_text="Bean There: menu and delivery")
    await expect(row.locator(".source-location")).to_have_text("Document · menu.md")
    await expect(row.locator(".source-status")).to_contain_text("Ready", timeout=READY)
    chunks = await KnowledgeChunk.all().count()
    await expect(row.locator(".source-status")).to_contain_text(f"{chunks} passages · synced just now")
    await expect(page.locator("#sources-empty")).to_be_hidden()
    await expect(page.locator("#upload-progress")).to_be_hidden()
    await expect(row.get_by_role("button", name="Re-sync now")).to_have_count(0)  # a document is re-sent, not synced

    # Nothing is in progress: the page has no further asking scheduled.
    await expect(page.locator("#source-list")).to_have_attribute("data-refreshing", "no")
    assert asked, "the page asked for the list while the document was indexed"
    await page.context.close()


async def test_a_website_added_on_the_page_is_shown_indexing_then_ready(
        desk: Desk, sim: Simulator, browser: Browser) -> None:
    async with local_site(SHOP) as site:
        site.held.add("/hours")  # the last page answers when the test has seen the site being indexed
        page = await knowledge_page(browser, desk, sim, desk.mia["id"], DESKTOP)
        await page.get_by_text("Add a web address").click()
        await page.get_by_label("Web address").fill(site.url("/"))
        await expect(page.get_by_role("radio", name="The whole site")).to_be_checked()
        await page.get_by_label("Pages to read, at most").fill("10")
        await page.get_by_role("button", name="Add the address").click()

        row = page.locator("#source-list li").first
        status = row.locator(".source-status")
        # A first crawl cannot know how many pages it will find: no "n of m" yet, and no bar.
        await expect(status).to_contain_text("Indexing…", timeout=READY)
        await expect(status.locator("progress")).to_have_count(0)
        await expect(page.get_by_label("Web address")).to_have_value("")
        await shot(page, "indexing-desktop")
        site.release.set()

        await expect(status).to_contain_text("Ready", timeout=READY)
        await expect(status).to_contain_text("3 pages")
        await expect(row.locator(".source-title")).to_have_text("Bean There")
        link = row.get_by_role("link", name=site.url("/"))
        await expect(link).to_have_attribute("target", "_blank")
        await expect(link).to_have_attribute("rel", "noopener")
        await expect(row.locator(".source-location")).to_contain_text("Website · ")

        await row.get_by_role("button", name="Re-sync now").click()
        await expect(status).to_contain_text("Ready", timeout=READY)
        await page.context.close()
    assert await AuditLog.filter(action="knowledge.source_resync").count() == 1


async def test_one_page_only_hides_the_page_limit(desk: Desk, sim: Simulator, browser: Browser) -> None:
    async with local_site(SHOP) as site:
        page = await knowledge_page(browser, desk, sim, desk.mia["id"])
        await page.get_by_text("Add a web address").click()
        await page.get_by_label("Web address").fill(site.url("/delivery"))
        await page.get_by_role("radio", name="This page only").check()
        await expect(page.get_by_label("Pages to read, at most")).to_be_hidden()
        await page.get_by_role("button", name="Add the address").click()
        row = page.locator("#source-list li").first
        await expect(row.locator(".source-status")).to_contain_text("Ready", timeout=READY)
        await expect(row.locator(".source-location")).to_contain_text("Web page · ")
        await page.context.close()
    assert "/hours" not in site.hits


async def test_a_file_or_an_address_that_cannot_be_used_is_explained_beside_its_control(
        desk: Desk, sim: Simulator, browser: Browser) -> None:
    page = await knowledge_page(browser, desk, sim, desk.mia["id"])
    upload_error = page.locator(".source-upload #upload-error")
    await page.locator("#source-file").set_input_files(
        files=[payload("catalogue.txt", "text/plain", b"coffee " * 300_000)])
    await expect(upload_error).to_have_text("The file is too large: at most 1 MB.", timeout=READY)

    # Slow the connection down, so the upload's progress can be seen.
    cdp = await page.context.new_cdp_session(page)
    await cdp.send("Network.enable")
    await cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 20, "downloadThroughput": -1,
                                                        "uploadThroughput": 64 * 1024})
    await page.locator("#source-file").set_input_files(
        files=[payload("scan.pdf", "application/pdf", os.urandom(256 * 1024))])
    await expect(page.locator("#upload-label")).to_contain_text("Uploading scan.pdf: ")
    await expect(page.locator("#upload-bar")).to_be_visible()
    await cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 0, "downloadThroughput": -1,
                                                        "uploadThroughput": -1})

    await expect(upload_error).to_have_text("The file cannot be read: it is damaged, or not really a PDF file.",
                                            timeout=READY)
    await expect(page.locator("#upload-progress")).to_be_hidden()
    await expect(page.locator("#source-list li")).to_have_count(0)

    await page.get_by_text("Add a web address").click()
    await page.get_by_label("Web address").fill("ftp://shop.example/prices")
    await page.get_by_role("button", name="Add the address").click()
    await expect(page.locator("#url-form #url-error")).to_have_text(
        "This is not a web address that can be read: use an http:// or https:// address.")
    await expect(upload_error).to_be_visible()  # each control keeps its own message
    await page.get_by_label("Web address").fill("shop.example")
    await page.get_by_label("Pages to read, at most").fill("0")
    await page.get_by_role("button", name="Add the address").click()
    await expect(page.locator("#url-error")).to_have_text("The page limit must be between 1 and 1000.")
    await shot(page, "errors-phone")
    await page.context.close()
    assert await KnowledgeSource.all().count() == 0


async def test_a_source_switched_off_and_deleted_after_a_confirmation(
        desk: Desk, sim: Simulator, browser: Browser) -> None:
    source = await KnowledgeSource.create(bot_id=1, kind=SourceKind.FILE, title="Price list", location="prices.pdf",
                                          status=SourceStatus.READY, chunk_count=4, last_synced_at=datetime.now(UTC))
    page = await knowledge_page(browser, desk, sim, desk.mia["id"])
    row = page.locator("#source-list li", has_text="Price list")
    await expect(row.locator(".source-status")).to_contain_text("Ready 4 passages")

    await row.get_by_label("Use in answers").uncheck()
    await expect(row).to_have_class("source off")
    assert (await KnowledgeSource.get(id=source.id)).enabled is False

    await row.get_by_role("button", name="Delete").click()
    await expect(row).to_have_count(0)
    assert await page.evaluate("window.__FD_CONFIRMS__") == ["Delete “Price list”? The AI stops answering from it."]
    await expect(page.locator("#sources-empty")).to_be_visible()
    await page.context.close()
    assert not await KnowledgeSource.exists(id=source.id)


async def a_shelf_of_sources() -> None:
    """One source in each state, with long names, for the screenshots."""
    now = datetime.now(UTC)
    await KnowledgeSource.create(bot_id=1, kind=SourceKind.SITE, title="shop.example",
                                 location="https://shop.example/", status=SourceStatus.QUEUED)
    await KnowledgeSource.create(bot_id=1, kind=SourceKind.PAGE, title="help.example",
                                 location="https://help.example/this-page-is-gone", status=SourceStatus.FAILED,
                                 error={"code": "http_error", "status": 404}, last_synced_at=now)
    await KnowledgeSource.create(bot_id=1, kind=SourceKind.FILE, title="Returns and exchanges (2025 edition)",
                                 location="returns-and-exchanges-policy-2025-final-version-v3.docx",
                                 status=SourceStatus.READY, chunk_count=1, enabled=False,
                                 last_synced_at=now - timedelta(days=3))
    site = await KnowledgeSource.create(
        bot_id=1, kind=SourceKind.SITE, title="Bean There — coffee roasters on Roast Street",
        location="https://www.bean-there-coffee-roasters.example/help/delivery-and-returns/international",
        status=SourceStatus.READY, chunk_count=42, last_synced_at=now - timedelta(minutes=5))
    for n in range(7):
        await KnowledgePage.create(source=site, url=f"https://bean.example/{n}", url_key=f"{n:064d}")
    await KnowledgeSource.create(bot_id=1, kind=SourceKind.FILE, title="Bean There: menu and delivery",
                                 location="menu.pdf", status=SourceStatus.INDEXING, progress_done=12,
                                 progress_total=40)


@pytest.mark.parametrize("language", ["en", "ru", "uz"])
async def test_screenshots_at_a_phone_and_a_desktop_width(
        desk: Desk, sim: Simulator, browser: Browser, language: str) -> None:
    await a_shelf_of_sources()
    person = sim.create_user("Rita" if language == "ru" else "Umid" if language == "uz" else "Eve",
                             language_code=language)
    sim.set_member(desk.chat_id, person["id"], "member")
    sizes = [("phone", PHONE, "light"), ("desktop", DESKTOP, "light")]
    if language == "en":
        sizes.append(("phone-dark", PHONE, "dark"))
    for size, viewport, theme in sizes:
        page = await knowledge_page(browser, desk, sim, person["id"], viewport, theme)
        await expect(page.locator("#source-list li")).to_have_count(5)
        await expect(page.locator("html")).to_have_attribute("lang", language)
        await page.locator("#add-url summary").click()
        await page.evaluate("window.scrollTo(0, 0)")  # the sticky tabs at the top, where they belong
        overflowing = await page.evaluate("document.documentElement.scrollWidth > document.documentElement.clientWidth")
        assert not overflowing, f"{language} {size}: the page is wider than the screen"
        await shot(page, f"{language}-{size}")
        await page.context.close()
    assert await OutboxJob.all().count() == 0  # drawn, not changed
