"""Who is calling the Mini App API.

Which business (bot) a request is for is settled here, once, and nowhere else: every API reads it from the
caller (`Caller.bot_id`, their user row's bot), never from the runtime. A deployment serves many bots; the
Mini App page is opened with `?bot=<Bot.id>` and its script names that bot in `X-Frontdesk-Bot` on every
call (without it: the deployment's default bot, BOT_TOKEN's or the only one).

Inside Telegram, every call carries `Authorization: tma <initData>`: signed by Telegram with the token of
the bot that opened the app (checked with aiogram's web_app utilities, with the named bot's token, so
initData from bot A naming bot B is refused) and no older than MINIAPP_AUTH_MAX_AGE. A paused, removed or
unknown bot lets nobody in. In a normal browser, a one-time /dashboard link opens a session: an HttpOnly
cookie, plus a CSRF token the page sends back in `X-CSRF-Token` on every change (the cookie alone changes
nothing). A session belongs to one user row, so to one bot; it stops working when that bot is paused or
removed, and a call naming another bot with it is refused.

Roles are worked out on every request (services.staff.StaffDirectory.role_of), so a manager removed
from the manager chat loses access within a minute: admins are ADMIN_IDS (and staff an admin made
one), managers and read-only viewers are the members of the manager chat an admin approved as such,
everyone else is a customer. Viewers read: any change (a method other than GET) needs a manager.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from aiogram.utils.web_app import WebAppInitData, safe_parse_webapp_init_data
from aiohttp import web

from miniapp.api import ApiError
from miniapp.origin import secure_cookies
from services import accounts, conversations, staff
from services.bots import ServedBots
from services.conversations import Customer
from services.flow import ConversationFlow
from services.i18n import Translate, pick_locale
from services.inbox import Viewer
from services.staff import StaffDirectory, WorkingHoursSource

SESSION_COOKIE = "frontdesk_session"
CSRF_COOKIE = "frontdesk_csrf"
CSRF_HEADER = "X-CSRF-Token"
BOT_HEADER = "X-Frontdesk-Bot"  # the bot (Bot.id) whose Mini App the page is; the page's `?bot=`
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class MiniAppRuntime:
    default_bot_id: int  # the bot of a call that names none: BOT_TOKEN's, or the only one
    bots: ServedBots  # which bots are served, and the token that signs each one's initData
    auth_max_age: timedelta
    admin_ids: frozenset[int]
    default_locale: str
    translate: Translate
    flow: ConversationFlow  # what staff do to a conversation, as from the manager chat
    staff: StaffDirectory  # who is staff, and in which role (only ADMIN_IDS while Telegram is off)
    hours: WorkingHoursSource = field(default_factory=lambda: WorkingHoursSource("", "UTC"))  # and the time zone
    staff_auth_max_age: timedelta = timedelta(hours=1)  # staff's initData: a leaked one works this long at most
    session_lifetime: timedelta = accounts.SESSION_LIFETIME  # a browser session from a /dashboard link


MINIAPP = web.AppKey("miniapp", MiniAppRuntime)


@dataclass(frozen=True)
class Caller(Viewer):
    via_session: bool = False
    csrf_token: str = ""
    locale: str = "en"
    session_id: int | None = None  # the browser session it came with


CALLER = web.RequestKey("caller", Caller)


def named_bot(runtime: MiniAppRuntime, named: str | None) -> int:
    """The bot a call names (`X-Frontdesk-Bot`, or the socket's auth frame), else the default one; 401 for
    anything that is not a bot's id."""
    if named is None or not named.strip():
        return runtime.default_bot_id
    named = named.strip()
    if not (named.isascii() and named.isdigit() and len(named) < 10):
        raise ApiError(401, "unauthorized")
    return int(named)


async def parse_init_data(runtime: MiniAppRuntime, bot_id: int, init_data: str,
                          now: datetime | None = None) -> WebAppInitData:
    """Telegram's signed data, checked with `bot_id`'s token, or 401: a bot not served, a wrong hash (signed
    by another bot too), no user, or older than the allowed age (staff are held to a shorter one once their
    role is known: `caller_from_init_data`)."""
    token = await runtime.bots.token_of(bot_id)
    if not token or not init_data.isascii():  # Telegram sends it percent-encoded
        raise ApiError(401, "unauthorized")
    try:
        data = safe_parse_webapp_init_data(token, init_data)
    except (ValueError, TypeError) as error:  # TypeError: a hash that decodes to non-ASCII (compare_digest)
        raise ApiError(401, "unauthorized") from error
    age = (now or datetime.now(UTC)) - data.auth_date.astimezone(UTC)
    if data.user is None or age > runtime.auth_max_age or age < -timedelta(minutes=5):
        raise ApiError(401, "unauthorized")
    return data


def same_token(sent: str, expected: str) -> bool:
    """A token from a header, cookie or form against ours, in constant time. Headers and forms may
    carry any bytes; ours are ASCII, so anything else is simply not it (compare_digest refuses
    non-ASCII text with a TypeError)."""
    return bool(sent) and sent.isascii() and hmac.compare_digest(sent, expected)


async def caller_from_init_data(request: web.Request, init_data: str, named: str | None) -> Caller:
    """The person Telegram signed in, as the named bot's user (a customer row is made on first use)."""
    runtime = request.app[MINIAPP]
    bot_id = named_bot(runtime, named)
    data = await parse_init_data(runtime, bot_id, init_data)
    assert data.user is not None
    who = Customer(data.user.id, data.user.first_name, data.user.last_name or "", data.user.username or "",
                   data.user.language_code or "")
    user = await conversations.register_customer(bot_id, who, runtime.default_locale)
    role = await runtime.staff.role_of(user, runtime.default_locale)
    if role in staff.ASSIGNABLE and datetime.now(UTC) - data.auth_date.astimezone(UTC) > runtime.staff_auth_max_age:
        raise ApiError(401, "unauthorized")  # reopening the Mini App signs it anew
    return Caller(user, role, locale=pick_locale(user.language, default=runtime.default_locale))


async def _from_session(request: web.Request, runtime: MiniAppRuntime, token: str) -> Caller:
    session = await accounts.session_of(token, runtime.session_lifetime)
    if session is None:
        raise ApiError(401, "unauthorized")
    bot_id = int(session.user.bot_id)
    named = request.headers.get(BOT_HEADER)
    # Another bot named: this page was opened for a bot the browser has since switched away from.
    if (named is not None and named_bot(runtime, named) != bot_id) or not await runtime.bots.is_active(bot_id):
        raise ApiError(401, "unauthorized")
    if request.method not in SAFE_METHODS and not same_token(request.headers.get(CSRF_HEADER, ""),
                                                             session.csrf_token):
        raise ApiError(403, "csrf")
    role = await runtime.staff.role_of(session.user, runtime.default_locale)
    return Caller(session.user, role, via_session=True, csrf_token=session.csrf_token,
                  locale=pick_locale(session.user.language, default=runtime.default_locale), session_id=session.id)


async def authenticate(request: web.Request) -> Caller:
    """The caller, remembered on the request; 401 when there is none."""
    known: Caller | None = request.get(CALLER)
    if known is not None:
        return known
    runtime = request.app[MINIAPP]
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "tma" and credentials:
        caller = await caller_from_init_data(request, credentials.strip(), request.headers.get(BOT_HEADER))
    elif token := request.cookies.get(SESSION_COOKIE):
        caller = await _from_session(request, runtime, token)
    else:
        raise ApiError(401, "unauthorized")
    request[CALLER] = caller
    return caller


async def staff_member(request: web.Request) -> Caller:
    """Staff; for a change (any method but GET/HEAD), staff who may act: a viewer only reads."""
    caller = await authenticate(request)
    if not caller.staff:
        raise ApiError(403, "forbidden")
    if request.method not in SAFE_METHODS and not caller.can_act:
        raise ApiError(403, "read_only")
    return caller


async def admin(request: web.Request) -> Caller:
    caller = await authenticate(request)
    if not caller.admin:
        raise ApiError(403, "forbidden")
    return caller


CallerCheck = Callable[[web.Request], Awaitable[Caller]]


def caller_locale(request: web.Request) -> str:
    """The language of the caller's errors: theirs when known, else the browser's."""
    caller: Caller | None = request.get(CALLER)
    if caller is not None:
        return caller.locale
    runtime = request.app.get(MINIAPP)
    default = runtime.default_locale if runtime is not None else "en"
    return pick_locale(request.query.get("lang"), request.cookies.get("frontdesk_lang"),
                       request.headers.get("Accept-Language"), default=default)


async def tenant(request: web.Request) -> int:
    """The bot (Bot.id) a request's data belongs to: its caller's. The route's own check (`staff_member`,
    `admin`) still decides whether the caller may have it."""
    return (await authenticate(request)).bot_id


def set_session_cookies(response: web.StreamResponse, request: web.Request, session: accounts.Session) -> None:
    """The browser's session: its HttpOnly cookie, and the CSRF token the page sends back on changes."""
    secure = secure_cookies(request)
    max_age = int(request.app[MINIAPP].session_lifetime.total_seconds())
    response.set_cookie(SESSION_COOKIE, session.token, max_age=max_age, path="/", httponly=True, samesite="Lax",
                        secure=secure)
    response.set_cookie(CSRF_COOKIE, session.csrf_token, max_age=max_age, path="/", samesite="Strict", secure=secure)
