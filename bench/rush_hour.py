"""Rush hour (issue 21): N customers write at the same moment and the model streams like a hosted one.

The model is bench/ai_server.py, in a process of its own: tests/fake_ai.py's FakeAI with its first
words after 250 ms and the rest of a 1,800-character answer in 100 pieces 50 ms apart (about
5.25 s an answer). Frontdesk is `python -m bot`, a black box started with the settings of the row
(`--configs`: the default settings, today's `OUTBOX_WORKERS=4`, or any `NAME=VALUE+NAME=VALUE`),
a fresh database each row, an empty knowledge base (so every question goes to the model), and the
daily AI quota and the customers' rate limits raised out of the way.

- **Telegram**: a tgsim Simulator in this process, with Telegram's flood limits on, serves the Bot
  API; Frontdesk takes its updates by webhook. N private-chat users each send one text, all at the
  same moment. A customer's first words are the first `sendMessageDraft` or `sendMessage` that
  reached their chat, their final message the `sendMessage` holding the whole answer; every 429
  tgsim answered is counted.
- **Widget**: N visitors each open a widget socket and say hello (Frontdesk without Telegram),
  then all send a question at the same moment. First words: the first `delta` (or the answer's
  `message`) frame; final: the answer's `message` frame.

Each clock starts when this process had that customer send their message. Before each row one
customer asks and gets an answer (a shop at rush hour is already running). Measured: time to the
first words and to the final message (p50, p90, max), the 429s, the most answers the model was
streaming at once, and Frontdesk's CPU time and peak memory over the row.

Targets (p90 of the first words): on Telegram the model's first-token time + 0.9 × N/30 s + 0.5 s
and no 429; on the widget the model's first-token time + 100 ms. A missed target is reported as
MISSED, not an error; the script exits 1 only when the work it times did not happen (a customer
without first words, or without exactly one final answer, or Frontdesk failing).

`bash bench/run.sh rush` runs it and writes its section of docs/BENCHMARKS.md; `--quick` is a
10-customer smoke run that leaves the document alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from ai_server import LAST_SENTENCE
from common import DOC_PATH, ROOT, marks, write_section
from ingest import code_version, machine, pg_execute, wait_for_quiet
from outbound import free_port, process_cpu, spawn, stop, wait_until_up
from tgsim import FloodLimits, Simulator
from widget import ONE_ADDRESS, hello

from bot.settings import Settings

TOKEN = "7000000021:BENCH-rush-hour-token"
FIRST_CHAT = 640_000_000
WARM_UP_CHAT = FIRST_CHAT - 1
BEGIN_MARK, END_MARK = marks("rush_hour.py")
TELEGRAM_PER_SECOND = 30  # what Telegram lets one bot send, all chats together


def question(index: int) -> str:
    """Each customer's own question; nothing in the (empty) knowledge base answers it."""
    return f"Hello! Can you deliver a birthday order to house {index} on Cedar street tonight, and how do I pay?"


@dataclass(frozen=True)
class Config:
    name: str
    env: dict[str, str]
    label: str


CONFIGS = {
    "default": Config("default", {}, "default settings"),
    "workers4": Config("workers4", {"OUTBOX_WORKERS": "4"}, "OUTBOX_WORKERS=4 (the default when issue 21 was filed)"),
}


def parse_config(text: str) -> Config:
    """A name of CONFIGS, or overrides written `NAME=VALUE+NAME=VALUE`."""
    if text in CONFIGS:
        return CONFIGS[text]
    pairs = [part.partition("=") for part in text.split("+")]
    if not all(name and sep for name, sep, _ in pairs):
        raise ValueError(f"{text!r} is neither one of {', '.join(CONFIGS)} nor NAME=VALUE[+NAME=VALUE...]")
    return Config(text, {name: value for name, _, value in pairs}, text.replace("+", ", "))


@dataclass(frozen=True)
class Model:
    first_token: float  # seconds from the request to the first words
    chunks: int
    chunk_delay: float
    chars: int

    @property
    def answer_seconds(self) -> float:
        return self.first_token + self.chunks * self.chunk_delay


