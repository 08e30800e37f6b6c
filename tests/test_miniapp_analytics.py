"""Analytics in the Mini App: the report's API (staff only, a validated range) and its charts in a browser."""

from __future__ import annotations

import csv
import io
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
        assert report["ai_enabled"] is True
        previous = report["previous"]
        assert previous["period"]["end"] == (today - timedelta(days=30)).isoformat()
        assert previous["period"]["start"] == (today - timedelta(days=59)).isoformat()
        assert (previous["conversations"], previous["ratings_count"], previous["cost"]) == (0, 0, 0)

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
        status, body = await customer.call("GET", "/api/analytics/export.csv")
        assert (status, body["error"]["code"]) == (403, "forbidden")


async def test_the_days_are_written_in_the_readers_language(desk: Desk, sim: Simulator) -> None:
    day = f"{datetime.now(UTC).year - 1}-12-07"
    async with app_client(desk.frontdesk, sim, desk.mia["id"]) as staff:
        for language, label in (("en", "Dec 7"), ("ru", "7 дек."), ("uz", "7-dek")):
            status, _ = await staff.call("PATCH", "/api/me", {"language": language})
            assert status == 200
            report = await staff.get(f"/api/analytics?start={day}&end={day}")
            assert (report["day_labels"], report["previous"]["label"]) == ([label], f"{label.replace('7', '6', 1)} – "
                                                                                       f"{label.replace('7', '6', 1)}")


async def test_the_csv_export_holds_the_numbers_the_page_shows(desk: Desk, sim: Simulator) -> None:
    await a_day_at_the_desk(desk, sim)
    today = datetime.now(UTC).date()
    query = f"start={today - timedelta(days=6)}&end={today}"
    async with app_client(desk.frontdesk, sim, desk.mia["id"]) as staff:
        report = await staff.get(f"/api/analytics?{query}")
        status, text = await staff.call("GET", f"/api/analytics/export.csv?{query}")
    assert status == 200
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["date", "conversations_telegram", "conversations_widget", "ai_answers", "ai_tokens_in",
                       "ai_tokens_out", "ai_cost_usd"]
    assert [row[0] for row in rows[1:]] == [*report["days"], "total"]
    usage = report["ai_usage"]
    for index, row in enumerate(rows[1:-1]):
        assert [int(cell) for cell in row[1:6]] == [
            report["conversations_per_day"]["telegram"][index], report["conversations_per_day"]["widget"][index],
            usage["answers"][index], usage["tokens_in"][index], usage["tokens_out"][index]]
        assert float(row[6]) == usage["cost"][index]
    assert rows[-1][1:4] == ["3", "0", "2"]
    assert float(rows[-1][6]) == usage["total"]["cost"]


Y_LABELS = "(id) => Chart.getChart(document.querySelector(id + ' canvas')).scales.y.ticks.map((tick) => tick.label)"
# Where the top of each bar is, and where the y axis puts 1: a single rating must reach the "1" line exactly.
BAR_TOPS = """(id) => { const chart = Chart.getChart(document.querySelector(id + ' canvas'));
  return { tops: chart.getDatasetMeta(0).data.map((bar) => Math.round(bar.y)),
           one: Math.round(chart.scales.y.getPixelForValue(1)),
           zero: Math.round(chart.scales.y.getPixelForValue(0)) }; }"""


@pytest.mark.browser
async def test_the_analytics_page_draws_its_charts(desk: Desk, sim: Simulator, browser: Browser) -> None:
    await a_day_at_the_desk(desk, sim)
    for theme in ("light", "dark"):
        page = await telegram_page(browser, sim, desk.mia["id"], theme, accept_downloads=True)
        await page.goto(desk.frontdesk.url + "/app/analytics")
        await expect(page.locator("#stat-total")).to_have_text("3")
        await expect(page.locator("#stat-ai")).to_have_text("67%")
        await expect(page.locator("#stat-rating")).to_have_text("4.0 ★")
        await expect(page.locator("#stat-ratings")).to_have_text("1 rating")
        await expect(page.locator("#delta-total")).to_have_text("▲ · before: 0")
        await expect(page.locator("#compared")).to_contain_text("Each figure is compared with the period just before")
        for chart in ("#per-day", "#outcomes", "#ratings", "#tokens", "#cost"):
            await expect(page.locator(f"{chart} canvas[role=img]")).to_have_count(1)
        # Whole numbers, each step labelled; one 4★ rating draws up to the "1" line, and the other stars none.
        assert await page.evaluate(Y_LABELS, "#ratings") == ["0", "1", "2", "3", "4"]
        assert await page.evaluate(Y_LABELS, "#per-day") == ["0", "1", "2", "3", "4"]
        bars = await page.evaluate(BAR_TOPS, "#ratings")
        assert bars["tops"] == [bars["zero"]] * 3 + [bars["one"], bars["zero"]]
        await expect(page.locator("#questions li").first).to_contain_text("Do you sell gift cards?")
        await expect(page.locator("#managers tbody tr")).to_have_count(1)
        await shot(page, f"analytics-{theme}")
        if theme == "light":
            await page.get_by_role("radio", name="7 days").check()
            await expect(page.locator("#stat-total")).to_have_text("3")
            await page.wait_for_function("() => Chart.getChart(document.querySelector('#per-day canvas'))"
                                         ".data.labels.length === 7")
            async with page.expect_download() as download:
                await page.get_by_role("button", name="Download CSV").click()
            lines = (await (await download.value).path()).read_text().splitlines()
            assert lines[0].startswith("date,conversations_telegram")
            assert lines[-1].startswith("total,3,0,2,")
        await page.context.close()


@pytest.mark.browser
async def test_without_an_ai_the_page_leaves_out_the_ais_costs(database_url: str, sim: Simulator,
                                                                browser: Browser) -> None:
    async with manager_desk(database_url, sim, None) as desk:
        page = await telegram_page(browser, sim, desk.mia["id"])
        await page.goto(desk.frontdesk.url + "/app/analytics")
        await expect(page.locator("#per-day-card")).to_be_visible()
        await expect(page.locator("#stat-ratings")).to_have_text("0 ratings")
        await expect(page.locator("#cost-card")).to_be_hidden()
        await expect(page.locator("#stat-cost-card")).to_be_hidden()
        await page.context.close()
