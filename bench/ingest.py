"""Webhook ingest benchmark: how many Telegram updates per second are acknowledged and stored.

Four servers, each in its own process, get the same stream of private-chat text updates on
POST /telegram/webhook from this process (the load generator):

- ceiling: a bare aiohttp handler that only parses the Update (aiogram's model) and answers 200;
- echo: a bare aiogram bot (SimpleRequestHandler, one handler awaiting `message.answer`) whose
  Bot talks to a tgsim Simulator (flood limits off) running in a third process;
- sqlite / postgres: Frontdesk itself (`bot.app.create_app`) with OUTBOX_WORKERS=0, so only
  ingest is measured: store the update (issue 20's `telegram_update` row, or before it the message
  and its outbox job), then acknowledge;
- ceiling2 / postgres2 / redis2: two processes of the ceiling, or two Frontdesk instances on one
  PostgreSQL database (redis2: with REDIS_URL too, as several instances are deployed), the
  generator's connections split between them, as a load balancer would.

Like Telegram, the generator keeps one update in flight per chat, retries non-2xx answers, and
uses a fixed number of keep-alive connections. Afterwards the database is read to check that every
sent update is stored exactly once: rows of `telegram_update` once the webhook writes that table,
else the `message` table.

Two more modes put Frontdesk to work as deployed, in one process with its workers on
(sqlite+workers, postgres+workers), beside the echo bot. Every update is a `/start`, which Frontdesk
answers from a handler alone, so what is measured is ingest + dispatch + one sendMessage, the same
work as the echo bot's; an AI answer would cost about 30 ms of CPU each, and 1,000 of them a second
cannot fit on two cores. Telegram's 30 messages a second per bot is lifted (tgsim's flood limits
off, TELEGRAM_MESSAGES_PER_SECOND raised, which Settings allows against a test server).

- sustained (--sustained): the closed loop above, and the rate at which updates are fully handled,
  i.e. their reply reached tgsim;
- end to end (--e2e-rates): an open loop posting updates at a fixed rate (one in flight per chat,
  each chat writing at most every few seconds), and the time from posting an update to its reply's
  sendMessage at tgsim (tgsim's call log stamps each call with the same machine clock).

--before DIR adds `@before` twins of the Frontdesk targets: the same server with DIR's code (another
checkout, run with this venv), interleaved with this checkout's, each migrating its own database.

`bash bench/run.sh` (or `make bench`) starts a throwaway PostgreSQL and runs this; results go to
stdout and into docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import logging
import math
import multiprocessing
import os
import platform
import pstats
import resource
import shlex
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

from common import DOC_PATH, ROOT, marks, write_section

TOKEN = "7000000001:BENCH-frontdesk-token"
BARE_SECRET = "bench-secret"
WEBHOOK_PATH = "/telegram/webhook"
BEGIN_MARK, END_MARK = marks("ingest.py")
TARGETS = ("ceiling", "echo", "sqlite", "postgres", "ceiling2", "postgres2", "redis2")
FLOW_TARGETS = ("echo", "sqlite+workers", "postgres+workers")  # the sustained and end-to-end modes
LABELS = {"ceiling": "ceiling: aiohttp + Update.model_validate", "echo": "aiogram echo bot (tgsim)",
          "sqlite": "Frontdesk, SQLite", "postgres": "Frontdesk, PostgreSQL",
          "ceiling2": "ceiling, two processes", "postgres2": "Frontdesk, PostgreSQL, two instances",
          "redis2": "Frontdesk, PostgreSQL + Redis, two instances",
          "sqlite+workers": "Frontdesk, SQLite, workers on", "postgres+workers": "Frontdesk, PostgreSQL, workers on"}
# Targets served by two processes, and what each of the two runs.
PAIRS = {"ceiling2": "ceiling", "postgres2": "postgres", "redis2": "postgres"}
POSTGRES_TARGETS = frozenset({"postgres", "postgres2", "redis2", "postgres+workers"})
FRONTDESK_TARGETS = frozenset({"sqlite", "sqlite+workers", *POSTGRES_TARGETS})
BEFORE = "@before"  # a Frontdesk target with this suffix runs --before's checkout
FIRST_USER_ID = 610_000_000
WARMUP_USER_OFFSET = 100_000
SUSTAINED_USER_OFFSET = 200_000
E2E_USER_OFFSET = 300_000
MAX_ATTEMPTS = 5  # Telegram retries a non-2xx answer; so do we, quickly
RETRY_DELAY = 0.05
REQUEST_SECONDS = 30.0
CHILD_START_SECONDS = 120.0
START_COMMAND = "/start"  # answered by a handler alone, no AI: see the module's docstring
# TELEGRAM_MESSAGES_PER_SECOND with workers on: far past any rate measured here (tgsim's flood limits are off).
TEST_SERVER_PER_SECOND = 1_000_000
E2E_CHAT_SECONDS = 3.0  # in the end-to-end mode each chat writes at most once in this long
WARMUP_SECONDS = 300.0  # the most a warm-up may take (every customer's first /start)
DRAIN_SECONDS = 120.0  # the most we wait for the replies to a warm-up or a sustained run
INTAKE_TABLE = "telegram_update"  # issue 20: where the webhook stores an update before any worker sees it

FIRST_NAMES = ("Ann", "Bobur", "Dilnoza", "Ivan", "Maria", "Aziz", "Olga", "Tom", "Sevara", "Pedro")
LAST_NAMES = ("", "Karimova", "Petrov", "Smith", "", "Nazarov", "Garcia", "")
LANGUAGES = ("en", "ru", "uz", "en", "de", None)
TEXTS = (
    "Hi! Are you open on Sunday?",
    "How much is a large cappuccino with oat milk?",
    "Do you deliver to the city centre, and how long does it take?",
    "Здравствуйте! Можно забронировать столик на шестерых на пятницу вечером?",
    "Salom, sizlarda vegan desertlar bormi?",
    "I ordered a flat white 20 minutes ago and it still hasn't arrived. Order #4471.",
    "thanks!",
    "Can I pay by card at the counter or only in the app?",
    "What beans do you use for espresso? Is it a single origin?",
    "ok",
)


# --- the targets -------------------------------------------------------------------------------------


def base_of(target: str) -> str:
    return target.removesuffix(BEFORE)


def is_before(target: str) -> bool:
    return target.endswith(BEFORE)


def label(target: str) -> str:
    return LABELS[base_of(target)] + (" (before)" if is_before(target) else "")


def rank(target: str) -> tuple[int, bool]:
    """Where a target's rows go: in TARGETS' order, then FLOW_TARGETS', each @before twin after its target."""
    order = (*TARGETS, *FLOW_TARGETS)
    return order.index(base_of(target)), is_before(target)


def with_before(targets: Sequence[str], before: Path | None) -> list[str]:
    """Each Frontdesk target followed by its @before twin when --before names a checkout."""
    listed: list[str] = []
    for target in targets:
        listed.append(target)
        if before is not None and target in FRONTDESK_TARGETS:
            listed.append(target + BEFORE)
    return list(dict.fromkeys(listed))  # a twin named in the list too comes once


# --- the updates ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    update_id: int
    chat_id: int
    body: bytes


def make_user(user_id: int) -> dict[str, Any]:
    """A Telegram `User` as it appears in `message.from`; fields vary with the id."""
    user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": FIRST_NAMES[user_id % len(FIRST_NAMES)]}
    if last := LAST_NAMES[user_id % len(LAST_NAMES)]:
        user["last_name"] = last
    if user_id % 3:
        user["username"] = f"customer_{user_id}"
    if language := LANGUAGES[user_id % len(LANGUAGES)]:
        user["language_code"] = language
    return user


def make_update(update_id: int, user: dict[str, Any], command: str = "") -> bytes:
    """A private-chat text message; with `command`, that command alone, as Telegram marks it up."""
    chat = {key: user[key] for key in ("id", "first_name", "last_name", "username") if key in user}
    message: dict[str, Any] = {"message_id": update_id, "from": user, "chat": {**chat, "type": "private"},
               "date": int(time.time()), "text": command or TEXTS[update_id % len(TEXTS)]}
    if command:
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
    return json.dumps({"update_id": update_id, "message": message}, ensure_ascii=False).encode()


def user_ids(count: int, offset: int = 0) -> list[int]:
    return [FIRST_USER_ID + offset + index for index in range(count)]


def make_deliveries(first_update_id: int, count: int, users: Sequence[int], command: str = "") -> list[Delivery]:
    """Updates in id order, the users taking turns (so each writes count / len(users) times)."""
    profiles = [make_user(user_id) for user_id in users]
    deliveries = []
    for index in range(count):
        profile = profiles[index % len(profiles)]
        update_id = first_update_id + index
        deliveries.append(Delivery(update_id, profile["id"], make_update(update_id, profile, command)))
    return deliveries


# --- the load generator: a minimal keep-alive HTTP/1.1 client ------------------------------------


