"""Website chats that a Telegram customer confirmed are theirs.

A website visitor asks the widget for a link: a one-time code in a `t.me/<bot>?start=link-<code>`
deep link, valid for a few minutes, stored as a digest. The Telegram customer who opens it claims
it, and the bot asks them to confirm; only then is the visitor linked to them, and the website
chats appear in their history, export and deletion. Nothing a site says (no user id, however it
is signed) links anyone: the proof comes from the Telegram side.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from models import AuditLog, Message, User, WidgetLink, WidgetSite
from services.accounts import digest  # codes are stored as digests, like login links

LINK_LIFETIME = timedelta(minutes=10)
START_PREFIX = "link-"  # the /start payload: link-<code>; Telegram allows 64 of A-Z a-z 0-9 _ -


async def create_link(visitor: User, lifetime: timedelta = LINK_LIFETIME) -> str:
    """A fresh code for this website visitor; their older codes stop working (at most one row each)."""
    code = secrets.token_urlsafe(24)
    now = datetime.now(UTC)
    async with in_transaction():
        await WidgetLink.filter(visitor_id=visitor.id).delete()
        await WidgetLink.create(bot_id=visitor.bot_id, visitor=visitor, code_digest=digest(code),
                                expires_at=now + lifetime)
    return code


def deep_link(bot_username: str, code: str) -> str:
    return f"https://t.me/{bot_username}?start={START_PREFIX}{code}"


@dataclass(frozen=True)
class LinkRequest:
    """What the Telegram customer is asked to confirm."""

    link_id: int
    site: WidgetSite | None
    messages: int  # the visitor's conversations' messages


async def claim(bot_id: int, code: str, customer: User) -> LinkRequest | None:
    """The customer who opened the deep link holds it from now on (nobody else can confirm it);
    None when it is unknown, used, expired or claimed by someone else."""
    if customer.telegram_id is None or not code or len(code) > 64:
        return None
    now = datetime.now(UTC)
    claimed = await WidgetLink.filter(
        Q(claimed_by_id=None) | Q(claimed_by_id=customer.id), bot_id=bot_id, code_digest=digest(code),
        used_at=None, expires_at__gt=now).update(claimed_by_id=customer.id)
    if not claimed:
        return None
    link = await WidgetLink.get(code_digest=digest(code)).prefetch_related("visitor")
    visitor_id = link.visitor.widget_visitor_id or ""
    site_id = visitor_id[1:].partition(":")[0]
    site = await WidgetSite.get_or_none(id=int(site_id), bot_id=bot_id) if site_id.isdigit() else None
    count = await Message.filter(conversation__user_id=link.visitor.id).count()
    return LinkRequest(link.id, site, count)


async def confirm(bot_id: int, link_id: int, customer: User) -> User | None:
    """The customer confirmed: the website visitor is linked to them. None if the link is no longer
    theirs to confirm (used, expired, or claimed by another person)."""
    now = datetime.now(UTC)
    async with in_transaction():
        used = await WidgetLink.filter(id=link_id, bot_id=bot_id, claimed_by_id=customer.id, used_at=None,
                                       expires_at__gt=now).update(used_at=now)
        if not used:
            return None
        link = await WidgetLink.get(id=link_id).prefetch_related("visitor")
        visitor = link.visitor
        visitor.linked_to = customer
        await visitor.save(update_fields=["linked_to_id"])
        await AuditLog.create(bot_id=bot_id, actor=customer, action="widget_link", target=f"user:{customer.id}",
                              details={"visitor": visitor.id})
    return visitor


async def decline(bot_id: int, link_id: int, customer: User) -> None:
    await WidgetLink.filter(id=link_id, bot_id=bot_id, claimed_by_id=customer.id, used_at=None).update(
        used_at=datetime.now(UTC))


async def linked_visitors(user: User) -> list[int]:
    """The website visitors a Telegram customer confirmed are them."""
    if user.telegram_id is None:
        return []
    return [int(str(visitor_id)) for visitor_id in await User.filter(
        bot_id=user.bot_id, linked_to_id=user.id).values_list("id", flat=True)]
