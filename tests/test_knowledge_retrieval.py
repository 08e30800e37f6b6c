"""Which FAQ item reaches the AI for a customer's question, on the embedded default model.

The FAQs are parts of the evaluation set's (bench/data/knowledge_eval.json), and the questions are
its customers' own, which the scoring before 2026-12 (cosine + 0.06 × the words held) put under
another item: Uzbek and Russian words with other endings than the FAQ's, and items that are near
every question ("hubs") coming first.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from models import Bot
from services import knowledge
from services.embeddings import LocalEmbedder
from services.knowledge_index import KnowledgeIndex
from services.knowledge_sources import KnowledgeSources
from services.retrieval import retrieve

pytestmark = pytest.mark.usefixtures("database")

EVAL = Path(__file__).resolve().parent.parent / "bench" / "data" / "knowledge_eval.json"
ITEMS = {item["id"]: item for item in json.loads(EVAL.read_text(encoding="utf-8"))["items"]}
FAQS = {
    "uz": ["hours", "holiday_hours", "loyalty", "pets", "catering", "beans", "order_ahead", "parking", "events",
           "address"],
    "ru": ["contact", "delivery_area", "lost_found", "outdoor", "beans", "prices", "subscription", "parking",
           "accessibility"],
}


@pytest.fixture
async def embedder() -> AsyncIterator[LocalEmbedder]:
    model = LocalEmbedder()
    yield model
    await model.close()


@pytest.mark.parametrize(("language", "question", "expected"), [
    ("uz", "shanba kuni qachon ochilasiz", "hours"),  # not the holiday hours
    ("uz", "turkaga maydalab bera olasizlarmi", "beans"),  # grinding for a cezve: not ordering ahead
    ("uz", "kirish eshigi qayerda, topolmayapman", "address"),  # the entrance: not ordering ahead
    ("ru", "куда позвонить в кофейню", "contact"),  # not the delivery area
    ("ru", "почём капучино?", "prices"),  # not the beans subscription
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
