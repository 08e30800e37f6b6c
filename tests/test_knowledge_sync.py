"""Websites as knowledge, kept in sync: a local site is crawled through its links and sitemap, a changed
page replaces its passages, a page that is gone takes its passages with it, an unchanged one costs a
304; and the operator's CLI indexes a source or says in one line why it cannot."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web

from models import Bot, KnowledgeChunk, KnowledgePage, KnowledgeSource, OutboxJob, Role, SourceKind, SourceStatus, User
from services.embeddings import LocalEmbedder
from services.knowledge import QUEUE
from services.knowledge_index import KnowledgeIndex
from services.knowledge_sources import SYNC_JOB, KnowledgeSources, SourcePolicy
from services.retrieval import retrieve
from services.web_sources import FetchPolicy
from tests.conftest import ROOT, TOKEN

pytestmark = pytest.mark.usefixtures("database")


def page(title: str, body: str, links: str = "") -> str:
    return (f"<html><head><title>{title}</title></head><body><nav><a href='/'>Home</a> {links}</nav>"
            f"<main><article><h1>{title}</h1><p>{body}</p></article></main>"
            "<footer>© Bean There · cookies</footer></body></html>")


@dataclass
class Site:
    """The shop's website: pages by path, what each request got, ETags for conditional requests."""

    pages: dict[str, str] = field(default_factory=dict)
    sitemap: list[str] = field(default_factory=list)
    requests: list[tuple[str, int]] = field(default_factory=list)
    url: str = ""
    on_request: dict[str, Callable[[], Awaitable[None]]] = field(default_factory=dict)  # path -> what happens

    async def handle(self, request: web.Request) -> web.Response:
        path = request.path
        if path == "/robots.txt":
            return web.Response(text="User-agent: *\nDisallow: /private\n")
        if path == "/sitemap.xml":
            urls = "".join(f"<url><loc>{self.url}{item}</loc></url>" for item in self.sitemap)
            return web.Response(text=f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/'
                                     f'sitemap/0.9">{urls}</urlset>', content_type="application/xml")
        if path in self.on_request:
            await self.on_request.pop(path)()
        html = self.pages.get(path)
        if html is None:
            self.requests.append((path, 404))
            return web.Response(status=404, text="not here")
        etag = f'"{hash(html) & 0xFFFFFFFF:x}"'
        if request.headers.get("If-None-Match") == etag:
            self.requests.append((path, 304))
            return web.Response(status=304, headers={"ETag": etag})
        self.requests.append((path, 200))
        return web.Response(text=html, content_type="text/html", headers={"ETag": etag})


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    shop = Site()
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", shop.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    shop.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    shop.pages = {
        "/": page("Bean There", "A small coffee shop on Roast Street.",
                  "<a href='/delivery'>Delivery</a> <a href='/private/staff'>Staff</a> <a href='/gone'>Old</a>"),
        "/delivery": page("Delivery", "We deliver within 5 km. Delivery costs 2 dollars; orders over 20 dollars "
                                      "travel free."),
        "/catering": page("Catering", "We bring coffee and pastries to offices for 10 to 200 people."),
        "/private/staff": page("Staff only", "The alarm code is 1234."),
    }
    shop.sitemap = ["/catering"]  # linked from nowhere: found through the sitemap
    yield shop
    await runner.cleanup()


@pytest.fixture
async def sources() -> AsyncIterator[KnowledgeSources]:
    embedder = LocalEmbedder()
    # The test site is on this machine: private addresses allowed, as the operator may allow them.
    policy = SourcePolicy(fetch=FetchPolicy(timeout=10), staff_may_fetch_private=True)
    yield KnowledgeSources(embedder, KnowledgeIndex(embedder), policy)
    await embedder.close()


async def texts(source_id: int) -> str:
    return " ".join(str(text) for text in
                    await KnowledgeChunk.filter(source_id=source_id).order_by("id").values_list("text", flat=True))


async def page_urls(source_id: int) -> set[str]:
    return {str(url) for url in await KnowledgePage.filter(source_id=source_id).values_list("url", flat=True)}


async def test_a_site_is_read_through_its_links_and_sitemap_within_robots_txt(
        sources: KnowledgeSources, site: Site) -> None:
    bot = await Bot.create(telegram_id=9401, username="shop9401")
    source = await sources.add_url(bot.id, site.url + "/", whole_site=True)
    [job] = await OutboxJob.filter(queue=QUEUE, kind=SYNC_JOB)
    await sources.sync_job(job)
    synced = await KnowledgeSource.get(id=source.id)
    assert (synced.status, synced.kind) == (SourceStatus.READY, SourceKind.SITE)
    assert await page_urls(source.id) == {site.url + "/", site.url + "/delivery", site.url + "/catering"}
    assert "alarm code" not in await texts(source.id)  # robots.txt said no
    assert "cookies" not in await texts(source.id)  # a page's footer is not its content
    assert synced.next_sync_at is not None
    assert synced.next_sync_at > datetime.now(UTC) + timedelta(hours=23)
    [best, *_] = await retrieve(bot.id, "сколько стоит доставка?", index=sources.index)
    assert best.url == site.url + "/delivery"


