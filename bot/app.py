"""The application factory: one aiohttp app, one dispatcher, the outbox workers, one loop."""

from __future__ import annotations

import asyncio
import logging
import urllib.request
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol, cast

from aiogram.exceptions import TelegramAPIError
from aiogram.fsm.storage.base import BaseStorage, DefaultKeyBuilder
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.fsm.storage.redis import RedisStorage
from aiogram.utils.i18n import I18n
from aiohttp import web
from openai import AsyncOpenAI, DefaultAioHttpClient
from redis.asyncio import Redis

from bot import db
from bot.bot_tokens import token_identifier
from bot.encryption import secret_box
from bot.events import RedisBus, bus_prefix
from bot.fleet import Fleet, TenantMiddleware, create_bot
from bot.i18n import create_i18n, plural_translator, translator
from bot.intake import IntakeSettings, IntakeWorker, Served
from bot.keys import BOX, REDIS, SECRETS, SETTINGS, TELEGRAM, TelegramRuntime
from bot.knowledge import keep_knowledge_fresh, knowledge_sources
from bot.observability import (
    METRICS,
    METRICS_ACCESS,
    READINESS,
    WORK_LOAD,
    Metrics,
    MetricsAccess,
    Readiness,
    metrics_context,
    metrics_view,
    quiet_refused_requests,
    readyz_view,
)
from bot.sending import TelegramChatSender
from bot.settings import Settings
from bot.telegram import create_dispatcher
from bot.webhook import telegram_webhook
from miniapp import routes as miniapp_routes
from miniapp.admin_api import ADMIN, AdminRuntime
from miniapp.api import TRANSLATE
from miniapp.auth import MINIAPP, MiniAppRuntime
from miniapp.files_api import FILES
from miniapp.keys_api import PROVIDER_KEYS
from miniapp.knowledge_api import KNOWLEDGE, KnowledgeTools
from miniapp.live import LIVE, LiveHub
from miniapp.origin import PUBLIC
from miniapp.pages import TRANSLATE_PLURAL
from miniapp.platform_api import BOTS_CHANGED, PLATFORM, PlatformRuntime
from miniapp.studio_api import STUDIO, TOKENS
from miniapp.widget import STATIC, WIDGET, WidgetLimits, WidgetRuntime, add_routes, close_sockets, load_script
from miniapp.widget_hub import WidgetHub
from models import Bot as Tenant
from models import BotState
from services import bot_settings, bots, conversations, staff, tenant_settings, widget
from services.ai import AIClient, AIObserver, Route, RouteOrder
from services.answering import Answerer, AnswerPolicy, preview_html, without_marks
from services.bots import ServedBots
from services.budgets import BudgetWatch
from services.channels import Channels, TelegramChannel, WidgetChannel
from services.desk import CustomerSide
from services.embeddings import Embedder, create_embedder
from services.events import EventBus, LocalBus
from services.files import ConversationFiles, UploadRules
from services.flow import ConversationEvents, ConversationFlow
from services.generation import Generations
from services.i18n import Translate
from services.inbox import InboxFeed
from services.intake import GroupCommit, UpdateStore, keep_clean
from services.knowledge import QUEUE as KNOWLEDGE_QUEUE
from services.knowledge_index import KnowledgeIndex
from services.knowledge_sources import JOB_LEASE, KnowledgeSources
from services.limits import (
    AdjustableRateLimiter,
    ConcurrencyLimiter,
    MemoryConcurrencyLimiter,
    MemoryRateLimiter,
    RateLimiter,
    RedisConcurrencyLimiter,
    RedisRateLimiter,
)
from services.listeners import subscribe_listeners
from services.managers import ManagerDesks
from services.outbox import MANAGERS, JobKind, Outboxes, OutboxSettings, OutboxWorker
from services.provider_keys import KeyPolicy, ProviderKeys
from services.provider_limits import GateObserver, MemoryLedger, ProviderGate, ProviderLimits, RedisLedger
from services.public_address import WEBHOOK_PATH
from services.redaction import Secrets
from services.retention import run_retention
from services.staff import StaffDirectory, WorkingHoursSource, setup_manager_chat
from services.studio import templates
from services.studio.chat import IMPROVE_JOB, RUN_JOB, StudioChat
from services.studio.runs import StudioRuntime, key_opener
from services.tokens import TokenCounter
from services.transcription import Transcriber, create_transcriber
from services.widget import IdentityPolicy, WidgetLive

