"""Website widget: idle sockets one process holds, and how fast a manager's reply reaches a widget.

Sockets: a `python -m bot` process (SQLite, no Telegram, no AI) takes N widget sockets, each a new
visitor that said hello and got its welcome; the server's resident memory (VmRSS) is read before
and after, and the difference per socket reported. The clients run in this process.

Fan-out: Frontdesk serves a tgsim Simulator (flood limits off: this measures our path, not
Telegram's). V visitors ask for a person from their widget; each gets a forum topic. Then a
manager writes in the topics, one message at a time, and the time from the simulator pushing the
manager's update to the webhook until the visitor's socket receives the message is recorded:
webhook, store, event bus, socket. One instance on SQLite; with --postgres and --redis,
also one instance and two instances on PostgreSQL + Redis (the socket on one instance, Telegram's
webhook on the other, so every reply crosses Redis pub/sub).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from common import DOC_PATH, marks, write_section
from tgsim import FloodLimits, Simulator

from tests.conftest import TOKEN, free_port

BEGIN_MARK, END_MARK = marks("widget.py")
BOSS_ID = 900_001


def _raise_file_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _spawn(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, *args], cwd=log.parent, stdout=out, stderr=subprocess.STDOUT,
                                env=env, preexec_fn=_raise_file_limit)


@asynccontextmanager
async def frontdesk(env: dict[str, str], log: Path) -> AsyncIterator[subprocess.Popen[bytes]]:
    """`python -m bot` with `env`, healthy on its PORT; stopped at the end."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "AI_", "WEBHOOK_", "DATABASE_"))}
    process = _spawn(["-m", "bot"], log, {**inherited, "LOG_LEVEL": "WARNING", "HOST": "127.0.0.1", **env})
    try:
        url = f"http://127.0.0.1:{env['PORT']}"
        async with aiohttp.ClientSession() as http:
            for _ in range(600):
                if process.poll() is not None:
                    raise RuntimeError(f"frontdesk exited with {process.returncode}; see {log}")
                try:
                    async with http.get(url + "/healthz") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def hello(http: aiohttp.ClientSession, url: str, **fields: Any) -> tuple[aiohttp.ClientWebSocketResponse,
                                                                              dict[str, Any]]:
    socket = await http.ws_connect(url + "/widget/ws", origin=url, heartbeat=None, autoping=True)
    await socket.send_json({"type": "hello", "site": "demo", "token": None, "after": None, "lang": "en", **fields})
    welcome = json.loads((await socket.receive(timeout=60)).data)
    assert welcome["type"] == "welcome", welcome
    return socket, welcome


# --- idle sockets -------------------------------------------------------------------------------------


