"""The knowledge-base editor: list and search, create, edit, switch off, delete, export, import.

Every function is scoped by the bot: an item of another bot is `not_found`. Every change is
audit-logged with the staff member who made it. Bad input raises `KnowledgeError(code, **params)`.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tortoise import connections
from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from models import KnowledgeItem, User
from services.audit import audit
from services.knowledge import (
    Entry,
    ImportReport,
    KnowledgeError,
    clean_entry,
    format_csv,
    format_markdown,
    import_entries,
    parse_text,
    question_key,
    queue_items_embedding,
    words,
)

MAX_PAGE = 200
_MAX_QUERY_WORDS = 32


@dataclass(frozen=True)
class ItemView:
    id: int
    question: str
    answer: str  # Markdown
    tags: str  # `a, b`
    enabled: bool
    hit_count: int  # direct answers given with it
    created_at: datetime
    updated_at: datetime
    rank: float | None = None  # relevance to the search query (larger is better); None when not searching


@dataclass(frozen=True)
class ItemPage:
    items: list[ItemView]
    total: int  # every item that matches, on all pages
    next_cursor: str | None  # pass it back for the next page; None on the last one


def _view(item: KnowledgeItem, rank: float | None = None) -> ItemView:
    return ItemView(item.id, item.question, item.answer, item.tags, item.enabled, item.hit_count,
                    item.created_at, item.updated_at, rank)


# --- listing -------------------------------------------------------------------------------------


async def list_items(bot_id: int, *, query: str = "", enabled: bool | None = None, cursor: str | None = None,
                     limit: int = 50) -> ItemPage:
    """The bot's items, most recently changed first; with a query, the matching ones, most relevant first.

    A query matches items holding every one of its words, each word also as the start of a longer
    one (`wif` finds `wifi`). `enabled` keeps only the switched on (True) or off (False) items.
    """
    limit = max(1, min(limit, MAX_PAGE))
    terms = list(dict.fromkeys(words(query)))[:_MAX_QUERY_WORDS]
    if terms:
        return await _search(bot_id, terms, enabled, _offset(cursor), limit)
    items = KnowledgeItem.filter(bot_id=bot_id)
    if enabled is not None:
        items = items.filter(enabled=enabled)
    total = await items.count()
    if cursor is not None:
        updated_at, last_id = _after(cursor)
        items = items.filter(Q(updated_at__lt=updated_at) | Q(updated_at=updated_at, id__lt=last_id))
    rows = await items.order_by("-updated_at", "-id").limit(limit + 1)
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = _cursor({"after": [rows[-1].updated_at.isoformat(), rows[-1].id]})
    return ItemPage([_view(item) for item in rows], total, next_cursor)


async def _search(bot_id: int, terms: list[str], enabled: bool | None, offset: int, limit: int) -> ItemPage:
    connection = connections.get("default")
    if connection.capabilities.dialect == "postgres":
        source = "knowledge_item k, to_tsquery('simple', $1) query"
        where = "k.bot_id = $2 AND k.search @@ query"
        rank = "ts_rank(k.search, query)"
        params: list[Any] = [" & ".join(f"'{term}':*" for term in terms), bot_id]
        if enabled is not None:
            where += " AND k.enabled = $3"
            params.append(enabled)
        page = f"LIMIT ${len(params) + 1} OFFSET ${len(params) + 2}"
    else:
        # bm25 is smaller for better matches; question words weigh most, then tags, then answers.
        source = "knowledge_fts JOIN knowledge_item k ON k.id = knowledge_fts.rowid"
        where = "knowledge_fts MATCH ? AND k.bot_id = ?"
        rank = "-bm25(knowledge_fts, 10.0, 1.0, 3.0)"
        params = [" AND ".join(f'"{term}"*' for term in terms), bot_id]
        if enabled is not None:
            where += " AND k.enabled = ?"
            params.append(enabled)
        page = "LIMIT ? OFFSET ?"
    [counted] = await connection.execute_query_dict(f"SELECT count(*) AS n FROM {source} WHERE {where}", params)
    rows = await connection.execute_query_dict(
        f"SELECT k.id AS id, {rank} AS rank FROM {source} WHERE {where} ORDER BY rank DESC, k.id DESC {page}",
        [*params, limit + 1, offset])
    found = {item.id: item for item in await KnowledgeItem.filter(bot_id=bot_id, id__in=[r["id"] for r in rows])}
    views = [_view(item, float(row["rank"])) for row in rows[:limit] if (item := found.get(row["id"])) is not None]
    next_cursor = _cursor({"offset": offset + limit}) if len(rows) > limit else None
    return ItemPage(views, int(counted["n"]), next_cursor)


def _cursor(position: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(position, separators=(",", ":")).encode()).decode()


def _position(cursor: str) -> dict[str, Any]:
    try:
        position = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (binascii.Error, UnicodeError, ValueError) as error:
        raise KnowledgeError("bad_cursor") from error
    if not isinstance(position, dict):
        raise KnowledgeError("bad_cursor")
    return position


def _after(cursor: str) -> tuple[datetime, int]:
    """Where a most-recent-first page ended: the last item's change time and id."""
    after = _position(cursor).get("after")
    try:
        updated_at, last_id = after  # type: ignore[misc]
        return datetime.fromisoformat(updated_at), int(last_id)
    except (TypeError, ValueError) as error:
        raise KnowledgeError("bad_cursor") from error


def _offset(cursor: str | None) -> int:
    """Where a page of search results ended: relevance has no stable key, so an offset."""
    if cursor is None:
        return 0
    offset = _position(cursor).get("offset")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise KnowledgeError("bad_cursor")
    return offset


