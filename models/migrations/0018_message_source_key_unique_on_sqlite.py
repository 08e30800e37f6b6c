"""SQLite gets back the unique (bot_id, source_key) index on `message` that migration 0003 lost when it rebuilt
the table: a Telegram update or a widget message delivered twice must be stored once, and on SQLite only the
in-memory list of recent updates said so (PostgreSQL has had the constraint all along).

Rows stored twice before this (a re-delivery the list had forgotten) keep their text: the later copies lose
their `source_key` (NULLs never collide), so the index can be made without deleting anything.

Written by hand: it concerns SQLite alone, which the autodetector cannot express.
"""

from typing import Any

from tortoise import migrations
from tortoise.migrations import operations as ops

FORWARD = [
    """UPDATE message SET source_key = NULL WHERE source_key IS NOT NULL AND id NOT IN (
        SELECT MIN(id) FROM message WHERE source_key IS NOT NULL GROUP BY bot_id, source_key)""",
    'CREATE UNIQUE INDEX IF NOT EXISTS "uid_message_bot_id_source_key" ON "message" ("bot_id", "source_key")',
]
BACKWARD = ['DROP INDEX IF EXISTS "uid_message_bot_id_source_key"']


async def add_index(apps: Any, schema_editor: Any) -> None:
    if schema_editor.client.capabilities.dialect == "sqlite":
        for statement in FORWARD:
            await schema_editor.client.execute_script(statement)


async def drop_index(apps: Any, schema_editor: Any) -> None:
    if schema_editor.client.capabilities.dialect == "sqlite":
        for statement in BACKWARD:
            await schema_editor.client.execute_script(statement)


class Migration(migrations.Migration):
    dependencies = [("models", "0017_bot_registry")]

    initial = False

    operations = [ops.RunPython(add_index, drop_index)]
