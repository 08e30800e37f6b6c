"""Webhook ingest benchmark: how many Telegram updates per second are acknowledged and stored.

Four servers, each in its own process, get the same stream of private-chat text updates on
POST /telegram/webhook from this process (the load generator):

- ceiling: a bare aiohttp handler that only parses the Update (aiogram's model) and answers 200;
- echo: a bare aiogram bot (SimpleRequestHandler, one handler awaiting `message.answer`) whose
  Bot talks to a tgsim Simulator (flood limits off) running in a third process;
- sqlite / postgres: Frontdesk itself (`bot.app.create_app`) with OUTBOX_WORKERS=0, so only
  ingest is measured: store the message and its outbox job, then acknowledge;
- ceiling2 / postgres2 / redis2: two processes of the ceiling, or two Frontdesk instances on one
  PostgreSQL database (redis2: with REDIS_URL too, as several instances are deployed), the
  generator's connections split between them, as a load balancer would.

Like Telegram, the generator keeps one update in flight per chat, retries non-2xx answers, and
uses a fixed number of keep-alive connections. Afterwards the `message` table is read to check
that every sent update is stored exactly once. `bash bench/run.sh` (or `make bench`) starts a
throwaway PostgreSQL and runs this; results go to stdout and into docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import logging
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
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
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
LABELS = {"ceiling": "ceiling: aiohttp + Update.model_validate", "echo": "aiogram echo bot (tgsim)",
          "sqlite": "Frontdesk, SQLite", "postgres": "Frontdesk, PostgreSQL",
          "ceiling2": "ceiling, two processes", "postgres2": "Frontdesk, PostgreSQL, two instances",
          "redis2": "Frontdesk, PostgreSQL + Redis, two instances"}
# Targets served by two processes, and what each of the two runs.
PAIRS = {"ceiling2": "ceiling", "postgres2": "postgres", "redis2": "postgres"}
FIRST_USER_ID = 610_000_000
WARMUP_USER_OFFSET = 100_000
MAX_ATTEMPTS = 5  # Telegram retries a non-2xx answer; so do we, quickly
RETRY_DELAY = 0.05
REQUEST_SECONDS = 30.0
CHILD_START_SECONDS = 120.0

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


def make_update(update_id: int, user: dict[str, Any]) -> bytes:
    chat = {key: user[key] for key in ("id", "first_name", "last_name", "username") if key in user}
    message: dict[str, Any] = {"message_id": update_id, "from": user, "chat": {**chat, "type": "private"},
               "date": int(time.time()), "text": TEXTS[update_id % len(TEXTS)]}
    return json.dumps({"update_id": update_id, "message": message}, ensure_ascii=False).encode()


def user_ids(count: int, offset: int = 0) -> list[int]:
    return [FIRST_USER_ID + offset + index for index in range(count)]


def make_deliveries(first_update_id: int, count: int, users: Sequence[int]) -> list[Delivery]:
    """Updates in id order, the users taking turns (so each writes count / len(users) times)."""
    profiles = [make_user(user_id) for user_id in users]
    deliveries = []
    for index in range(count):
        profile = profiles[index % len(profiles)]
        update_id = first_update_id + index
        deliveries.append(Delivery(update_id, profile["id"], make_update(update_id, profile)))
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
    load = Load()
    started = time.perf_counter()
    feed = Feed(deliveries, started + limit_seconds)
    await asyncio.gather(*(worker(feed, HttpConnection(ports[index % len(ports)], secret), load)
                           for index in range(concurrency)))
    load.seconds = time.perf_counter() - started
    return load


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
                  redis_prefix: str = "") -> tuple[Any, str]:
    from bot.app import create_app
    from bot.settings import Settings

    env = {"BOT_TOKEN": TOKEN, "TELEGRAM_API_BASE": sim_url, "WEBHOOK_BASE_URL": f"http://127.0.0.1:{port}",
           "HOST": "127.0.0.1", "PORT": str(port), "DATABASE_URL": database_url, "OUTBOX_WORKERS": "0",
           "AI_BASE_URL": "", "AI_MODEL": "", "REDIS_URL": redis_url, "REDIS_PREFIX": redis_prefix or "frontdesk",
           "CUSTOMER_RATE_BURST": "1000000", "LOG_LEVEL": "WARNING"}
    settings = Settings(_env_file=None, **cast(dict[str, Any], env))
    return create_app(settings), settings.webhook_secret


def build_app(target: str, options: dict[str, str], port: int) -> tuple[Any, str]:
    if target == "ceiling":
        return ceiling_app(), BARE_SECRET
    if target == "echo":
        return echo_app(options["sim_url"]), BARE_SECRET
    return frontdesk_app(options["sim_url"], options["database_url"], port, options.get("redis_url", ""),
                         options.get("redis_prefix", ""))


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
        conn.send((sock.getsockname()[1], secret))
        await answer_commands(conn, Window(options.get("profile", "")))
    finally:
        await runner.cleanup()


def server_process(target: str, options: dict[str, str], conn: Connection) -> None:
    logging.basicConfig(level=logging.ERROR, format=f"[{target} server] %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(target, options, conn))
    conn.send("bye")


async def simulate(users: Sequence[int], conn: Connection) -> None:
    from tgsim import FloodLimits, Simulator

    async with Simulator(token=TOKEN, port=0, flood=FloodLimits(enabled=False),
                         bot_username="frontdesk_bench_bot", bot_name="Frontdesk") as sim:
        for user_id in users:
            profile = make_user(user_id)
            sim.create_user(profile["first_name"], id=user_id, username=profile.get("username"),
                            last_name=profile.get("last_name"), language_code=profile.get("language_code"))
        conn.send(sim.base_url)
        loop = asyncio.get_running_loop()
        while await loop.run_in_executor(None, conn.recv) == "answers":
            conn.send(sum(1 for call in sim.calls("sendMessage") if call["ok"]))


def simulator_process(users: Sequence[int], conn: Connection) -> None:
    asyncio.run(simulate(users, conn))
    conn.send("bye")


# Importing aiogram.types takes seconds (it builds hundreds of pydantic models): a fork server
# imports it once, and every server process is forked from it, its own interpreter and event loop.
PRELOAD = ["aiogram.types", "aiogram.webhook.aiohttp_server", "bot.app", "tgsim"]


def process_context() -> multiprocessing.context.ForkServerContext:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


class Child:
    """A process of its own that answers commands over a pipe."""

    def __init__(self, target: Callable[..., None], *args: Any) -> None:
        context = process_context()
        self.conn, child_end = context.Pipe()
        self.process = context.Process(target=target, args=(*args, child_end), daemon=True)
        self.process.start()
        child_end.close()
        self.ready = self.receive(CHILD_START_SECONDS)

    def receive(self, seconds: float = 60.0) -> Any:
        if not self.conn.poll(seconds):
            raise TimeoutError(f"{self.process.name} did not answer within {seconds:.0f} s")
        return self.conn.recv()

    def ask(self, command: str) -> Any:
        self.conn.send(command)
        return self.receive()

    def close(self) -> None:
        with contextlib.suppress(OSError, EOFError, TimeoutError):
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
    if target == "sqlite":
        return Database(f"sqlite://{workdir / f'frontdesk-{tag}.sqlite3'}")
    if target in ("postgres", "postgres2", "redis2"):
        name = f"frontdesk_bench_{tag}"
        asyncio.run(pg_execute(postgres_url, f'CREATE DATABASE "{name}"'))
        return Database(urlunsplit(urlsplit(postgres_url)._replace(path=f"/{name}")), postgres_url)
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


@dataclass
class Stored:
    exactly_once: int  # sent updates stored exactly once
    duplicates: int  # extra rows for updates stored more than once
    strangers: int  # rows for updates that were never sent
    jobs: int  # outbox jobs
    rows: int  # customer messages


def check_stored(database: Database, sent_ids: Sequence[int], measured_ids: Sequence[int]) -> Stored:
    keys = Counter(row[0] for row in query(database, "SELECT source_key FROM message WHERE author_kind = 'customer'"))
    expected = {f"tg:{update_id}" for update_id in sent_ids}
    [(jobs,)] = query(database, "SELECT count(*) FROM outbox_job")
    return Stored(
        exactly_once=sum(1 for update_id in measured_ids if keys[f"tg:{update_id}"] == 1),
        duplicates=sum(count - 1 for count in keys.values() if count > 1),
        strangers=sum(count for key, count in keys.items() if key not in expected),
        jobs=int(jobs), rows=sum(keys.values()))


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


@dataclass
class Usage:
    """What the measured window cost: CPU seconds of the server and of its event-loop thread alone,
    and the share of all cores busy (the generator and, for PostgreSQL, the database included)."""

    server_cpu: float = 0.0
    loop_cpu: float = 0.0
    machine_busy: float = 0.0
    generator_cpu: float = 0.0  # CPU seconds of the load generator (this process)
    background: float = 0.0  # share of all cores busy just before the run, with nothing of ours running


@dataclass
class RunResult:
    target: str
    concurrency: int
    load: Load
    stored: int | None  # measured updates stored exactly once (echo: answered)
    problems: list[str]
    usage: Usage

    @property
    def rate(self) -> float:
        return self.load.acked / self.load.seconds if self.load.seconds else 0.0

    def percentile(self, share: float) -> float:
        ordered = sorted(self.load.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


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


def measure(servers: Sequence[Child], plan: Plan, concurrency: int, options: Options) -> tuple[Load, Load, Usage]:
    """Warm up, then the measured window: (warm-up load, measured load, what it cost). With two
    servers, their CPU is summed and their loops' busy time averaged."""
    ports, secret = [server.ready[0] for server in servers], servers[0].ready[1]
    warm = asyncio.run(drive(ports, secret, plan.warmup, concurrency, options.limit_seconds))
    background = wait_for_quiet(options.quiet_seconds)
    for server in servers:
        server.ask("start")
    before, generator_before = busy_jiffies(), cpu_seconds()
    load = asyncio.run(drive(ports, secret, plan.measured, concurrency, options.limit_seconds))
    busy, generator_cpu = busy_share(before, busy_jiffies()), cpu_seconds() - generator_before
    spent = [server.ask("stop") for server in servers]
    return warm, load, Usage(sum(cpu for cpu, _ in spent), sum(loop for _, loop in spent) / len(spent), busy,
                             generator_cpu, background)


