"""Retention: conversations nobody has written in for RETENTION_DAYS are deleted, automatically.

Their messages and message copies go with them (cascading foreign keys); the audit log keeps a
line saying how many went and why. Customers' own export and deletion are separate (per person).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from tortoise.transactions import in_transaction

from models import AuditLog, Bot, Conversation
from services import bots

log = logging.getLogger(__name__)

BATCH = 500  # conversations per transaction: a big first purge never holds a long lock


async def purge_old_conversations(bot_id: int, days: int, now: datetime | None = None) -> int:
    """Delete the bot's conversations whose last message is older than `days`; return how many."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    removed = 0
    while True:
        ids = await Conversation.filter(bot_id=bot_id, last_message_at__lt=cutoff).limit(BATCH).values_list(
            "id", flat=True)
        if not ids:
            break
        async with in_transaction():
            await Conversation.filter(id__in=list(ids)).delete()
        removed += len(ids)  # (SQLite counts the cascaded rows in delete()'s result too)
    if removed:
        await AuditLog.create(bot_id=bot_id, action="retention", target=f"{days} days",
                              details={"conversations": removed, "before": cutoff.isoformat()})
        log.info("retention: deleted %s conversations older than %s days", removed, days)
    return removed


async def run_retention(days: int, removed_bots_kept: timedelta, every: float) -> None:
    """Now and then, until cancelled: delete the bots removed longer than `removed_bots_kept` ago with their
    data, and every bot's conversations older than `days` (0: conversations are kept)."""
    while True:
        try:
            for bot_id in await Bot.all().values_list("id", flat=True) if days else []:
                await purge_old_conversations(int(str(bot_id)), days)
        except Exception:
            log.exception("retention: the purge failed; trying again later")
        await asyncio.sleep(every)
        # After each interval, not at start: a removed bot's data waits for days anyway, and a deployment that
        # keeps its conversations then asks its database nothing at start-up.
        try:
            await bots.purge_removed(removed_bots_kept)
        except Exception:
            log.exception("retention: deleting removed bots failed; trying again later")
