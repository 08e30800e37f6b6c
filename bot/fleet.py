"""Every bot this deployment serves, running on this instance: one aiogram Bot each, with its own budget.

The bot table says which bots are served (services/bots.py: added with a token, paused, resumed, removed);
`Fleet.reconcile` makes this instance match it: it starts each active bot (its webhook at
/telegram/webhook/<its key> with its own secret, or its own long polling), and stops a paused or removed
one. It runs at start, when the `bots` event says the table changed (the Mini App's platform page, or the CLI
through Redis), and every BOTS_RECHECK_SECONDS, so a bot added on one instance starts on every other within
seconds, with no restart, with or without Redis.

The bot from BOT_TOKEN is one of them: its token stays in the settings, its webhook at /telegram/webhook and
its secret WEBHOOK_SECRET, as before there were several.

Telegram's limits are per bot, so each bot has its own Budget (shared by every instance through Redis when it
is configured): one bot's flood spends only its own. A token Telegram refuses (401, confirmed by getMe) pauses
its bot and tells the people who run the deployment.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiogram import Bot as AiogramBot
from aiogram import Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.dispatcher.middlewares.base import BaseMiddleware
from aiogram.exceptions import TelegramAPIError, TelegramUnauthorizedError
from aiogram.types import TelegramObject, Update
from aiogram.utils.i18n import I18n
from redis.asyncio import Redis

from bot.intake import lane_of
from bot.sending import (
    BOT_DEFAULTS,
    Budget,
    CallObserver,
    Limits,
    Pacer,
    RedisPacer,
    SenderMiddleware,
    TelegramChatSender,
)
from bot.settings import Settings
from bot.telegram import set_commands, set_menu_button
from handlers.manager_desk import set_staff_commands
from models import Bot, BotState, Role, User
from services import bots, conversations, outbox, staff
from services.events import EventBus
from services.i18n import N_, Translate
from services.intake import Arrival, GroupCommit
from services.outbox import JobKind
from services.ports import DraftBudget, Messenger
from services.public_address import WEBHOOK_PATH
from services.render import escape
from services.secrets_box import BoxError, SecretBox

log = logging.getLogger(__name__)

STARTING_AT_ONCE = 20  # bots set up in parallel (their commands, menu button and webhook): a thousand start in seconds
POLL_TIMEOUT = 25  # seconds a getUpdates long poll waits

OPEN_APP = N_("App")
TOKEN_REVOKED_NOTICE = N_("⚠️ Telegram no longer accepts the token of @{username}, so it stopped answering its "
                          "customers. Its data is kept. Give it a new token from @BotFather to start it again: "
                          "python -m bot bots token {username} NEW_TOKEN")


@dataclass
class BotRuntime:
    """One served bot on this instance."""

    tenant_id: int  # the bot's row (models.Bot.id): every row of its business points at it
    telegram_id: int
    username: str
    bot: AiogramBot
    messenger: TelegramChatSender
    budget: Budget  # Telegram's limits for this bot
    secret: str  # what Telegram sends back with each webhook update
    sealed: str  # the stored token it was started with ("" for BOT_TOKEN's): a new one restarts it
    primary: bool = False  # the bot from BOT_TOKEN
    webhook_key: str = ""
    polling: asyncio.Task[None] | None = None


def webhook_secret_of(token: str) -> str:
    """A bot's webhook secret: derived from its token (a new token, a new secret), never revealing it."""
    return hashlib.sha256(f"frontdesk-webhook:{token}".encode()).hexdigest()


class TelegramSession(AiohttpSession):
    """aiogram's HTTP session, closed without the 250 ms it sleeps after closing "for the SSL connections to
    close": since aiohttp 3.12.11 closing the connector aborts its SSL connections at once, so that wait
    waits for nothing, and every stop of the server (each test's among them) paid it."""

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()


def create_bot(settings: Settings, token: str) -> AiogramBot:
    """A bot with a session of its own, outside the fleet (MANAGER_CHAT_ID's check at start); close it after."""
    session = TelegramSession(api=TelegramAPIServer.from_base(settings.telegram_api_base))
    limits = Limits(per_second=settings.telegram_messages_per_second,
                    group_per_minute=settings.group_messages_per_minute)
    session.middleware(SenderMiddleware(limits, retries=settings.send_retries))
    return AiogramBot(token, session=session, default=BOT_DEFAULTS)