log = logging.getLogger(__name__)

# The manager group's jobs wait out long backlogs (a send may wait a minute for the group's budget)
# and passing errors: they are given long leases and many tries.
MANAGER_JOB_ATTEMPTS = 30
MANAGER_JOB_LEASE = 600.0
# Manager-group jobs run this many at once (one per lane: a topic's messages keep their order). More than one,
# so a bot whose group waits out Telegram's 20 a minute holds a share of them, never the others' turn.
MANAGER_WORKERS = 4


async def healthz(request: web.Request) -> web.Response:
    telegram = request.app.get(TELEGRAM)
    return web.json_response({"ok": True, "telegram": telegram is not None and len(telegram.fleet) > 0})


def provider_gate(settings: Settings, redis: Redis | None = None,
                  observer: GateObserver | None = None) -> ProviderGate:
    """The AI providers' limits, counted with every instance's when Redis is configured."""
    limits = {name: ProviderLimits(provider.max_streams, provider.requests_per_minute, provider.tokens_per_minute)
              for name, provider in settings.ai_providers.items()}
    limits["default"] = ProviderLimits(settings.ai_max_streams, settings.ai_requests_per_minute,
                                       settings.ai_tokens_per_minute)
    ledger = MemoryLedger() if redis is None else RedisLedger(redis, settings.redis_prefix)
    return ProviderGate(ledger, limits, max_wait=settings.ai_max_wait, observer=observer)


class AIMetrics(AIObserver, GateObserver, Protocol):
    pass


def create_ai(settings: Settings, observer: AIMetrics | None = None,
              order: RouteOrder | None = None, redis: Redis | None = None) -> AIClient | None:
    if not settings.ai_enabled:
        return None

    # The client's aiohttp transport: a streamed piece of an answer costs a quarter of the CPU it costs through
    # the default one, and at rush hour hundreds of answers stream at once on one event loop; a read takes every
    # piece that has arrived. It ignores HTTPS_PROXY and the like: behind a proxy the default transport stays.
    behind_proxy = bool(urllib.request.getproxies())

    def client(base_url: str, api_key: str) -> AsyncOpenAI:
        transport = None if behind_proxy else DefaultAioHttpClient()
        return AsyncOpenAI(base_url=base_url, api_key=api_key or "not-needed", timeout=settings.ai_timeout,
                           max_retries=0, http_client=transport)  # the fallback list is the retry policy

    clients = {"": client(settings.ai_base_url, settings.ai_api_key)}
    for name in {provider for _, provider in settings.ai_routes if provider}:
        clients[name] = client(settings.ai_providers[name].base_url, settings.ai_providers[name].api_key)
    routes = [Route(model, clients[provider], provider or "default") for model, provider in settings.ai_routes]
    return AIClient(routes, settings.price_of, observer, order, settings.ai_max_output_tokens,
                    provider_gate(settings, redis, observer), vision_models=frozenset(settings.ai_vision_models),
                    reads_coalesce=not behind_proxy)


def create_transcriber_of(settings: Settings) -> Transcriber | None:
    """TRANSCRIBE_*, else the AI provider's address and key; None: voice goes to people."""
    if settings.transcribe_base_url:
        base_url, api_key = settings.transcribe_base_url, settings.transcribe_api_key
    elif settings.ai_enabled:
        base_url, api_key = settings.ai_base_url, settings.transcribe_api_key or settings.ai_api_key
    else:
        return None
    return create_transcriber(base_url, api_key, settings.transcribe_model, timeout=settings.ai_timeout,
                              price_per_minute=settings.transcribe_price_per_minute)


