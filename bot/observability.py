"""What an operator watches: Prometheus metrics, readiness, and one log line per event.

Each app has its own registry (not prometheus-client's global one), so several apps in one
process (tests, or a future multi-bot deployment) never collide. Gauges that are facts of the
database (outbox depth and age, conversations by state) are read in the background every
METRICS_REFRESH_SECONDS, so a scrape only serialises what is in memory and never queries the
database. /metrics answers only a scraper that presents METRICS_TOKEN, and is not served without one.
"""

from __future__ import annotations

import asyncio
import contextvars
import hmac
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from tortoise import connections
from tortoise.functions import Count, Min

from models import Conversation, JobStatus, OutboxJob
from services.intake import UpdateStore, now_ms
from services.outbox import conversation as conversation_var
from services.redaction import Secrets

log = logging.getLogger(__name__)

# Set where an event starts (the webhook, an outbox job) and put on every log line it causes.
update_id_var: contextvars.ContextVar[int | None] = contextvars.ContextVar("update_id", default=None)
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.updates = Counter("frontdesk_updates_total",
                               "Telegram updates by outcome: stored, duplicate, invalid or error at the webhook; "
                               "handled, retried, failed or dropped by the intake's workers",
                               ["outcome"], registry=r)
        self.telegram_calls = Counter("frontdesk_telegram_calls_total", "Bot API calls, by method and result",
                                      ["method", "result"], registry=r)
        self.telegram_retry_wait = Counter("frontdesk_telegram_retry_wait_seconds_total",
                                           "Seconds spent waiting out 429s and retrying failures", ["reason"],
                                           registry=r)
        self.ai_calls = Counter("frontdesk_ai_calls_total", "AI answers, by model and result", ["model", "result"],
                                registry=r)
        self.ai_latency = Histogram("frontdesk_ai_latency_seconds", "Time to a whole AI answer", ["model"],
                                    buckets=(0.5, 1, 2, 4, 8, 16, 32, 64), registry=r)
        self.ai_tokens = Counter("frontdesk_ai_tokens_total", "AI tokens, by model and direction",
                                 ["model", "direction"], registry=r)
        self.ai_cost = Counter("frontdesk_ai_cost_dollars_total", "AI cost by model (AI_PRICES)", ["model"],
                               registry=r)
        self.ai_waits = Histogram("frontdesk_ai_wait_seconds", "Time answers waited for room at the AI providers",
                                  buckets=(0.1, 0.5, 1, 2, 5, 10, 20, 30, 60), registry=r)
        self.ai_rate_limited = Counter("frontdesk_ai_rate_limited_total", "429s from AI providers, by model@provider",
                                       ["route"], registry=r)
        self.outbox_jobs = Counter("frontdesk_outbox_jobs_total", "Outbox jobs run, by queue, kind and result",
                                   ["queue", "kind", "result"], registry=r)
        self.outbox_depth = Gauge("frontdesk_outbox_depth", "Jobs waiting, by queue", ["queue"], registry=r)
        self.outbox_age = Gauge("frontdesk_outbox_oldest_due_seconds",
                                "How long the oldest due job has waited, by queue", ["queue"], registry=r)
        self.intake_depth = Gauge("frontdesk_intake_depth", "Telegram updates stored and not handled yet", registry=r)
        self.intake_age = Gauge("frontdesk_intake_oldest_due_seconds",
                                "How long the longest waiting stored update has waited for a worker", registry=r)
        self.conversations = Gauge("frontdesk_conversations", "Conversations by state", ["status"], registry=r)
        self.widget_sockets = Gauge("frontdesk_widget_sockets", "Open website widget sockets", registry=r)
        self.refreshed = Gauge("frontdesk_database_gauges_refreshed_timestamp_seconds",
                               "When the database's gauges were last read (Unix time)", registry=r)

    # --- hooks the sender, the AI client and the outbox call ---------------------------------------

    def telegram_call(self, method: str, result: str) -> None:
        self.telegram_calls.labels(method, result).inc()

    def telegram_wait(self, reason: str, seconds: float) -> None:
        self.telegram_retry_wait.labels(reason).inc(seconds)

    def ai_call(self, model: str, ok: bool, seconds: float, tokens_in: int = 0, tokens_out: int = 0,
                cost: float = 0.0) -> None:
        self.ai_calls.labels(model, "ok" if ok else "error").inc()
        if ok:
            self.ai_latency.labels(model).observe(seconds)
            self.ai_tokens.labels(model, "in").inc(tokens_in)
            self.ai_tokens.labels(model, "out").inc(tokens_out)
            self.ai_cost.labels(model).inc(cost)

    def ai_wait(self, seconds: float) -> None:
        self.ai_waits.observe(seconds)

    def ai_throttled(self, route: str) -> None:
        self.ai_rate_limited.labels(route).inc()

    def outbox_job(self, queue: str, kind: str, result: str) -> None:
        self.outbox_jobs.labels(queue or "customers", kind, result).inc()

    async def refresh(self) -> None:
        """The gauges that are facts of the database, read now."""
        now = datetime.now(UTC)
        pending = await OutboxJob.filter(status=JobStatus.PENDING).group_by("queue").annotate(
            count=Count("id")).values("queue", "count")
        due = await OutboxJob.filter(status=JobStatus.PENDING, run_after__lte=now).group_by("queue").annotate(
            oldest=Min("run_after")).values("queue", "oldest")
        for queue in ("", "managers"):
            label = queue or "customers"
            self.outbox_depth.labels(label).set(sum(int(row["count"]) for row in pending if row["queue"] == queue))
            oldest = next((row["oldest"] for row in due if row["queue"] == queue), None)
            self.outbox_age.labels(label).set(_age(oldest, now))
        depth, age = await intake_backlog()
        self.intake_depth.set(depth)
        self.intake_age.set(age)
        states = await Conversation.all().group_by("status").annotate(count=Count("id")).values("status", "count")
        for status in ("open", "waiting", "assigned", "closed"):
            self.conversations.labels(status).set(sum(int(r["count"]) for r in states if str(r["status"]) == status))
        self.refreshed.set(time.time())

    async def keep_fresh(self, every: float) -> None:
        """Read the database's gauges now and every `every` seconds; a failed read keeps the last values
        (their age shows in frontdesk_database_gauges_refreshed_timestamp_seconds)."""
        while True:
            try:
                await self.refresh()
            except Exception:  # the database may be away for a while; the next round tries again
                log.warning("could not read the database's gauges for /metrics", exc_info=True)
            await asyncio.sleep(every)


