"""POST /telegram/webhook[/<key>]: check the bot's secret, store the update durably, answer.

Each bot has its own path (bot/fleet.py): /telegram/webhook for BOT_TOKEN's, /telegram/webhook/<its random
key> for each bot added since, and its own secret; a request names its bot by the path alone.

The answer follows the outcome: 200 once the update is committed to the intake (services/intake.py; the
updates arriving together share one statement), 200 with `"duplicate": true` for an update stored before, and
5xx when it could not be stored, so Telegram sends it again. Handling it (rate limits, the customer's message,
the answer's job) is the intake workers' (bot/intake.py), one chat at a time: nothing of it delays the answer.
Written here rather than with aiogram's SimpleRequestHandler, which runs the handlers inside the request.
"""

from __future__ import annotations

import hmac
import logging

from aiogram.types import Update
from aiohttp import web

from bot.intake import lane_of
from bot.keys import TELEGRAM
from bot.observability import METRICS, new_request_id, request_id_var, update_id_var
from services.intake import Arrival

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_UPDATE_BYTES = 1024 * 1024


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"ok": False, "error": message}, status=status)


async def telegram_webhook(request: web.Request) -> web.Response:
    telegram = request.app.get(TELEGRAM)
    if telegram is None:
        return _error(404, "telegram is not configured")
    key = request.match_info.get("key", "")
    runtime = telegram.fleet.by_webhook_key(key) if key else telegram.fleet.primary
    if runtime is None:
        return _error(404, "no bot is served at this address")
    metrics = request.app[METRICS]
    request_id_var.set(new_request_id())
    given = request.headers.get(SECRET_HEADER, "")  # any bytes may arrive; the secret is ASCII
    if not given.isascii() or not hmac.compare_digest(given.encode(), runtime.secret.encode()):
        return _error(401, "wrong or missing secret token")
    if request.content_length is not None and request.content_length > MAX_UPDATE_BYTES:
        return _error(413, "update too large")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:  # sent without a length, past what the app reads at all
        return _error(413, "update too large")
    if len(raw) > MAX_UPDATE_BYTES:
        return _error(413, "update too large")
    try:
        # pydantic's own JSON parser: it refuses lone surrogates and deep nesting as miniapp.inputs.parse_json does,
        # in a third of the time (this path's cost is the issue-20 benchmark's subject).
        update = Update.model_validate_json(raw, context={"bot": runtime.bot})
        lane = lane_of(update)
        if not (_fits(update.update_id) and _fits(lane)):
            raise ValueError("an id past 64 bits")
    except ValueError:  # not JSON, JSON with lone surrogates or too deep, or not an Update (ValidationError)
        metrics.updates.labels("invalid").inc()
        return _error(400, "the body is not a Telegram update")
    update_id_var.set(update.update_id)
    try:
        stored = await telegram.intake.append(Arrival(runtime.tenant_id, update.update_id, lane, raw))
    except Exception as error:  # the database away, say: nothing of it is stored, so Telegram's retry is safe
        metrics.updates.labels("error").inc()
        log.warning("update %s could not be stored (%s); Telegram will deliver it again", update.update_id, error)
        return _error(503, "temporary failure, retry")
    if not stored:
        metrics.updates.labels("duplicate").inc()
        return web.json_response({"ok": True, "duplicate": True})
    metrics.updates.labels("stored").inc()
    return web.json_response({"ok": True})


def _fits(number: int) -> bool:
    """Whether the database's 64-bit columns hold it: Telegram's ids do; a body that does not is refused."""
    return -(2 ** 63) <= number < 2 ** 63
