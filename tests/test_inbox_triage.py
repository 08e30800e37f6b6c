"""The staff inbox built for triage (issue 17), through the real server: tab counts, the longest wait
first, previews that are the customer's words, the unassigned view and the assignee filter, search
over what was written, and website visitors by name or email."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from tgsim import Simulator

from models import Conversation, WidgetSite
from tests.conftest import eventually
from tests.desk_helpers import Desk, manager_desk, topics, wait_for_topic, wait_in_topic
from tests.fake_ai import FakeAI
from tests.miniapp_helpers import AppClient, app_client
from tests.widget_helpers import open_widget, signed_in


@pytest.fixture
async def desk(database_url: str, sim: Simulator, ai: FakeAI) -> AsyncIterator[Desk]:
    async with manager_desk(database_url, sim, ai, PUBLIC_BASE_URL="https://desk.example") as running:
        yield running


async def with_answer(sim: Simulator, name: str, text: str = "Hello") -> dict[str, Any]:
    customer: dict[str, Any] = sim.create_user(name)
    sim.send_text(customer["id"], text)
    await sim.wait_for_messages(customer["id"])
    return customer


async def handed_off(sim: Simulator, desk: Desk, name: str, text: str = "") -> dict[str, Any]:
    customer: dict[str, Any] = sim.create_user(name)
    if text:
        sim.send_text(customer["id"], text)
        await sim.wait_for_messages(customer["id"])
    before = len(topics(sim, desk.chat_id))
    sim.send_command(customer["id"], "human")
    opened = await wait_for_topic(sim, desk.chat_id, before + 1)
    await wait_in_topic(sim, desk.chat_id, opened[-1].thread_id, 1)
    return customer


async def names(staff: AppClient, query: str) -> list[str]:
    return [row["customer"]["name"] for row in (await staff.get("/api/conversations?" + query))["conversations"]]


async def conversation_of(customer: dict[str, Any]) -> Conversation:
    return await Conversation.get(user__telegram_id=customer["id"])


async def test_the_tabs_count_their_conversations(desk: Desk, sim: Simulator) -> None:
    people = {name: await with_answer(sim, name) for name in ("Ann", "Bob", "Cid")}
    people |= {name: await handed_off(sim, desk, name) for name in ("Dee", "Eve")}
    async with app_client(desk.frontdesk, sim, desk.mia["id"]) as mia:
        summary = await mia.get("/api/inbox/summary")
        assert summary["counts"] == {"all": 5, "waiting": 2, "mine": 0, "ai": 3, "closed": 0, "unassigned": 5}
        assert "Mia" in [person["name"] for person in summary["staff"]]

        dee = await conversation_of(people["Dee"])
        await mia.post(f"/api/conversations/{dee.id}/actions", {"action": "take"})
        ann = await conversation_of(people["Ann"])
        await mia.post(f"/api/conversations/{ann.id}/actions", {"action": "close"})
        summary = await mia.get("/api/inbox/summary")
        assert summary["counts"] == {"all": 5, "waiting": 1, "mine": 1, "ai": 2, "closed": 1, "unassigned": 3}
        # Each count is what its tab lists.
        for view, count in summary["counts"].items():
            assert len((await mia.get(f"/api/conversations?view={view}"))["conversations"]) == count, view
        mia_id = (await mia.get("/api/me"))["id"]
        assert (await mia.get(f"/api/inbox/summary?assignee={mia_id}"))["counts"]["all"] == 1
        assert (await mia.get("/api/inbox/summary?channel=widget"))["counts"]["all"] == 0
        status, body = await mia.call("GET", "/api/inbox/summary?assignee=nobody")
        assert (status, body["error"]["code"]) == (400, "bad_request")

    async with app_client(desk.frontdesk, sim, people["Bob"]["id"]) as customer:
        status, _ = await customer.call("GET", "/api/inbox/summary")
        assert status == 403


async def test_waiting_lists_the_longest_wait_first_and_says_how_long(desk: Desk, sim: Simulator) -> None:
    people = {name: await handed_off(sim, desk, name) for name in ("Ann", "Bob", "Cid")}
    # Ann writes again: in "All" she moves to the top; in "Waiting" she keeps her place in the queue.
    sim.send_text(people["Ann"]["id"], "Anyone there?")
    ann = await conversation_of(people["Ann"])

    async def ann_wrote_last() -> bool:
        await ann.refresh_from_db()
        return (await Conversation.filter(bot_id=ann.bot_id).order_by("-last_message_at").first()) == ann
    await eventually(ann_wrote_last, "Ann's message stored")
    async with app_client(desk.frontdesk, sim, desk.mia["id"]) as mia:
        assert (await names(mia, "view=all"))[0] == "Ann"
        assert await names(mia, "view=waiting") == ["Ann", "Bob", "Cid"]
        seen: list[str] = []
        cursor = ""
        while True:
            page = await mia.get("/api/conversations?view=waiting&limit=1" + (f"&cursor={cursor}" if cursor else ""))
            seen += [row["customer"]["name"] for row in page["conversations"]]
            if not (cursor := page["next_cursor"]):
                break
        assert seen == ["Ann", "Bob", "Cid"]
        [row] = (await mia.get("/api/conversations?view=waiting&limit=1"))["conversations"]
        assert row["waiting_since"] == ann.handed_off_at.isoformat()  # type: ignore[union-attr]
        assert row["handoff_reason"] == "asked_for_person"
        await mia.post(f"/api/conversations/{ann.id}/actions", {"action": "take"})
        taken = await mia.get(f"/api/conversations/{ann.id}")
        assert taken["waiting_since"] is None  # someone has it: no one waits for a person any more


async def test_a_row_previews_the_customers_last_words_not_a_note_or_a_notice(desk: Desk, sim: Simulator) -> None:
    ann = await handed_off(sim, desk, "Ann", text="My umbrella arrived broken")
    conversation = await conversation_of(ann)
    async with app_client(desk.frontdesk, sim, desk.mia["id"]) as mia:
        await mia.post(f"/api/conversations/{conversation.id}/notes", {"text": "Check the courier"})
        [row] = (await mia.get("/api/conversations"))["conversations"]
        # The last messages are the handoff's notice to Ann and the note; the row shows what Ann said.
        assert row["preview"]["author"] == "customer"
        assert row["preview"]["text"] == "My umbrella arrived broken"
        assert row["preview"]["created_at"]
        assert row["handoff_reason"] == "asked_for_person"
        await mia.post(f"/api/conversations/{conversation.id}/reply", {"text": "Sorry! A new one is on its way."})
        [row] = (await mia.get("/api/conversations"))["conversations"]
        assert row["preview"]["text"] == "My umbrella arrived broken"  # still the customer's words


async def test_unassigned_and_the_assignee_filter(desk: Desk, sim: Simulator) -> None:
    await with_answer(sim, "Ann")
    people = {name: await handed_off(sim, desk, name) for name in ("Bob", "Cid")}
    bob = await conversation_of(people["Bob"])
    async with app_client(desk.frontdesk, sim, desk.mia["id"]) as mia, \
            app_client(desk.frontdesk, sim, desk.boss["id"]) as boss:
        await boss.get("/api/me")
        await boss.post(f"/api/conversations/{bob.id}/actions", {"action": "take"})
        assert sorted(await names(mia, "view=unassigned")) == ["Ann", "Cid"]
        boss_id = (await boss.get("/api/me"))["id"]
        assert await names(mia, f"assignee={boss_id}") == ["Bob"]
        assert await names(mia, f"view=mine&assignee={boss_id}") == []  # Mia's own, and the boss's: none
        assert await names(boss, f"view=mine&assignee={boss_id}") == ["Bob"]
        status, body = await mia.call("GET", "/api/conversations?assignee=0")
        assert (status, body["error"]["details"][0]["field"]) == (400, "assignee")


async def test_search_finds_the_words_customers_wrote(desk: Desk, sim: Simulator) -> None:
    await with_answer(sim, "Ann", "Do you sell umbrellas?")
    bob = await with_answer(sim, "Bob", "Where is my parcel?")
    await with_answer(sim, "Лена", "Где мой зонтик?")
    async with app_client(desk.frontdesk, sim, desk.mia["id"]) as mia:
        assert await names(mia, "q=umbrellas") == ["Ann"]
        assert await names(mia, "q=umbrella") == ["Ann"]  # a word finds its longer forms
        assert await names(mia, "q=UMBRELLAS%3F") == ["Ann"]
        assert await names(mia, "q=sell%20umbrellas") == ["Ann"]  # every word, anywhere in a message
        assert await names(mia, "q=umbrellas%20parcel") == []
        assert await names(mia, "q=зонтик") == ["Лена"]
        assert await names(mia, "q=Bob") == ["Bob"]  # names still match
        for hostile in ('"', "umbrella OR parcel", "NEAR(", "*", "a:* | b", "'); DROP TABLE message; --", "!!!"):
            status, body = await mia.call("GET", "/api/conversations?q=" + quote(hostile, safe=""))
            assert status == 200, (hostile, body)
        assert await names(mia, "q=umbrella%20OR%20parcel") == []  # OR is a word here, not an operator
    async with app_client(desk.frontdesk, sim, bob["id"]) as customer:
        # A customer's list is their own, whatever they search.
        assert await names(customer, "q=umbrellas") == ["Bob"]


async def test_website_visitors_are_shown_by_name_or_email(desk: Desk, sim: Simulator) -> None:
    site = await WidgetSite.get(public_key="demo")
    async with aiohttp.ClientSession() as http:
        for user in (signed_in(site, "jane@shop.example"), signed_in(site, "customer-9", "Dana Lee"), None):
            visitor, welcome = await open_widget(http, desk.frontdesk.url, user=user)
            assert welcome["type"] == "welcome", welcome
            await visitor.send_message("Hello from the website")
            await visitor.until(lambda frame: frame["type"] == "message" and frame["author"] == "ai")
            await visitor.socket.close()
    async with app_client(desk.frontdesk, sim, desk.mia["id"]) as mia:
        rows = (await mia.get("/api/conversations?channel=widget"))["conversations"]
        customers = sorted((row["customer"]["name"], row["customer"]["email"], row["customer"]["visitor"])
                           for row in rows)
        assert customers == [("", None, True), ("Dana Lee", None, True),
                             ("jane@shop.example", "jane@shop.example", True)]
        assert not any(row["customer"]["name"].startswith("#") for row in rows)