async def redis_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    if not settings.redis_url:
        yield
        return
    redis = Redis.from_url(settings.redis_url)
    await cast(Awaitable[bool], redis.ping())  # fail at start, not at the first message
    app[REDIS] = redis
    app[READINESS] = Readiness(settings.ready_max_outbox_age, redis)
    yield
    await redis.aclose()


@dataclass(frozen=True)
class SharedState:
    rates: bot_settings.RatesByBot  # each customer's rate, as their bot's admins set it
    storage: BaseStorage
    studio_runs: ConcurrencyLimiter  # each person's studio runs at once


def shared_state(app: web.Application) -> SharedState:
    """Redis-backed state when Redis is configured (shared by every instance), else in-process. (Each bot's
    Telegram budget and handled update ids are bot/fleet.py's.)"""
    settings = app[SETTINGS]
    redis = app.get(REDIS)
    defaults = bot_settings.Limits(settings.daily_ai_quota, settings.customer_burst, settings.customer_rate_per_minute)

    def memory_rates(_bot_id: int) -> AdjustableRateLimiter:
        return MemoryRateLimiter(settings.customer_burst, settings.customer_rate_per_minute)

    if redis is None:
        return SharedState(bot_settings.RatesByBot(memory_rates, defaults), MemoryStorage(),
                           MemoryConcurrencyLimiter(settings.studio_concurrent_runs))
    # The BOT_TOKEN bot's id in the prefix, as before there were several bots: a rolling upgrade shares state.
    prefix = f"{settings.redis_prefix}:{settings.bot_telegram_id}"

    def redis_rates(_bot_id: int) -> AdjustableRateLimiter:  # a rate key names its bot
        return RedisRateLimiter(redis, prefix, settings.customer_burst, settings.customer_rate_per_minute)

    return SharedState(bot_settings.RatesByBot(redis_rates, defaults),
                       RedisStorage(redis, key_builder=DefaultKeyBuilder(prefix=f"{prefix}:fsm", with_bot_id=True)),
                       RedisConcurrencyLimiter(redis, prefix, settings.studio_concurrent_runs))


def create_bus(app: web.Application) -> EventBus:
    """Redis pub/sub between instances when Redis is configured, else in-process."""
    settings = app[SETTINGS]
    redis = app.get(REDIS)
    if redis is None:
        return LocalBus()
    return RedisBus(redis, bus_prefix(settings))


async def database_context(app: web.Application) -> AsyncIterator[None]:
    await db.open_database(app[SETTINGS].database_url, pool_size=app[SETTINGS].database_pool_size)
    await templates.seed_library()  # the prompt studio's shipped templates, as this version ships them
    yield
    await db.close_database()


def widget_limits(app: web.Application) -> WidgetLimits:
    """Per-address limits on the widget, shared by every instance when Redis is configured."""
    settings = app[SETTINGS]
    redis = app.get(REDIS)
    # (burst, per minute) for messages, new conversations, frames of any kind, and asks.
    rates = [(settings.widget_ip_messages_per_minute, float(settings.widget_ip_messages_per_minute)),
             (settings.widget_ip_conversations_per_hour, settings.widget_ip_conversations_per_hour / 60.0),
             (settings.widget_ip_frames_per_minute, float(settings.widget_ip_frames_per_minute)),
             (settings.widget_ip_actions_per_minute, float(settings.widget_ip_actions_per_minute))]
    prefix = f"{settings.redis_prefix}:{settings.bot_telegram_id}"
    limiters: list[RateLimiter] = [
        MemoryRateLimiter(burst, per_minute) if redis is None else RedisRateLimiter(redis, prefix, burst, per_minute)
        for burst, per_minute in rates]
    # Sockets are counted on each instance: a socket lives for hours, longer than a Redis lease would.
    messages, new_conversations, frames, actions = limiters
    return WidgetLimits(messages, new_conversations, frames, actions,
                        MemoryConcurrencyLimiter(settings.widget_max_sockets_per_address))


