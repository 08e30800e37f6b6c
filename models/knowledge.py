from enum import StrEnum

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model


class KnowledgeItem(Model):
    """A question and its answer, full-text indexed by a migration (FTS5 / tsvector)."""

    id = fields.IntField(primary_key=True)
    bot: fields.ForeignKeyRelation["Bot"] = fields.ForeignKeyField("models.Bot", related_name="knowledge")
    bot_id: int  # the column behind `bot`
    question = fields.TextField()
    answer = fields.TextField()
    tags = fields.CharField(max_length=512, default="")
    enabled = fields.BooleanField(default=True)
    hit_count = fields.IntField(default=0)
    # A digest of the question: importing the same file twice updates instead of duplicating.
    question_key = fields.CharField(max_length=64)
    # Its meaning (services.embeddings): float16 bytes by `embedding_model`; empty model = not embedded yet.
    embedding = fields.BinaryField(null=True)
    embedding_model = fields.CharField(max_length=120, default="")
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "knowledge_item"
        unique_together = (("bot", "question_key"),)

    def __str__(self) -> str:
        return self.question[:60]


class SourceKind(StrEnum):
    FILE = "file"  # an uploaded document: PDF, Word, HTML, Markdown, text
    PAGE = "page"  # one web page
    SITE = "site"  # a website followed from its start page within its host


class SourceStatus(StrEnum):
    QUEUED = "queued"
    INDEXING = "indexing"
    READY = "ready"
    FAILED = "failed"


class KnowledgeSource(Model):
    """A document or a website the AI answers from, cut into `KnowledgeChunk`s."""

    id = fields.IntField(primary_key=True)
    bot: fields.ForeignKeyRelation["Bot"] = fields.ForeignKeyField("models.Bot", related_name="knowledge_sources")
    bot_id: int  # the column behind `bot`
    kind = fields.CharEnumField(SourceKind, max_length=8)
    title = fields.CharField(max_length=300)
    location = fields.TextField()  # the file's name, or the start URL
    status = fields.CharEnumField(SourceStatus, default=SourceStatus.QUEUED, max_length=16)
    # Why it failed, as a stable code and its parameters (the Mini App translates them).
    error: dict[str, object] = fields.JSONField(default=dict)
    progress_done = fields.IntField(default=0)  # "indexing n of m"
    progress_total = fields.IntField(default=0)
    chunk_count = fields.IntField(default=0)
    page_limit = fields.IntField(default=200)
    enabled = fields.BooleanField(default=True)
    # Added by the operator's CLI: may fetch private addresses (an intranet wiki), re-syncs too.
    allow_private = fields.BooleanField(default=False)
    content_hash = fields.CharField(max_length=64, default="")  # a file's bytes: the same file again is no change
    created_by: fields.ForeignKeyNullableRelation["User"] = fields.ForeignKeyField(
        "models.User", related_name="knowledge_sources", null=True, on_delete=fields.SET_NULL)
    created_by_id: int | None  # the column behind `created_by`
    last_synced_at = fields.DatetimeField(null=True)
    next_sync_at = fields.DatetimeField(null=True)  # web sources: when the schedule re-reads it
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "knowledge_source"
        indexes = (Index(fields=("bot_id", "id"), name="knowledge_source_bot_idx"),
                   Index(fields=("next_sync_at",), name="knowledge_source_sync_idx"))

    def __str__(self) -> str:
        return self.title[:60]


class KnowledgePage(Model):
    """One page of a web source (or the one document of a file source), with what re-syncs compare."""

    id = fields.IntField(primary_key=True)
    source: fields.ForeignKeyRelation[KnowledgeSource] = fields.ForeignKeyField(
        "models.KnowledgeSource", related_name="pages", on_delete=fields.CASCADE)
    source_id: int  # the column behind `source`
    url = fields.TextField()  # a file source's file name
    url_key = fields.CharField(max_length=64)  # sha256 of `url`: unique per source
    title = fields.CharField(max_length=300, default="")
    etag = fields.CharField(max_length=300, default="")
    last_modified = fields.CharField(max_length=100, default="")
    content_hash = fields.CharField(max_length=64, default="")  # of the extracted text
    fetched_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "knowledge_page"
        unique_together = (("source", "url_key"),)

    def __str__(self) -> str:
        return self.url[:60]


class KnowledgeChunk(Model):
    """A passage of a source: what retrieval finds and the AI reads, with where it came from."""

    id = fields.IntField(primary_key=True)
    bot: fields.ForeignKeyRelation["Bot"] = fields.ForeignKeyField("models.Bot", related_name="knowledge_chunks")
    bot_id: int  # the column behind `bot`
    source: fields.ForeignKeyRelation[KnowledgeSource] = fields.ForeignKeyField(
        "models.KnowledgeSource", related_name="chunks", on_delete=fields.CASCADE)
    source_id: int  # the column behind `source`
    page: fields.ForeignKeyRelation[KnowledgePage] = fields.ForeignKeyField(
        "models.KnowledgePage", related_name="chunks", on_delete=fields.CASCADE)
    page_id: int  # the column behind `page`
    ordinal = fields.IntField()
    title = fields.CharField(max_length=300, default="")  # the document's or the page's title
    heading = fields.TextField(default="")  # the heading path, "Delivery › Prices"
    url = fields.TextField(default="")  # the web page; "" for a document
    page_number = fields.IntField(null=True)  # a PDF's page
    text = fields.TextField()
    embedding = fields.BinaryField(null=True)
    embedding_model = fields.CharField(max_length=120, default="")

    class Meta:
        table = "knowledge_chunk"
        indexes = (Index(fields=("bot_id", "embedding_model"), name="knowledge_chunk_bot_model_idx"),
                   Index(fields=("source_id", "ordinal"), name="knowledge_chunk_source_idx"),
                   Index(fields=("page_id",), name="knowledge_chunk_page_idx"))

    def __str__(self) -> str:
        return self.text[:60]


class Persona(Model):
    """The system prompt. Every change is a new version, one active per bot."""

    id = fields.IntField(primary_key=True)
    bot: fields.ForeignKeyRelation["Bot"] = fields.ForeignKeyField("models.Bot", related_name="personas")
    bot_id: int  # the column behind `bot`
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
from models.users import User  # noqa: E402
