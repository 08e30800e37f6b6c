"""The persona editor's API (staff): versions, a new version, a version's diff, and rollback."""

from __future__ import annotations

from aiohttp import web

from miniapp import admin_schemas as shapes
from miniapp.api import Api, ApiError, ok, path_id, read_body, read_query
from miniapp.auth import MINIAPP, staff_member
from services import inbox, persona
from services.i18n import N_
from services.versioning import LabelError

PERSONA_ERRORS = {
    "empty": (400, N_("The persona is empty: write what the assistant should know and how it should answer.")),
    "too_long": (400, N_("The persona is too long: at most {max} characters.")),
    "unchanged": (409, N_("Nothing changed: this text is already the active version.")),
    "stale": (409, N_("Someone saved another version meanwhile. Reload to see it, then make your change again.")),
}

LABEL_ERRORS = {
    "bad_label": N_("A label is 1–32 lowercase letters, digits, “_”, “.” or “-”."),
    "too_many_labels": N_("A version can have at most 10 labels."),
}


def _summary(version: persona.Version) -> dict[str, object]:
    first = next((line.strip() for line in version.text.splitlines() if line.strip()), "")
    return {"version": version.version, "created_at": version.created_at.isoformat(), "active": version.active,
            "author": inbox.person(version.author), "restored_from": version.restored_from,
            "chars": len(version.text), "preview": first[:120] + ("…" if len(first) > 120 else ""),
            "labels": version.labels}


def _full(version: persona.Version) -> shapes.PersonaVersionOut:
    return shapes.PersonaVersionOut.model_validate({**_summary(version), "text": version.text})


def _number(request: web.Request) -> int:
    return path_id(request, "version")


async def overview(request: web.Request) -> web.Response:
    await staff_member(request)
    params = read_query(request, shapes.PersonaHistoryParams)
    bot_id = request.app[MINIAPP].bot_id
    versions, more = await persona.history(bot_id, before=params.before, limit=params.limit)
    latest = await persona.latest_version(bot_id)
    return ok(shapes.PersonaOverview(
        text=latest.text if latest is not None else persona.default_persona(),
        active=_full(latest) if latest is not None else None,
        versions=[shapes.PersonaVersionSummary.model_validate(_summary(v)) for v in versions],
        has_more=more, max_chars=persona.MAX_PERSONA_CHARS))


async def version_detail(request: web.Request) -> web.Response:
    await staff_member(request)
    version = await persona.get_version(request.app[MINIAPP].bot_id, _number(request))
    if version is None:
        raise ApiError(404, "not_found")
    return ok(_full(version))


async def _saved(request: web.Request, number: int) -> web.Response:
    version = await persona.get_version(request.app[MINIAPP].bot_id, number)
    assert version is not None
    return ok(_full(version), status=201)


def _refused(error: persona.PersonaError) -> ApiError:
    status, message = PERSONA_ERRORS[error.code]
    params = {"max": persona.MAX_PERSONA_CHARS} if error.code == "too_long" else {}
    return ApiError(status, error.code, message, **params)


async def create_version(request: web.Request) -> web.Response:
    caller = await staff_member(request)
    body = await read_body(request, shapes.PersonaIn)
    try:
        created = await persona.set_persona(request.app[MINIAPP].bot_id, body.text, actor=caller.user,
                                            based_on=body.base_version, refuse_unchanged=True, via="app")
    except persona.PersonaError as error:
        raise _refused(error) from error
    return await _saved(request, created.version)


async def restore_version(request: web.Request) -> web.Response:
    caller = await staff_member(request)
    try:
        created = await persona.restore(request.app[MINIAPP].bot_id, _number(request), caller.user)
    except persona.PersonaError as error:
        raise _refused(error) from error
    if created is None:
        raise ApiError(404, "not_found")
    return await _saved(request, created.version)


async def version_diff(request: web.Request) -> web.Response:
    await staff_member(request)
    params = read_query(request, shapes.DiffParams)
    changes = await persona.diff(request.app[MINIAPP].bot_id, _number(request), params.against)
    if changes is None:
        raise ApiError(404, "not_found")
    hunks = [[{"kind": line.kind, "text": line.text, "old": line.old, "new": line.new,
               "segments": [{"text": s.text, "changed": s.changed} for s in line.segments]} for line in hunk]
             for hunk in changes.hunks]
    return ok(shapes.PersonaDiffOut.model_validate({"version": changes.version, "previous": changes.previous,
                                                    "hunks": hunks, "added": changes.added,
                                                    "removed": changes.removed}))


async def add_label(request: web.Request) -> web.Response:
    caller = await staff_member(request)
    body = await read_body(request, shapes.LabelIn)
    try:
        version = await persona.label(request.app[MINIAPP].bot_id, _number(request), body.label, caller.user)
    except LabelError as error:
        raise ApiError(400, error.code, LABEL_ERRORS[error.code]) from error
    if version is None:
        raise ApiError(404, "not_found")
    return ok(_full(version))


async def remove_label(request: web.Request) -> web.Response:
    caller = await staff_member(request)
    version = await persona.unlabel(request.app[MINIAPP].bot_id, _number(request), request.match_info["label"],
                                    caller.user)
    if version is None:
        raise ApiError(404, "not_found")
    return ok(_full(version))


def add_routes(app: web.Application, api: Api) -> None:
    api.route(app, "GET", "/api/persona", overview, query=shapes.PersonaHistoryParams,
              response=shapes.PersonaOverview, roles="staff",
              summary="The persona the AI uses now, and its versions, newest first")
    api.route(app, "GET", "/api/persona/versions/{version}", version_detail, response=shapes.PersonaVersionOut,
              roles="staff", summary="One version of the persona, with its text")
    api.route(app, "POST", "/api/persona/versions", create_version, body=shapes.PersonaIn,
              response=shapes.PersonaVersionOut, roles="staff",
              summary="Save a new version and make it active: the AI uses it from its next answer")
    api.route(app, "GET", "/api/persona/versions/{version}/diff", version_diff, query=shapes.DiffParams,
              response=shapes.PersonaDiffOut, roles="staff",
              summary="What a version changed against another, by default the one before it (version 1: the default)")
    api.route(app, "POST", "/api/persona/versions/{version}/labels", add_label, body=shapes.LabelIn,
              response=shapes.PersonaVersionOut, roles="staff",
              summary="Label a version (`production`…); the label leaves the version that had it")
    api.route(app, "DELETE", "/api/persona/versions/{version}/labels/{label}", remove_label,
              response=shapes.PersonaVersionOut, roles="staff", summary="Take a label off a version")
    api.route(app, "POST", "/api/persona/versions/{version}/restore", restore_version,
              response=shapes.PersonaVersionOut, roles="staff",
              summary="Roll back: a new active version with an older version's text (history stays as it was)")

