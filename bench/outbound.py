"""Outbound benchmark: 2,000 replies to 2,000 private chats queued at once, at Telegram's real limits.

A tgsim process with its real flood limits (30 messages/s per bot, 1/s per private chat after a
burst of 3) stands in for Telegram. A fresh PostgreSQL database holds 2,000 customers, each with
one conversation and one question the knowledge base answers word for word. Frontdesk runs as
`python -m bot` processes (two apps in one process would share Tortoise's connections, which two
instances do not). Once they are up, one INSERT queues 2,000 `answer` outbox jobs, exactly the
jobs the webhook queues; the clock starts at its commit. Each job is the product's whole answer
path: load the message, match the knowledge base, send one `sendMessage` through the sender
(which paces to the budget), record the reply.

Setups: one instance with its in-process budget; one instance with the budget on Redis; two
instances sharing the budget on Redis. Measured: time until the last reply reached its chat
(against the ideal 2000/30 s), the 429s tgsim answered, and, after the instances stopped, every
chat's history: messages lost (a chat without its reply) and duplicated must both be 0.

`bash bench/run.sh` (or `make bench`) starts a throwaway PostgreSQL and Redis and runs this;
`python bench/outbound.py --help` for the options. Each run takes about 75 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
from common import DOC_PATH, ROOT, SHARED, marks, write_section
from ingest import code_version, machine, pg_execute, wait_for_quiet

from bot import db
from services.knowledge import question_key

TOKEN = "7000000002:BENCH-outbound-token"
BOT_ID = 7000000002
FIRST_CHAT = 620_000_000
QUESTION = "Are you open on Sunday?"
ANSWER = "Yes: **9:00 to 17:00** on Sundays, and the kitchen closes at 16:30."
PER_SECOND = 30  # Telegram's (and tgsim's) limit for one bot, all chats together
BEGIN_MARK, END_MARK = marks("outbound.py")
START_SECONDS = 90.0


@dataclass(frozen=True)
class Setup:
    name: str
    instances: int
    redis: bool
    label: str


SETUPS = {
    "memory1": Setup("memory1", 1, False, "1 instance, budget in process"),
    "redis1": Setup("redis1", 1, True, "1 instance, budget on Redis"),
    "redis2": Setup("redis2", 2, True, "2 instances, one budget on Redis"),
    # Not a supported deployment: two instances without Redis each spend a whole budget.
    "memory2": Setup("memory2", 2, False, "2 instances, each its own budget (no Redis)"),
}


@dataclass
class Options:
    replies: int
    runs: int
    setups: list[Setup]
    postgres_url: str
    redis_url: str
    timeout: float
    quiet_seconds: float
    doc: Path | None


@dataclass
class RunResult:
    setup: Setup
    replies: int
    first_reply: float = 0.0  # seconds from the commit of the jobs to the first reply Telegram accepted
    last_reply: float = 0.0  # ... to the last one
    recorded: float = 0.0  # ... until every job was done in the database
    flood_429: int = 0
    other_errors: int = 0
    busiest_second: int = 0  # most replies accepted in any one-second window
    lost: int = 0  # chats that never showed their reply
    duplicated: int = 0  # extra replies beyond one per chat
    jobs: Counter[str] = field(default_factory=Counter)
    per_instance: list[int] = field(default_factory=list)
    cpu_seconds: float = 0.0  # the instances' CPU time (all of them) from the commit to the last job done
    background: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def ideal(self) -> float:
        return self.replies / PER_SECOND


# --- the simulator and the instances -------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn(args: Sequence[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(list(args), cwd=ROOT, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen[bytes], seconds: float = 30.0) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


async def wait_until_up(session: aiohttp.ClientSession, url: str, process: subprocess.Popen[bytes],
                        ready: str = "") -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{shlex.join(process.args)} exited with {process.returncode}")  # type: ignore[arg-type]
        with contextlib.suppress(aiohttp.ClientError):
            async with session.get(url) as response:
                if response.status == 200 and (not ready or (await response.json()).get(ready)):
                    return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"{url} did not come up within {START_SECONDS:.0f} s")


class Sim:
    """tgsim's control API, over HTTP: the simulator runs in a process of its own."""

    def __init__(self, session: aiohttp.ClientSession, port: int) -> None:
        self.session = session
        self.base_url = f"http://127.0.0.1:{port}"

    async def call(self, action: str, **params: Any) -> Any:
        async with self.session.post(f"{self.base_url}/_sim/{action}", json=params) as response:
            body = await response.json()
        if not body.get("ok"):
            raise RuntimeError(f"tgsim {action}: {body}")
        return body["result"]