async def test_a_resync_replaces_a_changed_page_drops_a_gone_one_and_asks_only_for_changes(
        sources: KnowledgeSources, site: Site) -> None:
    bot = await Bot.create(telegram_id=9401, username="shop9401")
    source = await sources.add_url(bot.id, site.url + "/", whole_site=True)
    await sources.sync(await KnowledgeSource.get(id=source.id))
    site.pages["/delivery"] = page("Delivery", "Delivery is now free across the whole city, every day.")
    del site.pages["/catering"]
    site.requests.clear()
    await sources.sync(await KnowledgeSource.get(id=source.id))
    assert ("/", 304) in site.requests  # unchanged: nothing read again
    text = await texts(source.id)
    assert "free across the whole city" in text
    assert "costs 2 dollars" not in text  # the old text is gone, not kept beside the new
    assert "pastries" not in text
    assert site.url + "/catering" not in await page_urls(source.id)
    [best, *_] = await retrieve(bot.id, "is delivery free?", index=sources.index)
    assert "free across the whole city" in best.text


async def test_a_source_deleted_while_it_syncs_gets_nothing_written_under_it(
        sources: KnowledgeSources, site: Site) -> None:
    bot = await Bot.create(telegram_id=9401, username="shop9401")
    source = await sources.add_url(bot.id, site.url + "/", whole_site=True)

    async def staff_delete_it() -> None:
        await sources.remove(bot.id, source.id)

    site.on_request["/delivery"] = staff_delete_it  # the second page: the first is written by then
    await sources.sync(await KnowledgeSource.get(id=source.id))
    assert ("/delivery", 200) in site.requests
    assert not await KnowledgeSource.exists(id=source.id)
    assert await KnowledgePage.all().count() == 0
    assert await KnowledgeChunk.all().count() == 0


async def test_a_due_sync_is_queued_once_however_many_instances_look(sources: KnowledgeSources, site: Site) -> None:
    bot = await Bot.create(telegram_id=9401, username="shop9401")
    source = await sources.add_url(bot.id, site.url + "/delivery", whole_site=False)
    await KnowledgeSource.filter(id=source.id).update(next_sync_at=datetime.now(UTC) - timedelta(minutes=1))
    other_instance = KnowledgeSources(sources.embedder, sources.index, sources.policy)
    assert await sources.queue_due_syncs() + await other_instance.queue_due_syncs() == 1
    assert await OutboxJob.filter(queue=QUEUE, kind=SYNC_JOB).count() == 2  # the first sync, and the due one


async def test_a_start_page_that_cannot_be_read_fails_with_its_reason(sources: KnowledgeSources, site: Site) -> None:
    bot = await Bot.create(telegram_id=9401, username="shop9401")
    source = await sources.add_url(bot.id, site.url + "/nothing-here", whole_site=False)
    await sources.sync(await KnowledgeSource.get(id=source.id))
    failed = await KnowledgeSource.get(id=source.id)
    assert failed.status == SourceStatus.FAILED
    assert failed.error["code"] == "http_error"
    assert failed.error["status"] == 404


async def test_staff_sources_stop_reading_private_addresses_once_the_operator_turns_them_off(
        sources: KnowledgeSources, site: Site) -> None:
    bot = await Bot.create(telegram_id=9401, username="shop9401")
    manager = await User.create(bot=bot, telegram_id=77, first_name="Mia", role=Role.MANAGER)
    source = await sources.add_url(bot.id, site.url + "/", whole_site=False, user=manager)  # allowed then
    await sources.sync(await KnowledgeSource.get(id=source.id))
    assert (await KnowledgeSource.get(id=source.id)).status == SourceStatus.READY
    stricter = KnowledgeSources(sources.embedder, sources.index, replace(sources.policy, staff_may_fetch_private=False))
    site.requests.clear()
    await stricter.sync(await KnowledgeSource.get(id=source.id))
    refused = await KnowledgeSource.get(id=source.id)
    assert (refused.status, refused.error["code"]) == (SourceStatus.FAILED, "private_address")
    assert site.requests == []  # nothing reached the private address
    cli_source = await sources.add_url(bot.id, site.url + "/delivery", whole_site=False, allow_private=True)
    await stricter.sync(await KnowledgeSource.get(id=cli_source.id))  # the operator's own: as added
    assert (await KnowledgeSource.get(id=cli_source.id)).status == SourceStatus.READY


def run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": f"sqlite://{tmp_path / 'cli.sqlite3'}", "BOT_TOKEN": TOKEN,
           "ENCRYPTION_KEY": "q0kPZ0Uo3s9mAGgdPHP2v6nAhQ7c3b6uVJk1yZ1o1pE=", "LOG_LEVEL": "WARNING"}
    return subprocess.run([sys.executable, "-m", "bot", "kb", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def test_the_cli_indexes_a_document_and_refuses_a_bad_one_in_one_line(tmp_path: Path) -> None:
    menu = tmp_path / "menu.md"
    menu.write_text("# Menu\n\n## Drinks\nEspresso costs 2 dollars.\n", encoding="utf-8")
    added = run_cli(tmp_path, "add", str(menu))
    assert added.returncode == 0, added.stderr
    assert added.stdout.startswith("source 1 is ready: Menu (1 passages)")
    broken = tmp_path / "scan.pdf"
    broken.write_bytes(os.urandom(2048))
    refused = run_cli(tmp_path, "add", str(broken))
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        f"error: {broken}: the PDF file cannot be read: it is damaged or not really a PDF file"]
    listed = run_cli(tmp_path, "sources")
    assert [line.split("\t")[:3] for line in listed.stdout.splitlines()] == [["1", "file", "ready"]]
    removed = run_cli(tmp_path, "remove", "1")
    assert (removed.returncode, removed.stdout.strip()) == (0, "removed source 1")
    assert run_cli(tmp_path, "sources").stdout == ""
