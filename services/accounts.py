"""Who may use the Mini App in a browser: one-time login links and the sessions they open.

`/dashboard` gives a staff member a link that works once, for a few minutes; opening it trades
the link for a session (a cookie). Only digests of the tokens are stored, so the database alone
opens nothing.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tortoise.transactions import in_transaction

from models import Bot, BotState, LoginLink, Role, User, WebSession
from services.audit import audit

LINK_LIFETIME = timedelta(minutes=5)
SESSION_LIFETIME = timedelta(hours=12)  # STAFF_SESSION_HOURS: sign in again after a working day


MAX_TOKEN_CHARS = 128


def is_token(text: str) -> bool:
    """Could this be one of our tokens? They are short ASCII; anything else is refused unread."""
    return 0 < len(text) <= MAX_TOKEN_CHARS and text.isascii()


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_login_link(user: User, lifetime: timedelta = LINK_LIFETIME) -> str:
    """A fresh token for the link; the person's older unused links stop working."""
    token = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    async with in_transaction():
        await LoginLink.filter(user_id=user.id, used_at=None).update(used_at=now)
        await LoginLink.create(bot_id=user.bot_id, user=user, token_digest=digest(token),
                               expires_at=now + lifetime)
    return token


async def admin_login_link(bot_id: int, telegram_id: int, name: str = "", lifetime: timedelta = LINK_LIFETIME) -> str:
    """`python -m bot dashboard-link`: a one-time link for a deployment admin (ADMIN_IDS, the caller checks),
    from the server's shell, so the owner reaches the desk while Telegram is off. Their row is made if they
    have never used the bot (no names yet: `name` gives the first name customers see); the link is audited."""
    user, _ = await User.get_or_create(bot_id=bot_id, telegram_id=telegram_id, defaults={"role": Role.ADMIN})
    if name.strip() and user.first_name != name.strip()[:256]:
        user.first_name = name.strip()[:256]
        await user.save(update_fields=["first_name"])
    token = await create_login_link(user, lifetime)
    await audit(bot_id, user, "login_link", f"user:{user.id}", via="cli")
    return token


@dataclass(frozen=True)
class Session:
    id: int
    token: str  # goes into the HttpOnly cookie
    csrf_token: str  # the page sends it back in X-CSRF-Token
    user: User
    expires_at: datetime


async def redeem_login_link(token: str, lifetime: timedelta = SESSION_LIFETIME) -> Session | None:
    """Use the link once: a session for its person, or None if it is unknown, used or expired."""
    if not is_token(token):
        return None
    now = datetime.now(UTC)
    async with in_transaction():
        # The conditional update is the "once": of two concurrent redemptions, one updates the row.
        used = await LoginLink.filter(token_digest=digest(token), used_at=None, expires_at__gt=now).update(used_at=now)
        if not used:
            return None
        link = await LoginLink.get(token_digest=digest(token)).prefetch_related("user")
        session_token, csrf_token = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        row = await WebSession.create(bot_id=link.bot_id, user=link.user, token_digest=digest(session_token),
                                      csrf_token=csrf_token, expires_at=now + lifetime)
    return Session(row.id, session_token, csrf_token, link.user, now + lifetime)


async def session_of(token: str, lifetime: timedelta | None = None) -> Session | None:
    """The session of this cookie while it lasts; with `lifetime`, also no older than that (a session
    made when sessions lasted longer ends when today's setting says)."""
    if not is_token(token):
        return None
    now = datetime.now(UTC)
    query = WebSession.filter(token_digest=digest(token), expires_at__gt=now)
    if lifetime is not None:
        query = query.filter(created_at__gt=now - lifetime)
    session = await query.prefetch_related("user").first()
    if session is None:
        return None
    return Session(session.id, token, session.csrf_token, session.user, session.expires_at)


async def switch_session(token: str, to: User, lifetime: timedelta = SESSION_LIFETIME) -> Session | None:
    """The browser's session traded for one of the same person's row in another bot (the caller checks that
    they are staff there): a session belongs to one user row, so to one bot. None if this session has ended."""
    now = datetime.now(UTC)
    async with in_transaction():
        if not await WebSession.filter(token_digest=digest(token), expires_at__gt=now).delete():
            return None
        session_token, csrf_token = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        row = await WebSession.create(bot_id=to.bot_id, user=to, token_digest=digest(session_token),
                                      csrf_token=csrf_token, expires_at=now + lifetime)
    return Session(row.id, session_token, csrf_token, to, now + lifetime)


async def staff_rows(telegram_id: int) -> list[tuple[Bot, User]]:
    """The bots this Telegram user is staff of, as their rows last recorded it (a role is checked afresh
    before it is used), with their row in each: the active bots only, in the order they were added."""
    rows = await User.filter(telegram_id=telegram_id, role__in=[Role.ADMIN, Role.MANAGER, Role.VIEWER],
                             bot__state=BotState.ACTIVE).prefetch_related("bot").order_by("bot_id")
    return [(row.bot, row) for row in rows]


async def end_session(token: str) -> None:
    await WebSession.filter(token_digest=digest(token)).delete()


async def open_sessions(user: User) -> list[WebSession]:
    """The person's browser sessions that still work, newest first."""
    return list(await WebSession.filter(user_id=user.id, expires_at__gt=datetime.now(UTC)).order_by("-id"))


async def end_sessions(user: User, *, session_id: int | None = None, keep_id: int | None = None) -> int:
    """Sign the person out of one browser (`session_id`), or of all of them but `keep_id`; how many ended."""
    query = WebSession.filter(user_id=user.id)
    if session_id is not None:
        query = query.filter(id=session_id)
    if keep_id is not None:
        query = query.exclude(id=keep_id)
    return await query.delete()


async def sign_out_everywhere(user: User, actor: User) -> int:
    """An admin ends every browser session of a team member; audited."""
    async with in_transaction():
        ended = await end_sessions(user)
        await audit(user.bot_id, actor, "sign_out_browsers", f"user:{user.id}", sessions=ended)
    return ended


async def forget_expired() -> int:
    """Old links and sessions: removed by the retention job."""
    now = datetime.now(UTC)
    return await LoginLink.filter(expires_at__lt=now).delete() + await WebSession.filter(expires_at__lt=now).delete()
