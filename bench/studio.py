"""Prompt studio on a 200-item project (SQLite): compiling it, the compile request and the autosave.

The project: 200 context items of 200–3,000 characters (most near 900; seeded) in five context
blocks, and a prompt block whose template refers to every block and to ten variables, all filled:
about 270 KB as JSON, about a quarter of a project's limit.

1. In the benchmark's process, without HTTP: `services.studio.compiler.compile_template` on the
   parsed document (what `projects.compile_block` does), and beside it the other parts of a compile
   request: reading the body's JSON, validating the document (`projects.parse_doc`: the pydantic
   model and the size check) and counting its tokens.
2. Over HTTP, to Frontdesk served in the benchmark's process on SQLite (tgsim stands in for
   Telegram; aiohttp's client, keep-alive, one request at a time): `POST /api/studio/projects/{id}/compile`
   with the page's unsaved document (what the editor's live count sends: parse, validate, compile,
   count), the same without a document (the saved one is compiled), and the autosave
   `PUT /api/studio/projects/{id}` of the whole document (one variable changed each time). A request's
   time is the whole call, the client's part included.
3. cProfile over the HTTP requests names what dominates.

Each kind is timed `--count` times per run after a warm-up, the kinds interleaved; the tables give the
median over `--runs` runs of each run's p50 and p99.

`bash bench/run.sh studio` runs this (about a minute).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import os
import pstats
import random
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from common import DOC_PATH, marks, write_section
from ingest import code_version, machine
from tgsim import FloodLimits, Simulator
from tgsim.webapp import build_init_data

from bot import db
from bot.app import create_app
from bot.settings import Settings
from services.studio import projects
from services.studio.compiler import compile_template
from services.tokens import TokenCounter
from services.tokens import estimate as estimate_tokens
from tests.conftest import TOKEN, free_port

BEGIN_MARK, END_MARK = marks("studio.py")
BLOCKS = ("Product docs", "Brand voice", "Customer emails", "FAQ", "Policies")
VARIABLES = {"role": "the head of customer care", "company": "Bean & Leaf Coffee", "audience": "regular customers",
             "tone": "warm and brief", "language": "English", "channel": "email", "length": "120 words",
             "product": "the oat latte", "deadline": "Friday", "signature": "Dilnoza, Bean & Leaf"}
WORDS = [
    "order", "delivery", "refund", "coffee", "beans", "roast", "grinder", "espresso", "latte", "milk", "oat",
    "almond", "cup", "size", "price", "discount", "customer", "store", "opening", "hours", "weekend", "pickup",
    "courier", "parcel", "receipt", "invoice", "card", "payment", "loyalty", "points", "subscription",
    "monthly", "weekly", "flavour", "aroma", "acidity", "body", "origin", "Ethiopia", "Colombia", "Brazil",
    "Kenya", "warranty", "machine", "descaling", "filter", "water", "temperature", "grams", "seconds",
    "barista", "recipe", "cold", "brew", "iced", "seasonal", "menu", "gift", "wrapping", "address", "postcode",
    "tracking", "number", "apologise", "happy", "help", "question", "answer", "policy", "within", "days", "the",
    "a", "of", "to", "and", "in", "for", "with", "on", "at", "by", "from", "is", "are", "was", "be", "we",
    "you", "our", "your", "this", "that", "it"
]


def _text(rng: random.Random, size: int) -> str:
    words: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(WORDS)
        words.append(word)
        length += len(word) + 1
        if rng.random() < 0.07:
            words[-1] += "."
    return " ".join(words)[:size].strip()


def project_doc(items: int, seed: int = 7) -> dict[str, Any]:
    """The benchmark's document: `items` items over five context blocks, one prompt block using them all."""
    rng = random.Random(seed)
    context_blocks = []
    for number, name in enumerate(BLOCKS):
        count = items // len(BLOCKS) + (1 if number < items % len(BLOCKS) else 0)
        context_blocks.append({"id": f"c{number}", "name": name, "items": [
            {"id": f"c{number}i{index}", "title": f"{name} {index + 1}",
             "text": _text(rng, int(rng.triangular(200, 3000, 900))), "selected": rng.random() < 0.9}
            for index in range(count)]})
    template = ("# Role\nYou are {{role}} at {{company}}, writing to {{audience}} by {{channel}}.\n\n"
                + "".join(f"## {name}\n{{{{@{name}}}}}\n\n" for name in BLOCKS)
                + "# Task\nWrite a {{tone}} reply in {{language}} about {{product}}, at most {{length}}, "
                  "promising an answer by {{deadline}}. Sign it as {{signature}}.")
    return {"context_blocks": context_blocks,
            "prompt_blocks": [{"id": "p1", "name": "Reply", "template": template, "variables": dict(VARIABLES),
                               "model": "gpt-4o-mini"}]}


