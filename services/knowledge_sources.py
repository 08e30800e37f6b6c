"""Documents and websites as knowledge: read, cut into chunks, embedded, kept in sync.

How a source becomes knowledge:
- A file from the Mini App is read in the request (in a thread), so a bad file is refused at once
  and nothing of it is stored; its chunks are stored in one transaction and a `kb_embed` job embeds
  them in the background ("indexing n of m"). Full-text search finds them meanwhile.
- A web page or site is stored as queued; a `kb_sync` job crawls it, and each page that is new or
  changed has its chunks embedded first and then replaced in one transaction, so retrieval never
  sees half a page. Unchanged pages cost a 304 (ETag / Last-Modified) or a hash comparison; a page
  that is gone is removed. Web sources are re-read on a schedule (`resync_every`); a source's jobs
  share a lane, so across instances only one sync of it runs at a time.
- The operator's CLI (`python -m bot kb add`) does all of it in its own process and stores the
  source only once it is read and embedded: a source that cannot be read leaves nothing behind.

Embedding never runs in a request or the webhook: only in the knowledge queue's worker and the CLI.
Every change ends with `KnowledgeIndex.changed`, which reloads the source's vectors on every instance.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tortoise.expressions import Q
from tortoise.functions import Count
from tortoise.transactions import in_transaction

from models import (
    JobStatus,
    KnowledgeChunk,
    KnowledgeItem,
    KnowledgePage,
    KnowledgeSource,
    OutboxJob,
    SourceKind,
    SourceStatus,
    User,
)
from services import outbox
from services.audit import audit
from services.chunking import Chunk, chunk_sections
from services.documents import DocumentError, DocumentLimits, ExtractedDocument, extract, extract_html
from services.embeddings import Embedder, EmbeddingError, Vectors, to_bytes
from services.knowledge import EMBED_JOB, QUEUE
from services.knowledge_index import ITEMS, KnowledgeIndex
from services.outbox import JobKind
from services.web_sources import CrawlPage, FetchError, FetchPolicy, Validators, WebFetcher, crawl, normalise_url

log = logging.getLogger(__name__)

SYNC_JOB = JobKind.KB_SYNC
EMBED_BATCH = 16
MAX_TITLE = 300
MAX_SOURCES = 500  # per bot
JOB_LEASE = 600.0  # a sync renews it after every page
ASKED_SHARE = 0.2  # of an item's vector: its question as customers ask it (`item_vectors`)

Progress = Callable[[int, int], None]
"""(done, total) while a source is indexed, for a progress bar."""


def _no_progress(done: int, total: int) -> None:
    """Nobody watches."""


class SourceError(Exception):
    """A source that cannot be added or read: a stable `code` and its parameters, as the Mini App
    translates them and the CLI prints them (`str`)."""

    def __init__(self, code: str, detail: str = "", **params: Any) -> None:
        super().__init__(code, params)
        self.code = code
        self.detail = detail  # a readable English line
        self.params = params

    def __str__(self) -> str:
        return self.detail or self.code

    @classmethod
    def of(cls, error: DocumentError | FetchError) -> SourceError:
        return cls(error.code, str(error), **error.params)

    def as_dict(self) -> dict[str, object]:
        return {"code": self.code, "detail": self.detail, **{k: v for k, v in self.params.items()
                                                             if isinstance(v, str | int | float)}}


@dataclass(frozen=True)
class SourcePolicy:
    document_limits: DocumentLimits = field(default_factory=DocumentLimits)
    fetch: FetchPolicy = field(default_factory=FetchPolicy)
    page_limit: int = 200  # a website's pages, unless the source says otherwise
    max_page_limit: int = 1000
    resync_every: timedelta = timedelta(days=1)
    staff_may_fetch_private: bool = False  # KNOWLEDGE_ALLOW_PRIVATE_URLS: an operator's choice


@dataclass(frozen=True)
class SourceView:
    """A source as the Mini App and the CLI list it."""

    id: int
    kind: SourceKind
    title: str
    location: str
    status: SourceStatus
    error: dict[str, object]
    progress_done: int
    progress_total: int
    chunk_count: int
    page_count: int
    enabled: bool
    last_synced_at: datetime | None
    created_at: datetime


@dataclass
class _ReadPage:
    """One page or document, read and cut, maybe embedded: what `_replace_page` stores."""

    url: str
    title: str
    chunks: list[Chunk]
    content_hash: str
    validators: Validators = field(default_factory=Validators)
    vectors: list[bytes] | None = None


def passage_text(title: str, heading: str, text: str) -> str:
    """What a chunk's vector is made of: its place in the document says what it is about."""
    place = " › ".join(part for part in (title, heading) if part)
    return f"{place}\n{text}" if place else text