def identity_policy(settings: Settings) -> IdentityPolicy:
    return IdentityPolicy(token_lifetime=timedelta(days=settings.widget_token_days),
                          identity_max_age=timedelta(seconds=settings.widget_identity_max_age))


KEY_CHECKS_BURST, KEY_CHECKS_PER_HOUR = 10, 20


def provider_keys(app: web.Application) -> ProviderKeys:
    """Customers' own API keys; checking one calls the provider, so each person has a budget of checks
    (shared by every instance when Redis is configured)."""
    settings = app[SETTINGS]
    redis = app.get(REDIS)
    per_minute = KEY_CHECKS_PER_HOUR / 60.0
    checks: RateLimiter = MemoryRateLimiter(KEY_CHECKS_BURST, per_minute) if redis is None else RedisRateLimiter(
        redis, f"{settings.redis_prefix}:{settings.bot_telegram_id}", KEY_CHECKS_BURST, per_minute)
    policy = KeyPolicy(allow_private=settings.allow_private_providers, run_timeout=settings.ai_timeout)
    return ProviderKeys(app[BOX], app[SECRETS], policy, checks)


@dataclass
class Services:
    """What answers customers, built once per start by `build_services` and stopped by `frontdesk_context`."""

    i18n: I18n
    translate: Translate
    hours: WorkingHoursSource
    bus: EventBus
    live: WidgetLive
    feed: InboxFeed
    shared: SharedState
    tenant: Tenant  # the BOT_TOKEN bot's (or, without one, the business set up before any bot)
    fleet: Fleet  # every bot served here: services.ports.Messengers
    staff_directory: StaffDirectory
    generations: Generations
    ai: AIClient | None
    limits: bot_settings.Limits
    policy: AnswerPolicy
    embedder: Embedder
    index: KnowledgeIndex
    flow: ConversationFlow
    studio_runtime: StudioRuntime
    studio_chat: StudioChat
    own_keys: ProviderKeys
    sources: KnowledgeSources
    outboxes: Outboxes
    budget: BudgetWatch  # each bot's monthly AI budget
    transcriber: Transcriber | None  # voice to text; None: voice goes to people


async def build_services(app: web.Application) -> Services:
    """The domain's objects, wired: each gets what it needs as arguments (no module holds one)."""
    settings, metrics = app[SETTINGS], app[METRICS]
    shared = shared_state(app)
    i18n = create_i18n(settings.default_locale)
    translate = translator(i18n)
    hours = WorkingHoursSource(settings.working_hours, settings.timezone)
    bus = create_bus(app)
    tenant = await _tenant(settings)
    outboxes = Outboxes()  # its workers come last: they run what everything above queues

    def wake() -> None:
        outboxes.wake()

    fleet = Fleet(settings, i18n, translate, app[BOX], app.get(REDIS), metrics, bus, wake)
    # Each bot's admins' choice of the models' order, read before each answer.
    ai = create_ai(settings, metrics, bot_settings.route_order, app.get(REDIS))
    if ai is None:
        log.warning("AI is off (%s): answers come from the knowledge base.", settings.ai_off_reason)
    limits = shared.rates.defaults
    generations = Generations(bus)
    policy = AnswerPolicy(settings.kb_direct_threshold, settings.daily_ai_quota, settings.ai_context_tokens,
                          settings.draft_interval, vision_max_bytes=settings.vision_max_bytes,
                          transcribe_max_seconds=settings.transcribe_max_seconds,
                          daily_transcriptions=settings.customer_daily_transcriptions,
                          daily_images=settings.customer_daily_images,
                          album_settle_seconds=settings.album_settle_seconds,
                          file_max_bytes=settings.customer_file_max_bytes, file_tokens=settings.customer_file_tokens)
    embedder = create_embedder(settings.embedding_base_url, settings.embedding_api_key, settings.embedding_model,
                               settings.embedding_threads)
    index = KnowledgeIndex(embedder, bus, max_wait=settings.embedding_max_wait)
    live, feed = WidgetLive(bus), InboxFeed(bus)
    channels = Channels(TelegramChannel(fleet, generations, settings.draft_interval, preview_html,
                                        settings.telegram_messages_per_second),
                        WidgetChannel(live, policy.widget_delta_interval, without_marks, ConversationFiles(fleet)))
    events = ConversationEvents()
    subscribe_listeners(events, wake=wake, feed=feed, channels=channels)
    flow = ConversationFlow(events, limiter=shared.rates, default_locale=settings.default_locale,
                            translate=translate, hours=hours, wake=wake)
    own_keys = provider_keys(app)
    budget = BudgetWatch(translate, settings.default_locale, frozenset(settings.admin_ids), messengers=fleet,
                         wake=wake)
    studio_runtime = StudioRuntime(ai, settings.price_of, settings.daily_ai_quota, key_opener(own_keys), metrics,
                                   shared.studio_runs, settings.studio_max_prompt_chars,
                                   settings.ai_max_output_tokens, budget.allows_ai)
    studio_chat = StudioChat(fleet, translate, studio_runtime, generations, settings.draft_interval, wake=wake)
    sources = knowledge_sources(settings, embedder, index, wake)
    services = Services(i18n, translate, hours, bus, live, feed, shared, tenant, fleet,
                        StaffDirectory(fleet, frozenset(settings.admin_ids),
                                       auto_approve=settings.staff_auto_approve),
                        generations, ai, limits, policy, embedder, index, flow, studio_runtime, studio_chat,
                        own_keys, sources, outboxes, budget, create_transcriber_of(settings))
    outboxes.add(*_workers(settings, metrics, services, channels))
    return services