# --- timing ----------------------------------------------------------------------------------------


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


@dataclass
class Series:
    """One kind's runs: each run's p50 and p99, in seconds."""

    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # the process's CPU time per call, on average

    def add(self, seconds: Sequence[float], cpu: float = 0.0) -> None:
        self.p50.append(percentile(seconds, 0.5))
        self.p99.append(percentile(seconds, 0.99))
        self.cpu.append(cpu / len(seconds))


def time_sync(call: Callable[[], object], count: int) -> list[float]:
    seconds = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    return seconds


async def time_async(call: Callable[[], Awaitable[object]], count: int) -> list[float]:
    seconds = []
    for _ in range(count):
        started = time.perf_counter()
        await call()
        seconds.append(time.perf_counter() - started)
    return seconds


async def time_with_cpu(call: Callable[[], Awaitable[object]], count: int) -> tuple[list[float], float]:
    """Each call's time, and the CPU time the process (server, client, SQLite's thread) spent on them all."""
    cpu = time.process_time()
    seconds = await time_async(call, count)
    return seconds, time.process_time() - cpu


# --- Frontdesk -------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def served(database_url: str, sim: Simulator) -> AsyncIterator[str]:
    port = free_port()
    env = {"BOT_TOKEN": TOKEN, "TELEGRAM_API_BASE": sim.base_url, "DATABASE_URL": database_url, "HOST": "127.0.0.1",
           "PORT": str(port), "WEBHOOK_BASE_URL": f"http://127.0.0.1:{port}", "LOG_LEVEL": "WARNING"}
    app = create_app(Settings(_env_file=None, **env))
    runner = web.AppRunner(app, access_log=None)
    try:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@dataclass
class Client:
    http: aiohttp.ClientSession
    base: str
    headers: dict[str, str]
    project_id: int = 0
    revision: int = 0

    async def call(self, method: str, path: str, body: bytes) -> Any:
        async with self.http.request(method, self.base + path, data=body,
                                     headers={**self.headers, "Content-Type": "application/json"}) as response:
            answer = await response.json()
            if response.status not in (200, 201):
                raise RuntimeError(f"{method} {path}: {response.status} {answer}")
            return answer


@dataclass
class Measured:
    pure: dict[str, Series]
    http: dict[str, Series]
    sizes: dict[str, int]
    profiles: dict[str, Profiled]
    loads: list[float] = field(default_factory=list)  # the 1-minute load average after each run