# --- the database --------------------------------------------------------------------------------


def database_url(admin_url: str, name: str) -> str:
    return urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))


async def seed(url: str, chats: int) -> None:
    """The bot, one knowledge item, and per chat a customer, a conversation and their question."""
    connection = await asyncpg.connect(url)
    try:
        async with connection.transaction():
            bot_id = await connection.fetchval(
                "INSERT INTO bot (telegram_id, username, settings, created_at) "
                "VALUES ($1, 'frontdesk_bench_bot', '{}', now()) RETURNING id", BOT_ID)
            await connection.execute(
                "INSERT INTO knowledge_item (bot_id, question, answer, tags, enabled, hit_count, question_key, "
                "embedding_model, created_at, updated_at) VALUES ($1, $2, $3, '', true, 0, $4, '', now(), now())",
                bot_id, QUESTION, ANSWER, question_key(QUESTION))
            await connection.execute(
                """INSERT INTO "user" (bot_id, telegram_id, first_name, last_name, username, language, role,
                                       blocked_bot, banned, online, created_at, last_seen_at)
                   SELECT $1, $2 + g, 'Customer ' || g, '', '', 'en', 'customer', false, false, false, now(), now()
                   FROM generate_series(0, $3 - 1) AS g""", bot_id, FIRST_CHAT, chats)
            await connection.execute(
                """INSERT INTO conversation (uuid, bot_id, user_id, channel, mode, status, handoff_reason,
                                             topic_title, created_at, last_message_at)
                   SELECT gen_random_uuid(), bot_id, id, 'telegram', 'ai', 'open', '', '', now(), now()
                   FROM "user" WHERE bot_id = $1 ORDER BY id""", bot_id)
            await connection.execute(
                """INSERT INTO message (bot_id, conversation_id, author_kind, author_id, text, attachments, ai_meta,
                                        source_key, created_at)
                   SELECT bot_id, id, 'customer', user_id, $2, '[]', '{}', 'tg:' || id, now()
                   FROM conversation WHERE bot_id = $1 ORDER BY id""", bot_id, QUESTION)
        await connection.execute("ANALYZE")
    finally:
        await connection.close()


# The jobs record_customer_message queues: kind "answer", the message's id, the conversation's lane.
QUEUE_JOBS = """
INSERT INTO outbox_job (bot_id, kind, payload, queue, priority, lane, status, attempts, last_error, run_after,
                        lease_owner, created_at)
SELECT m.bot_id, 'answer', jsonb_build_object('message_id', m.id), '', 0, c.uuid::text, 'pending', 0, '', now(),
       '', now()
FROM message m JOIN conversation c ON c.id = m.conversation_id
WHERE m.author_kind = 'customer' ORDER BY m.id
"""


