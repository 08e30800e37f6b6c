from enum import StrEnum
from uuid import UUID

from tortoise import fields
from tortoise.indexes import Index, PartialIndex
from tortoise.models import Model


class Channel(StrEnum):
    TELEGRAM = "telegram"
    WIDGET = "widget"


class ConversationMode(StrEnum):
    AI = "ai"
    HUMAN = "human"


class ConversationStatus(StrEnum):
    OPEN = "open"
    WAITING = "waiting"
    ASSIGNED = "assigned"
    CLOSED = "closed"


class HandoffReason(StrEnum):
    """Why a conversation went to people: a fixed set, for the managers and the analytics."""

    ASKED_FOR_PERSON = "asked_for_person"
    CANNOT_ANSWER = "cannot_answer"
    COMPLAINT = "complaint"
    SENSITIVE = "sensitive"
    AI_FAILURE = "ai_failure"
    NOT_IN_KNOWLEDGE = "not_in_knowledge"  # no AI configured, and no knowledge item held the answer
    MANAGER_TOOK_OVER = "manager_took_over"


class AuthorKind(StrEnum):
    CUSTOMER = "customer"
    AI = "ai"
    MANAGER = "manager"
    SYSTEM = "system"
    NOTE = "note"


class Conversation(Model):
    id = fields.IntField(primary_key=True)
    uuid: UUID = fields.UUIDField(unique=True)
    bot: fields.ForeignKeyRelation["Bot"] = fields.ForeignKeyField("models.Bot", related_name="conversations")
    bot_id: int  # the column behind `bot`
    user: fields.ForeignKeyRelation["User"] = fields.ForeignKeyField("models.User", related_name="conversations")
    user_id: int  # the column behind `user`
    channel = fields.CharEnumField(Channel, default=Channel.TELEGRAM, max_length=16)
    mode = fields.CharEnumField(ConversationMode, default=ConversationMode.AI, max_length=16)
    status = fields.CharEnumField(ConversationStatus, default=ConversationStatus.OPEN, max_length=16)
    assignee: fields.ForeignKeyNullableRelation["User"] = fields.ForeignKeyField(
        "models.User", related_name="assigned_conversations", null=True, on_delete=fields.SET_NULL
    )
    assignee_id: int | None  # the column behind `assignee`
    handoff_reason = fields.CharField(max_length=32, default="")
    handed_off_at = fields.DatetimeField(null=True)  # the first handoff: from then on managers see it all
    manager_topic_id = fields.BigIntField(null=True)  # its forum topic in the manager chat
    manager_card_id = fields.BigIntField(null=True)  # the header card in that topic (or in a plain group)
    topic_title = fields.CharField(max_length=128, default="")  # as last set, to skip edits that change nothing
    first_manager_reply_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    first_response_at = fields.DatetimeField(null=True)
    last_message_at = fields.DatetimeField(auto_now_add=True)
    closed_at = fields.DatetimeField(null=True)
    rating = fields.SmallIntField(null=True)
    # What the customer asked: their first message with words, as first written (shortened), and the
    # digest of its words (services.knowledge.question_key) that the analytics' top questions group by.
    question = fields.CharField(max_length=256, default="", db_default="")
    question_key = fields.CharField(max_length=64, default="", db_default="")

    class Meta:
        table = "conversation"
        # The analytics: a period's conversations, and those handed to people in it.
        indexes = (("user_id", "status"), ("bot_id", "manager_topic_id"),
                   Index(fields=("bot_id", "created_at"), name="conversation_created_idx"),
                   Index(fields=("bot_id", "handed_off_at"), name="conversation_handed_off_idx"))

    def __str__(self) -> str:
        return f"conversation {self.uuid}"


