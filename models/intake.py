from enum import IntEnum

from tortoise import fields
from tortoise.models import Model


class UpdateState(IntEnum):
    """Where a stored Telegram update is: a small integer, as the intake's hand-written SQL compares it."""

    PENDING = 0  # stored, waiting for a worker (or for its retry)
    RUNNING = 1  # a worker has it, until its lease ends
    DONE = 2  # handled; only its key is kept, to refuse a re-delivery
    FAILED = 3  # given up after INTAKE_MAX_ATTEMPTS; its body is kept for a look
    DROPPED = 4  # its bot was paused or removed before it was handled


class TelegramUpdate(Model):
    """A Telegram update as it arrived, durable before the webhook answered, for the intake's workers to handle.

    Only services/intake.py reads and writes it, in plain SQL on the hot paths: times are integers
    (milliseconds since the epoch), so both databases compare them alike and nothing parses dates.
    """

    id = fields.BigIntField(primary_key=True)
    bot: fields.ForeignKeyRelation["Bot"] = fields.ForeignKeyField(
        "models.Bot", related_name="telegram_updates", on_delete=fields.CASCADE)
    bot_id: int  # the column behind `bot`
    update_id = fields.BigIntField()  # Telegram's, per bot
    # One at a time per (bot, lane), in arrival order: the chat the update belongs to.
    lane = fields.BigIntField()
    body = fields.BinaryField(null=True)  # the JSON Telegram sent; NULL once handled
    state = fields.SmallIntField(default=0, db_default=0)  # UpdateState; defaults in the database: plain SQL inserts
    attempts = fields.SmallIntField(default=0, db_default=0)
    run_after = fields.BigIntField()
    lease_owner = fields.CharField(max_length=32, default="", db_default="")
    lease_until = fields.BigIntField(default=0, db_default=0)
    received_at = fields.BigIntField()
    finished_at = fields.BigIntField(null=True)
    last_error = fields.TextField(default="", db_default="")

    class Meta:
        table = "telegram_update"
        unique_together = (("bot", "update_id"),)  # a re-delivery inserts nothing

    def __str__(self) -> str:
        return f"update {self.update_id} of bot {self.bot_id} ({UpdateState(self.state).name.lower()})"


from models.tenants import Bot  # noqa: E402