class HttpConnection:
    """One keep-alive connection; far cheaper per request than a full client, so that the
    generator is not what limits the ceiling."""

    def __init__(self, port: int, secret: str) -> None:
        self.port = port
        self.head = (f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                     f"Content-Type: application/json\r\nX-Telegram-Bot-Api-Secret-Token: {secret}\r\n"
                     "Content-Length: ").encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes) -> int:
        """The response's status; 0 when the connection failed."""
        try:
            async with asyncio.timeout(REQUEST_SECONDS):
                if self.reader is None or self.writer is None:
                    self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
                self.writer.write(self.head + str(len(body)).encode() + b"\r\n\r\n" + body)
                await self.writer.drain()
                return await self._response(self.reader)
        except (OSError, asyncio.IncompleteReadError, ValueError):  # TimeoutError is an OSError
            self.close()
            return 0

    async def _response(self, reader: asyncio.StreamReader) -> int:
        head = (await reader.readuntil(b"\r\n\r\n")).lower()
        status = int(head[9:12])
        if b"transfer-encoding: chunked" in head:
            while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
                await reader.readexactly(size + 2)
            await reader.readuntil(b"\r\n")
        else:
            length = head.partition(b"\r\ncontent-length:")[2].partition(b"\r\n")[0]
            await reader.readexactly(int(length or 0))
        if b"connection: close" in head:
            self.close()
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


@dataclass
class Load:
    sent: int = 0
    acked: int = 0
    errors: int = 0  # non-2xx answers and failed connections, each retried
    lost: int = 0  # still not acknowledged after MAX_ATTEMPTS
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds, of acknowledged attempts
    sent_ids: list[int] = field(default_factory=list)
    started_at: float = 0.0  # time.time(), the clock tgsim stamps its calls with


class Feed:
    """Hands out updates in order until the deadline; one update in flight per chat, like Telegram."""

    def __init__(self, deliveries: Sequence[Delivery], deadline: float) -> None:
        self._items = iter(deliveries)
        self._deadline = deadline
        self._chats: dict[int, asyncio.Lock] = {}

    def next(self) -> Delivery | None:
        if time.perf_counter() > self._deadline:
            return None
        return next(self._items, None)

    def chat_lock(self, chat_id: int) -> asyncio.Lock:
        return self._chats.setdefault(chat_id, asyncio.Lock())


async def deliver(connection: HttpConnection, delivery: Delivery, load: Load) -> None:
    load.sent += 1
    load.sent_ids.append(delivery.update_id)
    for _ in range(MAX_ATTEMPTS):
        started = time.perf_counter()
        status = await connection.post(delivery.body)
        if 200 <= status < 300:
            load.latencies.append(time.perf_counter() - started)
            load.acked += 1
            return
        load.errors += 1
        await asyncio.sleep(RETRY_DELAY)
    load.lost += 1


async def worker(feed: Feed, connection: HttpConnection, load: Load) -> None:
    try:
        while (delivery := feed.next()) is not None:
            async with feed.chat_lock(delivery.chat_id):  # taken at once: FIFO per chat
                await deliver(connection, delivery, load)
    finally:
        connection.close()


async def drive(ports: Sequence[int], secret: str, deliveries: Sequence[Delivery], concurrency: int,
                limit_seconds: float) -> Load:
    """The connections take turns between the servers' ports, as a load balancer's would."""
    load = Load(started_at=time.time())
    started = time.perf_counter()
    feed = Feed(deliveries, started + limit_seconds)
    await asyncio.gather(*(worker(feed, HttpConnection(ports[index % len(ports)], secret), load)
                           for index in range(concurrency)))
    load.seconds = time.perf_counter() - started
    return load


# --- the end-to-end mode's generator: an open loop ------------------------------------------------


@dataclass
class Post:
    """One update of the end-to-end window and its times (time.time(), as tgsim stamps its calls)."""

    delivery: Delivery
    due: float  # when the generator means to post it: the offered rate's schedule
    posted: float | None = None  # when it went out: its chat's previous update answered and a connection free
    acked: float | None = None  # the webhook's 2xx
    replied: float | None = None  # its reply's sendMessage at tgsim
    retried: int = 0


class Pool:
    """Keep-alive connections opened as they are needed, at most `size` at once: Telegram opens at most
    setWebhook's max_connections to a webhook, whatever is waiting."""

    def __init__(self, port: int, secret: str, size: int) -> None:
        self.port, self.secret = port, secret
        self.slots = asyncio.Semaphore(size)
        self.idle: list[HttpConnection] = []
        self.opened = 0  # the most in use at once

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[HttpConnection]:
        async with self.slots:
            if not self.idle:
                self.idle.append(HttpConnection(self.port, self.secret))
                self.opened += 1
            connection = self.idle.pop()
            try:
                yield connection
            except BaseException:  # cancelled half-way: the rest of that response is nobody's to read
                connection.close()
                raise
            finally:
                self.idle.append(connection)

    def close(self) -> None:
        for connection in self.idle:
            connection.close()


async def send_post(post: Post, pool: Pool, chat: asyncio.Lock) -> None:
    async with chat, pool.connection() as connection:  # the chat's turn first, as Telegram queues per chat
        post.posted = time.time()
        for _ in range(MAX_ATTEMPTS):
            if 200 <= await connection.post(post.delivery.body) < 300:
                post.acked = time.time()
                return
            post.retried += 1
            await asyncio.sleep(RETRY_DELAY)


async def open_loop(port: int, secret: str, posts: Sequence[Post], connections: int, window_end: float,
                    give_up: float) -> int:
    """Posts each update when it is due, not when the one before was answered. At the window's end the
    updates still waiting for their chat or a connection are dropped (not posted), and at `give_up` the
    requests still unanswered. Returns the most connections in use at once."""
    pool = Pool(port, secret, connections)
    chats: dict[int, asyncio.Lock] = {}
    tasks: list[asyncio.Task[None]] = []
    for post in posts:
        if (delay := post.due - time.time()) > 0:
            await asyncio.sleep(delay)
        chat = chats.setdefault(post.delivery.chat_id, asyncio.Lock())
        tasks.append(asyncio.create_task(send_post(post, pool, chat)))
    await asyncio.sleep(max(0.0, window_end - time.time()))
    for task, post in zip(tasks, posts, strict=True):
        if post.posted is None:
            task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=max(0.0, give_up - time.time()))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    pool.close()
    return pool.opened


# --- the processes under test --------------------------------------------------------------------


def bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def cpu_seconds() -> float:
    """This process's CPU time, every thread included (aiosqlite works in a thread of its own)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def ceiling_app() -> Any:
    from aiogram.types import Update
    from aiohttp import web

    async def parse_only(request: web.Request) -> web.Response:
        Update.model_validate(await request.json())
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post(WEBHOOK_PATH, parse_only)
    return app


def echo_app(sim_url: str) -> Any:
    from aiogram import Bot, Dispatcher
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer
    from aiogram.types import Message
    from aiogram.webhook.aiohttp_server import SimpleRequestHandler
    from aiohttp import web

    bot = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(sim_url)))
    dispatcher = Dispatcher()

    async def echo(message: Message) -> None:
        await message.answer(message.text or "?")

    async def close_session(_: web.Application) -> None:
        await bot.session.close()

    dispatcher.message.register(echo)
    app = web.Application()
    # Not aiogram's default (answer 200 at once, handle in a task): 200 once the answer was sent,
    # as Frontdesk answers once the message is stored, so that both count finished work.
    SimpleRequestHandler(dispatcher, bot, handle_in_background=False,
                         secret_token=BARE_SECRET).register(app, path=WEBHOOK_PATH)
    app.on_cleanup.append(close_session)
    return app


def frontdesk_app(sim_url: str, database_url: str, port: int, redis_url: str = "",
                  redis_prefix: str = "", workers: bool = False) -> tuple[Any, str]:
    """Frontdesk receiving only (OUTBOX_WORKERS=0), or with `workers` as deployed in one process: its
    default workers, and a send budget past Telegram's 30 a second (Settings allows that against a
    test server; tgsim's flood limits are off)."""
    from bot.app import create_app
    from bot.settings import Settings

    env = {"BOT_TOKEN": TOKEN, "TELEGRAM_API_BASE": sim_url, "WEBHOOK_BASE_URL": f"http://127.0.0.1:{port}",
           "HOST": "127.0.0.1", "PORT": str(port), "DATABASE_URL": database_url, "OUTBOX_WORKERS": "0",
           "AI_BASE_URL": "", "AI_MODEL": "", "REDIS_URL": redis_url, "REDIS_PREFIX": redis_prefix or "frontdesk",
           "CUSTOMER_RATE_BURST": "1000000", "LOG_LEVEL": "WARNING"}
    if workers:
        del env["OUTBOX_WORKERS"]
        env |= {"APP_ENV": "development", "TELEGRAM_MESSAGES_PER_SECOND": str(TEST_SERVER_PER_SECOND)}
    settings = Settings(_env_file=None, **cast(dict[str, Any], env))
    return create_app(settings), settings.webhook_secret


