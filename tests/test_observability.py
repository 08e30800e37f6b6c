"""What an operator sees: /metrics, /readyz, and log lines (JSON on request, never a secret)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import signal
import subprocess
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tgsim import Simulator

from bot.observability import JsonFormatter, Redact, update_id_var
from models import Bot, OutboxJob, TelegramUpdate
from services import outbox
from services.intake import now_ms
from tests.conftest import (
    BACKEND,
    REDIS_URL,
    TOKEN,
    Frontdesk,
    eventually,
    free_port,
    frontdesk_environment,
    outbox_idle,
    running_frontdesk,
)
from tests.fake_ai import FakeAI
from tests.telegram_proxy import telegram_refusing
from tests.test_process import _start

METRICS_TOKEN = "scraper-token-0123456789abcdef"
# /metrics on, and the database's gauges read every 0.1 s, so a test sees a change soon after it happens.
SCRAPED = {"METRICS_TOKEN": METRICS_TOKEN, "METRICS_REFRESH_SECONDS": 0.1}


async def scrape(frontdesk: Frontdesk) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with aiohttp.ClientSession() as http, http.get(
            frontdesk.url + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def scraped_soon(frontdesk: Frontdesk, name: str, expected: float, **labels: str) -> None:
    """A database gauge reaches `expected` by the next refresh (a scrape itself reads no database)."""
    async def shown() -> bool:
        return value(await scrape(frontdesk), name, **labels) == expected

    await eventually(shown, f"{name}{labels} == {expected}")


@pytest.mark.parametrize("frontdesk_settings", [SCRAPED], indirect=True)
async def test_metrics_count_updates_calls_answers_and_conversations(
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ai.script.reply = "Hello there."
    ann = sim.create_user("Ann")
    sent = sim.send_text(ann["id"], "hi")
    await sim.wait_for_messages(ann["id"])
    await outbox_idle(sim)  # the update stored and handled, the answer's job done ...
    await scraped_soon(frontdesk, "frontdesk_outbox_jobs_total", 1, queue="customers", kind="answer",
                       result="done")  # ... and counted
    update = {"update_id": 1, "message": sent}
    async with aiohttp.ClientSession() as http, http.post(
            frontdesk.url + "/telegram/webhook", json=update,
            headers={"X-Telegram-Bot-Api-Secret-Token": frontdesk.settings.webhook_secret}) as response:
        assert (await response.json())["duplicate"] is True

    samples = await scrape(frontdesk)
    assert value(samples, "frontdesk_updates_total", outcome="stored") == 1  # by the webhook
    assert value(samples, "frontdesk_updates_total", outcome="handled") == 1  # by the intake's worker
    assert value(samples, "frontdesk_updates_total", outcome="duplicate") == 1
    assert value(samples, "frontdesk_telegram_calls_total", method="sendMessage", result="ok") == 1
    assert value(samples, "frontdesk_telegram_calls_total", method="sendMessageDraft", result="ok") >= 1
    assert value(samples, "frontdesk_ai_calls_total", model="main-model", result="ok") == 1
    assert value(samples, "frontdesk_ai_tokens_total", model="main-model", direction="out") > 0
    assert value(samples, "frontdesk_ai_latency_seconds_count", model="main-model") == 1
    assert value(samples, "frontdesk_outbox_jobs_total", queue="customers", kind="answer", result="done") == 1
    await scraped_soon(frontdesk, "frontdesk_outbox_depth", 0, queue="customers")
    await scraped_soon(frontdesk, "frontdesk_conversations", 1, status="open")


@pytest.mark.parametrize("frontdesk_settings", [{"METRICS_TOKEN": METRICS_TOKEN}, {}], indirect=True)
async def test_an_anonymous_scrape_is_refused(frontdesk: Frontdesk) -> None:
    """With METRICS_TOKEN only its bearer gets the metrics; without it /metrics is not served at all."""
    served = bool(frontdesk.settings.metrics_token)
    async with aiohttp.ClientSession() as http:
        for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": METRICS_TOKEN},
                        {"Authorization": f"Basic {METRICS_TOKEN}"}):
            async with http.get(frontdesk.url + "/metrics", headers=headers) as response:
                body = await response.json()
                assert (response.status, body["error"]["code"]) == ((401, "unauthorized") if served else
                                                                   (404, "not_found"))
                assert "frontdesk_" not in json.dumps(body)
        async with http.get(frontdesk.url + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}) as ok:
            assert ok.status == (200 if served else 404)


@pytest.mark.parametrize("frontdesk_settings", [{"METRICS_TOKEN": METRICS_TOKEN, "METRICS_REFRESH_SECONDS": 3600}],
                         indirect=True)
async def test_a_scrape_never_queries_the_database(frontdesk: Frontdesk) -> None:
    """However often Prometheus (or anyone with the token) scrapes, the database's gauges are read on a timer."""
    async def read_once() -> bool:
        return value(await scrape(frontdesk), "frontdesk_database_gauges_refreshed_timestamp_seconds") > 0

    await eventually(read_once, "the first read of the database's gauges, at start")
    counted: list[str] = []

    class Counter(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            counted.append(record.getMessage())

    logger = logging.getLogger("tortoise.db_client")
    level, counter = logger.level, Counter(logging.DEBUG)
    logger.setLevel(logging.DEBUG)
    logger.addHandler(counter)
    try:
        for _ in range(5):
            samples = await scrape(frontdesk)
    finally:
        logger.removeHandler(counter)
        logger.setLevel(level)
    assert value(samples, "frontdesk_conversations", status="open") == 0
    # The outbox and intake workers and the knowledge schedule poll on their own; every other query would be the
    # scrapes'.
    background = ("outbox_job", "advisory", "knowledge_", "telegram_update")
    queries = [line for line in counted if not any(word in line for word in background)
               and line.lstrip().upper().startswith(("SELECT", "INSERT", "UPDATE", "DELETE"))]
    assert queries == []


@pytest.mark.parametrize("frontdesk_settings", [{"OUTBOX_WORKERS": 0, "READY_MAX_OUTBOX_AGE": 60, **SCRAPED}],
                         indirect=True)
async def test_readyz_fails_when_the_outbox_falls_behind(frontdesk: Frontdesk) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(frontdesk.url + "/readyz") as response:
            body = await response.json()
            assert response.status == 200, body
        assert body["checks"]["database"] == "ok"
        if frontdesk.settings.redis_url:
            assert body["checks"]["redis"] == "ok"

        bot = await Bot.first()
        assert bot is not None
        job = await outbox.enqueue(bot.id, "answer", {"message_id": 0})
        await OutboxJob.filter(id=job.id).update(run_after=outbox.now() - timedelta(minutes=5))
        async with http.get(frontdesk.url + "/readyz") as response:
            body = await response.json()
            assert response.status == 503
        assert body["ok"] is False
        assert body["checks"]["outbox"].startswith("error: a job has waited 300s")
        await scraped_soon(frontdesk, "frontdesk_outbox_depth", 1, queue="customers")
        assert value(await scrape(frontdesk), "frontdesk_outbox_oldest_due_seconds", queue="customers") >= 299
        async with http.get(frontdesk.url + "/healthz") as response:
            assert response.status == 200  # liveness stays cheap and independent


@pytest.mark.parametrize("frontdesk_settings", [{"OUTBOX_WORKERS": 0, "READY_MAX_OUTBOX_AGE": 60, **SCRAPED}],
                         indirect=True)
async def test_readyz_fails_when_updates_wait_for_a_worker_too_long(frontdesk: Frontdesk, sim: Simulator) -> None:
    """A receiver (OUTBOX_WORKERS=0) takes updates for workers elsewhere: if none handles them, it says so."""
    ann = sim.create_user("Ann")
    sim.send_text(ann["id"], "hello?")
    await sim.wait_until_delivered(timeout=10)
    await scraped_soon(frontdesk, "frontdesk_intake_depth", 1)
    status, body = await readiness(frontdesk)
    assert (status, body["checks"]["intake_oldest_due_seconds"] < 60) == (200, True)
    await TelegramUpdate.all().update(run_after=now_ms() - 300_000)  # as if no worker had looked for 5 minutes
    status, body = await readiness(frontdesk)
    assert status == 503
    assert body["checks"]["intake"].startswith("error: an update has waited 300s")

    async def aged() -> bool:
        return value(await scrape(frontdesk), "frontdesk_intake_oldest_due_seconds") >= 300
    await eventually(aged, "the intake's wait on /metrics")


def test_secrets_are_redacted_wherever_they_appear() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(Redact([TOKEN, "sk-test-secret-key"]))
    logger = logging.getLogger("tests.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        token = update_id_var.set(42)
        logger.warning("POST https://api.telegram.org/bot%s/getMe failed", TOKEN)
        try:
            raise RuntimeError("the key sk-test-secret-key was refused")
        except RuntimeError:
            logger.exception("AI call failed")
        update_id_var.reset(token)
    finally:
        logger.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["message"] == "POST https://api.telegram.org/bot[redacted]/getMe failed"
    assert lines[0]["update_id"] == 42
    assert lines[0]["level"] == "warning"
    assert "sk-test-secret-key" not in stream.getvalue()
    assert "[redacted] was refused" in lines[1]["error"]
    assert TOKEN.split(":")[1] not in stream.getvalue()


async def test_a_running_process_logs_json_lines_with_the_event_ids_and_no_secret(
        database_url: str, sim: Simulator, ai: FakeAI, tmp_path: Path,
        processes: list[subprocess.Popen[bytes]]) -> None:
    port = free_port()
    env = frontdesk_environment(database_url, sim, ai, port, LOG_FORMAT="json", AI_API_KEY="sk-test-secret-key")
    ai.script.failing_models = {"main-model": 500}
    ai.script.reply = "From the backup."
    process = await _start(tmp_path, env, processes)
    ann = sim.create_user("Ann")
    sim.send_text(ann["id"], "hello")
    await sim.wait_for_messages(ann["id"], timeout=20)
    process.send_signal(signal.SIGTERM)
    process.wait(30)
    output = (tmp_path / "process.log").read_text()
    entries = [json.loads(line) for line in output.splitlines() if line.strip()]
    assert entries, "the process logged nothing"
    failed = [e for e in entries if "main-model" in e["message"] and e["level"] == "warning"]
    assert failed
    assert failed[0]["conversation"]  # the outbox job's conversation is on its lines
    assert TOKEN not in output
    assert TOKEN.split(":")[1] not in output
    assert "sk-test-secret-key" not in output


class Cable:
    """A TCP connection to a server that the test can pull out (every open connection drops, new ones
    are refused) and plug back in, as a network outage or a stopped server does."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 0)
        self.port = free_port()
        self.url = urlunsplit(parts._replace(netloc=parts.netloc.replace(f"{parts.hostname}:{parts.port}",
                                                                        f"127.0.0.1:{self.port}")))
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def plug_in(self) -> None:
        self._server = await asyncio.start_server(self._connect, "127.0.0.1", self.port)

    async def pull_out(self) -> None:
        if self._server is None:
            return
        self._server.close()
        writers = list(self._writers)
        for writer in writers:
            writer.close()
        await asyncio.gather(*(writer.wait_closed() for writer in writers), return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def __aenter__(self) -> Cable:
        await self.plug_in()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.pull_out()

    async def _connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, upstream_writer))

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.close()
                self._writers.discard(sink)

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))


async def readiness(frontdesk: Frontdesk) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(frontdesk.url + "/readyz") as response:
        return response.status, await response.json()


async def _ready_again(frontdesk: Frontdesk) -> bool:
    return (await readiness(frontdesk))[0] == 200


@pytest.mark.skipif(BACKEND != "postgres", reason="a SQLite file has no server to lose")
async def test_readyz_answers_503_while_the_database_is_down(database_url: str, sim: Simulator) -> None:
    async with Cable(database_url) as cable, running_frontdesk(
            frontdesk_environment(cable.url, sim, None, free_port(), REDIS_URL="")) as frontdesk:
        status, body = await readiness(frontdesk)
        assert (status, body["checks"]["database"]) == (200, "ok")
        await cable.pull_out()
        status, body = await readiness(frontdesk)
        assert status == 503
        assert body["ok"] is False
        assert body["checks"]["database"].startswith("error: ")
        async with aiohttp.ClientSession() as http, http.get(frontdesk.url + "/healthz") as response:
            assert response.status == 200  # alive: a restart would not bring the database back
        await cable.plug_in()
        await eventually(lambda: _ready_again(frontdesk), "ready once the database is back")


@pytest.mark.skipif(not REDIS_URL, reason="needs TEST_REDIS_URL (tests/run.sh starts a Redis)")
async def test_readyz_answers_503_while_redis_is_down(database_url: str, sim: Simulator) -> None:
    async with Cable(REDIS_URL) as cable, running_frontdesk(frontdesk_environment(
            database_url, sim, None, free_port(), REDIS_URL=cable.url, REDIS_PREFIX=f"test-{uuid.uuid4().hex[:12]}",
            **SCRAPED)) as frontdesk:
        status, body = await readiness(frontdesk)
        assert (status, body["checks"]["redis"], body["checks"]["database"]) == (200, "ok", "ok")
        await cable.pull_out()
        status, body = await readiness(frontdesk)
        assert status == 503
        assert body["ok"] is False
        assert body["checks"]["redis"].startswith("error: ")
        assert body["checks"]["database"] == "ok"
        # A message arriving now is taken (the webhook needs only the database); handling it needs Redis (the
        # customer's state and rate), so it waits, tried again, and is answered once Redis is back.
        ann = sim.create_user("Ann")
        sim.send_command(ann["id"], "help")
        await sim.wait_until_delivered(timeout=10)
        assert [d["status"] for d in sim.deliveries()] == [200]

        async def retried() -> bool:
            return value(await scrape(frontdesk), "frontdesk_updates_total", outcome="retried") >= 1
        await eventually(retried, "the update tried again")
        assert sim.chat_history(ann["id"])[-1]["from"]["is_bot"] is False
        await cable.plug_in()
        await eventually(lambda: _ready_again(frontdesk), "ready once Redis is back")
        [reply] = await sim.wait_for_messages(ann["id"], timeout=30)  # handled, and answered
        assert "/human" in reply["text"]


async def test_metrics_count_invalid_updates_429s_and_retried_failures(database_url: str, sim: Simulator) -> None:
    """Telegram refuses the first reply with a 502 (retried) and limits a private chat to one message at a
    time (429s, waited out): the customer still gets every reply once, and the operator sees each."""
    gateway_failures = [1]

    def one_bad_gateway(method: str, body: bytes) -> tuple[int, str] | None:
        if method == "sendMessage" and gateway_failures:
            gateway_failures.pop()
            return 502, "Bad Gateway"
        return None

    sim.set_flood_limits(private_burst=1, private_per_second=0.5)
    async with telegram_refusing(sim, one_bad_gateway) as (telegram, refusals), running_frontdesk(
            frontdesk_environment(database_url, sim, None, free_port(), TELEGRAM_API_BASE=telegram,
                                  **SCRAPED)) as frontdesk:
        async with aiohttp.ClientSession() as http, http.post(
                frontdesk.url + "/telegram/webhook", data=b'{"update_id": "not a number"}',
                headers={"X-Telegram-Bot-Api-Secret-Token": frontdesk.settings.webhook_secret}) as response:
            assert response.status == 400
        ann = sim.create_user("Ann")
        for _ in range(3):
            sim.send_command(ann["id"], "help")
        replies = await sim.wait_for_messages(ann["id"], 3, timeout=30)
        assert len({reply["text"] for reply in replies}) == 1  # the help, three times
        assert refusals == ["sendMessage"]
        assert any(call.get("error_code") == 429 for call in sim.calls("sendMessage"))

        async def third_counted() -> bool:  # an update is counted handled once its worker marks it, after its reply
            return value(await scrape(frontdesk), "frontdesk_updates_total", outcome="handled") >= 3
        await eventually(third_counted, "the third update counted")
        samples = await scrape(frontdesk)
    assert value(samples, "frontdesk_updates_total", outcome="invalid") == 1
    assert value(samples, "frontdesk_updates_total", outcome="handled") == 3
    assert value(samples, "frontdesk_telegram_calls_total", method="sendMessage", result="retry") == 1
    assert value(samples, "frontdesk_telegram_calls_total", method="sendMessage", result="429") >= 1
    assert value(samples, "frontdesk_telegram_calls_total", method="sendMessage", result="ok") == 3
    assert value(samples, "frontdesk_telegram_retry_wait_seconds_total", reason="failure") > 0
    assert value(samples, "frontdesk_telegram_retry_wait_seconds_total", reason="429") > 0
