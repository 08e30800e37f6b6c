"""Many bots in one deployment (issue 19): 1,000 bots against one, each row beside its baseline from the same run.

Frontdesk is `python -m bot`, a real process on SQLite, serving the rows of its `bot` table (no BOT_TOKEN):
the bench seeds them straight into a fresh, migrated database (one bulk insert, each token sealed by
services.bots as `bots add` seals it, under the run's ENCRYPTION_KEY), so the process starts as a
deployment that already has them. Three sections (`--sections`):

- **startup**: 1 bot, then 1,000 (interleaved, `--runs` each), tgsim standalone (`python -m tgsim --bot ...`)
  with every bot. Start-up = from spawning the process to /healthz answering 200 with every bot's
  setWebhook seen at tgsim; then, after `--idle` seconds of nothing, its resident memory (VmRSS), open
  files, threads and CPU while idle. Memory per idle bot = (RSS with 1,000 − RSS with 1) / 999, from the
  medians. tgsim's call log says what the start spent on each bot (calls per method, the set-up window).
- **ingest**: as bench/ingest.py measures ingest: OUTBOX_WORKERS=0 (store and acknowledge only), a keep-alive
  HTTP/1.1 generator posting straight to the bots' webhooks (/telegram/webhook/<key>, each with its secret),
  one update in flight per bot and chat, `--concurrency` connections. The same updates from the same
  customers go to 1,000 bots (update i to bot i mod 1,000) or all to one; acknowledged updates per second,
  p50/p99 acknowledgement latency, and every update stored exactly once.
- **fairness**: 100 bots, tgsim in this process with Telegram's flood limits, bench/ai_server.py as the model
  (first words after 250 ms, a 5.25 s answer, as in bench/rush_hour.py), default settings. 99 bots each get
  one customer's question; in the flood row one more bot first gets `--flood` questions at once (`--lead`
  seconds earlier). Time to reply = the bench having the customer send → the first `sendMessage` or
  `sendMessageDraft` tgsim accepted into their chat; p50/p99 for the 99, with and without the flood, and
  where their time went: the webhook acknowledged (tgsim's delivery log), the model asked (the model's
  request log), the first words. `--fair-databases postgres-split` runs the same rows on PostgreSQL + Redis
  with the work apart from the webhooks, as a larger deployment would: one process receives
  (OUTBOX_WORKERS=0, every bot's webhook points at it) and `--split-workers` processes work (the intake's
  and the outbox's workers, the default settings); the CPU is theirs together.

`bash bench/run.sh fleet` runs all three and writes their sections of docs/BENCHMARKS.md; `--quick` is a
smoke run (10 bots, one run each, a small flood) that leaves the document alone.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import json
import multiprocessing
import os
import secrets
import shlex
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from ai_server import LAST_SENTENCE
from common import DOC_PATH, ROOT, SHARED, marks, write_section
from ingest import HttpConnection, Load, code_version, machine, make_update, make_user, wait_for_quiet
from outbound import Sim, free_port, process_cpu, spawn, stop
from rush_hour import AIServer, Model, database, inherited_env, percentile, raise_file_limit, rss_mb
from tgsim import FloodLimits, Simulator
from tortoise import Tortoise

from bot import db
from bot.fleet import webhook_secret_of
from models import Bot
from services import bots
from services.secrets_box import SecretBox, new_key, parse_key

FIRST_BOT_ID = 7_100_000_000
FIRST_USER_ID = 650_000_000
WARMUP_USER_OFFSET = 100_000
FLOOD_USER_OFFSET = 200_000
START_SECONDS = 600.0  # give a start up after this long
SECTIONS = ("startup", "ingest", "fairness")
HEADINGS = {"startup": "1,000 bots: start-up and memory", "ingest": "1,000 bots: webhook ingest",
            "fairness": "100 bots: one bot's flood and the others' replies"}


def token(index: int) -> str:
    return f"{FIRST_BOT_ID + index}:BENCH-fleet-{index:04d}-token"


def username(index: int) -> str:
    return f"fleet_bench_{index:04d}_bot"


@dataclass(frozen=True)
class Seeded:
    index: int
    telegram_id: int
    token: str
    webhook_key: str

    @property
    def path(self) -> str:
        return f"/telegram/webhook/{self.webhook_key}"

    @property
    def secret(self) -> str:
        return webhook_secret_of(self.token)


async def seed(database_url: str, count: int, key: str, timing: list[float] | None = None) -> list[Seeded]:
    """A migrated database with `count` active bots, their tokens sealed as `bots add` seals them;
    `timing` gets the seconds the rows took (sealing and the bulk insert, after the migrations)."""
    await db.migrate(database_url)
    began = time.perf_counter()
    await Tortoise.init(config=db.tortoise_config(database_url))
    try:
        box = SecretBox(parse_key(key))
        rows, seeded = [], []
        for index in range(count):
            row = Bot(telegram_id=FIRST_BOT_ID + index, username=username(index),
                      webhook_key=secrets.token_urlsafe(24))
            bots._seal(row, token(index), box)
            rows.append(row)
            seeded.append(Seeded(index, FIRST_BOT_ID + index, token(index), row.webhook_key))
        await Bot.bulk_create(rows, batch_size=500)
    finally:
        await Tortoise.close_connections()
    if timing is not None:
        timing.append(time.perf_counter() - began)
    return seeded


async def seed_apart(database_url: str, count: int, key: str) -> list[Seeded]:
    """`seed` in a fresh interpreter: Tortoise caches each model's INSERT statement by connection name, not by
    database, so a process that seeded SQLite would send SQLite's placeholders to PostgreSQL."""
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as apart:
        return await asyncio.get_running_loop().run_in_executor(apart, _seed_now, database_url, count, key)


def _seed_now(database_url: str, count: int, key: str) -> list[Seeded]:
    return asyncio.run(seed(database_url, count, key))


def frontdesk_env(database_url: str, sim_url: str, port: int, key: str, **extra: str) -> dict[str, str]:
    return {**inherited_env(), "HOST": "127.0.0.1", "PORT": str(port), "DATABASE_URL": database_url,
            "TELEGRAM_API_BASE": sim_url, "WEBHOOK_BASE_URL": f"http://127.0.0.1:{port}", "ENCRYPTION_KEY": key,
            "BOT_TOKEN": "", "REDIS_URL": "", "LOG_FORMAT": "text", "SHUTDOWN_GRACE_SECONDS": "10",
            "PYTHONPATH": str(ROOT), **extra}


