"""What the Mini App lists: a customer's own conversations, the staff inbox, and transcripts.

Who may see what is decided here, once: staff see every conversation of their bot, a customer
only their own, and only staff see internal notes and the AI's metadata. Pages are cursor-paged
on indexes (migrations 0005 and 0006) with a fixed number of queries, whatever the page size.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from tortoise.expressions import Q
from tortoise.functions import Max
from tortoise.queryset import QuerySet

from models import AuthorKind, Channel, Conversation, ConversationMode, ConversationStatus, Message, Role, User
from services.events import EventBus, Handler
from services.render import html_to_text
from services.widget import message_html
from services.widget_links import linked_visitors

log = logging.getLogger(__name__)

INBOX_CHANNEL = "inbox"
PAGE_LIMIT = 100
PREVIEW_CHARS = 140
CUSTOMER_AUTHORS = (AuthorKind.CUSTOMER, AuthorKind.AI, AuthorKind.MANAGER, AuthorKind.SYSTEM)


class State(StrEnum):
    """A conversation's state as the inbox shows it: from its mode and status."""

    AI = "ai"
    WAITING = "waiting"
    ASSIGNED = "assigned"
    CLOSED = "closed"


class InboxView(StrEnum):
    ALL = "all"
    WAITING = "waiting"
    MINE = "mine"
    AI = "ai"
    CLOSED = "closed"


def state_of(conversation: Conversation) -> State:
    if conversation.status == ConversationStatus.CLOSED:
        return State.CLOSED
    if conversation.mode == ConversationMode.AI:
        return State.AI
    if conversation.status == ConversationStatus.ASSIGNED:
        return State.ASSIGNED
    return State.WAITING


@dataclass(frozen=True)
class Viewer:
    user: User
    role: Role

    @property
    def staff(self) -> bool:
        """May read the desk: the bot's conversations, knowledge, settings pages."""
        return self.role in (Role.VIEWER, Role.MANAGER, Role.ADMIN)

    @property
    def can_act(self) -> bool:
        """May change things: reply, take, close, edit knowledge. Viewers only read."""
        return self.role in (Role.MANAGER, Role.ADMIN)

    @property
    def admin(self) -> bool:
        return self.role == Role.ADMIN

    @property
    def bot_id(self) -> int:
        return int(self.user.bot_id)


class BadCursor(ValueError):
    pass


