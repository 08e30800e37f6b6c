"""Tortoise ORM models shared by the bot, the Mini App, the widget and the workers."""

from models.conversations import (
    AuthorKind,
    Channel,
    Conversation,
    ConversationMode,
    ConversationStatus,
    HandoffReason,
    Message,
    MessageCopy,
    StoredFile,
)
from models.intake import TelegramUpdate, UpdateState
from models.knowledge import (
    KnowledgeChunk,
    KnowledgeItem,
    KnowledgePage,
    KnowledgeSource,
    Persona,
    SourceKind,
    SourceStatus,
)
from models.outbox import JobStatus, OutboxJob
from models.replies import SavedReply
from models.studio import PromptProject, PromptRun, PromptTemplate, PromptVersion, ProviderKey
from models.tenants import Bot, BotState
from models.usage import AuditLog, Usage, UsageSlot
from models.users import Role, User
from models.web import LoginLink, WebSession
from models.widget import WidgetLink, WidgetSite

__all__ = [
    "AuditLog",
    "AuthorKind",
    "Bot",
    "BotState",
    "Channel",
    "Conversation",
    "ConversationMode",
    "ConversationStatus",
    "HandoffReason",
    "JobStatus",
    "KnowledgeChunk",
    "KnowledgeItem",
    "KnowledgePage",
    "KnowledgeSource",
    "LoginLink",
    "Message",
    "MessageCopy",
    "OutboxJob",
    "Persona",
    "PromptProject",
    "PromptRun",
    "PromptTemplate",
    "PromptVersion",
    "ProviderKey",
    "Role",
    "SavedReply",
    "SourceKind",
    "SourceStatus",
    "StoredFile",
    "TelegramUpdate",
    "UpdateState",
    "Usage",
    "UsageSlot",
    "User",
    "WebSession",
    "WidgetLink",
    "WidgetSite",
]
