"""The application factory: one aiohttp app, one dispatcher, one outbox worker, one loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable
from typing import cast

from aiogram.fsm.storage.base import BaseStorage, DefaultKeyBuilder
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.fsm.storage.redis import RedisStorage
from aiohttp import web
from openai import AsyncOpenAI
from redis.asyncio import Redis

from bot import db
from bot.dedup import MemoryRecentUpdates, RecentUpdates, RedisRecentUpdates
from bot.i18n import create_i18n, translator
from bot.keys import REDIS, SETTINGS, TELEGRAM, TelegramRuntime
from bot.sender import TelegramChatSender
from bot.settings import Settings
from bot.telegram import create_bot, create_dispatcher, set_commands
from bot.webhook import telegram_webhook
from services import conversations
from services.ai import AIClient, Route
from services.answering import Answerer, AnswerPolicy
from services.generation import Generations
from services.limits import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from services.outbox import OutboxSettings, OutboxWorker

log = logging.getLogger(__name__)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True, "telegram": TELEGRAM in request.app})


def create_ai(settings: Settings) -> AIClient | None:
    if not settings.ai_enabled:
        return None

    def client(base_url: str, api_key: str) -> AsyncOpenAI:
        return AsyncOpenAI(base_url=base_url, api_key=api_key or "not-needed", timeout=settings.ai_timeout,
                           max_retries=0)  # the fallback list is the retry policy

    clients = {"": client(settings.ai_base_url, settings.ai_api_key)}
    for name in {provider for _, provider in settings.ai_routes if provider}:
        clients[name] = client(settings.ai_providers[name].base_url, settings.ai_providers[name].api_key)
    routes = [Route(model, clients[provider], provider or "default") for model, provider in settings.ai_routes]
    return AIClient(routes, settings.price_of)


async def redis_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    if not settings.redis_url:
        yield
        return
    redis = Redis.from_url(settings.redis_url)
    await cast(Awaitable[bool], redis.ping())  # fail at start, not at the first message
    app[REDIS] = redis
    yield
    await redis.aclose()


def shared_state(app: web.Application) -> tuple[RecentUpdates, RateLimiter, BaseStorage]:
    """Redis-backed state when Redis is configured (shared by every instance), else in-process."""
    settings = app[SETTINGS]
    redis = app.get(REDIS)
    if redis is None:
        return (MemoryRecentUpdates(),
                MemoryRateLimiter(settings.customer_burst, settings.customer_rate_per_minute), MemoryStorage())
    prefix = f"{settings.redis_prefix}:{settings.bot_telegram_id}"
    return (RedisRecentUpdates(redis, prefix),
            RedisRateLimiter(redis, prefix, settings.customer_burst, settings.customer_rate_per_minute),
            RedisStorage(redis, key_builder=DefaultKeyBuilder(prefix=f"{prefix}:fsm")))


async def database_context(app: web.Application) -> AsyncIterator[None]:
    await db.open_database(app[SETTINGS].database_url)
    yield
    await db.close_database()


async def telegram_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    if not settings.telegram_enabled:
        log.warning("Telegram is off: BOT_TOKEN is not set. The web endpoints work; the bot does not.")
        yield
        return
    bot = create_bot(settings)
    i18n = create_i18n(settings.default_locale)
    me = await bot.get_me()
    tenant = await conversations.ensure_bot(me.id, me.username or "")
    ai = create_ai(settings)
    if ai is None:
        log.warning("AI is off (AI_BASE_URL and AI_MODEL not set): answers come from the knowledge base.")
    generations = Generations()
    answerer = Answerer(
        TelegramChatSender(bot), translator(i18n),
        AnswerPolicy(settings.kb_direct_threshold, settings.daily_ai_quota, settings.ai_context_tokens,
                     settings.draft_interval), ai, generations)
    outbox = OutboxWorker(
        {"answer": answerer.answer_job, "slow_down": answerer.slow_down_job},
        OutboxSettings(settings.outbox_workers, settings.outbox_lease_seconds, settings.outbox_max_attempts),
        on_give_up=answerer.gave_up)
    recent, limiter, storage = shared_state(app)
    dispatcher = create_dispatcher(i18n, storage=storage, settings=settings, tenant=tenant, outbox=outbox,
                                   limiter=limiter, generations=generations)
    runtime = TelegramRuntime(bot, dispatcher, settings.webhook_secret, recent, outbox)
    app[TELEGRAM] = runtime
    await set_commands(bot, i18n)
    polling: asyncio.Task[None] | None = None
    allowed = dispatcher.resolve_used_update_types()
    if settings.webhook_url:
        await bot.set_webhook(settings.webhook_url, secret_token=settings.webhook_secret, allowed_updates=allowed)
        log.info("Telegram: @%s receives updates by webhook at %s", me.username, settings.webhook_url)
    else:
        await bot.delete_webhook()
        polling = asyncio.create_task(dispatcher.start_polling(
            bot, handle_signals=False, close_bot_session=False, allowed_updates=allowed))
        log.info("Telegram: @%s receives updates by long polling", me.username)
    outbox.start()
    try:
        yield
    finally:
        if polling is not None:
            with contextlib.suppress(RuntimeError):
                await dispatcher.stop_polling()
            await asyncio.gather(polling, return_exceptions=True)
        await outbox.stop()
        await bot.session.close()
        if ai is not None:
            await ai.close()


def create_app(settings: Settings) -> web.Application:
    app = web.Application(client_max_size=2 * 1024 * 1024)
    app[SETTINGS] = settings
    app.cleanup_ctx.append(redis_context)
    app.cleanup_ctx.append(database_context)
    app.cleanup_ctx.append(telegram_context)
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/telegram/webhook", telegram_webhook)
    return app
