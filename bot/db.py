"""Database: Tortoise configuration, migrations applied at start, and one context every task sees."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tortoise import Tortoise
from tortoise.migrations.api import migrate as apply_migrations

log = logging.getLogger(__name__)


SQLITE_BUSY_TIMEOUT_MS = 30_000


def tortoise_config(database_url: str, pool_size: int | None = None) -> dict[str, Any]:
    """Tortoise's configuration; on PostgreSQL a pool of `pool_size` connections unless the URL sets `maxsize`."""
    if database_url.startswith("postgresql://"):
        database_url = "postgres://" + database_url.removeprefix("postgresql://")
    if pool_size and database_url.startswith("postgres://"):
        database_url = _with_pool_size(database_url, pool_size)
    if database_url.startswith("sqlite://") and "busy_timeout" not in database_url and ":memory:" not in database_url:
        # A second process (`python -m bot kb add` or `demo` while the server runs) waits for the writer's
        # transaction instead of failing with "database is locked" after sqlite3's default 5 s.
        database_url += ("&" if "?" in database_url else "?") + f"busy_timeout={SQLITE_BUSY_TIMEOUT_MS}"
    return {
        "connections": {"default": database_url},
        "apps": {
            "models": {
                "models": ["models"],
                "migrations": "models.migrations",
                "default_connection": "default",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


def _with_pool_size(database_url: str, pool_size: int) -> str:
    parts = urlsplit(database_url)
    query = dict(parse_qsl(parts.query))
    query.setdefault("maxsize", str(pool_size))  # Tortoise's default is 5: too few for answers running side by side
    return urlunsplit(parts._replace(query=urlencode(query)))


def _ensure_sqlite_dir(database_url: str) -> None:
    parts = urlsplit(database_url)
    if parts.scheme == "sqlite" and database_url not in ("sqlite://:memory:",):
        path = Path(database_url.removeprefix("sqlite://"))
        path.parent.mkdir(parents=True, exist_ok=True)


async def migrate(database_url: str) -> None:
    """Apply every migration in models/migrations that the database has not seen yet."""
    _ensure_sqlite_dir(database_url)
    try:
        await apply_migrations(config=tortoise_config(database_url))
    finally:
        await Tortoise.close_connections()


async def open_database(database_url: str, *, run_migrations: bool = True, pool_size: int | None = None) -> None:
    if run_migrations:
        await migrate(database_url)
    _ensure_sqlite_dir(database_url)
    # Tortoise keeps its state in a ContextVar; aiogram's and aiohttp's tasks did not inherit
    # ours, so the context is also made the global fallback that every task sees.
    await Tortoise.init(config=tortoise_config(database_url, pool_size), _enable_global_fallback=True)


async def close_database() -> None:
    await Tortoise.close_connections()


# For `tortoise -c bot.db.TORTOISE_ORM makemigrations` during development only.
TORTOISE_ORM = tortoise_config("sqlite:///tmp/frontdesk-makemigrations.sqlite3")
