"""/start, /help, /language and /new as the customer sees them."""

from __future__ import annotations

import pytest
from tgsim import Simulator

from models import User
from tests.conftest import Frontdesk


@pytest.mark.parametrize(
    ("language_code", "expected"),
    [("en", "Hello, Ann!"), ("ru", "Здравствуйте, Ann!"), ("uz", "Assalomu alaykum, Ann!"), ("de", "Hello, Ann!")],
)
async def test_start_greets_customer_in_their_language(frontdesk: Frontdesk, sim: Simulator,
                                                       language_code: str, expected: str) -> None:
    ann = sim.create_user("Ann", language_code=language_code)
    sim.send_command(ann["id"], "start")
    [greeting] = await sim.wait_for_messages(ann["id"])
    assert greeting["text"].startswith(expected)
    buttons = [button["text"] for row in greeting["reply_markup"]["inline_keyboard"] for button in row]
    assert len(buttons) == 2  # a person, the language; no Mini App without PUBLIC_BASE_URL


async def test_language_button_switches_the_conversation_language(frontdesk: Frontdesk, sim: Simulator) -> None:
    ann = sim.create_user("Ann", language_code="en")
    sim.send_command(ann["id"], "language")
    [menu] = await sim.wait_for_messages(ann["id"])
    sim.press_button(ann["id"], ann["id"], menu["message_id"], text="Русский")
    [_, confirmation] = await sim.wait_for_messages(ann["id"], 2)
    assert "по-русски" in confirmation["text"]
    sim.send_command(ann["id"], "help")
    [*_, help_text] = await sim.wait_for_messages(ann["id"], 3)
    assert "Просто напишите вопрос" in help_text["text"]


async def test_commands_menu_is_set_in_every_language(frontdesk: Frontdesk, sim: Simulator) -> None:
    calls = sim.calls("setMyCommands")
    languages = {call["params"].get("language_code") for call in calls}
    assert languages == {None, "en", "ru", "uz"}
    russian = next(call for call in calls if call["params"].get("language_code") == "ru")
    assert any(command["description"] == "Поговорить с человеком" for command in russian["params"]["commands"])


async def test_webhook_is_registered_with_secret_and_used_update_types(frontdesk: Frontdesk, sim: Simulator) -> None:
    [call] = sim.calls("setWebhook")
    assert call["params"]["url"] == frontdesk.url + "/telegram/webhook"
    assert call["params"]["secret_token"] == frontdesk.settings.webhook_secret
    expected = {"message", "edited_message", "callback_query", "my_chat_member", "stopped_message_generation"}
    assert set(call["params"]["allowed_updates"]) == expected


@pytest.mark.parametrize("frontdesk_settings", [{"WEBHOOK_BASE_URL": ""}], indirect=True)
async def test_without_a_public_url_the_bot_long_polls(frontdesk_settings: dict[str, str], frontdesk: Frontdesk,
                                                      sim: Simulator) -> None:
    ann = sim.create_user("Ann")
    sim.send_command(ann["id"], "start")
    [greeting] = await sim.wait_for_messages(ann["id"])
    assert greeting["text"].startswith("Hello, Ann!")
    assert sim.calls("setWebhook") == []
    assert sim.calls("getUpdates")


@pytest.mark.parametrize("frontdesk_settings", [{"PUBLIC_BASE_URL": "https://desk.example.com"}], indirect=True)
async def test_start_offers_the_mini_app_when_the_public_url_is_known(
        frontdesk_settings: dict[str, str], frontdesk: Frontdesk, sim: Simulator) -> None:
    ann = sim.create_user("Ann", language_code="uz")
    sim.send_command(ann["id"], "start")
    [greeting] = await sim.wait_for_messages(ann["id"])
    [*_, app_row] = greeting["reply_markup"]["inline_keyboard"]
    assert app_row[0]["text"] == "📱 Ilovani ochish"
    bot_id = (await User.get(telegram_id=ann["id"])).bot_id  # the app names its bot (issue 19)
    assert app_row[0]["web_app"]["url"] == f"https://desk.example.com/app/?bot={bot_id}"
