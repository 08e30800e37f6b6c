"""The persona's guided form writes the system prompt in the language the admin picks, and staff try a
draft persona in a test chat before saving it: nothing of the test chat is stored or sent."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from tgsim import Simulator

from models import Message, Persona
from services import persona
from services.tenant_settings import PersonaForm
from tests.desk_helpers import Desk, manager_desk
from tests.fake_ai import FakeAI
from tests.miniapp_helpers import app_client

FORM = {"language": "en", "about": "We bake sourdough bread and cakes to order.", "tone": "professional",
        "avoid": "politics\n- our competitors\n", "handoff": ["asks", "orders"], "handoff_other": "wholesale orders"}


@pytest.fixture
async def desk(database_url: str, sim: Simulator, ai: FakeAI) -> AsyncIterator[Desk]:
    async with manager_desk(database_url, sim, ai) as running:
        yield running


def test_every_word_of_the_template_is_in_the_language_picked_and_the_admins_words_as_written() -> None:
    def marked(locale: str, message: str) -> str:
        return f"<{locale}>{message}"

    form = PersonaForm.model_validate({**FORM, "language": "uz"})
    text = persona.compose(form, "Sunny Bakery", marked)
    ours = [line.removeprefix("## ").removeprefix("- ") for line in text.splitlines() if line]
    theirs = {"We bake sourdough bread and cakes to order.", "politics", "our competitors", "wholesale orders"}
    assert {line for line in ours if not line.startswith("<uz>")} == theirs
    assert "Sunny Bakery" in text.splitlines()[0]
    assert "`handoff_to_human`" in text  # the tool's name is never translated
    assert "<en>" not in text
    assert "<ru>" not in text


async def test_the_form_writes_the_prompt_and_bad_forms_are_refused(desk: Desk, sim: Simulator) -> None:
    async with app_client(desk.frontdesk, sim, desk.mia["id"]) as mia:
        overview = await mia.get("/api/persona")
        assert overview["form"]["language"] == "en"  # never saved: the defaults, in Mia's language
        assert overview["form_writes_text"] is True  # the built-in default is there to be replaced
        text = (await mia.post("/api/persona/compose", {"form": FORM}))["text"]
        assert text.startswith("You are the front desk assistant of this business.")
        assert "## About the business\nWe bake sourdough bread and cakes to order." in text
        assert "clear, precise and calm" in text
        assert "- politics\n- our competitors" in text
        assert "- the customer wants to place, change or cancel an order or a booking\n- wholesale orders" in text
        assert "upset" not in text  # not ticked
        for bad in ({**FORM, "tone": "rude"}, {**FORM, "language": "de"}, {**FORM, "about": "x" * 2001},
                    {**FORM, "handoff": ["never"]}):
            status, body = await mia.call("POST", "/api/persona/compose", {"form": bad})
            assert status == 400, body
            assert "error" in body


async def test_a_version_saved_from_the_form_keeps_the_form_and_the_ai_answers_with_it(
        desk: Desk, sim: Simulator, ai: FakeAI) -> None:
    async with app_client(desk.frontdesk, sim, desk.mia["id"]) as mia:
        text = (await mia.post("/api/persona/compose", {"form": FORM}))["text"]
        await mia.post("/api/persona/versions", {"text": text, "base_version": 0, "form": FORM})
        overview = await mia.get("/api/persona")
        assert (overview["text"], overview["form"], overview["form_writes_text"]) == (text, FORM, True)
        await mia.post("/api/persona/versions", {"text": text + "\nSign as Pat.", "base_version": 1})
        overview = await mia.get("/api/persona")
        assert (overview["form"], overview["form_writes_text"]) == (FORM, False)  # edited by hand since
    ann = sim.create_user("Ann")
    sim.send_text(ann["id"], "Hello")
    await sim.wait_for_messages(ann["id"], timeout=10)
    assert str(ai.requests[-1]["messages"][0]["content"]).startswith(text + "\nSign as Pat.")


async def test_staff_try_a_draft_persona_in_a_chat_and_nothing_is_kept(
        desk: Desk, sim: Simulator, ai: FakeAI) -> None:
    ai.script.reply = "Arr, we bake bread!"
    async with app_client(desk.frontdesk, sim, desk.mia["id"]) as mia:
        tried = await mia.post("/api/persona/try", {
            "question": "What do you sell?", "text": "You are a pirate baker.",
            "earlier": [{"author": "customer", "text": "Hi there"}, {"author": "assistant", "text": "Ahoy!"}]})
        assert (tried["source"], tried["text"]) == ("ai", "Arr, we bake bread!")
        messages = ai.requests[-1]["messages"]
        assert str(messages[0]["content"]).startswith("You are a pirate baker.")
        assert [(m["role"], m["content"]) for m in messages[1:]] == [
            ("user", "Hi there"), ("assistant", "Ahoy!"), ("user", "What do you sell?")]
        # Without a draft: the active persona (the built-in default here).
        await mia.post("/api/persona/try", {"question": "And cakes?"})
        assert str(ai.requests[-1]["messages"][0]["content"]).startswith(persona.default_persona())
        for bad in ({"question": "Hi", "text": "   "}, {"question": ""}, {"question": "Hi", "text": "x" * 20_001},
                    {"question": "Hi", "earlier": [{"author": "boss", "text": "Hi"}]}):
            status, body = await mia.call("POST", "/api/persona/try", bad)
            assert status == 400, (bad, body)
    assert await Persona.all().count() == 0
    assert await Message.all().count() == 0


async def test_without_an_ai_the_persona_page_says_it_is_not_used(database_url: str, sim: Simulator) -> None:
    async with manager_desk(database_url, sim, None) as desk, app_client(desk.frontdesk, sim, desk.mia["id"]) as mia:
        assert (await mia.get("/api/persona"))["ai_enabled"] is False
