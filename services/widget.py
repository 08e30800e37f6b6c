"""The website widget's domain: sites, visitor identity, and what a widget is shown.

The socket and HTTP endpoints (miniapp/widget.py) parse and answer; the rules live here:
which origins a site allows, how a visitor's token is signed and read, how a site's own
logged-in user is verified, which messages a visitor may see, and the JSON frames that carry
them (the public protocol in docs/widget-protocol.md).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from models import AuditLog, AuthorKind, Conversation, ConversationMode, Message, User, WidgetSite
from services import tenant_settings
from services.events import EventBus
from services.files import attachment_json
from services.render import html_to_text, markdown_to_html, sanitize_html

WIDGET_CHANNEL = "widget"  # the event bus channel every instance's sockets listen on
VISIBLE_AUTHORS = (AuthorKind.CUSTOMER, AuthorKind.AI, AuthorKind.MANAGER, AuthorKind.SYSTEM)
MAX_SITE_USER_ID = 40
MAX_SECRET_OVERLAP_HOURS = 720  # a rotated secret verifies at most a month longer
# A message committed a moment after a later-numbered one (concurrent writers) is still sent on
# resume: history re-sends this much before the visitor's last message, and the widget de-duplicates.
RESUME_OVERLAP = timedelta(seconds=10)
HISTORY_LIMIT = 200
COLOR = re.compile(r"^#[0-9a-fA-F]{3}(?:[0-9a-fA-F]{3})?$")
DEFAULT_COLOR, DEFAULT_TEXT_COLOR = "#2563eb", "#ffffff"


class SiteError(ValueError):
    """A site cannot be created as asked (the message says why; `code` says it to a program)."""

    def __init__(self, message: str, code: str = "bad_site") -> None:
        super().__init__(message)
        self.code = code


# --- sites ------------------------------------------------------------------------------------------


def normalize_origin(origin: str) -> str:
    """`https://Shop.example:443/page` -> `https://shop.example`; an origin is scheme, host and port only."""
    try:
        parts = urlsplit(origin.strip())
        scheme, host, given_port = parts.scheme, parts.hostname, parts.port
    except ValueError:  # "http://[", or a port that is not a number up to 65535
        scheme, host, given_port = "", None, None
    if scheme not in ("http", "https") or not host:
        raise SiteError(f"{origin!r} is not an origin like https://shop.example", "bad_origin")
    default_port = {"http": 80, "https": 443}[scheme]
    port = f":{given_port}" if given_port and given_port != default_port else ""
    return f"{scheme}://{host.lower()}{port}"


def _origins(origins: list[str]) -> list[str]:
    allowed = sorted({normalize_origin(origin) for origin in origins})
    if not allowed:
        raise SiteError("a site needs at least one allowed origin", "no_origin")
    return allowed


def _colors(*values: str) -> None:
    for value in values:
        if value and not COLOR.match(value):
            raise SiteError(f"{value!r} is not a colour like #2563eb", "bad_color")


async def create_site(bot_id: int, origins: list[str], *, title: str = "", color: str = "",
                      text_color: str = "", greeting: str = "", public_key: str = "",
                      actor: User | None = None) -> WidgetSite:
    allowed = _origins(origins)
    _colors(color, text_color)
    async with in_transaction():
        site = await WidgetSite.create(
            bot_id=bot_id, public_key=public_key or f"site_{secrets.token_urlsafe(18)}",
            secret=secrets.token_hex(32), token_key=secrets.token_hex(32), allowed_origins=allowed,
            title=title[:128], color=color or DEFAULT_COLOR, text_color=text_color or DEFAULT_TEXT_COLOR,
            greeting=greeting)
        if actor is not None:
            await _audit(site, actor, "site_add", origins=allowed, title=site.title)
    return site


async def _audit(site: WidgetSite, actor: User | None, action: str, **details: Any) -> None:
    await AuditLog.create(bot_id=site.bot_id, actor=actor, action=action, target=site.public_key,
                          details=details)


async def update_site(site: WidgetSite, *, origins: list[str] | None = None, title: str | None = None,
                      color: str | None = None, text_color: str | None = None,
                      greeting: str | None = None, actor: User | None = None) -> WidgetSite:
    """Change what is given (validated as `create_site` does; an empty colour is the default one).

    Nothing is written if any of it is wrong. The key and secrets stay, so the pages that embed the
    widget and sign their users keep working.
    """
    allowed = _origins(origins) if origins is not None else None
    _colors(color or "", text_color or "")
    changes: dict[str, Any] = {
        "allowed_origins": allowed, "title": None if title is None else title[:128],
        "color": None if color is None else color or DEFAULT_COLOR,
        "text_color": None if text_color is None else text_color or DEFAULT_TEXT_COLOR, "greeting": greeting}
    changed = [name for name, value in changes.items() if value is not None]
    for name in changed:
        setattr(site, name, changes[name])
    if changed:
        async with in_transaction():
            await site.save(update_fields=changed)
            await _audit(site, actor, "site_edit", **{name: changes[name] for name in changed})
    return site


async def delete_site(site: WidgetSite, actor: User | None) -> None:
    """Stop serving the site's widget; its visitors' conversations stay."""
    async with in_transaction():
        await site.delete()
        await _audit(site, actor, "site_remove", origins=site.allowed_origins, title=site.title)


async def rotate_secret(site: WidgetSite, overlap: timedelta, actor: User | None = None) -> WidgetSite:
    """A new identity secret. The old one still verifies identities for `overlap` (none when zero), so
    the site's servers can switch over without logging anyone out; a secret it replaced before is
    retired at once. Audited, without the secrets."""
    now = datetime.now(UTC)
    async with in_transaction():
        current = await WidgetSite.select_for_update().get(id=site.id)
        overlapping = overlap > timedelta(0)
        current.previous_secret = current.secret if overlapping else ""
        current.previous_secret_until = now + overlap if overlapping else None
        current.secret = secrets.token_hex(32)
        await current.save(update_fields=["secret", "previous_secret", "previous_secret_until"])
        await _audit(current, actor, "site_rotate_secret", overlap_hours=round(overlap.total_seconds() / 3600, 2))
    return current


def previous_secret_until(site: WidgetSite, now: datetime | None = None) -> datetime | None:
    """Until when the replaced secret still verifies, if it still does."""
    until = site.previous_secret_until
    return until if site.previous_secret and until is not None and until > _now(now) else None


def embed_snippet(site: WidgetSite, base_url: str) -> str:
    """What the site's pages include, as `python -m bot site add` prints it."""
    return f'<script src="{base_url.rstrip("/")}/widget.js" data-site="{site.public_key}" async></script>'


