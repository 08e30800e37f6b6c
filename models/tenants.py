from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class BotState(StrEnum):
    ACTIVE = "active"  # served: its updates are taken and answered
    PAUSED = "paused"  # kept, not served (by the platform owner, or its token was revoked)
    REMOVED = "removed"  # not served; its data is deleted once the retention period has passed


class Bot(Model):
    """A Telegram bot served by this deployment: every tenant-owned row points at one.

    The bot from BOT_TOKEN keeps its token in the settings (`token_secret` is empty); a bot the platform
    owner added keeps it here, sealed with ENCRYPTION_KEY.
    """

    id = fields.IntField(primary_key=True)
    telegram_id = fields.BigIntField(unique=True)
    username = fields.CharField(max_length=64, default="")
    manager_chat_id = fields.BigIntField(null=True)
    settings: dict[str, object] = fields.JSONField(default=dict)
    state = fields.CharEnumField(BotState, max_length=16, default=BotState.ACTIVE, db_default="active")
    # Why it is paused: "owner" (the platform owner paused it) or "revoked" (Telegram refused its token).
    paused_reason = fields.CharField(max_length=16, default="", db_default="")
    token_secret = fields.TextField(default="", db_default="")  # sealed (services.secrets_box), never plain
    token_key_id = fields.CharField(max_length=16, default="", db_default="")  # which key sealed it
    token_last4 = fields.CharField(max_length=8, default="", db_default="")  # shown to tell tokens apart
    # The last part of its webhook's path: random, so one bot's address says nothing about another's.
    webhook_key = fields.CharField(max_length=64, default="", db_default="")
    removed_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "bot"

    def __str__(self) -> str:
        return f"@{self.username or self.telegram_id}"