def verify(target: str, database: Database | None, warm: Load, load: Load,
           answers: int) -> tuple[int | None, list[str]]:
    """How many measured updates had their effect exactly once, and what went wrong, if anything."""
    problems = [f"{load.lost + warm.lost} updates never acknowledged"] if load.lost + warm.lost else []
    if database is None and target != "echo":
        return None, problems
    if database is None:
        stored = answers - warm.acked
    else:
        rows = check_stored(database, warm.sent_ids + load.sent_ids, load.sent_ids)
        stored = rows.exactly_once
        if rows.duplicates or rows.strangers:
            problems.append(f"{rows.duplicates} duplicate and {rows.strangers} unexpected rows")
        if rows.jobs != rows.rows:
            problems.append(f"{rows.jobs} outbox jobs for {rows.rows} messages")
    if stored != load.sent:
        problems.append(f"{stored} of {load.sent} sent updates {'answered' if database is None else 'stored'} once")
    return stored, problems


def run_once(target: str, concurrency: int, options: Options, profile_path: str = "") -> RunResult:
    plan = Plan.make(options)
    database = new_database(target, options.workdir, options.postgres_url)
    simulator = Child(simulator_process, plan.users) if target not in ("ceiling", "ceiling2") else None
    server_options = {"sim_url": simulator.ready if simulator else "", "profile": profile_path,
                      "database_url": database.url if database else ""}
    if target == "redis2":  # update ids repeat from run to run: a fresh namespace for de-duplication
        server_options |= {"redis_url": options.redis_url, "redis_prefix": f"bench-{uuid.uuid4().hex[:10]}"}
    servers: list[Child] = []
    try:
        for _ in range(2 if target in PAIRS else 1):  # one after the other: the first one migrates
            servers.append(Child(server_process, PAIRS.get(target, target), server_options))
        warm, load, usage = measure(servers, plan, concurrency, options)
        answers = int(simulator.ask("answers")) if simulator and target == "echo" else 0
        for server in servers:
            server.close()  # every transaction is over before the rows are counted
        stored, problems = verify(target, database, warm, load, answers)
    finally:
        for child in [*servers, simulator]:
            if child is not None:
                child.close()
        if database is not None:
            drop_database(database)
    return RunResult(target, concurrency, load, stored, problems, usage)


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
    return [rows[key] for key in sorted(rows, key=lambda key: (key[0], TARGETS.index(key[1])))]


