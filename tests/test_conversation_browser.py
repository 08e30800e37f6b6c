"""The conversation view for a team, in a real browser (Debian's Chromium driven by Playwright), as
Telegram's webview opens it: the composer never covers the last message, "X joined" comes before X's
reply, two managers see each other's ownership, writing and replies, saved replies and the knowledge
base from a reply. Screenshots in en, ru and uz at 390 and 1280 px go to SCREENSHOT_DIR."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect
from tgsim import Simulator

from miniapp.auth import MINIAPP
from models import Conversation, KnowledgeItem, Message, Role, SavedReply, User
from services import staff
from tests.browser_helpers import DESKTOP, PHONE, THEMES, webview_page
from tests.browser_helpers import browser as browser
from tests.conftest import eventually
from tests.desk_helpers import Desk, manager_desk, wait_for_topic, wait_in_topic
from tests.fake_ai import FakeAI
from tests.test_widget_browser import SHOTS

pytestmark = pytest.mark.browser
JOINED = "Mia from our team has joined the conversation."


@pytest.fixture
async def desk(database_url: str, sim: Simulator, ai: FakeAI) -> AsyncIterator[Desk]:
    async with manager_desk(database_url, sim, ai, PUBLIC_BASE_URL="https://desk.example") as running:
        yield running


async def staff_page(browser: Browser, sim: Simulator, user_id: int, size: dict[str, int] = PHONE) -> Page:
    """The Mini App in Telegram's webview for a staff member, at a phone's or a desktop's size."""
    return await webview_page(browser, sim, user_id, themes=THEMES["light"], viewport=size)


async def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"conversation-{name}.png"))


async def waiting_conversation(desk: Desk, sim: Simulator, name: str = "Bea", lines: int = 0) -> Conversation:
    customer = sim.create_user(name, last_name="Stone")
    sim.send_command(customer["id"], "human")
    await sim.wait_for_messages(customer["id"])
    [topic] = await wait_for_topic(sim, desk.chat_id)
    for number in range(lines):
        sim.send_text(customer["id"], f"Line {number + 1}: my parcel from last week has still not arrived")
    await wait_in_topic(sim, desk.chat_id, topic.thread_id, 1 + (1 if lines else 0))
    conversation = await Conversation.get(user__telegram_id=customer["id"])
    await eventually(lambda: _stored(conversation.id, lines), "the customer's lines stored")
    return conversation


async def _stored(conversation_id: int, lines: int) -> bool:
    return await Message.filter(conversation_id=conversation_id, author_kind="customer").count() >= lines


async def approve(desk: Desk, sim: Simulator, person: dict[str, Any], role: Role = Role.MANAGER) -> User:
    bot_id = desk.frontdesk.app[MINIAPP].default_bot_id
    user, _ = await User.get_or_create(bot_id=bot_id, telegram_id=person["id"],
                                       defaults={"first_name": person["first_name"], "language": "en"})
    await staff.set_role(bot_id, user, role, None)
    return user


async def scrolled_to_the_end(page: Page) -> None:
    """The page has followed the conversation to its end (it scrolls there once the messages are in)."""
    await page.wait_for_function(
        "() => window.scrollY + window.innerHeight >= document.documentElement.scrollHeight - 1")


async def last_message_clear_of_the_composer(page: Page) -> dict[str, float]:
    return dict(await page.evaluate("""() => {
        const last = [...document.querySelectorAll('#transcript li.msg')].pop().getBoundingClientRect();
        const composer = document.getElementById('composer').getBoundingClientRect();
        return {last_bottom: last.bottom, composer_top: composer.top, viewport: window.innerHeight};
    }"""))


