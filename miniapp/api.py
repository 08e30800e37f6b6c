"""The Mini App's JSON API plumbing: uniform errors, validated bodies, and the OpenAPI description.

Every error leaves as `{"error": {"code": ..., "message": ...}}` with a 4xx/5xx status, the
message translated for the caller. Routes are declared with `Api.route`, which registers the
aiohttp handler and records what the OpenAPI document says about it, so the two cannot drift.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema

from miniapp.inputs import parse_json, row_id
from services.i18n import N_, Translate

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Body = TypeVar("Body", bound=BaseModel)

ERRORS = {
    "unauthorized": N_("Please open this page from the bot again: your sign-in has expired or is not valid."),
    "forbidden": N_("You don't have access to this."),
    "read_only": N_("Your role is viewer: you can look, but not change anything. An admin can change your role."),
    "not_found": N_("Not found."),
    "bad_request": N_("The request is not valid."),
    "bad_json": N_("The request body is not valid JSON."),
    "too_large": N_("The request is too large."),
    "csrf": N_("Your session needs a refresh: please reload the page."),
    "method_not_allowed": N_("This action is not supported here."),
    "bad_cursor": N_("This list has changed: please reload it."),
    "conflict": N_("Someone changed this at the same moment. Please reload and try again."),
    "server_error": N_("Something went wrong on our side. Please try again."),
}


class ApiError(Exception):
    """An answer other than success: a status, a stable code, and a message id from a catalog."""

    def __init__(self, status: int, code: str, message: str | None = None, /, *, details: Any = None,
                 **params: Any) -> None:  # positional: a message's own {status} is one of `params`
        super().__init__(code)
        self.status = status
        self.code = code
        self.message = message or ERRORS.get(code, ERRORS["bad_request"])
        self.details = details
        self.params = params


LocaleOf = Callable[[web.Request], str]
LOCALE: web.AppKey[LocaleOf] = web.AppKey("api_locale_of")
TRANSLATE: web.AppKey[Translate] = web.AppKey("api_translate")


def error_response(request: web.Request, error: ApiError) -> web.Response:
    locale = request.app[LOCALE](request) if LOCALE in request.app else "en"
    translate = request.app.get(TRANSLATE)
    message = translate(locale, error.message) if translate is not None else error.message
    body: dict[str, Any] = {"code": error.code, "message": message.format(**error.params) if error.params else message}
    if error.details is not None:
        body["details"] = error.details
    return web.json_response({"error": body}, status=error.status)


_STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                 405: "method_not_allowed", 413: "too_large"}


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Under /api/, every failure is JSON; elsewhere aiohttp's own pages stand."""
    if not request.path.startswith("/api/"):
        return await handler(request)
    try:
        return await handler(request)
    except ApiError as error:
        return error_response(request, error)
    except web.HTTPException as http:
        if http.status < 400:
            raise
        code = _STATUS_CODES.get(http.status, "bad_request" if http.status < 500 else "server_error")
        return error_response(request, ApiError(http.status, code))
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return error_response(request, ApiError(500, "server_error"))


async def read_json(request: web.Request, empty: Any = None) -> Any:
    """The request's body as JSON (`empty` when there is none); 413 or 400 otherwise (see parse_json)."""
    try:
        raw = await request.read()
        return parse_json(raw) if raw else empty
    except web.HTTPRequestEntityTooLarge as error:
        raise ApiError(413, "too_large") from error
    except ValueError as error:
        raise ApiError(400, "bad_json") from error


async def read_body(request: web.Request, model: type[Body]) -> Body:
    """The request's JSON body, validated; 400 with the fields at fault otherwise."""
    data = await read_json(request, empty={})
    try:
        return model.model_validate(data)
    except ValidationError as error:
        details = [{"field": ".".join(str(part) for part in item["loc"]), "problem": item["type"]}
                   for item in error.errors()]
        raise ApiError(400, "bad_request", details=details) from error


def path_id(request: web.Request, name: str, message: str | None = None) -> int:
    """An id from the path; 404 when it is not one a row could have."""
    found = row_id(request.match_info[name])
    if found is None:
        raise ApiError(404, "not_found", message)
    return found


