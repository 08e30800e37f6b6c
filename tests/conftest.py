"""Fixtures: real databases (SQLite always, PostgreSQL when TEST_POSTGRES_URL is set, as `make test`
does), the Telegram simulator from ../shared/tgsim, the fake AI server, and Frontdesk itself running
on a real port with its webhook registered at the simulator."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
if str(SHARED) not in sys.path:
    sys.path.insert(0, str(SHARED))

from playwright.async_api import expect  # noqa: E402
from tgsim import FloodLimits, Simulator  # noqa: E402

from bot import db  # noqa: E402
from bot.app import create_app  # noqa: E402
from bot.settings import Settings  # noqa: E402
from models import JobStatus, OutboxJob, TelegramUpdate, UpdateState  # noqa: E402
from services import outbox  # noqa: E402
from tests.fake_ai import FakeAI  # noqa: E402

# The suite shares its machine (the SQLite and PostgreSQL runs go side by side): a page's live update can
# take longer than Playwright's 5 s default there. Waiting longer lets no wrong page pass; it fails later.
expect.set_options(timeout=15_000)

TOKEN = "7000000001:TEST-frontdesk-token"
ENCRYPTION_KEY = "q0kPZ0Uo3s9mAGgdPHP2v6nAhQ7c3b6uVJk1yZ1o1pE="  # the tests' own: seals customers' API keys
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "")
# One database per test process: Tortoise caches each model's SQL for the dialect it met first,
# so tests/run.sh runs the suite once per backend (in parallel) rather than mixing them here.
BACKEND = os.environ.get("TEST_DATABASE", "sqlite")
if BACKEND not in ("sqlite", "postgres") or (BACKEND == "postgres" and not POSTGRES_URL):
    raise RuntimeError("TEST_DATABASE is sqlite, or postgres with TEST_POSTGRES_URL set (see tests/run.sh)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives Chromium; runs once, in the SQLite run")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A page behaves the same on either database: browser tests run in the SQLite run only, which
    keeps the two runs of tests/run.sh (side by side on two cores) about as long as each other."""
    if BACKEND != "postgres":
        return
    once = pytest.mark.skip(reason="browser tests run once, in the SQLite run (pages are the same on either database)")
    for item in items:
        if item.get_closest_marker("browser") is not None:
            item.add_marker(once)


def run_in_thread(coroutine: Any) -> Any:
    """asyncio.run for session fixtures first requested from inside a running test loop."""
    with concurrent.futures.ThreadPoolExecutor(1) as executor:
        return executor.submit(asyncio.run, coroutine).result()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- databases ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file; each test gets a copy."""
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    run_in_thread(db.migrate(f"sqlite://{path}"))
    return path


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """One migrated PostgreSQL database; each test gets a copy (CREATE DATABASE ... TEMPLATE)."""
    name = f"frontdesk_template_{uuid.uuid4().hex[:8]}"

    async def create() -> None:
        admin = await asyncpg.connect(POSTGRES_URL)
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        await db.migrate(_with_database(POSTGRES_URL, name))

    async def drop() -> None:
        admin = await asyncpg.connect(POSTGRES_URL)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()

    run_in_thread(create())
    yield name
    run_in_thread(drop())


@pytest.fixture
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if BACKEND == "sqlite":
        path = tmp_path / "frontdesk.sqlite3"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite://{path}"
        return
    template = request.getfixturevalue("postgres_template")
    name = f"frontdesk_test_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(POSTGRES_URL)
    await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    await admin.close()
    yield _with_database(POSTGRES_URL, name)
    admin = await asyncpg.connect(POSTGRES_URL)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[str]:
    """An open database for tests of services alone."""
    await db.open_database(database_url, run_migrations=False)
    yield database_url
    await db.close_database()


# --- the outside world -------------------------------------------------------------------------


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(token=TOKEN, port=0, bot_username="frontdesk_test_bot", bot_name="Frontdesk") as simulator:
        yield simulator
        assert simulator.violations() == [], "the bot made calls Telegram's schema does not allow"


@pytest.fixture
async def ai() -> AsyncIterator[FakeAI]:
    server = await FakeAI().start()
    yield server
    if server.script.hold is not None:
        server.script.hold.set()
    await server.stop()


# --- Frontdesk ---------------------------------------------------------------------------------


def frontdesk_environment(database_url: str, sim: Simulator, ai: FakeAI | None, port: int,
                          **overrides: Any) -> dict[str, str]:
    env = {
        "BOT_TOKEN": TOKEN,
        "TELEGRAM_API_BASE": sim.base_url,
        "WEBHOOK_BASE_URL": f"http://127.0.0.1:{port}",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "DATABASE_URL": database_url,
        "AI_BASE_URL": ai.base_url if ai else "",
        "AI_API_KEY": "test-key",
        "AI_MODEL": "main-model" if ai else "",
        "AI_FALLBACK_MODELS": "backup-model",
        "DRAFT_INTERVAL": "0",
        "OUTBOX_LEASE_SECONDS": "30",
        "SHUTDOWN_GRACE_SECONDS": "2",
        "LOG_LEVEL": "INFO",
        "ENCRYPTION_KEY": ENCRYPTION_KEY,
        # Most tests are about what approved managers do; tests/test_staff_roles.py runs with the
        # product's default (members wait for an admin's approval).
        "STAFF_AUTO_APPROVE": "true",
    }
    if BACKEND == "postgres" and REDIS_URL:
        # The PostgreSQL run is the large-shop setup: PostgreSQL plus Redis for shared state.
        env["REDIS_URL"] = REDIS_URL
        env["REDIS_PREFIX"] = f"test-{uuid.uuid4().hex[:12]}"
    env.update({key: str(value) for key, value in overrides.items()})
    return env


@dataclass
class Frontdesk:
    settings: Settings
    app: web.Application
    runner: web.AppRunner
    url: str


@pytest.fixture
def frontdesk_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Overrides for `frontdesk`: parametrize it indirectly with a dict of settings."""
    return dict(getattr(request, "param", {}))


