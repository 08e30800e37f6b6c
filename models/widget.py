from tortoise import fields
from tortoise.models import Model


class WidgetSite(Model):
    """A website that embeds the chat widget: who may embed it, and how it looks."""

    id = fields.IntField(primary_key=True)
    bot: fields.ForeignKeyRelation["Bot"] = fields.ForeignKeyField("models.Bot", related_name="widget_sites")
    bot_id: int  # the column behind `bot`
    public_key = fields.CharField(max_length=64, unique=True)  # in the page's <script data-site=...>
    # The site signs its own logged-in users' ids with this (identity verification); shown to the operator.
    secret = fields.CharField(max_length=64)
    # After a rotation the replaced secret still verifies identities until previous_secret_until.
    previous_secret = fields.CharField(max_length=64, default="", db_default="")  # sites that predate it: ""
    previous_secret_until = fields.DatetimeField(null=True)
    # Signs the visitor tokens the server issues; never leaves the server.
    token_key = fields.CharField(max_length=64)
    allowed_origins: list[str] = fields.JSONField(default=list)
    title = fields.CharField(max_length=128, default="")
    color = fields.CharField(max_length=16, default="#2563eb")  # the bubble, header and own messages
    text_color = fields.CharField(max_length=16, default="#ffffff")  # text on that colour
    greeting = fields.TextField(default="")  # empty: the translated default greeting
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "widget_site"

    def __str__(self) -> str:
        return self.public_key


class WidgetLink(Model):
    """A one-time code a website visitor asks for to link their chat with a Telegram account.

    The code goes into a t.me deep link; only its digest is stored. The Telegram customer who opens
    it claims it, and the link is made only when they confirm (services.widget_links).
    """

    id = fields.IntField(primary_key=True)
    bot: fields.ForeignKeyRelation["Bot"] = fields.ForeignKeyField("models.Bot", related_name="widget_links")
    bot_id: int  # the column behind `bot`
    visitor: fields.ForeignKeyRelation["User"] = fields.ForeignKeyField(
        "models.User", related_name="widget_links", on_delete=fields.CASCADE)
    visitor_id: int  # the column behind `visitor`
    code_digest = fields.CharField(max_length=64, unique=True)
    claimed_by: fields.ForeignKeyNullableRelation["User"] = fields.ForeignKeyField(
        "models.User", related_name="widget_link_claims", null=True, on_delete=fields.CASCADE)
    claimed_by_id: int | None  # the column behind `claimed_by`
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "widget_link"

    def __str__(self) -> str:
        return f"widget link {self.id}"


from models.tenants import Bot  # noqa: E402  (forward reference for the type above)
from models.users import User  # noqa: E402