async def site_by_key(public_key: str) -> WidgetSite | None:
    if not public_key or len(public_key) > 64:
        return None
    return await WidgetSite.get_or_none(public_key=public_key)


async def remove_site(bot_id: int, public_key: str) -> bool:
    """Stop serving one of the bot's websites; False when the bot has no site with that key."""
    return bool(await WidgetSite.filter(bot_id=bot_id, public_key=public_key).delete())


def origin_allowed(site: WidgetSite, origin: str | None) -> bool:
    if not origin:
        return False
    try:
        return normalize_origin(origin) in site.allowed_origins
    except SiteError:
        return False


def site_config(site: WidgetSite, greeting: str, business_name: str = "") -> dict[str, str]:
    """What the widget shows before anyone writes: public by design. The site's own title and greeting, else
    the business's name and the default greeting."""
    return {"title": site.title or business_name, "color": site.color, "text_color": site.text_color,
            "greeting": site.greeting or greeting}


# --- visitors ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IdentityPolicy:
    """How long what a widget holds stays good (WIDGET_TOKEN_DAYS, WIDGET_IDENTITY_MAX_AGE)."""

    token_lifetime: timedelta = timedelta(days=30)  # after the visit that issued the token
    identity_max_age: timedelta = timedelta(days=1)  # after the site signed its user's identity
    clock_skew: timedelta = timedelta(minutes=5)  # a site's clock may be this far ahead of ours


@dataclass(frozen=True)
class Visitor:
    site: WidgetSite
    visitor_id: str  # User.widget_visitor_id: v<site>:<random> anonymous, u<site>:<site's user id> signed in
    verified_user_id: str | None = None  # the site's own id of a logged-in user
    identity_time: int | None = None  # when the site signed that user's identity (Unix seconds)
    secret_id: str = ""  # which of the site's secrets signed it (see secret_id)
    issued_at: float | None = None  # when the token the visitor came with was issued

    @property
    def identified(self) -> bool:
        return self.verified_user_id is not None

    @property
    def token(self) -> str:
        """A fresh token (a visit renews it); a signed-in user's lasts only as long as their identity hash."""
        return issue_token(self.site, self.visitor_id, identity_time=self.identity_time, secret_id=self.secret_id)


def new_visitor(site: WidgetSite) -> Visitor:
    return Visitor(site, f"v{site.id}:{secrets.token_hex(16)}")


