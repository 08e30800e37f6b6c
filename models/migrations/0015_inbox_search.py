"""The inbox built for triage: search over what was written, and its tab counts (issue 17).

- Message text is full-text indexed: FTS5 on SQLite (an external-content table kept by triggers, as
  migration 0002 does for the knowledge base), a GIN index on `to_tsvector('simple', text)` on
  PostgreSQL. 'simple' does not stem, so one index serves English, Russian and Uzbek alike; an
  expression index, not a stored column, so the message table is not rewritten.
- `conversation_open_idx` holds only the conversations not closed (a few percent of a shop's): the
  tab counts read it alone, whatever the size of the history.

Written by hand: the two databases need different DDL, which the autodetector cannot express.
"""

from typing import Any

from tortoise import migrations
from tortoise.migrations import operations as ops

OPEN_INDEX = ("CREATE INDEX conversation_open_idx ON conversation (bot_id, channel, status, mode, assignee_id) "
              "WHERE status <> 'closed'")
SQLITE_FORWARD = [
    """CREATE VIRTUAL TABLE message_fts USING fts5(
        text, content='message', content_rowid='id', tokenize='unicode61 remove_diacritics 2')""",
    """CREATE TRIGGER message_fts_insert AFTER INSERT ON message BEGIN
        INSERT INTO message_fts(rowid, text) VALUES (new.id, new.text);
    END""",
    """CREATE TRIGGER message_fts_delete AFTER DELETE ON message BEGIN
        INSERT INTO message_fts(message_fts, rowid, text) VALUES ('delete', old.id, old.text);
    END""",
    """CREATE TRIGGER message_fts_update AFTER UPDATE OF text ON message BEGIN
        INSERT INTO message_fts(message_fts, rowid, text) VALUES ('delete', old.id, old.text);
        INSERT INTO message_fts(rowid, text) VALUES (new.id, new.text);
    END""",
    "INSERT INTO message_fts(message_fts) VALUES ('rebuild')",
    OPEN_INDEX,
]
SQLITE_BACKWARD = [
    "DROP INDEX IF EXISTS conversation_open_idx",
    "DROP TRIGGER IF EXISTS message_fts_update",
    "DROP TRIGGER IF EXISTS message_fts_delete",
    "DROP TRIGGER IF EXISTS message_fts_insert",
    "DROP TABLE IF EXISTS message_fts",
]
POSTGRES_FORWARD = [
    "CREATE INDEX message_search_idx ON message USING GIN (to_tsvector('simple', text))",
    OPEN_INDEX,
]
POSTGRES_BACKWARD = [
    "DROP INDEX IF EXISTS conversation_open_idx",
    "DROP INDEX IF EXISTS message_search_idx",
]


def _statements(schema_editor: Any, forward: bool) -> list[str]:
    dialect = schema_editor.client.capabilities.dialect
    if dialect == "sqlite":
        return SQLITE_FORWARD if forward else SQLITE_BACKWARD
    if dialect == "postgres":
        return POSTGRES_FORWARD if forward else POSTGRES_BACKWARD
    raise RuntimeError(f"message search supports SQLite and PostgreSQL, not {dialect}")


async def create_search(apps: Any, schema_editor: Any) -> None:
    for statement in _statements(schema_editor, forward=True):
        await schema_editor.client.execute_script(statement)


async def drop_search(apps: Any, schema_editor: Any) -> None:
    for statement in _statements(schema_editor, forward=False):
        await schema_editor.client.execute_script(statement)


class Migration(migrations.Migration):
    dependencies = [("models", "0014_saved_replies")]

    initial = False

    operations = [ops.RunPython(create_search, drop_search)]
