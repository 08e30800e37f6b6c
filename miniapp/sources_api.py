"""Documents and websites as knowledge, for staff: upload a file, add a URL, list, switch off,
re-sync, delete (services/knowledge_sources.py does the work)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, Field

from miniapp.api import Api, ApiError, ok, path_id, read_body
from miniapp.auth import MINIAPP, caller_locale, staff_member
from miniapp.knowledge_api import KNOWLEDGE
from miniapp.schemas import Strict
from services.i18n import N_
from services.knowledge_sources import KnowledgeSources, SourceError, SourceView

# Every reason a source can fail or be refused, as staff read it. The parameters come from the
# service (`limit`, `host`, `status`...).
ERRORS = {
    "too_large": N_("The file is too large: at most {limit_mb} MB."),
    "unsupported_type": N_("This kind of file cannot be read. Upload a PDF, Word (.docx), HTML, Markdown or text "
                           "file."),
    "unreadable": N_("The file cannot be read: it is damaged, or not really a {kind} file."),
    "encrypted": N_("The PDF is protected with a password. Upload a copy without the password."),
    "no_text": N_("The file has no text to read: it looks like a scan. Upload a copy with a text layer "
                  "(run it through OCR first)."),
    "too_many_pages": N_("The document has too many pages: at most {limit}."),
    "zip_bomb": N_("The Word file unpacks to more than {limit_mb} MB, which is not allowed."),
    "not_utf8": N_("The text is not in UTF-8. Save the file as UTF-8 and upload it again."),
    "empty": N_("No text was found in it."),
    "bad_url": N_("This is not a web address that can be read: use an http:// or https:// address."),
    "private_address": N_("{host} is a private address. Only public websites can be added here."),
    "unreachable": N_("{host} cannot be reached."),
    "timeout": N_("The website took too long to answer."),
    "not_html": N_("The address is not a web page (it is {content_type})."),
    "http_error": N_("The website answered with error {status}."),
    "too_many_redirects": N_("The address redirects too many times."),
    "other_host": N_("The address redirects to another website ({host}), which is not followed."),
    "robots_disallowed": N_("The website's robots.txt does not allow reading this address."),
    "unreadable_file": N_("The file cannot be read."),
    "too_many_sources": N_("There are already {limit} sources: delete one before adding another."),
    "bad_page_limit": N_("The page limit must be between 1 and {limit}."),
    "not_found": N_("This source no longer exists."),
    "duplicate": N_("This document is already in the knowledge base: {title}."),
}
_PARAMS = ("limit", "limit_mb", "kind", "host", "status", "content_type", "suffix", "title")
MAX_NAME = 255


class SourceOut(BaseModel):
    id: int
    kind: Literal["file", "page", "site"]
    title: str
    location: str  # the file's name, or the start URL
    status: Literal["queued", "indexing", "ready", "failed"]
    error: str | None  # why it failed, translated
    error_code: str | None
    progress_done: int
    progress_total: int
    chunk_count: int
    page_count: int
    enabled: bool
    last_synced_at: datetime | None
    created_at: datetime


class SourcesOut(BaseModel):
    sources: list[SourceOut]


class UrlIn(Strict):
    url: str = Field(max_length=2000)
    whole_site: bool = True  # false: only this page
    page_limit: int | None = Field(None, ge=1)


class SourcePatch(Strict):
    enabled: bool


def _sources(request: web.Request) -> KnowledgeSources:
    sources = request.app[KNOWLEDGE].sources
    if sources is None:
        raise ApiError(404, "not_found")
    return sources


def _message(request: web.Request, code: str, params: dict[str, object]) -> str:
    """A failure's reason in the caller's language."""
    template = request.app[MINIAPP].translate(caller_locale(request), ERRORS.get(code, ERRORS["empty"]))
    try:
        return template.format(**{name: params.get(name, "") for name in _PARAMS})
    except (KeyError, IndexError, ValueError):
        return template


def _refused(request: web.Request, error: SourceError) -> ApiError:
    """The service's refusal as a 4xx whose message is already in the caller's language."""
    status = 404 if error.code == "not_found" else 413 if error.code == "too_large" else \
        409 if error.code == "duplicate" else 400
    return ApiError(status, error.code, _message(request, error.code, error.params))


def _out(request: web.Request, view: SourceView) -> SourceOut:
    code = str(view.error.get("code")) if view.error else None
    return SourceOut(id=view.id, kind=view.kind.value, title=view.title, location=view.location,
                     status=view.status.value, error=_message(request, code, view.error) if code else None,
                     error_code=code, progress_done=view.progress_done, progress_total=view.progress_total,
                     chunk_count=view.chunk_count, page_count=view.page_count, enabled=view.enabled,
                     last_synced_at=view.last_synced_at, created_at=view.created_at)


async def _one(request: web.Request, bot_id: int, source_id: int) -> SourceOut:
    for view in await _sources(request).list_sources(bot_id, source_id):
        return _out(request, view)
    raise ApiError(404, "not_found", ERRORS["not_found"])


def _source_id(request: web.Request) -> int:
    return path_id(request, "source_id", ERRORS["not_found"])


async def list_sources(request: web.Request) -> web.Response:
    caller = await staff_member(request)
    views = await _sources(request).list_sources(caller.bot_id)
    return ok(SourcesOut(sources=[_out(request, view) for view in views]))


async def upload_file(request: web.Request) -> web.Response:
    """The file is the body (so a page can show the upload's progress); its name is `?name=`."""
    caller = await staff_member(request)
    sources = _sources(request)
    name = request.query.get("name", "").strip().replace("/", "_").replace("\\", "_")[:MAX_NAME]
    if not name:
        raise ApiError(400, "bad_request")
    limit = sources.policy.document_limits.max_bytes
    data = await _read_capped(request, limit)
    if data is None:
        raise _refused(request, SourceError("too_large", limit_mb=limit // (1024 * 1024)))
    try:
        source = await sources.add_file(caller.bot_id, name, data, user=caller.user)
    except SourceError as error:
        raise _refused(request, error) from error
    return ok(await _one(request, caller.bot_id, source.id), status=201)


async def _read_capped(request: web.Request, limit: int) -> bytes | None:
    """The body, or None once it grows past `limit` (read as it comes: a lying Content-Length changes nothing)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    parts: list[bytes] = []
    size = 0
    async for part in request.content.iter_chunked(64 * 1024):
        size += len(part)
        if size > limit:
            return None
        parts.append(part)
    return b"".join(parts)


async def add_url(request: web.Request) -> web.Response:
    caller = await staff_member(request)
    body = await read_body(request, UrlIn)
    try:
        source = await _sources(request).add_url(caller.bot_id, body.url, whole_site=body.whole_site,
                                                 page_limit=body.page_limit, user=caller.user)
    except SourceError as error:
        raise _refused(request, error) from error
    return ok(await _one(request, caller.bot_id, source.id), status=201)


async def update_source(request: web.Request) -> web.Response:
    caller = await staff_member(request)
    body = await read_body(request, SourcePatch)
    source_id = _source_id(request)
    try:
        await _sources(request).set_enabled(caller.bot_id, source_id, body.enabled, user=caller.user)
    except SourceError as error:
        raise _refused(request, error) from error
    return ok(await _one(request, caller.bot_id, source_id))


async def resync_source(request: web.Request) -> web.Response:
    caller = await staff_member(request)
    source_id = _source_id(request)
    try:
        await _sources(request).resync(caller.bot_id, source_id, user=caller.user)
    except SourceError as error:
        raise _refused(request, error) from error
    return ok(await _one(request, caller.bot_id, source_id), status=202)


async def delete_source(request: web.Request) -> web.Response:
    caller = await staff_member(request)
    try:
        await _sources(request).remove(caller.bot_id, _source_id(request), user=caller.user)
    except SourceError as error:
        raise _refused(request, error) from error
    return web.json_response({"deleted": True})


def add_routes(app: web.Application, api: Api) -> None:
    api.route(app, "GET", "/api/knowledge/sources", list_sources, response=SourcesOut, roles="staff",
              summary="Documents and websites, newest first, with their status")
    api.route(app, "POST", "/api/knowledge/sources/file", upload_file, response=SourceOut, roles="staff",
              summary="Upload a document: the request's body is the file (any content type), its name `?name=`; "
                      "read now, indexed in the background")
    api.route(app, "POST", "/api/knowledge/sources/url", add_url, body=UrlIn, response=SourceOut, roles="staff",
              summary="Add a web page, or a website followed within its host; read in the background")
    api.route(app, "PATCH", "/api/knowledge/sources/{source_id}", update_source, body=SourcePatch,
              response=SourceOut, roles="staff", summary="Switch a source on or off")
    api.route(app, "POST", "/api/knowledge/sources/{source_id}/sync", resync_source, response=SourceOut,
              roles="staff", summary="Re-read a web source now")
    api.route(app, "DELETE", "/api/knowledge/sources/{source_id}", delete_source, roles="staff",
              summary="Delete a source and its passages")