async def _tenant(settings: Settings) -> Tenant:
    """The BOT_TOKEN bot's row (made on its first start; it adopts the business set up before it had a token)."""
    if settings.telegram_enabled:
        me = await token_identifier(settings)(settings.bot_token)
        tenant = await conversations.ensure_bot(me.telegram_id, me.username)
    else:
        if not await Tenant.filter(state=BotState.ACTIVE).exclude(token_secret="").exists():
            log.warning("Telegram is off: BOT_TOKEN is not set and no bot was added (`python -m bot bots add`). "
                        "The website widget and the web endpoints work.")
        tenant = await conversations.ensure_bot(conversations.UNCONFIGURED_BOT_ID)
    await staff.adopt_existing_staff(tenant.id)  # managers at work before approvals existed stay managers
    return tenant


def _workers(settings: Settings, metrics: Metrics, services: Services, channels: Channels) -> list[OutboxWorker]:
    """The outbox's queues: the customers' (many jobs at once), the manager group's and the knowledge's (one each)."""
    budget = services.budget
    answerer = Answerer(channels, services.flow, services.translate, services.policy, services.ai, services.hours,
                        services.index, services.transcriber, budget)
    customer_side = CustomerSide(channels, services.translate, settings.default_locale, services.flow)
    studio_chat = services.studio_chat
    workers = [OutboxWorker(
        {JobKind.ANSWER: answerer.answer_job, JobKind.SLOW_DOWN: answerer.slow_down_job,
         JobKind.TO_CUSTOMER: customer_side.to_customer_job, JobKind.CUSTOMER_EDIT: customer_side.customer_edit_job,
         JobKind.CUSTOMER_NOTICE: customer_side.customer_notice_job,
         IMPROVE_JOB: studio_chat.improve_job, RUN_JOB: studio_chat.run_job},
        OutboxSettings(settings.outbox_workers, settings.outbox_lease_seconds, settings.outbox_max_attempts,
                       per_bot=settings.outbox_jobs_per_bot),
        on_give_up=answerer.gave_up, observe=metrics.outbox_job, bots_served=lambda: len(services.fleet))]
    managers = ManagerDesks(services.fleet, services.translate, settings.default_locale, settings.album_settle_seconds)
    # Their own workers: the groups' waits hold up no customer, and the fair share keeps bots apart.
    workers.append(OutboxWorker(
        managers.handlers(), OutboxSettings(MANAGER_WORKERS, max(settings.outbox_lease_seconds, MANAGER_JOB_LEASE),
                                            MANAGER_JOB_ATTEMPTS), queue=MANAGERS, observe=metrics.outbox_job))
    # One worker: indexing is CPU work beside the answers; a sync renews its lease after every page.
    workers.append(OutboxWorker(services.sources.handlers(),
                                OutboxSettings(1, JOB_LEASE, settings.outbox_max_attempts),
                                queue=KNOWLEDGE_QUEUE, observe=metrics.outbox_job))
    return workers


