"""The audit log of staff actions: who did what to which row, and when."""

from __future__ import annotations

from typing import Any

from models import AuditLog, User


async def audit(bot_id: int, actor: User | None, action: str, target: str, **details: Any) -> None:
    await AuditLog.create(bot_id=bot_id, actor=actor, action=action, target=target, details=details)