def ceiling_of(target: str) -> str:
    """The ceiling a row is compared with: the one with as many processes."""
    return "ceiling2" if target in PAIRS else "ceiling"


def table(rows: Sequence[Row]) -> str:
    ceilings = {(row.concurrency, row.target): row.rate for row in rows if row.target in ("ceiling", "ceiling2")}
    lines = ["| server | connections | updates/s | % of ceiling | p50 ms | p99 ms | stored/sent | retried "
             "| server CPU ms/update | server loop busy | generator busy | machine busy |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in rows:
        ceiling = ceilings.get((row.concurrency, ceiling_of(row.target)))
        share = f"{100 * row.rate / ceiling:.0f}%" if ceiling else "—"
        lines.append(
            f"| {LABELS[row.target]} | {row.concurrency} | {row.rate:,.0f} | {share} "
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
        lines.append(f"- {LABELS[row.target]}, {row.concurrency} connections: {rates} updates/s "
                     f"(before each run, other work kept the machine up to {100 * background:.0f}% busy)"
                     + (f" — **{problems}**" if problems else ""))
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
    ("services/outbox.py", "enqueue"),
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


def profile_report(path: str, result: RunResult) -> str:
    stats = cast(ProfileStats, pstats.Stats(path).stats)  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in stats.values())
    updates = max(1, result.load.acked)
    lines = [f"{LABELS[result.target]}, {result.concurrency} connections, {result.load.acked} updates at "
             f"{result.rate:,.0f}/s under cProfile (which slows it); the event-loop thread's {total:.2f} s "
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
    result = run_once(target, max(options.concurrency), options, profile_path=path)
    return profile_report(path, result)


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
    if options.postgres_url and {"postgres", "postgres2", "redis2"} & set(options.targets):
        rows = asyncio.run(pg_fetch(options.postgres_url, "SELECT current_setting('server_version'), "
                                    "current_setting('fsync'), current_setting('synchronous_commit')"))
        server, fsync, synchronous = rows[0]
        text += f"; PostgreSQL {server} (fsync={fsync}, synchronous_commit={synchronous})"
    return text


def code_version() -> str:
    """The commit measured, and the files changed from it (the servers import the tree as it is)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.rstrip()

    try:
        commit = git("log", "-1", "--format=%h (%s)")
        changed = [line[3:] for line in git("status", "--porcelain").splitlines()
                   if not line[3:].startswith(("bench/", "docs/"))]
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return commit + (f", with uncommitted changes to {', '.join(changed)}" if changed else "")


def verdict(rows: Sequence[Row]) -> str:
    ceilings = {(row.concurrency, row.target): row.rate for row in rows if row.target in ("ceiling", "ceiling2")}
    parts = [f"{LABELS[row.target]} at {row.concurrency} connections: "
             f"{100 * row.rate / ceilings[(row.concurrency, ceiling_of(row.target))]:.0f}%"
             for row in rows if row.target in ("sqlite", "postgres", "postgres2", "redis2")
             and (row.concurrency, ceiling_of(row.target)) in ceilings]
    return "Share of the ceiling (target ≥ 50%): " + "; ".join(parts) + "." if parts else ""


def generated_section(rows: Sequence[Row], profiles: Sequence[str], options: Options) -> str:
    command = f"`{shlex.join(['python', 'bench/ingest.py', *sys.argv[1:]])}`"
    if launcher := os.environ.get("BENCH_LAUNCHER", ""):  # set by bench/run.sh
        command = f"`{launcher}`, which runs {command}"
    parts = [
        BEGIN_MARK,
        f"- **Date:** {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- **Machine:** {machine()}",
        f"- **Software:** {versions(options)}",
        f"- **Frontdesk:** commit {options.code}",
        f"- **Command:** {command}",
        f"- **Load:** up to {options.updates} updates or {options.limit_seconds:g} s per run, from "
        f"{options.users} customers (after {options.warmup} warm-up updates from others), one update in flight "
        f"per chat; {options.runs} runs per row, medians shown; stored/sent sums the runs.",
        "", table(rows), "", verdict(rows), "", "Each run's updates/s:", "", run_lines(rows),
    ]
    if profiles:
        parts += ["", "### Profile of Frontdesk's server (event-loop thread)", "", "\n\n".join(profiles)]
    return "\n".join([*parts, END_MARK])


# --- main ---------------------------------------------------------------------------------------


def parse_options(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--updates", type=int, default=3000, help="measured updates per run")
    parser.add_argument("--warmup", type=int, default=200, help="updates sent before each measured window")
    parser.add_argument("--users", type=int, default=200, help="distinct customers writing")
    parser.add_argument("--runs", type=int, default=3, help="runs per server and connection count")
    parser.add_argument("--concurrency", default="16,64", help="connections, comma-separated")
    parser.add_argument("--targets", default=",".join(TARGETS), help=f"some of {', '.join(TARGETS)}")
    parser.add_argument("--limit-seconds", type=float, default=10.0, help="stop sending after this long")
    parser.add_argument("--quiet-seconds", type=float, default=3.0,
                        help="before each run, wait up to this long for other work on the machine to stop")
    parser.add_argument("--profile", default="", help="targets to profile once more under cProfile")
    parser.add_argument("--doc", type=Path, default=DOC_PATH, help="the Markdown file to update")
    parser.add_argument("--no-doc", action="store_true", help="only print the table")
    args = parser.parse_args(argv)
    postgres_url = os.environ.get("BENCH_POSTGRES_URL", "")
    redis_url = os.environ.get("BENCH_REDIS_URL", "")
    needs = {"postgres": postgres_url, "postgres2": postgres_url, "redis2": postgres_url and redis_url}
    targets = [target for target in args.targets.split(",") if needs.get(target, True)]
    if unknown := set(targets) - set(TARGETS):
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    if len(targets) < len(args.targets.split(",")):
        print("BENCH_POSTGRES_URL or BENCH_REDIS_URL is not set: the targets that need them are left out "
              "(bash bench/run.sh sets them)", file=sys.stderr)
    return Options(args.updates, args.warmup, args.users, args.runs,
                   [int(value) for value in args.concurrency.split(",")], targets, args.limit_seconds,
                   args.quiet_seconds, postgres_url,
                   [target for target in args.profile.split(",") if target in targets and target not in PAIRS],
                   None if args.no_doc else args.doc, Path(), redis_url=redis_url)


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
              + (f"  PROBLEMS: {'; '.join(result.problems)}" if result.problems else ""), file=sys.stderr, flush=True)
        results.append(result)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    with tempfile.TemporaryDirectory(prefix="frontdesk-bench-") as workdir:
        options.workdir = Path(workdir)
        options.code = code_version()
        rows = group(run_all(options))
        profiles = [profile(target, options) for target in options.profile]
        print(table(rows))
        print(verdict(rows))
        for report in profiles:
            print(report)
        if options.doc is not None:
            write_section(options.doc, "ingest.py", generated_section(rows, profiles, options), "Webhook ingest")
            print(f"wrote {options.doc}", file=sys.stderr)
    return 1 if any(run.problems for row in rows for run in row.runs) else 0


if __name__ == "__main__":
    sys.exit(main())
