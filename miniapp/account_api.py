"""The caller's own account: who they are, their settings, their data export and its deletion."""

from __future__ import annotations

from dataclasses import replace

from aiohttp import web

from miniapp import platform_api, schemas
from miniapp.api import Api, ApiError, ok, read_body
from miniapp.auth import CALLER, MINIAPP, SESSION_COOKIE, Caller, authenticate, set_session_cookies
from miniapp.origin import secure_cookies
from miniapp.studio_api import STUDIO
from models import Bot, ProviderKey, User
from services import accounts, conversations, inbox, persona, privacy, staff
from services.audit import audit
from services.i18n import N_, pick_locale

SWITCH_IN_TELEGRAM = N_("Inside Telegram, open the other business's app from its bot's chat.")


def preferences_of(preferences: dict[str, object]) -> schemas.Preferences:
    return schemas.Preferences(silent=bool(preferences.get("silent", False)),
                               rating_requests=bool(preferences.get("rating_requests", True)))


async def _studio_usable(request: web.Request, caller: Caller) -> bool:
    """Staff, or someone with a model to run: customers of a deployment without an AI see no studio tab."""
    studio = request.app.get(STUDIO)
    return (caller.role.value not in ("customer", "pending") or (studio is not None and studio.ai is not None)
            or await ProviderKey.exists(owner_id=caller.user.id))


def _choice(bot: Bot, current: bool) -> schemas.BotChoice:
    name = persona.business_name_of(bot) or (f"@{bot.username}" if bot.username else f"bot {bot.telegram_id}")
    return schemas.BotChoice(id=bot.id, name=name, username=bot.username or None, current=current,
                             link=f"https://t.me/{bot.username}" if bot.username else None)


async def _bots(caller: Caller) -> list[schemas.BotChoice]:
    """The bot of this page, and the other active bots this person is staff of (as their rows say)."""
    bots = {caller.bot_id: await Bot.get(id=caller.bot_id)}
    if caller.user.telegram_id is not None:
        for bot, _ in await accounts.staff_rows(int(caller.user.telegram_id)):
            bots.setdefault(bot.id, bot)
    return [_choice(bot, bot.id == caller.bot_id) for _, bot in sorted(bots.items())]


