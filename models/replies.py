from tortoise import fields
from tortoise.models import Model


class SavedReply(Model):
    """A named snippet staff insert into a reply: the composer's picker, or `/r NAME` in a topic."""

    id = fields.IntField(primary_key=True)
    bot: fields.ForeignKeyRelation["Bot"] = fields.ForeignKeyField("models.Bot", related_name="saved_replies")
    bot_id: int  # the column behind `bot`
    name = fields.CharField(max_length=40)  # one word, lower case: what `/r NAME` names
    text = fields.TextField()  # plain text, as typed in the Mini App
    author: fields.ForeignKeyNullableRelation["User"] = fields.ForeignKeyField(
        "models.User", related_name="saved_replies", null=True, on_delete=fields.SET_NULL)
    author_id: int | None  # the column behind `author`
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "saved_reply"
        unique_together = (("bot", "name"),)  # also the index the picker and `/r` read by

    def __str__(self) -> str:
        return self.name


from models.tenants import Bot  # noqa: E402  (forward references for the types above)
from models.users import User  # noqa: E402
