"""The Mini App API's shapes: what requests may carry and what answers hold (and the OpenAPI schemas)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from services.i18n import Locale
from services.inbox import InboxView


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Person(BaseModel):
    id: int
    name: str = Field(description="Empty for a website visitor who gave no name")
    username: str | None = None
    email: str | None = Field(None, description="A website visitor's, when their site signed them in with it")
    visitor: bool = Field(False, description="A website visitor (no Telegram account)")


class Preferences(Strict):
    silent: bool = Field(False, description="Answers arrive without a notification sound")
    rating_requests: bool = Field(True, description="Ask me to rate a conversation when it is closed")


class PreferencesPatch(Strict):
    language: Locale | None = None
    silent: bool | None = None
    rating_requests: bool | None = None


class BotChoice(BaseModel):
    id: int = Field(description="The bot's id here: the Mini App's `?bot=` and X-Frontdesk-Bot")
    name: str = Field(description="The business's name, else the bot's @username")
    username: str | None = None
    current: bool = Field(False, description="The bot this page is for")
    link: str | None = Field(None, description="Its chat in Telegram (t.me), where its Mini App opens signed by it")


class BotSwitch(Strict):
    bot: int = Field(ge=1, lt=2**31)


class Me(BaseModel):
    id: int
    bot_id: int = Field(description="The bot (business) this page and every call are for")
    bots: list[BotChoice] = Field(default_factory=list, description=(
        "The bots this person works for (staff there), the current one included: a switcher when there are two"))
    name: str
    username: str | None
    role: Literal["customer", "pending", "viewer", "manager", "admin"] = Field(
        description="pending: in the manager chat, waiting for an admin's approval; viewer: staff who only read")
    locale: str
    telegram_id: int | None
    preferences: Preferences
    csrf_token: str | None = Field(None, description="Browser sessions: send it back in X-CSRF-Token")
    studio: bool = Field(True, description="The prompt studio has a model this person can run (the deployment's AI, "
                                           "or an API key of their own): else the app does not offer it")
    platform: bool = Field(False, description="A platform owner (PLATFORM_ADMIN_IDS): the app offers the Platform page")


class BrowserSessionOut(BaseModel):
    id: int
    created_at: datetime
    expires_at: datetime
    current: bool = Field(description="The session this request came with")


class BrowserSessions(BaseModel):
    sessions: list[BrowserSessionOut]


class Preview(BaseModel):
    author: str
    text: str
    created_at: str | None = None


class ConversationOut(BaseModel):
    id: int
    state: Literal["ai", "waiting", "assigned", "closed"]
    channel: Literal["telegram", "widget"]
    customer: Person
    last_message_at: str
    created_at: str
    closed_at: str | None
    rating: int | None
    preview: Preview | None
    assignee_name: str | None = Field(None, description="Customers: the first name of the person helping them")
    # Staff only:
    assignee: Person | None = None
    handoff_reason: str | None = None
    language: str | None = None
    banned: bool | None = None
    blocked_bot: bool | None = None
    telegram_id: int | None = None
    waiting_since: str | None = Field(None, description="A waiting conversation's handoff: how long it waits")


class ConversationPage(BaseModel):
    conversations: list[ConversationOut]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page; null at the end")


class InboxParams(Strict):
    view: InboxView = InboxView.ALL
    channel: Literal["telegram", "widget"] | None = None
    q: str = Field("", max_length=100, description="Staff: a customer's name, @username, conversation number, "
                   "or words of its messages")
    cursor: str | None = Field(None, max_length=200)
    limit: int = Field(30, ge=1, le=100)
    assignee: int | None = Field(None, ge=1, description="Staff: only the conversations this teammate has")


class Attachment(BaseModel):
    type: str
    name: str
    transcript: str | None = Field(None, description="A voice, audio or video note's words, once transcribed")
    file: bool = Field(False, description="Served at /api/conversations/{id}/messages/{message}/files/{index}")
    image: bool = Field(False, description="An image, shown in place")


class PassageOut(BaseModel):
    """A passage of knowledge the AI was given, as `services.answering.passages_meta` stored it."""

    kind: Literal["item", "chunk"]
    id: int
    label: str = Field(description="Where it came from: 'FAQ: question', or a document's title, page and heading")
    url: str = ""
    score: float = 0.0
    similarity: float | None = Field(None, description="Cosine with the question, when found by meaning")
    text: str = Field("", description="The passage's first 600 characters")


class SourceLink(BaseModel):
    title: str
    url: str = Field("", description="A web page; empty for a document")


class AIMeta(BaseModel):
    source: str | None = None
    model: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost: float | None = None
    latency_ms: int | None = None
    passages: list[PassageOut] | None = Field(None, description="The knowledge the AI was given, best first")


class MessageOut(BaseModel):
    id: int
    author: Literal["customer", "ai", "manager", "system", "note"]
    author_name: str | None
    text: str
    html: str
    created_at: str
    reply_to: int | None
    attachments: list[Attachment]
    ai: AIMeta | None = Field(None, description="Staff only: how the AI made this answer")
    sources: list[SourceLink] = Field(default_factory=list, description="The documents and pages an AI answer names")


class MessagesPage(BaseModel):
    messages: list[MessageOut]
    has_more: bool = Field(description="Older messages exist: ask with before=<first id>")


class MessagesParams(Strict):
    before: int | None = Field(None, ge=1)
    after: int | None = Field(None, ge=0)
    limit: int = Field(50, ge=1, le=100)


class TextIn(Strict):
    text: str = Field(min_length=1, max_length=4000)


class ConversationAction(Strict):
    action: Literal["take", "return", "close", "ban", "unban"]


class DeleteConfirmation(Strict):
    confirm: Literal[True] = Field(description="Must be true: deletion cannot be undone")


class Deleted(BaseModel):
    conversations: int
    messages: int
    prompt_projects: int = 0
    prompt_versions: int = 0
    prompt_runs: int = 0
    prompt_templates: int = 0
    api_keys: int = 0


class InboxCountsParams(Strict):
    channel: Literal["telegram", "widget"] | None = None
    assignee: int | None = Field(None, ge=1)


class TabCounts(BaseModel):
    all: int
    waiting: int
    mine: int
    ai: int
    closed: int
    unassigned: int


class InboxSummary(BaseModel):
    counts: TabCounts = Field(description="How many conversations each tab holds (search aside)")
    staff: list[Person] = Field(description="Who may be assigned conversations: the assignee filter's choices")
