from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class JobStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class OutboxJob(Model):
    """Work caused by a stored message, written in the same transaction as that message."""

    id = fields.IntField(primary_key=True)
    bot: fields.ForeignKeyRelation["Bot"] = fields.ForeignKeyField("models.Bot", related_name="jobs")
    bot_id: int  # the column behind `bot`
    kind = fields.CharField(max_length=32)
    payload: dict[str, object] = fields.JSONField(default=dict)
    # Each queue has its own workers: the manager group's slow budget never delays customers.
    queue = fields.CharField(max_length=16, default="")
    # Lower runs first within a queue (a staff command's reply before a backlog of copies).
    priority = fields.SmallIntField(default=0)
    # Jobs that share a lane (one conversation) run one at a time, in order.
    lane = fields.CharField(max_length=64, default="")
    status = fields.CharEnumField(JobStatus, default=JobStatus.PENDING, max_length=16)
    attempts = fields.SmallIntField(default=0)
    last_error = fields.TextField(default="")
    run_after = fields.DatetimeField()
    lease_owner = fields.CharField(max_length=64, default="")
    lease_expires_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    finished_at = fields.DatetimeField(null=True)
    # What caused the job, when the same cause may arrive twice (a Telegram message redelivered after
    # the update-id store forgot it): a second job with the same key is not queued.
    source_key = fields.CharField(max_length=96, null=True)

    class Meta:
        table = "outbox_job"
        indexes = (("status", "run_after"), ("queue", "status"), ("lane", "status"))
        unique_together = (("bot", "source_key"),)

    def __str__(self) -> str:
        return f"job {self.id} {self.kind} {self.status}"


from models.tenants import Bot  # noqa: E402