@dataclass
class Options:
    customers: list[int]
    surfaces: list[str]
    configs: list[Config]
    compare_at: set[int]  # customer counts at which the configurations other than the first run
    databases: list[str]
    model: Model
    timeout: float | None
    quiet_seconds: float
    postgres_url: str
    redis_url: str
    doc: Path | None


@dataclass
class Row:
    surface: str
    customers: int
    config: Config
    database: str
    sent: list[float] = field(default_factory=list)  # time.time() at which each customer sent
    first: list[float | None] = field(default_factory=list)  # ... got their first words
    final: list[float | None] = field(default_factory=list)  # ... got the final message
    previews: int = 0  # drafts (Telegram) or delta frames (widget) that reached the customers
    flood_429: int = 0
    other_errors: list[str] = field(default_factory=list)
    violations: int = 0
    most_streaming: int = 0  # the most answers the model streamed at once
    ai_requests: int = 0
    cpu_seconds: float = 0.0  # Frontdesk's, from the burst to the last final message
    elapsed: float = 0.0
    rss_before_mb: float = 0.0
    rss_peak_mb: float = 0.0
    background: float = 0.0  # the share of the machine other work used just before the row
    problems: list[str] = field(default_factory=list)

    @property
    def first_words(self) -> list[float]:
        return [got - sent for got, sent in zip(self.first, self.sent, strict=True) if got is not None]

    @property
    def finals(self) -> list[float]:
        return [got - sent for got, sent in zip(self.final, self.sent, strict=True) if got is not None]


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest rank: the smallest value with at least `share` of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def target(row: Row, model: Model) -> float:
    """The most the p90 of the first words may be (issue 21)."""
    if row.surface == "telegram":
        return model.first_token + 0.9 * row.customers / TELEGRAM_PER_SECOND + 0.5
    return model.first_token + 0.1


def met(row: Row, model: Model) -> bool:
    return percentile(row.first_words, 0.9) <= target(row, model) and row.flood_429 == 0


# --- the processes ---------------------------------------------------------------------------------


class AIServer:
    """bench/ai_server.py in a process of its own."""

    def __init__(self, model: Model, log: Path) -> None:
        self.model = model
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.port = self.stats_port = 0

    def start(self) -> None:
        args = [sys.executable, str(ROOT / "bench" / "ai_server.py"), "--first-token", str(self.model.first_token),
                "--chunks", str(self.model.chunks), "--chunk-delay", str(self.model.chunk_delay),
                "--chars", str(self.model.chars)]
        with self.log.open("ab") as errors:
            self.process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=errors)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"bench/ai_server.py did not start; see {self.log}")
        ports = json.loads(line)
        self.port, self.stats_port = int(ports["port"]), int(ports["stats_port"])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def stats(self, http: aiohttp.ClientSession, reset: bool = False) -> dict[str, int]:
        url = f"http://127.0.0.1:{self.stats_port}"
        if reset:
            async with http.post(url + "/reset") as response:
                response.raise_for_status()
        async with http.get(url + "/stats") as response:
            return dict(await response.json())

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)


def inherited_env() -> dict[str, str]:
    """This environment without any of Frontdesk's settings: each row says all of its own."""
    aliases = {str(info.alias) for info in Settings.model_fields.values() if info.alias}
    return {name: value for name, value in os.environ.items() if name not in aliases}


class Servers(Protocol):
    """Where a PostgreSQL row's database is made, and its Redis (bench/run.sh starts both)."""

    postgres_url: str
    redis_url: str