def encode_cursor(moment: datetime, row_id: int) -> str:
    raw = json.dumps([moment.isoformat(), row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        moment, row_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return datetime.fromisoformat(moment), int(row_id)
    except (ValueError, TypeError, binascii.Error) as error:
        raise BadCursor("the cursor is not one this server gave") from error


@dataclass(frozen=True)
class InboxQuery:
    view: InboxView = InboxView.ALL
    channel: Channel | None = None
    search: str = ""
    cursor: str | None = None
    limit: int = 30


@dataclass(frozen=True)
class ConversationPage:
    conversations: list[Conversation]
    previews: dict[int, Message]  # each conversation's last visible message
    next_cursor: str | None


async def _visible_to(viewer: Viewer) -> QuerySet[Conversation]:
    """Staff: the bot's conversations. A customer: their own, and the website chats they confirmed
    are theirs (services.widget_links)."""
    if viewer.staff:
        return Conversation.filter(bot_id=viewer.bot_id)
    people = [viewer.user.id, *await linked_visitors(viewer.user)]
    return Conversation.filter(bot_id=viewer.bot_id, user_id__in=people)


def _in_view(query: QuerySet[Conversation], viewer: Viewer, view: InboxView) -> QuerySet[Conversation]:
    if view == InboxView.WAITING:
        return query.filter(status=ConversationStatus.WAITING)
    if view == InboxView.MINE:
        return query.filter(status=ConversationStatus.ASSIGNED, assignee_id=viewer.user.id)
    if view == InboxView.AI:
        return query.filter(mode=ConversationMode.AI).exclude(status=ConversationStatus.CLOSED)
    if view == InboxView.CLOSED:
        return query.filter(status=ConversationStatus.CLOSED)
    return query


def _matching(query: QuerySet[Conversation], search: str) -> QuerySet[Conversation]:
    """By the customer's name or @username, or a conversation's number."""
    search = search.strip().lstrip("@#")
    if not search:
        return query
    found = (Q(user__first_name__icontains=search) | Q(user__last_name__icontains=search)
             | Q(user__username__icontains=search))
    if search.isdigit():
        found |= Q(id=int(search))
    return query.filter(found)


async def conversations_page(viewer: Viewer, request: InboxQuery) -> ConversationPage:
    """Newest activity first. A customer's view is always their own conversations."""
    limit = max(1, min(request.limit, PAGE_LIMIT))
    query = await _visible_to(viewer)
    if viewer.staff:
        query = _matching(_in_view(query, viewer, request.view), request.search)
    if request.channel is not None:
        query = query.filter(channel=request.channel)
    if request.cursor:
        moment, last_id = decode_cursor(request.cursor)
        # The plain bound lets the index seek to the cursor; the OR alone was a filter over every row before it.
        query = query.filter(Q(last_message_at__lt=moment) | Q(last_message_at=moment, id__lt=last_id),
                             last_message_at__lte=moment)
    rows = list(await query.order_by("-last_message_at", "-id").limit(limit + 1).select_related("user", "assignee"))
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = encode_cursor(rows[-1].last_message_at, rows[-1].id) if more and rows else None
    return ConversationPage(rows, await last_messages([row.id for row in rows], staff=viewer.staff), cursor)


async def last_messages(conversation_ids: list[int], *, staff: bool) -> dict[int, Message]:
    """Each conversation's latest message the viewer may see, in two queries."""
    if not conversation_ids:
        return {}
    kinds = list(AuthorKind) if staff else list(CUSTOMER_AUTHORS)
    latest = await (Message.filter(conversation_id__in=conversation_ids, author_kind__in=kinds)
                    .filter(~(Q(author_kind=AuthorKind.SYSTEM) & Q(text="")))  # exclude(a=, b=) means "neither"
                    .annotate(last_id=Max("id")).group_by("conversation_id").values("conversation_id", "last_id"))
    messages = await Message.filter(id__in=[row["last_id"] for row in latest])
    return {int(message.conversation_id): message for message in messages}


async def visible_conversation(viewer: Viewer, conversation_id: int) -> Conversation | None:
    """The conversation if the viewer may see it; None both when it does not exist and when it is not theirs."""
    return await (await _visible_to(viewer)).filter(id=conversation_id).first().select_related("user", "assignee")


async def messages_page(viewer: Viewer, conversation: Conversation, *, before: int | None = None,
                        after: int | None = None, limit: int = 50) -> tuple[list[Message], bool]:
    """Messages oldest first: the latest `limit`, or those before/after an id. And whether older ones exist."""
    limit = max(1, min(limit, PAGE_LIMIT))
    kinds = list(AuthorKind) if viewer.staff else list(CUSTOMER_AUTHORS)
    query = (Message.filter(conversation_id=conversation.id, author_kind__in=kinds)
             .filter(~(Q(author_kind=AuthorKind.SYSTEM) & Q(text=""))))
    if after is not None:
        rows = list(await query.filter(id__gt=after).order_by("id").limit(limit).select_related("author"))
        return rows, False
    if before is not None:
        query = query.filter(id__lt=before)
    rows = list(await query.order_by("-id").limit(limit + 1).select_related("author"))
    return list(reversed(rows[:limit])), len(rows) > limit


# --- how the Mini App shows them ------------------------------------------------------------------------


def person(user: User | None) -> dict[str, Any] | None:
    if user is None:
        return None
    return {"id": user.id, "name": user.full_name or (f"@{user.username}" if user.username else f"#{user.id}"),
            "username": user.username or None}


def conversation_json(conversation: Conversation, preview: Message | None, *, staff: bool) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": conversation.id,
        "state": state_of(conversation).value,
        "channel": conversation.channel.value,
        "customer": person(conversation.user),
        "last_message_at": conversation.last_message_at.isoformat(),
        "created_at": conversation.created_at.isoformat(),
        "closed_at": conversation.closed_at.isoformat() if conversation.closed_at else None,
        "rating": conversation.rating,
        "preview": preview_json(preview),
    }
    if staff:
        customer = conversation.user
        row.update(assignee=person(conversation.assignee), handoff_reason=conversation.handoff_reason or None,
                   language=customer.language or None, banned=customer.banned, blocked_bot=customer.blocked_bot,
                   telegram_id=customer.telegram_id)
    elif conversation.assignee is not None:  # the customer knows who helps them by first name, as the chat says
        row["assignee_name"] = conversation.assignee.first_name or None
    return row


def preview_json(message: Message | None) -> dict[str, Any] | None:
    if message is None:
        return None
    text = html_to_text(message_html(message)) if message.author_kind != AuthorKind.CUSTOMER else message.text
    if not text and message.attachments:
        text = f"📎 {message.attachments[0].get('type', 'file')}"
    return {"author": message.author_kind.value, "text": text[:PREVIEW_CHARS]}


def message_json(message: Message, *, staff: bool) -> dict[str, Any]:
    html = message_html(message)
    row: dict[str, Any] = {
        "id": message.id,
        "author": message.author_kind.value,
        "author_name": person(message.author)["name"] if staff and message.author else None,  # type: ignore[index]
        "text": message.text if message.author_kind == AuthorKind.CUSTOMER else html_to_text(html),
        "html": html,
        "created_at": message.created_at.isoformat(),
        "reply_to": message.reply_to_id,
        "attachments": [{"type": str(a.get("type")), "name": str(a.get("file_name") or "")}
                        for a in message.attachments],
    }
    sources = message.ai_meta.get("sources")
    if message.author_kind == AuthorKind.AI and isinstance(sources, list):
        row["sources"] = [{"title": str(source.get("title") or ""), "url": str(source.get("url") or "")}
                          for source in sources if isinstance(source, dict)]
    if staff and message.author_kind == AuthorKind.AI:
        meta = message.ai_meta
        row["ai"] = {key: meta.get(key) for key in ("source", "model", "tokens_in", "tokens_out", "cost",
                                                     "latency_ms", "passages")}
    return row


# --- live updates ---------------------------------------------------------------------------------------


class InboxFeed:
    """Tells open Mini App pages that a conversation changed (a message, a new state).

    Best effort, like every event: a page that missed one still shows the truth on its next load.
    The event names the conversation only; each page asks for what its viewer may see.
    """

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus

    async def changed(self, conversation: Conversation) -> None:
        """Never fails its caller: a reply already delivered must not be retried because Redis is away."""
        await self._publish(conversation.bot_id, conversation.id, conversation.user_id)

    async def customer_wrote(self, message: Message) -> None:
        """A customer's message just stored: it names all the event needs, so nothing is read again."""
        await self._publish(message.bot_id, message.conversation_id, message.author_id)

    async def _publish(self, bot_id: int, conversation_id: int, user_id: int | None) -> None:
        try:
            await self.bus.publish(INBOX_CHANNEL, {"bot": bot_id, "conversation": conversation_id, "user": user_id})
        except Exception as error:  # the bus is best effort; pages catch up when they reconnect
            log.warning("could not announce conversation %s to open pages: %r", conversation_id, error)

    def subscribe(self, handler: Handler) -> None:
        self.bus.subscribe(INBOX_CHANNEL, handler)
