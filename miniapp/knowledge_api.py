"""The knowledge-base editor for staff: items, search, import and export, "try it", and suggestions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, Field

from miniapp.api import Api, ApiError, ok, path_id, read_body, read_query
from miniapp.auth import MINIAPP, caller_locale, staff_member
from miniapp.schemas import Strict
from services import answering, knowledge_admin, knowledge_suggestions
from services.ai import AIClient
from services.answering import AnswerPolicy
from services.i18n import N_, Locale
from services.knowledge import KnowledgeError
from services.knowledge_index import KnowledgeIndex
from services.knowledge_sources import KnowledgeSources

ERRORS = {
    "empty_question": N_("Please write the question."),
    "empty_answer": N_("Please write the answer."),
    "too_long": N_("The {field} is too long: at most {limit} characters."),
    "duplicate": N_("There is already an item with this question."),
    "not_found": N_("This item no longer exists."),
    "bad_cursor": N_("This list has changed: please reload it."),
    "bad_file": N_("This file could not be read: {detail}"),
}
FIELDS = {"question": N_("question"), "answer": N_("answer"), "tags": N_("tags")}


@dataclass
class KnowledgeTools:
    """What "try it" needs: the deployment's AI and the answerer's policy."""

    ai: AIClient | None
    policy: AnswerPolicy
    index: KnowledgeIndex | None = None  # None: knowledge is found by its words alone
    sources: KnowledgeSources | None = None  # documents and websites


KNOWLEDGE = web.AppKey("miniapp_knowledge", KnowledgeTools)


class ItemOut(BaseModel):
    id: int
    question: str
    answer: str = Field(description="Markdown, as the customer gets it")
    tags: str
    enabled: bool
    hit_count: int
    created_at: str
    updated_at: str
    rank: float | None = None


class ItemPageOut(BaseModel):
    items: list[ItemOut]
    total: int
    next_cursor: str | None


class ItemsParams(Strict):
    q: str = Field("", max_length=200)
    enabled: bool | None = None
    cursor: str | None = Field(None, max_length=300)
    limit: int = Field(50, ge=1, le=200)


class ItemIn(Strict):
    question: str = Field(max_length=20_000)
    answer: str = Field(max_length=20_000)
    tags: str = Field("", max_length=2_000)


class ItemPatch(Strict):
    question: str | None = Field(None, max_length=20_000)
    answer: str | None = Field(None, max_length=20_000)
    tags: str | None = Field(None, max_length=2_000)
    enabled: bool | None = None


class ImportIn(Strict):
    filename: str = Field(max_length=200, description="`.csv` (question,answer[,tags]) or `.md` (## question)")
    text: str = Field(max_length=1_500_000)


class ImportOut(BaseModel):
    created: int
    updated: int
    unchanged: int


class ExportParams(Strict):
    format: Literal["csv", "md"] = "csv"


class TryIn(Strict):
    question: str = Field(max_length=4096)
    locale: Locale | None = None


class UsedItemOut(BaseModel):
    id: int
    question: str
    rank: float


class TryOut(BaseModel):
    source: Literal["knowledge", "ai", "none"]
    text: str
    html: str
    items: list[UsedItemOut]
    handoff_reason: str | None
    model: str
    tokens_in: int
    tokens_out: int
    latency_ms: int
    cost: float
    ai_error: str


class SuggestionOut(BaseModel):
    key: str
    question: str
    count: int
    last_asked_at: str


class SuggestionsOut(BaseModel):
    suggestions: list[SuggestionOut]


def _item(view: knowledge_admin.ItemView) -> ItemOut:
    return ItemOut(id=view.id, question=view.question, answer=view.answer, tags=view.tags, enabled=view.enabled,
                   hit_count=view.hit_count, created_at=view.created_at.isoformat(),
                   updated_at=view.updated_at.isoformat(), rank=view.rank)


def _failed(request: web.Request, error: KnowledgeError) -> ApiError:
    """The service's error as a 4xx, its parameters translated where they are words."""
    runtime = request.app[MINIAPP]
    params = dict(error.params)
    if "field" in params:
        params["field"] = runtime.translate(caller_locale(request), FIELDS.get(str(params["field"]),
                                                                                 str(params["field"])))
    status = 404 if error.code == "not_found" else 409 if error.code == "duplicate" else 400
    message = ERRORS.get(error.code, ERRORS["bad_file"] if error.code.startswith("bad") else None)
    return ApiError(status, error.code, message, **{k: v for k, v in params.items() if k in ("field", "limit",
                                                                                           "detail")})


def _item_id(request: web.Request) -> int:
    return path_id(request, "item_id")


async def list_items(request: web.Request) -> web.Response:
    caller = await staff_member(request)
    params = read_query(request, ItemsParams)
    try:
        page = await knowledge_admin.list_items(caller.bot_id, query=params.q, enabled=params.enabled,
                                                cursor=params.cursor, limit=params.limit)
    except KnowledgeError as error:
        raise _failed(request, error) from error
    return ok(ItemPageOut(items=[_item(view) for view in page.items], total=page.total,
                          next_cursor=page.next_cursor))


async def create_item(request: web.Request) -> web.Response:
    caller = await staff_member(request)
    body = await read_body(request, ItemIn)
    try:
        view = await knowledge_admin.create_item(caller.bot_id, question=body.question, answer=body.answer,
                                                 tags=body.tags, actor=caller.user)
    except KnowledgeError as error:
        raise _failed(request, error) from error
    return ok(_item(view), status=201)


async def get_item(request: web.Request) -> web.Response:
    caller = await staff_member(request)
    try:
        return ok(_item(await knowledge_admin.get_item(caller.bot_id, _item_id(request))))
    except KnowledgeError as error:
        raise _failed(request, error) from error


