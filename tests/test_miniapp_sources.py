"""Documents and websites as knowledge, through the Mini App's API: staff upload a file or add a web
address, watch it being indexed, switch it off, re-sync it and delete it; the real app runs the
`knowledge` queue's jobs with the real embedding model, and the websites are served by the test."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from tgsim import Simulator

from models import AuditLog, Bot, KnowledgeChunk, KnowledgePage, KnowledgeSource, OutboxJob, SourceKind, SourceStatus
from services.knowledge import QUEUE
from tests.conftest import eventually, free_port
from tests.desk_helpers import Desk, manager_desk
from tests.miniapp_helpers import AppClient, app_client

SOURCES = "/api/knowledge/sources"
WAIT = 60.0  # seconds: the outcome of a job, on two busy cores

MENU = """# Bean There: menu and delivery

## Drinks
Espresso costs 2 dollars and a cappuccino 3 dollars. Every drink can be made with oat, almond or soy milk.
Tea comes in black, green and mint, each 2 dollars a pot.

## Delivery
We deliver within 5 km of Roast Street. Delivery costs 2 dollars, and orders over 20 dollars travel free.
A courier usually arrives within 30 to 45 minutes.

## Loyalty card
Every sixth coffee is on us: ask for a stamp card at the till.

## Opening hours
Weekdays from 7 to 19, weekends from 9 to 17. We close on public holidays.
"""


class Site:
    """A small website on 127.0.0.1: pages by path (anything else is 404), and the paths asked for.
    A path in `held` waits for `release` before it answers."""

    def __init__(self, pages: dict[str, str]) -> None:
        self.pages = pages
        self.hits: list[str] = []
        self.held: set[str] = set()
        self.release = asyncio.Event()
        self.port = free_port()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def serve(self, request: web.Request) -> web.StreamResponse:
        self.hits.append(request.path)
        if request.path in self.held:
            await self.release.wait()
        if request.path not in self.pages:
            return web.Response(status=404, text="not here")
        return web.Response(text=self.pages[request.path], content_type="text/html")


@contextlib.asynccontextmanager
async def local_site(pages: dict[str, str]) -> AsyncIterator[Site]:
    site = Site(pages)
    app = web.Application()
    app.router.add_get("/{tail:.*}", site.serve)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", site.port).start()
    try:
        yield site
    finally:
        site.release.set()
        await runner.cleanup()


def html(title: str, text: str, *links: str) -> str:
    anchors = "".join(f'<li><a href="{href}">{href}</a></li>' for href in links)
    return (f"<html><head><title>{title}</title></head><body><nav><ul>{anchors}</ul></nav>"
            f"<main><h1>{title}</h1><p>{text}</p></main></body></html>")


SHOP = {
    "/": html("Bean There", "A coffee shop on Roast Street with beans roasted every morning.", "/delivery",
              "/hours"),
    "/delivery": html("Delivery", "We deliver within 5 km. Delivery costs 2 dollars, free over 20 dollars.", "/"),
    "/hours": html("Opening hours", "Weekdays from 7 to 19, weekends from 9 to 17.", "/"),
}


@pytest.fixture
def desk_settings() -> dict[str, Any]:
    return {"KNOWLEDGE_ALLOW_PRIVATE_URLS": "true"}  # the test sites are on this machine


@pytest.fixture
async def desk(database_url: str, sim: Simulator, desk_settings: dict[str, Any]) -> AsyncIterator[Desk]:
    async with manager_desk(database_url, sim, None, **desk_settings) as running:
        yield running


async def upload(client: AppClient, name: str, data: bytes | Any) -> tuple[int, Any]:
    """The file as the request's body, the way the page sends it."""
    headers = client.headers({"Content-Type": "application/octet-stream"})
    async with client.session.post(client.base + f"{SOURCES}/file", params={"name": name}, data=data,
                                   headers=headers) as response:
        return response.status, await response.json()


async def wait_for(client: AppClient, source_id: int, done: Callable[[dict[str, Any]], bool],
                   what: str) -> dict[str, Any]:
    """The source as listed once `done` holds (the list is asked again and again, as the page does)."""
    found: dict[str, Any] = {}

    async def listed_done() -> bool:
        listed = {source["id"]: source for source in (await client.get(SOURCES))["sources"]}
        found.update(listed.get(source_id) or {})
        return source_id in listed and done(listed[source_id])

    await eventually(listed_done, what, WAIT)
    return found


def settled(source: dict[str, Any]) -> bool:
    return source["status"] in ("ready", "failed")


async def russian_manager(desk: Desk, sim: Simulator) -> int:
    rita = sim.create_user("Rita", language_code="ru")
    sim.set_member(desk.chat_id, rita["id"], "member")
    return int(rita["id"])


