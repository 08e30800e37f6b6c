"""What staff see beside a conversation: who the customer is, their other conversations, the team's
notes about them and the ratings they gave. Staff only (the caller checks); a fixed number of queries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from models import AuthorKind, Conversation, Message, User
from services.widget_links import linked_visitors

RECENT = 20  # conversations and notes shown, newest first


@dataclass(frozen=True)
class Profile:
    customer: User
    since: datetime  # first seen
    conversations: list[Conversation]  # newest first, this one included
    conversation_count: int
    notes: list[Message]  # newest first, with their authors
    ratings: int
    average_rating: float | None


async def profile(conversation: Conversation) -> Profile:
    customer = await User.get(id=conversation.user_id)
    people = [customer.id, *await linked_visitors(customer)]  # a Telegram customer's own website chats too
    theirs = Conversation.filter(bot_id=conversation.bot_id, user_id__in=people)
    recent = list(await theirs.order_by("-last_message_at", "-id").limit(RECENT).select_related("assignee", "user"))
    ids = [int(str(row_id)) for row_id in await theirs.values_list("id", flat=True)]
    ratings = [int(str(stars)) for stars in await theirs.filter(rating__isnull=False).values_list("rating", flat=True)]
    notes = list(await Message.filter(conversation_id__in=ids, author_kind=AuthorKind.NOTE)
                 .order_by("-id").limit(RECENT).select_related("author"))
    average = round(sum(ratings) / len(ratings), 1) if ratings else None
    return Profile(customer, customer.created_at, recent, len(ids), notes, len(ratings), average)