async def wait_healthy(http: aiohttp.ClientSession, port: int, process: subprocess.Popen[bytes],
                       seconds: float = START_SECONDS) -> float:
    """Waits for /healthz 200 with bots served; returns time.time() when it first answered so."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"python -m bot exited with {process.returncode}")
        with contextlib.suppress(aiohttp.ClientError):
            async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                if response.status == 200 and (await response.json()).get("telegram"):
                    return time.time()
        await asyncio.sleep(0.05)
    raise TimeoutError(f"Frontdesk did not come up within {seconds:.0f} s")


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of a process so far (the event loop's thread has the process's id)."""
    seconds = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            seconds[int(task.name)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return seconds


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


@contextlib.asynccontextmanager
async def standalone_tgsim(seeded: Sequence[Seeded], log: Path,
                          http: aiohttp.ClientSession) -> AsyncIterator[tuple[Sim, subprocess.Popen[bytes]]]:
    """`python -m tgsim` with every seeded bot (flood limits on, as Telegram's)."""
    port = free_port()
    args = [sys.executable, "-m", "tgsim", "--port", str(port), "--token", seeded[0].token,
            "--bot-username", username(0)]
    for bot in seeded[1:]:
        args += ["--bot", f"{bot.token}={username(bot.index)}"]
    process = spawn(args, {"PYTHONPATH": str(SHARED)}, log)
    try:
        sim = Sim(http, port)
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"tgsim did not start; see {log}")
            with contextlib.suppress(aiohttp.ClientError):
                await sim.call("violations")
                break
            await asyncio.sleep(0.2)
        yield sim, process
    finally:
        stop(process)


# --- start-up and memory ------------------------------------------------------------------------------------


@dataclass
class StartRun:
    bots: int
    seed_seconds: float = 0.0
    healthy: float = 0.0  # seconds from spawning to /healthz 200
    hooks_set: float = 0.0  # ... to the last bot's setWebhook at tgsim
    first_call: float = 0.0  # ... to the first Bot API call (imports, database, migrations done)
    rss_healthy_mb: float = 0.0
    rss_idle_mb: float = 0.0
    files_healthy: int = 0
    files_idle: int = 0
    threads_idle: int = 0
    idle_cpu_share: float = 0.0  # of one core, over the idle window
    calls: Counter[str] = field(default_factory=Counter)
    failed_calls: int = 0
    per_bot_setup: float = 0.0  # median seconds from a bot's first call to its setWebhook
    webhooks: int = 0
    start_cpu: float = 0.0  # Frontdesk's CPU seconds from spawning to every bot set up
    sim_cpu: float = 0.0  # tgsim's over the same time
    shutdown: float | None = None  # seconds from SIGTERM to exit (None: still running after --shutdown-cap)
    problems: list[str] = field(default_factory=list)

    @property
    def started(self) -> float:
        return max(self.healthy, self.hooks_set)


async def startup_run(count: int, options: Options, workdir: Path, http: aiohttp.ClientSession) -> StartRun:
    run = StartRun(count)
    key = new_key()
    tag = secrets.token_hex(5)
    database_url = f"sqlite://{workdir / f'startup-{count}-{tag}.sqlite3'}"
    timing: list[float] = []
    seeded = await seed(database_url, count, key, timing)
    run.seed_seconds = timing[0]
    log = workdir / f"startup-{count}-{tag}.log"
    async with standalone_tgsim(seeded, log, http) as (sim, simulator):
        await asyncio.to_thread(wait_for_quiet, options.quiet_seconds)
        port = free_port()
        sim_cpu = process_cpu(simulator.pid)
        spawned = time.time()
        process = spawn([sys.executable, "-m", "bot"], frontdesk_env(database_url, sim.base_url, port, key), log)
        try:
            run.healthy = await wait_healthy(http, port, process) - spawned
            run.rss_healthy_mb, run.files_healthy = rss_mb(process.pid), open_files(process.pid)
            hooks: list[dict[str, Any]] = []
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                hooks = [call for call in await sim.call("calls", method="setWebhook") if call["ok"]]
                if len({call["bot_id"] for call in hooks}) >= count:
                    break
                await asyncio.sleep(0.2)
            run.start_cpu, run.sim_cpu = process_cpu(process.pid), process_cpu(simulator.pid) - sim_cpu
            run.webhooks = len({call["bot_id"] for call in hooks})
            if run.webhooks < count:
                run.problems.append(f"only {run.webhooks} of {count} webhooks set")
            run.hooks_set = max((call["time"] for call in hooks), default=spawned) - spawned
            await asyncio.sleep(max(0.0, options.idle - options.idle_window))
            cpu = process_cpu(process.pid)
            await asyncio.sleep(options.idle_window)
            run.idle_cpu_share = (process_cpu(process.pid) - cpu) / options.idle_window
            run.rss_idle_mb, run.files_idle = rss_mb(process.pid), open_files(process.pid)
            run.threads_idle = threads(process.pid)
            calls = await sim.call("calls")
            run.calls = Counter(call["method"] for call in calls)
            run.failed_calls = sum(1 for call in calls if not call["ok"])
            run.first_call = min((call["time"] for call in calls), default=spawned) - spawned
            first: dict[int, float] = {}
            for call in calls:
                first.setdefault(call["bot_id"], call["time"])
            run.per_bot_setup = statistics.median(call["time"] - first[call["bot_id"]] for call in hooks) \
                if hooks else 0.0
            stopping = time.perf_counter()
            process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(process.wait, options.shutdown_cap)
                run.shutdown = time.perf_counter() - stopping
        finally:
            stop(process, 1.0)
            if run.shutdown is not None and process.returncode not in (0, -15):
                run.problems.append(f"python -m bot exited with {process.returncode}; see {log}")
    if not run.problems:
        log.unlink(missing_ok=True)
    return run


def shutdown_text(runs: Sequence[StartRun], cap: float) -> str:
    done = [run.shutdown for run in runs if run.shutdown is not None]
    if len(done) == len(runs):
        return f"{statistics.median(done):.1f} s"
    return f"**still running after {cap:g} s** ({len(runs) - len(done)} of {len(runs)} runs)"


