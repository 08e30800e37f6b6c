"""The knowledge-base editor in the Mini App: its API (who may use it, errors, effects) and its page."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, expect
from tgsim import Simulator

from models import AuditLog, KnowledgeItem
from tests.conftest import eventually
from tests.desk_helpers import Desk, manager_desk
from tests.fake_ai import FakeAI
from tests.miniapp_helpers import app_client
from tests.test_miniapp_browser import browser, shot, telegram_page

__all__ = ["browser"]


@pytest.fixture
async def desk(database_url: str, sim: Simulator, ai: FakeAI) -> AsyncIterator[Desk]:
    async with manager_desk(database_url, sim, ai) as running:
        yield running


ENDPOINTS = [
    ("GET", "/api/knowledge", None), ("POST", "/api/knowledge", {"question": "q", "answer": "a"}),
    ("GET", "/api/knowledge/export", None), ("POST", "/api/knowledge/import", {"filename": "a.csv", "text": "q,a"}),
    ("POST", "/api/knowledge/try", {"question": "hi"}), ("GET", "/api/knowledge/suggestions", None),
    ("POST", "/api/knowledge/suggestions/" + "0" * 64 + "/dismiss", None), ("GET", "/api/knowledge/{id}", None),
    ("PATCH", "/api/knowledge/{id}", {"enabled": False}), ("DELETE", "/api/knowledge/{id}", None)]


async def test_customers_cannot_read_or_change_the_knowledge_base(desk: Desk, sim: Simulator) -> None:
    item = await KnowledgeItem.create(bot_id=1, question="Secret staff question", answer="Secret answer",
                                      question_key="k")
    ann = sim.create_user("Ann")
    async with app_client(desk.frontdesk, sim, ann["id"]) as customer:
        for method, path, body in ENDPOINTS:
            status, answer = await customer.call(method, path.replace("{id}", str(item.id)), body)
            assert (status, answer["error"]["code"]) == (403, "forbidden"), (method, path)
            assert "Secret" not in json.dumps(answer)
    assert await KnowledgeItem.filter(enabled=True).count() == 1
    assert not await KnowledgeItem.filter(question="q").exists()


async def test_staff_add_edit_search_switch_off_export_import_and_delete(desk: Desk, sim: Simulator) -> None:
    async with app_client(desk.frontdesk, sim, desk.mia["id"]) as staff:
        created = await staff.post("/api/knowledge", {"question": "Do you deliver on Sundays?",
                                                      "answer": "Yes, from **10 to 16**.", "tags": "delivery"})
        assert created["enabled"] is True
        status, body = await staff.call("POST", "/api/knowledge", {"question": "do you DELIVER on sundays",
                                                                   "answer": "No"})
        assert (status, body["error"]["code"]) == (409, "duplicate")
        status, body = await staff.call("POST", "/api/knowledge", {"question": "  ", "answer": "x"},
                                        headers={"Accept-Language": "ru"})
        assert (status, body["error"]["code"]) == (400, "empty_question")
        assert body["error"]["message"] == "Please write the question."  # Mia's own language: English
        status, body = await staff.call("POST", "/api/knowledge", {"question": "q" * 600, "answer": "x"})
        assert (status, body["error"]["code"]) == (400, "too_long")
        assert "question" in body["error"]["message"]

        await staff.post("/api/knowledge", {"question": "Where do you park?", "answer": "Behind the shop."})
        found = (await staff.get("/api/knowledge?q=sunday"))["items"]
        assert [item["question"] for item in found] == ["Do you deliver on Sundays?"]
        status, switched = await staff.call("PATCH", f"/api/knowledge/{created['id']}", {"enabled": False})
        assert (status, switched["enabled"]) == (200, False)
        assert [i["question"] for i in (await staff.get("/api/knowledge?enabled=false"))["items"]] == \
            ["Do you deliver on Sundays?"]

        status, csv_text = await staff.call("GET", "/api/knowledge/export?format=csv")
        assert status == 200
        assert "Do you deliver on Sundays?" in csv_text
        report = await staff.post("/api/knowledge/import", {"filename": "more.md",
                                                            "text": "## Is there Wi-Fi?\nYes, ask at the desk.\n"})
        assert report == {"created": 1, "updated": 0, "unchanged": 0}
        status, body = await staff.call("POST", "/api/knowledge/import", {"filename": "x.pdf", "text": "%PDF"})
        assert (status, body["error"]["code"]) == (400, "bad_file")

        status, _ = await staff.call("DELETE", f"/api/knowledge/{created['id']}")
        assert status == 200
        status, body = await staff.call("GET", f"/api/knowledge/{created['id']}")
        assert (status, body["error"]["code"]) == (404, "not_found")
    assert sorted(item.question for item in await KnowledgeItem.all()) == ["Is there Wi-Fi?", "Where do you park?"]
    assert await AuditLog.filter(action="knowledge_delete").count() == 1


async def test_try_it_shows_the_answer_and_the_items_used_and_stores_nothing(
        desk: Desk, sim: Simulator, ai: FakeAI) -> None:
    async with app_client(desk.frontdesk, sim, desk.mia["id"]) as staff:
        await staff.post("/api/knowledge", {"question": "What are your opening hours?",
                                            "answer": "From nine to six."})
        direct = await staff.post("/api/knowledge/try", {"question": "What are your opening hours?"})
        assert direct["source"] == "knowledge"
        assert direct["items"][0]["question"] == "What are your opening hours?"
        ai.script.reply = "We are open **nine to six**, and late on Fridays."
        # No word in common with the item's: found by its meaning, once the knowledge worker embedded it.
        await eventually(lambda: KnowledgeItem.filter(question="What are your opening hours?").exclude(
            embedding_model="").exists(), "the item's vector")
        tried = await staff.post("/api/knowledge/try", {"question": "Are you open late on a Friday evening?"})
        assert tried["source"] == "ai"
        assert tried["html"] == "We are open <b>nine to six</b>, and late on Fridays."
        assert tried["model"] == "main-model"
        assert [item["question"] for item in tried["items"]] == ["What are your opening hours?"]
    assert (await KnowledgeItem.get(question="What are your opening hours?")).hit_count == 0


@pytest.mark.browser
async def test_an_item_added_in_the_editor_is_what_the_bot_answers_with(
        desk: Desk, sim: Simulator, ai: FakeAI, browser: Browser) -> None:
    page = await telegram_page(browser, sim, desk.mia["id"])
    await page.goto(desk.frontdesk.url + "/app/knowledge")
    await page.get_by_label("Question", exact=True).fill("Do you have parking?")
    await page.get_by_label("Answer (Markdown)").fill("Yes: **free parking** behind the shop.")
    await page.get_by_label("Tags, comma-separated").fill("parking")
    await page.get_by_role("button", name="Save").click()
    row = page.locator("#items li", has_text="Do you have parking?")
    await expect(row).to_be_visible()
    await expect(page.locator("#total")).to_have_text("Items: 1")

    await page.get_by_label("Question to try").fill("Do you have parking?")
    await page.get_by_role("button", name="Try", exact=True).click()
    await expect(page.locator("#try-answer b")).to_have_text("free parking")
    await expect(page.locator("#try-items")).to_contain_text("Do you have parking?")
    await shot(page, "knowledge-light")

    requests = len(ai.requests)
    ann = sim.create_user("Ann")
    sim.send_text(ann["id"], "Do you have parking?")
    [answer] = await sim.wait_for_messages(ann["id"])
    assert "free parking" in answer["text"]
    assert len(ai.requests) == requests  # from the knowledge base, without the AI

    dark = await telegram_page(browser, sim, desk.mia["id"], "dark")
    await dark.goto(desk.frontdesk.url + "/app/knowledge")
    await expect(dark.locator("#items li")).to_have_count(1)
    await shot(dark, "knowledge-dark")
