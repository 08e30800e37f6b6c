"""Which FAQ item reaches the AI for a customer's question, on the embedded default model.

The FAQs are parts of the evaluation set's (bench/data/knowledge_eval.json), and the questions are
its customers' own, which the scoring before 2026-12 (cosine + 0.06 × the words held) put under
another item: words with other endings than the FAQ's, and items near every question ("hubs")
coming first.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from models import Bot
from services import knowledge
from services.embeddings import LocalEmbedder
from services.knowledge_index import KnowledgeIndex
from services.knowledge_sources import KnowledgeSources
from services.retrieval import retrieve
from tests.conftest import eventually

pytestmark = pytest.mark.usefixtures("database")

EVAL = Path(__file__).resolve().parent.parent / "bench" / "data" / "knowledge_eval.json"
ITEMS = {item["id"]: item for item in json.loads(EVAL.read_text(encoding="utf-8"))["items"]}
FAQS = {
    "uz": ["hours", "holiday_hours", "loyalty", "pets", "catering", "reusable_cup", "accessibility", "payment",
           "refunds", "table_reservation", "jobs"],
    "ru": ["address", "order_ahead", "parking", "halal", "payment", "gift_cards", "prices", "subscription",
           "lost_found", "accessibility", "contact"],
    "en": ["address", "accessibility", "delivery_area", "payment", "gift_cards", "beans", "subscription",
           "private_room", "catering"],
}


@pytest.fixture
async def embedder() -> AsyncIterator[LocalEmbedder]:
    model = LocalEmbedder()
    yield model
    await model.close()


@pytest.mark.parametrize(("language", "question", "expected"), [
    ("uz", "shanba kuni qachon ochilasiz", "hours"),
    ("uz", "pandus bormi? onam xodunok bilan yuradi", "accessibility"),
    ("uz", "click orqali to'lasa bo'ladimi", "payment"),
    ("ru", "почём капучино?", "prices"),
    ("ru", "только наличка или картой тоже можно", "payment"),
    ("ru", "потеряла ключи у вас в кафе", "lost_found"),
    ("en", "send me your location pls", "address"),
    ("en", "can I buy a bag of your coffee to take home", "beans"),
    ("en", "want to celebrate my birthday at your place with 15 friends", "private_room"),
])
async def test_a_question_in_the_customers_own_words_reaches_its_faq_item(
        embedder: LocalEmbedder, language: str, question: str, expected: str) -> None:
    bot = await Bot.create(telegram_id=9301, username="shop9301")
    await knowledge.import_entries(bot.id, [
        knowledge.Entry(ITEMS[key][language]["question"], ITEMS[key][language]["answer"], ITEMS[key]["tags"])
        for key in FAQS[language]])
    index = KnowledgeIndex(embedder)
    assert await KnowledgeSources(embedder, index).embed_items(bot.id) == len(FAQS[language])
    [best, *_] = await retrieve(bot.id, question, index=index)
    assert best.title == ITEMS[expected][language]["question"]


async def test_at_rush_hour_a_question_that_would_wait_for_the_embedder_is_found_by_its_words(
        embedder: LocalEmbedder) -> None:
    bot = await Bot.create(telegram_id=9302, username="shop9302")
    await knowledge.import_entries(bot.id, [
        knowledge.Entry(ITEMS[key]["en"]["question"], ITEMS[key]["en"]["answer"], ITEMS[key]["tags"])
        for key in FAQS["en"]])
    index = KnowledgeIndex(embedder, max_wait=0.5)
    assert await KnowledgeSources(embedder, index).embed_items(bot.id) == len(FAQS["en"])
    others = [f"customer {n} asks when the gift cards can be used" for n in range(60)]
    rush = asyncio.ensure_future(embedder.queries(others))  # many questions ahead of this one
    try:
        await eventually(_holds(lambda: embedder.backlog() > 0.5), "the embedder behind")
        [best, *_] = await retrieve(bot.id, "which payment methods do you accept", index=index)
        assert not rush.done()  # answered while the questions ahead were still being embedded
    finally:
        rush.cancel()
    assert best.title == ITEMS["payment"]["en"]["question"]
    assert index.words_only_when_busy == 1
    [best_when_idle, *_] = await retrieve(bot.id, "send me your location pls", index=index)  # by meaning again
    assert best_when_idle.title == ITEMS["address"]["en"]["question"]
    assert index.words_only_when_busy == 1


def _holds(condition: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return condition()

    return check
