"""Website chats in a Telegram customer's history: only when that customer confirms in the bot.

A site may let its users choose their ids, so nothing a site signs links anyone to a Telegram
account: the widget asks for a one-time deep link, and the person who opens it confirms.
"""

from __future__ import annotations

import re
from typing import Any

import aiohttp
from tgsim import Simulator

from models import AuditLog, WidgetSite
from tests.conftest import Frontdesk
from tests.fake_ai import FakeAI
from tests.miniapp_helpers import app_client
from tests.widget_helpers import VisitorSocket, is_answer, open_widget, signed_in


async def _telegram_customer(sim: Simulator, name: str) -> dict[str, Any]:
    person: dict[str, Any] = sim.create_user(name)
    sim.send_text(person["id"], "Asked in Telegram")
    await sim.wait_for_messages(person["id"])
    return person


async def _channels(frontdesk: Frontdesk, sim: Simulator, telegram_id: int) -> tuple[list[str], list[str]]:
    """The channels of the person's conversations in the Mini App's history, and in their data export."""
    async with app_client(frontdesk, sim, telegram_id) as customer:
        rows = (await customer.get("/api/conversations"))["conversations"]
        exported = (await customer.call("GET", "/api/me/data"))[1]
    return sorted(row["channel"] for row in rows), sorted(c["channel"] for c in exported["conversations"])


async def _write(visitor: VisitorSocket, text: str) -> None:
    await visitor.send_message(text)
    await visitor.until(lambda frame: is_answer(frame))


async def test_a_site_chosen_telegram_id_plants_nothing_in_that_persons_history(
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ann = await _telegram_customer(sim, "Ann")
    site = await WidgetSite.get(public_key="demo")
    # The shop lets its users pick their ids; Mallory picks Ann's Telegram id, and the shop signs it.
    async with aiohttp.ClientSession() as http:
        mallory, welcome = await open_widget(http, frontdesk.url, user=signed_in(site, f"tg:{ann['id']}", "Ann"))
        assert welcome["type"] == "welcome"
        await _write(mallory, "Please send my refund to card 4111 1111 1111 1111")
        await mallory.socket.close()
    assert await _channels(frontdesk, sim, ann["id"]) == (["telegram"], ["telegram"])


async def test_a_visitor_who_confirms_in_the_bot_finds_the_website_chat_in_their_history(
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ann = await _telegram_customer(sim, "Ann")
    bob = await _telegram_customer(sim, "Bob")
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{frontdesk.url}/widget/api/site?site=demo", headers={"Origin": frontdesk.url}) as got:
            assert (await got.json())["telegram"] is True  # the widget offers "Continue in Telegram"
        visitor, _ = await open_widget(http, frontdesk.url)
        await _write(visitor, "Asked on the website")
        await visitor.socket.send_json({"type": "link"})
        link = await visitor.until(lambda frame: frame["type"] == "link")
        assert link["url"].startswith("https://t.me/frontdesk_test_bot?start=link-")
        code = link["url"].partition("?start=")[2]

        sim.send_command(ann["id"], "start", code)
        await sim.wait_until(lambda: "reply_markup" in sim.chat_history(ann["id"])[-1], 10, "the question")
        question = sim.chat_history(ann["id"])[-1]
        # The demo site has no title of its own (its business is named by the tenant): it is named by its address.
        assert re.match(r"🌐 http://(127\.0\.0\.1|localhost):\d+\nMessages: 2\n\nAdd this website chat to your "
                        r"history here\?", question["text"]), question["text"]
        [[yes], [no]] = question["reply_markup"]["inline_keyboard"]
        assert await _channels(frontdesk, sim, ann["id"]) == (["telegram"], ["telegram"])  # nothing before "yes"
        # The link is Ann's now: Bob, given it too, cannot take it.
        sim.send_command(bob["id"], "start", code)
        await sim.wait_until(lambda: "expired or was already used" in sim.chat_history(bob["id"])[-1]["text"], 10,
                             "Bob's refusal")

        sim.press_button(ann["id"], ann["id"], question["message_id"], data=yes["callback_data"])
        await sim.wait_until(lambda: sim.chat_history(ann["id"])[-1]["text"].startswith("Done"), 10, "the link")
        assert (await visitor.until(lambda frame: frame["type"] == "linked"))["type"] == "linked"
        await visitor.socket.close()
    assert await _channels(frontdesk, sim, ann["id"]) == (["telegram", "widget"], ["telegram", "widget"])
    assert await _channels(frontdesk, sim, bob["id"]) == (["telegram"], ["telegram"])
    assert await AuditLog.filter(action="widget_link").count() == 1
    # Used once: the same link again links nothing more.
    sim.send_command(ann["id"], "start", code)
    await sim.wait_until(lambda: "expired or was already used" in sim.chat_history(ann["id"])[-1]["text"], 10,
                         "the used link refused")
    assert no["text"] == "Cancel"