async def _install(app: web.Application, services: Services) -> None:
    """The web side's runtimes (the widget, the Mini App, its admin and knowledge pages) on the app's keys."""
    settings = app[SETTINGS]
    app[OUTBOXES] = services.outboxes
    app[WORK_LOAD] = services.outboxes
    app[FILES] = files = ConversationFiles(services.fleet)  # staff's and visitors' file routes
    app[WIDGET] = WidgetRuntime(WidgetHub(services.bus, app[METRICS].widget_sockets), services.live,
                                widget_limits(app), services.flow, services.translate, services.hours,
                                settings.default_locale, settings.trust_proxy_headers, load_script(),
                                demo=settings.demo_enabled, identity=identity_policy(settings),
                                hello_timeout=settings.widget_hello_seconds, heartbeat=settings.widget_ping_seconds,
                                uploads=UploadRules(settings.widget_upload_max_bytes,
                                                    tuple(settings.widget_upload_types)),
                                files=files)
    if settings.demo_enabled:  # DEMO_SITE, or development: a live AI chat at `/` for a first look
        await widget.ensure_demo_site(services.tenant.id, settings.public_address.demo_origins)
    app[TRANSLATE] = services.translate
    app[TRANSLATE_PLURAL] = plural_translator(services.i18n)
    # The Mini App of every bot served: each checks its initData with its own token (miniapp/auth.py).
    app[MINIAPP] = MiniAppRuntime(services.tenant.id, ServedBots(settings.bot_token, app[BOX]),
                                  timedelta(seconds=settings.miniapp_auth_max_age), frozenset(settings.admin_ids),
                                  settings.default_locale, services.translate, services.flow,
                                  services.staff_directory, services.hours,
                                  timedelta(seconds=settings.staff_auth_max_age),
                                  timedelta(hours=settings.staff_session_hours))
    app[PROVIDER_KEYS] = services.own_keys
    app[KNOWLEDGE] = KnowledgeTools(services.ai, services.policy, services.index, services.sources)
    app[STUDIO] = services.studio_runtime
    app[TOKENS] = TokenCounter()
    app[ADMIN] = AdminRuntime(services.ai, services.limits, settings.working_hours, settings.timezone,
                              services.shared.rates, settings.widget_secret_overlap_hours)
    app[LIVE] = live_hub = LiveHub(services.feed)
    services.feed.subscribe(live_hub.on_event)
    app[PLATFORM] = PlatformRuntime(frozenset(settings.platform_admin_ids), token_identifier(settings), app[BOX])

    async def bots_changed() -> None:  # every instance's fleet looks at the bot table now (this one's too)
        await services.bus.publish(bots.CHANGED_CHANNEL, {"bots": "changed"})

    app[BOTS_CHANGED] = bots_changed


async def frontdesk_context(app: web.Application) -> AsyncIterator[None]:
    """Everything that answers customers: the AI, the outbox workers, the widget, and every bot served
    (without any, the widget and the web endpoints still work)."""
    settings = app[SETTINGS]
    services = await build_services(app)
    await _install(app, services)
    await _start_telegram(app, services)
    if isinstance(services.bus, RedisBus):
        await services.bus.start()  # after every subscriber is in place
    background = [asyncio.create_task(services.fleet.keep_reconciling(settings.bots_recheck_seconds), name="bots")]
    if settings.works:  # a receive-only instance leaves every queue to the instances that work
        services.outboxes.start()
        app[TELEGRAM].intake_worker.start()
        background.append(asyncio.create_task(keep_knowledge_fresh(services.sources), name="knowledge-freshness"))
    try:
        yield
    finally:
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await services.fleet.stop_intake()
        telegram = app[TELEGRAM]
        await telegram.intake.close()  # what was taken is stored before the database closes
        stopping = app[STOPPING].task
        if stopping is not None:
            await stopping
        await telegram.intake_worker.stop(settings.shutdown_grace_seconds)
        await services.outboxes.stop(settings.shutdown_grace_seconds)
        await _close(services)


