from datetime import date

from tortoise import fields
from tortoise.models import Model


class Usage(Model):
    """Per customer per day, what quotas and analytics count."""

    id = fields.IntField(primary_key=True)
    bot: fields.ForeignKeyRelation["Bot"] = fields.ForeignKeyField("models.Bot", related_name="usage")
    user: fields.ForeignKeyRelation["User"] = fields.ForeignKeyField("models.User", related_name="usage")
    day: date = fields.DateField()
    messages = fields.IntField(default=0)
    ai_messages = fields.IntField(default=0)
    tokens_in = fields.IntField(default=0)
    tokens_out = fields.IntField(default=0)
    cost = fields.DecimalField(max_digits=12, decimal_places=6, default=0)

    class Meta:
        table = "usage"
        unique_together = (("user", "day"),)

    def __str__(self) -> str:
        return f"usage {self.user_id} {self.day}"  # type: ignore[attr-defined]


class AuditLog(Model):
    id = fields.IntField(primary_key=True)
    bot: fields.ForeignKeyRelation["Bot"] = fields.ForeignKeyField("models.Bot", related_name="audit")
    actor: fields.ForeignKeyNullableRelation["User"] = fields.ForeignKeyField(
        "models.User", related_name="audit_entries", null=True, on_delete=fields.SET_NULL
    )
    action = fields.CharField(max_length=64)
    target = fields.CharField(max_length=128, default="")
    details: dict[str, object] = fields.JSONField(default=dict)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "audit_log"

    def __str__(self) -> str:
        return f"{self.action} {self.target}"


from models.tenants import Bot  # noqa: E402
from models.users import User  # noqa: E402