def read_query(request: web.Request, model: type[Body]) -> Body:
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as error:
        details = [{"field": ".".join(str(part) for part in item["loc"]), "problem": item["type"]}
                   for item in error.errors()]
        raise ApiError(400, "bad_request", details=details) from error


def ok(model: BaseModel, status: int = 200) -> web.Response:
    return web.json_response(text=model.model_dump_json(), status=status)


# --- the OpenAPI description ------------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    roles: str  # who may call it: "anyone signed in", "staff", "admins"
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    response: type[BaseModel] | None
    content_type: str = "application/json"

    @property
    def access(self) -> str:
        """Who may call it, for programs: "admins", "staff" (viewers only read) or "signed-in"."""
        for level in ("admins", "staff"):
            if self.roles.startswith(level):
                return level
        return "signed-in"


@dataclass
class Api:
    operations: list[Operation] = field(default_factory=list)

    def route(self, app: web.Application, method: str, path: str, handler: Handler, *, summary: str,
              roles: str = "signed in", body: type[BaseModel] | None = None, query: type[BaseModel] | None = None,
              response: type[BaseModel] | None = None, content_type: str = "application/json") -> None:
        app.router.add_route(method, path, handler)
        self.operations.append(Operation(method, path, summary, roles, body, query, response, content_type))

    def openapi(self, title: str, version: str) -> dict[str, Any]:
        models = {model for op in self.operations for model in (op.body, op.response) if model is not None}
        _, schemas = models_json_schema([(model, "validation") for model in sorted(models, key=lambda m: m.__name__)],
                                        ref_template="#/components/schemas/{model}")
        paths: dict[str, dict[str, Any]] = {}
        for op in self.operations:
            paths.setdefault(op.path, {})[op.method.lower()] = self._operation(op)
        error = {"type": "object", "required": ["error"], "properties": {"error": {
            "type": "object", "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "details": {}}}}}
        components = {"schemas": {**schemas.get("$defs", {}), "Error": error},
                      "securitySchemes": {
                          "telegramInitData": {"type": "apiKey", "in": "header", "name": "Authorization",
                                               "description": "`tma <initData>`: Telegram's signed Mini App data, "
                                                              "checked with the token of the bot the X-Frontdesk-Bot "
                                                              "header names (its id here; none: the default bot)"},
                          "browserSession": {"type": "apiKey", "in": "cookie", "name": "frontdesk_session",
                                             "description": "From a one-time /dashboard link; changes also need "
                                                            "the X-CSRF-Token header"}}}
        return {"openapi": "3.1.0", "info": {"title": title, "version": version}, "paths": paths,
                "components": components,
                "security": [{"telegramInitData": []}, {"browserSession": []}]}

    @staticmethod
    def _operation(op: Operation) -> dict[str, Any]:
        parameters = [{"name": name, "in": "path", "required": True,
                       "schema": {"type": "integer" if name.endswith("_id") else "string"}}
                      for name in _path_parameters(op.path)]
        if op.query is not None:
            schema = op.query.model_json_schema()
            required = set(schema.get("required", []))
            parameters += [{"name": name, "in": "query", "required": name in required, "schema": prop}
                           for name, prop in schema.get("properties", {}).items()]
        operation: dict[str, Any] = {
            "summary": op.summary, "description": f"Who may call it: {op.roles}.", "x-access": op.access,
            "parameters": parameters,
            "responses": {"default": {"description": "An error",
                                      "content": {"application/json": {
                                          "schema": {"$ref": "#/components/schemas/Error"}}}}}}
        if op.response is not None:
            operation["responses"]["200"] = {"description": "OK", "content": {op.content_type: {
                "schema": {"$ref": f"#/components/schemas/{op.response.__name__}"}}}}
        else:
            operation["responses"]["200"] = {"description": "OK", "content": {op.content_type: {}}}
        if op.body is not None:
            operation["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{op.body.__name__}"}}}}
        return operation


def _path_parameters(path: str) -> list[str]:
    return [part[1:-1].split(":")[0] for part in path.split("/") if part.startswith("{") and part.endswith("}")]
