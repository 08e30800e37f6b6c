"""Answers drawn from documents and web pages, end to end: the running app indexes a source with its own
worker and the real embedding model, a customer asks in other words (on Telegram through tgsim, or in
the website widget), and the answer names its sources; staff see the passages the AI was given."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import aiohttp
import pytest
from aiohttp import web
from tgsim import Simulator

from models import AuthorKind, KnowledgeSource, Message, SourceStatus
from services.knowledge_sources import KnowledgeSources
from tests.conftest import Frontdesk, eventually, formatted
from tests.fake_ai import FakeAI
from tests.widget_helpers import is_answer, open_widget

MENU = b"""# Bean There: menu and delivery

## Drinks
Espresso costs 2 dollars and a cappuccino 3 dollars. Every drink can be made with oat, almond or soy milk.

## Delivery
We deliver within 5 km of Roast Street. Delivery costs 2 dollars, and orders over 20 dollars travel free.
"""

CATERING_PAGE = """<html><head><title>Catering | Bean There</title></head><body>
<nav><a href="/">Home</a> <a href="/catering">Catering</a></nav>
<main><article><h1>Catering</h1>
<h2>Office breakfasts</h2>
<p>We bring coffee, tea and fresh pastries to offices for groups of 10 to 200 people. Order at least two
working days ahead; a manager confirms the menu and the price by phone.</p>
</article></main><footer>© Bean There. Cookie settings.</footer></body></html>"""


def sources_of(frontdesk: Frontdesk) -> KnowledgeSources:
    from miniapp.knowledge_api import KNOWLEDGE

    sources = frontdesk.app[KNOWLEDGE].sources
    assert sources is not None
    return sources


async def until_ready(source_id: int, within: float = 60.0) -> KnowledgeSource:
    """The source once the app's knowledge worker has finished with it."""
    async def settled() -> bool:
        return await KnowledgeSource.filter(
            id=source_id, status__in=[SourceStatus.READY, SourceStatus.FAILED]).exists()

    await eventually(settled, f"source {source_id} to be indexed", within)
    return await KnowledgeSource.get(id=source_id)


async def recorded_answer() -> Message:
    """The AI's answer as stored: it is recorded right after Telegram has it."""
    await eventually(lambda: Message.exists(author_kind=AuthorKind.AI), "the answer to be recorded")
    return await Message.get(author_kind=AuthorKind.AI)


def cite_passage(heading: str) -> Callable[[list[dict[str, Any]]], str]:
    """A model that answers from the passage under `heading` and marks it, as the prompt asks."""

    def answer(messages: list[dict[str, Any]]) -> str:
        system = str(messages[0]["content"])
        for number, label in re.findall(r"^\[(\d+)\] (.+)$", system, re.MULTILINE):
            if heading in label:
                return f"Here is what we have: see the details [{number}]."
        return "I don't know."

    return answer