async def update_item(request: web.Request) -> web.Response:
    caller = await staff_member(request)
    patch = await read_body(request, ItemPatch)
    item_id = _item_id(request)
    try:
        view = await knowledge_admin.get_item(caller.bot_id, item_id)
        if patch.question is not None or patch.answer is not None or patch.tags is not None:
            view = await knowledge_admin.update_item(caller.bot_id, item_id, question=patch.question,
                                                     answer=patch.answer, tags=patch.tags, actor=caller.user)
        if patch.enabled is not None and patch.enabled != view.enabled:
            view = await knowledge_admin.set_enabled(caller.bot_id, item_id, patch.enabled, actor=caller.user)
    except KnowledgeError as error:
        raise _failed(request, error) from error
    return ok(_item(view))


async def delete_item(request: web.Request) -> web.Response:
    caller = await staff_member(request)
    try:
        await knowledge_admin.delete_item(caller.bot_id, _item_id(request), actor=caller.user)
    except KnowledgeError as error:
        raise _failed(request, error) from error
    return web.json_response({"deleted": True})


async def export_items(request: web.Request) -> web.Response:
    caller = await staff_member(request)
    params = read_query(request, ExportParams)
    if params.format == "md":
        text, content_type = await knowledge_admin.export_markdown(caller.bot_id), "text/markdown"
    else:
        text, content_type = await knowledge_admin.export_csv(caller.bot_id), "text/csv"
    return web.Response(text=text, content_type=content_type, charset="utf-8", headers={
        "Content-Disposition": f'attachment; filename="knowledge.{params.format}"', "Cache-Control": "no-store"})


async def import_items(request: web.Request) -> web.Response:
    caller = await staff_member(request)
    body = await read_body(request, ImportIn)
    try:
        report = await knowledge_admin.import_text(caller.bot_id, body.filename, body.text, caller.user)
    except KnowledgeError as error:
        raise _failed(request, error) from error
    return ok(ImportOut(created=report.created, updated=report.updated, unchanged=report.unchanged))


async def try_question(request: web.Request) -> web.Response:
    caller = await staff_member(request)
    body = await read_body(request, TryIn)
    runtime, tools = request.app[MINIAPP], request.app[KNOWLEDGE]
    try:
        tried = await answering.try_answer(caller.bot_id, body.question, ai=tools.ai, policy=tools.policy,
                                           translate=runtime.translate, hours=runtime.hours,
                                           locale=body.locale or caller.locale, index=tools.index)
    except KnowledgeError as error:
        raise _failed(request, error) from error
    return ok(TryOut(source=tried.source, text=tried.text, html=tried.html,
                     items=[UsedItemOut(id=item.id, question=item.question, rank=item.rank) for item in tried.items],
                     handoff_reason=tried.handoff_reason, model=tried.model, tokens_in=tried.tokens_in,
                     tokens_out=tried.tokens_out, latency_ms=tried.latency_ms, cost=tried.cost,
                     ai_error=tried.ai_error))


async def suggestions(request: web.Request) -> web.Response:
    caller = await staff_member(request)
    tools = request.app[KNOWLEDGE]
    found = await knowledge_suggestions.unanswered_questions(
        caller.bot_id, threshold=tools.policy.kb_direct_threshold,
        embedder=tools.index.embedder if tools.index is not None else None)
    return ok(SuggestionsOut(suggestions=[SuggestionOut(key=s.key, question=s.question, count=s.count,
                                                        last_asked_at=s.last_asked_at.isoformat()) for s in found]))


async def dismiss(request: web.Request) -> web.Response:
    caller = await staff_member(request)
    try:
        await knowledge_suggestions.dismiss_suggestion(caller.bot_id, request.match_info["key"], caller.user)
    except KnowledgeError as error:
        raise _failed(request, error) from error
    return web.json_response({"dismissed": True})


def add_routes(app: web.Application, api: Api) -> None:
    api.route(app, "GET", "/api/knowledge", list_items, query=ItemsParams, response=ItemPageOut, roles="staff",
              summary="Knowledge items, most recently changed first, or the best matches for `q`")
    api.route(app, "POST", "/api/knowledge", create_item, body=ItemIn, response=ItemOut, roles="staff",
              summary="Add an item (409 when its question exists)")
    api.route(app, "GET", "/api/knowledge/export", export_items, query=ExportParams, roles="staff",
              content_type="text/csv", summary="Every item as CSV (question,answer,tags) or Markdown")
    api.route(app, "POST", "/api/knowledge/import", import_items, body=ImportIn, response=ImportOut, roles="staff",
              summary="Add or update items from a CSV or Markdown file, all or nothing")
    api.route(app, "POST", "/api/knowledge/try", try_question, body=TryIn, response=TryOut, roles="staff",
              summary="What a customer asking this would get now, and the items used; nothing is stored or sent")
    api.route(app, "GET", "/api/knowledge/suggestions", suggestions, response=SuggestionsOut, roles="staff",
              summary="Questions nobody could answer, most asked first: candidates for new items")
    api.route(app, "POST", "/api/knowledge/suggestions/{key}/dismiss", dismiss, roles="staff",
              summary="Stop suggesting this question")
    api.route(app, "GET", "/api/knowledge/{item_id}", get_item, response=ItemOut, roles="staff", summary="One item")
    api.route(app, "PATCH", "/api/knowledge/{item_id}", update_item, body=ItemPatch, response=ItemOut, roles="staff",
              summary="Edit an item, or switch it off and on")
    api.route(app, "DELETE", "/api/knowledge/{item_id}", delete_item, roles="staff", summary="Delete an item")
