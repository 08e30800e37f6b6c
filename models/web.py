from tortoise import fields
from tortoise.models import Model


class LoginLink(Model):
    """A one-time link from /dashboard that opens the Mini App in a normal browser.

    Only a digest of the token is stored: a leaked database gives no working link.
    """

    id = fields.IntField(primary_key=True)
    bot: fields.ForeignKeyRelation["Bot"] = fields.ForeignKeyField("models.Bot", related_name="login_links")
    bot_id: int  # the column behind `bot`
    user: fields.ForeignKeyRelation["User"] = fields.ForeignKeyField(
        "models.User", related_name="login_links", on_delete=fields.CASCADE)
    user_id: int  # the column behind `user`
    token_digest = fields.CharField(max_length=64, unique=True)
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "login_link"

    def __str__(self) -> str:
        return f"login link {self.id}"


class WebSession(Model):
    """A browser session made from a login link: the cookie holds the token, this row its digest."""

    id = fields.IntField(primary_key=True)
    bot: fields.ForeignKeyRelation["Bot"] = fields.ForeignKeyField("models.Bot", related_name="web_sessions")
    bot_id: int  # the column behind `bot`
    user: fields.ForeignKeyRelation["User"] = fields.ForeignKeyField(
        "models.User", related_name="web_sessions", on_delete=fields.CASCADE)
    user_id: int  # the column behind `user`
    token_digest = fields.CharField(max_length=64, unique=True)
    csrf_token = fields.CharField(max_length=64)  # sent back in X-CSRF-Token on every change
    expires_at = fields.DatetimeField()
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "web_session"

    def __str__(self) -> str:
        return f"web session {self.id}"


from models.tenants import Bot  # noqa: E402
from models.users import User  # noqa: E402
