"""`python -m bot` as an operator runs it: a real process, killed and restarted, and its CLI."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
from tgsim import Simulator

from bot import db
from models import AuthorKind, JobStatus, KnowledgeItem, Message, OutboxJob, Persona
from tests.conftest import ENCRYPTION_KEY, ROOT, eventually, free_port, frontdesk_environment, outbox_idle
from tests.fake_ai import FakeAI


def _clean_environment(**env: str) -> dict[str, str]:
    inherited = {key: value for key, value in os.environ.items()
                 if not key.startswith(("BOT_", "AI_", "WEBHOOK_", "DATABASE_", "TELEGRAM_"))}
    return {**inherited, **env}


async def _wait_healthy(url: str, process: subprocess.Popen[bytes], within: float = 60.0) -> None:
    async with aiohttp.ClientSession() as http:
        async def healthy() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"the process exited with {process.returncode}")
            try:
                async with http.get(url + "/healthz") as response:
                    return response.status == 200
            except aiohttp.ClientError:
                return False

        await eventually(healthy, "the process to become healthy", within)


def _spawn(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    # cwd is a scratch directory, so a developer's .env never leaks into the test.
    with (tmp_path / "process.log").open("ab") as log:
        return subprocess.Popen([sys.executable, "-m", "bot", *args], cwd=tmp_path,
                                env=_clean_environment(**env), stdout=log, stderr=subprocess.STDOUT)


async def _start(tmp_path: Path, env: dict[str, str], processes: list[subprocess.Popen[bytes]]
                 ) -> subprocess.Popen[bytes]:
    """`python -m bot` with `env`, healthy on its PORT, stopped at the test's end."""
    process = _spawn(tmp_path, env)
    processes.append(process)
    await _wait_healthy(f"http://127.0.0.1:{env['PORT']}", process)
    return process


async def test_a_process_killed_after_storing_answers_once_after_restart(
        database_url: str, sim: Simulator, ai: FakeAI, tmp_path: Path,
        processes: list[subprocess.Popen[bytes]]) -> None:
    port = free_port()
    env = frontdesk_environment(database_url, sim, ai, port, OUTBOX_LEASE_SECONDS=2)
    hold = ai.script.hold = asyncio.Event()
    ai.script.reply = "Answered after the crash."
    first = await _start(tmp_path, env, processes)

    ann = sim.create_user("Ann")
    sim.send_text(ann["id"], "will you survive a crash?")
    await asyncio.wait_for(ai.received.wait(), 10)  # stored, acknowledged, and the AI is being asked
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    assert sim.chat_history(ann["id"])[-1]["text"] == "will you survive a crash?"

    hold.set()
    await _start(tmp_path, env, processes)
    [answer] = await sim.wait_for_messages(ann["id"], timeout=20)
    assert answer["text"] == "Answered after the crash."

    await db.open_database(database_url, run_migrations=False)
    try:
        await outbox_idle(sim)  # the restarted process has run every job there is
        assert [m["text"] for m in sim.chat_history(ann["id"]) if m["from"]["is_bot"]] == [answer["text"]]
        assert await Message.filter(author_kind=AuthorKind.CUSTOMER).count() == 1
        assert await Message.filter(author_kind=AuthorKind.AI).count() == 1
        [job] = await OutboxJob.all()
        assert job.status == JobStatus.DONE
        assert job.attempts == 2
    finally:
        await db.close_database()


async def test_without_a_token_the_server_still_serves_and_says_telegram_is_off(
        database_url: str, tmp_path: Path, processes: list[subprocess.Popen[bytes]]) -> None:
    port = free_port()
    env = {"DATABASE_URL": database_url, "PORT": str(port), "HOST": "127.0.0.1"}
    process = await _start(tmp_path, env, processes)
    async with aiohttp.ClientSession() as http, http.post(f"http://127.0.0.1:{port}/telegram/webhook") as response:
        assert response.status == 404
        assert (await response.json())["ok"] is False
    process.send_signal(signal.SIGINT)
    assert process.wait(30) == 0
    output = (tmp_path / "process.log").read_text()
    off_lines = [line for line in output.splitlines() if "Telegram is off" in line]
    assert len(off_lines) == 1
    assert "BOT_TOKEN" in off_lines[0]


def _run_cli(tmp_path: Path, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=tmp_path, capture_output=True, text=True,
                          env=_clean_environment(DATABASE_URL=database_url), timeout=60, check=False)


