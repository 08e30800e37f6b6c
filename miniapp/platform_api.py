"""The platform page and its API: every bot of the deployment with its state, traffic, AI cost and errors; adding
a bot by its token, pausing, resuming, giving one a new token.

Only the platform's owners (PLATFORM_ADMIN_IDS, by Telegram id) get anything here: anyone else signed in gets 404,
as for a path that does not exist, so nobody learns whether the deployment has platform owners or who they are
(the sign-in is checked first, as on every route: 401 without one). Without PLATFORM_ADMIN_IDS the page is 404.
Being a platform owner gives no role in any bot. Telegram's getMe (checking a token) and the message that tells
every instance of a change reach this module through the app's keys, installed by the composition root.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal

import aiohttp
from aiohttp import web
from pydantic import BaseModel, Field

from miniapp.api import Api, ApiError, ok, path_id, read_body, read_query
from miniapp.auth import MINIAPP, Caller, authenticate, parse_init_data
from miniapp.pages import Page, page_view
from miniapp.schemas import Strict
from models import Bot, BotState
from services import bots, platform, tenant_settings
from services.bots import BotError, Identify
from services.i18n import N_
from services.secrets_box import SecretBox

log = logging.getLogger(__name__)


@dataclass
class PlatformRuntime:
    admin_ids: frozenset[int]  # PLATFORM_ADMIN_IDS; empty: no platform page at all
    identify: Identify  # Telegram's getMe with a token
    box: SecretBox  # seals the tokens (ENCRYPTION_KEY)


PLATFORM = web.AppKey("miniapp_platform", PlatformRuntime)
# Called after every change to the bots: every instance starts or stops serving them (it re-reads the table
# now and then anyway, so a lost call only delays).
BOTS_CHANGED: web.AppKey[Callable[[], Awaitable[None]]] = web.AppKey("bots_changed")

PAGE = Page("/app/platform", "platform.html", N_("Platform"), "platform", "platform.js")

BOT_ERRORS = {
    "bad_token": N_("That is not a bot token: @BotFather gives one like 123456789:AAE…"),
    "token_refused": N_("Telegram does not accept this token: it was revoked, or never issued. Copy the bot's "
                        "current token from @BotFather."),
    "already_here": N_("{name} is already on the platform."),
    "removed": N_("{name} was removed: add it again with its token."),
    "other_bots_token": N_("This token belongs to another bot, not {name}."),
    "token_revoked": N_("Telegram refused {name}'s token: give it the new one from @BotFather, and it is served "
                        "again."),
    "refused": N_("This cannot be done with this bot."),
}
TELEGRAM_UNREACHABLE = N_("Telegram could not be reached to check the token. Please try again in a minute.")


# --- shapes ----------------------------------------------------------------------------------------------


class TrafficOut(BaseModel):
    messages_in: int = Field(description="Customers' messages (Telegram and the website)")
    answers_out: int = Field(description="The AI's and the team's replies")


class PlatformBot(BaseModel):
    id: int
    username: str
    telegram_id: int
    state: Literal["active", "paused", "removed"]
    paused_reason: Literal["", "owner", "revoked"] = Field(
        description="owner: a platform owner paused it; revoked: Telegram refused its token")
    token_last4: str = Field(description="The stored token's last 4 characters; empty for BOT_TOKEN's bot")
    token_from_settings: bool = Field(description="Its token is BOT_TOKEN, in the server's settings")
    created_at: datetime
    day: TrafficOut = Field(description="The last 24 hours")
    month: TrafficOut = Field(description="The last 30 days")
    ai_cost: str = Field(description="The AI's cost this calendar month (UTC), in dollars")
    ai_budget: str | None = Field(description="The monthly AI budget in dollars; null: none")
    failed_jobs: int = Field(description="Work that failed for good (gave up) in the last 24 hours")


class PlatformBots(BaseModel):
    bots: list[PlatformBot]
    total: int = Field(description="Bots matching the search, over every page")
    next_after: int | None = Field(description="More bots: ask again with after=<this>")


class BotsQuery(Strict):
    after: int = Field(0, ge=0)
    limit: int = Field(50, ge=1, le=200)
    q: str = Field("", max_length=64, description="An id, a Telegram id, or part of a username")


class TokenIn(Strict):
    token: str = Field(min_length=1, max_length=200, description="The bot's token from @BotFather")


# --- who may call ----------------------------------------------------------------------------------------


async def platform_admin(request: web.Request) -> Caller:
    """A platform owner; 404 for anyone else signed in. As everywhere in the API, the sign-in is checked first
    (401, or 403 for a browser's change without its CSRF token). Inside Telegram, a platform owner's signed data
    is held to staff's shorter age."""
    caller = await authenticate(request)
    runtime = request.app.get(PLATFORM)
    if runtime is None or caller.user.telegram_id not in runtime.admin_ids:
        raise ApiError(404, "not_found")
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "tma" and credentials:
        miniapp = request.app[MINIAPP]
        signed = (await parse_init_data(miniapp, caller.bot_id, credentials.strip())).auth_date.astimezone(UTC)
        if datetime.now(UTC) - signed > miniapp.staff_auth_max_age:
            raise ApiError(401, "unauthorized")  # reopening the Mini App signs it anew
    return caller


# --- views -----------------------------------------------------------------------------------------------


def _shape(bot: Bot, figures: platform.Figures) -> PlatformBot:
    budget = tenant_settings.of(bot).monthly_ai_budget
    return PlatformBot(
        id=bot.id, username=bot.username, telegram_id=bot.telegram_id, state=bot.state.value,
        paused_reason=bot.paused_reason if bot.paused_reason in ("owner", "revoked") else "",
        token_last4=bot.token_last4, token_from_settings=not bot.token_secret and bot.state != BotState.REMOVED,
        created_at=bot.created_at, day=TrafficOut(**vars(figures.day)), month=TrafficOut(**vars(figures.month)),
        ai_cost=f"{figures.ai_cost.quantize(Decimal('0.01'))}", ai_budget=None if budget is None else f"{budget:.2f}",
        failed_jobs=figures.failed_jobs)


async def _one(bot: Bot) -> PlatformBot:
    figures = await platform.figures_of([bot.id], datetime.now(UTC))
    return _shape(bot, figures[bot.id])


async def list_bots(request: web.Request) -> web.Response:
    await platform_admin(request)
    query = read_query(request, BotsQuery)
    page = await platform.bots_page(query.after, query.limit, query.q)
    return ok(PlatformBots(bots=[_shape(bot, page.figures[bot.id]) for bot in page.bots], total=page.total,
                           next_after=page.next_after))


async def _changed(request: web.Request) -> None:
    """Tell every instance; best effort (each re-reads the bots on its own soon)."""
    changed = request.app.get(BOTS_CHANGED)
    if changed is None:
        return
    try:
        await changed()
    except Exception:  # a lost notice only delays: the change itself is stored
        log.exception("platform: telling the instances that the bots changed failed")


async def _checked(action: Awaitable[Bot]) -> Bot:
    """A refusal from services.bots as a 4xx in the caller's language; Telegram out of reach as 502."""
    try:
        return await action
    except BotError as error:
        status = 409 if error.code in ("already_here", "removed", "token_revoked") else 400
        raise ApiError(status, error.code, BOT_ERRORS.get(error.code, BOT_ERRORS["refused"]),
                       name=error.name) from error
    except (aiohttp.ClientError, TimeoutError) as error:
        raise ApiError(502, "telegram_unreachable", TELEGRAM_UNREACHABLE) from error


async def add(request: web.Request) -> web.Response:
    caller = await platform_admin(request)
    body = await read_body(request, TokenIn)
    runtime = request.app[PLATFORM]
    bot = await _checked(bots.add_bot(body.token, runtime.identify, runtime.box, by=caller.user.telegram_id))
    await _changed(request)
    return ok(await _one(bot), status=201)


async def _bot(request: web.Request) -> Bot:
    bot = await Bot.get_or_none(id=path_id(request, "bot_id"))
    if bot is None:
        raise ApiError(404, "not_found")
    return bot


async def pause(request: web.Request) -> web.Response:
    caller = await platform_admin(request)
    bot = await _checked(bots.pause(await _bot(request), by=caller.user.telegram_id))
    await _changed(request)
    return ok(await _one(bot))


async def resume(request: web.Request) -> web.Response:
    caller = await platform_admin(request)
    bot = await _bot(request)
    bot = await _checked(bots.resume(bot, by=caller.user.telegram_id))
    await _changed(request)
    return ok(await _one(bot))


async def new_token(request: web.Request) -> web.Response:
    caller = await platform_admin(request)
    bot = await _bot(request)
    body = await read_body(request, TokenIn)
    if bot.state == BotState.REMOVED:
        raise ApiError(409, "removed", BOT_ERRORS["removed"], name=str(bot))
    runtime = request.app[PLATFORM]
    bot = await _checked(bots.replace_token(bot, body.token, runtime.identify, runtime.box,
                                            by=caller.user.telegram_id))
    await _changed(request)
    return ok(await _one(bot))


async def page(request: web.Request) -> web.StreamResponse:
    """The page is there only when the deployment has platform owners (who sees it is the API's question)."""
    runtime = request.app.get(PLATFORM)
    if runtime is None or not runtime.admin_ids:
        raise web.HTTPNotFound()
    return await page_view(PAGE)(request)  # type: ignore[no-any-return]


def is_platform_admin(request: web.Request, caller: Caller) -> bool:
    """For /api/me: whether the app shows this caller the Platform tab."""
    runtime = request.app.get(PLATFORM)
    return runtime is not None and caller.user.telegram_id in runtime.admin_ids


def add_routes(app: web.Application, api: Api) -> None:
    roles = "platform owners (PLATFORM_ADMIN_IDS); anyone else signed in gets 404"
    app.router.add_get(PAGE.path, page)
    api.route(app, "GET", "/api/platform/bots", list_bots, roles=roles, query=BotsQuery, response=PlatformBots,
              summary="The deployment's bots with their state, traffic, AI cost and errors, a page at a time")
    api.route(app, "POST", "/api/platform/bots", add, roles=roles, body=TokenIn, response=PlatformBot,
              summary="Serve a new bot: its token is checked with Telegram, sealed and stored")
    api.route(app, "POST", "/api/platform/bots/{bot_id}/pause", pause, roles=roles, response=PlatformBot,
              summary="Stop serving a bot, keeping everything")
    api.route(app, "POST", "/api/platform/bots/{bot_id}/resume", resume, roles=roles, response=PlatformBot,
              summary="Serve a paused bot again")
    api.route(app, "PUT", "/api/platform/bots/{bot_id}/token", new_token, roles=roles, body=TokenIn,
              response=PlatformBot, summary="Give a bot its new token (after /revoke in @BotFather)")

