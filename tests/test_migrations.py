"""The migrations in the repository describe exactly the models: nobody forgot `makemigrations`."""

from __future__ import annotations

import ast
import uuid
from datetime import UTC, datetime

import pytest
from tortoise import Tortoise, connections
from tortoise.exceptions import IntegrityError
from tortoise.migrations.api import migrate as apply_migrations
from tortoise.migrations.autodetector import MigrationAutodetector

from bot import db
from bot.db import tortoise_config
from models import AuthorKind, Bot, Conversation, Message, User
from tests.conftest import ROOT
from tests.test_analytics import blank_database_url

__all__ = ["blank_database_url"]


async def test_models_and_migrations_agree(database: str) -> None:
    config = tortoise_config(database)
    apps = Tortoise.apps
    assert apps is not None
    writers = await MigrationAutodetector(apps, config["apps"]).changes()
    assert [w.name for w in writers] == [], "models changed without a migration: run makemigrations"


def test_migrations_import_none_of_the_live_code() -> None:
    """A migration is history: an enum imported from models would change it when the enum changes
    (its values are frozen in the migration instead)."""
    ours = {"models", "services", "bot", "handlers", "miniapp"}
    imported: dict[str, set[str]] = {}
    for path in sorted((ROOT / "models" / "migrations").glob("0*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.setdefault(path.name, set()).add(node.module.split(".")[0])
            elif isinstance(node, ast.Import):
                imported.setdefault(path.name, set()).update(alias.name.split(".")[0] for alias in node.names)
    assert imported, "no migrations found"
    assert {name: found & ours for name, found in imported.items() if found & ours} == {}


async def test_a_database_with_people_in_it_takes_the_mini_apps_migration(blank_database_url: str) -> None:
    """0006 adds a NOT NULL column to `user`: existing rows need the database's own default."""
    url = blank_database_url
    try:
        await apply_migrations(config=tortoise_config(url), target="models.0005_query_indexes")
    finally:
        await Tortoise.close_connections()
    await db.open_database(url, run_migrations=False)
    client = connections.get("default")
    postgres = client.capabilities.dialect == "postgres"
    marks = ("$1", "$2") if postgres else ("?", "?")
    now = datetime.now(UTC)
    await client.execute_query("INSERT INTO bot (id, telegram_id, username, settings, created_at) "
                               f"VALUES (1, 7000000001, 'shop_bot', '{{}}', {marks[0]})", [now])
    await client.execute_query('INSERT INTO "user" (id, bot_id, telegram_id, first_name, last_name, username, '
                               "language, role, blocked_bot, banned, online, created_at, last_seen_at) "
                               f"VALUES (1, 1, 5, 'Ann', '', '', 'en', 'customer', false, false, false, "
                               f"{marks[0]}, {marks[1]})", [now, now])
    await db.close_database()
    await db.migrate(url)
    await db.open_database(url, run_migrations=False)
    try:
        ann = await User.get(id=1)
        assert ann.preferences == {}
        assert ann.first_name == "Ann"
    finally:
        await db.close_database()


async def test_a_message_delivered_twice_is_stored_once_on_sqlite_too(blank_database_url: str) -> None:
    """0003 rebuilt `message` on SQLite without its unique (bot, source_key); 0018 gives it back, keeping the rows
    a re-delivery had already stored twice (the later copy loses its key, not its text)."""
    url = blank_database_url
    if not url.startswith("sqlite"):
        pytest.skip("PostgreSQL has had the constraint since migration 0001")
    try:
        await apply_migrations(config=tortoise_config(url), target="models.0017_bot_registry")
    finally:
        await Tortoise.close_connections()
    await db.open_database(url, run_migrations=False)
    bot = await Bot.create(telegram_id=7000000001)
    ann = await User.create(bot=bot, telegram_id=5, first_name="Ann")
    conversation = await Conversation.create(uuid=uuid.uuid4(), bot=bot, user=ann)
    for _ in range(2):  # what SQLite let through before
        await Message.create(bot=bot, conversation=conversation, author_kind=AuthorKind.CUSTOMER, text="Hi",
                             source_key="tg:1")
    await db.close_database()
    await db.migrate(url)
    await db.open_database(url, run_migrations=False)
    try:
        kept = await Message.filter(conversation=conversation).order_by("id")
        assert [(m.text, m.source_key) for m in kept] == [("Hi", "tg:1"), ("Hi", None)]
        with pytest.raises(IntegrityError):
            await Message.create(bot=bot, conversation=conversation, author_kind=AuthorKind.CUSTOMER, text="Hi",
                                 source_key="tg:1")
    finally:
        await db.close_database()