async def test_an_uploaded_markdown_file_is_indexed_and_becomes_ready(desk: Desk, sim: Simulator) -> None:
    async with app_client(desk.frontdesk, sim, desk.mia["id"]) as staff:
        status, added = await upload(staff, "menu.md", MENU.encode())
        assert status == 201, added
        assert (added["kind"], added["title"], added["location"]) == ("file", "Bean There: menu and delivery",
                                                                       "menu.md")
        chunks = await KnowledgeChunk.filter(source_id=added["id"]).count()
        assert (added["status"], added["progress_total"], added["enabled"]) == ("indexing", chunks, True)
        assert [source["id"] for source in (await staff.get(SOURCES))["sources"]] == [added["id"]]

        ready = await wait_for(staff, added["id"], settled, "the document's indexing")
        assert (ready["status"], ready["error"]) == ("ready", None)
        assert ready["chunk_count"] == ready["progress_done"] == chunks > 0
        assert ready["page_count"] == 1
        assert ready["last_synced_at"]
    assert not await KnowledgeChunk.filter(source_id=added["id"], embedding_model="").exists()
    assert await AuditLog.filter(action="knowledge.source_add").count() == 1


async def test_a_file_that_cannot_be_read_is_refused_in_the_callers_language_and_nothing_is_stored(
        desk: Desk, sim: Simulator) -> None:
    async with app_client(desk.frontdesk, sim, await russian_manager(desk, sim)) as rita:
        status, refused = await upload(rita, "menu.pdf", os.urandom(4000))
        assert (status, refused["error"]["code"]) == (400, "unreadable")
        assert refused["error"]["message"] == "Файл не читается: он повреждён или на самом деле это не PDF."
        status, refused = await upload(rita, "menu.exe", b"MZ\x90\x00")
        assert (status, refused["error"]["code"]) == (400, "unsupported_type")
        assert refused["error"]["message"] == ("Такой файл прочитать нельзя. Загрузите PDF, Word (.docx), HTML, "
                                               "Markdown или текстовый файл.")
        assert (await rita.get(SOURCES))["sources"] == []
    for model in (KnowledgeSource, KnowledgePage, KnowledgeChunk):
        assert await model.all().count() == 0, model
    assert await OutboxJob.filter(queue=QUEUE).count() == 0