# --- changes -------------------------------------------------------------------------------------


async def get_item(bot_id: int, item_id: int) -> ItemView:
    return _view(await _item(bot_id, item_id))


async def create_item(bot_id: int, *, question: str, answer: str, tags: str = "", actor: User) -> ItemView:
    entry = clean_entry(question, answer, tags)
    key = question_key(entry.question)
    async with in_transaction():
        await _no_other_with(bot_id, key)
        try:
            item = await KnowledgeItem.create(bot_id=bot_id, question=entry.question, answer=entry.answer,
                                              tags=entry.tags, question_key=key)
        except IntegrityError as error:  # the same question, created meanwhile
            raise KnowledgeError("duplicate") from error
        await audit(bot_id, actor, "knowledge_create", str(item.id), question=item.question)
        await queue_items_embedding(bot_id)
    return _view(item)


async def update_item(bot_id: int, item_id: int, *, question: str | None = None, answer: str | None = None,
                      tags: str | None = None, actor: User) -> ItemView:
    """Change what is given (None keeps it); a change to nothing is no change and is not logged."""
    async with in_transaction():
        item = await _item(bot_id, item_id, for_update=True)
        entry = clean_entry(item.question if question is None else question,
                            item.answer if answer is None else answer,
                            item.tags if tags is None else tags)
        changed = [name for name in ("question", "answer", "tags") if getattr(entry, name) != getattr(item, name)]
        if not changed:
            return _view(item)
        before = {name: getattr(item, name) for name in changed}
        key = question_key(entry.question)
        if key != item.question_key:
            await _no_other_with(bot_id, key)
        item.question, item.answer, item.tags, item.question_key = entry.question, entry.answer, entry.tags, key
        item.embedding_model = ""  # its meaning changed: embedded again in the background
        try:
            await item.save(update_fields=["question", "answer", "tags", "question_key", "embedding_model",
                                           "updated_at"])
        except IntegrityError as error:
            raise KnowledgeError("duplicate") from error
        await audit(bot_id, actor, "knowledge_update", str(item.id), before=before,
                    after={name: getattr(item, name) for name in changed})
        await queue_items_embedding(bot_id)
    return _view(item)


async def set_enabled(bot_id: int, item_id: int, enabled: bool, *, actor: User) -> ItemView:
    """A switched-off item is kept, but neither answers customers nor reaches the AI."""
    async with in_transaction():
        item = await _item(bot_id, item_id, for_update=True)
        if item.enabled == enabled:
            return _view(item)
        item.enabled = enabled
        await item.save(update_fields=["enabled", "updated_at"])
        await audit(bot_id, actor, "knowledge_enable" if enabled else "knowledge_disable", str(item.id),
                    question=item.question)
        await queue_items_embedding(bot_id)  # the index takes it in or leaves it out
    return _view(item)


async def delete_item(bot_id: int, item_id: int, *, actor: User) -> None:
    """Gone for good; the audit entry keeps its question, answer and tags."""
    async with in_transaction():
        item = await _item(bot_id, item_id, for_update=True)
        await item.delete()
        await audit(bot_id, actor, "knowledge_delete", str(item.id), question=item.question, answer=item.answer,
                    tags=item.tags)
        await queue_items_embedding(bot_id)


async def _item(bot_id: int, item_id: int, *, for_update: bool = False) -> KnowledgeItem:
    query = KnowledgeItem.filter(bot_id=bot_id, id=item_id)
    if for_update and connections.get("default").capabilities.dialect == "postgres":
        query = query.select_for_update()
    item = await query.first()
    if item is None:
        raise KnowledgeError("not_found", item_id=item_id)
    return item


async def _no_other_with(bot_id: int, key: str) -> None:
    existing = await KnowledgeItem.filter(bot_id=bot_id, question_key=key).first()
    if existing is not None:
        raise KnowledgeError("duplicate", item_id=existing.id, question=existing.question)


# --- files ---------------------------------------------------------------------------------------


async def _entries(bot_id: int) -> list[Entry]:
    """Every item, switched off ones too (the files have no column for it), oldest first."""
    rows = await KnowledgeItem.filter(bot_id=bot_id).order_by("id").values_list("question", "answer", "tags")
    return [Entry(str(question), str(answer), str(tags)) for question, answer, tags in rows]


async def export_csv(bot_id: int) -> str:
    return format_csv(await _entries(bot_id))


async def export_markdown(bot_id: int) -> str:
    return format_markdown(await _entries(bot_id))


async def import_text(bot_id: int, filename: str, text: str, actor: User) -> ImportReport:
    """Import a .csv or .md file's text, all or nothing: an item with the same question is updated.

    A file that does not parse is `bad_file` with the parser's own words in `detail`; an entry that
    the editor would refuse is refused here with the same code, and the entry's number as `row`.
    """
    try:
        parsed = parse_text(filename, text)
    except ValueError as error:
        raise KnowledgeError("bad_file", detail=str(error)) from error
    if not parsed:
        raise KnowledgeError("bad_file", detail="the file holds no questions")
    entries = []
    for row, entry in enumerate(parsed, start=1):
        try:
            entries.append(clean_entry(entry.question, entry.answer, entry.tags))
        except KnowledgeError as error:
            raise KnowledgeError(error.code, row=row, **error.params) from error
    async with in_transaction():
        report = await import_entries(bot_id, entries)
        await audit(bot_id, actor, "knowledge_import", filename[:128], created=report.created,
                    updated=report.updated, unchanged=report.unchanged)
    return report
