"""Photos customers send: a vision model (AI_VISION_MODELS) sees them with their caption; without one,
a person does (issue 18)."""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

import pytest
from tgsim import Simulator

from models import AuthorKind, Message, Usage, UsageSlot
from tests.conftest import Frontdesk, outbox_idle
from tests.fake_ai import FakeAI

# A real 1×1 PNG, as a customer's photo.
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGA"
                       "hKmMIQAAAABJRU5ErkJggg==")


def _image_parts(request: dict[str, Any]) -> list[str]:
    """The data URLs of the images in the request's last (the customer's) message."""
    content = request["messages"][-1]["content"]
    if not isinstance(content, list):
        return []
    return [part["image_url"]["url"] for part in content if part.get("type") == "image_url"]


def _text_parts(request: dict[str, Any]) -> list[str]:
    content = request["messages"][-1]["content"]
    return [part["text"] for part in content if part.get("type") == "text"] if isinstance(content, list) else []


@pytest.mark.parametrize("frontdesk_settings", [{"AI_VISION_MODELS": "backup-model"}], indirect=True)
async def test_a_photo_with_a_caption_reaches_a_vision_model_as_an_image(
        frontdesk_settings: dict[str, Any], frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ai.script.reply = "That is a tiny transparent square."
    ann = sim.create_user("Ann", language_code="en")
    sim.send_photo(ann["id"], content=PNG, caption="What is on this picture?")
    [answer] = await sim.wait_for_messages(ann["id"], timeout=30)
    assert answer["text"] == "That is a tiny transparent square."
    [request] = ai.requests
    assert request["model"] == "backup-model"  # main-model cannot see: it is not asked at all
    assert _image_parts(request) == [f"data:image/png;base64,{base64.b64encode(PNG).decode()}"]
    assert _text_parts(request) == ["What is on this picture?"]


async def test_without_a_vision_model_a_photo_goes_to_a_person(
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ann = sim.create_user("Ann", language_code="en")
    sim.send_photo(ann["id"], content=PNG, caption="Is this the right part?")
    [notice] = await sim.wait_for_messages(ann["id"], timeout=30)
    assert notice["text"].startswith("I can't see images, so I've passed your conversation to a person.")
    assert ai.requests == []  # no model answered as if it had seen it


@pytest.mark.parametrize("frontdesk_settings", [{"AI_VISION_MODELS": "backup-model", "CUSTOMER_DAILY_IMAGES": "1",
                                                 "AI_PRICES": "backup-model=1000/2000"}],
                         indirect=True)
async def test_past_the_daily_images_a_photo_goes_to_people_with_a_notice_and_images_are_counted(
        frontdesk_settings: dict[str, Any], frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ai.script.reply = "A tiny square."
    ann = sim.create_user("Ann", language_code="en")
    sim.send_photo(ann["id"], content=PNG, caption="What is this?")
    [answer] = await sim.wait_for_messages(ann["id"], timeout=30)
    assert answer["text"] == "A tiny square."
    sim.send_photo(ann["id"], content=PNG, caption="And this?")
    _answer, notice = await sim.wait_for_messages(ann["id"], 2, timeout=30)
    assert notice["text"].startswith("You've reached today's limit of images I can look at, so I've passed your "
                                     "conversation to a person.")
    assert len(ai.requests) == 1  # the second image reached no model
    await outbox_idle(sim)
    usage = await Usage.get(user__telegram_id=ann["id"])
    assert (usage.images, usage.ai_messages) == (1, 1)
    vision_cost = Decimal(str((await Message.get(author_kind=AuthorKind.AI)).ai_meta["cost"]))
    assert vision_cost > 0
    assert usage.cost == vision_cost
    [slot] = await UsageSlot.all()
    assert (slot.images, slot.ai_messages) == (1, 1)
