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
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from tortoise import connections
from tortoise.expressions import Q, Subquery
from tortoise.functions import Count, Max
from tortoise.queryset import QuerySet

from models import AuthorKind, Channel, Conversation, ConversationMode, ConversationStatus, Message, Role, User
from services.events import EventBus, Handler
from services.files import attachment_json
from services.render import html_to_text
from services.widget import message_html
from services.widget_links import linked_visitors

log = logging.getLogger(__name__)

INBOX_CHANNEL = "inbox"
PAGE_LIMIT = 100
PREVIEW_CHARS = 140
CUSTOMER_AUTHORS = (AuthorKind.CUSTOMER, AuthorKind.AI, AuthorKind.MANAGER, AuthorKind.SYSTEM)
# A staff row's preview: the customer's last words; else the last answer. Never a note or a notice.
PREVIEW_AUTHORS = (AuthorKind.CUSTOMER, AuthorKind.AI, AuthorKind.MANAGER)
SEARCH_HITS = 500  # conversations whose messages match a search: the newest this many
PREFIX_FROM = 3  # a searched word this long also finds longer ones ("umbr" finds "umbrella")


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
    UNASSIGNED = "unassigned"  # not closed, and no one on the team has it


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
    assignee: int | None = None  # staff only: the conversations this teammate has (or had, once closed)


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
    if view == InboxView.UNASSIGNED:
        return query.filter(assignee_id=None).exclude(status=ConversationStatus.CLOSED)
    return query


def search_words(search: str) -> list[str]:
    """The words of a search, as both full-text indexes split text (letters and digits)."""
    return re.findall(r"\w+", search.lower())[:8]


async def message_hits(bot_id: int, search: str) -> list[int]:
    """The conversations with a message holding every word searched, newest message first (SEARCH_HITS
    at most). Each word is quoted or reduced to letters and digits, so none is taken for an operator."""
    words = search_words(search)
    if not words:
        return []
    connection = connections.get("default")
    if connection.capabilities.dialect == "postgres":
        query = " & ".join(f"'{word}'" + (":*" if len(word) >= PREFIX_FROM else "") for word in words)
        rows = await connection.execute_query_dict(
            "SELECT conversation_id FROM message WHERE bot_id = $1 "
            "AND to_tsvector('simple', text) @@ to_tsquery('simple', $2) "
            "GROUP BY conversation_id ORDER BY max(id) DESC LIMIT $3", [bot_id, query, SEARCH_HITS])
    else:
        query = " AND ".join(f'"{word}"' + ("*" if len(word) >= PREFIX_FROM else "") for word in words)
        rows = await connection.execute_query_dict(
            "SELECT m.conversation_id AS conversation_id FROM message_fts JOIN message m ON m.id = message_fts.rowid "
            "WHERE message_fts MATCH ? AND m.bot_id = ? GROUP BY m.conversation_id ORDER BY max(m.id) DESC LIMIT ?",
            [query, bot_id, SEARCH_HITS])
    return [int(row["conversation_id"]) for row in rows]


async def _matching(query: QuerySet[Conversation], bot_id: int, search: str) -> QuerySet[Conversation]:
    """By the customer's name or @username, a conversation's number, or the words of its messages."""
    search = search.strip().lstrip("@#")
    if not search:
        return query
    # A subquery, not a join's columns: OR-ed with the message hits, a join would be filtered row by row.
    named = User.filter(bot_id=bot_id).filter(Q(first_name__icontains=search) | Q(last_name__icontains=search)
                                              | Q(username__icontains=search))
    found = Q(user_id__in=Subquery(named.values("id")))
    if search.isdigit():
        found |= Q(id=int(search))
    if hits := await message_hits(bot_id, search):
        found |= Q(id__in=hits)
    return query.filter(found)


def _waiting_order(request: InboxQuery, viewer: Viewer) -> bool:
    """The waiting view serves the longest wait first: oldest handoff first, as /open lists them."""
    return viewer.staff and request.view == InboxView.WAITING


async def conversations_page(viewer: Viewer, request: InboxQuery) -> ConversationPage:
    """Newest activity first (the waiting view: the longest wait first). A customer's view is always
    their own conversations."""
    limit = max(1, min(request.limit, PAGE_LIMIT))
    query = await _visible_to(viewer)
    if viewer.staff:
        query = await _matching(_in_view(query, viewer, request.view), viewer.bot_id, request.search)
        if request.assignee is not None:
            query = query.filter(assignee_id=request.assignee)
    if request.channel is not None:
        query = query.filter(channel=request.channel)
    oldest_first = _waiting_order(request, viewer)
    if request.cursor:
        moment, last_id = decode_cursor(request.cursor)
        # The plain bound lets the index seek to the cursor; the OR alone was a filter over every row before it.
        if oldest_first:
            query = query.filter(Q(handed_off_at__gt=moment) | Q(handed_off_at=moment, id__gt=last_id),
                                 handed_off_at__gte=moment)
        else:
            query = query.filter(Q(last_message_at__lt=moment) | Q(last_message_at=moment, id__lt=last_id),
                                 last_message_at__lte=moment)
    order = ("handed_off_at", "id") if oldest_first else ("-last_message_at", "-id")
    rows = list(await query.order_by(*order).limit(limit + 1).select_related("user", "assignee"))
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = None
    if more and rows:
        # A waiting conversation was handed off (services.handoff.give_to_people sets the moment).
        moment = (rows[-1].handed_off_at or rows[-1].created_at) if oldest_first else rows[-1].last_message_at
        cursor = encode_cursor(moment, rows[-1].id)
    return ConversationPage(rows, await last_messages([row.id for row in rows], staff=viewer.staff), cursor)