BARE_SERVER = """
import sys
from aiohttp import web

async def socket(request):
    response = web.WebSocketResponse(heartbeat=25.0)
    await response.prepare(request)
    async for _ in response:
        pass
    return response

app = web.Application()
app.router.add_get("/widget/ws", socket)
app.router.add_get("/healthz", lambda request: web.json_response({"ok": True}))
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


@asynccontextmanager
async def bare_aiohttp(port: int, work: Path) -> AsyncIterator[subprocess.Popen[bytes]]:
    """The floor: an aiohttp server whose sockets do nothing, in the same conditions."""
    script = work / "bare_server.py"
    script.write_text(BARE_SERVER)
    process = _spawn([str(script), str(port)], work / "bare_server.log")
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                try:
                    async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)
        yield process
    finally:
        process.terminate()
        process.wait(30)


async def _keep_answering(socket: aiohttp.ClientWebSocketResponse) -> None:
    # A browser answers the server's pings by itself; an aiohttp client only while it reads.
    async for _ in socket:
        pass


METRICS_TOKEN = "bench-metrics-token-0123456789"
# Every client here comes from 127.0.0.1: the per-address limits (sockets, conversations, frames) are lifted.
ONE_ADDRESS = {"WIDGET_MAX_SOCKETS_PER_ADDRESS": "1000000", "WIDGET_IP_CONVERSATIONS_PER_HOUR": "1000000",
               "WIDGET_IP_MESSAGES_PER_MINUTE": "1000000", "WIDGET_IP_FRAMES_PER_MINUTE": "1000000",
               "WIDGET_IP_ACTIONS_PER_MINUTE": "1000000"}


class NotDone(Exception):
    """The sockets the benchmark measures were not all open."""


def per_socket(median: dict[str, float], floor: dict[str, float] | None) -> str:
    """The per-socket figure, or why it is none: a Frontdesk socket holds at least what a bare aiohttp
    socket holds, so a smaller growth means the sockets fitted in memory the process had already
    reserved (RSS grows in pages and arenas) and the difference measured nothing."""
    if floor is not None and median["per_socket_kb"] < floor["per_socket_kb"]:
        return f"not measurable (RSS grew {median['per_socket_kb']:.1f} KB a socket, under the floor)"
    return f"{median['per_socket_kb']:.1f} KB"


async def idle_sockets(count: int, work: Path, *, bare: bool = False) -> dict[str, float]:
    port = free_port()
    env = {"PORT": str(port), "DATABASE_URL": f"sqlite://{work}/sockets-{count}-{uuid.uuid4().hex[:6]}.sqlite3",
           "METRICS_TOKEN": METRICS_TOKEN, **ONE_ADDRESS}
    server = bare_aiohttp(port, work) if bare else frontdesk(env, work / "sockets.log")
    async with server as process:
        url = f"http://127.0.0.1:{port}"
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as http:

            async def open_one() -> aiohttp.ClientWebSocketResponse:
                if bare:
                    return await http.ws_connect(url + "/widget/ws")
                socket, _ = await hello(http, url)
                return socket

            sockets = [await open_one()]
            readers = [asyncio.create_task(_keep_answering(sockets[0]))]
            await asyncio.sleep(1.0)
            before = _rss_mb(process.pid)
            started = time.monotonic()
            for start in range(1, count, 250):
                batch = await asyncio.gather(*(open_one() for _ in range(start, min(count, start + 250))))
                sockets += batch
                readers += [asyncio.create_task(_keep_answering(socket)) for socket in batch]
            opened = time.monotonic() - started
            await asyncio.sleep(3.0)
            after = _rss_mb(process.pid)
            still_open = sum(1 for socket in sockets if not socket.closed)
            if still_open != count:
                raise NotDone(f"{count - still_open} of {count} sockets closed before the memory was read")
            gauge = float(count)
            if not bare:
                async with http.get(url + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}) as response:
                    gauge = float(next(line for line in (await response.text()).splitlines()
                                       if line.startswith("frontdesk_widget_sockets ")).split()[1])
                if gauge != count:
                    raise NotDone(f"/metrics counts {gauge:.0f} widget sockets where {count} are open")
            await asyncio.gather(*(socket.close() for socket in sockets))
            await asyncio.gather(*readers, return_exceptions=True)
    return {"sockets": count, "rss_before": before, "rss_after": after,
            "per_socket_kb": (after - before) * 1024 / max(count - 1, 1), "open_seconds": opened,
            "gauge": gauge, "bare": float(bare)}


# --- fan-out ------------------------------------------------------------------------------------------


@dataclass
class Setup:
    name: str
    database_url: str
    redis_url: str = ""
    instances: int = 1


async def _receive_manager_frame(socket: aiohttp.ClientWebSocketResponse, text: str) -> float:
    """When the manager's `text` reached the visitor; fails after 30 s (other frames, such as the
    server's heartbeats, never hold it up for longer)."""
    deadline = time.perf_counter() + 30
    while True:
        left = deadline - time.perf_counter()
        if left <= 0:
            raise TimeoutError(f"the manager's reply {text!r} did not reach the visitor within 30 s")
        message = await socket.receive(timeout=left)
        frame = json.loads(message.data)
        if frame.get("type") == "message" and frame.get("author") == "manager" and frame.get("text") == text:
            return time.perf_counter()