@pytest.mark.parametrize("size", [PHONE, DESKTOP], ids=["390px", "1280px"])
async def test_the_composer_leaves_the_last_message_visible(
        desk: Desk, sim: Simulator, browser: Browser, size: dict[str, int]) -> None:
    conversation = await waiting_conversation(desk, sim, lines=14)
    page = await staff_page(browser, sim, desk.mia["id"], size)
    await page.goto(f"{desk.frontdesk.url}/app/conversations/{conversation.id}")
    await expect(page.locator("#transcript .msg.customer .body").last).to_have_text(
        "Line 14: my parcel from last week has still not arrived", timeout=10_000)
    await expect(page.locator("#composer")).to_be_visible()
    await scrolled_to_the_end(page)
    box = await last_message_clear_of_the_composer(page)
    assert box["last_bottom"] <= box["composer_top"], box  # nothing of it under the composer
    assert box["composer_top"] <= box["viewport"], box

    # After a reply (a longer one), the reply is the last message and in full view too.
    await page.locator("#text").fill("Hello Bea, I'm Mia. " * 8)
    await page.locator("#send").click()
    await expect(page.locator("#transcript .msg.manager")).to_have_count(1)
    await scrolled_to_the_end(page)
    box = await last_message_clear_of_the_composer(page)
    assert box["last_bottom"] <= box["composer_top"], box


async def test_joined_comes_before_the_managers_first_reply(desk: Desk, sim: Simulator, browser: Browser) -> None:
    conversation = await waiting_conversation(desk, sim)
    page = await staff_page(browser, sim, desk.mia["id"])
    await page.goto(f"{desk.frontdesk.url}/app/conversations/{conversation.id}")
    await expect(page.locator("#state")).to_have_text("Waiting")
    await page.locator("#text").fill("Hello Bea, I'm Mia.")
    await page.keyboard.press("Control+Enter")  # the shortcut the hint shows
    await expect(page.locator("#transcript .msg.manager")).to_have_count(1)
    notice = page.locator("#transcript .msg.system", has_text=JOINED)
    await expect(notice).to_have_count(1, timeout=10_000)  # live, without a reload
    order = await page.locator("#transcript .msg .body").all_inner_texts()
    assert order.index(JOINED) < order.index("Hello Bea, I'm Mia."), order
    await expect(page.locator("#shortcut")).to_have_text("Ctrl+Enter to send")
    # The customer's Telegram chat has them in the same order.
    bea = await User.get(id=conversation.user_id)
    await sim.wait_until(lambda: any(m.get("text") == "Hello Bea, I'm Mia."
                                     for m in sim.chat_history(int(bea.telegram_id or 0))), 10, "the reply")
    texts = [m.get("text") for m in sim.chat_history(int(bea.telegram_id or 0)) if m["from"]["is_bot"]]
    assert texts[-2:] == [JOINED, "Hello Bea, I'm Mia."]


async def test_two_managers_see_who_owns_writes_and_replied(desk: Desk, sim: Simulator, browser: Browser) -> None:
    conversation = await waiting_conversation(desk, sim, lines=2)
    await approve(desk, sim, desk.mia)
    url = f"{desk.frontdesk.url}/app/conversations/{conversation.id}"
    boss = await staff_page(browser, sim, desk.boss["id"], DESKTOP)
    mia = await staff_page(browser, sim, desk.mia["id"], DESKTOP)
    await boss.goto(url)
    await mia.goto(url)
    await expect(boss.locator("#composer")).to_be_visible()
    await expect(mia.locator("#composer")).to_be_visible()

    # The boss assigns it to Mia: the boss is warned it is Mia's; Mia is not.
    await boss.locator("#assign").select_option(label="Mia")
    await expect(boss.locator("#state")).to_have_text("With Mia")
    await expect(boss.locator("#owner-warning")).to_contain_text("Mia has this conversation")
    await expect(mia.locator("#state")).to_have_text("With Mia", timeout=10_000)
    await expect(mia.locator("#owner-warning")).to_be_hidden()

    # Mia writes: the boss sees it while it lasts.
    await mia.locator("#text").press_sequentially("Let me check the courier")
    await expect(boss.locator("#typing-warning")).to_contain_text("Mia is writing a reply", timeout=10_000)
    await expect(mia.locator("#typing-warning")).to_be_hidden()

    # The boss starts a reply too; Mia sends hers first: the boss is told before sending.
    await boss.locator("#text").fill("Hello Bea, it's the boss")
    await boss.locator("#text").dispatch_event("input")
    await mia.locator("#send").click()
    await expect(boss.locator("#collision-warning")).to_contain_text("Mia replied while you were typing",
                                                                     timeout=10_000)
    await expect(boss.locator("#send")).to_have_text("Send anyway")
    await expect(boss.locator("#transcript .msg.manager .body").last).to_have_text("Let me check the courier")
    await shot(boss, "collision-1280-en")
    await expect(mia.locator("#collision-warning")).to_be_hidden()
    await boss.locator("#send").click()
    await expect(boss.locator("#collision-warning")).to_be_hidden()
    await expect(boss.locator("#transcript .msg.manager .body").last).to_have_text("Hello Bea, it's the boss")