async def test_knowledge_import_is_idempotent_and_persona_is_versioned(database_url: str, tmp_path: Path) -> None:
    demo = ROOT / "demo"
    first = _run_cli(tmp_path, database_url, "kb", "import", str(demo / "knowledge.md"))
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip().splitlines()[-1] == "8 created, 0 updated, 0 unchanged"
    again = _run_cli(tmp_path, database_url, "kb", "import", str(demo / "knowledge.md"))
    assert again.stdout.strip().splitlines()[-1] == "0 created, 0 updated, 8 unchanged"

    csv_file = tmp_path / "more.csv"
    csv_file.write_text('question,answer,tags\n"Do you have Wi-Fi?","Yes, and it is fast now.",wifi\n'
                        "Do you bake cakes?,Every morning.,bakery\n", encoding="utf-8")
    third = _run_cli(tmp_path, database_url, "kb", "import", str(csv_file))
    assert third.stdout.strip().splitlines()[-1] == "1 created, 1 updated, 0 unchanged"

    broken = tmp_path / "broken.csv"
    broken.write_text("only a question\n", encoding="utf-8")
    failed = _run_cli(tmp_path, database_url, "kb", "import", str(broken))
    assert failed.returncode == 1
    assert "row 1" in failed.stderr

    assert _run_cli(tmp_path, database_url, "persona", "set", str(demo / "persona.md")).returncode == 0
    assert _run_cli(tmp_path, database_url, "persona", "set", str(demo / "persona.md")).returncode == 0

    await db.open_database(database_url, run_migrations=False)
    try:
        assert await KnowledgeItem.all().count() == 9
        wifi = await KnowledgeItem.get(question="Do you have Wi-Fi?")
        assert wifi.answer == "Yes, and it is fast now."
        personas = await Persona.all().order_by("version")
        assert [(p.version, p.active) for p in personas] == [(1, False), (2, True)]
    finally:
        await db.close_database()


def test_bad_settings_are_named_without_echoing_secrets(tmp_path: Path) -> None:
    env = _clean_environment(BOT_TOKEN="7000000001:very-secret-token", AI_API_KEY="sk-very-secret",
                             AI_FALLBACK_MODELS="claude@nowhere")
    result = subprocess.run([sys.executable, "-m", "bot", "migrate"], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "AI_PROVIDERS does not define" in result.stderr
    assert "very-secret" not in result.stderr + result.stdout


def test_telegrams_budgets_may_only_be_lowered(tmp_path: Path) -> None:
    """Telegram allows about 20 messages a minute into a group and 30 a second in all: an operator who
    raises either is stopped."""
    def migrate(**env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "bot", "migrate"], cwd=tmp_path, capture_output=True, text=True,
                              env=_clean_environment(DATABASE_URL=f"sqlite://{tmp_path}/db.sqlite3", **env),
                              timeout=60, check=False)

    raised = migrate(GROUP_MESSAGES_PER_MINUTE="30")
    assert raised.returncode == 2
    assert "GROUP_MESSAGES_PER_MINUTE may only be lowered" in raised.stderr
    in_production = migrate(GROUP_MESSAGES_PER_MINUTE="30", TELEGRAM_API_BASE="http://127.0.0.1:9",
                            APP_ENV="production", ENCRYPTION_KEY=ENCRYPTION_KEY)
    assert in_production.returncode == 2
    assert "GROUP_MESSAGES_PER_MINUTE may only be lowered" in in_production.stderr
    assert migrate(GROUP_MESSAGES_PER_MINUTE="10").returncode == 0
    # A test server in development may be driven faster (the benchmarks and tests do).
    assert migrate(GROUP_MESSAGES_PER_MINUTE="100", TELEGRAM_API_BASE="http://127.0.0.1:9").returncode == 0
    bot_wide = migrate(TELEGRAM_MESSAGES_PER_SECOND="40")  # the 30 a second to all chats together: the same
    assert bot_wide.returncode == 2
    assert "TELEGRAM_MESSAGES_PER_SECOND may only be lowered: Telegram allows a bot about 30 messages a second" \
        in bot_wide.stderr
    assert migrate(TELEGRAM_MESSAGES_PER_SECOND="20").returncode == 0


async def test_sigterm_releases_a_running_job_within_the_grace_period_and_a_restart_answers_once(
        database_url: str, sim: Simulator, ai: FakeAI, tmp_path: Path,
        processes: list[subprocess.Popen[bytes]]) -> None:
    port = free_port()
    env = frontdesk_environment(database_url, sim, ai, port, SHUTDOWN_GRACE_SECONDS=2)
    hold = ai.script.hold = asyncio.Event()
    ai.script.reply = "Answered by the next start."
    first = await _start(tmp_path, env, processes)
    ann = sim.create_user("Ann")
    sim.send_text(ann["id"], "still there after a deploy?")
    await asyncio.wait_for(ai.received.wait(), 10)  # the job runs, waiting for the AI
    first.send_signal(signal.SIGTERM)
    # The model answers 6 s later: within the default grace (10 s) the job would have waited for it and
    # been done; with the 2 s grace it was cut and handed back before.
    asyncio.get_running_loop().call_later(6.0, hold.set)
    assert await asyncio.to_thread(first.wait, 30) == 0

    await db.open_database(database_url, run_migrations=False)
    try:
        [job] = await OutboxJob.all()
        assert job.status == JobStatus.PENDING  # handed back, not left to a lease to expire
        assert job.attempts == 0
    finally:
        await db.close_database()

    hold.set()
    await _start(tmp_path, env, processes)
    [answer] = await sim.wait_for_messages(ann["id"], timeout=20)
    assert answer["text"] == "Answered by the next start."
    await db.open_database(database_url, run_migrations=False)
    try:
        await outbox_idle(sim)  # the restarted process has run every job there is
    finally:
        await db.close_database()
    assert [m["text"] for m in sim.chat_history(ann["id"]) if m["from"]["is_bot"]] == [answer["text"]]