async def fan_out(setup: Setup, visitors: int, rounds: int, work: Path) -> list[float]:
    async with Simulator(token=TOKEN, port=0, bot_username="frontdesk_bench_bot",
                         flood=FloodLimits(enabled=False)) as sim:
        sim.create_user("Boss", id=BOSS_ID)
        mia = sim.create_user("Mia", username="mia")
        group = sim.create_group("Managers", owner=BOSS_ID, members=[mia["id"]], forum=True, supergroup=True)
        ports = [free_port() for _ in range(setup.instances)]
        base = {"BOT_TOKEN": TOKEN, "TELEGRAM_API_BASE": sim.base_url, "DATABASE_URL": setup.database_url,
                "MANAGER_CHAT_ID": str(group["id"]), "ADMIN_IDS": str(BOSS_ID),
                "GROUP_MESSAGES_PER_MINUTE": "100000", "CUSTOMER_RATE_BURST": "1000",
                # Mia is the group's member who replies: a manager at once (since issue 15 a member waits
                # for an admin's approval, and a pending member's reply reaches no visitor).
                "STAFF_AUTO_APPROVE": "true",
                **ONE_ADDRESS}
        if setup.redis_url:
            base.update(REDIS_URL=setup.redis_url, REDIS_PREFIX=f"bench-{uuid.uuid4().hex[:8]}")

        def env_for(port: int) -> dict[str, str]:
            return {**base, "PORT": str(port), "WEBHOOK_BASE_URL": f"http://127.0.0.1:{port}"}

        async with frontdesk(env_for(ports[0]), work / f"fanout-{setup.name}-a.log"):
            if setup.instances == 2:
                # Started second, so Telegram's webhook points at it; the sockets stay on the first.
                async with frontdesk(env_for(ports[1]), work / f"fanout-{setup.name}-b.log"):
                    return await _measure(sim, group["id"], mia["id"], f"http://127.0.0.1:{ports[0]}", visitors,
                                          rounds)
            return await _measure(sim, group["id"], mia["id"], f"http://127.0.0.1:{ports[0]}", visitors, rounds)


async def _measure(sim: Simulator, group_id: int, manager_id: int, url: str, visitors: int,
                   rounds: int) -> list[float]:
    async with aiohttp.ClientSession() as http:
        sockets, conversations = [], []
        for _ in range(visitors):
            socket, _ = await hello(http, url)
            await socket.send_json({"type": "person"})
            while (frame := json.loads((await socket.receive(timeout=30)).data))["type"] != "status":
                pass
            sockets.append(socket)
            conversations.append(frame["conversation"])
        await sim.wait_until(lambda: len(_topics(sim, group_id)) >= visitors, 120, "topics")
        await sim.wait_until(lambda: all(len([m for m in sim.chat_history(group_id, thread_id=thread)
                                              if "forum_topic_created" not in m]) >= 1
                                         for thread in _topics(sim, group_id)), 120, "header cards")
        # An anonymous visitor's topic is named after their conversation: "❗ #12".
        chat = sim.world.find_chat(group_id)
        assert chat is not None
        by_conversation = {topic.name.rpartition("#")[2]: thread for thread, topic in chat.topics.items()}
        threads = [by_conversation[str(conversation)] for conversation in conversations]
        samples: list[float] = []
        for round_number in range(rounds + 1):  # round 0 warms up: the manager takes each conversation
            for socket, thread in zip(sockets, threads, strict=True):
                text = f"reply {round_number} in {thread}"
                receiving = asyncio.create_task(_receive_manager_frame(socket, text))
                sent = time.perf_counter()
                sim.send_text(manager_id, text, chat_id=group_id, thread_id=thread)
                received = await receiving
                if round_number:
                    samples.append((received - sent) * 1000)
        await asyncio.gather(*(socket.close() for socket in sockets))
    return samples


def _topics(sim: Simulator, chat_id: int) -> list[int]:
    chat = sim.world.find_chat(chat_id)
    return list(chat.topics) if chat is not None else []


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def _fresh_postgres(url: str) -> str:
    import asyncpg

    name = f"frontdesk_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


# --- the report ---------------------------------------------------------------------------------------------