async def test_saved_replies_and_the_knowledge_base_from_the_composer(
        desk: Desk, sim: Simulator, browser: Browser) -> None:
    conversation = await waiting_conversation(desk, sim, lines=1)
    await approve(desk, sim, desk.mia)
    page = await staff_page(browser, sim, desk.mia["id"])
    await page.goto(f"{desk.frontdesk.url}/app/conversations/{conversation.id}")
    await page.get_by_role("button", name="Saved replies").click()
    await expect(page.locator("#picker-empty")).to_be_visible()
    await page.get_by_role("button", name="Manage saved replies…").click()
    await page.locator("#reply-name").fill("tracking")
    await page.locator("#reply-text").fill("You can follow your parcel at track.example.")
    await page.locator("#reply-form button[type=submit]").click()
    await expect(page.locator("#replies-list li")).to_have_count(1)
    await page.locator("#replies-dialog .sheet-head button").click()
    assert await SavedReply.filter(name="tracking").exists()

    await page.locator("#text").fill("Sorry for the wait. ")
    await page.get_by_role("button", name="Saved replies").click()
    await page.locator("#picker-filter").fill("track")
    await expect(page.locator("#picker-list li")).to_have_count(1)  # the list is read when the picker opens
    await page.locator("#picker-filter").press("Enter")
    said = "Sorry for the wait. You can follow your parcel at track.example."
    await expect(page.locator("#text")).to_have_value(said)
    await page.locator("#send").click()
    reply = page.locator("#transcript .msg.manager").last
    await expect(reply.locator(".body")).to_have_text(said)

    await reply.get_by_role("button", name="Add to the knowledge base").click()
    await expect(page.locator("#kb-question")).to_have_value(
        "Line 1: my parcel from last week has still not arrived")
    await page.locator("#kb-question").fill("Where is my parcel?")
    await page.locator("#kb-form button[type=submit]").click()
    await expect(reply.locator(".in-kb")).to_be_visible()
    item = await KnowledgeItem.get(question="Where is my parcel?")
    assert item.answer == said