def _age(moment: object, now: datetime) -> float:
    """Seconds since `moment` (a datetime, or the text SQLite returns for an aggregate)."""
    if moment is None:
        return 0.0
    when = moment if isinstance(moment, datetime) else datetime.fromisoformat(str(moment))
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (now - when).total_seconds())


async def oldest_due_job_age() -> float:
    """Seconds the oldest due job of any queue has waited (0 when none waits)."""
    now = datetime.now(UTC)
    oldest = await OutboxJob.filter(status=JobStatus.PENDING, run_after__lte=now).order_by("run_after").first(
        ).values_list("run_after", flat=True)
    return _age(oldest, now)


@dataclass(frozen=True)
class MetricsAccess:
    token: str  # METRICS_TOKEN; "" means /metrics is not served
    refresh_seconds: float


METRICS = web.AppKey("metrics", Metrics)
METRICS_ACCESS = web.AppKey("metrics_access", MetricsAccess)


async def metrics_context(app: web.Application) -> AsyncIterator[None]:
    """The database's gauges, kept fresh in the background while /metrics is served."""
    access = app[METRICS_ACCESS]
    task = asyncio.create_task(app[METRICS].keep_fresh(access.refresh_seconds), name="metrics") \
        if access.token else None
    yield
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _refused(status: int, code: str, message: str) -> web.Response:
    headers = {"WWW-Authenticate": 'Bearer realm="metrics"'} if status == 401 else {}
    return web.json_response({"error": {"code": code, "message": message}}, status=status, headers=headers)


async def metrics_view(request: web.Request) -> web.Response:
    """Prometheus' text format, for `Authorization: Bearer METRICS_TOKEN` only; from memory, never the database."""
    access = request.app[METRICS_ACCESS]
    if not access.token:
        return _refused(404, "not_found", "/metrics is off: set METRICS_TOKEN to serve it")
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), access.token.encode()):
        return _refused(401, "unauthorized", "send Authorization: Bearer METRICS_TOKEN")
    response = web.Response(body=generate_latest(request.app[METRICS].registry))
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    response.headers["Cache-Control"] = "no-store"
    return response


@dataclass(frozen=True)
class Readiness:
    max_outbox_age: float
    redis: Any = None  # redis.asyncio.Redis when configured


async def intake_backlog() -> tuple[int, float]:
    """Telegram updates not handled yet, and the seconds the longest waiting of them has waited for a worker."""
    now = now_ms()
    depth, oldest_due = await UpdateStore().backlog(now)
    return depth, 0.0 if oldest_due is None else max(0.0, (now - oldest_due) / 1000)


class WorkLoad(Protocol):
    def load(self) -> dict[str, tuple[int, int]]:
        """Per queue: jobs running on this instance, and how many it may run at once."""
        ...


READINESS = web.AppKey("readiness", Readiness)
WORK_LOAD = web.AppKey("work_load", WorkLoad)


