"""Full-text search over the knowledge base: FTS5 on SQLite, a tsvector with GIN on PostgreSQL.

Written by hand: the two databases need different DDL, which the autodetector cannot express.
"""

from typing import Any

from tortoise import migrations
from tortoise.migrations import operations as ops

SQLITE_FORWARD = [
    """CREATE VIRTUAL TABLE knowledge_fts USING fts5(
        question, answer, tags, content='knowledge_item', content_rowid='id',
        tokenize='unicode61 remove_diacritics 2')""",
    """CREATE TRIGGER knowledge_fts_insert AFTER INSERT ON knowledge_item BEGIN
        INSERT INTO knowledge_fts(rowid, question, answer, tags)
        VALUES (new.id, new.question, new.answer, new.tags);
    END""",
    """CREATE TRIGGER knowledge_fts_delete AFTER DELETE ON knowledge_item BEGIN
        INSERT INTO knowledge_fts(knowledge_fts, rowid, question, answer, tags)
        VALUES ('delete', old.id, old.question, old.answer, old.tags);
    END""",
    """CREATE TRIGGER knowledge_fts_update AFTER UPDATE OF question, answer, tags ON knowledge_item BEGIN
        INSERT INTO knowledge_fts(knowledge_fts, rowid, question, answer, tags)
        VALUES ('delete', old.id, old.question, old.answer, old.tags);
        INSERT INTO knowledge_fts(rowid, question, answer, tags)
        VALUES (new.id, new.question, new.answer, new.tags);
    END""",
    "INSERT INTO knowledge_fts(knowledge_fts) VALUES ('rebuild')",
]
SQLITE_BACKWARD = [
    "DROP TRIGGER IF EXISTS knowledge_fts_update",
    "DROP TRIGGER IF EXISTS knowledge_fts_delete",
    "DROP TRIGGER IF EXISTS knowledge_fts_insert",
    "DROP TABLE IF EXISTS knowledge_fts",
]
# 'simple': no stemming, so one index serves English, Russian and Uzbek alike.
POSTGRES_FORWARD = [
    """ALTER TABLE knowledge_item ADD COLUMN search tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('simple', coalesce(question, '')), 'A') ||
        setweight(to_tsvector('simple', coalesce(tags, '')), 'B') ||
        setweight(to_tsvector('simple', coalesce(answer, '')), 'C')) STORED""",
    "CREATE INDEX knowledge_item_search_idx ON knowledge_item USING GIN (search)",
]
POSTGRES_BACKWARD = [
    "DROP INDEX IF EXISTS knowledge_item_search_idx",
    "ALTER TABLE knowledge_item DROP COLUMN IF EXISTS search",
]


def _statements(schema_editor: Any, forward: bool) -> list[str]:
    dialect = schema_editor.client.capabilities.dialect
    if dialect == "sqlite":
        return SQLITE_FORWARD if forward else SQLITE_BACKWARD
    if dialect == "postgres":
        return POSTGRES_FORWARD if forward else POSTGRES_BACKWARD
    raise RuntimeError(f"knowledge search supports SQLite and PostgreSQL, not {dialect}")


async def create_search(apps: Any, schema_editor: Any) -> None:
    for statement in _statements(schema_editor, forward=True):
        await schema_editor.client.execute_script(statement)


async def drop_search(apps: Any, schema_editor: Any) -> None:
    for statement in _statements(schema_editor, forward=False):
        await schema_editor.client.execute_script(statement)


class Migration(migrations.Migration):
    dependencies = [("models", "0001_initial")]

    operations = [ops.RunPython(create_search, drop_search)]
