"""A customer's voice in the Mini App's conversation page, in a real browser (issue 18): staff read its
transcript under it, also when it is heard after the page showed the voice. Screenshots in en, ru and uz
at 390 and 1280 px go to SCREENSHOT_DIR."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, expect
from tgsim import Simulator

from models import Conversation, Role, User
from tests.browser_helpers import DESKTOP, PHONE
from tests.browser_helpers import browser as browser
from tests.desk_helpers import Desk, manager_desk, wait_for_topic, wait_in_topic
from tests.fake_ai import FakeAI
from tests.test_conversation_browser import approve, scrolled_to_the_end, shot, staff_page

pytestmark = pytest.mark.browser
SAID = "Hello, my parcel 4471 has not arrived yet, can you check where it is?"


@pytest.fixture
async def desk(database_url: str, sim: Simulator, ai: FakeAI) -> AsyncIterator[Desk]:
    async with manager_desk(database_url, sim, ai, PUBLIC_BASE_URL="https://desk.example") as running:
        yield running


async def test_staff_read_a_voices_transcript_under_it_even_when_it_is_heard_after_the_page_opened(
        desk: Desk, sim: Simulator, ai: FakeAI, browser: Browser) -> None:
    bea = sim.create_user("Bea", last_name="Stone")
    sim.send_command(bea["id"], "human")
    await sim.wait_for_messages(bea["id"])
    [topic] = await wait_for_topic(sim, desk.chat_id)
    conversation = await Conversation.get(user__telegram_id=bea["id"])
    boss = await approve(desk, sim, desk.boss, Role.ADMIN)
    page = await staff_page(browser, sim, desk.boss["id"])
    async with page.expect_websocket() as opening:
        await page.goto(f"{desk.frontdesk.url}/app/conversations/{conversation.id}")
    live = await opening.value
    await live.wait_for_event("framereceived", lambda frame: '"ready"' in str(frame))  # it hears of changes now
    await expect(page.locator("#transcript .msg")).to_have_count(1)  # the handoff notice

    hold = ai.script.hold = asyncio.Event()  # the transcriber takes its time
    sim.send_voice(bea["id"], content=SAID.encode(), duration=6)
    voice = page.locator("#transcript .msg.customer")
    await expect(voice).to_have_count(1)
    await expect(voice.locator(".voice-transcript")).to_have_count(0)
    hold.set()
    await expect(voice.locator(".voice-transcript")).to_contain_text(SAID)  # the open page hears of it
    await wait_in_topic(sim, desk.chat_id, topic.thread_id, 3)  # and the topic: card, voice, transcript
    await page.context.close()

    for locale in ("en", "ru", "uz"):
        await User.filter(id=boss.id).update(language=locale)
        for size, label in ((PHONE, "390"), (DESKTOP, "1280")):
            page = await staff_page(browser, sim, desk.boss["id"], size)
            await page.goto(f"{desk.frontdesk.url}/app/conversations/{conversation.id}")
            await expect(page.locator("html")).to_have_attribute("lang", locale)
            await expect(page.locator("#transcript .voice-transcript")).to_contain_text(SAID)
            await scrolled_to_the_end(page)
            await shot(page, f"voice-{label}-{locale}")
            await page.context.close()
