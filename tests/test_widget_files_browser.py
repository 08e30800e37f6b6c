"""Files in the widget in a real browser (issue 18): a visitor attaches by the file picker, drag and drop or
paste, sees the upload's progress and a clear error for a file that is refused; the file reaches the managers'
topic, and a manager's photo in the topic shows in the widget as an image."""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, Locator, Page, expect
from tgsim import Simulator

from models import AuthorKind, Message, Role, StoredFile, User
from tests.browser_helpers import DESKTOP, PHONE
from tests.browser_helpers import browser as browser
from tests.conftest import eventually
from tests.desk_helpers import in_topic, manager_desk, wait_for_topic, wait_in_topic
from tests.fake_ai import FakeAI
from tests.test_conversation_browser import approve, scrolled_to_the_end, staff_page
from tests.test_widget_browser import SHOTS, _page, _say
from tests.test_widget_files import upload
from tests.widget_helpers import open_widget

pytestmark = pytest.mark.browser
LIMIT = 300_000  # WIDGET_UPLOAD_MAX_BYTES in these tests


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A real PNG of one colour, as a phone's photo would be (small)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\0" + bytes(rgb) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


CAKE = png(120, 80, (214, 120, 60))
REPLACEMENT = png(160, 100, (60, 140, 90))
CRUMBS = png(40, 40, (120, 80, 200))
# A PDF big enough that its upload takes a few seconds over the throttled network.
RECEIPT = b"%PDF-1.4\n% a receipt\n%%EOF\n"
BROCHURE = b"%PDF-1.4\n" + b"%" + b"x" * 250_000 + b"\n%%EOF\n"


async def _throttle_uploads(page: Page, bytes_per_second: int) -> None:
    session = await page.context.new_cdp_session(page)
    await session.send("Network.enable")
    await session.send("Network.emulateNetworkConditions", {
        "offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": bytes_per_second})


async def _drop(page: Page, content: bytes, name: str, mime: str) -> None:
    """The visitor drags a file from their desktop onto the chat."""
    data = await page.evaluate_handle(
        "([bytes, name, mime]) => { const transfer = new DataTransfer();"
        " transfer.items.add(new File([new Uint8Array(bytes)], name, { type: mime })); return transfer; }",
        [list(content), name, mime])
    for event in ("dragenter", "dragover", "drop"):
        await page.locator(".panel").dispatch_event(event, {"dataTransfer": data})


async def _paste(page: Page, content: bytes, name: str, mime: str) -> None:
    """The visitor pastes an image (a screenshot) into the text box."""
    await page.locator("textarea").evaluate(
        "(box, [bytes, name, mime]) => { const transfer = new DataTransfer();"
        " transfer.items.add(new File([new Uint8Array(bytes)], name, { type: mime }));"
        " box.dispatchEvent(new ClipboardEvent('paste', { clipboardData: transfer, bubbles: true,"
        " cancelable: true })); }", [list(content), name, mime])