async def test_screenshots_in_each_language_at_a_phones_and_a_desktops_width(
        desk: Desk, sim: Simulator, browser: Browser) -> None:
    """Not an assertion of the words (the catalogs may lag): pictures to look at, and the layout's rule."""
    conversation = await waiting_conversation(desk, sim, lines=3)
    mia = await approve(desk, sim, desk.mia)
    boss = await approve(desk, sim, desk.boss, Role.ADMIN)
    sim.send_command(desk.mia["id"], "note", "Prefers a call after 6 pm", chat_id=desk.chat_id,
                     thread_id=(await Conversation.get(id=conversation.id)).manager_topic_id)
    await eventually(lambda: Message.exists(conversation_id=conversation.id, author_kind="note"), "the note")
    await SavedReply.create(bot_id=mia.bot_id, name="tracking", text="You can follow your parcel at track.example.")
    page = await staff_page(browser, sim, desk.mia["id"])
    await page.goto(f"{desk.frontdesk.url}/app/conversations/{conversation.id}")
    await page.locator("#text").fill("Hello Bea, I'm Mia: let me look.")
    await page.locator("#send").click()
    await expect(page.locator("#transcript .msg.manager")).to_have_count(1)
    await page.context.close()
    for locale in ("en", "ru", "uz"):
        await User.filter(id__in=[mia.id, boss.id]).update(language=locale)
        for size, label in ((PHONE, "390"), (DESKTOP, "1280")):
            page = await staff_page(browser, sim, desk.boss["id"], size)
            await page.goto(f"{desk.frontdesk.url}/app/conversations/{conversation.id}")
            await expect(page.locator("html")).to_have_attribute("lang", locale)
            await expect(page.locator("#panel")).to_be_visible()
            await expect(page.locator("#owner-warning")).to_be_visible()
            await scrolled_to_the_end(page)
            box = await last_message_clear_of_the_composer(page)
            assert box["last_bottom"] <= box["composer_top"], (locale, label, box)
            await shot(page, f"{label}-{locale}")
            if label == "390":
                await page.locator("#panel summary").click()
                await page.evaluate("window.scrollTo(0, 0)")
                await shot(page, f"{label}-{locale}-panel")
                await page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
            await page.locator("#saved-button").click()
            await shot(page, f"{label}-{locale}-picker")
            await page.context.close()


@pytest.mark.parametrize("size", [PHONE, DESKTOP], ids=["390px", "1280px"])
async def test_an_albums_later_items_join_its_message_on_an_open_page(
        desk: Desk, sim: Simulator, browser: Browser, size: dict[str, int]) -> None:
    """Telegram delivers an album item by item: the page that showed its first item shows the others in it."""
    conversation = await waiting_conversation(desk, sim)
    await approve(desk, sim, desk.mia)
    page = await staff_page(browser, sim, desk.mia["id"], size)
    frames: list[str] = []
    page.on("websocket", lambda socket: socket.on("framereceived", lambda frame: frames.append(str(frame))))
    await page.goto(f"{desk.frontdesk.url}/app/conversations/{conversation.id}")
    await expect(page.locator("#state")).to_have_text("Waiting")

    async def listening() -> bool:
        return any('"ready"' in frame for frame in frames)

    await eventually(listening, "the page's live connection")
    bea = await User.get(id=conversation.user_id)
    first, *others = album_items(sim, int(bea.telegram_id or 0), 3, caption="Which of these fits?")
    first()
    album = page.locator("#transcript .msg.customer", has_text="Which of these fits?")
    photos = album.locator("img.attachment")  # staff see a Telegram photo in place
    await expect(photos).to_have_count(1, timeout=10_000)
    for send in others:
        send()
    await expect(photos).to_have_count(3, timeout=10_000)  # live, without a reload
    await expect(page.locator("#transcript .msg.customer")).to_have_count(1)
    await shot(page, f"album-{size['width']}")


def album_items(sim: Simulator, user_id: int, count: int, caption: str) -> list[Callable[[], None]]:
    """An album's items, each sent when called (tgsim's send_album sends them all at once)."""
    group_id = str(uuid.uuid4().int)[:18]

    def item(index: int) -> Callable[[], None]:
        def send() -> None:
            stored = sim.world.add_file("photos", b"\x89PNG" + bytes([index]), extension=".jpg")
            sizes = [{"file_id": stored.file_id, "file_unique_id": stored.file_unique_id, "file_size": stored.size,
                      "width": 1280, "height": 1280}]
            content: dict[str, Any] = {"photo": sizes, "media_group_id": group_id}
            if index == 0:
                content["caption"] = caption
            sim._user_message(user_id, None, content, None, None)
        return send

    return [item(index) for index in range(count)]
