"""The embedded database shared by two processes: the server and a CLI command run beside it."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

from bot import db
from bot.db import SQLITE_BUSY_TIMEOUT_MS
from models import Bot


async def test_a_write_waits_for_another_processes_transaction_instead_of_failing(tmp_path: Path) -> None:
    """sqlite3 gives up after 5 s by default ("database is locked"): a `kb add` while the server indexes a large
    document failed so. Another connection holds the write lock for 6 s; our write waits and succeeds."""
    assert SQLITE_BUSY_TIMEOUT_MS > 6000  # longer than the other connection holds its lock below
    path = tmp_path / "frontdesk.sqlite3"
    await db.open_database(f"sqlite://{path}")
    try:
        locked, release = threading.Event(), threading.Event()

        def hold_the_write_lock() -> None:
            other = sqlite3.connect(path, isolation_level=None)
            other.execute("BEGIN IMMEDIATE")
            locked.set()
            release.wait(6.0)
            other.execute("COMMIT")
            other.close()

        holder = threading.Thread(target=hold_the_write_lock)
        holder.start()
        await asyncio.to_thread(locked.wait)
        await Bot.create(telegram_id=42, username="shop")  # would raise OperationalError after 5 s before
        await asyncio.to_thread(holder.join)
        assert await Bot.exists(telegram_id=42)
    finally:
        await db.close_database()
