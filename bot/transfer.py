"""Moving a deployment's data between databases: `python -m bot export FILE` / `import FILE`.

The path from the one-process SQLite setup to PostgreSQL: export from SQLite, migrate the new
database, import there. The file is JSON Lines, one row per line, tables in the order their
foreign keys need; ids are kept, so every reference stays true (except for the customers' own
templates, which nothing refers to: they take new ids beside the templates the product ships).

With a bot (`export FILE --bot NAME`, or `bots remove NAME --export FILE`) only that business's rows
are written: those that name the bot, and those whose parent does (`THROUGH`). Imported into a new,
migrated database, the file is that business alone, with the ids it had.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO
from uuid import UUID

from tortoise import connections
from tortoise.expressions import Q
from tortoise.fields import BinaryField
from tortoise.models import Model
from tortoise.transactions import in_transaction

from models import (
    AuditLog,
    Bot,
    Conversation,
    KnowledgeChunk,
    KnowledgeItem,
    KnowledgePage,
    KnowledgeSource,
    Message,
    MessageCopy,
    OutboxJob,
    Persona,
    PromptProject,
    PromptRun,
    PromptTemplate,
    PromptVersion,
    ProviderKey,
    SavedReply,
    StoredFile,
    Usage,
    UsageSlot,
    User,
    WidgetSite,
)

FORMAT = "frontdesk-export"
VERSION = 1
# Parents before children: each table only points at tables above it (or at earlier rows of itself).
# Browser sessions and login links are left out on purpose: staff sign in again after a move; so are
# the widget's one-time Telegram link codes (they last minutes).
TABLES: list[type[Model]] = [Bot, WidgetSite, User, Conversation, Message, MessageCopy, StoredFile, KnowledgeItem,
                             Persona, OutboxJob, Usage, UsageSlot, AuditLog, PromptProject, PromptVersion, ProviderKey,
                             PromptRun, PromptTemplate, KnowledgeSource, KnowledgePage, KnowledgeChunk, SavedReply]
# Vectors are not moved: the new deployment embeds the items and chunks again at its first start
# (services.knowledge_sources.queue_stale_embeddings), with whatever model it is set up with.
LEFT_OUT = frozenset({"embedding", "embedding_model"})
# The rows of a table that are the deployment's own: the templates shipped with the product (those with
# a slug and no owner) come with the product into the new database, so only the customers' are moved.
ROWS: dict[type[Model], Q] = {PromptTemplate: Q(owner_id__isnull=False)}
# Tables whose rows take new ids on import: nothing points at them, and the product's shipped rows
# may already hold their ids in the new database.
NEW_IDS: set[type[Model]] = {PromptTemplate}
# Columns that may point at a later row of their own table (a website visitor linked to a Telegram
# customer who wrote later): written once every row is in.
LATER: dict[type[Model], tuple[str, ...]] = {User: ("linked_to_id",)}
# The tables without a bot of their own: their rows belong to the bot of the parent named here.
THROUGH: dict[type[Model], str] = {KnowledgePage: "source__bot_id", PromptVersion: "project__bot_id",
                                   PromptTemplate: "owner__bot_id"}
BATCH = 500


class TransferError(Exception):
    pass


def _plain(value: object) -> object:
    if isinstance(value, bytes):  # a visitor's file: base64, read back by the column's type (`_instance`)
        return base64.b64encode(value).decode()
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal | UUID):
        return str(value)
    raise TypeError(f"cannot export {type(value).__name__}")


def belonging_to(model: type[Model], bot_id: int) -> Q:
    """The rows of `model` that are bot `bot_id`'s: by their own bot, else by their parent's (`THROUGH`)."""
    if model is Bot:
        return Q(id=bot_id)
    if model in THROUGH:
        through: dict[str, Any] = {THROUGH[model]: bot_id}
        return Q(**through)
    if "bot" in model._meta.fk_fields:
        return Q(bot_id=bot_id)
    raise TransferError(f"{model.__name__} has no bot: say in bot.transfer.THROUGH whose rows it holds")


async def export_to(out: TextIO, bot_id: int | None = None) -> dict[str, int]:
    """Write every row of every table (with `bot_id`, only that bot's); return how many rows each table had."""
    counts: dict[str, int] = {}
    out.write(json.dumps({"format": FORMAT, "version": VERSION}) + "\n")
    for model in TABLES:
        name = model.__name__
        counts[name] = 0
        offset = 0
        rows_of = ROWS.get(model, Q()) & (belonging_to(model, bot_id) if bot_id is not None else Q())
        while rows := await model.filter(rows_of).order_by("id").offset(offset).limit(BATCH).values():
            for row in rows:
                row = {key: value for key, value in row.items() if key not in LEFT_OUT}
                out.write(json.dumps({"table": name, "row": row}, default=_plain, ensure_ascii=False) + "\n")
            counts[name] += len(rows)
            offset += len(rows)
    return counts


def _rows(lines: Iterator[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        header = json.loads(next(lines, "{}") or "{}")
    except ValueError:
        header = {}
    if not isinstance(header, dict) or header.get("format") != FORMAT or header.get("version") != VERSION:
        raise TransferError("this is not a Frontdesk export (or one from a newer version)")
    for number, line in enumerate(lines, start=2):
        if line.strip():
            try:
                entry = json.loads(line)
                yield str(entry["table"]), dict(entry["row"])
            except (ValueError, KeyError, TypeError) as error:
                raise TransferError(f"line {number} is not a row: {error}") from error


def _instance(model: type[Model], row: dict[str, Any]) -> Model:
    fields = model._meta.fields_map
    values = {}
    if model in NEW_IDS:
        row = {key: value for key, value in row.items() if key != "id"}
    for key, value in row.items():
        field = fields.get(key) or fields.get(key.removesuffix("_id"))
        if field is None:
            raise TransferError(f"{model.__name__} has no field {key!r}")
        source = fields.get(key)
        if isinstance(source, BinaryField) and isinstance(value, str):
            value = base64.b64decode(value)
        values[key] = source.to_python_value(value) if source is not None and value is not None else value
    return model(**values)


async def import_from(source: TextIO) -> dict[str, int]:
    """Load an export into an empty, migrated database, in one transaction."""
    if await Bot.exists():
        raise TransferError("the database already has data: import only into a new, migrated one")
    models = {model.__name__: model for model in TABLES}
    counts = {name: 0 for name in models}
    pending: list[Model] = []
    current: type[Model] | None = None
    later: list[tuple[type[Model], object, dict[str, Any]]] = []
    async with in_transaction():
        for name, row in _rows(iter(source)):
            model = models.get(name)
            if model is None:
                raise TransferError(f"unknown table {name!r}")
            if current is not model or len(pending) >= BATCH:
                await _flush(current, pending)
                current, pending = model, []
            deferred = {key: row.pop(key) for key in LATER.get(model, ()) if row.get(key) is not None}
            if deferred:
                later.append((model, row.get("id"), deferred))
            pending.append(_instance(model, row))
            counts[name] += 1
        await _flush(current, pending)
        for model, row_id, values in later:
            await model.filter(id=row_id).update(**values)
    await _continue_ids_after_the_imported_ones()
    return counts


async def _flush(model: type[Model] | None, rows: list[Model]) -> None:
    if model is not None and rows:
        await model.bulk_create(rows)


async def _continue_ids_after_the_imported_ones() -> None:
    """PostgreSQL's sequences do not know about rows inserted with their ids: move them on."""
    connection = connections.get("default")
    if connection.capabilities.dialect != "postgres":
        return  # SQLite takes the next id from the largest in the table
    for model in TABLES:
        table = model._meta.db_table
        await connection.execute_query(
            f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), "
            f"COALESCE((SELECT MAX(id) FROM \"{table}\"), 0) + 1, false)")


async def export_file(path: Path, bot_id: int | None = None) -> dict[str, int]:
    """Write the export beside `path` and move it there once complete: the file at `path` is a whole export
    or is not there (a full disk or an error half-way leaves nothing that looks like one)."""
    handle, partial = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            counts = await export_to(out, bot_id)
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return counts


async def import_file(path: Path) -> dict[str, int]:
    with path.open(encoding="utf-8") as source:
        return await import_from(source)
