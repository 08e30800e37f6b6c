"""The bar for a direct answer (a knowledge-base answer sent without the AI): a customer who asked an
item's own question gets it; a close but wrong question, or one nothing answers, never gets one.
The questions are the evaluation set's (bench/data/knowledge_eval.json), in English, Russian and Uzbek."""

from __future__ import annotations

import json
from typing import Any

import pytest

from models import Bot
from services import knowledge
from services.answering import AnswerPolicy
from tests.conftest import ROOT

pytestmark = pytest.mark.usefixtures("database")

EVAL: dict[str, Any] = json.loads((ROOT / "bench" / "data" / "knowledge_eval.json").read_text(encoding="utf-8"))
BAR = AnswerPolicy().kb_direct_threshold


async def faq_in(language: str) -> Bot:
    bot = await Bot.create(telegram_id=9300 + ("en", "ru", "uz").index(language), username=f"faq_{language}")
    await knowledge.import_entries(bot.id, [knowledge.Entry(item[language]["question"], item[language]["answer"])
                                            for item in EVAL["items"]])
    return bot


@pytest.mark.parametrize("language", ["en", "ru", "uz"])
async def test_an_items_own_question_is_answered_directly(language: str) -> None:
    bot = await faq_in(language)
    for item in EVAL["items"]:
        question = item[language]["question"]
        for asked in (question, question.lower().rstrip("?"), f"{question} Thanks!"):
            hit = await knowledge.direct_answer(bot.id, asked, BAR)
            assert hit is not None, asked
            assert hit.item.question == question, asked


@pytest.mark.parametrize("language", ["en", "ru", "uz"])
async def test_a_close_but_wrong_question_gets_no_direct_answer(language: str) -> None:
    bot = await faq_in(language)
    misses = [entry["text"] for entry in EVAL["near_misses"] + EVAL["out_of_scope"] if entry["lang"] == language]
    assert len(misses) >= 13
    for text in misses:
        assert await knowledge.direct_answer(bot.id, text, BAR) is None, text
    # One word swapped keeps most of the words: the bar still holds.
    assert await knowledge.direct_answer(bot.id, "do you sell SIM cards", BAR) is None


@pytest.mark.parametrize("language", ["en", "ru", "uz"])
async def test_a_reworded_question_is_never_answered_with_another_items_answer(language: str) -> None:
    bot = await faq_in(language)
    for item in EVAL["items"]:
        for asked in item[language]["asked"]:
            hit = await knowledge.direct_answer(bot.id, asked, BAR)
            assert hit is None or hit.item.question == item[language]["question"], asked