@contextlib.asynccontextmanager
async def running_frontdesk(env: dict[str, str]) -> AsyncIterator[Frontdesk]:
    """Frontdesk served on the port in `env`, as `python -m bot` would serve it."""
    settings = Settings(_env_file=None, **cast(dict[str, Any], env))
    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None)
    try:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", settings.port).start()
        yield Frontdesk(settings, app, runner, f"http://127.0.0.1:{settings.port}")
    finally:
        await runner.cleanup()


@pytest.fixture
async def frontdesk(database_url: str, sim: Simulator, ai: FakeAI,
                    frontdesk_settings: dict[str, Any]) -> AsyncIterator[Frontdesk]:
    use_ai = frontdesk_settings.pop("use_ai", True)
    env = frontdesk_environment(database_url, sim, ai if use_ai else None, free_port(), **frontdesk_settings)
    async with running_frontdesk(env) as running:
        yield running


async def eventually(check: Callable[[], Awaitable[bool]], what: str, within: float = 30.0) -> None:
    """Wait until `check()` holds (an outcome in the database or a reply), or fail naming `what`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await check():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def outbox_idle(sim: Simulator, within: float = 30.0, *, queue: str | None = None) -> None:
    """Wait until Frontdesk has taken every update and nothing it caused is left to do: the positive
    event a negative check ("nothing more reached the customer") waits for.

    tgsim counts an update delivered once the webhook answered, which it does once the update is stored
    in the intake; everything the update makes Frontdesk do is an outbox job written while an intake
    worker handles it, before the update is marked handled; and a job that causes another writes it
    before it finishes. So once tgsim holds no update, the intake none unhandled, and no job is due or
    running in any queue (or in `queue` only: "" the customers', "managers" the manager group's)
    nothing more goes out. A job waiting out a retry after a failure counts as due: it runs again soon. A postponed
    job (no manager chat set up yet, say) does not, nor do the jobs queued behind it in its lane:
    they wait for something the test has to do.
    A widget frame is no update: wait for the server's answer to it (a frame) before this.
    """
    async def idle() -> bool:
        await sim.wait_until_delivered(timeout=within)
        return not await _updates_unhandled() and not await _busy_jobs(queue)  # in this order: updates make jobs
    try:
        await eventually(idle, f"the outbox ({'every queue' if queue is None else queue or 'customers'}) to be idle",
                         within)
    except AssertionError as error:
        raise AssertionError(f"{error}: {[str(job) for job in await _busy_jobs(queue)]}") from None


async def updates_handled(sim: Simulator, within: float = 30.0) -> None:
    """Wait until every update sent so far is handled (its message and jobs stored), not only taken: the
    webhook answers Telegram once an update is stored, and an intake worker handles it after."""
    await sim.wait_until_delivered(timeout=within)

    async def handled() -> bool:
        return not await _updates_unhandled()
    await eventually(handled, "the intake to handle every update", within)


async def _updates_unhandled() -> int:
    return await TelegramUpdate.filter(state__in=(UpdateState.PENDING, UpdateState.RUNNING)).count()


async def _busy_jobs(queue: str | None) -> list[OutboxJob]:
    """The outbox's jobs that are running or will run without the test doing anything more."""
    unfinished = OutboxJob.filter(status__in=(JobStatus.PENDING, JobStatus.RUNNING)).order_by("id")
    moment = outbox.now()
    held: set[tuple[str, str]] = set()  # lanes a postponed job holds up
    busy = []
    for job in await (unfinished if queue is None else unfinished.filter(queue=queue)):
        postponed = job.status == JobStatus.PENDING and job.run_after > moment and not job.last_error
        if postponed or (job.queue, job.lane) in held:
            if job.lane:
                held.add((job.queue, job.lane))
            continue
        busy.append(job)
    return busy


def formatted(message: dict[str, Any], kind: str) -> list[str]:
    """The pieces of a message's text carrying an entity of `kind` (offsets are UTF-16, as Telegram's)."""
    encoded = message["text"].encode("utf-16-le")
    return [encoded[2 * e["offset"]: 2 * (e["offset"] + e["length"])].decode("utf-16-le")
            for e in message.get("entities", []) if e["type"] == kind]


@pytest.fixture
async def processes() -> AsyncIterator[list[subprocess.Popen[bytes]]]:
    """`python -m bot` processes a test starts; stopped (then killed) at its end."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


@pytest.fixture
def flood_off(sim: Simulator) -> None:
    sim.set_flood_limits(enabled=False)


__all__ = ["FloodLimits"]