def _sign(key: str, payload: bytes) -> str:
    digest = hmac.new(key.encode(), payload, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def issue_token(site: WidgetSite, visitor_id: str, *, identity_time: int | None = None, secret_id: str = "",
                now: datetime | None = None) -> str:
    claims: dict[str, Any] = {"v": visitor_id, "t": round(_now(now).timestamp(), 3)}
    if identity_time is not None:
        claims.update(a=identity_time, k=secret_id)
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"{payload}.{_sign(site.token_key, payload.encode())}"


def read_token(site: WidgetSite, token: str, policy: IdentityPolicy, now: datetime | None = None) -> Visitor | None:
    """The visitor a token was issued to by this site, or None if it is not one of ours or no longer good.

    A token expires `token_lifetime` after it was issued. A signed-in user's token also ends when the
    identity hash it was issued for gets too old, or when the secret that signed that hash is retired.
    Whether the visitor logged out since is `still_signed_in`'s question (it needs the database).
    """
    payload, _, signature = token.partition(".")
    if not payload or len(token) > 512 or not token.isascii():  # ours are short ASCII
        return None
    if not hmac.compare_digest(signature, _sign(site.token_key, payload.encode())):
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        visitor_id, issued = str(claims["v"]), claims["t"]
    except (ValueError, KeyError, TypeError):
        return None
    moment = _now(now)
    if not _is_time(issued) or not moment - policy.token_lifetime <= _at(issued) <= moment + policy.clock_skew:
        return None
    if visitor_id.startswith(f"v{site.id}:"):
        return Visitor(site, visitor_id, issued_at=float(issued))
    if not visitor_id.startswith(f"u{site.id}:"):
        return None  # signed for another site that shared a key: never
    identity_time, secret = claims.get("a"), claims.get("k")
    if not isinstance(identity_time, int) or not _fresh_identity(identity_time, policy, moment) \
            or not isinstance(secret, str) or secret not in _secret_ids(site, moment):
        return None  # an identity hash this old would be refused itself; a retired secret signed it
    return Visitor(site, visitor_id, verified_user_id=visitor_id.partition(":")[2], identity_time=identity_time,
                   secret_id=str(secret), issued_at=float(issued))


def _is_time(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 2**40


def _at(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def _fresh_identity(timestamp: int, policy: IdentityPolicy, now: datetime) -> bool:
    return 0 <= timestamp < 2**40 and now - policy.identity_max_age <= _at(timestamp) <= now + policy.clock_skew


def secret_id(secret: str) -> str:
    """A name for one of a site's secrets that gives nothing of it away (tokens carry it)."""
    return hashlib.sha256(f"frontdesk-widget-secret:{secret}".encode()).hexdigest()[:12]


def _live_secrets(site: WidgetSite, now: datetime) -> list[str]:
    """The site's secret, and the one it replaced while the rotation's overlap lasts."""
    until = site.previous_secret_until
    return [site.secret, *([site.previous_secret] if site.previous_secret and until and until > now else [])]


def _secret_ids(site: WidgetSite, now: datetime) -> set[str]:
    return {secret_id(secret) for secret in _live_secrets(site, now)}


def identity_signature(site: WidgetSite, user_id: str, timestamp: int, secret: str | None = None) -> str:
    """What the site's server computes for its logged-in user: hex HMAC-SHA256(secret, "<user id>:<time>")."""
    message = f"{user_id}:{timestamp}".encode()
    return hmac.new((site.secret if secret is None else secret).encode(), message, hashlib.sha256).hexdigest()


def verified_visitor(site: WidgetSite, user_id: str, timestamp: object, signature: str, policy: IdentityPolicy,
                     now: datetime | None = None) -> Visitor | None:
    """The site's logged-in user, the same visitor on any device, if the site signed their id lately."""
    if not user_id or len(user_id) > MAX_SITE_USER_ID or len(signature) != 64 or not signature.isascii():
        return None
    if isinstance(timestamp, str) and timestamp.isdigit() and len(timestamp) <= 12:
        timestamp = int(timestamp)
    moment = _now(now)
    if not isinstance(timestamp, int) or isinstance(timestamp, bool) or not _fresh_identity(timestamp, policy, moment):
        return None
    for secret in _live_secrets(site, moment):
        if hmac.compare_digest(signature.lower(), identity_signature(site, user_id, timestamp, secret)):
            return Visitor(site, f"u{site.id}:{user_id}", verified_user_id=user_id, identity_time=timestamp,
                           secret_id=secret_id(secret))
    return None


async def still_signed_in(visitor: Visitor) -> bool:
    """False when the visitor logged out after their token or identity hash was issued."""
    signed_out = await User.filter(bot_id=visitor.site.bot_id, widget_visitor_id=visitor.visitor_id).values_list(
        "widget_signed_out_at", flat=True)
    cutoff = signed_out[0] if signed_out else None
    if not isinstance(cutoff, datetime):
        return True
    issued = [moment for moment in (visitor.issued_at, visitor.identity_time) if moment is not None]
    return all(_at(moment) > cutoff for moment in issued)


async def sign_out(visitor: Visitor, default_locale: str, now: datetime | None = None) -> None:
    """The visitor logged out: every token and identity hash issued to them until now is void, on every
    device and instance (the time is in the database)."""
    moment = _now(now)
    bot_id = int(visitor.site.bot_id)
    rows = User.filter(bot_id=bot_id, widget_visitor_id=visitor.visitor_id)
    if not await rows.update(widget_signed_out_at=moment) and visitor.identified:
        # A signed-in user with no chat yet: remember the logout, or an old hash would open their future chat.
        await User.bulk_create([User(bot_id=bot_id, widget_visitor_id=visitor.visitor_id, language=default_locale,
                                     widget_signed_out_at=moment)], ignore_conflicts=True)
        await rows.update(widget_signed_out_at=moment)


async def visitor_user(visitor: Visitor) -> User | None:
    return await User.get_or_none(bot_id=visitor.site.bot_id,
                                  widget_visitor_id=visitor.visitor_id)


# --- what a visitor sees ------------------------------------------------------------------------------


async def visible_messages(user: User, after: int | None, limit: int = HISTORY_LIMIT) -> list[Message]:
    """The visitor's messages (all their conversations) after `after`, oldest first; the latest ones
    when `after` is None. Notes and other customers' messages are never among them."""
    # A notice with no text yet is a place kept for it (services.desk); it is shown once written.
    # (Tortoise's exclude(a=..., b=...) means "neither a nor b", not "not both": hence the Q.)
    query = Message.filter(~(Q(author_kind=AuthorKind.SYSTEM) & Q(text="")), conversation__user_id=user.id,
                           author_kind__in=VISIBLE_AUTHORS)
    if after is None:
        return list(reversed(await query.order_by("-id").limit(limit)))
    last_seen = await Message.filter(id=after, conversation__user_id=user.id).first()
    if last_seen is not None:
        query = query.filter(Q(id__gt=after) | Q(created_at__gte=last_seen.created_at - RESUME_OVERLAP))
    else:
        query = query.filter(id__gt=after)
    return list(await query.order_by("id").limit(limit))


async def visible_message(user: User, message_id: int) -> Message | None:
    """One message the visitor may see (as `visible_messages` would show it), or None."""
    return await Message.filter(id=message_id, bot_id=user.bot_id, conversation__user_id=user.id,
                                author_kind__in=VISIBLE_AUTHORS).first()


def author_of(message: Message) -> str:
    return str(message.author_kind.value)


def message_html(message: Message) -> str:
    """The message as safe HTML (Telegram's small set of tags; the widget allows no other)."""
    if message.author_kind == AuthorKind.AI:
        return markdown_to_html(message.text)
    if message.author_kind == AuthorKind.MANAGER:
        # Stored as Telegram HTML; cleaned again here, for rows stored before it was cleaned on the way in.
        return sanitize_html(message.text)
    return _escape(message.text)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def message_frame(message: Message, client_id: str | None = None) -> dict[str, Any]:
    html = message_html(message)
    frame: dict[str, Any] = {
        "type": "message", "id": message.id, "client_id": client_id or _client_id(message),
        "author": author_of(message), "text": html_to_text(html) if message.author_kind != AuthorKind.CUSTOMER
        else message.text, "html": html, "created_at": message.created_at.isoformat(),
        "reply_to": message.reply_to_id,
        "conversation": message.conversation_id,
    }
    if message.attachments:
        # `file`: GET /widget/api/files/<id>/<index> serves it; `image`: shown in place
        frame["attachments"] = [attachment_json(a) for a in message.attachments]
    if message.ai_meta.get("notice") == "rate":
        frame["rate"] = message.conversation_id
    sources = message.ai_meta.get("sources") if message.author_kind == AuthorKind.AI else None
    if isinstance(sources, list) and sources:
        # Only web pages that were given to the model are links (answering.cite); documents are titles.
        frame["sources"] = [{"title": str(source.get("title") or ""), "url": _web_link(source.get("url"))}
                            for source in sources if isinstance(source, dict)]
    return frame


def _web_link(url: object) -> str:
    return url if isinstance(url, str) and url.startswith(("https://", "http://")) else ""


def _client_id(message: Message) -> str | None:
    key = message.source_key or ""
    return key.rpartition(":")[2] if key.startswith("w") and message.author_kind == AuthorKind.CUSTOMER else None


async def status_frame(conversation: Conversation) -> dict[str, Any]:
    agent = None
    if conversation.mode == ConversationMode.HUMAN and conversation.assignee_id is not None:
        assignee = await User.get_or_none(id=conversation.assignee_id)
        agent = assignee.first_name if assignee else None
    return {"type": "status", "mode": str(conversation.mode.value), "agent": agent,
            "conversation": conversation.id, "closed": conversation.closed_at is not None}


def source_key(visitor_id: str, client_id: str) -> str:
    """A widget message's idempotency key: the visitor's own client id, never another visitor's."""
    return f"w{visitor_id}:{client_id}"


# --- live events ----------------------------------------------------------------------------------------


class WidgetLive:
    """Publishes what a visitor should see now to whichever instance holds their sockets.

    Best effort: everything published is also in the database, and a widget that reconnects
    asks for what it missed.
    """

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus

    async def publish(self, visitor_id: str, frame: dict[str, Any]) -> None:
        await self.bus.publish(WIDGET_CHANNEL, {"visitor": visitor_id, "frame": frame})

    async def message(self, visitor_id: str, message: Message, client_id: str | None = None) -> None:
        frame = message_frame(message, client_id)
        author_id = message.author_id
        if message.author_kind == AuthorKind.MANAGER and author_id is not None:
            # The reply names its writer itself: a status frame from another job may come after it.
            author = await User.get_or_none(id=author_id)
            frame["by"] = author.first_name if author is not None else None
        await self.publish(visitor_id, frame)

    async def signed_out(self, visitor_id: str) -> None:
        """The visitor logged out: their sockets, on every instance, are told so and closed."""
        await self.bus.publish(WIDGET_CHANNEL, {"visitor": visitor_id, "frame": {"type": "signed_out"}, "close": True})

    async def delta(self, visitor_id: str, reply_to: int, text_so_far: str) -> None:
        await self.publish(visitor_id, {"type": "delta", "reply_to": reply_to, "text": text_so_far,
                                        "html": markdown_to_html(text_so_far)})

    async def typing(self, visitor_id: str, reply_to: int) -> None:
        """The answer to `reply_to` is on its way but waits its turn: the widget shows "typing…"."""
        await self.publish(visitor_id, {"type": "typing", "reply_to": reply_to})

    async def status(self, conversation: Conversation) -> None:
        user = await User.get(id=conversation.user_id)
        if user.widget_visitor_id:
            await self.publish(user.widget_visitor_id, await status_frame(conversation))


# --- what a visitor asks for -------------------------------------------------------------------------


async def record_notice(conversation: Conversation, text: str, **meta: Any) -> Message:
    """One of our own messages in a widget conversation: stored, so a reload shows it too."""
    return await Message.create(bot_id=conversation.bot_id, conversation_id=conversation.id,
                                author_kind=AuthorKind.SYSTEM, text=text, ai_meta={"source": "widget", **meta})


async def already_stored(bot_id: int, key: str) -> Message | None:
    """The message a visitor sent before under this key (a re-send after a reconnect)."""
    return await Message.get_or_none(bot_id=bot_id, source_key=key)


# --- the demo ------------------------------------------------------------------------------------------

DEMO_SITE_KEY = "demo"


async def ensure_demo_site(bot_id: int, origins: list[str]) -> WidgetSite | None:
    """The demo page's site, created once so `make run` shows a working widget at `/` (only while the demo is on:
    DEMO_SITE, by default in development only).

    Created on the first start with the demo on only: once removed (`site remove demo`) it stays removed.
    """
    if not (await tenant_settings.load(bot_id)).demo_site_created:
        if not await WidgetSite.exists(public_key=DEMO_SITE_KEY):
            with contextlib.suppress(IntegrityError):  # another instance, starting at once, made it
                await create_site(bot_id, origins, title="", public_key=DEMO_SITE_KEY)
        await tenant_settings.update(bot_id, {"demo_site_created": True})
    # Its title is the business's name (it was "Frontdesk" before there was one to show).
    await WidgetSite.filter(public_key=DEMO_SITE_KEY, title="Frontdesk").update(title="")
    return await WidgetSite.get_or_none(public_key=DEMO_SITE_KEY)


async def list_sites(bot_id: int | None = None) -> list[WidgetSite]:
    query = WidgetSite.all() if bot_id is None else WidgetSite.filter(bot_id=bot_id)
    return list(await query.order_by("id"))
