from tortoise import fields
from tortoise.models import Model


class KnowledgeItem(Model):
    """A question and its answer, full-text indexed by a migration (FTS5 / tsvector)."""

    id = fields.IntField(primary_key=True)
    bot: fields.ForeignKeyRelation["Bot"] = fields.ForeignKeyField("models.Bot", related_name="knowledge")
    question = fields.TextField()
    answer = fields.TextField()
    tags = fields.CharField(max_length=512, default="")
    enabled = fields.BooleanField(default=True)
    hit_count = fields.IntField(default=0)
    # A digest of the question: importing the same file twice updates instead of duplicating.
    question_key = fields.CharField(max_length=64)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "knowledge_item"
        unique_together = (("bot", "question_key"),)

    def __str__(self) -> str:
        return self.question[:60]


class Persona(Model):
    """The system prompt. Every change is a new version, one active per bot."""

    id = fields.IntField(primary_key=True)
    bot: fields.ForeignKeyRelation["Bot"] = fields.ForeignKeyField("models.Bot", related_name="personas")
    version = fields.IntField()
    text = fields.TextField()
    active = fields.BooleanField(default=False)
    labels: list[str] = fields.JSONField(default=list, db_default="[]")  # e.g. "production": one version each
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "persona"
        unique_together = (("bot", "version"),)

    def __str__(self) -> str:
        return f"persona v{self.version}"


from models.tenants import Bot  # noqa: E402
