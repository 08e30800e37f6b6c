from enum import StrEnum

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model


class Role(StrEnum):
    CUSTOMER = "customer"
    PENDING = "pending"  # in the manager chat, waiting for an admin's approval: no staff rights yet
    VIEWER = "viewer"  # staff who may read the desk but change nothing
    MANAGER = "manager"
    ADMIN = "admin"


class User(Model):
    """A customer or a staff member of one bot."""

    id = fields.IntField(primary_key=True)
    bot: fields.ForeignKeyRelation["Bot"] = fields.ForeignKeyField("models.Bot", related_name="users")
    bot_id: int  # the column behind `bot`
    telegram_id = fields.BigIntField(null=True)
    widget_visitor_id = fields.CharField(max_length=64, null=True)
    first_name = fields.CharField(max_length=256, default="")
    last_name = fields.CharField(max_length=256, default="")
    username = fields.CharField(max_length=64, default="")
    language = fields.CharField(max_length=8, default="")
    role = fields.CharEnumField(Role, default=Role.CUSTOMER, max_length=16)
    blocked_bot = fields.BooleanField(default=False)
    banned = fields.BooleanField(default=False)
    # Staff presence (/online, /away): whether customers are told a person will answer soon.
    online = fields.BooleanField(default=False)
    # The customer's own choices from the Mini App: {"silent": bool, "rating_requests": bool}.
    preferences: dict[str, object] = fields.JSONField(default=dict, db_default="{}")  # rows that predate it: {}
    # A website visitor's logout (services.widget): tokens and identity hashes issued before it are void.
    widget_signed_out_at = fields.DatetimeField(null=True)
    # A website visitor whose chats a Telegram customer confirmed are theirs (services.widget_links):
    # they appear in that customer's history, export and deletion.
    linked_to: fields.ForeignKeyNullableRelation["User"] = fields.ForeignKeyField(
        "models.User", related_name="linked_visitors", null=True, on_delete=fields.SET_NULL)
    linked_to_id: int | None  # the column behind `linked_to`
    created_at = fields.DatetimeField(auto_now_add=True)
    last_seen_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "user"
        unique_together = (("bot", "telegram_id"), ("bot", "widget_visitor_id"))
        # The staff among a bot's customers (the analytics' managers, "is anyone online?").
        indexes = (Index(fields=("bot_id", "role"), name="user_role_idx"),
                   # A Telegram customer's own conversations include the website visitors linked to them.
                   Index(fields=("linked_to_id",), name="user_linked_to_idx"))

    def __str__(self) -> str:
        return self.full_name or f"user {self.id}"

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


from models.tenants import Bot  # noqa: E402  (forward reference for the type above)