async def last_messages(conversation_ids: list[int], *, staff: bool) -> dict[int, Message]:
    """Each conversation's preview, in two queries. Staff see the customer's last message (else the last
    answer), never a note or a notice; a customer sees the latest message they may see."""
    if not conversation_ids:
        return {}
    if staff:
        latest = await (Message.filter(conversation_id__in=conversation_ids, author_kind__in=list(PREVIEW_AUTHORS))
                        .annotate(last_id=Max("id")).group_by("conversation_id", "author_kind")
                        .values("conversation_id", "author_kind", "last_id"))
        chosen: dict[int, tuple[bool, int]] = {}
        for row in latest:  # the customer's words win; else the newest answer
            rank = (row["author_kind"] == AuthorKind.CUSTOMER, int(row["last_id"]))
            chosen[row["conversation_id"]] = max(chosen.get(row["conversation_id"], rank), rank)
        ids = [last_id for _, last_id in chosen.values()]
    else:
        latest = await (Message.filter(conversation_id__in=conversation_ids, author_kind__in=list(CUSTOMER_AUTHORS))
                        .filter(~(Q(author_kind=AuthorKind.SYSTEM) & Q(text="")))  # exclude(a=, b=) means "neither"
                        .annotate(last_id=Max("id")).group_by("conversation_id").values("conversation_id", "last_id"))
        ids = [row["last_id"] for row in latest]
    messages = await Message.filter(id__in=ids)
    return {int(message.conversation_id): message for message in messages}


@dataclass(frozen=True)
class TabCounts:
    all: int
    waiting: int
    mine: int
    ai: int
    closed: int
    unassigned: int


async def tab_counts(viewer: Viewer, *, channel: Channel | None = None, assignee: int | None = None) -> TabCounts:
    """How many conversations each inbox tab holds (search aside), in two queries: the bot's total, and
    the open ones grouped, which conversation_open_idx (migration 0014) holds alone."""
    query = Conversation.filter(bot_id=viewer.bot_id)
    if channel is not None:
        query = query.filter(channel=channel)
    if assignee is not None:
        query = query.filter(assignee_id=assignee)
    total = await query.count()
    groups = await (query.exclude(status=ConversationStatus.CLOSED).annotate(n=Count("id"))
                    .group_by("status", "mode", "assignee_id").values("status", "mode", "assignee_id", "n"))

    def count(test: Any) -> int:
        return sum(int(group["n"]) for group in groups if test(group))

    open_ = count(lambda group: True)
    return TabCounts(
        all=total, closed=total - open_,
        waiting=count(lambda group: group["status"] == ConversationStatus.WAITING),
        mine=count(lambda group: group["status"] == ConversationStatus.ASSIGNED
                   and group["assignee_id"] == viewer.user.id),
        ai=count(lambda group: group["mode"] == ConversationMode.AI),
        unassigned=count(lambda group: group["assignee_id"] is None))


async def assignable_staff(bot_id: int) -> list[User]:
    """Who may have conversations: the bot's managers and admins, by name."""
    return list(await User.filter(bot_id=bot_id, role__in=[Role.MANAGER, Role.ADMIN]).order_by("first_name", "id"))


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
    """Who someone is, by name. A website visitor with no name goes by the email their site signed them in
    with, when it is one; an anonymous visitor has no name ("" : the page says "Website visitor")."""
    if user is None:
        return None
    visitor = user.widget_visitor_id is not None
    email = _site_email(user.widget_visitor_id) if visitor else None
    name = user.full_name or (f"@{user.username}" if user.username else email or ("" if visitor else f"#{user.id}"))
    return {"id": user.id, "name": name, "username": user.username or None, "email": email,
            "visitor": visitor}


def _site_email(visitor_id: str | None) -> str | None:
    """The id a site signed its user in with (`u<site>:<id>`, services.widget), when it is an email."""
    kind, _, site_user = (visitor_id or "").partition(":")
    return site_user if kind.startswith("u") and re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", site_user) else None


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
                   telegram_id=customer.telegram_id, waiting_since=_waiting_since(conversation))
    elif conversation.assignee is not None:  # the customer knows who helps them by first name, as the chat says
        row["assignee_name"] = conversation.assignee.first_name or None
    return row


def _waiting_since(conversation: Conversation) -> str | None:
    """Since when a waiting conversation waits for a person: its handoff (the first one, as /open counts)."""
    if state_of(conversation) != State.WAITING:
        return None
    return (conversation.handed_off_at or conversation.last_message_at).isoformat()


def preview_json(message: Message | None) -> dict[str, Any] | None:
    if message is None:
        return None
    text = html_to_text(message_html(message)) if message.author_kind != AuthorKind.CUSTOMER else message.text
    if not text and message.attachments:
        text = f"📎 {message.attachments[0].get('type', 'file')}"
    return {"author": message.author_kind.value, "text": text[:PREVIEW_CHARS],
            "created_at": message.created_at.isoformat()}


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
        "attachments": [attachment_json(a) for a in message.attachments],
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

    async def staff_typing(self, conversation: Conversation, staff: User) -> None:
        """A staff member is writing in the conversation: the other staff's open pages say so for a few
        seconds. Presence, not an event: nothing is stored, and a page that misses it misses nothing."""
        try:
            await self.bus.publish(INBOX_CHANNEL, {"bot": conversation.bot_id, "conversation": conversation.id,
                                                   "typing": {"id": staff.id, "name": staff.first_name}})
        except Exception as error:  # best effort, as above
            log.warning("could not announce typing in conversation %s: %r", conversation.id, error)