async def _close(services: Services) -> None:
    if isinstance(services.bus, RedisBus):
        await services.bus.stop()
    await services.fleet.close()
    if services.ai is not None:
        await services.ai.close()
    if services.transcriber is not None:  # its HTTP client's connections, which nothing else closes
        await services.transcriber.close()
    await services.embedder.close()


async def _start_telegram(app: web.Application, services: Services) -> None:
    """One dispatcher for every bot, then each active bot (bot/fleet.py); MANAGER_CHAT_ID for BOT_TOKEN's."""
    settings, shared, fleet = app[SETTINGS], services.shared, services.fleet
    dispatcher = create_dispatcher(
        services.i18n, shared.storage, TenantMiddleware(fleet), settings=settings, limiter=shared.rates,
        generations=services.generations, translate=services.translate, hours=services.hours,
        widget_live=services.live, flow=services.flow, studio_chat=services.studio_chat,
        staff_directory=services.staff_directory)
    store = UpdateStore()
    metrics = app[METRICS]
    worker = IntakeWorker(store, dispatcher, Served(fleet.bot_of, bots.is_active),
                          IntakeSettings(settings.intake_workers, settings.intake_lease_seconds,
                                         settings.intake_max_attempts, _intake_poll(store),
                                         settings.intake_updates_per_bot),
                          observe=lambda outcome: metrics.updates.labels(outcome).inc(),
                          bots_served=lambda: len(fleet))
    intake = GroupCommit(store, after_commit=worker.wake)  # this instance's worker hears of new updates at once
    app[TELEGRAM] = TelegramRuntime(dispatcher, fleet, services.outboxes, intake, worker)
    services.bus.subscribe(bots.CHANGED_CHANNEL, fleet.changed)
    tenant = services.tenant
    if settings.telegram_enabled and settings.manager_chat_id is not None:
        await _register_configured_manager_chat(tenant, settings)  # before its bot starts: its commands go there
    elif settings.telegram_enabled and tenant.manager_chat_id is None:
        log.warning("No manager chat yet: handed-off conversations wait for one. Add the bot to your managers' "
                    "forum group as an admin and send /setup there (or set MANAGER_CHAT_ID).")
    await fleet.start(dispatcher, intake)


def _intake_poll(store: UpdateStore) -> float:
    """How often an idle intake worker looks for updates it was not woken for: on PostgreSQL another instance
    (a receiver) may have stored them; a SQLite file has one process, whose own appends wake its worker."""
    return 0.1 if store.postgres else 1.0


async def _register_configured_manager_chat(tenant: Tenant, settings: Settings) -> None:
    """MANAGER_CHAT_ID wins over /setup; its rights are checked now so the log says what is missing."""
    chat_id = int(settings.manager_chat_id or 0)
    bot = create_bot(settings, settings.bot_token)  # before the fleet starts it: its staff commands go there
    try:
        report = await setup_manager_chat(TelegramChatSender(bot), tenant.id, chat_id,
                                          tenant_settings.of(tenant).manager_locale or settings.default_locale)
    except TelegramAPIError as error:
        log.error("MANAGER_CHAT_ID %s: the bot cannot see that chat (%s). Add the bot to it.", chat_id, error)
        return
    finally:
        await bot.session.close()
    if report.missing:
        log.warning("Manager chat %s: the bot still needs %s (send /setup there for details)", chat_id,
                    ", ".join(report.missing))
    tenant.manager_chat_id = chat_id


