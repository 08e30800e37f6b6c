"""The prompt studio's template library: search, tags, one template, and a person's own templates.

Anyone signed in (customer or staff) uses it for themselves: they see the shipped templates and their
own; another customer's template answers 404, exactly like one that does not exist.
"""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field, field_validator

from miniapp.api import ERRORS as API_ERRORS
from miniapp.api import Api, ApiError, ok, path_id, read_body, read_query
from miniapp.auth import MINIAPP, authenticate, caller_locale
from miniapp.schemas import Strict
from services.i18n import N_, Locale
from services.studio import templates
from services.studio.templates import TemplateError

ERRORS: dict[str, tuple[int, str]] = {
    "empty_title": (400, N_("Please give the template a title.")),
    "empty_body": (400, N_("Please write the template's text.")),
    "too_long": (400, N_("The {field} is too long: at most {limit} characters.")),
    "too_many_tags": (400, N_("A template can have at most {limit} tags.")),
    "tag_too_long": (400, N_("A tag can be at most {limit} characters long.")),
    "limit_reached": (409, N_("You already have {limit} templates, the most one can keep. Delete some you no "
                              "longer need to add new ones.")),
    "read_only": (403, N_("The templates that come with the app cannot be changed. Make a copy and change that.")),
    "not_found": (404, N_("This template no longer exists.")),
}
FIELDS = {"title": N_("title"), "description": N_("description"), "body": N_("text")}


