from tortoise import fields
from tortoise.models import Model


class Bot(Model):
    """A Telegram bot served by this deployment: every tenant-owned row points at one."""

    id = fields.IntField(primary_key=True)
    telegram_id = fields.BigIntField(unique=True)
    username = fields.CharField(max_length=64, default="")
    manager_chat_id = fields.BigIntField(null=True)
    settings: dict[str, object] = fields.JSONField(default=dict)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "bot"

    def __str__(self) -> str:
        return f"@{self.username or self.telegram_id}"