class Fleet:
    """services.ports.Messengers for the domain, and the bots' intake (webhooks, polling) for the app."""

    def __init__(self, settings: Settings, i18n: I18n, translate: Translate, box: SecretBox,
                 redis: Redis | None = None, observer: CallObserver | None = None,
                 bus: EventBus | None = None, wake: Callable[[], None] = lambda: None) -> None:
        self.settings = settings
        self.wake = wake  # the outbox: a bot served again has work waiting for it
        self.bus = bus  # the `bots` channel: this instance's changes to the table, for the others
        self.i18n = i18n
        self.translate = translate
        self.box = box
        self.redis = redis
        self.observer = observer
        self.dispatcher: Dispatcher | None = None
        self.intake: GroupCommit | None = None
        # One HTTP session for every bot (aiogram's way to run many bots): one connection pool, not a thousand
        # idle ones, and closed once. Each call is paced by its own bot's budget. No cap on connections: the
        # outbox's workers bound what is sent at once, and each long poll holds one for POLL_TIMEOUT.
        self.session = TelegramSession(api=TelegramAPIServer.from_base(settings.telegram_api_base), limit=0)
        limits = Limits(per_second=settings.telegram_messages_per_second,
                        group_per_minute=settings.group_messages_per_minute)
        self.session.middleware(SenderMiddleware(limits, retries=settings.send_retries, observer=observer,
                                                 on_unauthorized=self._unauthorized,
                                                 budget_of=self._budget_by_telegram))
        self._by_tenant: dict[int, BotRuntime] = {}
        self._by_telegram: dict[int, BotRuntime] = {}
        self._by_webhook_key: dict[str, BotRuntime] = {}
        self._reconciling = asyncio.Lock()
        self._starting = asyncio.Semaphore(STARTING_AT_ONCE)
        self._background: set[asyncio.Task[Any]] = set()
        self._refused: dict[int, str] = {}  # tenant id → the sealed token Telegram refused (not tried again)

    # --- services.ports.Messengers ------------------------------------------------------------------------

    def of(self, bot_id: int) -> Messenger | None:
        runtime = self._by_tenant.get(bot_id)
        return runtime.messenger if runtime is not None else None

    def budget_of(self, bot_id: int) -> DraftBudget | None:
        runtime = self._by_tenant.get(bot_id)
        return runtime.budget if runtime is not None else None

    # --- intake --------------------------------------------------------------------------------------------

    def bot_of(self, tenant_id: int) -> AiogramBot | None:
        """The aiogram Bot serving this bot's row here, or None (the intake's workers feed updates with it)."""
        runtime = self._by_tenant.get(tenant_id)
        return runtime.bot if runtime is not None else None

    def serving(self, telegram_id: int) -> BotRuntime | None:
        """The running bot with this Telegram id (aiogram's Bot.id), or None."""
        return self._by_telegram.get(telegram_id)

    def by_webhook_key(self, key: str) -> BotRuntime | None:
        return self._by_webhook_key.get(key) if key else None

    @property
    def primary(self) -> BotRuntime | None:
        return next((runtime for runtime in self._by_tenant.values() if runtime.primary), None)

    def __len__(self) -> int:
        return len(self._by_tenant)

    # --- start and stop ---------------------------------------------------------------------------------------

    async def start(self, dispatcher: Dispatcher, intake: GroupCommit) -> None:
        """Serve every active bot; long polling stores what it takes in `intake`, as the webhook does.
        BOT_TOKEN's is set up before the server starts, as with one bot; the others are
        served at once (their webhooks, set before, already point here) and set up again meanwhile,
        STARTING_AT_ONCE at a time, so a thousand bots do not hold the start."""
        self.dispatcher = dispatcher
        self.intake = intake
        prepared = await self._prepare_pass()
        await self._set_up_all([(runtime, row) for runtime, row in prepared if runtime.primary], waiting_jobs=False)
        others = [(runtime, row) for runtime, row in prepared if not runtime.primary]
        if others:
            task = asyncio.create_task(self._set_up_all(others, waiting_jobs=False), name="bots-starting")
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def reconcile(self) -> None:
        """Make this instance serve exactly the active bots of the table."""
        await self._set_up_all(await self._prepare_pass(), waiting_jobs=True)

    async def _prepare_pass(self) -> list[tuple[BotRuntime, Bot]]:
        """Stop what is no longer active here, and serve what is new (one pass at a time); returns the new ones,
        to set up."""
        async with self._reconciling:
            # One narrow query each pass (every instance, every few seconds): whole rows only of bots to start.
            active = await Bot.filter(state=BotState.ACTIVE).values_list("id", "telegram_id", "token_secret")
            wanted = {int(tenant_id): str(sealed) for tenant_id, telegram_id, sealed in active
                      if sealed or self._is_primary(int(telegram_id))}
            for tenant_id in [tenant_id for tenant_id, runtime in self._by_tenant.items()
                              if wanted.get(tenant_id) != runtime.sealed]:
                await self._stop_bot(self._by_tenant[tenant_id], leaving=tenant_id not in wanted)
            new = [tenant_id for tenant_id, sealed in wanted.items()
                   if tenant_id not in self._by_tenant and self._refused.get(tenant_id) != sealed]
            starting = await Bot.filter(id__in=new, state=BotState.ACTIVE) if new else []
            return [(runtime, row) for row in starting if (runtime := self._serve_new(row)) is not None]

    async def _set_up_all(self, prepared: list[tuple[BotRuntime, Bot]], *, waiting_jobs: bool) -> None:
        await asyncio.gather(*(self._start_bot(runtime, row, waiting_jobs=waiting_jobs) for runtime, row in prepared))

    async def keep_reconciling(self, every: float) -> None:
        """The periodic look at the table: bots added, paused or given a new token on another instance."""
        while True:
            await asyncio.sleep(every)
            try:
                await self.reconcile()
            except Exception:  # the database restarting, say: the next pass tries again
                log.exception("could not compare the bots served here with the bot table")

    async def changed(self, _event: dict[str, Any] | None = None) -> None:
        """The `bots` event (any instance changed the table): look now rather than at the next pass. In a task of
        its own: the bus's listener hands out every event (the widget's too) and must not wait for bots to start."""
        task = asyncio.create_task(self._look_now(), name="bots-changed")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _look_now(self) -> None:
        try:
            await self.reconcile()
        except Exception:
            log.exception("could not apply a change to the bot table")

    async def stop_intake(self) -> None:
        """No more updates by long polling (shutdown): the webhooks stop with the server."""
        for runtime in self._by_tenant.values():
            if runtime.polling is not None:
                runtime.polling.cancel()
                await asyncio.gather(runtime.polling, return_exceptions=True)
                runtime.polling = None

    async def close(self) -> None:
        """Stop serving (the process stops): polling ends and sessions close; webhooks stay set for the next start."""
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        for runtime in list(self._by_tenant.values()):
            await self._stop_bot(runtime, leaving=False)
        await self.session.close()

    # --- one bot ------------------------------------------------------------------------------------------------

    def _is_primary(self, telegram_id: int) -> bool:
        return self.settings.telegram_enabled and telegram_id == self.settings.bot_telegram_id

    def _token_of(self, row: Bot) -> str | None:
        if not row.token_secret:  # BOT_TOKEN's bot keeps its token in the settings
            return self.settings.bot_token if self._is_primary(int(row.telegram_id)) else None
        try:
            return bots.open_token(row, self.box)
        except BoxError as error:  # sealed with a key this instance does not hold: said once, until it changes
            log.error("bot %s: its token cannot be opened here (%s); it is not served by this instance", row, error)
            self._refused[row.id] = row.token_secret
            return None

    def _budget_by_telegram(self, telegram_id: int) -> Budget | None:
        runtime = self._by_telegram.get(telegram_id)
        return runtime.budget if runtime is not None else None

    def _budget(self, telegram_id: int) -> Budget:
        limits = Limits(per_second=self.settings.telegram_messages_per_second,
                        group_per_minute=self.settings.group_messages_per_minute)
        if self.redis is None:
            return Pacer(limits)
        return RedisPacer(self.redis, f"{self.settings.redis_prefix}:{telegram_id}", limits)

    def _serve_new(self, row: Bot) -> BotRuntime | None:
        """Its runtime, served from now on (before its webhook is set: the first update may come at once)."""
        token = self._token_of(row)
        if token is None:
            return None
        primary = not row.token_secret
        budget = self._budget(int(row.telegram_id))
        bot = AiogramBot(token, session=self.session, default=BOT_DEFAULTS)
        secret = self.settings.webhook_secret if primary else webhook_secret_of(token)
        runtime = BotRuntime(row.id, int(row.telegram_id), row.username, bot, TelegramChatSender(bot), budget,
                             secret, row.token_secret, primary,
                             "" if primary else row.webhook_key)
        self._serve(runtime)
        return runtime

    async def _start_bot(self, runtime: BotRuntime, row: Bot, *, waiting_jobs: bool) -> None:
        """Set it up with Telegram; `waiting_jobs`: it was paused or new here while the outbox ran, so the jobs
        that waited for it run now."""
        try:
            async with self._starting:
                await self._set_up(runtime, row)
            if self._by_tenant.get(runtime.tenant_id) is not runtime:  # paused or given a new token meanwhile
                await self._stop_bot(runtime, leaving=runtime.tenant_id not in self._by_tenant)
            elif waiting_jobs and await outbox.run_waiting_now(row.id):
                self.wake()
        except TelegramUnauthorizedError:  # the session middleware reported it: `_confirm_revoked` pauses it
            await self._stop_bot(runtime, leaving=False)
        except TelegramAPIError as error:  # Telegram unreachable or refusing for now: the next pass tries again
            log.error("bot %s could not be started (%s); trying again at the next look at the bot table", row, error)
            await self._stop_bot(runtime, leaving=False)

    def _serve(self, runtime: BotRuntime) -> None:
        self._by_tenant[runtime.tenant_id] = runtime
        self._by_telegram[runtime.telegram_id] = runtime
        if runtime.webhook_key:
            self._by_webhook_key[runtime.webhook_key] = runtime

    async def _set_up(self, runtime: BotRuntime, row: Bot) -> None:
        """Its command menu, menu button, the staff's commands in its manager chat, and its updates' way in."""
        assert self.dispatcher is not None
        settings, bot = self.settings, runtime.bot
        await set_commands(bot, self.i18n)
        if mini_app := settings.public_address.mini_app_url_of(runtime.tenant_id):  # the app learns its bot from it
            await set_menu_button(bot, mini_app, self.translate(settings.default_locale, OPEN_APP))
        manager_chat = staff.manager_chat(row, settings.default_locale)
        if manager_chat is not None:
            with contextlib.suppress(TelegramAPIError):  # the chat may be gone; /setup in a new one fixes it
                await set_staff_commands(bot, manager_chat.chat_id, self.translate, manager_chat.locale)
        allowed = self.dispatcher.resolve_used_update_types()
        if settings.public_address.webhook_base:
            url = settings.webhook_url if runtime.primary else (
                f"{settings.public_address.webhook_base}{WEBHOOK_PATH}/{runtime.webhook_key}")
            await bot.set_webhook(url, secret_token=runtime.secret, allowed_updates=allowed)
            log.info("Telegram: @%s receives updates by webhook at %s", runtime.username, url)
            return
        await bot.delete_webhook()
        log.info("Telegram: @%s receives updates by long polling", runtime.username)
        runtime.polling = asyncio.create_task(self._poll(runtime, allowed), name=f"polling-{runtime.telegram_id}")

    async def _stop_bot(self, runtime: BotRuntime, *, leaving: bool) -> None:
        """Stop serving it here; `leaving`: it was paused or removed, so Telegram stops sending its updates too."""
        if self._by_tenant.get(runtime.tenant_id) is runtime:
            del self._by_tenant[runtime.tenant_id]
        if self._by_telegram.get(runtime.telegram_id) is runtime:
            del self._by_telegram[runtime.telegram_id]
        if runtime.webhook_key and self._by_webhook_key.get(runtime.webhook_key) is runtime:
            del self._by_webhook_key[runtime.webhook_key]
        if runtime.polling is not None:
            runtime.polling.cancel()
            await asyncio.gather(runtime.polling, return_exceptions=True)
        if leaving:
            with contextlib.suppress(TelegramAPIError):  # a revoked token cannot, and needs not
                await runtime.bot.delete_webhook()
            log.info("Telegram: @%s is no longer served", runtime.username)

    async def _poll(self, runtime: BotRuntime, allowed: list[str]) -> None:
        """Long polling for one bot (development): what it takes goes to the intake as a webhook's update does,
        and Telegram is told to forget it only once it is stored (a crash loses nothing)."""
        offset: int | None = None
        failures = 0
        while True:
            try:
                updates = await runtime.bot.get_updates(offset=offset, timeout=POLL_TIMEOUT, allowed_updates=allowed,
                                                         request_timeout=POLL_TIMEOUT + 10)
                await self._store(runtime, updates)
                failures = 0
            except TelegramUnauthorizedError:
                return  # the session middleware reported it: the bot is being paused
            except Exception as error:  # Telegram or the database away: the same updates come again
                failures += 1
                log.warning("Telegram: @%s getUpdates failed (%s)", runtime.username, error)
                await asyncio.sleep(min(2.0 ** failures, 30.0))
                continue
            if updates:
                offset = updates[-1].update_id + 1

    async def _store(self, runtime: BotRuntime, updates: list[Update]) -> None:
        assert self.intake is not None
        intake = self.intake
        arrivals = []
        for update in updates:
            body = update.model_dump_json(exclude_unset=True, by_alias=True).encode()
            arrivals.append(Arrival(runtime.tenant_id, update.update_id, lane_of(update), body))
        await asyncio.gather(*(intake.append(arrival) for arrival in arrivals))  # one statement

    # --- a token Telegram no longer accepts -------------------------------------------------------------------

    def _unauthorized(self, bot: AiogramBot) -> None:
        """The session middleware got a 401: check it and pause the bot, beside the call that failed."""
        runtime = self._by_telegram.get(bot.id)
        if runtime is None or runtime.bot is not bot:
            return
        task = asyncio.create_task(self._confirm_revoked(runtime), name=f"revoked-{runtime.telegram_id}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _confirm_revoked(self, runtime: BotRuntime) -> None:
        try:
            await runtime.bot.get_me()
            return  # it works after all: one refused call is not a revoked token
        except TelegramUnauthorizedError:
            pass
        except TelegramAPIError:
            return  # Telegram unreachable: nothing is known
        async with self._reconciling:
            await self._stop_bot(runtime, leaving=False)
            await self._revoked(runtime.tenant_id, runtime.sealed)
        if self.bus is not None:
            await self.bus.publish(bots.CHANGED_CHANNEL, {"bots": "changed"})  # the other instances stop it now too

    async def _revoked(self, tenant_id: int, sealed: str) -> None:
        """Pause it (the table says why), and tell the deployment's admins and the bot's own, through another
        bot that still works (the revoked one cannot write to anyone)."""
        row = await Bot.get_or_none(id=tenant_id)
        if row is None or row.state != BotState.ACTIVE or row.token_secret != sealed:
            return  # paused, removed or given a new token meanwhile
        if not sealed:  # BOT_TOKEN's: the settings hold its token, so only a new BOT_TOKEN and a restart fix it
            self._refused[tenant_id] = sealed
            log.error("Telegram refuses BOT_TOKEN (@%s): it is not served until BOT_TOKEN is replaced", row.username)
            return
        await bots.pause(row, bots.TOKEN_REVOKED)
        log.error("Telegram refuses the token of @%s: the bot is paused until it gets a new one", row.username)
        await self._tell_revoked(row)

    async def _tell_revoked(self, row: Bot) -> None:
        messenger_bot = self.primary
        if messenger_bot is None or messenger_bot.tenant_id == row.id:
            return  # no other bot to write with: the log, the audit log and `bots list` say it
        own_admins = [user.telegram_id for user in await User.filter(bot_id=row.id, role=Role.ADMIN)
                      if user.telegram_id is not None]
        recipients = sorted({*self.settings.admin_ids, *own_admins})
        for telegram_id in recipients:
            customer = await conversations.find_customer(messenger_bot.tenant_id, telegram_id)
            language = str(customer.language) if customer is not None else self.settings.default_locale
            html = escape(self.translate(language, TOKEN_REVOKED_NOTICE).format(username=row.username or row.id))
            await outbox.enqueue(messenger_bot.tenant_id, JobKind.ADMIN_NOTICE, {"chat_id": telegram_id, "html": html},
                                 lane=f"admin:{telegram_id}", queue=outbox.MANAGERS)


class TenantMiddleware(BaseMiddleware):
    """Which business an update is for: its bot's. Every handler reads `tenant_id` and `messenger` from here,
    so no update reaches a business's data without its bot (and an update of a bot no longer served is dropped)."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet

    async def __call__(self, handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
                       event: TelegramObject, data: dict[str, Any]) -> Any:
        runtime = self.fleet.serving(data["bot"].id)
        if runtime is None:
            return None
        data["tenant_id"] = runtime.tenant_id
        data["messenger"] = runtime.messenger
        return await handler(event, data)