class Message(Model):
    id = fields.IntField(primary_key=True)
    bot: fields.ForeignKeyRelation["Bot"] = fields.ForeignKeyField("models.Bot", related_name="messages")
    bot_id: int  # the column behind `bot`
    conversation: fields.ForeignKeyRelation[Conversation] = fields.ForeignKeyField(
        "models.Conversation", related_name="messages"
    )
    conversation_id: int  # the column behind `conversation`
    author_kind = fields.CharEnumField(AuthorKind, max_length=16)
    author: fields.ForeignKeyNullableRelation["User"] = fields.ForeignKeyField(
        "models.User", related_name="messages", null=True, on_delete=fields.SET_NULL
    )
    author_id: int | None  # the column behind `author`
    text = fields.TextField(default="")
    attachments: list[dict[str, object]] = fields.JSONField(default=list)
    # AI metadata: model, tokens_in, tokens_out, latency_ms, cost, source ("ai" / "knowledge").
    ai_meta: dict[str, object] = fields.JSONField(default=dict)
    # The Telegram update id or the widget client's message id: a retried delivery is stored once.
    source_key = fields.CharField(max_length=96, null=True)
    reply_to: fields.ForeignKeyNullableRelation["Message"] = fields.ForeignKeyField(
        "models.Message", related_name="replies", null=True, on_delete=fields.SET_NULL
    )
    reply_to_id: int | None  # the column behind `reply_to`
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "message"
        unique_together = (("bot", "source_key"),)
        # A conversation's messages in order (pages, the AI's context); whether a message has its answer;
        # managers' replies in a period (the analytics), which are few beside the customers' and the AI's.
        indexes = (Index(fields=("conversation_id", "id"), name="message_conversation_id_idx"),
                   Index(fields=("reply_to_id",), name="message_reply_to_id_idx"),
                   PartialIndex(fields=("bot_id", "created_at", "author_id"), name="message_manager_idx",
                                condition={"author_kind": "manager"}))
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.author_kind}: {self.text[:40]}"


class StoredFile(Model):
    """A file kept by Frontdesk itself: what a website visitor attached (Telegram keeps its own users' files).

    In the database, not on a disk, so every instance serves it; a message's attachment names it by id
    (`{"stored_file_id": ...}`), and it goes with its conversation.
    """

    id = fields.IntField(primary_key=True)
    bot: fields.ForeignKeyRelation["Bot"] = fields.ForeignKeyField("models.Bot", related_name="stored_files")
    bot_id: int  # the column behind `bot`
    conversation: fields.ForeignKeyRelation[Conversation] = fields.ForeignKeyField(
        "models.Conversation", related_name="files", on_delete=fields.CASCADE)
    conversation_id: int  # the column behind `conversation`
    name = fields.CharField(max_length=255, default="")
    mime_type = fields.CharField(max_length=127, default="application/octet-stream")
    size = fields.IntField()
    content = fields.BinaryField()
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "stored_file"

    def __str__(self) -> str:
        return f"file {self.id} {self.name}"


class MessageCopy(Model):
    """One Telegram message that shows a stored message: the original or a copy, in any chat.

    Edits, replies and reply-threading in a group without topics find the stored message through it.
    Several stored messages may share one Telegram message (copies coalesced into one).
    """

    id = fields.IntField(primary_key=True)
    bot: fields.ForeignKeyRelation["Bot"] = fields.ForeignKeyField("models.Bot", related_name="message_copies")
    bot_id: int  # the column behind `bot`
    message: fields.ForeignKeyRelation[Message] = fields.ForeignKeyField(
        "models.Message", related_name="telegram_copies", on_delete=fields.CASCADE)
    message_id: int  # the column behind `message`
    chat_id = fields.BigIntField()
    telegram_message_id = fields.BigIntField()
    original = fields.BooleanField(default=False)  # the author's own message, not a copy made by the bot

    class Meta:
        table = "message_copy"
        unique_together = (("bot", "chat_id", "telegram_message_id", "message"),)
        # (bot, chat, telegram message) lookups use the unique index; this one finds a message's copies.
        indexes = (("message_id", "chat_id"),)

    def __str__(self) -> str:
        return f"{self.chat_id}/{self.telegram_message_id}"


from models.tenants import Bot  # noqa: E402
from models.users import User  # noqa: E402