def startup_table(runs: Sequence[StartRun], counts: Sequence[int], cap: float) -> str:
    lines = ["| bots | /healthz 200 | every bot set up (its setWebhook at tgsim) | first Bot API call | "
             "set-up window (first call → last setWebhook) | one bot's set-up (median) | Bot API calls per bot | "
             "Frontdesk CPU to every bot set up | tgsim CPU meanwhile | RSS at /healthz | RSS idle | "
             "open files at /healthz / idle | threads | idle CPU (one core) | SIGTERM → exit | "
             "sealing and inserting the rows |",
             "|" + " ---: |" * 16]
    for count in counts:
        mine = [run for run in runs if run.bots == count and not run.problems]
        if not mine:
            lines.append(f"| {count:,} | **FAILED** |" + " |" * 14)
            continue
        median = statistics.median
        lines.append(
            f"| {count:,} | {median(run.healthy for run in mine):.2f} s | {median(run.hooks_set for run in mine):.2f} s"
            f" | {median(run.first_call for run in mine):.2f} s"
            f" | {median(run.hooks_set - run.first_call for run in mine):.2f} s"
            f" | {1000 * median(run.per_bot_setup for run in mine):.0f} ms"
            f" | {median(sum(run.calls.values()) / count for run in mine):.1f}"
            f" | {median(run.start_cpu for run in mine):.1f} s | {median(run.sim_cpu for run in mine):.1f} s"
            f" | {median(run.rss_healthy_mb for run in mine):.0f} MB | {median(run.rss_idle_mb for run in mine):.0f} MB"
            f" | {median(run.files_healthy for run in mine):.0f} / {median(run.files_idle for run in mine):.0f}"
            f" | {median(run.threads_idle for run in mine):.0f}"
            f" | {100 * median(run.idle_cpu_share for run in mine):.1f}%"
            f" | {shutdown_text(mine, cap)}"
            f" | {median(run.seed_seconds for run in mine):.2f} s |")
    return "\n".join(lines)


def startup_comparison(runs: Sequence[StartRun], counts: Sequence[int]) -> list[str]:
    small, large = min(counts), max(counts)
    few = [run for run in runs if run.bots == small and not run.problems]
    many = [run for run in runs if run.bots == large and not run.problems]
    if not few or not many or small == large:
        return []
    median = statistics.median
    rss = median(run.rss_idle_mb for run in many) - median(run.rss_idle_mb for run in few)
    start = median(run.hooks_set for run in many) - median(run.hooks_set for run in few)
    healthy = median(run.healthy for run in many) - median(run.healthy for run in few)
    cpu = median(run.start_cpu for run in many) - median(run.start_cpu for run in few)
    methods = Counter[str]()
    for run in many:
        methods.update(run.calls)
    per_bot = ", ".join(f"{method} {number / len(many) / large:.1f}" for method, number in methods.most_common())
    return [
        f"- Memory per idle bot: ({median(run.rss_idle_mb for run in many):.0f} MB − "
        f"{median(run.rss_idle_mb for run in few):.0f} MB) / {large - small:,} = "
        f"**{1024 * rss / (large - small):.0f} KB** (idle RSS medians).",
        f"- Every bot set up: {large:,} bots take {start:+.2f} s more than {small} "
        f"({1000 * start / (large - small):.1f} ms a bot), and {cpu:+.1f} s more of Frontdesk's CPU "
        f"({1000 * cpu / (large - small):.1f} ms a bot).",
        f"- /healthz: {large:,} bots answer {healthy:+.2f} s later than {small}.",
        f"- Bot API calls per bot at start ({large:,} bots): {per_bot}; "
        f"{sum(run.failed_calls for run in many)} refused.",
        "- Each run (healthz, every bot set up, idle RSS): "
        + "; ".join(f"{run.bots:,} bots {run.healthy:.2f} s, {run.hooks_set:.2f} s, {run.rss_idle_mb:.0f} MB"
                                   for run in runs),
    ]


SESSION_COST = """
import gc, json, os, ssl, time
import certifi
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession

def rss():
    return next(int(line.split()[1]) for line in open(f"/proc/{os.getpid()}/status") if line.startswith("VmRSS:"))

KEPT = []  # nothing made is freed, so each measurement's memory is its own

def cost(make, count=100):
    gc.collect()
    before, cpu = rss(), time.process_time()
    for index in range(count):
        KEPT.append(make(index))
    return {"ms": 1000 * (time.process_time() - cpu) / count, "kb": (rss() - before) / count}

print(json.dumps({"bot": cost(lambda index: Bot(f"{index + 1}:x", session=AiohttpSession())),
                  "session": cost(lambda index: AiohttpSession()),
                  "ssl": cost(lambda index: ssl.create_default_context(cafile=certifi.where()))}))
"""


def session_cost() -> list[str]:
    """What one aiogram Bot with its own AiohttpSession costs, and how much of it is the session's SSL context
    (aiogram makes one per session, loading certifi's CA bundle), in a fresh interpreter."""
    done = subprocess.run([sys.executable, "-c", SESSION_COST], capture_output=True, text=True, check=True, cwd=ROOT)
    cost = json.loads(done.stdout)
    return [f"- One aiogram `Bot` with its own `AiohttpSession` (what a fleet that gives each bot its own session pays "
            f"per bot), "
            f"100 made in a fresh interpreter: {cost['bot']['ms']:.1f} ms of CPU and {cost['bot']['kb']:.0f} KB "
            f"resident each; `AiohttpSession()` alone {cost['session']['ms']:.1f} ms and "
            f"{cost['session']['kb']:.0f} KB; "
            f"`ssl.create_default_context(cafile=certifi.where())`, which `AiohttpSession.__init__` runs for every "
            f"session (aiogram {version('aiogram')}), {cost['ssl']['ms']:.1f} ms and {cost['ssl']['kb']:.0f} KB."]


# --- ingest ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Post:
    update_id: int
    bot: int  # index into the seeded bots
    chat_id: int
    body: bytes


def make_posts(first_update_id: int, count: int, users: Sequence[int], bots: int) -> list[Post]:
    """Update i from customer i mod len(users) to bot i mod `bots`."""
    profiles = [make_user(user_id) for user_id in users]
    posts = []
    for index in range(count):
        profile = profiles[index % len(profiles)]
        update_id = first_update_id + index
        posts.append(Post(update_id, index % bots, profile["id"], make_update(update_id, profile)))
    return posts


class FleetConnection(HttpConnection):
    """ingest.py's keep-alive connection, each request to its own bot's webhook."""

    async def send(self, head: bytes, body: bytes) -> int:
        self.head = head
        return await self.post(body)