async def measure(options: Options) -> Measured:
    data = project_doc(options.items)
    body_bytes = json.dumps({"block_id": "p1", "model": "gpt-4o-mini", "data": data}).encode()
    doc = projects.parse_doc(data)
    block = doc.prompt_blocks[0]
    compiled = compile_template(block.template, block.variables, doc.context_blocks)
    assert compiled.ready, compiled.missing
    counter = TokenCounter()
    sizes = {"items": sum(len(b.items) for b in doc.context_blocks), "document": len(json.dumps(data).encode()),
             "compiled": compiled.chars, "tokens": (await counter.count(compiled.text, "gpt-4o-mini")).tokens}
    pure: dict[str, Series] = {name: Series() for name in ("json", "validate", "compile", "count")}
    http: dict[str, Series] = {name: Series() for name in ("compile_page", "compile_saved", "save")}
    loads: list[float] = []
    parts: dict[str, Callable[[], object]] = {
        "json": lambda: json.loads(body_bytes),
        "validate": lambda: projects.parse_doc(data),
        "compile": lambda: compile_template(block.template, block.variables, doc.context_blocks),
        "count": lambda: estimate_tokens(compiled.text),  # the estimate TokenCounter.count falls back to offline
    }
    with tempfile.TemporaryDirectory() as scratch:
        database_url = f"sqlite://{Path(scratch) / 'studio.sqlite3'}"
        await db.migrate(database_url)
        async with Simulator(token=TOKEN, port=0, bot_username="frontdesk_bench_bot", bot_name="Frontdesk",
                             flood=FloodLimits(enabled=False)) as sim:
            user = {"id": 424242, "first_name": "Ann", "language_code": "en"}
            sim.create_user("Ann", id=user["id"])
            async with served(database_url, sim) as base, aiohttp.ClientSession() as session:
                client = Client(session, base, {"Authorization": f"tma {build_init_data(TOKEN, user)}"})
                created = await client.call("POST", "/api/studio/projects", json.dumps({"name": "Replies"}).encode())
                client.project_id, client.revision = created["id"], created["revision"]
                counter_value = 0
                answers: dict[str, Any] = {}

                async def compile_page() -> None:
                    answers["compile_page"] = await client.call(
                        "POST", f"/api/studio/projects/{client.project_id}/compile", body_bytes)

                async def compile_saved() -> None:
                    answers["compile_saved"] = await client.call(
                        "POST", f"/api/studio/projects/{client.project_id}/compile",
                        b'{"block_id": "p1", "model": "gpt-4o-mini"}')

                async def save() -> None:
                    nonlocal counter_value
                    counter_value += 1
                    data["prompt_blocks"][0]["variables"]["deadline"] = f"Friday ({counter_value})"
                    saved = await client.call("PUT", f"/api/studio/projects/{client.project_id}",
                                              json.dumps({"revision": client.revision, "data": data}).encode())
                    client.revision = saved["revision"]

                calls: dict[str, Callable[[], Awaitable[None]]] = {
                    "compile_page": compile_page, "compile_saved": compile_saved, "save": save}
                await save()
                for call in calls.values():  # warm-up
                    await time_async(call, 10)
                for part in parts.values():
                    time_sync(part, 20)
                for run in range(options.runs):
                    order = list(parts) if run % 2 == 0 else list(parts)[::-1]
                    for name in order:
                        pure[name].add(time_sync(parts[name], options.count))
                    kinds = list(calls) if run % 2 == 0 else list(calls)[::-1]
                    for name in kinds:
                        http[name].add(*await time_with_cpu(calls[name], options.requests))
                    loads.append(os.getloadavg()[0])
                    print(f"run {run + 1} (load {loads[-1]:.1f}): " + ", ".join(
                        f"{name} p50 {ms(series.p50[-1])} ms" for name, series in {**pure, **http}.items()),
                        file=sys.stderr, flush=True)
                profiles = {}
                for name, call in calls.items():
                    profile = cProfile.Profile()
                    profile.enable()
                    _, cpu = await time_with_cpu(call, options.profiled)
                    profile.disable()
                    profiles[name] = profiled(profile, name, options.profiled, cpu)
                check_work(answers, sizes, await client.call("GET", f"/api/studio/projects/{client.project_id}", b""),
                           data)
    return Measured(pure, http, sizes, profiles, loads)


class NotDone(Exception):
    """A request the benchmark times did not do its work."""