def build_app(target: str, options: dict[str, str], port: int) -> tuple[Any, str]:
    if target == "ceiling":
        return ceiling_app(), BARE_SECRET
    if target == "echo":
        return echo_app(options["sim_url"]), BARE_SECRET
    return frontdesk_app(options["sim_url"], options["database_url"], port, options.get("redis_url", ""),
                         options.get("redis_prefix", ""), bool(options.get("workers")))


class Window:
    """The measured window, as the server sees it: its CPU time and, optionally, a profile."""

    def __init__(self, profile_path: str) -> None:
        self.profile_path = profile_path
        self.profiler = cProfile.Profile() if profile_path else None
        self.cpu_at_start = (0.0, 0.0)

    def start(self) -> None:
        self.cpu_at_start = (cpu_seconds(), time.thread_time())
        if self.profiler is not None:
            self.profiler.enable()

    def stop(self) -> tuple[float, float]:
        """CPU seconds of the whole process and of the event loop's thread alone."""
        if self.profiler is not None:
            self.profiler.disable()
            self.profiler.dump_stats(self.profile_path)
        return cpu_seconds() - self.cpu_at_start[0], time.thread_time() - self.cpu_at_start[1]


async def answer_commands(conn: Connection, window: Window) -> None:
    loop = asyncio.get_running_loop()
    while (command := await loop.run_in_executor(None, conn.recv)) != "quit":
        if command == "start":
            window.start()
            conn.send("started")
        elif command == "stop":
            conn.send(window.stop())


async def serve(target: str, options: dict[str, str], conn: Connection) -> None:
    from aiohttp import web

    sock = bound_socket()
    app, secret = build_app(target, options, sock.getsockname()[1])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()  # Frontdesk: migrations, getMe, setMyCommands, setWebhook
    try:
        await web.SockSite(runner, sock).start()
        frontdesk = sys.modules.get("bot")  # which checkout's code this is: the parent checks
        conn.send((sock.getsockname()[1], secret, getattr(frontdesk, "__file__", "") or ""))
        await answer_commands(conn, Window(options.get("profile", "")))
    finally:
        await runner.cleanup()


def server_process(target: str, options: dict[str, str], conn: Connection) -> None:
    if checkout := options.get("checkout"):  # a fresh interpreter (spawned): import that checkout's code
        sys.path.insert(0, checkout)
        os.chdir(checkout)
    logging.basicConfig(level=logging.ERROR, format=f"[{target} server] %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(serve(target, options, conn))
    except BaseException:
        logging.exception("the server failed")
        # Now, not at interpreter exit: a spawned process would wait there for threads the app left
        # running (a database driver's), and the parent for its answer.
        os._exit(1)
    conn.send("bye")


class Replies:
    """The bot's successful sendMessage calls as tgsim logged them: (chat id, time.time() of the call).
    Read from the log's records directly, each once: `sim.calls()` copies the whole log every time."""

    def __init__(self, sim: Any) -> None:
        self.sim = sim
        self.seen = 0
        self.replies: list[tuple[int, float]] = []

    def scan(self) -> list[tuple[int, float]]:
        calls = self.sim.recorder.calls
        self.replies += [(int(call.params["chat_id"]), call.time) for call in calls[self.seen:]
                         if call.ok and call.method == "sendMessage"]
        self.seen = len(calls)
        return self.replies


async def simulate(users: Sequence[int], conn: Connection) -> None:
    from tgsim import FloodLimits, Simulator

    async with Simulator(token=TOKEN, port=0, flood=FloodLimits(enabled=False),
                         bot_username="frontdesk_bench_bot", bot_name="Frontdesk") as sim:
        for user_id in users:
            profile = make_user(user_id)
            sim.create_user(profile["first_name"], id=user_id, username=profile.get("username"),
                            last_name=profile.get("last_name"), language_code=profile.get("language_code"))
        conn.send(sim.base_url)
        replies = Replies(sim)
        loop = asyncio.get_running_loop()
        while (command := await loop.run_in_executor(None, conn.recv)) != "quit":
            if command == "answers":
                conn.send(len(replies.scan()))
            elif command == "replies":
                conn.send(replies.scan())
            elif command == "cpu":
                conn.send(cpu_seconds())


def simulator_process(users: Sequence[int], conn: Connection) -> None:
    asyncio.run(simulate(users, conn))
    conn.send("bye")


# Importing aiogram.types takes seconds (it builds hundreds of pydantic models): a fork server
# imports it once, and every server process is forked from it, its own interpreter and event loop.
PRELOAD = ["aiogram.types", "aiogram.webhook.aiohttp_server", "bot.app", "tgsim"]


def process_context(fresh: bool = False) -> multiprocessing.context.ForkServerContext | \
        multiprocessing.context.SpawnContext:
    """The fork server's; `fresh`: a new interpreter that imports everything itself (--before's
    servers, and this checkout's beside them, so that both start alike)."""
    if fresh:
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


class Child:
    """A process of its own that answers commands over a pipe."""

    def __init__(self, target: Callable[..., None], *args: Any, fresh: bool = False) -> None:
        context = process_context(fresh)
        self.conn, child_end = context.Pipe()
        self.process = context.Process(target=target, args=(*args, child_end), daemon=True)
        self.process.start()
        child_end.close()
        try:
            self.ready = self.receive(CHILD_START_SECONDS)
        except BaseException:
            self.process.kill()
            self.process.join(5)
            self.conn.close()
            raise

    def receive(self, seconds: float = 60.0) -> Any:
        if not self.conn.poll(seconds):
            raise TimeoutError(f"{self.process.name} did not answer within {seconds:.0f} s")
        try:
            return self.conn.recv()
        except EOFError:
            raise RuntimeError(f"{self.process.name} ended (see its errors above)") from None

    def ask(self, command: str) -> Any:
        self.conn.send(command)
        return self.receive()

    def close(self) -> None:
        if self.conn.closed:
            return
        with contextlib.suppress(OSError, EOFError, TimeoutError, RuntimeError):
            self.conn.send("quit")
            self.receive(30.0)
        self.process.join(10)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)
        self.conn.close()


# --- databases ---------------------------------------------------------------------------------


@dataclass
class Database:
    url: str
    admin_url: str = ""  # PostgreSQL: where to drop it from

    @property
    def name(self) -> str:
        return urlsplit(self.url).path.lstrip("/")


