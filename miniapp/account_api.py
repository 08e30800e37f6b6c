"""The caller's own account: who they are, their settings, their data export and its deletion."""

from __future__ import annotations

from dataclasses import replace

from aiohttp import web

from miniapp import platform_api, schemas
from miniapp.api import Api, ApiError, ok, read_body
from miniapp.auth import CALLER, SESSION_COOKIE, Caller, authenticate
from miniapp.origin import secure_cookies
from miniapp.studio_api import STUDIO
from models import ProviderKey
from services import accounts, conversations, inbox, privacy
from services.i18n import pick_locale


def preferences_of(preferences: dict[str, object]) -> schemas.Preferences:
    return schemas.Preferences(silent=bool(preferences.get("silent", False)),
                               rating_requests=bool(preferences.get("rating_requests", True)))


async def _studio_usable(request: web.Request, caller: Caller) -> bool:
    """Staff, or someone with a model to run: customers of a deployment without an AI see no studio tab."""
    studio = request.app.get(STUDIO)
    return (caller.role.value not in ("customer", "pending") or (studio is not None and studio.ai is not None)
            or await ProviderKey.exists(owner_id=caller.user.id))


async def me(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    user = caller.user
    return ok(schemas.Me(
        studio=await _studio_usable(request, caller),
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


def add_routes(app: web.Application, api: Api) -> None:
    api.route(app, "GET", "/api/me", me, response=schemas.Me, summary="Who is calling: id, name, role, language")
    api.route(app, "PATCH", "/api/me", update_me, body=schemas.PreferencesPatch, response=schemas.Me,
              summary="Change the caller's language and notification settings")
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
