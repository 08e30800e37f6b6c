"""POST /telegram/webhook[/<key>]: check the bot's secret, store-and-acknowledge through the dispatcher.

Each bot has its own path (bot/fleet.py): /telegram/webhook for BOT_TOKEN's, /telegram/webhook/<its random
key> for each bot added since, and its own secret; a request names its bot by the path alone.

Written here rather than with aiogram's SimpleRequestHandler because the answer must follow the
outcome: 2xx only once the update's effects are committed (a failure answers 5xx so Telegram
retries), and re-delivered update ids are acknowledged without running the handlers again.
"""

from __future__ import annotations

import hmac
import logging

from aiogram.types import Update
from aiohttp import web

from bot.keys import TELEGRAM
from bot.observability import METRICS, new_request_id, request_id_var, update_id_var
from miniapp.inputs import parse_json

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
        update = Update.model_validate(parse_json(raw), context={"bot": runtime.bot})
    except ValueError:  # not JSON, JSON parse_json refuses, or not an Update (pydantic's ValidationError)
        metrics.updates.labels("invalid").inc()
        return _error(400, "the body is not a Telegram update")
    update_id_var.set(update.update_id)
    try:
        duplicate = await runtime.recent.seen(update.update_id)
    except Exception as error:  # Redis restarting, say: nothing is done yet, so a retry is safe
        metrics.updates.labels("error").inc()
        log.warning("update %s: cannot check for a re-delivery (%s); Telegram will deliver it again",
                    update.update_id, error)
        return _error(503, "temporary failure, retry")
    if duplicate:
        metrics.updates.labels("duplicate").inc()
        return web.json_response({"ok": True, "duplicate": True})
    try:
        await telegram.dispatcher.feed_update(runtime.bot, update)
    except Exception:
        metrics.updates.labels("error").inc()
        log.exception("update %s failed; Telegram will deliver it again", update.update_id)
        return _error(500, "temporary failure, retry")
    try:
        await runtime.recent.remember(update.update_id)
    except Exception as error:  # handled and committed: a 5xx now would only make Telegram send it again
        log.warning("update %s handled but not remembered (%s); a re-delivered message is still stored once",
                    update.update_id, error)
    metrics.updates.labels("handled").inc()
    return web.json_response({"ok": True})