async def me(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    user = caller.user
    return ok(schemas.Me(
        studio=await _studio_usable(request, caller), bot_id=caller.bot_id, bots=await _bots(caller),
        id=user.id, name=inbox.person(user)["name"],  # type: ignore[index]
        username=user.username or None, role=caller.role.value, locale=caller.locale,
        telegram_id=user.telegram_id, preferences=preferences_of(user.preferences),
        csrf_token=caller.csrf_token or None, platform=platform_api.is_platform_admin(request, caller)))


async def update_me(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    patch = await read_body(request, schemas.PreferencesPatch)
    user = caller.user
    if patch.language is not None:
        await conversations.set_language(user, patch.language)
    changes = patch.model_dump(exclude_none=True, exclude={"language"})
    if changes:
        user.preferences = {**user.preferences, **changes}
        await user.save(update_fields=["preferences"])
    request[CALLER] = replace(caller, user=user, locale=pick_locale(user.language, default=caller.locale))
    return await me(request)


async def export_data(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    data = privacy.export_bytes(await privacy.export_customer_data(caller.user))
    return web.Response(body=data, content_type="application/json", headers={
        "Content-Disposition": f'attachment; filename="my-data-{caller.user.id}.json"',
        "Cache-Control": "no-store"})


async def delete_data(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    await read_body(request, schemas.DeleteConfirmation)
    counts = await privacy.delete_customer_data(caller.user, via="app")
    response = ok(schemas.Deleted(**counts))
    if caller.via_session:
        token = request.cookies.get(SESSION_COOKIE, "")
        await accounts.end_session(token)
        response.del_cookie(SESSION_COOKIE, path="/", secure=secure_cookies(request), httponly=True, samesite="Lax")
    return response


async def _sessions(caller: Caller) -> web.Response:
    rows = await accounts.open_sessions(caller.user)
    return ok(schemas.BrowserSessions(sessions=[
        schemas.BrowserSessionOut(id=row.id, created_at=row.created_at, expires_at=row.expires_at,
                                  current=row.id == caller.session_id) for row in rows]))


async def sessions_view(request: web.Request) -> web.Response:
    return await _sessions(await authenticate(request))


async def end_session(request: web.Request) -> web.Response:
    """Sign out of one browser (a lost laptop, a shared computer)."""
    caller = await authenticate(request)
    session_id = int(request.match_info["session_id"]) if request.match_info["session_id"].isdigit() else -1
    if not await accounts.end_sessions(caller.user, session_id=session_id):
        raise ApiError(404, "not_found")
    return await _sessions(caller)


async def end_other_sessions(request: web.Request) -> web.Response:
    """Sign out of every browser but this one (all of them, from inside Telegram)."""
    caller = await authenticate(request)
    await accounts.end_sessions(caller.user, keep_id=caller.session_id)
    return await _sessions(caller)


async def switch_bot(request: web.Request) -> web.Response:
    """A browser signed in for one bot moves to another bot this person is staff of: its session is traded for
    one of their row there (a session is one row's). Inside Telegram each bot signs its own Mini App, so there
    the page opens the other bot's chat instead (`BotChoice.link`)."""
    caller = await authenticate(request)
    body = await read_body(request, schemas.BotSwitch)
    if not caller.via_session:
        raise ApiError(400, "switch_in_telegram", SWITCH_IN_TELEGRAM)
    runtime = request.app[MINIAPP]
    target = None
    if caller.user.telegram_id is not None and await runtime.bots.is_active(body.bot):
        target = await User.get_or_none(bot_id=body.bot, telegram_id=caller.user.telegram_id)
    # Not staff there (or no such bot): the same answer, so bots one does not work for stay unnamed.
    if target is None or await runtime.staff.role_of(target, runtime.default_locale) not in staff.ASSIGNABLE:
        raise ApiError(404, "not_found")
    session = await accounts.switch_session(request.cookies.get(SESSION_COOKIE, ""), target, runtime.session_lifetime)
    if session is None:
        raise ApiError(401, "unauthorized")
    await audit(target.bot_id, target, "session.switch", f"user:{target.id}", from_bot=caller.bot_id)
    response = ok(_choice(await Bot.get(id=target.bot_id), current=True))
    set_session_cookies(response, request, session)
    return response


def add_routes(app: web.Application, api: Api) -> None:
    api.route(app, "GET", "/api/me", me, response=schemas.Me, summary="Who is calling: id, name, role, language")
    api.route(app, "PATCH", "/api/me", update_me, body=schemas.PreferencesPatch, response=schemas.Me,
              summary="Change the caller's language and notification settings")
    api.route(app, "POST", "/api/me/bot", switch_bot, body=schemas.BotSwitch, response=schemas.BotChoice,
              summary="In a browser: move this session to another bot the caller is staff of (then reload the "
                      "page with ?bot=)")
    api.route(app, "GET", "/api/me/sessions", sessions_view, response=schemas.BrowserSessions,
              summary="The caller's browser sessions (from /dashboard links) that still work")
    api.route(app, "DELETE", "/api/me/sessions", end_other_sessions, response=schemas.BrowserSessions,
              summary="Sign out of every browser but the one making this request")
    api.route(app, "DELETE", "/api/me/sessions/{session_id}", end_session, response=schemas.BrowserSessions,
              summary="Sign out of one browser")
    api.route(app, "GET", "/api/me/data", export_data, content_type="application/json",
              summary="Everything stored about the caller, as a JSON file")
    api.route(app, "DELETE", "/api/me/data", delete_data, body=schemas.DeleteConfirmation,
              response=schemas.Deleted, summary="Delete everything stored about the caller (cannot be undone)")