def heads(seeded: Sequence[Seeded], port: int) -> list[bytes]:
    return [(f"POST {bot.path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
             f"X-Telegram-Bot-Api-Secret-Token: {bot.secret}\r\nContent-Length: ").encode() for bot in seeded]


async def drive(port: int, seeded: Sequence[Seeded], posts: Sequence[Post], concurrency: int,
                limit_seconds: float) -> Load:
    """One update in flight per bot and chat (Telegram's queues); non-2xx retried, as ingest.py does."""
    load = Load()
    started = time.perf_counter()
    deadline = started + limit_seconds
    items = iter(posts)
    locks: dict[tuple[int, int], asyncio.Lock] = {}
    by_bot = heads(seeded, port)

    async def worker(connection: FleetConnection) -> None:
        try:
            while time.perf_counter() < deadline and (post := next(items, None)) is not None:
                async with locks.setdefault((post.bot, post.chat_id), asyncio.Lock()):
                    load.sent += 1
                    load.sent_ids.append(post.update_id)
                    for _ in range(5):
                        began = time.perf_counter()
                        status = await connection.send(by_bot[post.bot], post.body)
                        if 200 <= status < 300:
                            load.latencies.append(time.perf_counter() - began)
                            load.acked += 1
                            break
                        load.errors += 1
                        await asyncio.sleep(0.05)
                    else:
                        load.lost += 1
        finally:
            connection.close()

    await asyncio.gather(*(worker(FleetConnection(port, "")) for _ in range(concurrency)))
    load.seconds = time.perf_counter() - started
    return load


@dataclass
class IngestRun:
    bots: int
    load: Load
    stored_once: int = 0
    duplicates: int = 0
    cpu_seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.load.acked / self.load.seconds if self.load.seconds else 0.0

    def latency_ms(self, share: float) -> float:
        return 1000 * percentile(self.load.latencies, share) if self.load.latencies else float("nan")


async def ingest_run(count: int, options: Options, workdir: Path, http: aiohttp.ClientSession) -> IngestRun:
    key = new_key()
    tag = secrets.token_hex(5)
    path = workdir / f"ingest-{count}-{tag}.sqlite3"
    seeded = await seed(f"sqlite://{path}", count, key)
    log = workdir / f"ingest-{count}-{tag}.log"
    users = [FIRST_USER_ID + index for index in range(options.users)]
    warmup_users = [FIRST_USER_ID + WARMUP_USER_OFFSET + index for index in range(options.users)]
    warmup = make_posts(1, options.warmup, warmup_users, count)
    measured = make_posts(options.warmup + 1, options.updates, users, count)
    run = IngestRun(count, Load())
    async with standalone_tgsim(seeded, log, http) as (sim, _):
        port = free_port()
        env = frontdesk_env(f"sqlite://{path}", sim.base_url, port, key, OUTBOX_WORKERS="0", LOG_LEVEL="WARNING",
                            CUSTOMER_RATE_BURST="1000000", AI_BASE_URL="", AI_MODEL="")
        process = spawn([sys.executable, "-m", "bot"], env, log)
        try:
            await wait_healthy(http, port, process)
            warm = await drive(port, seeded, warmup, options.concurrency, 120.0)
            if warm.lost:
                run.problems.append(f"{warm.lost} warm-up updates not acknowledged")
            await asyncio.to_thread(wait_for_quiet, options.quiet_seconds)
            cpu = process_cpu(process.pid)
            run.load = await drive(port, seeded, measured, options.concurrency, options.limit_seconds)
            run.cpu_seconds = process_cpu(process.pid) - cpu
        finally:
            stop(process, 5.0)  # a thousand bots take minutes to close (see the start-up section)
    with contextlib.closing(sqlite3.connect(path)) as connection:
        stored = Counter(connection.execute(
            "SELECT b.telegram_id, m.source_key FROM message m JOIN bot b ON b.id = m.bot_id "
            "WHERE m.author_kind = 'customer'").fetchall())
    by_update = {post.update_id: post for post in measured}
    run.stored_once = sum(1 for update_id in run.load.sent_ids
                          if stored[(seeded[by_update[update_id].bot].telegram_id, f"tg:{update_id}")] == 1)
    run.duplicates = sum(number - 1 for number in stored.values() if number > 1)
    if run.load.lost or run.stored_once != run.load.sent or run.duplicates:
        run.problems.append(f"{run.load.lost} lost, {run.stored_once}/{run.load.sent} stored once, "
                            f"{run.duplicates} duplicates; see {log}")
    else:
        log.unlink(missing_ok=True)
    return run


