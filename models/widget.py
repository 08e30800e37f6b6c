from tortoise import fields
from tortoise.models import Model


class WidgetSite(Model):
    """A website that embeds the chat widget: who may embed it, and how it looks."""

    id = fields.IntField(primary_key=True)
    bot: fields.ForeignKeyRelation["Bot"] = fields.ForeignKeyField("models.Bot", related_name="widget_sites")
    public_key = fields.CharField(max_length=64, unique=True)  # in the page's <script data-site=...>
    # The site signs its own logged-in users' ids with this (identity verification); shown to the operator.
    secret = fields.CharField(max_length=64)
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


from models.tenants import Bot  # noqa: E402  (forward reference for the type above)