@contextlib.asynccontextmanager
async def database(kind: str, options: Servers, workdir: Path, tag: str) -> AsyncIterator[tuple[str, str]]:
    """(DATABASE_URL, REDIS_URL) of a fresh database for one row."""
    if kind == "sqlite":
        yield f"sqlite://{workdir / f'{tag}.sqlite3'}", ""
        return
    name = f"frontdesk_rush_{tag}"
    await pg_execute(options.postgres_url, f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(options.postgres_url)._replace(path=f"/{name}")), options.redis_url
    finally:
        await pg_execute(options.postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.asynccontextmanager
async def frontdesk(env: dict[str, str], log: Path, http: aiohttp.ClientSession,
                    telegram: bool) -> AsyncIterator[subprocess.Popen[bytes]]:
    """`python -m bot` with `env`, healthy (and with Telegram set up when it has a token); stopped at the end."""
    process = spawn([sys.executable, "-m", "bot"], {**inherited_env(), **env}, log)
    try:
        await wait_until_up(http, f"http://127.0.0.1:{env['PORT']}/healthz", process,
                            ready="telegram" if telegram else "")
        yield process
    finally:
        stop(process)


def rss_mb(pid: int, key: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {key} for process {pid}")


class Usage:
    """Frontdesk's CPU time and peak resident memory from `start` to `finish`: the peak is VmHWM
    after clearing it (`/proc/PID/clear_refs`), or where that is refused the highest VmRSS sampled."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.cpu = 0.0
        self.peak = 0.0
        self.before = 0.0
        self._cleared = False
        self._sampler: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.before = self.peak = rss_mb(self.pid)
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
            self._cleared = True
        except OSError:
            self._cleared = False
        self.cpu = process_cpu(self.pid)
        self._sampler = asyncio.create_task(self._sample())

    async def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, rss_mb(self.pid))
            await asyncio.sleep(0.2)

    async def finish(self) -> float:
        """Frontdesk's CPU seconds since start()."""
        cpu = process_cpu(self.pid) - self.cpu
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler
        self.peak = max(self.peak, rss_mb(self.pid))
        if self._cleared:
            self.peak = max(self.peak, rss_mb(self.pid, "VmHWM"))
        return cpu


async def _burst_over(row: Row, usage: Usage, ai: AIServer, http: aiohttp.ClientSession) -> None:
    """What the burst took, read when its last answer came (or the row gave up)."""
    row.elapsed = time.time() - row.sent[0]
    row.cpu_seconds = await usage.finish()
    row.rss_before_mb, row.rss_peak_mb = usage.before, usage.peak
    stats = await ai.stats(http)
    row.most_streaming, row.ai_requests = stats["most_streaming"], stats["requests"]
    await asyncio.sleep(1.0)  # a duplicate would come now


def row_env(row: Row, options: Options, ai: AIServer, database_url: str, redis_url: str, port: int) -> dict[str, str]:
    return {
        "HOST": "127.0.0.1", "PORT": str(port), "DATABASE_URL": database_url,
        "REDIS_URL": redis_url, "REDIS_PREFIX": f"rush-{uuid.uuid4().hex[:10]}",
        "AI_BASE_URL": ai.base_url, "AI_MODEL": "bench-model", "AI_API_KEY": "bench-key",
        "DAILY_AI_QUOTA": "1000000", "CUSTOMER_RATE_BURST": "1000", "CUSTOMER_RATE_PER_MINUTE": "100000",
        "LOG_LEVEL": "WARNING", "LOG_FORMAT": "text", "SHUTDOWN_GRACE_SECONDS": "10",
        "PYTHONPATH": str(ROOT), **row.config.env,
    }


def row_timeout(row: Row, options: Options) -> float:
    """How long the customers' answers may take before the row is given up: by default twice what
    one answer at a time in four workers would take, and a minute more."""
    if options.timeout is not None:
        return options.timeout
    return 60.0 + 2 * math.ceil(row.customers / 4) * options.model.answer_seconds


# --- Telegram --------------------------------------------------------------------------------------


class TelegramWatch:
    """Reads tgsim's call log as it grows: each chat's first words and final answer, drafts, 429s."""

    def __init__(self, sim: Simulator, row: Row, chats: Sequence[int]) -> None:
        self.sim = sim
        self.row = row
        self.index = {chat: position for position, chat in enumerate(chats)}
        self.seen = len(sim.recorder.calls)  # what came before the burst is not the row's
        self.answers = [0] * len(chats)

    def scan(self) -> bool:
        """Take in the calls logged since the last scan; whether every chat has its answer."""
        calls, row = self.sim.recorder.calls, self.row
        while self.seen < len(calls):
            call = calls[self.seen]
            self.seen += 1
            if call.error_code == 429:
                row.flood_429 += 1
                continue
            if not call.ok:
                row.other_errors.append(f"{call.method}: {call.error_code} {call.description}")
                continue
            if call.method not in ("sendMessage", "sendMessageDraft"):
                continue
            try:
                position = self.index.get(int(call.params.get("chat_id", 0)))
            except (TypeError, ValueError):  # a @username: none of the customers
                continue
            if position is None:
                continue
            if row.first[position] is None:
                row.first[position] = call.time
            if call.method == "sendMessageDraft":
                row.previews += 1
            elif LAST_SENTENCE in str(call.params.get("text", "")):
                self.answers[position] += 1
                if row.final[position] is None:
                    row.final[position] = call.time
        return all(final is not None for final in row.final)


def shows_answer(message: dict[str, Any]) -> bool:
    return bool(message.get("from", {}).get("is_bot")) and LAST_SENTENCE in str(message.get("text", ""))


async def telegram_row(row: Row, options: Options, ai: AIServer, workdir: Path, http: aiohttp.ClientSession) -> None:
    chats = [FIRST_CHAT + index for index in range(row.customers)]
    async with Simulator(token=TOKEN, port=0, bot_username="frontdesk_rush_bot", flood=FloodLimits()) as sim, \
            database(row.database, options, workdir, uuid.uuid4().hex[:10]) as (database_url, redis_url):
        sim.create_user("Warm-up customer", id=WARM_UP_CHAT)
        for chat in chats:
            sim.create_user(f"Customer {chat - FIRST_CHAT}", id=chat)
        port = free_port()
        env = {**row_env(row, options, ai, database_url, redis_url, port), "BOT_TOKEN": TOKEN,
               "TELEGRAM_API_BASE": sim.base_url, "WEBHOOK_BASE_URL": f"http://127.0.0.1:{port}"}
        async with frontdesk(env, workdir / "frontdesk.log", http, telegram=True) as process:
            sim.send_text(WARM_UP_CHAT, question(-1))
            try:
                await sim.wait_until(lambda: any(shows_answer(m) for m in sim.chat_history(WARM_UP_CHAT)),
                                     START_ANSWER_SECONDS, "the warm-up customer's answer")
            except TimeoutError as error:
                row.problems.append(str(error))
                return
            await asyncio.sleep(1.0)  # Telegram's one-second window forgets the warm-up
            row.background = await asyncio.to_thread(wait_for_quiet, options.quiet_seconds)
            await ai.stats(http, reset=True)
            watch = TelegramWatch(sim, row, chats)
            row.first, row.final = [None] * len(chats), [None] * len(chats)
            usage = Usage(process.pid)
            usage.start()
            for chat in chats:
                row.sent.append(time.time())
                sim.send_text(chat, question(chat - FIRST_CHAT))
            try:
                await sim.wait_until(watch.scan, row_timeout(row, options), "every customer's answer")
            except TimeoutError as error:
                row.problems.append(str(error))
            await _burst_over(row, usage, ai, http)
            watch.scan()
        row.violations = len(sim.violations())
        shown = [sum(1 for message in sim.chat_history(chat) if shows_answer(message)) for chat in chats]
        missing = sum(1 for count in shown if count == 0)
        extra = sum(count - 1 for count in shown if count > 1)
        if missing or extra:
            row.problems.append(f"{missing} chats do not show the answer, {extra} show it more than once")


START_ANSWER_SECONDS = 60.0  # the warm-up customer's answer, on a machine busy with other work


# --- the widget ------------------------------------------------------------------------------------


@dataclass
class Visitor:
    socket: aiohttp.ClientWebSocketResponse
    row: Row
    position: int
    done: Callable[[], None]
    answers: int = 0
    unexpected: list[str] = field(default_factory=list)

    def on_frame(self, frame: dict[str, Any], now: float) -> None:
        row, position = self.row, self.position
        kind = frame.get("type")
        if kind == "delta":
            row.previews += 1
            if row.first[position] is None:
                row.first[position] = now
        elif kind == "message" and frame.get("author") != "customer":
            if row.first[position] is None:
                row.first[position] = now
            if frame.get("author") == "ai" and LAST_SENTENCE in str(frame.get("text", "")):
                self.answers += 1
                if row.final[position] is None:
                    row.final[position] = now
                    self.done()
            else:
                self.unexpected.append(f"{frame.get('author')}: {str(frame.get('text', ''))[:80]}")
        elif kind == "error":
            self.unexpected.append(f"error {frame.get('code')}: {frame.get('message')}")

    async def read(self) -> None:
        async for message in self.socket:
            if message.type == aiohttp.WSMsgType.TEXT:
                self.on_frame(json.loads(message.data), time.time())


async def widget_row(row: Row, options: Options, ai: AIServer, workdir: Path, http: aiohttp.ClientSession) -> None:
    async with database(row.database, options, workdir, uuid.uuid4().hex[:10]) as (database_url, redis_url):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {**row_env(row, options, ai, database_url, redis_url, port), **ONE_ADDRESS, "BOT_TOKEN": ""}
        async with frontdesk(env, workdir / "frontdesk.log", http, telegram=False) as process:
            # The warm-up visitor, then the row's: everyone has said hello before anyone asks.
            warm_row = Row(row.surface, 1, row.config, row.database, first=[None], final=[None], sent=[0.0])
            warm_done = asyncio.Event()
            warm = Visitor((await hello(http, url))[0], warm_row, 0, warm_done.set)
            readers = [asyncio.create_task(warm.read())]
            try:
                await warm.socket.send_json({"type": "message", "client_id": str(uuid.uuid4()), "text": question(-1)})
                try:
                    await asyncio.wait_for(warm_done.wait(), START_ANSWER_SECONDS)
                except TimeoutError:
                    row.problems.append(f"the warm-up visitor got no answer within {START_ANSWER_SECONDS:.0f} s"
                                        + (f" ({'; '.join(warm.unexpected)})" if warm.unexpected else ""))
                    return
                await visit(row, options, ai, http, url, process, readers)
            finally:
                for reader in readers:
                    reader.cancel()
                await asyncio.gather(*readers, return_exceptions=True)


async def visit(row: Row, options: Options, ai: AIServer, http: aiohttp.ClientSession, url: str,
                process: subprocess.Popen[bytes], readers: list[asyncio.Task[None]]) -> None:
    row.first, row.final = [None] * row.customers, [None] * row.customers
    finished = asyncio.Event()
    waiting = [row.customers]

    def one_done() -> None:
        waiting[0] -= 1
        if waiting[0] == 0:
            finished.set()

    visitors: list[Visitor] = []
    for start in range(0, row.customers, 50):
        opened = await asyncio.gather(*(hello(http, url) for _ in range(start, min(row.customers, start + 50))))
        visitors += [Visitor(socket, row, len(visitors) + offset, one_done)
                     for offset, (socket, _) in enumerate(opened)]
    readers += [asyncio.create_task(visitor.read()) for visitor in visitors]
    try:
        await asyncio.sleep(1.0)
        row.background = await asyncio.to_thread(wait_for_quiet, options.quiet_seconds)
        await ai.stats(http, reset=True)
        usage = Usage(process.pid)
        usage.start()
        for visitor in visitors:
            row.sent.append(time.time())
            await visitor.socket.send_json({"type": "message", "client_id": str(uuid.uuid4()),
                                            "text": question(visitor.position)})
        try:
            await asyncio.wait_for(finished.wait(), row_timeout(row, options))
        except TimeoutError:
            row.problems.append(f"{waiting[0]} of {row.customers} visitors got no answer within "
                                f"{row_timeout(row, options):.0f} s")
        await _burst_over(row, usage, ai, http)
        extra = sum(visitor.answers - 1 for visitor in visitors if visitor.answers > 1)
        if extra:
            row.problems.append(f"{extra} answers came more than once")
        unexpected = [text for visitor in visitors for text in visitor.unexpected]
        if unexpected:
            row.other_errors += unexpected
            row.problems.append(f"{len(unexpected)} frames other than the answer, e.g. {unexpected[0]}")
    finally:
        await asyncio.gather(*(visitor.socket.close() for visitor in visitors), return_exceptions=True)


# --- one row, and all of them ----------------------------------------------------------------------


async def run_row(row: Row, options: Options, ai: AIServer, http: aiohttp.ClientSession) -> Row:
    workdir = Path(tempfile.mkdtemp(prefix="frontdesk-rush-"))
    try:
        if row.surface == "telegram":
            await telegram_row(row, options, ai, workdir, http)
        else:
            await widget_row(row, options, ai, workdir, http)
    except Exception as error:
        row.problems.append(f"{type(error).__name__}: {error}")
    if not row.problems:
        without_first = sum(1 for got in row.first if got is None)
        without_final = sum(1 for got in row.final if got is None)
        if without_first or without_final or len(row.sent) != row.customers:
            row.problems.append(f"{without_first} customers without first words, {without_final} without the answer")
    if row.problems:
        kept = Path(tempfile.gettempdir()) / f"frontdesk-rush-{row.surface}-{row.customers}-{uuid.uuid4().hex[:6]}.log"
        with contextlib.suppress(OSError):
            shutil.copy(workdir / "frontdesk.log", kept)
            row.problems.append(f"Frontdesk's log: {kept}")
    shutil.rmtree(workdir, ignore_errors=True)
    return row


def plan(options: Options) -> list[Row]:
    rows = []
    for customers in options.customers:
        for surface in options.surfaces:
            for kind in options.databases:
                for position, config in enumerate(options.configs):
                    if position == 0 or customers in options.compare_at:
                        rows.append(Row(surface, customers, config, kind))
    return rows


async def run_all(options: Options) -> list[Row]:
    rows = plan(options)
    log = Path(tempfile.gettempdir()) / f"frontdesk-rush-ai-{uuid.uuid4().hex[:6]}.log"
    ai = AIServer(options.model, log)
    ai.start()
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            for number, row in enumerate(rows, 1):
                print(f"row {number}/{len(rows)}: {describe(row)} ...", file=sys.stderr, flush=True)
                await run_row(row, options, ai, http)
                print(f"  {summary(row, options.model)}", file=sys.stderr, flush=True)
    finally:
        ai.stop()
    log.unlink(missing_ok=True)
    return rows


# --- the report ------------------------------------------------------------------------------------


SURFACES = {"telegram": "Telegram", "widget": "widget"}
DATABASES = {"sqlite": "SQLite", "postgres": "PostgreSQL + Redis"}


def describe(row: Row) -> str:
    return f"{SURFACES[row.surface]}, {row.customers} customers, {row.config.label}, {DATABASES[row.database]}"


def three(values: Sequence[float]) -> str:
    return f"{percentile(values, 0.5):.2f} / {percentile(values, 0.9):.2f} / {max(values):.2f} s"


def summary(row: Row, model: Model) -> str:
    if row.problems:
        return "FAILED: " + "; ".join(row.problems)
    verdict = "MET" if met(row, model) else "MISSED"
    return (f"first words p50/p90/max {three(row.first_words)}, final {three(row.finals)}; "
            f"target p90 ≤ {target(row, model):.2f} s: {verdict}; {row.flood_429} × 429; "
            f"at most {row.most_streaming} answers streamed at once; Frontdesk CPU {row.cpu_seconds:.1f} s, "
            f"peak RSS {row.rss_peak_mb:.0f} MB; {len(row.other_errors)} other Bot API errors, "
            f"{row.violations} spec violations")


def table(rows: Sequence[Row], model: Model) -> str:
    lines = ["| surface | customers | settings | database | first words p50 / p90 / max | target (p90) | "
             "first words − model's first token, p50 / p90 | final message p50 / p90 / max | 429s | "
             "answers streamed at once (most) | previews per answer | Frontdesk CPU | peak RSS |",
             "| --- | ---: | --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in rows:
        head = f"| {SURFACES[row.surface]} | {row.customers} | {row.config.label} | {DATABASES[row.database]} |"
        if row.problems:
            lines.append(f"{head} **FAILED: {'; '.join(row.problems)}** | | | | | | | | |")
            continue
        late = [seconds - model.first_token for seconds in row.first_words]
        verdict = "MET" if met(row, model) else "**MISSED**"
        lines.append(
            f"{head} {three(row.first_words)} | ≤ {target(row, model):.2f} s: {verdict} | "
            f"{percentile(late, 0.5):.2f} / {percentile(late, 0.9):.2f} s | {three(row.finals)} | "
            f"{row.flood_429 if row.surface == 'telegram' else '-'} | {row.most_streaming} | "
            f"{row.previews / row.customers:.1f} | {row.cpu_seconds:.1f} s "
            f"({1000 * row.cpu_seconds / row.customers:.0f} ms/answer) | {row.rss_peak_mb:.0f} MB |")
    return "\n".join(lines)


def comparisons(rows: Sequence[Row], options: Options) -> list[str]:
    """Each other configuration's p90 of the first words against the first configuration's, per surface and count."""
    lines = []
    base_config = options.configs[0]
    for row in rows:
        if row.config == base_config or row.problems:
            continue
        base = next((other for other in rows if other.config == base_config and other.surface == row.surface
                     and other.customers == row.customers and other.database == row.database
                     and not other.problems), None)
        if base is None:
            continue
        ours, theirs = percentile(base.first_words, 0.9), percentile(row.first_words, 0.9)
        lines.append(f"- {SURFACES[row.surface]}, {row.customers} customers ({DATABASES[row.database]}): "
                     f"p90 to the first words {ours:.2f} s with the {base_config.label}, {theirs:.2f} s with "
                     f"{row.config.label} ({theirs / max(ours, 1e-9):.1f}×); the last customer's answer after "
                     f"{max(base.finals):.1f} s and {max(row.finals):.1f} s.")
    return lines


def resources(rows: Sequence[Row]) -> list[str]:
    most = max((row.customers for row in rows), default=0)
    return [f"- {describe(row)}: {row.cpu_seconds:.1f} s of CPU over {row.elapsed:.1f} s "
            f"({100 * row.cpu_seconds / max(row.elapsed, 1e-9):.0f}% of one core), resident memory "
            f"{row.rss_before_mb:.0f} MB before the burst and {row.rss_peak_mb:.0f} MB at its peak; "
            f"other work kept the machine {100 * row.background:.0f}% busy just before"
            for row in rows if row.customers == most and not row.problems]


def oddities(rows: Sequence[Row]) -> list[str]:
    """Calls Telegram refused for reasons other than flood, and calls off the Bot API's spec."""
    lines = []
    for row in rows:
        if row.other_errors or row.violations:
            kinds = sorted(set(row.other_errors))
            lines.append(f"- {describe(row)}: {len(row.other_errors)} Bot API errors other than 429"
                         + (f" ({'; '.join(kinds[:3])})" if kinds else "") + f", {row.violations} spec violations")
    return lines


def generated_section(rows: Sequence[Row], options: Options, code: str) -> str:
    model = options.model
    command = f"`{shlex.join(['python', 'bench/rush_hour.py', *sys.argv[1:]])}`"
    if launcher := os.environ.get("BENCH_LAUNCHER", ""):
        command = f"`{launcher}`, which runs {command}"
    extra = [f"`{config.name}` = {', '.join(f'{k}={v}' for k, v in config.env.items()) or 'nothing set'}"
             for config in options.configs]
    return "\n".join([
        BEGIN_MARK,
        f"- **Date:** {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- **Machine:** {machine()}",
        f"- **Frontdesk:** commit {code}",
        f"- **Command:** {command}",
        f"- **Model:** bench/ai_server.py (tests/fake_ai.py's FakeAI in its own process): first words after "
        f"{1000 * model.first_token:.0f} ms, then a {model.chars:,}-character answer in {model.chunks} pieces "
        f"{1000 * model.chunk_delay:.0f} ms apart ({model.answer_seconds:.2f} s an answer).",
        "- **Load:** the customers all send their question at the same moment; one customer asked first (a "
        "running shop). Telegram: tgsim in the bench process with Telegram's flood limits, updates by webhook; "
        "first words = the first `sendMessageDraft` or `sendMessage` in the chat, final = the `sendMessage` "
        "with the whole answer. Widget: one socket per visitor, all said hello before; first words = the first "
        "`delta` frame, final = the answer's `message` frame. A fresh database per row, empty knowledge base, "
        "AI quota and rate limits out of the way. Settings: " + "; ".join(extra) + (
            f"; the rows other than `{options.configs[0].name}` at "
            f"{', '.join(str(count) for count in sorted(options.compare_at))} customers." if len(options.configs) > 1
            else "."),
        "- **Targets** (issue 21), on the p90 to the first words: Telegram ≤ the model's first token + 0.9 × N/30 s "
        "+ 0.5 s and no 429; widget ≤ the model's first token + 100 ms.",
        "", table(rows, model), "",
        *(["Against the first settings:", "", *comparisons(rows, options), ""] if comparisons(rows, options) else []),
        "Frontdesk's process at the largest count (CPU from the burst to the last answer; peak memory "
        "over the same time):", "", *resources(rows),
        *(["", "Refused or off-spec calls:", "", *oddities(rows)] if oddities(rows) else []),
        END_MARK])


def parse_options(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--customers", default="60,300", help="customers writing at once, comma-separated")
    parser.add_argument("--surfaces", default="telegram,widget", help="some of telegram, widget")
    parser.add_argument("--configs", default="default,workers4",
                        help=f"settings to compare, the first being the reference: {', '.join(CONFIGS)}, or "
                             "NAME=VALUE[+NAME=VALUE...] (e.g. OUTBOX_WORKERS=100)")
    parser.add_argument("--compare-at", default="60",
                        help="customer counts at which the settings after the first run too ('all' for every "
                             "count; with OUTBOX_WORKERS=4 each 300-customer row takes about seven minutes)")
    parser.add_argument("--postgres", action="store_true",
                        help="also run every row on PostgreSQL + Redis (BENCH_POSTGRES_URL, BENCH_REDIS_URL)")
    parser.add_argument("--first-token", type=float, default=0.25, help="the model's seconds to its first words")
    parser.add_argument("--chunks", type=int, default=100, help="pieces the model's answer streams in")
    parser.add_argument("--chunk-delay", type=float, default=0.05, help="seconds between the pieces")
    parser.add_argument("--chars", type=int, default=1800, help="length of the model's answer")
    parser.add_argument("--timeout", type=float, default=None,
                        help="give a row up after this many seconds (default: from the customers and the model)")
    parser.add_argument("--quiet-seconds", type=float, default=3.0,
                        help="before each row, wait up to this long for other work on the machine to stop")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 10 customers, the document left alone")
    parser.add_argument("--no-doc", action="store_true", help="only print the table")
    args = parser.parse_args(argv)
    customers = [10] if args.quick else [int(count) for count in args.customers.split(",")]
    surfaces = args.surfaces.split(",")
    if any(surface not in SURFACES for surface in surfaces):
        parser.error(f"surfaces are some of {', '.join(SURFACES)}")
    try:
        configs = [parse_config(text) for text in args.configs.split(",")]
    except ValueError as error:
        parser.error(str(error))
    compare_at = set(customers) if args.quick or args.compare_at == "all" else \
        {int(count) for count in args.compare_at.split(",") if count}
    postgres_url, redis_url = os.environ.get("BENCH_POSTGRES_URL", ""), os.environ.get("BENCH_REDIS_URL", "")
    if args.postgres and not (postgres_url and redis_url):
        parser.error("--postgres needs BENCH_POSTGRES_URL and BENCH_REDIS_URL (bash bench/run.sh sets them)")
    model = Model(args.first_token, args.chunks, args.chunk_delay, args.chars)
    return Options(customers, surfaces, configs, compare_at, ["sqlite", "postgres"] if args.postgres else ["sqlite"],
                   model, args.timeout, args.quiet_seconds, postgres_url, redis_url,
                   None if args.no_doc or args.quick else DOC_PATH)


def raise_file_limit() -> None:
    """Hundreds of sockets each side; the children inherit the limit."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    raise_file_limit()
    code = code_version()
    rows = asyncio.run(run_all(options))
    print(table(rows, options.model))
    for line in comparisons(rows, options) + resources(rows) + oddities(rows):
        print(line)
    if options.doc is not None:
        write_section(options.doc, "rush_hour.py", generated_section(rows, options, code),
                      "Rush hour: 60 and 300 customers at once (issue 21)")
        print(f"wrote {options.doc}", file=sys.stderr)
    failed = [row for row in rows if row.problems]
    for row in failed:
        print(f"rush_hour: the work did not happen: {describe(row)}: {'; '.join(row.problems)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