def report(sockets: list[dict[str, float]], fanouts: dict[str, list[list[float]]], command: str, runs: int) -> str:
    lines = [
        BEGIN_MARK,
        f"- Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- Command: `{command}`; medians of {runs} runs, configurations interleaved",
        "",
        "**Idle sockets in one process** (SQLite, no Telegram): each socket is a new visitor that said hello",
        "and got its welcome; memory is the server's VmRSS. Target: 10,000 sockets under 250 MB.",
        "",
        "| server | sockets | RSS before | RSS with the sockets open | per socket | time to open them all | "
        "sockets counted by `/metrics` |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    def median_of(count: int, bare: float) -> dict[str, float] | None:
        rows = [s for s in sockets if int(s["sockets"]) == count and s["bare"] == bare]
        return {key: statistics.median(r[key] for r in rows) for key in rows[0]} if rows else None

    for bare in (0.0, 1.0):
        for count in sorted({int(s["sockets"]) for s in sockets}):
            median = median_of(count, bare)
            if median is None:
                continue
            name = "bare aiohttp (the floor)" if bare else "Frontdesk"
            counted = "-" if bare else f"{median['gauge']:,.0f}"
            figure = per_socket(median, None if bare else median_of(count, 1.0))
            lines.append(f"| {name} | {count:,} | {median['rss_before']:.0f} MB | {median['rss_after']:.0f} MB | "
                         f"{figure} | {median['open_seconds']:.1f} s | {counted} |")
    lines += [
        "",
        "**Fan-out: a manager's reply in the topic → the visitor's widget** (tgsim flood limits off). From the",
        "simulator pushing the manager's update to the socket receiving the message: webhook, dispatcher,",
        "store (one transaction), event bus, socket. Target: p99 under 50 ms on one instance.",
        "",
        "| setup | replies | p50 | p90 | p99 | max |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, runs_samples in fanouts.items():
        p50 = statistics.median(_percentile(s, 0.5) for s in runs_samples)
        p90 = statistics.median(_percentile(s, 0.9) for s in runs_samples)
        p99 = statistics.median(_percentile(s, 0.99) for s in runs_samples)
        worst = statistics.median(max(s) for s in runs_samples)
        count = sum(len(s) for s in runs_samples)
        lines.append(f"| {name} | {count} | {p50:.1f} ms | {p90:.1f} ms | {p99:.1f} ms | {worst:.1f} ms |")
    lines.append(END_MARK)
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> str:
    _raise_file_limit()
    counts = [int(c) for c in args.sockets.split(",")]
    socket_rows: list[dict[str, float]] = []
    fanouts: dict[str, list[list[float]]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        for run_number in range(args.runs):
            for count in counts:
                for bare in (False, True):
                    row = await idle_sockets(count, work, bare=bare)
                    print(f"run {run_number + 1}: {count} sockets{' (bare aiohttp)' if bare else ''}: {row}",
                          flush=True)
                    socket_rows.append(row)
            setups = [Setup("1 instance, SQLite", f"sqlite://{work}/fanout-{run_number}.sqlite3")]
            if args.postgres and args.redis:
                setups += [Setup("1 instance, PostgreSQL + Redis", await _fresh_postgres(args.postgres), args.redis),
                           Setup("2 instances, PostgreSQL + Redis (reply crosses Redis)",
                                 await _fresh_postgres(args.postgres), args.redis, instances=2)]
            for setup in setups:
                samples = await fan_out(setup, args.visitors, args.rounds, work)
                print(f"run {run_number + 1}: {setup.name}: p50 {_percentile(samples, 0.5):.1f} ms, "
                      f"p99 {_percentile(samples, 0.99):.1f} ms", flush=True)
                fanouts.setdefault(setup.name, []).append(samples)
    return report(socket_rows, fanouts, args.command, args.runs)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sockets", default="1000,10000", help="idle socket counts, comma-separated")
    parser.add_argument("--visitors", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=10, help="manager replies per visitor (after a warm-up)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--postgres", default=os.environ.get("BENCH_POSTGRES_URL", ""))
    parser.add_argument("--redis", default=os.environ.get("BENCH_REDIS_URL", ""))
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    args.command = os.environ.get("BENCH_LAUNCHER") or "python bench/widget.py " + " ".join(argv or sys.argv[1:])
    try:
        section = asyncio.run(run(args))
    except NotDone as error:
        print(f"widget: the work did not happen: {error}", file=sys.stderr)
        return 1
    print(section)
    if not args.no_write:
        write_section(DOC_PATH, "widget.py", section, "Website widget: idle sockets and fan-out")
    return 0


if __name__ == "__main__":
    sys.exit(main())