def check_work(answers: dict[str, Any], sizes: dict[str, int], stored: Any, data: dict[str, Any]) -> None:
    """Both compiles returned the whole project compiled and counted (the page's document, and the one
    last saved), and the autosaves were stored."""
    saved = projects.parse_doc(data)
    block = saved.prompt_blocks[0]
    expected = {"compile_page": sizes["compiled"],
                "compile_saved": compile_template(block.template, block.variables, saved.context_blocks).chars}
    for kind, chars in expected.items():
        answer = answers.get(kind)
        if not answer or answer.get("chars") != chars or not answer.get("tokens"):
            got = {key: answer.get(key) for key in ("chars", "tokens")} if answer else answer
            raise NotDone(f"{kind} answered {got}, not the {chars} characters compiled and counted")
    deadline = data["prompt_blocks"][0]["variables"]["deadline"]
    if stored["data"]["prompt_blocks"][0]["variables"].get("deadline") != deadline:
        raise NotDone(f"the stored project does not hold the last autosave's {deadline!r}")


KEY_FUNCTIONS = [  # (file, function, what the table calls it), in the order a request meets them
    ("miniapp/auth.py", "authenticate", "the caller (initData check, their row)"),
    ("miniapp/api.py", "read_body", "reading the body (`json.loads`, the request model)"),
    ("services/studio/projects.py", "get_project", "reading the project's row (its document's JSON decoded)"),
    ("services/studio/projects.py", "parse_doc", "validating the page's document (`projects.parse_doc`)"),
    ("services/studio/projects.py", "_fits", "… of which its size as JSON (`projects._fits`)"),
    ("services/studio/projects.py", "load", "the saved document as the model (`projects.load`)"),
    ("services/studio/compiler.py", "compile_template", "compiling"),
    ("services/studio/projects.py", "save", "storing it (`projects.save`: the size, the UPDATE)"),
    ("miniapp/api.py", "ok", "the JSON answer (`model_dump_json`)"),
]
HANDLERS = {"compile_page": "compile_block", "compile_saved": "compile_block", "save": "save_project"}


@dataclass
class Profiled:
    """Where one kind of request spends its time: ms per request, by function (and what it calls)."""

    handler: float
    parts: dict[str, float]
    whole: float  # the process's CPU time per request: the client's side and SQLite's thread included


def profiled(profile: cProfile.Profile, kind: str, requests: int, cpu: float) -> Profiled:
    stats = pstats.Stats(profile, stream=io.StringIO()).stats  # type: ignore[attr-defined]
    root = str(Path(__file__).resolve().parent.parent) + "/"
    cumulative: dict[tuple[str, str], float] = {}
    for (path, _, name), (_, _, _, total, _) in stats.items():
        key = (path.removeprefix(root), name)
        cumulative[key] = cumulative.get(key, 0.0) + total
    parts = {label: 1000 * cumulative[(path, name)] / requests for path, name, label in KEY_FUNCTIONS
             if cumulative.get((path, name))}
    handler = 1000 * cumulative.get(("miniapp/studio_api.py", HANDLERS[kind]), 0.0) / requests
    return Profiled(handler, parts, 1000 * cpu / requests)


# --- the document -------------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    value = seconds * 1000
    return f"{value:.3f}" if value < 1 else f"{value:.2f}" if value < 10 else f"{value:.1f}"


PURE = {"json": "reading the compile request's JSON body (`json.loads`)",
        "validate": "validating the document (`projects.parse_doc`: pydantic, then the size as JSON)",
        "compile": "**compiling** (`compiler.compile_template`)",
        "count": "counting tokens (the estimate `TokenCounter` gives today)"}
HTTP = {"compile_page": "`POST …/compile` with the page's unsaved document",
        "compile_saved": "`POST …/compile` of the saved document",
        "save": "`PUT …/{id}`: the autosave of the whole document"}


def table(measured: Measured) -> str:
    lines = ["| what | p50 ms | p99 ms | CPU ms per call |", "| --- | ---: | ---: | ---: |"]
    for names, series in ((PURE, measured.pure), (HTTP, measured.http)):
        for key, name in names.items():
            cpu = ms(statistics.median(series[key].cpu)) if series[key].cpu and any(series[key].cpu) else "="
            lines.append(f"| {name} | {ms(statistics.median(series[key].p50))} | "
                         f"{ms(statistics.median(series[key].p99))} | {cpu} |")
    return "\n".join(lines)


