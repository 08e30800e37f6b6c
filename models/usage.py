from datetime import date

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model


class Usage(Model):
    """Per customer per day, what quotas and analytics count."""

    id = fields.IntField(primary_key=True)
    bot: fields.ForeignKeyRelation["Bot"] = fields.ForeignKeyField("models.Bot", related_name="usage")
    bot_id: int  # the column behind `bot`
    user: fields.ForeignKeyRelation["User"] = fields.ForeignKeyField("models.User", related_name="usage")
    user_id: int  # the column behind `user`
    day: date = fields.DateField()
    messages = fields.IntField(default=0)
    ai_messages = fields.IntField(default=0)
    # What the customer's voice and images used (their quotas; their cost is in `cost` too).
    transcriptions = fields.IntField(default=0, db_default=0)
    audio_seconds = fields.IntField(default=0, db_default=0)
    images = fields.IntField(default=0, db_default=0)
    tokens_in = fields.IntField(default=0)
    tokens_out = fields.IntField(default=0)
    cost = fields.DecimalField(max_digits=12, decimal_places=6, default=0)

    class Meta:
        table = "usage"
        unique_together = (("user", "day"),)

    def __str__(self) -> str:
        return f"usage {self.user_id} {self.day}"


class UsageSlot(Model):
    """The AI's answers, tokens and cost per bot per quarter of an hour (`slot`: its start, UTC).

    For analytics by day in the business's time zone: every zone's day starts on a quarter of an
    hour, so a day is a whole number of slots (a `Usage` row's day is a UTC day). Reading a year of
    slots is cheap; reading a year of answers' `Message.ai_meta` is not.
    """

    id = fields.IntField(primary_key=True)
    bot: fields.ForeignKeyRelation["Bot"] = fields.ForeignKeyField("models.Bot", related_name="usage_slots")
    bot_id: int  # the column behind `bot`
    slot = fields.DatetimeField()
    ai_messages = fields.IntField(default=0)
    transcriptions = fields.IntField(default=0, db_default=0)
    audio_seconds = fields.IntField(default=0, db_default=0)
    images = fields.IntField(default=0, db_default=0)
    tokens_in = fields.IntField(default=0)
    tokens_out = fields.IntField(default=0)
    cost = fields.DecimalField(max_digits=12, decimal_places=6, default=0)

    class Meta:
        table = "usage_slot"
        unique_together = (("bot", "slot"),)

    def __str__(self) -> str:
        return f"usage {self.bot_id} {self.slot:%Y-%m-%d %H:%M}"


class AuditLog(Model):
    id = fields.IntField(primary_key=True)
    bot: fields.ForeignKeyRelation["Bot"] = fields.ForeignKeyField("models.Bot", related_name="audit")
    bot_id: int  # the column behind `bot`
    actor: fields.ForeignKeyNullableRelation["User"] = fields.ForeignKeyField(
        "models.User", related_name="audit_entries", null=True, on_delete=fields.SET_NULL
    )
    actor_id: int | None  # the column behind `actor`
    action = fields.CharField(max_length=64)
    target = fields.CharField(max_length=128, default="")
    details: dict[str, object] = fields.JSONField(default=dict)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "audit_log"
        indexes = (Index(fields=("bot_id", "action", "created_at"), name="audit_log_action_idx"),)

    def __str__(self) -> str:
        return f"{self.action} {self.target}"


from models.tenants import Bot  # noqa: E402
from models.users import User  # noqa: E402
