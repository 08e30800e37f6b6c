"""The persona editor's API (staff): versions, a new version, a version's diff, and rollback; the guided
form that writes the prompt, and a test chat that answers with a draft before it is saved."""

from __future__ import annotations

from aiohttp import web

from miniapp import admin_schemas as shapes
from miniapp.api import Api, ApiError, ok, path_id, read_body, read_query
from miniapp.auth import MINIAPP, staff_member, tenant
from miniapp.knowledge_api import KNOWLEDGE, TryOut, UsedItemOut
from models import AuthorKind, Bot, Message
from services import answering, inbox, persona
from services.i18n import N_
from services.knowledge import KnowledgeError
from services.tenant_settings import PersonaForm
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
    caller = await staff_member(request)
    params = read_query(request, shapes.PersonaHistoryParams)
    bot_id = await tenant(request)
    versions, more = await persona.history(bot_id, before=params.before, limit=params.limit)
    latest = await persona.latest_version(bot_id)
    bot = await Bot.get(id=bot_id)
    saved_form, name = persona.form_of(bot), persona.business_name_of(bot)
    form = saved_form or PersonaForm.model_validate({"language": caller.locale})
    text = latest.text if latest is not None else persona.default_persona()
    # Before anything was saved, the form writes the first version over the built-in default.
    writes = latest is None or (saved_form is not None and
                                persona.compose(saved_form, name, request.app[MINIAPP].translate) == text)
    return ok(shapes.PersonaOverview(
        text=text, active=_full(latest) if latest is not None else None,
        versions=[shapes.PersonaVersionSummary.model_validate(_summary(v)) for v in versions],
        has_more=more, max_chars=persona.MAX_PERSONA_CHARS, form=form, form_writes_text=writes,
        business_name=name, ai_enabled=request.app[KNOWLEDGE].ai is not None))



async def version_detail(request: web.Request) -> web.Response:
    await staff_member(request)
    version = await persona.get_version(await tenant(request), _number(request))
    if version is None:
        raise ApiError(404, "not_found")
    return ok(_full(version))


async def _saved(request: web.Request, number: int) -> web.Response:
    version = await persona.get_version(await tenant(request), number)
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
        created = await persona.set_persona(await tenant(request), body.text, actor=caller.user,
                                            based_on=body.base_version, refuse_unchanged=True, via="app")
    except persona.PersonaError as error:
        raise _refused(error) from error
    if body.form is not None:
        await persona.save_form(await tenant(request), body.form)
    return await _saved(request, created.version)


async def compose(request: web.Request) -> web.Response:
    await staff_member(request)
    body = await read_body(request, shapes.ComposeIn)
    runtime = request.app[MINIAPP]
    name = persona.business_name_of(await Bot.get(id=await tenant(request)))
    return ok(shapes.ComposeOut(text=persona.compose(body.form, name, runtime.translate)))


async def try_persona(request: web.Request) -> web.Response:
    """What a customer would get from the persona as drafted (not saved yet): nothing is stored or sent."""
    caller = await staff_member(request)
    body = await read_body(request, shapes.PersonaTryIn)
    runtime, tools = request.app[MINIAPP], request.app[KNOWLEDGE]
    if body.text is not None:
        try:
            persona.checked(body.text)
        except persona.PersonaError as error:
            raise _refused(error) from error
    earlier = [Message(text=turn.text, author_kind=AuthorKind.CUSTOMER if turn.author == "customer"
                       else AuthorKind.AI) for turn in body.earlier]
    try:
        tried = await answering.try_answer(caller.bot_id, body.question, ai=tools.ai, policy=tools.policy,
                                           translate=runtime.translate, hours=runtime.hours,
                                           locale=body.locale or caller.locale, index=tools.index,
                                           persona_text=body.text, earlier=earlier)
    except KnowledgeError as error:
        raise ApiError(400, error.code, N_("Please write the question.")) from error
    return ok(TryOut(source=tried.source, text=tried.text, html=tried.html,
                     items=[UsedItemOut(id=item.id, question=item.question, rank=item.rank) for item in tried.items],
                     handoff_reason=tried.handoff_reason, model=tried.model, tokens_in=tried.tokens_in,
                     tokens_out=tried.tokens_out, latency_ms=tried.latency_ms, cost=tried.cost,
                     ai_error=tried.ai_error))


async def restore_version(request: web.Request) -> web.Response:
    caller = await staff_member(request)
    try:
        created = await persona.restore(await tenant(request), _number(request), caller.user)
    except persona.PersonaError as error:
        raise _refused(error) from error
    if created is None:
        raise ApiError(404, "not_found")
    return await _saved(request, created.version)


async def version_diff(request: web.Request) -> web.Response:
    await staff_member(request)
    params = read_query(request, shapes.DiffParams)
    changes = await persona.diff(await tenant(request), _number(request), params.against)
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
        version = await persona.label(await tenant(request), _number(request), body.label, caller.user)
    except LabelError as error:
        raise ApiError(400, error.code, LABEL_ERRORS[error.code]) from error
    if version is None:
        raise ApiError(404, "not_found")
    return ok(_full(version))


async def remove_label(request: web.Request) -> web.Response:
    caller = await staff_member(request)
    version = await persona.unlabel(await tenant(request), _number(request), request.match_info["label"],
                                    caller.user)
    if version is None:
        raise ApiError(404, "not_found")
    return ok(_full(version))


def add_routes(app: web.Application, api: Api) -> None:
    api.route(app, "GET", "/api/persona", overview, query=shapes.PersonaHistoryParams,
              response=shapes.PersonaOverview, roles="staff",
              summary="The persona the AI uses now, and its versions, newest first")
    api.route(app, "POST", "/api/persona/compose", compose, body=shapes.ComposeIn, response=shapes.ComposeOut,
              roles="staff", summary="The prompt the guided form writes (in the form's language); nothing is saved")
    api.route(app, "POST", "/api/persona/try", try_persona, body=shapes.PersonaTryIn, response=TryOut,
              roles="staff", summary="What a customer would get from a draft persona (or the active one), after "
                                     "the test chat so far; nothing is stored or sent")
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