def profile_table(measured: Measured) -> str:
    kinds = list(HTTP)
    lines = ["| ms per request, under cProfile | " + " | ".join(HTTP[kind] for kind in kinds) + " |",
             "| --- |" + " ---: |" * len(kinds),
             "| the process's CPU time (client and SQLite's thread included) | " + " | ".join(
                 f"{measured.profiles[kind].whole:.1f}" for kind in kinds) + " |",
             "| … of which the handler, on the event loop's thread | " + " | ".join(
                 f"{measured.profiles[kind].handler:.1f}" for kind in kinds) + " |"]
    for _, _, label in KEY_FUNCTIONS:
        values = [measured.profiles[kind].parts.get(label) for kind in kinds]
        if any(values):
            lines.append(f"| {label} | " + " | ".join(f"{v:.1f}" if v else "–" for v in values) + " |")
    return "\n".join(lines)


def generated_section(options: Options, measured: Measured) -> str:
    command = f"`{shlex.join(['python', 'bench/studio.py', *sys.argv[1:]])}`"
    if launcher := os.environ.get("BENCH_LAUNCHER", ""):
        command = f"`{launcher}`, which runs {command}"
    sizes = measured.sizes
    return "\n".join([
        BEGIN_MARK,
        f"- **Date:** {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- **Machine:** {machine()}; its 1-minute load average during the runs {min(measured.loads):.1f}–"
        f"{max(measured.loads):.1f} (other work shared the cores: the p99s carry waits for the CPU)",
        f"- **Frontdesk:** commit {code_version()}; SQLite (a file in a temporary directory), one process",
        f"- **Command:** {command}",
        f"- **Project:** {sizes['items']} context items of 200–3,000 characters in {len(BLOCKS)} context blocks "
        f"(90% selected), one prompt block referring to all five and to {len(VARIABLES)} variables: "
        f"{sizes['document'] / 1000:.0f} KB as JSON; compiled, {sizes['compiled']:,} characters "
        f"(~{sizes['tokens']:,} tokens)",
        f"- **Load:** per run, {options.count} calls of each part and {options.requests} requests of each kind, "
        f"one at a time, kinds interleaved, after a warm-up; {options.runs} runs. The table gives the median of "
        "the runs' p50 and p99. Requests go over loopback HTTP to the app served in the same process (the "
        "client's work is in the time); their CPU column is the process's CPU time (server, client and "
        "SQLite's thread) per request, which waiting for a busy CPU does not inflate (the parts run on the CPU "
        "throughout: their CPU time is their time, `=`).",
        "",
        table(measured),
        "",
        f"**What dominates.** {options.profiled} more requests of each kind under cProfile, which slows Python "
        "code down, so these add up to more than the table above: the process's CPU time per request, then "
        "each step's time with what it calls, on the event loop's thread (SQLite works in a thread of its own "
        "meanwhile; a step's time may include turns other processes took on the CPU):",
        "",
        profile_table(measured),
        END_MARK])


@dataclass(frozen=True)
class Options:
    items: int
    runs: int
    count: int
    requests: int
    profiled: int
    doc: Path | None


def parse_options(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--items", type=int, default=200, help="context items in the project")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--count", type=int, default=300, help="calls of each part per run")
    parser.add_argument("--requests", type=int, default=100, help="requests of each kind per run")
    parser.add_argument("--profiled", type=int, default=50, help="requests of each kind under cProfile")
    parser.add_argument("--no-doc", action="store_true", help="only print the table")
    args = parser.parse_args(argv)
    return Options(args.items, args.runs, args.count, args.requests, args.profiled,
                   None if args.no_doc else DOC_PATH)


async def run(options: Options) -> int:
    try:
        measured = await measure(options)
    except NotDone as error:
        print(f"studio: the work did not happen: {error}", file=sys.stderr)
        return 1
    print(table(measured))
    print(profile_table(measured))
    if options.doc is not None:
        write_section(options.doc, "studio.py", generated_section(options, measured),
                      "Prompt studio: compiling a 200-item project")
        print(f"wrote {options.doc}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(run(parse_options(argv)))


if __name__ == "__main__":
    sys.exit(main())