async def _shots(page: Page, name: str, locale: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width in (390, 1280):
        await page.set_viewport_size({"width": width, "height": 800})
        await page.locator(".log").evaluate("log => { log.scrollTop = log.scrollHeight; }")
        await page.screenshot(path=str(SHOTS / f"widget-files-{name}-{locale}-{width}.png"))
    await page.set_viewport_size({"width": 1280, "height": 800})


def _topic_files(sim: Simulator, chat_id: int, thread_id: int) -> list[bytes | None]:
    found = []
    for message in in_topic(sim, chat_id, thread_id):
        media = message["photo"][-1] if "photo" in message else message.get("document")
        if media is not None:
            found.append(sim.world.files[media["file_id"]].data)
    return found


@pytest.mark.parametrize("locale", ["en", "ru", "uz"])
async def test_a_visitor_sends_files_three_ways_and_sees_a_managers_photo(
        database_url: str, sim: Simulator, ai: FakeAI, browser: Browser, locale: str, tmp_path: Any) -> None:
    ai.script.reply = "Let me find someone."
    async with manager_desk(database_url, sim, ai, WIDGET_UPLOAD_MAX_BYTES=str(LIMIT)) as desk:
        page = await _page(browser, locale=f"{locale}-{locale.upper()}", viewport={"width": 1280, "height": 800})
        await page.goto(desk.frontdesk.url + "/")
        await page.locator(".bubble").click()
        await _say(page, {"en": "My cake arrived broken", "ru": "Торт приехал сломанным",
                          "uz": "Tort singan holda keldi"}[locale])
        await expect(page.locator(".msg.ai[data-id]")).to_have_count(1)
        await page.locator("header button").first.click()  # talk to a person
        [topic] = await wait_for_topic(sim, desk.chat_id)
        await wait_in_topic(sim, desk.chat_id, topic.thread_id, 1)

        # 1. The file picker, with a caption from the text box, over a slow network: the progress shows.
        brochure = tmp_path / "brochure.pdf"
        brochure.write_bytes(BROCHURE)
        await page.locator("textarea").fill("Here is the brochure")
        await _throttle_uploads(page, 60_000)
        await page.locator("input[type=file]").set_input_files(str(brochure))
        uploading = page.locator(".msg.upload")
        await expect(uploading).to_be_visible()
        await expect(uploading.locator(".progress")).to_have_attribute("aria-valuenow", re.compile(r"^([1-9]\d?)$"),
                                                                       timeout=10_000)
        if locale == "en":
            await expect(uploading.locator(".by")).to_have_text(re.compile(r"^Sending the file… \d+%$"))
        await _shots(page, "progress", locale)
        await _throttle_uploads(page, -1)
        await expect(page.locator(".msg.customer[data-id] button.file")).to_have_text("brochure.pdf",
                                                                                       timeout=30_000)
        await expect(page.locator(".msg.upload")).to_have_count(0)
        async with page.expect_download() as downloading:  # the visitor's own file, fetched with their token
            await page.locator(".msg.customer[data-id] button.file").click()
        download = await downloading.value
        assert download.suggested_filename == "brochure.pdf"
        assert Path(await download.path()).read_bytes() == BROCHURE
        await expect(page.locator(".msg.customer[data-id]").last).to_contain_text("Here is the brochure")

        # 2. Drag and drop, 3. paste: both are images, shown in place.
        await _drop(page, CAKE, "cake.png", "image/png")
        await expect(page.locator(".msg.customer[data-id] img.file")).to_have_count(1, timeout=15_000)
        await _paste(page, CRUMBS, "image.png", "image/png")
        images = page.locator(".msg.customer[data-id] img.file")
        await expect(images).to_have_count(2, timeout=15_000)
        await expect(images.last).to_have_attribute("src", re.compile(r"^blob:"))
        await _shown_at_width(page, images.last, 40)

        # They reach the managers' topic as files, bytes and all.
        await sim.wait_until(lambda: len(_topic_files(sim, desk.chat_id, topic.thread_id)) == 3, 15, "three files")
        assert _topic_files(sim, desk.chat_id, topic.thread_id) == [BROCHURE, CAKE, CRUMBS]

        # A manager's photo in the topic: an image in the widget, not "📎 photo".
        sim.send_photo(desk.mia["id"], content=REPLACEMENT, caption="The replacement is on its way",
                       chat_id=desk.chat_id, thread_id=topic.thread_id)
        theirs = page.locator(".msg.manager img.file")
        await expect(theirs).to_have_count(1, timeout=15_000)
        await _shown_at_width(page, theirs, 160)
        await expect(page.locator(".msg.manager").last).to_contain_text("The replacement is on its way")
        await _shots(page, "sent", locale)

        # Too big (checked in the page) and of a type we do not take (checked by the server): a clear note.
        big = tmp_path / "huge.pdf"
        big.write_bytes(b"%PDF-1.4\n" + b"x" * (LIMIT + 1))
        await page.locator("input[type=file]").set_input_files(str(big))
        note = page.locator(".note")
        await expect(note).to_be_visible()
        if locale == "en":
            await expect(note).to_have_text("This file is too large: files up to 0.3 MB can be sent.")
        fake = tmp_path / "notes.txt"
        fake.write_bytes(b"\x00\x01binary pretending to be text")
        await page.locator("textarea").fill("kept")
        await page.locator("input[type=file]").set_input_files(str(fake))
        if locale == "en":
            await expect(note).to_have_text(re.compile(r"^This kind of file cannot be sent here\."))
        await expect(page.locator("textarea")).to_have_value("kept")  # the caption is given back
        await _shots(page, "refused", locale)
        assert await StoredFile.all().count() == 3
        assert await Message.filter(author_kind=AuthorKind.CUSTOMER).count() == 4
        await eventually(lambda: _no_upload_left(page), "no upload bubble left")


async def _shown_at_width(page: Page, image: Locator, width: int) -> None:
    """The image loaded (its pixels, not a broken-image box): its natural width is the picture's."""
    await page.wait_for_function("([image, width]) => image.complete && image.naturalWidth === width",
                                 arg=[await image.element_handle(), width], timeout=10_000)


async def _no_upload_left(page: Page) -> bool:
    return await page.locator(".msg.upload").count() == 0


async def test_staff_see_a_visitors_photo_and_file_in_the_conversation_page(
        database_url: str, sim: Simulator, ai: FakeAI, browser: Browser) -> None:
    ai.script.reply = "Let me find someone."
    async with manager_desk(database_url, sim, ai) as desk, aiohttp.ClientSession() as http:
        visitor, welcome = await open_widget(http, desk.frontdesk.url)
        await visitor.send_message("The cake arrived broken")
        await visitor.until(lambda f: f["type"] == "message" and f["author"] == "ai")
        await visitor.socket.send_json({"type": "person"})
        await wait_for_topic(sim, desk.chat_id)
        status, photo = await upload(http, desk.frontdesk.url, welcome["token"], CAKE, caption="This is how it came")
        assert status == 201
        status, _ = await upload(http, desk.frontdesk.url, welcome["token"], RECEIPT, name="receipt.pdf")
        assert status == 201
        boss = await approve(desk, sim, desk.boss, Role.ADMIN)
        url = f"{desk.frontdesk.url}/app/conversations/{photo['conversation']}"
        for locale in ("en", "ru", "uz"):
            await User.filter(id=boss.id).update(language=locale)
            for size, label in ((PHONE, "390"), (DESKTOP, "1280")):
                page = await staff_page(browser, sim, desk.boss["id"], size)
                await page.goto(url)
                await expect(page.locator("html")).to_have_attribute("lang", locale)
                image = page.locator("#transcript .msg.customer img.attachment")
                await expect(image).to_have_count(1)
                await _shown_at_width(page, image, 120)
                link = page.locator("#transcript .msg.customer a.attachment")
                await expect(link).to_have_text("📎 receipt.pdf")
                if (locale, label) == ("en", "1280"):
                    async with page.expect_download() as downloading:
                        await link.click()
                    download = await downloading.value
                    assert download.suggested_filename == "receipt.pdf"
                    assert Path(await download.path()).read_bytes() == RECEIPT
                await scrolled_to_the_end(page)
                await page.screenshot(path=str(SHOTS / f"conversation-files-{label}-{locale}.png"))
                await page.context.close()
        await visitor.socket.close()