def item_text(question: str, answer: str, tags: str = "") -> str:
    """What an item's vector is made of: its tags name its topic in other words (measured: more reworded
    questions find their item with them, docs/BENCHMARKS.md)."""
    return f"{question} ({tags})\n{answer}" if tags else f"{question}\n{answer}"


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


class KnowledgeSources:
    def __init__(self, embedder: Embedder, index: KnowledgeIndex, policy: SourcePolicy | None = None,
                 wake: Callable[[], None] | None = None) -> None:
        self.embedder = embedder
        self.index = index
        self.policy = policy or SourcePolicy()
        self.wake = wake or (lambda: None)

    @property
    def model(self) -> str:
        return self.embedder.name

    # --- adding ----------------------------------------------------------------------------------

    async def add_file(self, bot_id: int, filename: str, data: bytes, *, user: User | None = None) -> KnowledgeSource:
        """Read a document now, store its chunks and queue their embedding; SourceError says why not."""
        await self._check_room(bot_id)
        await self._check_new(bot_id, data)
        document, page = await self._read_file(filename, data)
        async with in_transaction():
            source = await KnowledgeSource.create(
                bot_id=bot_id, kind=SourceKind.FILE, title=document.title[:MAX_TITLE], location=filename,
                status=SourceStatus.INDEXING, progress_total=len(page.chunks), content_hash=_hash_bytes(data),
                created_by=user, last_synced_at=_now())
            await self._replace_page(source, page)
            await outbox.enqueue(bot_id, EMBED_JOB, {"source": source.id}, lane=_lane(source.id), queue=QUEUE)
            await audit(bot_id, user, "knowledge.source_add", f"source:{source.id}", file=filename)
        self.wake()
        return source

    async def add_url(self, bot_id: int, url: str, *, whole_site: bool, page_limit: int | None = None,
                      user: User | None = None, allow_private: bool | None = None) -> KnowledgeSource:
        """Queue a web page or a site for its first sync (the `kb_sync` job reads it)."""
        await self._check_room(bot_id)
        url = self._checked_url(url)
        limit = self._page_limit(page_limit)
        private = self.policy.staff_may_fetch_private if allow_private is None else allow_private
        async with in_transaction():
            source = await KnowledgeSource.create(
                bot_id=bot_id, kind=SourceKind.SITE if whole_site else SourceKind.PAGE, title=_host_title(url),
                location=url, page_limit=limit if whole_site else 1, allow_private=private, created_by=user)
            await outbox.enqueue(bot_id, SYNC_JOB, {"source": source.id}, lane=_lane(source.id), queue=QUEUE)
            await audit(bot_id, user, "knowledge.source_add", f"source:{source.id}", url=url)
        self.wake()
        return source

    async def index_now(self, bot_id: int, location: str, *, whole_site: bool = True, page_limit: int | None = None,
                        progress: Progress = _no_progress) -> KnowledgeSource:
        """The operator's CLI: read, cut and embed here, then store it all at once (any address may be read).

        Raises SourceError before anything is stored when the source cannot be read.
        """
        await self._check_room(bot_id)
        if location.startswith(("http://", "https://")):
            return await self._index_url_now(bot_id, location, whole_site, page_limit, progress)
        path = Path(location)
        try:
            data = path.read_bytes()
        except OSError as error:
            raise SourceError("unreadable_file", f"cannot read {path}: {error.strerror or error}") from error
        await self._check_new(bot_id, data)
        document, page = await self._read_file(path.name, data)
        page.vectors = await self._embed_chunks(document.title, page.chunks, progress)
        async with in_transaction():
            source = await KnowledgeSource.create(
                bot_id=bot_id, kind=SourceKind.FILE, title=document.title[:MAX_TITLE], location=path.name,
                status=SourceStatus.READY, content_hash=_hash_bytes(data), last_synced_at=_now())
            await self._replace_page(source, page)
            await self._finish_counts(source)
        await self.index.changed(bot_id, source.id)
        return await KnowledgeSource.get(id=source.id)

    async def _index_url_now(self, bot_id: int, url: str, whole_site: bool, page_limit: int | None,
                             progress: Progress) -> KnowledgeSource:
        url = self._checked_url(url)
        limit = self._page_limit(page_limit) if whole_site else 1
        policy = FetchPolicy(**{**self.policy.fetch.__dict__, "allow_private": True})
        pages: list[_ReadPage] = []
        async with WebFetcher(policy) as fetcher:
            try:
                async for crawled in crawl(fetcher, url, page_limit=limit, single_page=not whole_site):
                    page = await self._read_crawled(crawled)
                    if page is not None and page.chunks:
                        pages.append(page)
                    progress(len(pages), limit)
            except FetchError as error:
                raise SourceError.of(error) from error
        if not pages:
            raise SourceError("empty", f"{url}: no page with text was found")
        total = sum(len(page.chunks) for page in pages)
        done = 0
        for page in pages:
            page.vectors = await self._embed_chunks(page.title, page.chunks, lambda n, _total: None)
            done += len(page.chunks)
            progress(done, total)
        async with in_transaction():
            source = await KnowledgeSource.create(
                bot_id=bot_id, kind=SourceKind.SITE if whole_site else SourceKind.PAGE,
                title=(pages[0].title or _host_title(url))[:MAX_TITLE], location=url, page_limit=limit,
                allow_private=True, status=SourceStatus.READY, last_synced_at=_now(),
                next_sync_at=_now() + self.policy.resync_every)
            for page in pages:
                await self._replace_page(source, page)
            await self._finish_counts(source)
        await self.index.changed(bot_id, source.id)
        return await KnowledgeSource.get(id=source.id)

    # --- reading ---------------------------------------------------------------------------------

    async def _read_file(self, filename: str, data: bytes) -> tuple[ExtractedDocument, _ReadPage]:
        """Read and cut in a thread: a 300-page PDF takes about a second, which the event loop must not wait."""
        try:
            return await asyncio.to_thread(self._read_and_cut, filename, data)
        except DocumentError as error:
            raise SourceError.of(error) from error

    def _read_and_cut(self, filename: str, data: bytes) -> tuple[ExtractedDocument, _ReadPage]:
        document = extract(filename, data, self.policy.document_limits)
        chunks = chunk_sections(document.sections)
        if not chunks:
            raise SourceError("empty", f"{filename}: no text was found")
        return document, _ReadPage(filename, document.title, chunks, _hash("\n".join(chunk.text for chunk in chunks)))

    async def _read_crawled(self, crawled: CrawlPage) -> _ReadPage | None:
        """A fetched page's main text, cut (in a thread: extraction takes tens of milliseconds a page).
        A page without text has no chunks, and is dropped; the crawl goes on."""
        if crawled.page is None or crawled.page.not_modified:
            return None
        page = crawled.page
        try:
            document = await asyncio.to_thread(extract_html, page.html, page.url)
        except DocumentError:
            return _ReadPage(page.url, _host_title(page.url), [], _hash(""), Validators(page.etag, page.last_modified))
        chunks = await asyncio.to_thread(chunk_sections, document.sections)
        return _ReadPage(page.url, document.title or _host_title(page.url), chunks,
                         _hash("\n".join(chunk.text for chunk in chunks)), Validators(page.etag, page.last_modified))

    async def _embed_chunks(self, title: str, chunks: Sequence[Chunk], progress: Progress) -> list[bytes]:
        vectors: list[bytes] = []
        for start in range(0, len(chunks), EMBED_BATCH):
            batch = chunks[start:start + EMBED_BATCH]
            embedded = await self.embedder.passages(
                [passage_text(title, _heading(title, chunk.heading_path), chunk.text) for chunk in batch])
            vectors.extend(to_bytes(vector) for vector in embedded)
            progress(len(vectors), len(chunks))
        return vectors

    # --- storing ---------------------------------------------------------------------------------

    async def _replace_page(self, source: KnowledgeSource, page: _ReadPage) -> KnowledgePage:
        """The page's chunks become `page.chunks`; call inside a transaction (all or nothing)."""
        key = _hash(page.url)
        row = await KnowledgePage.get_or_none(source_id=source.id, url_key=key)
        if row is None:
            row = await KnowledgePage.create(source_id=source.id, url=page.url, url_key=key)
        else:
            await KnowledgeChunk.filter(page_id=row.id).delete()
        row.title = page.title[:MAX_TITLE]
        row.etag, row.last_modified = page.validators.etag[:300], page.validators.last_modified[:100]
        row.content_hash = page.content_hash
        await row.save()
        web = source.kind != SourceKind.FILE
        await KnowledgeChunk.bulk_create([
            KnowledgeChunk(bot_id=source.bot_id, source_id=source.id, page_id=row.id,
                           ordinal=chunk.ordinal, title=page.title[:MAX_TITLE],
                           heading=_heading(page.title, chunk.heading_path),
                           url=page.url if web else "", page_number=chunk.page, text=chunk.text,
                           embedding=page.vectors[i] if page.vectors else None,
                           embedding_model=self.model if page.vectors else "")
            for i, chunk in enumerate(page.chunks)])
        return row

    async def _finish_counts(self, source: KnowledgeSource) -> None:
        count = await KnowledgeChunk.filter(source_id=source.id).count()
        await KnowledgeSource.filter(id=source.id).update(chunk_count=count, progress_done=count, progress_total=count)

    # --- the knowledge queue's jobs --------------------------------------------------------------

    def handlers(self) -> dict[str, Callable[[OutboxJob], Any]]:
        return {EMBED_JOB: self.embed_job, SYNC_JOB: self.sync_job}

    async def embed_job(self, job: OutboxJob) -> None:
        """Embed what is not embedded with this model yet: one source's chunks, or a bot's Q&A items."""
        source_id = job.payload.get("source")
        bot_id = int(str(job.payload.get("bot") or job.bot_id))
        if source_id is None:
            await self.embed_items(bot_id)
            await self.index.changed(bot_id, ITEMS)
            return
        source = await KnowledgeSource.get_or_none(id=int(str(source_id)))
        if source is None:
            return
        await self.embed_source(source, lambda: outbox.extend_lease(job, JOB_LEASE))
        await self.index.changed(source.bot_id, source.id)

    async def embed_source(self, source: KnowledgeSource, keep_alive: Callable[[], Any] | None = None) -> None:
        total = await KnowledgeChunk.filter(source_id=source.id).count()
        while True:
            missing = await KnowledgeChunk.filter(source_id=source.id).exclude(embedding_model=self.model).order_by(
                "id").limit(EMBED_BATCH)
            if not missing:
                break
            try:
                vectors = await self.embedder.passages([passage_text(c.title, c.heading, c.text) for c in missing])
            except EmbeddingError as error:
                raise outbox.Postpone(60, str(error)) from error  # the endpoint is down: full text meanwhile
            for chunk, vector in zip(missing, vectors, strict=True):
                await KnowledgeChunk.filter(id=chunk.id).update(embedding=to_bytes(vector), embedding_model=self.model)
            done = total - await KnowledgeChunk.filter(source_id=source.id).exclude(embedding_model=self.model).count()
            await KnowledgeSource.filter(id=source.id).update(progress_done=done, progress_total=total)
            if keep_alive is not None:
                await keep_alive()
        await KnowledgeSource.filter(id=source.id, status=SourceStatus.INDEXING).update(
            status=SourceStatus.READY, chunk_count=total, progress_done=total, progress_total=total)

    async def embed_items(self, bot_id: int) -> int:
        """The bot's Q&A items whose vectors are missing or of another model; how many were embedded."""
        embedded = 0
        while True:
            items = await KnowledgeItem.filter(bot_id=bot_id).exclude(embedding_model=self.model).order_by(
                "id").limit(EMBED_BATCH)
            if not items:
                return embedded
            try:
                vectors = await self.item_vectors(items)
            except EmbeddingError as error:
                raise outbox.Postpone(60, str(error)) from error
            for item, vector in zip(items, vectors, strict=True):
                # Only onto the text it was made from: an edit meanwhile leaves the item to be embedded again
                # (the next round reads it again).
                embedded += await KnowledgeItem.filter(id=item.id, question=item.question, answer=item.answer,
                                                       tags=item.tags).update(
                    embedding=to_bytes(vector), embedding_model=self.model)

    async def item_vectors(self, items: Sequence[KnowledgeItem]) -> Vectors:
        """An item's vector blends what it says (question, tags and answer, as a passage) with how it is
        asked (its question, as a query): a customer's question is compared with both at once, since
        q·(a·P + b·Q) = a·(q·P) + b·(q·Q). On the evaluation set this put the right item in the top three
        more often (docs/BENCHMARKS.md), most of all for Russian questions against an English FAQ."""
        said = await self.embedder.passages([item_text(item.question, item.answer, item.tags) for item in items])
        asked = await self.embedder.queries([f"{item.question} ({item.tags})" if item.tags else item.question
                                             for item in items])
        return (1 - ASKED_SHARE) * said + ASKED_SHARE * asked

    async def sync_job(self, job: OutboxJob) -> None:
        source = await KnowledgeSource.get_or_none(id=int(str(job.payload.get("source"))))
        if source is None or source.kind == SourceKind.FILE:
            return
        await self.sync(source, lambda: outbox.extend_lease(job, JOB_LEASE))

    def _may_fetch_private(self, source: KnowledgeSource) -> bool:
        """The operator's sources (the CLI) as they were added; staff's follow today's setting, so that
        turning private addresses off also stops the re-syncs of what staff added while it was on."""
        if source.created_by_id is None:
            return source.allow_private
        return source.allow_private and self.policy.staff_may_fetch_private

    async def sync(self, source: KnowledgeSource, keep_alive: Callable[[], Any] | None = None) -> None:
        """Re-read a web source: changed pages replaced, gone ones removed, unchanged ones untouched."""
        bot_id: int = source.bot_id
        known = {page.url: page for page in await KnowledgePage.filter(source_id=source.id)}
        validators = {url: Validators(page.etag, page.last_modified) for url, page in known.items()}
        # "n of m" once the pages are known (a re-sync); the first crawl cannot know how many it will find.
        total = 1 if source.kind == SourceKind.PAGE else len(known)
        await KnowledgeSource.filter(id=source.id).update(status=SourceStatus.INDEXING, progress_done=0,
                                                           progress_total=total, error={})
        policy = FetchPolicy(**{**self.policy.fetch.__dict__, "allow_private": self._may_fetch_private(source)})
        seen: set[str] = set()
        done = 0
        try:
            async with WebFetcher(policy) as fetcher:
                async for crawled in crawl(fetcher, source.location, page_limit=source.page_limit,
                                           single_page=source.kind == SourceKind.PAGE, known=validators):
                    seen.add(crawled.url)
                    if not await self._sync_page(source, crawled, known):
                        return  # the source was deleted meanwhile (staff pressed Delete during the sync)
                    done += 1
                    await KnowledgeSource.filter(id=source.id).update(progress_done=done,
                                                                       progress_total=max(total, done) if total else 0)
                    if keep_alive is not None:
                        await keep_alive()
        except FetchError as error:
            await self._failed(source, SourceError.of(error))
            return
        except EmbeddingError as error:
            raise outbox.Postpone(60, str(error)) from error
        if done < source.page_limit:  # the whole site was walked: what it no longer has is gone
            gone = [page.id for url, page in known.items() if url not in seen]
            await KnowledgePage.filter(id__in=gone).delete()
        await self._synced(source)
        await self.index.changed(bot_id, source.id)

    async def _sync_page(self, source: KnowledgeSource, crawled: CrawlPage, known: dict[str, KnowledgePage]) -> bool:
        """Bring one page up to date; False when the source is gone."""
        if crawled.page is None:  # 404 / 410: the page is gone
            return await self._write_page(source, known.get(crawled.url), None)
        if crawled.error is not None or crawled.page.not_modified:
            return True  # kept as it was: a passing failure is no reason to forget a page
        page = await self._read_crawled(crawled)
        if page is None:
            return True
        before = known.get(page.url)
        if before is not None and before.content_hash == page.content_hash:
            await KnowledgePage.filter(id=before.id).update(etag=page.validators.etag[:300],
                                                            last_modified=page.validators.last_modified[:100])
            return True
        page.vectors = await self._embed_chunks(page.title, page.chunks, _no_progress) if page.chunks else []
        return await self._write_page(source, before, page if page.chunks else None)

    async def _write_page(self, source: KnowledgeSource, before: KnowledgePage | None, page: _ReadPage | None) -> bool:
        """Replace a page's chunks (None: remove the page), in one transaction that first takes the source's
        row, so a source deleted during its sync gets nothing written under it."""
        async with in_transaction():
            if not await KnowledgeSource.filter(id=source.id).update(updated_at=_now()):
                return False
            if page is not None:
                await self._replace_page(source, page)
            elif before is not None:
                await before.delete()
        return True

    async def _synced(self, source: KnowledgeSource) -> None:
        count = await KnowledgeChunk.filter(source_id=source.id).count()
        pages = await KnowledgePage.filter(source_id=source.id).order_by("id").first()
        title = source.title
        if source.title == _host_title(source.location) and pages is not None and pages.title:
            title = pages.title[:MAX_TITLE]
        if not count:
            await self._failed(source, SourceError("empty", f"{source.location}: no page with text was found"))
            return
        await KnowledgeSource.filter(id=source.id).update(
            status=SourceStatus.READY, chunk_count=count, title=title, error={}, last_synced_at=_now(),
            next_sync_at=_now() + self.policy.resync_every, progress_done=count, progress_total=count)

    async def _failed(self, source: KnowledgeSource, error: SourceError) -> None:
        log.warning("knowledge source %s failed: %s", source.id, error)
        await KnowledgeSource.filter(id=source.id).update(
            status=SourceStatus.FAILED, error=error.as_dict(), last_synced_at=_now(),
            next_sync_at=_now() + self.policy.resync_every)

    # --- the schedule and the model --------------------------------------------------------------

    async def queue_due_syncs(self) -> int:
        """Queue a sync of every web source whose time has come; claimed by a conditional update, so
        several instances running this at once queue each sync once."""
        queued = 0
        moment = _now()
        for source in await KnowledgeSource.filter(enabled=True, next_sync_at__lte=moment).exclude(
                kind=SourceKind.FILE).limit(100):
            async with in_transaction():
                claimed = await KnowledgeSource.filter(id=source.id, next_sync_at=source.next_sync_at).update(
                    next_sync_at=moment + self.policy.resync_every)
                if claimed:
                    await outbox.enqueue(source.bot_id, SYNC_JOB, {"source": source.id},
                                         lane=_lane(source.id), queue=QUEUE)
                    queued += 1
        if queued:
            self.wake()
        return queued

    async def queue_stale_embeddings(self) -> int:
        """At start: embed what this model has not embedded yet (a new deployment, or a changed model)."""
        queued = 0
        for bot_id in set(await KnowledgeItem.filter(~Q(embedding_model=self.model)).values_list("bot_id", flat=True)):
            if await self._queue_once(int(bot_id), {"bot": int(bot_id)}, f"kb-items:{bot_id}"):  # type: ignore[call-overload]
                queued += 1
        sources = await KnowledgeChunk.filter(~Q(embedding_model=self.model)).distinct().values_list(
            "source_id", "bot_id")
        for source_id, bot_id in set(sources):
            if await self._queue_once(int(bot_id), {"source": int(source_id)}, _lane(int(source_id))):
                queued += 1
        if queued:
            self.wake()
        return queued

    async def _queue_once(self, bot_id: int, payload: dict[str, Any], lane: str) -> bool:
        if await OutboxJob.filter(queue=QUEUE, lane=lane, kind=EMBED_JOB,
                                  status__in=[JobStatus.PENDING, JobStatus.RUNNING]).exists():
            return False
        await outbox.enqueue(bot_id, EMBED_JOB, payload, lane=lane, queue=QUEUE)
        return True

    # --- managing --------------------------------------------------------------------------------

    async def list_sources(self, bot_id: int, source_id: int | None = None) -> list[SourceView]:
        """The bot's sources, newest first (or the one `source_id`), each with its count of pages."""
        sources = KnowledgeSource.filter(bot_id=bot_id)
        pages = KnowledgePage.filter(source__bot_id=bot_id)
        if source_id is not None:
            sources, pages = sources.filter(id=source_id), pages.filter(source_id=source_id)
        counts = dict(await pages.annotate(n=Count("id")).group_by("source_id").values_list("source_id", "n"))
        return [SourceView(s.id, s.kind, s.title, s.location, s.status, s.error, s.progress_done, s.progress_total,
                           s.chunk_count, int(counts.get(s.id, 0)), s.enabled, s.last_synced_at, s.created_at)
                for s in await sources.order_by("-id")]

    async def get(self, bot_id: int, source_id: int) -> KnowledgeSource:
        source = await KnowledgeSource.get_or_none(id=source_id, bot_id=bot_id)
        if source is None:
            raise SourceError("not_found", f"no knowledge source {source_id}")
        return source

    async def set_enabled(self, bot_id: int, source_id: int, enabled: bool, *, user: User | None = None) -> None:
        source = await self.get(bot_id, source_id)
        async with in_transaction():
            await KnowledgeSource.filter(id=source.id).update(enabled=enabled)
            await audit(bot_id, user, "knowledge.source_enable" if enabled else "knowledge.source_disable",
                        f"source:{source.id}")
        await self.index.changed(bot_id, source.id)

    async def resync(self, bot_id: int, source_id: int, *, user: User | None = None) -> None:
        """Re-read a web source now (a file is re-embedded where its vectors are missing)."""
        source = await self.get(bot_id, source_id)
        kind = EMBED_JOB if source.kind == SourceKind.FILE else SYNC_JOB
        async with in_transaction():
            if kind == SYNC_JOB:
                await KnowledgeSource.filter(id=source.id).update(status=SourceStatus.QUEUED)
            await outbox.enqueue(bot_id, kind, {"source": source.id}, lane=_lane(source.id), queue=QUEUE)
            await audit(bot_id, user, "knowledge.source_resync", f"source:{source.id}")
        self.wake()

    async def sync_all(self, bot_id: int, progress: Callable[[KnowledgeSource], None] = lambda source: None,
                       ) -> list[KnowledgeSource]:
        """Re-read every enabled web source of the bot now, here (the CLI's `kb sync`)."""
        synced = []
        for source in await KnowledgeSource.filter(bot_id=bot_id, enabled=True).exclude(kind=SourceKind.FILE):
            await self.sync(source)
            synced.append(await KnowledgeSource.get(id=source.id))
            progress(synced[-1])
        return synced

    async def remove(self, bot_id: int, source_id: int, *, user: User | None = None) -> None:
        """Delete a source with its pages and chunks (their vectors go with them)."""
        source = await self.get(bot_id, source_id)
        async with in_transaction():
            await KnowledgeChunk.filter(source_id=source.id).delete()
            await KnowledgePage.filter(source_id=source.id).delete()
            await source.delete()
            await audit(bot_id, user, "knowledge.source_remove", f"source:{source_id}", title=source.title)
        await self.index.changed(bot_id, source_id)

    # --- checks ----------------------------------------------------------------------------------

    async def _check_room(self, bot_id: int) -> None:
        if await KnowledgeSource.filter(bot_id=bot_id).count() >= MAX_SOURCES:
            raise SourceError("too_many_sources", f"a bot has at most {MAX_SOURCES} sources", limit=MAX_SOURCES)

    async def _check_new(self, bot_id: int, data: bytes) -> None:
        """The same file again is no new knowledge (its passages would only crowd out others)."""
        same = await KnowledgeSource.filter(bot_id=bot_id, kind=SourceKind.FILE, content_hash=_hash_bytes(data)).first()
        if same is not None:
            raise SourceError("duplicate", f"this document is already there: {same.title}", title=same.title)

    def _checked_url(self, url: str) -> str:
        try:
            return normalise_url(url.strip())
        except FetchError as error:
            raise SourceError.of(error) from error

    def _page_limit(self, page_limit: int | None) -> int:
        limit = self.policy.page_limit if page_limit is None else page_limit
        if not 1 <= limit <= self.policy.max_page_limit:
            raise SourceError("bad_page_limit", f"the page limit is 1 to {self.policy.max_page_limit}",
                              limit=self.policy.max_page_limit)
        return limit


def _heading(title: str, path: Sequence[str]) -> str:
    """The heading path under the document's title (a first heading that repeats the title is left out)."""
    if path and path[0].strip().casefold() == title.strip().casefold():
        path = path[1:]
    return " › ".join(path)


def _lane(source_id: int) -> str:
    return f"kb-source:{source_id}"


def _host_title(url: str) -> str:
    return urlsplit(url).netloc or url


def _hash_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
