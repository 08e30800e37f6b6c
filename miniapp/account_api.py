"""The caller's own account: who they are, their settings, their data export and its deletion."""

from __future__ import annotations

from aiohttp import web

from miniapp import schemas
from miniapp.api import Api, ok, read_body
from miniapp.auth import CALLER, SESSION_COOKIE, authenticate
from miniapp.origin import secure_cookies
from services import accounts, conversations, inbox, privacy
from services.i18n import pick_locale


def preferences_of(preferences: dict[str, object]) -> schemas.Preferences:
    return schemas.Preferences(silent=bool(preferences.get("silent", False)),
                               rating_requests=bool(preferences.get("rating_requests", True)))


async def me(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    user = caller.user
    return ok(schemas.Me(
        id=user.id, name=inbox.person(user)["name"],  # type: ignore[index]
        username=user.username or None, role=caller.role.value, locale=caller.locale,
        telegram_id=user.telegram_id, preferences=preferences_of(user.preferences),
        csrf_token=caller.csrf_token or None))


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
    request[CALLER] = type(caller)(user, caller.role, caller.via_session, caller.csrf_token,
                                     pick_locale(user.language, default=caller.locale))
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


def add_routes(app: web.Application, api: Api) -> None:
    api.route(app, "GET", "/api/me", me, response=schemas.Me, summary="Who is calling: id, name, role, language")
    api.route(app, "PATCH", "/api/me", update_me, body=schemas.PreferencesPatch, response=schemas.Me,
              summary="Change the caller's language and notification settings")
    api.route(app, "GET", "/api/me/data", export_data, content_type="application/json",
              summary="Everything stored about the caller, as a JSON file")
    api.route(app, "DELETE", "/api/me/data", delete_data, body=schemas.DeleteConfirmation,
              response=schemas.Deleted, summary="Delete everything stored about the caller (cannot be undone)")
