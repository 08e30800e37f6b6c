"""The prompt studio: a customer's prompt projects, their versions and runs, templates, own API keys."""

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model


class PromptProject(Model):
    """One customer's project: its context blocks and prompt blocks are one JSON document (`data`).

    The document is saved whole by the editor's autosave, with `revision` as its optimistic lock:
    a save based on an older revision is refused, so two open pages never overwrite each other unseen.
    """

    id = fields.IntField(primary_key=True)
    bot: fields.ForeignKeyRelation["Bot"] = fields.ForeignKeyField("models.Bot", related_name="prompt_projects")
    bot_id: int  # the column behind `bot`
    owner: fields.ForeignKeyRelation["User"] = fields.ForeignKeyField(
        "models.User", related_name="prompt_projects", on_delete=fields.CASCADE)
    owner_id: int  # the column behind `owner`
    name = fields.CharField(max_length=120)
    position = fields.IntField(default=0)
    data: dict[str, object] = fields.JSONField(default=dict)
    revision = fields.IntField(default=1)
    size = fields.IntField(default=0)  # bytes of `data` as JSON, what the size limit counts
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "prompt_project"
        indexes = (Index(fields=("owner_id", "position"), name="prompt_project_owner_idx"),)

    def __str__(self) -> str:
        return self.name


class PromptVersion(Model):
    """An immutable snapshot of one prompt block, taken when it is run with changes since the last one."""

    id = fields.IntField(primary_key=True)
    project: fields.ForeignKeyRelation[PromptProject] = fields.ForeignKeyField(
        "models.PromptProject", related_name="versions", on_delete=fields.CASCADE)
    project_id: int  # the column behind `project`
    block_key = fields.CharField(max_length=32)  # the block's id inside the project's document
    number = fields.IntField()
    name = fields.CharField(max_length=120)
    template = fields.TextField()
    variables: dict[str, str] = fields.JSONField(default=dict)
    compiled = fields.TextField()  # what was sent: context included, as it was then
    labels: list[str] = fields.JSONField(default=list)
    author: fields.ForeignKeyNullableRelation["User"] = fields.ForeignKeyField(
        "models.User", related_name="prompt_versions", null=True, on_delete=fields.SET_NULL)
    author_id: int | None  # the column behind `author`
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "prompt_version"
        unique_together = (("project", "block_key", "number"),)

    def __str__(self) -> str:
        return f"{self.name} v{self.number}"


class PromptRun(Model):
    """One call of a model from the studio or /improve: what was sent, what came back, what it cost."""

    id = fields.IntField(primary_key=True)
    bot: fields.ForeignKeyRelation["Bot"] = fields.ForeignKeyField("models.Bot", related_name="prompt_runs")
    bot_id: int  # the column behind `bot`
    user: fields.ForeignKeyRelation["User"] = fields.ForeignKeyField(
        "models.User", related_name="prompt_runs", on_delete=fields.CASCADE)
    user_id: int  # the column behind `user`
    project: fields.ForeignKeyNullableRelation[PromptProject] = fields.ForeignKeyField(
        "models.PromptProject", related_name="runs", null=True, on_delete=fields.CASCADE)
    project_id: int | None  # the column behind `project`
    version: fields.ForeignKeyNullableRelation[PromptVersion] = fields.ForeignKeyField(
        "models.PromptVersion", related_name="runs", null=True, on_delete=fields.SET_NULL)
    version_id: int | None  # the column behind `version`
    api_key: fields.ForeignKeyNullableRelation["ProviderKey"] = fields.ForeignKeyField(
        "models.ProviderKey", related_name="runs", null=True, on_delete=fields.SET_NULL)
    api_key_id: int | None  # the column behind `api_key`
    kind = fields.CharField(max_length=16, default="run")  # run | improve
    model = fields.CharField(max_length=160)  # the route's key (model@provider) or the own key's model
    own_key = fields.BooleanField(default=False)  # on the customer's own key: not counted against the quota
    prompt = fields.TextField()
    answer = fields.TextField(default="")
    status = fields.CharField(max_length=16, default="running")  # running | ok | error | stopped
    error = fields.CharField(max_length=300, default="")
    tokens_in = fields.IntField(default=0)
    tokens_out = fields.IntField(default=0)
    latency_ms = fields.IntField(default=0)
    cost = fields.DecimalField(max_digits=12, decimal_places=6, default=0)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "prompt_run"
        indexes = (Index(fields=("project_id", "id"), name="prompt_run_project_idx"),
                   Index(fields=("user_id", "id"), name="prompt_run_user_idx"))

    def __str__(self) -> str:
        return f"run {self.id} on {self.model}"


class PromptTemplate(Model):
    """A template in the library: shipped with the product (`slug`, no owner) or a customer's own.

    Full-text indexed by a migration (FTS5 on SQLite, a weighted tsvector on PostgreSQL).
    """

    id = fields.IntField(primary_key=True)
    slug = fields.CharField(max_length=120, null=True, unique=True)  # shipped ones: "en/summarize-text"
    owner: fields.ForeignKeyNullableRelation["User"] = fields.ForeignKeyField(
        "models.User", related_name="prompt_templates", null=True, on_delete=fields.CASCADE)
    owner_id: int | None  # the column behind `owner`
    locale = fields.CharField(max_length=8, default="en")
    title = fields.CharField(max_length=200)
    description = fields.TextField(default="")
    body = fields.TextField()
    tags = fields.CharField(max_length=300, default="")  # "writing, email": lower case, comma separated
    uses = fields.IntField(default=0)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "prompt_template"
        indexes = (Index(fields=("owner_id",), name="prompt_template_owner_idx"),)

    def __str__(self) -> str:
        return self.title


class ProviderKey(Model):
    """A customer's own OpenAI-compatible API key, encrypted with AES-256-GCM under ENCRYPTION_KEY.

    `secret` is base64(nonce | ciphertext | tag); the plain key exists only in memory, for a call.
    `key_id` names the ENCRYPTION_KEY it was sealed with, so a changed key is told apart from tampering.
    """

    id = fields.IntField(primary_key=True)
    bot: fields.ForeignKeyRelation["Bot"] = fields.ForeignKeyField("models.Bot", related_name="provider_keys")
    bot_id: int  # the column behind `bot`
    owner: fields.ForeignKeyRelation["User"] = fields.ForeignKeyField(
        "models.User", related_name="provider_keys", on_delete=fields.CASCADE)
    owner_id: int  # the column behind `owner`
    name = fields.CharField(max_length=60)
    base_url = fields.CharField(max_length=300)
    models: list[str] = fields.JSONField(default=list)  # model names this key may run, the first by default
    secret = fields.TextField()
    key_id = fields.CharField(max_length=16)
    last4 = fields.CharField(max_length=4)
    created_at = fields.DatetimeField(auto_now_add=True)
    last_used_at = fields.DatetimeField(null=True)

    class Meta:
        table = "provider_key"
        indexes = (Index(fields=("owner_id",), name="provider_key_owner_idx"),)

    def __str__(self) -> str:
        return f"{self.name} (…{self.last4})"


from models.tenants import Bot  # noqa: E402
from models.users import User  # noqa: E402