async def pg_execute(url: str, sql: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(url)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@contextlib.contextmanager
def scratch_database(profile: str, work: str, prefix: str) -> Iterator[str]:
    """A database of its own for one run: a SQLite file in `work`, or a PostgreSQL database made on
    BENCH_POSTGRES_URL's server and dropped afterwards. Yields its URL."""
    if profile == "sqlite":
        yield f"sqlite://{work}/{prefix}.sqlite3"
        return
    admin = os.environ.get("BENCH_POSTGRES_URL", "")
    if not admin:
        raise SystemExit("BENCH_POSTGRES_URL is not set (bash bench/run.sh sets it)")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    asyncio.run(pg_execute(admin, f'CREATE DATABASE "{name}"'))
    try:
        yield urlunsplit(urlsplit(admin)._replace(path=f"/{name}"))
    finally:
        asyncio.run(pg_execute(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def pg_fetch(url: str, sql: str) -> list[tuple[Any, ...]]:
    import asyncpg

    connection = await asyncpg.connect(url)
    try:
        return [tuple(row) for row in await connection.fetch(sql)]
    finally:
        await connection.close()


def new_database(target: str, workdir: Path, postgres_url: str) -> Database | None:
    """An empty database; Frontdesk applies its migrations at start, before the measurement."""
    tag = uuid.uuid4().hex[:10]
    if base_of(target) in POSTGRES_TARGETS:
        name = f"frontdesk_bench_{tag}"
        asyncio.run(pg_execute(postgres_url, f'CREATE DATABASE "{name}"'))
        return Database(urlunsplit(urlsplit(postgres_url)._replace(path=f"/{name}")), postgres_url)
    if base_of(target) in FRONTDESK_TARGETS:
        return Database(f"sqlite://{workdir / f'frontdesk-{tag}.sqlite3'}")
    return None


def query(database: Database, sql: str) -> list[tuple[Any, ...]]:
    if database.admin_url:
        return asyncio.run(pg_fetch(database.url, sql))
    with contextlib.closing(sqlite3.connect(database.url.removeprefix("sqlite://"))) as connection:
        return connection.execute(sql).fetchall()


def drop_database(database: Database) -> None:
    if database.admin_url:
        asyncio.run(pg_execute(database.admin_url, f'DROP DATABASE IF EXISTS "{database.name}" WITH (FORCE)'))
        return
    path = database.url.removeprefix("sqlite://")
    for suffix in ("", "-wal", "-shm"):
        Path(path + suffix).unlink(missing_ok=True)


def has_table(database: Database, name: str) -> bool:
    sql = (f"SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = '{name}'"
           if database.admin_url else f"SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '{name}'")
    return bool(query(database, sql))


@dataclass
class Stored:
    table: str  # where the acknowledged updates were counted
    exactly_once: int  # sent updates stored exactly once
    duplicates: int  # extra rows for updates stored more than once
    strangers: int  # rows for updates that were never sent
    jobs: int | None  # outbox jobs (counted beside `message` only: there each message has its job)
    rows: int  # rows counted


def stored_keys(database: Database) -> tuple[str, Counter[str]]:
    """The acknowledged updates, keyed `tg:<update_id>` as message.source_key is. Since issue 20 the
    webhook stores one row of `telegram_update` per update and the message may not exist yet (nothing
    works on a receive-only instance). Before that, the customer's message. The table is used only
    once it has rows: commits in between create it before the webhook writes it."""
    if has_table(database, INTAKE_TABLE):
        rows = query(database, f"SELECT update_id FROM {INTAKE_TABLE}")
        if rows:
            return INTAKE_TABLE, Counter(f"tg:{update_id}" for (update_id,) in rows)
    rows = query(database, "SELECT source_key FROM message WHERE author_kind = 'customer'")
    return "message", Counter(str(key) for (key,) in rows)


def check_stored(database: Database, sent_ids: Sequence[int], measured_ids: Sequence[int]) -> Stored:
    table, keys = stored_keys(database)
    expected = {f"tg:{update_id}" for update_id in sent_ids}
    jobs = int(query(database, "SELECT count(*) FROM outbox_job")[0][0]) if table == "message" else None
    return Stored(
        table=table,
        exactly_once=sum(1 for update_id in measured_ids if keys[f"tg:{update_id}"] == 1),
        duplicates=sum(count - 1 for count in keys.values() if count > 1),
        strangers=sum(count for key, count in keys.items() if key not in expected),
        jobs=jobs, rows=sum(keys.values()))


# --- one run ------------------------------------------------------------------------------------


@dataclass
class Options:
    updates: int
    warmup: int
    users: int
    runs: int
    concurrency: list[int]
    targets: list[str]
    limit_seconds: float
    quiet_seconds: float
    postgres_url: str
    profile: list[str]
    doc: Path | None
    workdir: Path
    code: str = ""  # which Frontdesk was measured: the commit, and whether the tree had changes
    redis_url: str = ""
    sustained: list[str] = field(default_factory=list)  # the sustained mode's targets
    sustained_users: int = 1000
    sustained_connections: int = 64
    e2e_targets: list[str] = field(default_factory=list)
    e2e_rates: list[float] = field(default_factory=list)  # updates a second; none: no end-to-end mode
    e2e_seconds: float = 10.0
    e2e_grace: float = 5.0
    e2e_users: int = 3000  # at least; more at rates where a chat would write more often than E2E_CHAT_SECONDS
    e2e_connections: int = 100
    before: Path | None = None  # another checkout, for the @before targets
    before_code: str = ""
    announced: set[str] = field(default_factory=set)  # targets whose imported code was printed

    @property
    def all_targets(self) -> list[str]:
        return list(dict.fromkeys([*self.targets, *self.sustained, *self.e2e_targets]))


@dataclass
class Usage:
    """What the measured window cost: CPU seconds of the server and of its event-loop thread alone,
    and the share of all cores busy (the generator and, for PostgreSQL, the database included)."""

    server_cpu: float = 0.0
    loop_cpu: float = 0.0
    machine_busy: float = 0.0
    generator_cpu: float = 0.0  # CPU seconds of the load generator (this process)
    background: float = 0.0  # share of all cores busy just before the run, with nothing of ours running
    sim_cpu: float = 0.0  # CPU seconds of tgsim's process


def percentile_ms(seconds: Sequence[float], share: float) -> float:
    ordered = sorted(seconds)
    return 1000 * ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


@dataclass
class RunResult:
    target: str
    concurrency: int
    load: Load
    stored: int | None  # measured updates stored exactly once (echo: answered)
    problems: list[str]
    usage: Usage
    stored_in: str = ""  # the table they were counted in

    @property
    def rate(self) -> float:
        return self.load.acked / self.load.seconds if self.load.seconds else 0.0

    def percentile(self, share: float) -> float:
        return percentile_ms(self.load.latencies, share)


def busy_jiffies() -> tuple[int, int]:
    """(busy, total) CPU jiffies of the whole machine, from /proc/stat."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def busy_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    return (after[0] - before[0]) / max(1, after[1] - before[1])


def wait_for_quiet(limit_seconds: float, threshold: float = 0.1) -> float:
    """Wait (up to a limit) until other work on the machine is below `threshold` of its cores;
    returns the share last seen, which the report shows."""
    deadline = time.monotonic() + limit_seconds
    while True:
        before = busy_jiffies()
        time.sleep(0.5)
        share = busy_share(before, busy_jiffies())
        if share < threshold or time.monotonic() > deadline:
            return share


@dataclass
class Plan:
    warmup: list[Delivery]
    measured: list[Delivery]

    @classmethod
    def make(cls, options: Options) -> Plan:
        warmup_users = user_ids(max(1, options.users // 4), WARMUP_USER_OFFSET)
        return cls(make_deliveries(1, options.warmup, warmup_users),
                   make_deliveries(options.warmup + 1, options.updates, user_ids(options.users)))

    @property
    def users(self) -> list[int]:
        return sorted({delivery.chat_id for delivery in self.warmup + self.measured})


class Meter:
    """The cost of a measured window: the servers' CPU (each measures its own), tgsim's, this process's
    and the share of the machine busy."""

    def __init__(self, servers: Sequence[Child], simulator: Child | None) -> None:
        self.servers, self.simulator = servers, simulator
        self.busy, self.generator, self.sim = (0, 0), 0.0, 0.0

    def start(self) -> None:
        for server in self.servers:
            server.ask("start")
        self.sim = float(self.simulator.ask("cpu")) if self.simulator else 0.0
        self.busy, self.generator = busy_jiffies(), cpu_seconds()

    def stop(self, background: float) -> Usage:
        """With two servers, their CPU is summed and their loops' busy time averaged."""
        busy, generator = busy_share(self.busy, busy_jiffies()), cpu_seconds() - self.generator
        sim = float(self.simulator.ask("cpu")) - self.sim if self.simulator else 0.0
        spent = [server.ask("stop") for server in self.servers]
        return Usage(sum(cpu for cpu, _ in spent), sum(loop for _, loop in spent) / len(spent), busy, generator,
                     background, sim)


def measure(servers: Sequence[Child], simulator: Child | None, plan: Plan, concurrency: int,
            options: Options) -> tuple[Load, Load, Usage]:
    """Warm up, then the measured window: (warm-up load, measured load, what it cost)."""
    ports, secret = [server.ready[0] for server in servers], servers[0].ready[1]
    warm = asyncio.run(drive(ports, secret, plan.warmup, concurrency, options.limit_seconds))
    background = wait_for_quiet(options.quiet_seconds)
    meter = Meter(servers, simulator)
    meter.start()
    load = asyncio.run(drive(ports, secret, plan.measured, concurrency, options.limit_seconds))
    return warm, load, meter.stop(background)


def verify(target: str, database: Database | None, warm: Load, load: Load,
           answers: int) -> tuple[int | None, list[str], str]:
    """How many measured updates had their effect exactly once, what went wrong, if anything, and
    the table they were counted in."""
    problems = [f"{load.lost + warm.lost} updates never acknowledged"] if load.lost + warm.lost else []
    if database is None and base_of(target) != "echo":
        return None, problems, ""
    if database is None:
        stored, table = answers - warm.acked, ""
    else:
        rows = check_stored(database, warm.sent_ids + load.sent_ids, load.sent_ids)
        stored, table = rows.exactly_once, rows.table
        if rows.duplicates or rows.strangers:
            problems.append(f"{rows.duplicates} duplicate and {rows.strangers} unexpected rows in {rows.table}")
        if rows.jobs is not None and rows.jobs != rows.rows:
            problems.append(f"{rows.jobs} outbox jobs for {rows.rows} messages")
    if stored != load.sent:
        problems.append(f"{stored} of {load.sent} sent updates "
                        f"{'answered' if database is None else f'stored in {table}'} once")
    return stored, problems, table


@dataclass
class Started:
    """What one run started: a target's server process(es), tgsim when it talks to Telegram, its database."""

    target: str
    servers: list[Child]
    simulator: Child | None
    database: Database | None

    @property
    def ports(self) -> list[int]:
        return [int(server.ready[0]) for server in self.servers]

    @property
    def secret(self) -> str:
        return str(self.servers[0].ready[1])

    @property
    def sim(self) -> Child:
        assert self.simulator is not None, "only the ceiling runs without tgsim"
        return self.simulator


def checkout_of(target: str, options: Options) -> str:
    """The code a Frontdesk server imports, in a fresh interpreter, when --before is given; "" (the fork
    server, which imported this checkout already) otherwise."""
    if options.before is None or base_of(target) not in FRONTDESK_TARGETS:
        return ""
    return str(options.before if is_before(target) else ROOT)


def check_code(run: Started, options: Options) -> None:
    """Each Frontdesk server imported the checkout its target names (printed once per target)."""
    if base_of(run.target) not in FRONTDESK_TARGETS:
        return
    expected = Path(checkout_of(run.target, options) or ROOT)
    for server in run.servers:
        imported = Path(server.ready[2])
        if not imported.is_relative_to(expected):
            raise RuntimeError(f"{run.target}'s server imported {imported}, not the code in {expected}")
    if run.target not in options.announced:
        options.announced.add(run.target)
        print(f"{run.target}: the server runs {run.servers[0].ready[2]}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def started(target: str, options: Options, users: Sequence[int], profile_path: str = "") -> Iterator[Started]:
    """Starts a target on an empty database, with tgsim (knowing `users`) unless it is a ceiling; stops
    everything and drops the database afterwards."""
    base = base_of(target)
    run = Started(target, [], None, new_database(target, options.workdir, options.postgres_url))
    try:
        if PAIRS.get(base, base) != "ceiling":
            run.simulator = Child(simulator_process, users)
        server_options = {"sim_url": run.simulator.ready if run.simulator else "", "profile": profile_path,
                          "database_url": run.database.url if run.database else "",
                          "workers": "1" if base.endswith("+workers") else "", "checkout": checkout_of(target, options)}
        if base == "redis2":  # update ids repeat from run to run: a fresh namespace for de-duplication
            server_options |= {"redis_url": options.redis_url, "redis_prefix": f"bench-{uuid.uuid4().hex[:10]}"}
        for _ in range(2 if base in PAIRS else 1):  # one after the other: the first one migrates
            run.servers.append(Child(server_process, PAIRS.get(base, base) + target.removeprefix(base),
                                     server_options, fresh=bool(server_options["checkout"])))
        check_code(run, options)
        yield run
    finally:
        for child in [*run.servers, run.simulator]:
            if child is not None:
                child.close()
        if run.database is not None:
            drop_database(run.database)


def run_once(target: str, concurrency: int, options: Options, profile_path: str = "") -> RunResult:
    plan = Plan.make(options)
    with started(target, options, plan.users, profile_path) as run:
        warm, load, usage = measure(run.servers, run.simulator, plan, concurrency, options)
        answers = int(run.sim.ask("answers")) if base_of(target) == "echo" else 0
        for server in run.servers:
            server.close()  # every transaction is over before the rows are counted
        stored, problems, table = verify(target, run.database, warm, load, answers)
    return RunResult(target, concurrency, load, stored, problems, usage, table)


# --- the sustained and end-to-end modes: workers on, every update answered ------------------------


def wait_for_answers(simulator: Child, count: int, seconds: float) -> int:
    """Waits (up to `seconds`) until tgsim has seen `count` replies; returns how many it has."""
    deadline = time.monotonic() + seconds
    while (answers := int(simulator.ask("answers"))) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return answers


def warm_up(run: Started, deliveries: Sequence[Delivery], concurrency: int) -> list[str]:
    """Every customer's first /start (registered, and no longer a first contact), all answered before
    the measurement starts: with workers, acknowledged is not yet answered."""
    warm = asyncio.run(drive(run.ports, run.secret, deliveries, concurrency, WARMUP_SECONDS))
    answered = wait_for_answers(run.sim, warm.acked, DRAIN_SECONDS)
    problems = []
    if warm.acked < len(deliveries):
        problems.append(f"warm-up: {len(deliveries) - warm.acked} of {len(deliveries)} updates not acknowledged")
    if answered != warm.acked:
        problems.append(f"warm-up: {answered} replies to {warm.acked} acknowledged updates")
    return problems


@dataclass
class SustainedResult:
    target: str
    concurrency: int
    load: Load
    replies: list[float]  # when the replies to the measured updates reached tgsim
    problems: list[str]
    usage: Usage

    @property
    def acked_rate(self) -> float:
        return self.load.acked / self.load.seconds if self.load.seconds else 0.0

    @property
    def handled_rate(self) -> float:
        """Replies over the time from the first update sent to the last reply."""
        seconds = max(self.replies, default=0.0) - self.load.started_at
        return len(self.replies) / seconds if seconds > 0 else 0.0


def run_sustained(target: str, options: Options, profile_path: str = "") -> SustainedResult:
    users = user_ids(options.sustained_users, SUSTAINED_USER_OFFSET)
    warmup = make_deliveries(1, len(users), users, START_COMMAND)
    measured = make_deliveries(len(users) + 1, options.updates, users, START_COMMAND)
    concurrency = options.sustained_connections
    with started(target, options, users, profile_path) as run:
        problems = warm_up(run, warmup, concurrency)
        background = wait_for_quiet(options.quiet_seconds)
        before = int(run.sim.ask("answers"))
        meter = Meter(run.servers, run.simulator)
        meter.start()
        load = asyncio.run(drive(run.ports, run.secret, measured, concurrency, options.limit_seconds))
        wait_for_answers(run.sim, before + load.acked, DRAIN_SECONDS)
        usage = meter.stop(background)
        replies = [at for _, at in run.sim.ask("replies")[before:]]
    if load.lost:
        problems.append(f"{load.lost} updates never acknowledged")
    if len(replies) != load.acked:
        problems.append(f"{len(replies)} replies to {load.acked} acknowledged updates (waited up to "
                        f"{DRAIN_SECONDS:g} s)")
    return SustainedResult(target, concurrency, load, replies, problems, usage)


@dataclass
class E2EResult:
    target: str
    rate: float  # offered, updates a second
    posts: list[Post]
    extra_replies: int  # replies beyond one per posted update
    connections: int  # the most the generator had open at once
    problems: list[str]
    usage: Usage

    @property
    def posted(self) -> list[Post]:
        return [post for post in self.posts if post.posted is not None]

    @property
    def replied(self) -> list[Post]:
        return [post for post in self.posts if post.replied is not None]

    @property
    def achieved(self) -> float:
        """Replies a second, from the first update's due time to the last reply."""
        replied = self.replied
        if not replied:
            return 0.0
        return len(replied) / (max(post.replied or 0.0 for post in replied) - self.posts[0].due)

    def latency_ms(self, share: float) -> float:
        return percentile_ms([(post.replied or 0.0) - (post.posted or 0.0) for post in self.replied], share)

    def ack_ms(self, share: float) -> float:
        return percentile_ms([post.acked - (post.posted or 0.0) for post in self.posts if post.acked], share)

    def late_ms(self, share: float) -> float:
        return percentile_ms([(post.posted or 0.0) - post.due for post in self.posted], share)


def e2e_users(rate: float, options: Options) -> list[int]:
    """Enough customers that none writes more often than every E2E_CHAT_SECONDS: Telegram's 1 message a
    second per chat, and Frontdesk's pacing of it, stay out of the way."""
    return user_ids(max(options.e2e_users, math.ceil(rate * E2E_CHAT_SECONDS)), E2E_USER_OFFSET)


def match_replies(posts: Sequence[Post], replies: Sequence[tuple[int, float]]) -> int:
    """Gives each posted update its chat's next reply: one reply per update, and a chat's in the order
    posted (its next update goes out only once the last was acknowledged). Returns the replies left over."""
    waiting: dict[int, deque[float]] = {}
    for chat_id, at in replies:
        waiting.setdefault(chat_id, deque()).append(at)
    for post in posts:
        if post.posted is not None and (queue := waiting.get(post.delivery.chat_id)):
            post.replied = queue.popleft()
    return sum(len(queue) for queue in waiting.values())


def run_e2e(target: str, rate: float, options: Options) -> E2EResult:
    users = e2e_users(rate, options)
    warmup = make_deliveries(1, len(users), users, START_COMMAND)
    window = make_deliveries(len(users) + 1, round(rate * options.e2e_seconds), users, START_COMMAND)
    with started(target, options, users) as run:
        problems = warm_up(run, warmup, options.sustained_connections)
        background = wait_for_quiet(options.quiet_seconds)
        before = int(run.sim.ask("answers"))
        meter = Meter(run.servers, run.simulator)
        meter.start()
        begin = time.time() + 0.1
        posts = [Post(delivery, begin + index / rate) for index, delivery in enumerate(window)]
        window_end = begin + options.e2e_seconds
        deadline = window_end + options.e2e_grace
        connections = asyncio.run(open_loop(run.ports[0], run.secret, posts, options.e2e_connections, window_end,
                                            deadline))
        posted = sum(1 for post in posts if post.posted is not None)
        wait_for_answers(run.sim, before + posted, deadline - time.time())
        usage = meter.stop(background)
        replies = [(chat_id, at) for chat_id, at in run.sim.ask("replies")[before:] if at <= deadline]
    extra = match_replies(posts, replies)
    if extra:
        problems.append(f"{extra} replies more than the updates posted")
    return E2EResult(target, rate, posts, extra, connections, problems, usage)


# --- results -------------------------------------------------------------------------------------


@dataclass
class Row:
    target: str
    concurrency: int
    runs: list[RunResult]

    def median(self, value: Callable[[RunResult], float]) -> float:
        return statistics.median(value(run) for run in self.runs)

    @property
    def rate(self) -> float:
        return self.median(lambda run: run.rate)

    def stored_text(self) -> str:
        sent = sum(run.load.sent for run in self.runs)
        if self.runs[0].stored is None:
            return f"— ({sent} sent)"
        return f"{sum(run.stored or 0 for run in self.runs)}/{sent}"

    def cpu_per_update_ms(self) -> float:
        return self.median(lambda run: 1000 * run.usage.server_cpu / max(1, run.load.acked))

    def loop_busy(self) -> float:
        return self.median(lambda run: 100 * run.usage.loop_cpu / run.load.seconds)

    def machine_busy(self) -> float:
        return self.median(lambda run: 100 * run.usage.machine_busy)

    def generator_busy(self) -> float:
        return self.median(lambda run: 100 * run.usage.generator_cpu / run.load.seconds)


def group(results: Sequence[RunResult]) -> list[Row]:
    rows: dict[tuple[int, str], Row] = {}
    for result in results:
        rows.setdefault((result.concurrency, result.target), Row(result.target, result.concurrency, [])).runs.append(
            result)
    return [rows[key] for key in sorted(rows, key=lambda key: (key[0], rank(key[1])))]


def ceiling_of(target: str) -> str:
    """The ceiling a row is compared with: the one with as many processes."""
    return "ceiling2" if base_of(target) in PAIRS else "ceiling"


def table(rows: Sequence[Row]) -> str:
    ceilings = {(row.concurrency, row.target): row.rate for row in rows if row.target in ("ceiling", "ceiling2")}
    lines = ["| server | connections | updates/s | % of ceiling | p50 ms | p99 ms | stored/sent | retried "
             "| server CPU ms/update | server loop busy | generator busy | machine busy |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in rows:
        ceiling = ceilings.get((row.concurrency, ceiling_of(row.target)))
        share = f"{100 * row.rate / ceiling:.0f}%" if ceiling else "—"
        lines.append(
            f"| {label(row.target)} | {row.concurrency} | {row.rate:,.0f} | {share} "
            f"| {row.median(lambda run: run.percentile(0.5)):.1f} | {row.median(lambda run: run.percentile(0.99)):.1f} "
            f"| {row.stored_text()} | {sum(run.load.errors for run in row.runs)} | {row.cpu_per_update_ms():.2f} "
            f"| {row.loop_busy():.0f}% | {row.generator_busy():.0f}% | {row.machine_busy():.0f}% |")
    return "\n".join(lines)


def run_lines(rows: Sequence[Row]) -> str:
    lines = []
    for row in rows:
        rates = ", ".join(f"{run.rate:,.0f}" for run in row.runs)
        problems = "; ".join(problem for run in row.runs for problem in run.problems)
        background = max(run.usage.background for run in row.runs)
        lines.append(f"- {label(row.target)}, {row.concurrency} connections: {rates} updates/s "
                     f"(before each run, other work kept the machine up to {100 * background:.0f}% busy)"
                     + (f" — **{problems}**" if problems else ""))
    return "\n".join(lines)


def bold_problems(problems: str) -> str:
    return f" — **{problems}**" if problems else ""


def by_target(results: Sequence[SustainedResult]) -> dict[str, list[SustainedResult]]:
    grouped: dict[str, list[SustainedResult]] = {}
    for result in sorted(results, key=lambda result: rank(result.target)):
        grouped.setdefault(result.target, []).append(result)
    return grouped


def per_reply_ms(seconds: float, replies: int) -> float:
    return 1000 * seconds / max(1, replies)


def sustained_table(results: Sequence[SustainedResult]) -> str:
    groups = by_target(results)
    echo = statistics.median(run.handled_rate for run in groups["echo"]) if "echo" in groups else 0.0
    lines = ["| server | connections | acknowledged/s | handled/s | % of echo | ack p50 ms | ack p99 ms "
             "| answered/sent | server CPU ms/update | tgsim CPU ms/reply | machine busy |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for target, runs in groups.items():
        def median(value: Callable[[SustainedResult], float], runs: list[SustainedResult] = runs) -> float:
            return statistics.median(value(run) for run in runs)

        handled = median(lambda run: run.handled_rate)
        lines.append(
            f"| {label(target)} | {runs[0].concurrency} | {median(lambda run: run.acked_rate):,.0f} | {handled:,.0f} "
            f"| {f'{100 * handled / echo:.0f}%' if echo else '—'} "
            f"| {median(lambda run: percentile_ms(run.load.latencies, 0.5)):.1f} "
            f"| {median(lambda run: percentile_ms(run.load.latencies, 0.99)):.1f} "
            f"| {sum(len(run.replies) for run in runs)}/{sum(run.load.sent for run in runs)} "
            f"| {median(lambda run: per_reply_ms(run.usage.server_cpu, len(run.replies))):.2f} "
            f"| {median(lambda run: per_reply_ms(run.usage.sim_cpu, len(run.replies))):.2f} "
            f"| {median(lambda run: 100 * run.usage.machine_busy):.0f}% |")
    return "\n".join(lines)


def sustained_lines(results: Sequence[SustainedResult]) -> str:
    lines = []
    for target, runs in by_target(results).items():
        handled = ", ".join(f"{run.handled_rate:,.0f}" for run in runs)
        acked = ", ".join(f"{run.acked_rate:,.0f}" for run in runs)
        problems = "; ".join(problem for run in runs for problem in run.problems)
        background = max(run.usage.background for run in runs)
        lines.append(f"- {label(target)}: {handled} handled/s ({acked} acknowledged/s; before each run, other work "
                     f"kept the machine up to {100 * background:.0f}% busy)" + bold_problems(problems))
    return "\n".join(lines)


def e2e_table(results: Sequence[E2EResult]) -> str:
    lines = ["| server | offered/s | posted | replies/s | p50 ms | p99 ms | no reply | ack p50 ms | ack p99 ms "
             "| posted late, p99 ms | connections | server CPU ms/reply | tgsim CPU ms/reply | generator CPU ms/update "
             "| machine busy |",
             "| --- |" + " ---: |" * 14]
    for result in sorted(results, key=lambda result: (result.rate, rank(result.target))):
        posted, replied = len(result.posted), len(result.replied)
        lines.append(
            f"| {label(result.target)} | {result.rate:,.0f} | {posted}/{len(result.posts)} | {result.achieved:,.0f} "
            f"| {result.latency_ms(0.5):.1f} | {result.latency_ms(0.99):.1f} | {posted - replied} "
            f"| {result.ack_ms(0.5):.1f} | {result.ack_ms(0.99):.1f} | {result.late_ms(0.99):.0f} "
            f"| {result.connections} | {per_reply_ms(result.usage.server_cpu, replied):.2f} "
            f"| {per_reply_ms(result.usage.sim_cpu, replied):.2f} "
            f"| {per_reply_ms(result.usage.generator_cpu, posted):.2f} | {100 * result.usage.machine_busy:.0f}% |")
    return "\n".join(lines)


def e2e_lines(results: Sequence[E2EResult]) -> str:
    lines = []
    for result in sorted(results, key=lambda result: (result.rate, rank(result.target))):
        lines.append(f"- {label(result.target)} at {result.rate:,.0f}/s: before the run, other work kept the machine "
                     f"{100 * result.usage.background:.0f}% busy" + bold_problems("; ".join(result.problems)))
    return "\n".join(lines)


# --- the profile -------------------------------------------------------------------------------

AREAS = (  # (substring of the file name, area); first match wins
    ("/tortoise/", "Tortoise ORM"), ("/pypika", "PyPika (SQL text)"), ("/aiosqlite/", "aiosqlite"),
    ("/asyncpg/", "asyncpg"), ("/aiogram/", "aiogram"), ("/pydantic", "pydantic"), ("/aiohttp/", "aiohttp"),
    ("/asyncio/", "asyncio"), (str(ROOT), "Frontdesk's own code"), ("/python3", "standard library"),
)
KEY_FUNCTIONS = (
    ("bot/webhook.py", "telegram_webhook"), ("dispatcher.py", "feed_update"), ("bot/middlewares.py", "get_locale"),
    ("services/conversations.py", "record_customer_message"), ("services/conversations.py", "register_customer"),
    ("services/conversations.py", "open_conversation"), ("services/conversations.py", "_count_message"),
    ("services/outbox.py", "enqueue"), ("bot/intake.py", "run"), ("bot/intake.py", "_loop"),
    ("services/intake.py", "claim"), ("services/intake.py", "finish"),
)


def area_of(filename: str, name: str) -> str:
    if filename == "~":
        if "epoll" in name:
            return "waiting in epoll (idle loop)"
        if "_socket.socket" in name:
            return "socket send/recv"
        return "waking another thread (SimpleQueue.put)" if "SimpleQueue" in name else "other C built-ins"
    return next((area for part, area in AREAS if part in filename), "other")


def where(filename: str, line: int, name: str) -> str:
    if filename == "~":
        return name
    short = filename.split("site-packages/")[-1].split(f"python{sys.version_info[0]}.{sys.version_info[1]}/")[-1]
    short = short.replace(str(ROOT) + "/", "")
    return f"{short}:{line} {name}"


ProfileStats = dict[tuple[str, int, str], tuple[int, int, float, float, Any]]


def by_area(stats: ProfileStats) -> list[tuple[str, float]]:
    areas: dict[str, float] = {}
    for (filename, _, name), entry in stats.items():
        area = area_of(filename, name)
        areas[area] = areas.get(area, 0.0) + entry[2]
    return sorted(areas.items(), key=lambda item: -item[1])


def cumulative(stats: ProfileStats, suffix: str, name: str) -> float:
    return sum(entry[3] for (filename, _, function), entry in stats.items()
               if function == name and filename.endswith(suffix))


def profile_report(path: str, target: str, concurrency: int, acked: int, rate: float, what: str) -> str:
    stats = cast(ProfileStats, pstats.Stats(path).stats)  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in stats.values())
    updates = max(1, acked)
    lines = [f"{label(target)}, {concurrency} connections, {acked} updates {what} at "
             f"{rate:,.0f}/s under cProfile (which slows it); the event-loop thread's {total:.2f} s "
             f"({1000 * total / updates:.2f} ms per update), by own time:", "", "```"]
    lines += [f"{100 * seconds / total:5.1f}%  {area}" for area, seconds in by_area(stats)]
    lines += ["", "cumulative ms per update (own time and callees, while running):"]
    lines += [f"{1000 * seconds / updates:7.3f}  {suffix} {name}" for suffix, name in KEY_FUNCTIONS
              if (seconds := cumulative(stats, suffix, name))]  # functions the code no longer has are left out
    lines += ["", "top functions by own time (ms per update, calls per update):"]
    top = sorted(stats.items(), key=lambda item: item[1][2], reverse=True)[:18]
    lines += [f"{1000 * entry[2] / updates:7.3f} {entry[1] / updates:6.1f}  {where(*key)}" for key, entry in top]
    return "\n".join([*lines, "```"])


def profile(target: str, options: Options) -> str:
    path = str(options.workdir / f"profile-{target}.pstats")
    if base_of(target) in FLOW_TARGETS:  # handled, not only acknowledged: the sustained mode's loop
        sustained = run_sustained(target, options, profile_path=path)
        return profile_report(path, sustained.target, sustained.concurrency, sustained.load.acked,
                              sustained.handled_rate, "handled")
    result = run_once(target, max(options.concurrency), options, profile_path=path)
    return profile_report(path, result.target, result.concurrency, result.load.acked, result.rate, "acknowledged")


# --- the document ----------------------------------------------------------------------------------


def machine() -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")),
                 platform.processor() or "unknown")
    mem_kib = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                       if line.startswith("MemTotal")))
    return (f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {model}, "
            f"{mem_kib / 1024 / 1024:.1f} GiB RAM; Linux {platform.release()}, Python {platform.python_version()}")


def versions(options: Options) -> str:
    from importlib.metadata import version

    names = ("aiogram", "aiohttp", "tortoise-orm", "aiosqlite", "asyncpg", "pydantic")
    text = ", ".join(f"{name} {version(name)}" for name in names) + f"; SQLite {sqlite3.sqlite_version}"
    if options.postgres_url and any(base_of(target) in POSTGRES_TARGETS for target in options.all_targets):
        rows = asyncio.run(pg_fetch(options.postgres_url, "SELECT current_setting('server_version'), "
                                    "current_setting('fsync'), current_setting('synchronous_commit')"))
        server, fsync, synchronous = rows[0]
        text += f"; PostgreSQL {server} (fsync={fsync}, synchronous_commit={synchronous})"
    return text


def code_version(root: Path = ROOT) -> str:
    """The commit measured, and the files changed from it (the servers import the tree as it is)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.rstrip()

    try:
        commit = git("log", "-1", "--format=%h (%s)")
        changed = [line[3:] for line in git("status", "--porcelain").splitlines()
                   if not line[3:].startswith(("bench/", "docs/"))]
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return commit + (f", with uncommitted changes to {', '.join(changed)}" if changed else "")


def verdict(rows: Sequence[Row]) -> str:
    ceilings = {(row.concurrency, row.target): row.rate for row in rows if row.target in ("ceiling", "ceiling2")}
    parts = [f"{label(row.target)} at {row.concurrency} connections: "
             f"{100 * row.rate / ceilings[(row.concurrency, ceiling_of(row.target))]:.0f}%"
             for row in rows if base_of(row.target) in FRONTDESK_TARGETS
             and (row.concurrency, ceiling_of(row.target)) in ceilings]
    return "Share of the ceiling (target ≥ 50%): " + "; ".join(parts) + "." if parts else ""


def ingest_part(rows: Sequence[Row], options: Options) -> list[str]:
    tables = {run.stored_in for row in rows for run in row.runs if run.stored_in}
    counted = f" and counts rows of {' or '.join(f'`{table}`' for table in sorted(tables))}" if tables else ""
    return [f"- **Load:** up to {options.updates} updates or {options.limit_seconds:g} s per run, from "
            f"{options.users} customers (after {options.warmup} warm-up updates from others), one update in flight "
            f"per chat; {options.runs} runs per row, medians shown; stored/sent sums the runs{counted}.",
            "", table(rows), *(["", line] if (line := verdict(rows)) else []), "", "Each run's updates/s:", "",
            run_lines(rows)]


def sustained_part(results: Sequence[SustainedResult], options: Options) -> list[str]:
    return [
        "### Sustained: updates fully handled per second, workers on", "",
        f"Frontdesk as deployed, in one process with its workers on (`OUTBOX_WORKERS` left at its default, "
        f"`TELEGRAM_MESSAGES_PER_SECOND` raised: tgsim's flood limits are off), beside the aiogram echo bot "
        f"(which answers before it acknowledges). "
        f"Every update is a `/start`, which Frontdesk answers from a handler alone, so both do ingest, dispatch "
        f"and one `sendMessage`: an AI answer costs about 30 ms of CPU, and a rate worth measuring of them cannot "
        f"fit on two cores. Closed loop, {options.sustained_connections} connections, one update in flight per "
        f"chat: up to {options.updates} updates or {options.limit_seconds:g} s per run, from "
        f"{options.sustained_users} customers who had each sent a first `/start`, answered before the run. "
        f"Handled: its reply reached tgsim; handled/s is the replies over the time from the first update sent "
        f"to the last reply. {options.runs} runs per row, medians shown; answered/sent sums the runs.",
        "", sustained_table(results), "", "Each run:", "", sustained_lines(results)]


def e2e_part(results: Sequence[E2EResult], options: Options) -> list[str]:
    return [
        "### End to end: from an update to its reply", "",
        f"The same servers and `/start`s, offered at a fixed rate for {options.e2e_seconds:g} s (an open loop: "
        f"an update is posted when due, not when the last was answered), still one in flight per chat and at "
        f"most {options.e2e_connections} connections (setWebhook's largest `max_connections`; Frontdesk leaves "
        f"Telegram's default, 40). The customers, at least {options.e2e_users} and enough that each writes at most "
        f"every {E2E_CHAT_SECONDS:g} s, had each sent a first `/start`, answered before the window. Latency: from "
        f"posting an update to its reply's `sendMessage` in tgsim's call log (one clock; tgsim's own time for the "
        f"call included). No reply: none within {options.e2e_grace:g} s after the window. Posted: the updates that "
        f"went out within the window; the others were still waiting for their chat or a connection, and posted "
        f"late says how long after its time an update went out. replies/s: replies over the time from the first "
        f"update's time to the last reply. One run per row.",
        "", e2e_table(results), "", e2e_lines(results)]


def generated_section(rows: Sequence[Row], sustained: Sequence[SustainedResult], e2e: Sequence[E2EResult],
                      profiles: Sequence[str], options: Options) -> str:
    command = f"`{shlex.join(['python', 'bench/ingest.py', *sys.argv[1:]])}`"
    if launcher := os.environ.get("BENCH_LAUNCHER", ""):  # set by bench/run.sh
        command = f"`{launcher}`, which runs {command}"
    parts = [
        BEGIN_MARK,
        f"- **Date:** {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- **Machine:** {machine()}",
        f"- **Software:** {versions(options)}",
        f"- **Frontdesk:** commit {options.code}",
    ]
    if options.before is not None:
        parts.append(f"- **Before** (rows marked so): {options.before} at commit {options.before_code}")
    parts.append(f"- **Command:** {command}")
    if rows:
        parts += ingest_part(rows, options)
    if sustained:
        parts += ["", *sustained_part(sustained, options)]
    if e2e:
        parts += ["", *e2e_part(e2e, options)]
    if profiles:
        parts += ["", "### Profile of Frontdesk's server (event-loop thread)", "", "\n\n".join(profiles)]
    return "\n".join([*parts, END_MARK])


# --- main ---------------------------------------------------------------------------------------


def parse_targets(parser: argparse.ArgumentParser, text: str, allowed: Sequence[str],
                  before: Path | None) -> list[str]:
    """Comma-separated targets ("" for none), each Frontdesk one followed by its @before twin with --before."""
    named = [target for target in text.split(",") if target]
    if unknown := [target for target in named if base_of(target) not in allowed
                   or (is_before(target) and (before is None or base_of(target) not in FRONTDESK_TARGETS))]:
        parser.error(f"unknown targets: {', '.join(unknown)} (known: {', '.join(allowed)}; "
                     f"Frontdesk's with {BEFORE} too, given --before)")
    return with_before(named, before)


def runnable(targets: Sequence[str], postgres_url: str, redis_url: str) -> list[str]:
    return [target for target in targets if (postgres_url or base_of(target) not in POSTGRES_TARGETS)
            and (redis_url or base_of(target) != "redis2")]


def before_checkout(parser: argparse.ArgumentParser, text: str) -> Path | None:
    if not text:
        return None
    path = Path(text).resolve()
    if not (path / "bot" / "__init__.py").is_file():
        parser.error(f"--before {text}: no Frontdesk checkout there (no bot/__init__.py)")
    return path


def parse_options(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--updates", type=int, default=3000, help="measured updates per run")
    parser.add_argument("--warmup", type=int, default=200, help="updates sent before each measured window")
    parser.add_argument("--users", type=int, default=200, help="distinct customers writing")
    parser.add_argument("--runs", type=int, default=3, help="runs per server and connection count")
    parser.add_argument("--concurrency", default="16,64", help="connections, comma-separated")
    parser.add_argument("--targets", default=",".join(TARGETS),
                        help=f"ingest (acknowledge only): some of {', '.join(TARGETS)}; '' for none")
    parser.add_argument("--limit-seconds", type=float, default=10.0, help="stop sending after this long")
    parser.add_argument("--quiet-seconds", type=float, default=3.0,
                        help="before each run, wait up to this long for other work on the machine to stop")
    parser.add_argument("--profile", default="", help="targets to profile once more under cProfile (a +workers "
                        "one in the sustained mode)")
    parser.add_argument("--sustained", default=",".join(FLOW_TARGETS),
                        help=f"sustained mode (workers on, /start answered): some of {', '.join(FLOW_TARGETS)}; "
                             "'' for none")
    parser.add_argument("--sustained-users", type=int, default=1000, help="customers in the sustained mode")
    parser.add_argument("--sustained-connections", type=int, default=64, help="connections in the sustained mode "
                        "(and for every warm-up of it and of the end-to-end mode)")
    parser.add_argument("--e2e-rates", default="100,1000", help="end-to-end mode: updates a second offered, "
                        "comma-separated; '' for none")
    parser.add_argument("--e2e-targets", default=",".join(FLOW_TARGETS), help="end-to-end mode's targets")
    parser.add_argument("--e2e-seconds", type=float, default=10.0, help="end-to-end mode: the window per rate")
    parser.add_argument("--e2e-grace", type=float, default=5.0,
                        help="end-to-end mode: how long after the window a reply still counts")
    parser.add_argument("--e2e-users", type=int, default=3000,
                        help=f"end-to-end mode: customers at least (more when one would write more often than "
                             f"every {E2E_CHAT_SECONDS:g} s)")
    parser.add_argument("--e2e-connections", type=int, default=100, help="end-to-end mode: the most connections")
    parser.add_argument("--before", default="", help=f"another checkout: Frontdesk targets get {BEFORE} twins "
                        "running its code")
    parser.add_argument("--doc", type=Path, default=DOC_PATH, help="the Markdown file to update")
    parser.add_argument("--no-doc", action="store_true", help="only print the table")
    args = parser.parse_args(argv)
    postgres_url = os.environ.get("BENCH_POSTGRES_URL", "")
    redis_url = os.environ.get("BENCH_REDIS_URL", "")
    before = before_checkout(parser, args.before)
    rates = [float(value) for value in args.e2e_rates.split(",") if value]
    if any(rate <= 0 for rate in rates):
        parser.error("--e2e-rates must be positive")
    named = [parse_targets(parser, args.targets, TARGETS, before),
             parse_targets(parser, args.sustained, FLOW_TARGETS, before),
             parse_targets(parser, args.e2e_targets if rates else "", FLOW_TARGETS, before)]
    targets, sustained, e2e_targets = (runnable(listed, postgres_url, redis_url) for listed in named)
    if sum(map(len, named)) > len(targets) + len(sustained) + len(e2e_targets):
        print("BENCH_POSTGRES_URL or BENCH_REDIS_URL is not set: the targets that need them are left out "
              "(bash bench/run.sh sets them)", file=sys.stderr)
    return Options(args.updates, args.warmup, args.users, args.runs,
                   [int(value) for value in args.concurrency.split(",")], targets, args.limit_seconds,
                   args.quiet_seconds, postgres_url,
                   [target for target in args.profile.split(",")
                    if (target in targets and base_of(target) not in PAIRS) or target in sustained],
                   None if args.no_doc else args.doc, Path(), redis_url=redis_url, sustained=sustained,
                   sustained_users=args.sustained_users, sustained_connections=args.sustained_connections,
                   e2e_targets=e2e_targets, e2e_rates=rates, e2e_seconds=args.e2e_seconds,
                   e2e_grace=args.e2e_grace, e2e_users=args.e2e_users, e2e_connections=args.e2e_connections,
                   before=before)


def schedule(options: Options) -> Iterator[tuple[int, int, str]]:
    """Runs interleaved (run 1 of everything, then run 2, ...) so that drift hits every row alike."""
    for run in range(options.runs):
        for concurrency in options.concurrency:
            for target in options.targets:
                yield run, concurrency, target


def run_all(options: Options) -> list[RunResult]:
    results = []
    for run, concurrency, target in schedule(options):
        result = run_once(target, concurrency, options)
        print(f"run {run + 1}/{options.runs} {target:>8} ×{concurrency:<3} {result.rate:8,.0f} updates/s  "
              f"p50 {result.percentile(0.5):6.1f} ms  p99 {result.percentile(0.99):6.1f} ms  "
              f"stored {result.stored if result.stored is not None else '—'}/{result.load.sent}"
              + (f" (in {result.stored_in})" if result.stored_in else "")
              + (f"  PROBLEMS: {'; '.join(result.problems)}" if result.problems else ""), file=sys.stderr, flush=True)
        results.append(result)
    return results


def problems_text(problems: Sequence[str]) -> str:
    return f"  PROBLEMS: {'; '.join(problems)}" if problems else ""


def run_all_sustained(options: Options) -> list[SustainedResult]:
    results = []
    for run in range(options.runs):  # interleaved, as the ingest rows are
        for target in options.sustained:
            result = run_sustained(target, options)
            print(f"sustained run {run + 1}/{options.runs} {target:>8} ×{result.concurrency:<3} "
                  f"{result.handled_rate:8,.0f} handled/s  {result.acked_rate:8,.0f} acknowledged/s  "
                  f"answered {len(result.replies)}/{result.load.sent}" + problems_text(result.problems),
                  file=sys.stderr, flush=True)
            results.append(result)
    return results


def run_all_e2e(options: Options) -> list[E2EResult]:
    results = []
    for rate in options.e2e_rates:
        for target in options.e2e_targets:
            result = run_e2e(target, rate, options)
            print(f"end to end {target:>8} {rate:6,.0f}/s offered  {result.achieved:7,.0f} replies/s  "
                  f"p50 {result.latency_ms(0.5):7.1f} ms  p99 {result.latency_ms(0.99):7.1f} ms  "
                  f"posted {len(result.posted)}/{len(result.posts)}  "
                  f"no reply {len(result.posted) - len(result.replied)}" + problems_text(result.problems),
                  file=sys.stderr, flush=True)
            results.append(result)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    with tempfile.TemporaryDirectory(prefix="frontdesk-bench-") as workdir:
        options.workdir = Path(workdir)
        options.code = code_version()
        if options.before is not None:
            options.before_code = code_version(options.before)
        rows = group(run_all(options))
        sustained = run_all_sustained(options)
        e2e = run_all_e2e(options)
        profiles = [profile(target, options) for target in options.profile]
        if rows:
            print(table(rows))
            print(verdict(rows))
        if sustained:
            print(sustained_table(sustained))
        if e2e:
            print(e2e_table(e2e))
        for report in profiles:
            print(report)
        if options.doc is not None:
            write_section(options.doc, "ingest.py", generated_section(rows, sustained, e2e, profiles, options),
                          "Webhook ingest")
            print(f"wrote {options.doc}", file=sys.stderr)
    problems = [run.problems for row in rows for run in row.runs]
    problems += [result.problems for result in sustained] + [result.problems for result in e2e]
    return 1 if any(problems) else 0


if __name__ == "__main__":
    sys.exit(main())