async def readyz_view(request: web.Request) -> web.Response:
    """Ready to take traffic: the database answers, Redis answers (when used), the outbox keeps up."""
    readiness = request.app[READINESS]
    checks: dict[str, Any] = {}
    try:
        await connections.get("default").execute_query("SELECT 1")
        checks["database"] = "ok"
    except Exception as error:  # any failure means not ready; the reason is for the operator
        checks["database"] = f"error: {type(error).__name__}"
    if readiness.redis is not None:
        try:
            await readiness.redis.ping()
            checks["redis"] = "ok"
        except Exception as error:
            checks["redis"] = f"error: {type(error).__name__}"
    if checks["database"] == "ok":
        age = await oldest_due_job_age()
        checks["outbox_oldest_due_seconds"] = round(age, 1)
        if age > readiness.max_outbox_age:
            checks["outbox"] = f"error: a job has waited {age:.0f}s (limit {readiness.max_outbox_age:.0f}s)"
        _, waited = await intake_backlog()
        checks["intake_oldest_due_seconds"] = round(waited, 1)
        if waited > readiness.max_outbox_age:
            checks["intake"] = f"error: an update has waited {waited:.0f}s (limit {readiness.max_outbox_age:.0f}s)"
    work = request.app.get(WORK_LOAD)
    if work is not None:
        checks.update(_work_load(work.load()))
    ready = all(not str(value).startswith("error") for value in checks.values())
    return web.json_response({"ok": ready, "checks": checks}, status=200 if ready else 503)


def _work_load(load: dict[str, tuple[int, int]]) -> dict[str, Any]:
    """What this instance runs now. Full is not unready: past its limit new answers wait in the durable
    outbox, which every instance shares, so taking this one out of the balancer would help nobody;
    a wait that grows too long fails the outbox check above."""
    running = {queue: f"{now}/{limit}" for queue, (now, limit) in load.items()}
    now, limit = load.get("customers", (0, 0))
    full = limit > 0 and now >= limit
    return {"outbox_running": running,
            "customers_queue": "full: new answers wait in the outbox" if full else "ok"}


# --- logs -------------------------------------------------------------------------------------------


class Redact(logging.Filter):
    """Secrets never reach a log: the bot token (which is in every Bot API URL), API keys, the
    webhook secret, the encryption keys, and customers' own keys while they are in use. Replaced
    wherever they appear in a record's message, its arguments or its traceback."""

    def __init__(self, secrets: Secrets | Iterable[str]) -> None:
        super().__init__()
        self.secrets = secrets if isinstance(secrets, Secrets) else Secrets(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets.empty:
            return True
        message = record.getMessage()
        cleaned = self.secrets.clean(message)
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.secrets.clean(record.exc_text)
        if record.stack_info:
            record.stack_info = self.secrets.clean(record.stack_info)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the update, conversation and request the event belongs to."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, var in (("update_id", update_id_var), ("conversation", conversation_var),
                         ("request_id", request_id_var)):
            value = var.get()
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["error"] = record.exc_text or self.formatException(record.exc_info)
        elif record.exc_text:
            entry["error"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


class ContextFormatter(logging.Formatter):
    """The plain format, with the event's ids appended when there are any."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = [f"{key}={var.get()}" for key, var in (("update", update_id_var), ("conversation", conversation_var),
                                                   ("request", request_id_var)) if var.get() is not None]
        return f"{line} [{' '.join(ids)}]" if ids else line


def configure_logging(level: str, fmt: str, secrets: Secrets | Iterable[str]) -> None:
    """One handler on the root logger, every record through `Redact` first. Pass the process's
    `Secrets` (not a copy) so that keys held later are redacted too."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else ContextFormatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(Redact(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("tortoise").setLevel(max(logging.WARNING, root.level))
    # trafilatura logs a page without text as an ERROR; the knowledge source reports it itself.
    logging.getLogger("trafilatura").setLevel(logging.CRITICAL)


class RefusedRequests(logging.Filter):
    """aiohttp answers a request it cannot parse (a header or URL over 8190 bytes, bytes that are not
    HTTP) with its own 400 and logs it at ERROR with a traceback: hostile input, not our failure.
    On aiohttp's server logger, such a record becomes one WARNING line without the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError) and 400 <= error.code < 500:
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            record.msg = "refused a request it could not read from %s: %s %s"
            record.args = (remote, error.code, error.message)
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info, record.exc_text = None, None
        return True


def quiet_refused_requests() -> None:
    """Once per process: see RefusedRequests."""
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(existing, RefusedRequests) for existing in server.filters):
        server.addFilter(RefusedRequests())


def new_request_id() -> str:
    return uuid.uuid4().hex[:16]
