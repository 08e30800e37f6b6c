"""Analytics in the Mini App: the report's API (staff only, a validated range) and its charts in a browser."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from playwright.async_api import Browser, expect
from tgsim import Simulator

from tests.desk_helpers import Desk, manager_desk, wait_for_topic, wait_in_topic
from tests.fake_ai import FakeAI
from tests.miniapp_helpers import app_client
from tests.test_miniapp_browser import browser, shot, telegram_page

__all__ = ["browser"]


@pytest.fixture
async def desk(database_url: str, sim: Simulator, ai: FakeAI) -> AsyncIterator[Desk]:
    async with manager_desk(database_url, sim, ai) as running:
        yield running


async def a_day_at_the_desk(desk: Desk, sim: Simulator) -> None:
    """Two customers answered by the AI; a third handed to Mia, who replies and closes; rated 4."""
    for name in ("Ann", "Bob"):
        customer = sim.create_user(name)
        sim.send_text(customer["id"], "Do you sell gift cards?")
        await sim.wait_for_messages(customer["id"])
    cid = sim.create_user("Cid")
    sim.send_command(cid["id"], "human")
    [topic] = await wait_for_topic(sim, desk.chat_id)
    await wait_in_topic(sim, desk.chat_id, topic.thread_id, 1)
    sim.send_text(desk.mia["id"], "Hi Cid, how can I help?", chat_id=desk.chat_id, thread_id=topic.thread_id)
    await sim.wait_until(lambda: any("how can I help" in (m.get("text") or "") for m in sim.chat_history(cid["id"])),
                         10, "Mia's reply")
    sim.send_command(desk.mia["id"], "close", chat_id=desk.chat_id, thread_id=topic.thread_id)
    await sim.wait_until(lambda: "reply_markup" in sim.chat_history(cid["id"])[-1], 10, "the rating buttons")
    rating = sim.chat_history(cid["id"])[-1]
    four = rating["reply_markup"]["inline_keyboard"][1][0]
    sim.press_button(cid["id"], cid["id"], rating["message_id"], data=four["callback_data"])
    await sim.wait_until(lambda: "⭐" in (sim.chat_history(cid["id"])[-1].get("text") or ""), 10, "rated")


async def test_staff_get_the_report_customers_do_not(desk: Desk, sim: Simulator) -> None:
    await a_day_at_the_desk(desk, sim)
    today = datetime.now(UTC).date()
    async with app_client(desk.frontdesk, sim, desk.mia["id"]) as staff:
        report = await staff.get("/api/analytics")
        assert len(report["days"]) == 30
        assert report["days"][-1] == today.isoformat()
        assert report["conversations_per_day"]["telegram"][-1] == 3
        assert (report["outcomes"]["ai_resolved"], report["outcomes"]["handed_off"]) == (2, 1)
        assert report["first_response"]["count"] == 1
        assert report["ratings"]["distribution"] == [0, 0, 0, 1, 0]
        assert report["top_questions"][0] == {"text": "Do you sell gift cards?", "count": 2}
        assert report["ai_usage"]["total"]["answers"] == 2
        [mia] = report["managers"]
        assert (mia["name"], mia["replies"], mia["closed"]) == ("Mia", 1, 1)

        week = await staff.get(f"/api/analytics?start={today - timedelta(days=6)}&end={today}")
        assert len(week["days"]) == 7
        status, body = await staff.call("GET", f"/api/analytics?start={today}&end={today - timedelta(days=1)}")
        assert (status, body["error"]["code"]) == (400, "bad_range")
        status, body = await staff.call("GET", f"/api/analytics?start={today - timedelta(days=800)}&end={today}")
        assert (status, body["error"]["code"]) == (400, "too_long")
        status, body = await staff.call("GET", "/api/analytics?start=yesterday")
        assert (status, body["error"]["code"]) == (400, "bad_request")
    ann = sim.create_user("Ann2")
    async with app_client(desk.frontdesk, sim, ann["id"]) as customer:
        status, body = await customer.call("GET", "/api/analytics")
        assert (status, body["error"]["code"]) == (403, "forbidden")
        assert "gift" not in str(body)


@pytest.mark.browser
async def test_the_analytics_page_draws_its_charts(desk: Desk, sim: Simulator, browser: Browser) -> None:
    await a_day_at_the_desk(desk, sim)
    for theme in ("light", "dark"):
        page = await telegram_page(browser, sim, desk.mia["id"], theme)
        await page.goto(desk.frontdesk.url + "/app/analytics")
        await expect(page.locator("#stat-total")).to_have_text("3")
        await expect(page.locator("#stat-ai")).to_have_text("67%")
        await expect(page.locator("#stat-rating")).to_have_text("4.0 ★")
        await expect(page.locator("#per-day svg rect.bar")).to_have_count(1)  # today, Telegram only
        await expect(page.locator("#outcomes svg rect.bar")).to_have_count(2)
        await expect(page.locator("#ratings svg rect.bar")).to_have_count(1)
        await expect(page.locator("#cost svg polyline")).to_have_count(1)
        await expect(page.locator("#questions li").first).to_contain_text("Do you sell gift cards?")
        await expect(page.locator("#managers tbody tr")).to_have_count(1)
        await shot(page, f"analytics-{theme}")
        if theme == "light":
            await page.get_by_role("radio", name="7 days").check()
            await expect(page.locator("#per-day svg .axis")).not_to_have_count(0)
            await expect(page.locator("#stat-total")).to_have_text("3")
        await page.context.close()