@pytest.fixture
async def shop_site() -> AsyncIterator[str]:
    """The shop's own website, served on this machine."""
    async def catering(request: web.Request) -> web.Response:
        return web.Response(text=CATERING_PAGE, content_type="text/html")

    async def robots(request: web.Request) -> web.Response:
        return web.Response(text="User-agent: *\nAllow: /\n")

    app = web.Application()
    app.router.add_get("/catering", catering)
    app.router.add_get("/robots.txt", robots)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_an_answer_from_a_document_names_it_on_telegram_and_staff_see_the_passages(
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    from models import Bot

    bot = await Bot.all().order_by("id").first()
    assert bot is not None
    source = await sources_of(frontdesk).add_file(bot.id, "menu.md", MENU)
    assert (await until_ready(source.id)).status == SourceStatus.READY
    ai.script.answer_messages = cite_passage("Delivery")
    ann = sim.create_user("Ann")
    sim.send_text(ann["id"], "how much do you charge to bring an order to my house?")
    [answer] = await sim.wait_for_messages(ann["id"], timeout=15)
    assert answer["text"] == ("Here is what we have: see the details.\n\n"
                              "Sources: Bean There: menu and delivery")
    assert formatted(answer, "italic") == ["Sources:"]
    stored = await recorded_answer()
    assert stored.ai_meta["sources"] == [{"title": "Bean There: menu and delivery", "url": ""}]
    passages = cast(list[dict[str, Any]], stored.ai_meta["passages"])
    labels = [passage["label"] for passage in passages]
    assert "Bean There: menu and delivery › Delivery" in labels
    assert "[" not in stored.text  # the marks are gone from what is kept too


async def test_an_answer_from_a_web_page_links_to_it_in_the_widget(
        frontdesk: Frontdesk, ai: FakeAI, shop_site: str) -> None:
    from models import Bot

    bot = await Bot.all().order_by("id").first()
    assert bot is not None
    source = await sources_of(frontdesk).add_url(bot.id, shop_site + "/catering", whole_site=False,
                                                  allow_private=True)  # the shop is on this machine
    ready = await until_ready(source.id)
    assert ready.status == SourceStatus.READY
    assert ready.title.startswith("Catering")  # the page's <title>, as the extractor reads it
    ai.script.answer_messages = cite_passage("Office breakfasts")
    async with aiohttp.ClientSession() as http:
        visitor, _ = await open_widget(http, frontdesk.url)
        await visitor.send_message("можете привезти кофе с выпечкой к нам в офис на 30 человек?")
        answer = await visitor.until(lambda frame: is_answer(frame) and frame["author"] == "ai", within=20)
        await visitor.socket.close()
    assert answer["text"] == "Here is what we have: see the details."
    assert answer["sources"] == [{"title": ready.title, "url": shop_site + "/catering"}]


async def test_an_answer_from_the_faq_alone_names_no_sources(frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    from models import Bot
    from services.knowledge import Entry, import_entries

    bot = await Bot.all().order_by("id").first()
    assert bot is not None
    await import_entries(bot.id, [Entry("Do you have Wi-Fi?", "Yes: BeanThere-Guest.")])
    ai.script.reply = "Yes, we do [1]."
    ann = sim.create_user("Ann")
    sim.send_text(ann["id"], "can I get online at your place?")
    [answer] = await sim.wait_for_messages(ann["id"], timeout=15)
    assert answer["text"] == "Yes, we do."


async def test_a_web_page_source_is_a_link_on_telegram(frontdesk: Frontdesk, sim: Simulator, ai: FakeAI,
                                                       shop_site: str) -> None:
    from models import Bot

    bot = await Bot.all().order_by("id").first()
    assert bot is not None
    source = await sources_of(frontdesk).add_url(bot.id, shop_site + "/catering", whole_site=False,
                                                  allow_private=True)  # the shop is on this machine
    ready = await until_ready(source.id)
    assert ready.status == SourceStatus.READY
    ai.script.answer_messages = cite_passage("Office breakfasts")
    ann = sim.create_user("Ann")
    sim.send_text(ann["id"], "ofisga nonushta buyurtma qilsa bo'ladimi?")
    [answer] = await sim.wait_for_messages(ann["id"], timeout=15)
    assert answer["text"].endswith(f"Sources: {ready.title}")
    [link] = [entity for entity in answer.get("entities", []) if entity["type"] == "text_link"]
    assert link["url"] == shop_site + "/catering"


async def test_an_embeddings_endpoint_finds_knowledge_by_meaning_and_words_go_on_while_it_is_down(
        database_url: str, sim: Simulator, ai: FakeAI) -> None:
    from models import Bot, KnowledgeChunk
    from services.retrieval import retrieve
    from tests.conftest import free_port, frontdesk_environment, running_frontdesk

    env = frontdesk_environment(database_url, sim, ai, free_port(), EMBEDDING_BASE_URL=ai.base_url,
                                EMBEDDING_MODEL="e5-served", EMBEDDING_API_KEY="embedding-key")
    async with running_frontdesk(env) as frontdesk:
        from miniapp.knowledge_api import KNOWLEDGE

        tools = frontdesk.app[KNOWLEDGE]
        assert tools.sources is not None
        assert tools.index is not None
        bot = await Bot.all().order_by("id").first()
        assert bot is not None
        source = await tools.sources.add_file(bot.id, "menu.md", MENU)
        assert (await until_ready(source.id)).status == SourceStatus.READY
        models = {str(name) for name in
                  await KnowledgeChunk.filter(source_id=source.id).values_list("embedding_model", flat=True)}
        assert models == {f"e5-served@127.0.0.1:{ai.port}"}
        assert ai.embedding_requests[0]["model"] == "e5-served"
        [best, *_] = await retrieve(bot.id, "сколько стоит привезти заказ домой?", index=tools.index)
        assert (best.heading, best.similarity is not None) == ("Delivery", True)

        ai.script.failing_models["e5-served"] = 503  # the endpoint goes down: words still find knowledge
        [by_words, *_] = await retrieve(bot.id, "the cappuccino price, please", index=tools.index)
        assert (by_words.heading, by_words.similarity) == ("Drinks", None)


async def test_an_answer_that_uses_no_passage_names_no_source(frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    from models import Bot

    bot = await Bot.all().order_by("id").first()
    assert bot is not None
    source = await sources_of(frontdesk).add_file(bot.id, "menu.md", MENU)
    assert (await until_ready(source.id)).status == SourceStatus.READY
    ann = sim.create_user("Ann")
    ai.script.reply = "Hello Ann! How can I help you today?"  # the menu's passages were given, not used
    sim.send_text(ann["id"], "hi there")
    [greeting] = await sim.wait_for_messages(ann["id"], timeout=15)
    assert greeting["text"] == "Hello Ann! How can I help you today?"
    ai.script.reply = "A cappuccino costs 3 dollars, and we can make it with oat milk."  # used, but unmarked
    sim.send_text(ann["id"], "what about a capuccino with oat milk")
    await sim.wait_until(lambda: len(sim.chat_history(ann["id"])) >= 4, 15, "the second answer")
    assert sim.chat_history(ann["id"])[-1]["text"].endswith("Sources: Bean There: menu and delivery")