def ingest_table(runs: Sequence[IngestRun], counts: Sequence[int]) -> str:
    lines = ["| updates go to | acknowledged updates/s (median) | p50 ack | p99 ack | Frontdesk CPU per update | "
             "stored exactly once | each run's updates/s |",
             "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for count in counts:
        mine = [run for run in runs if run.bots == count]
        good = [run for run in mine if not run.problems]
        label = "one bot" if count == 1 else f"{count:,} bots (update i to bot i mod {count:,})"
        if not good:
            lines.append(f"| {label} | **FAILED: {'; '.join(p for run in mine for p in run.problems)}** | | | | | |")
            continue
        median = statistics.median
        lines.append(
            f"| {label} | {median(run.rate for run in good):,.0f}"
            f" | {median(run.latency_ms(0.5) for run in good):.1f} ms"
            f" | {median(run.latency_ms(0.99) for run in good):.1f} ms"
            f" | {median(1000 * run.cpu_seconds / max(1, run.load.acked) for run in good):.2f} ms"
            f" | {sum(run.stored_once for run in mine)}/{sum(run.load.sent for run in mine)}"
            f" | {', '.join(f'{run.rate:,.0f}' for run in mine)} |")
    return "\n".join(lines)


def ingest_comparison(runs: Sequence[IngestRun], counts: Sequence[int]) -> list[str]:
    one = [run.rate for run in runs if run.bots == min(counts) and not run.problems]
    many = [run.rate for run in runs if run.bots == max(counts) and not run.problems]
    if not one or not many or min(counts) == max(counts):
        return []
    ratio = statistics.median(many) / statistics.median(one)
    return [f"- Spread over {max(counts):,} bots: {statistics.median(many):,.0f} updates/s against "
            f"{statistics.median(one):,.0f} to one bot ({100 * ratio:.0f}%)."]


# --- fairness -------------------------------------------------------------------------------------------------


def question(user_id: int) -> str:
    """Each customer's own question (the tag finds it in the model's request log)."""
    return f"Hello! Can you deliver a birthday cake to me tonight, and how do I pay? [customer {user_id}]"


@dataclass
class FairRun:
    flood: int  # questions the flooded bot got (0: no flood)
    others: int
    database: str = "sqlite"  # or "postgres" (with Redis)
    sent: dict[int, float] = field(default_factory=dict)  # user id → when the bench had them send
    acked: dict[int, float] = field(default_factory=dict)  # ... tgsim's webhook got 2xx for their update
    claimed: dict[int, float] = field(default_factory=dict)  # ... a worker leased their answer job
    asked: dict[int, float] = field(default_factory=dict)  # ... the model got their question
    first: dict[int, float] = field(default_factory=dict)  # ... their first words reached the chat
    final: dict[int, float] = field(default_factory=dict)  # ... the whole answer
    flood_first: dict[int, float] = field(default_factory=dict)
    flood_final: dict[int, float] = field(default_factory=dict)
    flood_429: int = 0
    other_429: int = 0
    cpu_seconds: float = 0.0
    loop_cpu: float = 0.0  # of those, the event loop's thread (the rest: aiosqlite's and executor threads)
    elapsed: float = 0.0
    most_streaming: int = 0
    background: float = 0.0
    problems: list[str] = field(default_factory=list)

    def waits(self, what: dict[int, float], users: Sequence[int] | None = None) -> list[float]:
        users = list(self.sent) if users is None else users
        return [what[user] - self.sent[user] for user in users if user in what]

    @property
    def other_users(self) -> list[int]:
        return [user for user in self.sent if user < FIRST_USER_ID + FLOOD_USER_OFFSET]

    @property
    def flood_users(self) -> list[int]:
        return [user for user in self.sent if user >= FIRST_USER_ID + FLOOD_USER_OFFSET]


LEASE_SECONDS = 120.0  # OUTBOX_LEASE_SECONDS's default: a job's lease runs out this long after its claim


CLAIMS_SQL = ("SELECT b.telegram_id, j.lease_expires_at FROM outbox_job j JOIN bot b ON b.id = j.bot_id "
              "WHERE j.kind = 'answer' AND j.lease_expires_at IS NOT NULL AND b.telegram_id != {}")


async def sample_claims(database_url: str, run: FairRun, user_of_bot: dict[int, int]) -> None:
    """Reads the outbox while the row runs: when each of the 99 customers' answer job was claimed (its
    lease's end minus the lease; a finished job's lease is cleared, so it is read while it runs). The lease
    counts from the moment the claim began, before its queries waited their turn."""
    if database_url.startswith("sqlite://"):
        path = database_url.removeprefix("sqlite://")

        async def leases() -> list[tuple[int, datetime]]:
            with contextlib.suppress(sqlite3.Error), contextlib.closing(
                    sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0)) as connection:
                return [(int(telegram_id), datetime.fromisoformat(str(lease))) for telegram_id, lease
                        in connection.execute(CLAIMS_SQL.format("?"), (FIRST_BOT_ID,)).fetchall()]
            return []
    else:
        connection = await asyncpg.connect(database_url)

        async def leases() -> list[tuple[int, datetime]]:
            return [(int(row[0]), row[1]) for row in await connection.fetch(CLAIMS_SQL.format("$1"), FIRST_BOT_ID)]
    try:
        while True:
            for telegram_id, lease in await leases():
                user = user_of_bot.get(telegram_id)
                if user is not None and user not in run.claimed:
                    run.claimed[user] = lease.timestamp() - LEASE_SECONDS
            await asyncio.sleep(0.1)
    finally:
        if not database_url.startswith("sqlite://"):
            await connection.close()


class Watch:
    """Reads tgsim's call log as it grows: each customer's first words and whole answer."""

    def __init__(self, sim: Simulator, run: FairRun, chats: dict[tuple[int, int], int]) -> None:
        self.sim, self.run, self.chats = sim, run, chats  # (bot id, chat id) → user id
        self.seen = len(sim.recorder.calls)
        self.flood_bot = FIRST_BOT_ID

    def scan(self) -> bool:
        calls, run = self.sim.recorder.calls, self.run
        while self.seen < len(calls):
            call = calls[self.seen]
            self.seen += 1
            if call.error_code == 429:
                if call.bot_id == self.flood_bot:
                    run.flood_429 += 1
                else:
                    run.other_429 += 1
                continue
            if not call.ok or call.method not in ("sendMessage", "sendMessageDraft"):
                continue
            with contextlib.suppress(TypeError, ValueError):
                user = self.chats.get((int(call.bot_id or 0), int(call.params.get("chat_id", 0))))
                if user is None:
                    continue
                flooded = call.bot_id == self.flood_bot
                first, final = (run.flood_first, run.flood_final) if flooded else (run.first, run.final)
                first.setdefault(user, call.time)
                if call.method == "sendMessage" and LAST_SENTENCE in str(call.params.get("text", "")):
                    final.setdefault(user, call.time)
        return all(user in run.final for user in run.other_users)


async def model_requests(ai: AIServer, http: aiohttp.ClientSession) -> list[dict[str, Any]]:
    async with http.get(f"http://127.0.0.1:{ai.stats_port}/requests") as response:
        return list(await response.json())


async def fairness_run(flood: int, kind: str, options: Options, ai: AIServer, workdir: Path,
                       http: aiohttp.ClientSession) -> FairRun:
    tag = secrets.token_hex(5)
    server = "postgres" if kind == "postgres-split" else kind
    async with database(server, options, workdir, f"fair_{flood}_{tag}") as (database_url, redis_url):
        return await _fairness_run(FairRun(flood, options.fair_bots - 1, kind), options, ai, workdir, http,
                                   database_url, redis_url, tag)


