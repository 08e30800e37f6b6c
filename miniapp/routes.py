"""The Mini App's routes in one place: pages, the JSON API, its OpenAPI description and live updates."""

from __future__ import annotations

from aiohttp import web

from miniapp import (
    account_api,
    admin_api,
    analytics_api,
    conversation_api,
    files_api,
    inbox_api,
    keys_api,
    knowledge_api,
    pages,
    persona_api,
    platform_api,
    sources_api,
    studio_api,
    templates_api,
)
from miniapp.api import LOCALE, Api, json_errors
from miniapp.auth import caller_locale
from miniapp.live import live_socket

API = web.AppKey("miniapp_api", Api)


async def openapi_view(request: web.Request) -> web.Response:
    return web.json_response(request.app[API].openapi("Frontdesk Mini App API", "1"))


def add_routes(app: web.Application) -> None:
    api = Api()
    app[API] = api
    app[LOCALE] = caller_locale
    app.middlewares.append(json_errors)
    pages.add_routes(app)
    account_api.add_routes(app, api)
    inbox_api.add_routes(app, api)
    conversation_api.add_routes(app, api)
    files_api.add_routes(app, api)
    sources_api.add_routes(app, api)  # before the items' /api/knowledge/{item_id}
    knowledge_api.add_routes(app, api)
    analytics_api.add_routes(app, api)
    persona_api.add_routes(app, api)
    admin_api.add_routes(app, api)
    studio_api.add_routes(app, api)
    keys_api.add_routes(app, api)
    templates_api.add_routes(app, api)
    platform_api.add_routes(app, api)
    app.router.add_get("/api/live", live_socket)
    app.router.add_get("/api/openapi.json", openapi_view)
