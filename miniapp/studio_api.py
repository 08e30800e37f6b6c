"""The prompt studio's API: projects (autosaved documents), compile, versions, runs streamed as NDJSON.

Every signed-in caller works on their own projects only: someone else's project, version or run
is a 404, as if it did not exist.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Literal
from urllib.parse import quote

from aiohttp import web
from pydantic import BaseModel, Field

from miniapp.api import Api, ApiError, ok, path_id, read_body, read_json, read_query
from miniapp.auth import MINIAPP, Caller, authenticate, caller_locale
from miniapp.schemas import Strict
from models import PromptProject, PromptRun, PromptVersion
from services.i18n import N_
from services.studio import projects, runs, templates, versions
from services.studio.projects import ProjectDoc, StudioError
from services.studio.runs import StudioRuntime
from services.tokens import TokenCounter
from services.versioning import DiffLine, LabelError

log = logging.getLogger(__name__)

STUDIO = web.AppKey("studio", StudioRuntime)
TOKENS = web.AppKey("studio_tokens", TokenCounter)

ERRORS = {
    "invalid": N_("This project is not valid: {problems}"),
    "too_large": N_("The project is too large: {size_kb} KB of at most {limit_kb} KB. Move long texts out "
                    "or split the project."),
    "too_many_projects": N_("You have {limit} projects, the most there can be. Delete one first."),
    "empty_name": N_("Please give the project a name."),
    "stale": N_("This project was changed in another window."),
    "bad_order": N_("This list has changed: please reload it."),
    "no_block": N_("This prompt block no longer exists."),
    "missing_variables": N_("Fill in these variables first: {names}"),
    "unknown_context": N_("The template refers to context blocks that do not exist: {names}"),
    "bad_placeholder": N_("These placeholders are not variable names: {names}"),
    "empty_prompt": N_("The prompt is empty."),
    "prompt_too_long": N_("The prompt is too long."),
    "prompt_over_limit": N_("The prompt is {chars} characters long; a run can send at most {limit}."),
    "too_many_runs": N_("You already have {limit} runs going. Wait for one to finish, then try again."),
    "no_model": N_("This model is not available."),
    "key_unusable": N_("This API key cannot be used any more. Delete it and add it again."),
    "quota": N_("You have used today's {quota} AI requests. Runs on your own API key are not counted."),
    "budget": N_("This month's AI budget is used up. Runs on your own API key still work."),
    "no_ai": N_("No AI model is configured here."),
    "server_error": N_("Something went wrong on our side. Please try again."),
    "busy": N_("Someone changed this at the same moment. Please reload and try again."),
    "other_block": N_("Only versions of the same prompt block can be compared."),
    "bad_label": N_("A label is 1–32 lowercase letters, digits, “_”, “.” or “-”."),
    "too_many_labels": N_("A version can have at most 10 labels."),
}
STATUS = {"stale": 409, "busy": 409, "quota": 429, "budget": 429, "too_many_runs": 429, "prompt_over_limit": 413,
          "no_block": 404, "no_ai": 503}


def _failed(error: StudioError | LabelError) -> ApiError:
    params = {k: v for k, v in getattr(error, "params", {}).items()
              if k in ("problems", "size_kb", "limit_kb", "limit", "names", "quota", "chars")}
    details = {"revision": error.params["revision"]} if isinstance(error, StudioError) and \
        "revision" in error.params else None
    status = STATUS.get(error.code, 413 if error.code == "too_large" else 400)
    return ApiError(status, error.code, ERRORS.get(error.code), details=details, **params)


# --- shapes --------------------------------------------------------------------------------------------


class ProjectSummaryOut(BaseModel):
    id: int
    name: str
    position: int
    revision: int
    size: int
    context_blocks: int
    prompt_blocks: int
    updated_at: str


class ProjectListOut(BaseModel):
    projects: list[ProjectSummaryOut]
    limit: int


class LimitsOut(BaseModel):
    max_bytes: int
    max_blocks: int
    max_items: int
    max_text_chars: int


class ProjectOut(BaseModel):
    id: int
    name: str
    revision: int
    size: int
    updated_at: str
    data: dict[str, Any] = Field(description="context_blocks and prompt_blocks")
    limits: LimitsOut


class ProjectIn(Strict):
    name: str = Field(max_length=200)
    data: dict[str, Any] | None = None


class SaveIn(Strict):
    revision: int = Field(ge=1, description="the revision the page edited")
    data: dict[str, Any]


class SavedOut(BaseModel):
    revision: int
    size: int
    updated_at: str


class RenameIn(Strict):
    name: str = Field(max_length=200)


class OrderIn(Strict):
    ids: list[int] = Field(max_length=projects.MAX_PROJECTS)


class CompileIn(Strict):
    block_id: str = Field(max_length=32)
    model: str = Field("", max_length=200)
    data: dict[str, Any] | None = Field(None, description="the page's unsaved document; the saved one if absent")


class UsedContextOut(BaseModel):
    block: str
    items: int


class CompileOut(BaseModel):
    text: str
    chars: int
    tokens: int
    tokens_exact: bool = Field(description="false: an estimate (no tokenizer for this model here)")
    encoding: str | None
    variables: list[str]
    missing: list[str]
    unknown_context: list[str]
    bad_placeholders: list[str]
    context: list[UsedContextOut]
    ready: bool


class ModelOut(BaseModel):
    id: str
    model: str
    provider: str
    own_key: bool


class ModelsOut(BaseModel):
    models: list[ModelOut]


class RunIn(Strict):
    block_id: str | None = Field(None, max_length=32)
    version_id: int | None = None
    model: str = Field(max_length=200)


class VersionRefOut(BaseModel):
    id: int
    block_id: str
    number: int
    labels: list[str]


class RunOut(BaseModel):
    id: int
    kind: str
    model: str
    model_id: str = Field(description="As /api/studio/models names it: a route's key or key<id>/<model>")
    own_key: bool
    status: str
    error: str
    prompt: str
    answer: str
    tokens_in: int
    tokens_out: int
    latency_ms: int
    cost: float
    created_at: str
    version: VersionRefOut | None


class RunsParams(Strict):
    before: int | None = None
    limit: int = Field(20, ge=1, le=100)


class RunsOut(BaseModel):
    runs: list[RunOut]
    more: bool


class VersionOut(BaseModel):
    id: int
    block_id: str
    number: int
    name: str
    template: str
    variables: dict[str, str]
    compiled: str
    labels: list[str]
    created_at: str


class VersionsParams(Strict):
    block_id: str = Field(max_length=32)


class VersionsOut(BaseModel):
    versions: list[VersionOut]


class LabelIn(Strict):
    label: str = Field(max_length=64)


class DiffParams(Strict):
    against: int | None = None


class SegmentOut(BaseModel):
    text: str
    changed: bool


class DiffLineOut(BaseModel):
    kind: Literal["same", "added", "removed"]
    text: str
    old: int | None
    new: int | None
    segments: list[SegmentOut]


class VersionDiffOut(BaseModel):
    version: int
    against: int | None
    hunks: list[list[DiffLineOut]]
    compiled_hunks: list[list[DiffLineOut]]
    added: int
    removed: int


class UseTemplateIn(Strict):
    project_id: int | None = Field(None, description="Add it to this project of mine; a new project if absent")


class UsedTemplateOut(BaseModel):
    project_id: int
    block_id: str
    url: str = Field(description="The editor, open at the new prompt block")


class RestoreIn(Strict):
    revision: int = Field(ge=1)


# --- rendering -----------------------------------------------------------------------------------------


def _summary(project: PromptProject) -> ProjectSummaryOut:
    data = project.data
    return ProjectSummaryOut(id=project.id, name=project.name, position=project.position, revision=project.revision,
                             size=project.size, context_blocks=len(data.get("context_blocks") or []),  # type: ignore[arg-type]
                             prompt_blocks=len(data.get("prompt_blocks") or []),  # type: ignore[arg-type]
                             updated_at=project.updated_at.isoformat())


LIMITS = LimitsOut(max_bytes=projects.MAX_PROJECT_BYTES, max_blocks=projects.MAX_BLOCKS, max_items=projects.MAX_ITEMS,
                   max_text_chars=projects.MAX_TEXT_CHARS)


def _project(project: PromptProject) -> ProjectOut:
    return ProjectOut(id=project.id, name=project.name, revision=project.revision, size=project.size,
                      updated_at=project.updated_at.isoformat(), data=project.data, limits=LIMITS)


def _version_ref(version: PromptVersion | None) -> VersionRefOut | None:
    if version is None:
        return None
    return VersionRefOut(id=version.id, block_id=version.block_key, number=version.number, labels=version.labels)


def _run(run: PromptRun, version: PromptVersion | None = None) -> RunOut:
    key_id = run.api_key_id
    model_id = f"key{key_id}/{run.model}" if run.own_key and key_id is not None else run.model
    return RunOut(id=run.id, kind=run.kind, model=run.model, model_id=model_id, own_key=run.own_key,
                  status=run.status, error=run.error,
                  prompt=run.prompt, answer=run.answer, tokens_in=run.tokens_in, tokens_out=run.tokens_out,
                  latency_ms=run.latency_ms, cost=float(run.cost), created_at=run.created_at.isoformat(),
                  version=_version_ref(version))


def _version(version: PromptVersion) -> VersionOut:
    return VersionOut(id=version.id, block_id=version.block_key, number=version.number, name=version.name,
                      template=version.template, variables=version.variables, compiled=version.compiled,
                      labels=version.labels, created_at=version.created_at.isoformat())


def _lines(hunks: list[list[DiffLine]]) -> list[list[DiffLineOut]]:
    return [[DiffLineOut(kind=line.kind, text=line.text, old=line.old, new=line.new,
                         segments=[SegmentOut(text=s.text, changed=s.changed) for s in line.segments])
             for line in hunk] for hunk in hunks]


# --- lookups -------------------------------------------------------------------------------------------


def _number(request: web.Request, name: str) -> int:
    return path_id(request, name)


async def _own_project(request: web.Request) -> tuple[Caller, PromptProject]:
    caller = await authenticate(request)
    project = await projects.get_project(caller.user, _number(request, "project_id"))
    if project is None:
        raise ApiError(404, "not_found")
    return caller, project


async def _own_version(request: web.Request) -> tuple[Caller, PromptVersion]:
    caller = await authenticate(request)
    version = await versions.get_version(caller.user, _number(request, "version_id"))
    if version is None:
        raise ApiError(404, "not_found")
    return caller, version


def _doc(data: object) -> ProjectDoc:
    try:
        return projects.parse_doc(data)
    except StudioError as error:
        raise _failed(error) from error


# --- projects ------------------------------------------------------------------------------------------


async def list_projects(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    mine = await projects.projects_of(caller.user)
    return ok(ProjectListOut(projects=[_summary(p) for p in mine], limit=projects.MAX_PROJECTS))


async def create_project(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    body = await read_body(request, ProjectIn)
    doc = _doc(body.data) if body.data is not None else None
    try:
        project = await projects.create_project(caller.user, body.name, doc)
    except StudioError as error:
        raise _failed(error) from error
    return ok(_project(project), status=201)


async def get_project(request: web.Request) -> web.Response:
    _, project = await _own_project(request)
    return ok(_project(project))


async def save_project(request: web.Request) -> web.Response:
    _, project = await _own_project(request)
    body = await read_body(request, SaveIn)
    try:
        saved = await projects.save(project, _doc(body.data), body.revision)
    except StudioError as error:
        raise _failed(error) from error
    return ok(SavedOut(revision=saved.revision, size=saved.size, updated_at=saved.updated_at.isoformat()))


async def rename_project(request: web.Request) -> web.Response:
    _, project = await _own_project(request)
    body = await read_body(request, RenameIn)
    try:
        return ok(_summary(await projects.rename(project, body.name)))
    except StudioError as error:
        raise _failed(error) from error


async def delete_project(request: web.Request) -> web.Response:
    _, project = await _own_project(request)
    await projects.delete(project)
    return web.json_response({"deleted": True})


async def duplicate_project(request: web.Request) -> web.Response:
    caller, project = await _own_project(request)
    runtime = request.app[MINIAPP]
    copy_name = runtime.translate(caller_locale(request), N_("{name} (copy)")).format(name=project.name)
    try:
        return ok(_project(await projects.duplicate(caller.user, project, copy_name)), status=201)
    except StudioError as error:
        raise _failed(error) from error


async def order_projects(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    body = await read_body(request, OrderIn)
    try:
        ordered = await projects.reorder(caller.user, body.ids)
    except StudioError as error:
        raise _failed(error) from error
    return ok(ProjectListOut(projects=[_summary(p) for p in ordered], limit=projects.MAX_PROJECTS))


async def export_project(request: web.Request) -> web.Response:
    _, project = await _own_project(request)
    data = await projects.export(project)
    name = "".join(c if c.isalnum() or c in "-_" else "-" for c in project.name)[:60] or "project"
    ascii_name = name.encode("ascii", "replace").decode().replace("?", "-")
    # RFC 6266: a plain ASCII name for old clients, the real one (UTF-8, percent-encoded) for the rest.
    disposition = f"attachment; filename=\"{ascii_name}.json\"; filename*=UTF-8''{quote(name)}.json"
    return web.Response(body=json.dumps(data, ensure_ascii=False, indent=2).encode(), content_type="application/json",
                        headers={"Content-Disposition": disposition})


async def import_project(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    payload = await read_json(request)
    try:
        project = await projects.import_project(caller.user, payload)
    except StudioError as error:
        raise _failed(error) from error
    return ok(_project(project), status=201)


# --- compile and models --------------------------------------------------------------------------------


async def compile_block(request: web.Request) -> web.Response:
    _, project = await _own_project(request)
    body = await read_body(request, CompileIn)
    doc = _doc(body.data) if body.data is not None else projects.load(project)
    try:
        compiled = projects.compile_block(doc, body.block_id)
    except StudioError as error:
        raise _failed(error) from error
    block = doc.prompt_block(body.block_id)
    model = body.model or (block.model if block else "")
    count = await request.app[TOKENS].count(compiled.text, _model_name(model))
    return ok(CompileOut(text=compiled.text, chars=compiled.chars, tokens=count.tokens, tokens_exact=count.exact,
                         encoding=count.encoding, variables=compiled.variables, missing=compiled.missing,
                         unknown_context=compiled.unknown_context, bad_placeholders=compiled.bad_placeholders,
                         context=[UsedContextOut(block=c.block, items=c.items) for c in compiled.context],
                         ready=compiled.ready))


def _model_name(model_id: str) -> str:
    """The model's own name in a route key ("gpt-4o@default") or an own key's id ("key3/gpt-4o")."""
    own = runs.OWN_KEY_MODEL.fullmatch(model_id)
    return own.group(2) if own else model_id.rpartition("@")[0] or model_id


async def list_models(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    options = await runs.model_options(request.app[STUDIO], caller.user)
    return ok(ModelsOut(models=[ModelOut(id=o.id, model=o.model, provider=o.provider, own_key=o.own_key)
                                for o in options]))


# --- runs ----------------------------------------------------------------------------------------------


async def run_prompt(request: web.Request) -> web.StreamResponse:
    """Stream a run as NDJSON lines: `run` (it started), `delta`s (text to append), then `done` or `error`.

    What is wrong before the model is called (a missing variable, the quota) is a JSON error
    response instead, as for any other request.
    """
    caller, project = await _own_project(request)
    body = await read_body(request, RunIn)
    version = None
    if body.version_id is not None:
        version = await versions.get_version(caller.user, body.version_id)
        if version is None or version.project_id != project.id:
            raise ApiError(404, "not_found")
    elif body.block_id is None:
        raise ApiError(400, "bad_request", details=[{"field": "block_id", "problem": "missing"}])
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson", "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
    sent = 0

    async def line(payload: dict[str, Any]) -> None:
        await response.write(json.dumps(payload, ensure_ascii=False).encode() + b"\n")

    async def started(run: PromptRun) -> None:
        await response.prepare(request)
        await line({"type": "run", "run": _run(run, run.version).model_dump(mode="json")})

    async def progress(text: str) -> None:
        nonlocal sent
        if len(text) > sent:
            await line({"type": "delta", "text": text[sent:]})
            sent = len(text)

    try:
        run = await runs.run_block(request.app[STUDIO], caller.user, project, model_id=body.model,
                                          block_key=body.block_id, version=version, on_start=started,
                                          on_progress=progress)
    except StudioError as error:
        raise _failed(error) from error  # always before the stream starts: nothing was stored
    except ConnectionError:
        raise  # the page went away; the run is kept as stopped
    except Exception:
        if not response.prepared:
            raise
        log.exception("studio run in project %s failed after it started", project.id)
        await line({"type": "error", "error": {"code": "server_error", "message": request.app[MINIAPP].translate(
            caller_locale(request), ERRORS["server_error"])}})
        await response.write_eof()
        return response
    version = await PromptVersion.get_or_none(id=run.version_id)
    await line({"type": "done", "run": _run(run, version).model_dump(mode="json")})
    await response.write_eof()
    return response


async def list_runs(request: web.Request) -> web.Response:
    _, project = await _own_project(request)
    params = read_query(request, RunsParams)
    page, more = await runs.history(project, before=params.before, limit=params.limit)
    return ok(RunsOut(runs=[_run(run, run.version) for run in page], more=more))


# --- versions ------------------------------------------------------------------------------------------


async def list_versions(request: web.Request) -> web.Response:
    _, project = await _own_project(request)
    params = read_query(request, VersionsParams)
    return ok(VersionsOut(versions=[_version(v) for v in await versions.versions_of(project, params.block_id)]))


async def get_version(request: web.Request) -> web.Response:
    _, version = await _own_version(request)
    return ok(_version(version))


async def add_label(request: web.Request) -> web.Response:
    _, version = await _own_version(request)
    body = await read_body(request, LabelIn)
    try:
        return ok(_version(await versions.label(version, body.label)))
    except LabelError as error:
        raise _failed(error) from error


async def remove_label(request: web.Request) -> web.Response:
    _, version = await _own_version(request)
    return ok(_version(await versions.unlabel(version, request.match_info["label"])))


async def version_diff(request: web.Request) -> web.Response:
    caller, version = await _own_version(request)
    params = read_query(request, DiffParams)
    against = None
    if params.against is not None:
        against = await versions.get_version(caller.user, params.against)
        if against is None:
            raise ApiError(404, "not_found")
    try:
        diff = await versions.diff(version, against)
    except StudioError as error:
        raise _failed(error) from error
    return ok(VersionDiffOut(version=version.number, against=diff.against.number if diff.against else None,
                             hunks=_lines(diff.hunks), compiled_hunks=_lines(diff.compiled_hunks),
                             added=diff.added, removed=diff.removed))


async def restore_version(request: web.Request) -> web.Response:
    _, version = await _own_version(request)
    body = await read_body(request, RestoreIn)
    project = await PromptProject.get(id=version.project_id)
    try:
        restored = await versions.restore(project, version, body.revision)
    except StudioError as error:
        raise _failed(error) from error
    return ok(_project(restored))


# --- templates into projects -----------------------------------------------------------------------------


async def use_template(request: web.Request) -> web.Response:
    """A template as a new prompt block: in a project of mine, or in a new project named after it."""
    caller = await authenticate(request)
    body = await read_body(request, UseTemplateIn)
    try:
        template = await templates.get(caller.user, _number(request, "template_id"))
    except templates.TemplateError as error:
        raise ApiError(404, "not_found") from error
    try:
        if body.project_id is not None:
            project = await projects.get_project(caller.user, body.project_id)
            if project is None:
                raise ApiError(404, "not_found")
            project, block_id = await projects.add_prompt_block(project, template.title, template.body)
        else:
            doc = projects.starter_doc()
            block = doc.prompt_blocks[0]
            block.name, block.template = template.title[:120], template.body
            project = await projects.create_project(caller.user, template.title, doc)
            block_id = block.id
    except StudioError as error:
        raise _failed(error) from error
    await templates.count_use(template)
    return ok(UsedTemplateOut(project_id=project.id, block_id=block_id,
                              url=f"/app/studio/project?id={project.id}&block={block_id}"), status=201)


def add_routes(app: web.Application, api: Api) -> None:
    P = "/api/studio/projects"  # noqa: N806
    api.route(app, "GET", P, list_projects, response=ProjectListOut, summary="My prompt projects, in my order")
    api.route(app, "POST", P, create_project, body=ProjectIn, response=ProjectOut,
              summary="A new project (a starter document unless one is given)")
    api.route(app, "POST", f"{P}/order", order_projects, body=OrderIn, response=ProjectListOut,
              summary="Put my projects in this order")
    api.route(app, "POST", f"{P}/import", import_project, response=ProjectOut,
              summary="A new project from an exported file (the file is the body)")
    api.route(app, "GET", f"{P}/{{project_id}}", get_project, response=ProjectOut, summary="A project's document")
    api.route(app, "PUT", f"{P}/{{project_id}}", save_project, body=SaveIn, response=SavedOut,
              summary="Autosave: the whole document, refused with 409 when based on an older revision")
    api.route(app, "PATCH", f"{P}/{{project_id}}", rename_project, body=RenameIn, response=ProjectSummaryOut,
              summary="Rename a project")
    api.route(app, "DELETE", f"{P}/{{project_id}}", delete_project, summary="Delete a project, its versions and runs")
    api.route(app, "POST", f"{P}/{{project_id}}/duplicate", duplicate_project, response=ProjectOut,
              summary="A copy of a project (without its history)")
    api.route(app, "GET", f"{P}/{{project_id}}/export", export_project, summary="The project and its versions as JSON")
    api.route(app, "POST", f"{P}/{{project_id}}/compile", compile_block, body=CompileIn, response=CompileOut,
              summary="A prompt block compiled: text, characters, tokens for a model, what is missing")
    api.route(app, "POST", f"{P}/{{project_id}}/runs", run_prompt, body=RunIn, content_type="application/x-ndjson",
              summary="Run a block (a new version when it changed) or a version on a model, streamed")
    api.route(app, "GET", f"{P}/{{project_id}}/runs", list_runs, query=RunsParams, response=RunsOut,
              summary="The project's runs, newest first")
    api.route(app, "GET", f"{P}/{{project_id}}/versions", list_versions, query=VersionsParams, response=VersionsOut,
              summary="A prompt block's versions, newest first")
    api.route(app, "POST", "/api/studio/templates/{template_id}/use", use_template, body=UseTemplateIn,
              response=UsedTemplateOut, summary="Use a template: a new prompt block in my project or a new one")
    api.route(app, "GET", "/api/studio/models", list_models, response=ModelsOut,
              summary="The models I can run on: the deployment's and my own keys'")
    api.route(app, "GET", "/api/studio/versions/{version_id}", get_version, response=VersionOut, summary="A version")
    api.route(app, "POST", "/api/studio/versions/{version_id}/labels", add_label, body=LabelIn, response=VersionOut,
              summary="Label a version (the label leaves the block's other versions)")
    api.route(app, "DELETE", "/api/studio/versions/{version_id}/labels/{label}", remove_label, response=VersionOut,
              summary="Take a label off a version")
    api.route(app, "GET", "/api/studio/versions/{version_id}/diff", version_diff, query=DiffParams,
              response=VersionDiffOut, summary="What changed against another version (the previous by default)")
    api.route(app, "POST", "/api/studio/versions/{version_id}/restore", restore_version, body=RestoreIn,
              response=ProjectOut, summary="Put a version back into its block (a new revision of the project)")
