"""The migrations in the repository describe exactly the models: nobody forgot `makemigrations`."""

from __future__ import annotations

from tortoise import Tortoise
from tortoise.migrations.autodetector import MigrationAutodetector

from bot.db import tortoise_config


async def test_models_and_migrations_agree(database: str) -> None:
    config = tortoise_config(database)
    apps = Tortoise.apps
    assert apps is not None
    writers = await MigrationAutodetector(apps, config["apps"]).changes()
    assert [w.name for w in writers] == [], "models changed without a migration: run makemigrations"