@dataclass
class Stopping:
    task: asyncio.Task[None] | None = None


STOPPING = web.AppKey("stopping", Stopping)
OUTBOXES = web.AppKey("outboxes", Outboxes)


async def stop_taking_work(app: web.Application) -> None:
    """On shutdown: claim no new jobs and let running ones finish, while in-flight requests finish
    too (both within SHUTDOWN_GRACE_SECONDS); the cleanup waits for it. Widget sockets are closed
    at once: each widget reconnects (to another instance) and resumes."""
    outboxes, telegram, grace = app.get(OUTBOXES), app.get(TELEGRAM), app[SETTINGS].shutdown_grace_seconds
    if outboxes is not None and telegram is not None:
        app[STOPPING].task = asyncio.create_task(_stop_workers(outboxes, telegram.intake_worker, grace))
    await close_sockets(app)
    live_hub = app.get(LIVE)
    if live_hub is not None:
        await live_hub.close_all()


async def _stop_workers(outboxes: Outboxes, intake_worker: IntakeWorker, grace: float) -> None:
    await asyncio.gather(intake_worker.stop(grace), outboxes.stop(grace))


RETENTION_EVERY = 3600.0
INTAKE_CLEAN_EVERY = 600.0  # at a thousand updates a second, ten minutes' keys are a few hundred thousand rows


async def retention_context(app: web.Application) -> AsyncIterator[None]:
    """The hourly purge: removed bots past BOT_RETENTION_DAYS, and old conversations when RETENTION_DAYS is set;
    and every ten minutes the intake's old rows (INTAKE_RETENTION_HOURS, INTAKE_FAILED_DAYS).
    Work, so a receive-only instance (OUTBOX_WORKERS=0) leaves it to the others."""
    settings = app[SETTINGS]
    if not settings.works:
        yield
        return
    tasks = [asyncio.create_task(run_retention(settings.retention_days, timedelta(days=settings.bot_retention_days),
                                               RETENTION_EVERY), name="retention"),
             asyncio.create_task(keep_clean(UpdateStore(), settings.intake_retention_hours,
                                            settings.intake_failed_days, INTAKE_CLEAN_EVERY), name="retention-intake")]
    yield
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def create_app(settings: Settings, secrets: Secrets | None = None) -> web.Application:
    """The whole server. `secrets` is what the process's logging redacts (`python -m bot` passes the one
    it gave configure_logging); keys held while in use are added to it."""
    app = web.Application(client_max_size=2 * 1024 * 1024)
    quiet_refused_requests()  # a request aiohttp cannot even parse is a WARNING line, not a traceback
    app[SETTINGS] = settings
    app[SECRETS] = secrets = secrets if secrets is not None else Secrets(settings.secrets)
    app[BOX] = secret_box(settings, secrets)  # now: a missing or broken key stops the start here
    app[PUBLIC] = settings.public_address  # the one answer to "which scheme, which address"
    app[METRICS] = Metrics()
    app[METRICS_ACCESS] = MetricsAccess(settings.metrics_token, settings.metrics_refresh_seconds)
    app[READINESS] = Readiness(settings.ready_max_outbox_age)
    app.cleanup_ctx.append(redis_context)
    app.cleanup_ctx.append(database_context)
    app.cleanup_ctx.append(metrics_context)
    app.cleanup_ctx.append(frontdesk_context)
    app.cleanup_ctx.append(retention_context)
    app[STOPPING] = Stopping()
    app.on_shutdown.append(stop_taking_work)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz_view)
    app.router.add_get("/metrics", metrics_view)
    app.router.add_post(WEBHOOK_PATH, telegram_webhook)  # BOT_TOKEN's bot
    app.router.add_post(WEBHOOK_PATH + "/{key}", telegram_webhook)  # each bot added since, by its own key
    add_routes(app, demo=settings.demo_enabled)
    miniapp_routes.add_routes(app)
    app.router.add_static("/static/", STATIC, append_version=True, name="static")
    return app
