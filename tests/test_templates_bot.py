"""`/templates` in the bot's private chat, through tgsim: what the chat shows, and what pressing shows."""

from __future__ import annotations

from typing import Any

import pytest
from tgsim import Simulator

from models import Bot, User
from services.studio import templates
from tests.conftest import TOKEN, Frontdesk, formatted

STUDIO = {"PUBLIC_BASE_URL": "https://desk.example"}


def buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [button for row in message.get("reply_markup", {}).get("inline_keyboard", []) for button in row]


def titles(message: dict[str, Any]) -> list[str]:
    return [button["text"] for button in buttons(message) if button["callback_data"].startswith("tpl:")]


def newest(sim: Simulator, chat_id: int) -> dict[str, Any]:
    history: list[dict[str, Any]] = sim.chat_history(chat_id)
    return history[-1]


async def ask(sim: Simulator, user_id: int, query: str = "") -> dict[str, Any]:
    before = len(sim.chat_history(user_id))
    sim.send_command(user_id, "templates", query)
    await sim.wait_until(lambda: len(sim.chat_history(user_id)) >= before + 2, 10, "the answer to /templates")
    return newest(sim, user_id)


async def press(sim: Simulator, user_id: int, message: dict[str, Any], text: str) -> dict[str, Any]:
    """Press a button; the chat's newest message afterwards (a new one, or the pressed one edited)."""
    before = len(sim.chat_history(user_id))
    versions = len(sim.message_versions(user_id, message["message_id"]))
    query = sim.press_button(user_id, user_id, message["message_id"], text=text)
    await sim.wait_until(lambda: sim.callback_answer(query["id"]) is not None, 10, "the button's answer")
    await sim.wait_until(lambda: len(sim.chat_history(user_id)) > before or
                         len(sim.message_versions(user_id, message["message_id"])) > versions, 10, "what it shows")
    return newest(sim, user_id)


@pytest.mark.parametrize("frontdesk_settings", [STUDIO], indirect=True)
async def test_templates_offers_buttons_and_a_pressed_one_shows_the_template(
        frontdesk_settings: dict[str, str], frontdesk: Frontdesk, sim: Simulator) -> None:
    ann = sim.create_user("Ann", language_code="en")
    results = await ask(sim, ann["id"], "reply email")
    assert results["text"].startswith("Templates for «reply email» (1–")
    assert titles(results)[0] == "Reply to an email"
    assert 1 < len(titles(results)) <= 8

    shown = await press(sim, ann["id"], results, "Reply to an email")
    assert formatted(shown, "bold") == ["Reply to an email"]
    [body] = formatted(shown, "pre")
    assert body.startswith("Write a reply to the email below.")
    assert "{{my_points}}" in body
    [studio] = buttons(shown)
    assert studio["text"] == "📝 Open in the studio"
    template_id = (await templates.search(None, "Reply to an email")).hits[0].template.id
    bot_id = (await Bot.get(telegram_id=int(TOKEN.partition(":")[0]))).id  # the app names its bot
    assert studio["web_app"]["url"] == f"https://desk.example/app/studio/templates?bot={bot_id}&open={template_id}"


async def test_each_language_gets_its_own_templates_first(frontdesk: Frontdesk, sim: Simulator) -> None:
    olga = sim.create_user("Olga", language_code="ru")
    found = await ask(sim, olga["id"], "письмо")
    assert found["text"].startswith("Templates for «письмо»") or "«письмо»" in found["text"]
    assert "Ответ на письмо" in titles(found)
    aziz = sim.create_user("Aziz", language_code="uz")
    assert titles(await ask(sim, aziz["id"], "xatga"))[0] == "Xatga javob"
    # An English word: Russian templates that hold it come first, the English ones are not mixed in.
    assert all(title in {d.title for d in templates.shipped_templates().values() if d.locale == "ru"}
               for title in titles(await ask(sim, olga["id"], "json")))
    # Nothing in Russian: every language is searched.
    assert titles(await ask(sim, olga["id"], "Xatga javob"))[0] == "Xatga javob"


async def test_templates_without_a_query_pages_through_the_most_used(frontdesk: Frontdesk, sim: Simulator) -> None:
    ann = sim.create_user("Ann", language_code="en")
    first = await ask(sim, ann["id"])
    assert first["text"].startswith("The most used templates (1–8)")
    assert len(titles(first)) == 8
    assert [b["text"] for b in buttons(first)][-1] == "More ➡️"
    second = await press(sim, ann["id"], first, "More ➡️")
    assert second["message_id"] == first["message_id"]  # paged in place
    assert second["text"].startswith("The most used templates (9–16)")
    assert not set(titles(second)) & set(titles(first))
    assert [b["text"] for b in buttons(second)][-2:] == ["⬅️ Back", "More ➡️"]
    back = await press(sim, ann["id"], second, "⬅️ Back")
    assert titles(back) == titles(first)


async def test_no_results_are_said_plainly(frontdesk: Frontdesk, sim: Simulator) -> None:
    ann = sim.create_user("Ann", language_code="en")
    reply = await ask(sim, ann["id"], "zzqx <b>")
    assert reply["text"] == ("Nothing found for «zzqx <b>». Try other words, or send /templates to see the most "
                             "used ones.")
    assert buttons(reply) == []


async def test_own_templates_are_found_escaped_shortened_and_private(frontdesk: Frontdesk, sim: Simulator) -> None:
    ann, bob = sim.create_user("Ann", language_code="en"), sim.create_user("Bob", language_code="en")
    for person in (ann, bob):
        sim.send_command(person["id"], "start")
        await sim.wait_for_messages(person["id"])
    ann_user = await User.get(telegram_id=ann["id"])
    bob_user = await User.get(telegram_id=bob["id"])
    body = "Use <b>bold</b> & {{name}}\n" + "\n".join(f"Line {n}: " + "words " * 12 for n in range(200))
    mine = await templates.create(ann_user, title="Zebra <script> guide", body=body, tags="zebra")
    await templates.create(bob_user, title="Zebra secrets of Bob", body="Bob's {{secret}}")

    found = await ask(sim, ann["id"], "zebra")
    assert titles(found) == ["Zebra <script> guide"]
    shown = await press(sim, ann["id"], found, "Zebra <script> guide")
    assert formatted(shown, "bold") == ["Zebra <script> guide"]
    [pre] = formatted(shown, "pre")
    assert pre.startswith("Use <b>bold</b> & {{name}}\nLine 0:")
    assert pre.endswith("…")
    assert len(shown["text"]) <= 4096
    assert shown["text"].endswith(f"Shortened: the whole text has {len(mine.body)} characters.")
    assert buttons(shown) == []  # no https PUBLIC_BASE_URL: the studio cannot open inside Telegram

    # Deleted meanwhile: pressing its button says so.
    await templates.delete(ann_user, mine.id)
    before = len(sim.chat_history(ann["id"]))
    query = sim.press_button(ann["id"], ann["id"], found["message_id"], text="Zebra <script> guide")
    await sim.wait_until(lambda: sim.callback_answer(query["id"]) is not None, 10, "the button's answer")
    answer = sim.callback_answer(query["id"])
    assert answer is not None
    assert (answer.get("text"), answer.get("show_alert")) == ("This template is no longer available.", True)
    assert len(sim.chat_history(ann["id"])) == before