@pytest.mark.parametrize("desk_settings", [{"KNOWLEDGE_MAX_FILE_MB": "1"}])
async def test_a_file_over_the_size_limit_is_refused_with_413(desk: Desk, sim: Simulator) -> None:
    too_big = b"word " * (1024 * 1024 // 5 + 1)

    async def without_a_length() -> AsyncIterator[bytes]:  # a chunked body: read until it is too much
        for start in range(0, len(too_big), 64 * 1024):
            yield too_big[start:start + 64 * 1024]

    async with app_client(desk.frontdesk, sim, desk.mia["id"]) as staff:
        for body in (io.BytesIO(too_big), without_a_length()):
            status, refused = await upload(staff, "big.txt", body)
            assert (status, refused["error"]["code"]) == (413, "too_large")
            assert refused["error"]["message"] == "The file is too large: at most 1 MB."
        status, added = await upload(staff, "small.txt", b"word " * 1000)
        assert status == 201, added
    assert await KnowledgeSource.all().count() == 1


async def test_customers_cannot_see_or_change_documents_and_websites(desk: Desk, sim: Simulator) -> None:
    source = await KnowledgeSource.create(bot_id=1, kind=SourceKind.FILE, title="Staff secrets", location="s.md",
                                          status=SourceStatus.READY)
    ann = sim.create_user("Ann")
    async with app_client(desk.frontdesk, sim, ann["id"]) as customer:
        calls: list[tuple[str, str, Any]] = [
            ("GET", SOURCES, None), ("POST", f"{SOURCES}/url", {"url": "https://example.com/"}),
            ("PATCH", f"{SOURCES}/{source.id}", {"enabled": False}), ("POST", f"{SOURCES}/{source.id}/sync", None),
            ("DELETE", f"{SOURCES}/{source.id}", None)]
        for method, path, body in calls:
            status, answer = await customer.call(method, path, body)
            assert (status, answer["error"]["code"]) == (403, "forbidden"), (method, path)
            assert "secrets" not in str(answer)
        status, answer = await upload(customer, "menu.md", MENU.encode())
        assert (status, answer["error"]["code"]) == (403, "forbidden")
    assert await KnowledgeSource.all().count() == 1
    assert (await KnowledgeSource.get(id=source.id)).enabled is True
    assert await OutboxJob.filter(queue=QUEUE).count() == 0


async def test_another_bots_source_is_not_found(desk: Desk, sim: Simulator) -> None:
    other = await Bot.create(telegram_id=7_000_000_999, username="other_shop_bot")
    theirs = await KnowledgeSource.create(bot=other, kind=SourceKind.SITE, title="Their site",
                                          location="https://other.example/", status=SourceStatus.READY)
    async with app_client(desk.frontdesk, sim, desk.boss["id"]) as boss:
        assert (await boss.get(SOURCES))["sources"] == []
        for method, path, body in (("PATCH", f"{SOURCES}/{theirs.id}", {"enabled": False}),
                                   ("POST", f"{SOURCES}/{theirs.id}/sync", None),
                                   ("DELETE", f"{SOURCES}/{theirs.id}", None),
                                   ("DELETE", f"{SOURCES}/abc", None)):
            status, answer = await boss.call(method, path, body)
            assert (status, answer["error"]["code"]) == (404, "not_found"), (method, path)
            assert answer["error"]["message"] == "This source no longer exists."
    kept = await KnowledgeSource.get(id=theirs.id)
    assert (kept.enabled, kept.status) == (True, SourceStatus.READY)
    assert await OutboxJob.filter(queue=QUEUE).count() == 0


async def test_a_website_is_crawled_then_switched_off_resynced_and_deleted(desk: Desk, sim: Simulator) -> None:
    async with local_site(SHOP) as site, app_client(desk.frontdesk, sim, desk.mia["id"]) as staff:
        status, added = await staff.call("POST", f"{SOURCES}/url",
                                         {"url": site.url("/"), "whole_site": True, "page_limit": 10})
        assert status == 201, added
        assert (added["kind"], added["status"], added["location"]) == ("site", "queued", site.url("/"))
        ready = await wait_for(staff, added["id"], settled, "the website's first sync")
        assert ready["status"] == "ready", ready
        assert (ready["page_count"], ready["title"]) == (3, "Bean There")
        assert ready["chunk_count"] == await KnowledgeChunk.filter(source_id=added["id"]).count() >= 3
        assert {"/", "/delivery", "/hours"} <= set(site.hits)

        status, switched = await staff.call("PATCH", f"{SOURCES}/{added['id']}", {"enabled": False})
        assert (status, switched["enabled"]) == (200, False)
        assert (await KnowledgeSource.get(id=added["id"])).enabled is False

        site.pages["/hours"] = html("Opening hours", "Every day from 8 to 20.", "/")
        status, syncing = await staff.call("POST", f"{SOURCES}/{added['id']}/sync")
        assert (status, syncing["status"]) == (202, "queued")
        synced = await wait_for(staff, added["id"], lambda s: settled(s) and s["last_synced_at"] != ready[
            "last_synced_at"], "the re-sync")
        assert (synced["status"], synced["page_count"]) == ("ready", 3)
        assert await KnowledgeChunk.filter(source_id=added["id"], text__contains="Every day from 8 to 20").exists()

        status, answer = await staff.call("DELETE", f"{SOURCES}/{added['id']}")
        assert (status, answer) == (200, {"deleted": True})
        assert (await staff.get(SOURCES))["sources"] == []
        status, answer = await staff.call("POST", f"{SOURCES}/{added['id']}/sync")
        assert (status, answer["error"]["code"]) == (404, "not_found")
    assert not await KnowledgeChunk.filter(source_id=added["id"]).exists()
    assert not await KnowledgePage.filter(source_id=added["id"]).exists()
    assert await AuditLog.filter(action="knowledge.source_remove").count() == 1


async def test_one_page_only_reads_that_page(desk: Desk, sim: Simulator) -> None:
    async with local_site(SHOP) as site, app_client(desk.frontdesk, sim, desk.mia["id"]) as staff:
        added = await staff.post(f"{SOURCES}/url", {"url": site.url("/delivery"), "whole_site": False})
        assert added["kind"] == "page"
        ready = await wait_for(staff, added["id"], settled, "the page's sync")
        assert (ready["status"], ready["page_count"], ready["title"]) == ("ready", 1, "Delivery")
    assert "/hours" not in site.hits


async def test_addresses_and_page_limits_that_cannot_be_used_are_refused(desk: Desk, sim: Simulator) -> None:
    async with app_client(desk.frontdesk, sim, await russian_manager(desk, sim)) as rita:
        for body, code in (({"url": "ftp://shop.example/"}, "bad_url"),
                           ({"url": "https://shop.example/", "page_limit": 5000}, "bad_page_limit"),
                           ({"url": "https://shop.example/", "page_limit": 0}, "bad_request")):
            status, answer = await rita.call("POST", f"{SOURCES}/url", body)
            assert (status, answer["error"]["code"]) == (400, code), body
            assert any("а" <= char <= "я" for char in answer["error"]["message"].lower()), answer
    assert await KnowledgeSource.all().count() == 0


@pytest.mark.parametrize("desk_settings", [{}])  # the defaults
async def test_a_private_address_fails_with_the_reason_when_the_operator_does_not_allow_them(
        desk: Desk, sim: Simulator) -> None:
    assert desk.frontdesk.settings.staff_may_fetch_private is False
    async with local_site(SHOP) as site, app_client(desk.frontdesk, sim, await russian_manager(desk, sim)) as rita:
        status, added = await rita.call("POST", f"{SOURCES}/url", {"url": site.url("/"), "whole_site": True})
        assert (status, added["status"]) == (201, "queued")  # where an address leads is judged when it is read
        failed = await wait_for(rita, added["id"], settled, "the refused sync")
        assert (failed["status"], failed["error_code"]) == ("failed", "private_address")
        assert failed["error"] == ("127.0.0.1 — частный адрес. Здесь можно добавлять только общедоступные сайты.")
        assert failed["chunk_count"] == 0
    assert site.hits == []