async def _fairness_run(run: FairRun, options: Options, ai: AIServer, workdir: Path, http: aiohttp.ClientSession,
                        database_url: str, redis_url: str, tag: str) -> FairRun:
    flood, key = run.flood, new_key()
    seeded = await seed_apart(database_url, options.fair_bots, key)
    log = workdir / f"fair-{run.database}-{flood}-{tag}.log"
    warm_user = FIRST_USER_ID + WARMUP_USER_OFFSET
    flood_users = [FIRST_USER_ID + FLOOD_USER_OFFSET + index for index in range(flood)]
    others = {FIRST_USER_ID + bot.index: bot for bot in seeded[1:]}
    async with Simulator(token=seeded[0].token, port=0, bot_username=username(0), flood=FloodLimits()) as sim:
        for bot in seeded[1:]:
            sim.add_bot(bot.token, username=username(bot.index))
        sim.create_user("Warm-up", id=warm_user, bot=seeded[0].token)
        for user in flood_users:
            sim.create_user(f"Flood {user}", id=user, bot=seeded[0].token)
        for user, bot in others.items():
            sim.create_user(f"Customer {user}", id=user, bot=bot.token)
        chats = {(FIRST_BOT_ID, user): user for user in [warm_user, *flood_users]}
        chats.update({(bot.telegram_id, user): user for user, bot in others.items()})
        port = free_port()
        env = frontdesk_env(database_url, sim.base_url, port, key, LOG_LEVEL="WARNING", AI_BASE_URL=ai.base_url,
                            AI_MODEL="bench-model", AI_API_KEY="bench-key", DAILY_AI_QUOTA="1000000",
                            CUSTOMER_RATE_BURST="1000", CUSTOMER_RATE_PER_MINUTE="100000",
                            # a prefix of its own: tgsim numbers this row's updates as it did the last row's
                            **({"REDIS_URL": redis_url, "REDIS_PREFIX": f"fleet-{tag}"} if redis_url else {}),
                            **options.fair_settings)
        split = run.database == "postgres-split"
        # Split: the first process only receives; the others work, with every bot's webhook still at the first
        processes = [spawn([sys.executable, "-m", "bot"], {**env, "OUTBOX_WORKERS": "0"} if split else env, log)]
        ports = [port]
        if split:
            for index in range(options.split_workers):
                ports.append(free_port())
                processes.append(spawn([sys.executable, "-m", "bot"],
                                       {**env, "PORT": str(ports[-1]), "WEBHOOK_BASE_URL": env["WEBHOOK_BASE_URL"]},
                                       log.with_suffix(f".worker{index}.log")))
        try:
            for each_port, each in zip(ports, processes, strict=True):
                await wait_healthy(http, each_port, each)
            sim.send_text(warm_user, question(warm_user), bot=seeded[0].token)
            warm = FairRun(0, 0, sent={warm_user: time.time()})
            warm_watch = Watch(sim, warm, chats)
            warm_watch.seen = 0
            await sim.wait_until(lambda: warm_watch.scan() or warm_user in warm.flood_final, 60.0,
                                 "the warm-up customer's answer")
            await asyncio.sleep(1.0)
            run.background = await asyncio.to_thread(wait_for_quiet, options.quiet_seconds)
            await ai.stats(http, reset=True)
            watch = Watch(sim, run, chats)
            sampler = asyncio.create_task(sample_claims(
                database_url, run, {bot.telegram_id: user for user, bot in others.items()}))
            cpu = [process_cpu(each.pid) for each in processes]
            threads_before = [thread_cpu(each.pid).get(each.pid, 0.0) for each in processes]
            began = time.time()
            for user in flood_users:
                run.sent[user] = time.time()
                sim.send_text(user, question(user), bot=seeded[0].token)
            if flood:
                await asyncio.sleep(options.lead)
            for user, bot in others.items():
                run.sent[user] = time.time()
                sim.send_text(user, question(user), bot=bot.token)
            try:
                await sim.wait_until(watch.scan, options.fair_timeout, "the 99 customers' answers")
            except TimeoutError as error:
                run.problems.append(str(error))
            run.elapsed = time.time() - began
            run.cpu_seconds = sum(process_cpu(each.pid) for each in processes) - sum(cpu)
            run.loop_cpu = sum(thread_cpu(each.pid).get(each.pid, 0.0) for each in processes) - sum(threads_before)
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
            watch.scan()
            stats = await ai.stats(http)
            run.most_streaming = stats["most_streaming"]
            for request in await model_requests(ai, http):
                tagged = int(request["tag"]) if request["tag"] else 0
                if tagged in run.sent:
                    run.asked.setdefault(tagged, float(request["at"]))
            bot_user = {bot.telegram_id: user for user, bot in others.items()}
            for attempt in sim.deliveries():
                owner = bot_user.get(int(attempt.get("bot_id") or 0))
                if owner is not None and attempt["status"] and 200 <= attempt["status"] < 300:
                    run.acked.setdefault(owner, float(attempt["time"]))
        finally:
            for each in processes:
                stop(each, 5.0)  # a hundred bots take half a minute to close
    missing = [user for user in run.other_users if user not in run.first]
    if missing:
        run.problems.append(f"{len(missing)} of the {len(run.other_users)} customers got no reply")
    if run.problems:
        run.problems.append(f"log: {log}")
    else:
        for each_log in workdir.glob(f"{log.stem}*.log"):
            each_log.unlink(missing_ok=True)
    return run


def three(values: Sequence[float]) -> str:
    if not values:
        return "-"
    return f"{percentile(values, 0.5):.2f} / {percentile(values, 0.99):.2f} s"