class TemplatesParams(Strict):
    q: str = Field("", max_length=200, description="Words to find; the last one also as a prefix unless the "
                                                   "query ends with a space")
    tag: str | None = Field(None, max_length=60)
    scope: Literal["all", "public", "mine"] = Field("all", description="`public`: the shipped ones; `mine`: own")
    locale: Locale | None = None
    limit: int = Field(20, ge=1, le=50)
    offset: int = Field(0, ge=0, le=10_000)

    @field_validator("tag", "locale", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value


class TagsParams(Strict):
    scope: Literal["all", "public", "mine"] = "all"
    locale: Locale | None = None

    @field_validator("locale", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value


class TemplateOut(BaseModel):
    id: int
    slug: str | None = Field(description="Shipped templates: `locale/name`; null for one's own")
    locale: str
    title: str
    description: str
    body: str = Field(description="The template's text, `{{variable}}` placeholders in it")
    tags: list[str]
    variables: list[str]
    uses: int
    shipped: bool = Field(description="Comes with the app: read-only")
    mine: bool
    created_at: str
    updated_at: str


class TemplateHitOut(BaseModel):
    id: int
    slug: str | None
    locale: str
    title: str
    description: str
    tags: list[str]
    variables: list[str]
    uses: int
    shipped: bool
    mine: bool
    updated_at: str
    title_html: str = Field(description="The title, HTML-escaped, the words that matched in <mark>")
    description_html: str
    snippet_html: str = Field(description="A line of the text around the matches (its start without a query)")
    rank: float | None = Field(None, description="Relevance to `q`, larger is better")


class TemplatePageOut(BaseModel):
    templates: list[TemplateHitOut]
    has_more: bool
    next_offset: int | None = Field(description="Pass as `offset` for the next page; null on the last one")


class TagOut(BaseModel):
    tag: str
    count: int


class TagsOut(BaseModel):
    tags: list[TagOut]


class TemplateIn(Strict):
    title: str = Field(max_length=2_000)
    description: str = Field("", max_length=10_000)
    body: str = Field(max_length=100_000)
    tags: list[str] = Field(default_factory=list, max_length=100)
    locale: Locale | None = Field(None, description="The template's language; by default the caller's (new) or "
                                                    "unchanged (edit)")


def _template(view: templates.TemplateView) -> TemplateOut:
    return TemplateOut(id=view.id, slug=view.slug, locale=view.locale, title=view.title,
                       description=view.description, body=view.body, tags=view.tags, variables=view.variables,
                       uses=view.uses, shipped=view.shipped, mine=view.mine, created_at=view.created_at.isoformat(),
                       updated_at=view.updated_at.isoformat())


def _hit(hit: templates.Hit) -> TemplateHitOut:
    view = hit.template
    return TemplateHitOut(id=view.id, slug=view.slug, locale=view.locale, title=view.title,
                          description=view.description, tags=view.tags, variables=view.variables, uses=view.uses,
                          shipped=view.shipped, mine=view.mine, updated_at=view.updated_at.isoformat(),
                          title_html=hit.title_html, description_html=hit.description_html,
                          snippet_html=hit.snippet_html, rank=hit.rank)


def _failed(request: web.Request, error: TemplateError) -> ApiError:
    """The service's error as a 4xx, its field named in the caller's language."""
    status, message = ERRORS.get(error.code, (400, API_ERRORS["bad_request"]))
    params = {name: value for name, value in error.params.items() if name in ("field", "limit")}
    if "field" in params:
        field = str(params["field"])
        params["field"] = request.app[MINIAPP].translate(caller_locale(request), FIELDS.get(field, field))
    return ApiError(status, error.code, message, **params)


def _template_id(request: web.Request) -> int:
    return path_id(request, "template_id", ERRORS["not_found"][1])


async def search(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    params = read_query(request, TemplatesParams)
    page = await templates.search(caller.user, params.q, locale=params.locale, tag=params.tag, scope=params.scope,
                                  limit=params.limit, offset=params.offset)
    return ok(TemplatePageOut(templates=[_hit(hit) for hit in page.hits], has_more=page.has_more,
                              next_offset=page.next_offset))


async def tags(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    params = read_query(request, TagsParams)
    found = await templates.tags(caller.user, scope=params.scope, locale=params.locale)
    return ok(TagsOut(tags=[TagOut(tag=tag.tag, count=tag.count) for tag in found]))


async def get_template(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    try:
        return ok(_template(await templates.get(caller.user, _template_id(request))))
    except TemplateError as error:
        raise _failed(request, error) from error


async def create_template(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    body = await read_body(request, TemplateIn)
    try:
        view = await templates.create(caller.user, title=body.title, body=body.body, description=body.description,
                                      tags=body.tags, locale=body.locale or caller.locale)
    except TemplateError as error:
        raise _failed(request, error) from error
    return ok(_template(view), status=201)


async def update_template(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    body = await read_body(request, TemplateIn)
    try:
        view = await templates.update(caller.user, _template_id(request), title=body.title, body=body.body,
                                      description=body.description, tags=body.tags, locale=body.locale)
    except TemplateError as error:
        raise _failed(request, error) from error
    return ok(_template(view))


async def delete_template(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    try:
        await templates.delete(caller.user, _template_id(request))
    except TemplateError as error:
        raise _failed(request, error) from error
    return web.json_response({"deleted": True})


def add_routes(app: web.Application, api: Api) -> None:
    path = "/api/studio/templates"
    api.route(app, "GET", path, search, query=TemplatesParams, response=TemplatePageOut,
              summary="The templates the caller may see (shipped ones and their own): the best matches for `q`, "
                      "else the most used")
    api.route(app, "GET", f"{path}/tags", tags, query=TagsParams, response=TagsOut,
              summary="The tags of those templates, with how many carry each, the most common first")
    api.route(app, "POST", path, create_template, body=TemplateIn, response=TemplateOut,
              summary="Add one of the caller's own templates (201)")
    api.route(app, "GET", f"{path}/{{template_id}}", get_template, response=TemplateOut, summary="One template")
    api.route(app, "PUT", f"{path}/{{template_id}}", update_template, body=TemplateIn, response=TemplateOut,
              summary="Change one of the caller's own templates (403 for a shipped one)")
    api.route(app, "DELETE", f"{path}/{{template_id}}", delete_template,
              summary="Delete one of the caller's own templates (403 for a shipped one)")