async def fetch(url: str, sql: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(url)
    try:
        return list(await connection.fetch(sql))
    finally:
        await connection.close()


# --- one run -------------------------------------------------------------------------------------


def instance_env(setup: Setup, options: Options, url: str, sim_url: str, port: int, prefix: str) -> dict[str, str]:
    return {
        "BOT_TOKEN": TOKEN, "TELEGRAM_API_BASE": sim_url, "WEBHOOK_BASE_URL": f"http://127.0.0.1:{port}",
        "HOST": "127.0.0.1", "PORT": str(port), "DATABASE_URL": url,
        "REDIS_URL": options.redis_url if setup.redis else "", "REDIS_PREFIX": prefix,
        "AI_BASE_URL": "", "AI_MODEL": "", "LOG_LEVEL": "WARNING", "LOG_FORMAT": "text",
        "OUTBOX_WORKERS": "4", "SHUTDOWN_GRACE_SECONDS": "10", "PYTHONPATH": str(ROOT),
    }


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def busiest_second(times: Sequence[float]) -> int:
    ordered = sorted(times)
    best, start = 0, 0
    for end, moment in enumerate(ordered):
        while ordered[start] <= moment - 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


async def run_once(setup: Setup, options: Options, workdir: Path) -> RunResult:
    result = RunResult(setup, options.replies)
    name = f"frontdesk_outbound_{uuid.uuid4().hex[:10]}"
    url = database_url(options.postgres_url, name)
    await pg_execute(options.postgres_url, f'CREATE DATABASE "{name}"')
    processes: list[subprocess.Popen[bytes]] = []
    log = workdir / f"{name}.log"
    try:
        await db.migrate(url)
        await seed(url, options.replies)
        sim_port = free_port()
        processes.append(spawn([sys.executable, "-m", "tgsim", "--port", str(sim_port), "--token", TOKEN,
                                "--bot-username", "frontdesk_bench_bot"], {"PYTHONPATH": str(SHARED)}, log))
        async with aiohttp.ClientSession() as session:
            sim = Sim(session, sim_port)
            await wait_until_up(session, f"{sim.base_url}/_sim/violations", processes[0])
            for index in range(options.replies):
                await sim.call("create_user", first_name=f"Customer {index}", id=FIRST_CHAT + index)
            prefix = f"bench-{uuid.uuid4().hex[:10]}"
            ports = [free_port() for _ in range(setup.instances)]
            instances = [spawn([sys.executable, "-m", "bot"],
                               instance_env(setup, options, url, sim.base_url, port, prefix), log) for port in ports]
            processes += instances
            for port, process in zip(ports, instances, strict=True):
                await wait_until_up(session, f"http://127.0.0.1:{port}/healthz", process, ready="telegram")
            await asyncio.sleep(1.0)  # the outbox workers start right after the webhook is set
            result.background = await asyncio.to_thread(wait_for_quiet, options.quiet_seconds)
            cpu_before = sum(process_cpu(process.pid) for process in instances)
            await pg_execute(url, QUEUE_JOBS)
            started = time.time()
            await wait_for_replies(sim, options, started)
            await wait_for_jobs(url, options, started, result)
            result.cpu_seconds = sum(process_cpu(process.pid) for process in instances) - cpu_before
            for process in instances:
                stop(process)
            await measure(sim, url, started, result)
    finally:
        for process in reversed(processes):
            stop(process)
        await pg_execute(options.postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    if result.problems:
        result.problems.append(f"log: {log}")
    else:
        log.unlink(missing_ok=True)
    return result


async def wait_for_replies(sim: Sim, options: Options, started: float) -> None:
    while time.time() - started < options.timeout:
        sent = await sim.call("calls", method="sendMessage")
        if sum(1 for call in sent if call["ok"]) >= options.replies:
            return
        await asyncio.sleep(0.5)


async def wait_for_jobs(url: str, options: Options, started: float, result: RunResult) -> None:
    """Each reply is recorded right after it is sent; the run ends when every job is finished."""
    while True:
        [row] = await fetch(url, "SELECT count(*) FILTER (WHERE status IN ('pending', 'running')) FROM outbox_job")
        if row[0] == 0 or time.time() - started > options.timeout:
            result.recorded = time.time() - started
            return
        await asyncio.sleep(0.2)


async def measure(sim: Sim, url: str, started: float, result: RunResult) -> None:
    calls = await sim.call("calls")
    accepted = [call["time"] - started for call in calls if call["method"] == "sendMessage" and call["ok"]]
    result.flood_429 = sum(1 for call in calls if call.get("error_code") == 429)
    result.other_errors = sum(1 for call in calls if not call["ok"] and call.get("error_code") != 429)
    if accepted:
        result.first_reply, result.last_reply = min(accepted), max(accepted)
        result.busiest_second = busiest_second(accepted)
    # What each chat shows, as a customer would see it.
    shown = [len([m for m in await sim.call("chat_history", chat_id=FIRST_CHAT + index) if m["from"]["is_bot"]])
             for index in range(result.replies)]
    result.lost = sum(1 for count in shown if count == 0)
    result.duplicated = sum(count - 1 for count in shown if count > 1)
    # The answers' jobs only: the seeded knowledge item, not embedded yet, gets a job of the knowledge queue too.
    jobs = await fetch(url, "SELECT status, lease_owner, count(*) FROM outbox_job WHERE kind = 'answer' "
                            "GROUP BY status, lease_owner")
    for status, _, count in jobs:
        result.jobs[status] += count
    result.per_instance = sorted((count for status, _, count in jobs if status == "done"), reverse=True)
    [(replies, answered)] = await fetch(
        url, "SELECT count(*), count(DISTINCT reply_to_id) FROM message WHERE author_kind = 'ai'")
    if result.lost or result.duplicated:
        result.problems.append(f"{result.lost} chats without their reply, {result.duplicated} duplicate replies")
    if result.jobs["done"] != result.replies:
        result.problems.append(f"jobs: {dict(result.jobs)}")
    if replies != result.replies or answered != result.replies:
        result.problems.append(f"{replies} replies recorded for {answered} questions")
    if result.other_errors:
        result.problems.append(f"{result.other_errors} Bot API errors other than 429")


# --- the report ----------------------------------------------------------------------------------


def schedule(options: Options) -> Iterator[tuple[int, Setup]]:
    """Interleaved: run 1 of every setup, then run 2, ..., so that drift hits every row alike."""
    for run in range(options.runs):
        for setup in options.setups:
            yield run, setup


def table(results: Sequence[RunResult]) -> str:
    lines = ["| setup | delivered in (median) | against ideal | first reply | replies/s after the first "
             "| busiest second | 429s | lost | duplicated | jobs done by each instance | instances' CPU ms/reply |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |"]
    for setup in dict.fromkeys(result.setup for result in results):
        runs = [result for result in results if result.setup == setup]
        last = statistics.median(run.last_reply for run in runs)
        ideal = runs[0].ideal
        rate = statistics.median((run.replies - 1) / max(1e-9, run.last_reply - run.first_reply) for run in runs)
        shares = "; ".join(" + ".join(str(count) for count in run.per_instance) for run in runs)
        lines.append(
            f"| {setup.label} | {last:.1f} s | {last / ideal:.2f}x | "
            f"{statistics.median(run.first_reply for run in runs):.2f} s | {rate:.1f} | "
            f"{max(run.busiest_second for run in runs)} | {sum(run.flood_429 for run in runs)} | "
            f"{sum(run.lost for run in runs)} | {sum(run.duplicated for run in runs)} | {shares} | "
            f"{statistics.median(1000 * run.cpu_seconds / run.replies for run in runs):.1f} |")
    return "\n".join(lines)


def run_lines(results: Sequence[RunResult]) -> str:
    lines = []
    for setup in dict.fromkeys(result.setup for result in results):
        runs = [result for result in results if result.setup == setup]
        each = ", ".join(f"{run.last_reply:.1f} s ({run.flood_429} × 429)" for run in runs)
        problems = "; ".join(problem for run in runs for problem in run.problems)
        background = max(run.background for run in runs)
        lines.append(f"- {setup.label}: {each}; all recorded by {', '.join(f'{run.recorded:.1f}' for run in runs)} s "
                     f"(before each run, other work kept the machine up to {100 * background:.0f}% busy)"
                     + (f" — **{problems}**" if problems else ""))
    return "\n".join(lines)


def server_versions(url: str) -> str:
    [(version,)] = asyncio.run(fetch(url, "SELECT current_setting('server_version')"))
    redis = subprocess.run(["redis-server", "--version"], capture_output=True, text=True, check=False).stdout.split()
    return f"PostgreSQL {version}, Redis {next((part[2:] for part in redis if part.startswith('v=')), '?')}"


def generated_section(results: Sequence[RunResult], options: Options, software: str, code: str) -> str:
    command = f"`{shlex.join(['python', 'bench/outbound.py', *sys.argv[1:]])}`"
    if launcher := os.environ.get("BENCH_LAUNCHER", ""):
        command = f"`{launcher}`, which runs {command}"
    return "\n".join([
        BEGIN_MARK,
        f"- **Date:** {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- **Machine:** {machine()}",
        f"- **Software:** {software}; tgsim with its default (Telegram's) flood limits",
        f"- **Frontdesk:** commit {code}",
        f"- **Command:** {command}",
        f"- **Load:** {options.replies} `answer` jobs for {options.replies} different private chats, queued in one "
        f"transaction; OUTBOX_WORKERS=4 per instance; {options.runs} runs per row, interleaved; medians, and "
        f"sums for 429s, lost and duplicated. Ideal: {options.replies}/{PER_SECOND} = "
        f"{options.replies / PER_SECOND:.1f} s.",
        "", table(results), "", "Each run (time of the last reply):", "", run_lines(results), END_MARK])


def parse_options(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--replies", type=int, default=2000, help="replies queued at once, one per chat")
    parser.add_argument("--runs", type=int, default=3, help="runs per setup")
    parser.add_argument("--setups", default="memory1,redis1,redis2", help=f"some of {', '.join(SETUPS)}")
    parser.add_argument("--timeout", type=float, default=400.0, help="give up on a run after this many seconds")
    parser.add_argument("--quiet-seconds", type=float, default=3.0,
                        help="before each run, wait up to this long for other work on the machine to stop")
    parser.add_argument("--no-doc", action="store_true", help="only print the table")
    args = parser.parse_args(argv)
    postgres_url, redis_url = os.environ.get("BENCH_POSTGRES_URL", ""), os.environ.get("BENCH_REDIS_URL", "")
    if not postgres_url:
        parser.error("BENCH_POSTGRES_URL is not set (bash bench/run.sh sets it)")
    setups = [SETUPS[name] for name in args.setups.split(",") if name in SETUPS]
    if len(setups) < len(args.setups.split(",")):
        parser.error(f"setups are some of {', '.join(SETUPS)}")
    if any(setup.redis for setup in setups) and not redis_url:
        parser.error("BENCH_REDIS_URL is not set (bash bench/run.sh sets it)")
    return Options(args.replies, args.runs, setups, postgres_url, redis_url, args.timeout, args.quiet_seconds,
                   None if args.no_doc else DOC_PATH)


async def run_all(options: Options, workdir: Path) -> list[RunResult]:
    results = []
    for run, setup in schedule(options):
        result = await run_once(setup, options, workdir)
        print(f"run {run + 1}/{options.runs} {setup.label}: last reply {result.last_reply:.1f} s "
              f"(first {result.first_reply:.2f} s), {result.flood_429} × 429, lost {result.lost}, "
              f"duplicated {result.duplicated}, jobs {dict(result.jobs)}"
              + (f"  PROBLEMS: {'; '.join(result.problems)}" if result.problems else ""), file=sys.stderr, flush=True)
        results.append(result)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    code = code_version()
    workdir = Path(tempfile.mkdtemp(prefix="frontdesk-outbound-"))  # the instances' logs, kept on problems
    results = asyncio.run(run_all(options, workdir))
    if not any(result.problems for result in results):
        shutil.rmtree(workdir, ignore_errors=True)
    software = server_versions(options.postgres_url)
    print(table(results))
    if options.doc is not None:
        write_section(options.doc, "outbound.py", generated_section(results, options, software, code),
                      "Outbound: 2,000 replies at Telegram's limits")
        print(f"wrote {options.doc}", file=sys.stderr)
    return 1 if any(result.problems for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