def fairness_table(runs: Sequence[FairRun], options: Options) -> str:
    lines = ["| row | the 99: first words p50 / p99 | their webhook acknowledged p50 / p99 | their answer job "
             "claimed p50 / p99 | their question reached the model p50 / p99 | their whole answer p50 / p99 | "
             "flooded bot: first words p50 / p99 (its customers with first words by then) | "
             "429s (flooded bot / others) | answers streamed at once (most) | Frontdesk CPU over the row "
             "(of it the event loop's thread) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for kind, flood in ((kind, flood) for kind in options.fair_databases for flood in (0, options.flood)):
        for number, run in enumerate([run for run in runs if run.flood == flood and run.database == kind], 1):
            label = (f"{DATABASE_NAMES[kind]}, " + (f"flood: {flood} questions to one bot, then 1 to each of 99 others"
                     if flood else "no flood: 1 question to each of 99 bots") + f" (run {number})")
            if run.problems:
                lines.append(f"| {label} | **FAILED: {'; '.join(run.problems)}** | | | | | | | | |")
                continue
            users = run.other_users
            flooded = (f"{three(run.waits(run.flood_first, run.flood_users))} ({len(run.flood_first)}/{flood})"
                       if flood else "-")
            lines.append(
                f"| {label} | {three(run.waits(run.first, users))} | {three(run.waits(run.acked, users))} | "
                f"{three(run.waits(run.claimed, users))} ({len(run.claimed)} seen) | "
                f"{three(run.waits(run.asked, users))} | {three(run.waits(run.final, users))} | {flooded} | "
                f"{run.flood_429} / {run.other_429} | {run.most_streaming} | "
                f"{run.cpu_seconds:.1f} s over {run.elapsed:.1f} s ({run.loop_cpu:.1f} s, "
                f"{100 * run.loop_cpu / max(run.elapsed, 1e-9):.0f}% of its time) |")
    return "\n".join(lines)


DATABASE_NAMES = {"sqlite": "SQLite", "postgres": "PostgreSQL + Redis",
                  "postgres-split": "PostgreSQL + Redis, receiving and working apart"}


def fairness_comparison(runs: Sequence[FairRun], options: Options) -> list[str]:
    def p99s(flood: int, kind: str) -> list[float]:
        return [percentile(run.waits(run.first, run.other_users), 0.99) for run in runs
                if run.flood == flood and run.database == kind and not run.problems and run.first]

    lines = []
    for kind in options.fair_databases:
        quiet, busy = p99s(0, kind), p99s(options.flood, kind)
        if quiet and busy:
            calm, flooded = statistics.median(quiet), statistics.median(busy)
            lines.append(f"- {DATABASE_NAMES[kind]}: p99 to the first words for the 99 (median of runs): {calm:.2f} s "
                         f"without the flood, {flooded:.2f} s with it ({flooded / calm:.1f}×).")
    return lines


# --- the document and main ------------------------------------------------------------------------------------


@dataclass
class Options:
    sections: list[str]
    runs: int
    counts: list[int]
    idle: float
    idle_window: float
    updates: int
    warmup: int
    users: int
    concurrency: int
    limit_seconds: float
    fair_bots: int
    flood: int
    lead: float
    fair_timeout: float
    quiet_seconds: float
    shutdown_cap: float
    fair_settings: dict[str, str]
    doc: Path | None
    fair_databases: list[str] = field(default_factory=lambda: ["sqlite"])
    split_workers: int = 1
    postgres_url: str = ""  # BENCH_POSTGRES_URL, as bench/run.sh exports it (rush_hour.database reads these two)
    redis_url: str = ""
    code: str = ""


def header(options: Options) -> list[str]:
    command = f"`{shlex.join(['python', 'bench/fleet.py', *sys.argv[1:]])}`"
    if launcher := os.environ.get("BENCH_LAUNCHER", ""):
        command = f"`{launcher}`, which runs {command}"
    return [f"- **Date:** {datetime.now(UTC):%Y-%m-%d %H:%M} UTC", f"- **Machine:** {machine()}",
            f"- **Frontdesk:** commit {options.code}", f"- **Command:** {command}"]


def write_doc(options: Options, section: str, body: list[str]) -> None:
    if options.doc is None:
        return
    begin, end = marks(f"fleet.py {section}")
    write_section(options.doc, f"fleet.py {section}", "\n".join([begin, *header(options), *body, end]),
                  HEADINGS[section])


async def run_startup(options: Options, workdir: Path, http: aiohttp.ClientSession) -> bool:
    runs = []
    for number in range(options.runs):
        for count in options.counts:
            run = await startup_run(count, options, workdir, http)
            print(f"startup run {number + 1}/{options.runs}, {count} bots: started in {run.started:.2f} s "
                  f"(healthz {run.healthy:.2f} s, last setWebhook {run.hooks_set:.2f} s), RSS {run.rss_idle_mb:.0f} MB "
                  f"idle, {run.files_idle} files, idle CPU {100 * run.idle_cpu_share:.1f}%, calls {dict(run.calls)}"
                  + (f"  PROBLEMS: {'; '.join(run.problems)}" if run.problems else ""), file=sys.stderr, flush=True)
            runs.append(run)
    table = startup_table(runs, options.counts, options.shutdown_cap)
    lines = startup_comparison(runs, options.counts) + session_cost()
    print(table, *lines, sep="\n")
    write_doc(options, "startup", [
        f"- **Load:** {', '.join(f'{count:,}' for count in options.counts)} bots seeded, interleaved, {options.runs} "
        f"runs each, medians; idle figures after {options.idle:g} s with nothing to do (CPU over its last "
        f"{options.idle_window:g} s). tgsim standalone with Telegram's flood limits; SQLite; default settings.",
        "", table, "", *lines])
    return not any(run.problems for run in runs)


async def run_ingest(options: Options, workdir: Path, http: aiohttp.ClientSession) -> bool:
    runs = []
    for number in range(options.runs):
        for count in options.counts:
            run = await ingest_run(count, options, workdir, http)
            print(f"ingest run {number + 1}/{options.runs}, {count} bots: {run.rate:,.0f} updates/s, p50 "
                  f"{run.latency_ms(0.5):.1f} ms, p99 {run.latency_ms(0.99):.1f} ms, stored once "
                  f"{run.stored_once}/{run.load.sent}"
                  + (f"  PROBLEMS: {'; '.join(run.problems)}" if run.problems else ""), file=sys.stderr, flush=True)
            runs.append(run)
    table = ingest_table(runs, options.counts)
    lines = ingest_comparison(runs, options.counts)
    print(table, *lines, sep="\n")
    write_doc(options, "ingest", [
        f"- **Load:** up to {options.updates:,} updates or {options.limit_seconds:g} s per run from "
        f"{options.users:,} customers over {options.concurrency} keep-alive connections, after {options.warmup:,} "
        f"warm-up updates from other customers spread the same way; OUTBOX_WORKERS=0; SQLite; {options.runs} runs "
        "per row, interleaved, medians.", "", table, "", *lines])
    return not any(run.problems for run in runs)


async def run_fairness(options: Options, workdir: Path, http: aiohttp.ClientSession) -> bool:
    model = Model(0.25, 100, 0.05, 1800)
    ai = AIServer(model, workdir / "ai.log")
    ai.start()
    runs = []
    try:
        for number in range(options.runs):
            for kind, flood in ((kind, flood) for kind in options.fair_databases for flood in (0, options.flood)):
                run = await fairness_run(flood, kind, options, ai, workdir, http)
                firsts = run.waits(run.first, run.other_users)
                print(f"fairness run {number + 1}/{options.runs}, {kind}, flood {flood}: the 99's first words "
                      f"{three(firsts)}, asked {three(run.waits(run.asked, run.other_users))}, claimed "
                      f"{three(run.waits(run.claimed, run.other_users))}, loop thread "
                      f"{run.loop_cpu:.1f} s of {run.cpu_seconds:.1f} s CPU over {run.elapsed:.1f} s, acked "
                      f"{three(run.waits(run.acked, run.other_users))}, flood answered {len(run.flood_first)}"
                      + (f"  PROBLEMS: {'; '.join(run.problems)}" if run.problems else ""),
                      file=sys.stderr, flush=True)
                runs.append(run)
    finally:
        ai.stop()
    table = fairness_table(runs, options)
    lines = fairness_comparison(runs, options)
    print(table, *lines, sep="\n")
    write_doc(options, "fairness", [
        f"- **Load:** {options.fair_bots} bots seeded ("
        f"{' and '.join(DATABASE_NAMES[kind] for kind in options.fair_databases)}, each row a fresh database; "
        "default settings: OUTBOX_WORKERS=512); tgsim in the "
        "bench process with Telegram's flood limits, updates by webhook; the model is bench/ai_server.py (first "
        f"words after {1000 * model.first_token:.0f} ms, a {model.chars:,}-character answer in {model.chunks} "
        f"pieces, {model.answer_seconds:.2f} s). One warm-up answer first. Flood row: {options.flood} customers "
        f"write to one bot at once, {options.lead:g} s later one customer writes to each of the 99 others; "
        f"no-flood row: only the 99. Times from the bench having the customer send; p99 of 99 is their slowest. "
        f"{options.runs} runs each, interleaved."
        + (f" Settings: {', '.join(f'{k}={v}' for k, v in options.fair_settings.items())}."
           if options.fair_settings else ""), "", table, "", *lines])
    return not any(run.problems for run in runs)


def parse_options(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"some of {', '.join(SECTIONS)}")
    parser.add_argument("--runs", type=int, default=3, help="runs per row (interleaved)")
    parser.add_argument("--bots", default="1,1000",
                        help="bot counts for startup and ingest (the first is the baseline)")
    parser.add_argument("--idle", type=float, default=20.0, help="seconds idle before reading memory")
    parser.add_argument("--idle-window", type=float, default=10.0, help="seconds of idle CPU measured")
    parser.add_argument("--updates", type=int, default=3000, help="ingest: measured updates per run")
    parser.add_argument("--warmup", type=int, default=1000, help="ingest: warm-up updates per run")
    parser.add_argument("--users", type=int, default=1000, help="ingest: customers writing")
    parser.add_argument("--concurrency", type=int, default=64, help="ingest: connections")
    parser.add_argument("--limit-seconds", type=float, default=10.0, help="ingest: stop sending after this long")
    parser.add_argument("--shutdown-cap", type=float, default=45.0,
                        help="startup: wait this long for the process to exit after SIGTERM")
    parser.add_argument("--fair-bots", type=int, default=100, help="fairness: bots (one flooded, the rest one each)")
    parser.add_argument("--flood", type=int, default=600, help="fairness: questions to the flooded bot")
    parser.add_argument("--lead", type=float, default=1.0, help="fairness: seconds between the flood and the others")
    parser.add_argument("--fair-timeout", type=float, default=180.0, help="fairness: give a row up after this long")
    both = os.environ.get("BENCH_POSTGRES_URL")
    parser.add_argument("--fair-databases", default="sqlite,postgres" if both else "sqlite",
                        help="fairness: some of sqlite, postgres (PostgreSQL + Redis at BENCH_POSTGRES_URL and "
                             "BENCH_REDIS_URL, which bench/run.sh starts; both by default when they are set), "
                             "postgres-split (as postgres, one process receiving and --split-workers working)")
    parser.add_argument("--split-workers", type=int, default=1, help="fairness: working processes in postgres-split")
    parser.add_argument("--fair-settings", default="",
                        help="fairness: Frontdesk settings for every row, NAME=VALUE[+NAME=VALUE...]")
    parser.add_argument("--quiet-seconds", type=float, default=3.0,
                        help="before each run, wait up to this long for other work on the machine to stop")
    parser.add_argument("--quick", action="store_true", help="a smoke run (10 bots, one run), the document left alone")
    parser.add_argument("--no-doc", action="store_true", help="only print the tables")
    args = parser.parse_args(argv)
    sections = args.sections.split(",")
    if any(section not in SECTIONS for section in sections):
        parser.error(f"sections are some of {', '.join(SECTIONS)}")
    counts = [int(count) for count in args.bots.split(",")]
    databases = args.fair_databases.split(",")
    if any(kind not in DATABASE_NAMES for kind in databases):
        parser.error(f"--fair-databases are some of {', '.join(DATABASE_NAMES)}")
    if any(kind.startswith("postgres") for kind in databases) and not os.environ.get("BENCH_POSTGRES_URL"):
        parser.error("PostgreSQL rows need BENCH_POSTGRES_URL and BENCH_REDIS_URL (bash bench/run.sh fleet sets them)")
    if args.quick:
        counts, args.runs, args.updates, args.warmup, args.users = [1, 10], 1, 300, 50, 50
        args.fair_bots, args.flood, args.idle, args.idle_window, args.limit_seconds = 10, 20, 3.0, 2.0, 5.0
    return Options(sections, args.runs, counts, args.idle, min(args.idle_window, args.idle), args.updates,
                   args.warmup, args.users, args.concurrency, args.limit_seconds, args.fair_bots, args.flood,
                   args.lead, args.fair_timeout, args.quiet_seconds, args.shutdown_cap,
                   dict(pair.partition("=")[::2] for pair in args.fair_settings.split("+") if pair),
                   None if args.no_doc or args.quick else DOC_PATH, databases,
                   split_workers=args.split_workers, postgres_url=os.environ.get("BENCH_POSTGRES_URL", ""),
                   redis_url=os.environ.get("BENCH_REDIS_URL", ""))


async def run_all(options: Options, workdir: Path) -> bool:
    ok = True
    async with aiohttp.ClientSession() as http:
        if "startup" in options.sections:
            ok = await run_startup(options, workdir, http) and ok
        if "ingest" in options.sections:
            ok = await run_ingest(options, workdir, http) and ok
        if "fairness" in options.sections:
            ok = await run_fairness(options, workdir, http) and ok
    return ok


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    raise_file_limit()
    options.code = code_version()
    workdir = Path(tempfile.mkdtemp(prefix="frontdesk-fleet-"))
    ok = asyncio.run(run_all(options, workdir))
    if options.doc is not None:
        print(f"wrote {options.doc}", file=sys.stderr)
    if ok:
        with contextlib.suppress(OSError):
            for path in workdir.iterdir():
                path.unlink()
            workdir.rmdir()
    else:
        print(f"fleet: problems; logs kept in {workdir}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
