"""The outbox: durable work written with the message that caused it, run by leased workers.

A job is claimed by setting a lease (owner + expiry) with a conditional UPDATE, so two workers
never run the same job; a worker that dies leaves a lease that expires, and the job is claimed
again. On PostgreSQL the candidate rows are also locked with FOR UPDATE SKIP LOCKED so workers
do not queue behind each other, and a lane's claims are serialised across instances by an
advisory lock (see `OutboxWorker._free_lanes`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F, Q
from tortoise.functions import Min
from tortoise.transactions import in_transaction

from models import JobStatus, OutboxJob

log = logging.getLogger(__name__)

JobHandler = Callable[[OutboxJob], Awaitable[None]]

# The conversation a job belongs to, for the log lines it causes (set by the worker).
conversation: contextvars.ContextVar[str | None] = contextvars.ContextVar("conversation", default=None)


class Postpone(Exception):
    """Raised by a job that cannot run yet (e.g. no manager chat is set up): try again later,
    without counting it as a failed attempt."""

    def __init__(self, seconds: float, why: str) -> None:
        super().__init__(why)
        self.seconds = seconds


def now() -> datetime:
    return datetime.now(UTC)


class JobKind(StrEnum):
    """Every kind of job the product queues, in one place (an OutboxJob row stores its value)."""

    # the customers' queue
    ANSWER = "answer"  # a customer's message: the knowledge base, the AI, or a person
    SLOW_DOWN = "slow_down"  # a customer over their rate: one notice
    TO_CUSTOMER = "to_customer"  # a manager's reply, delivered through the conversation's channel
    CUSTOMER_EDIT = "customer_edit"  # a manager edited a reply the customer has
    CUSTOMER_NOTICE = "customer_notice"  # one of our notices, stored in its place
    IMPROVE = "improve"  # the studio's /improve in the bot
    PROMPT_RUN = "prompt_run"  # ... and its "Run it"
    # the managers' queue
    OPEN_TOPIC = "open_topic"
    TOPIC_STATE = "topic_state"
    TOPIC_COPY = "topic_copy"
    TOPIC_EDIT = "topic_edit"
    TOPIC_TRANSCRIPT = "topic_transcript"  # a customer's voice, heard: its transcript under its copy
    GROUP_POST = "group_post"
    ADMIN_NOTICE = "admin_notice"  # a notice for one of ADMIN_IDS, in their private chat with the bot
    # the knowledge's queue
    KB_EMBED = "kb_embed"
    KB_SYNC = "kb_sync"


CUSTOMERS = ""  # the default queue: everything that reaches a customer
MANAGERS = "managers"  # everything posted into the manager group, on that group's slow budget

# The first key of the outbox's PostgreSQL advisory locks (the second is the lane's hash), so they
# never meet another user of advisory locks in the same database.
LANE_LOCKS = 0x0B0C5


async def enqueue(bot_id: int, kind: str, payload: dict[str, Any], *, lane: str = "", delay: float = 0.0,
                  queue: str = CUSTOMERS, priority: int = 0, source_key: str | None = None) -> OutboxJob:
    """Add a job; call inside the transaction that stores what caused it.

    With a `source_key` (what caused the job, e.g. a Telegram message), a job already queued for the
    same key is returned instead of queueing another: the same cause arriving twice is done once.
    """
    if source_key is not None:
        queued = await OutboxJob.get_or_none(bot_id=bot_id, source_key=source_key)
        if queued is not None:
            return queued
    try:
        return await OutboxJob.create(bot_id=bot_id, kind=kind, payload=payload, lane=lane, queue=queue,
                                      priority=priority, run_after=now() + timedelta(seconds=delay),
                                      source_key=source_key)
    except IntegrityError:
        if source_key is None:
            raise
        return await OutboxJob.get(bot_id=bot_id, source_key=source_key)  # queued meanwhile by another instance


async def run_waiting_now(bot_id: int) -> int:
    """A bot is served again (resumed, a new token): its jobs waiting for it run now, not at their next try."""
    return await OutboxJob.filter(bot_id=bot_id, status=JobStatus.PENDING, run_after__gt=now()).update(
        run_after=now())


async def pending_behind(job: OutboxJob, kind: str, limit: int = 20) -> list[OutboxJob]:
    """The jobs of `kind` queued right behind `job` in its lane, up to the first of another kind.

    While a job runs its lane is busy, so no worker claims these meanwhile: the running job may
    do their work too (coalescing) and then mark them done with `finish_taken`.
    """
    behind = await OutboxJob.filter(lane=job.lane, queue=job.queue, status=JobStatus.PENDING, id__gt=job.id).order_by(
        "id").limit(limit)
    taken = []
    for other in behind:
        if other.kind != kind:
            break
        taken.append(other)
    return taken


async def finish_taken(jobs: list[OutboxJob]) -> None:
    """Mark jobs whose work another job of their lane did as done."""
    if jobs:
        await OutboxJob.filter(id__in=[job.id for job in jobs], status=JobStatus.PENDING).update(
            status=JobStatus.DONE, finished_at=now())


@dataclass
class OutboxSettings:
    workers: int = 4  # jobs run at once by this instance (each is mostly waiting on I/O)
    lease_seconds: float = 120.0
    max_attempts: int = 5
    idle_poll_seconds: float = 1.0
    # Of `workers`, one bot's at most, even while no other bot waits: a flood's jobs then wait in the database,
    # cheaply, rather than fill the event loop another bot's customer will need a moment later (when the
    # deployment serves other bots: see OutboxWorker's `bots_served`).
    per_bot: int | None = None


# Bots counted for the fair share at most (past that, each bot's share is the smallest anyway).
MANY_BOTS = 256

# Jobs claimed in one transaction at most: a burst of hundreds starts in a few claims, and one claim
# stays short enough not to hold up the webhook's writes on SQLite.
CLAIM_BATCH = 32


def per_bot_cap(per_bot: int | None, bots_served: Callable[[], int] | None) -> int | None:
    """The most of a worker's slots one bot may hold (the outbox's and the intake's): `per_bot` while the
    deployment serves other bots for it to protect, or when it cannot tell (`bots_served` None); no cap for a
    one-bot shop, whose rush hour keeps every slot, or when none is set."""
    if per_bot and (bots_served is None or bots_served() > 1):
        return per_bot
    return None


class OutboxWorker:
    """Runs due jobs, up to `settings.workers` at once; `wake()` after a commit starts them at once.

    One task claims (so this instance never takes two jobs of one lane at once) and starts a task
    for each job it claimed. A running job's lease is renewed while it runs, so a job that waits
    long (an AI provider's queue at rush hour) is never taken up again as abandoned; an instance
    that dies stops renewing, and its jobs are claimed again when their leases run out.
    """

    def __init__(self, handlers: Mapping[str, JobHandler], settings: OutboxSettings,
                 on_give_up: JobHandler | None = None, queue: str = CUSTOMERS,
                 observe: Callable[[str, str, str], None] | None = None,
                 bots_served: Callable[[], int] | None = None) -> None:
        self.handlers = handlers
        # How many bots this deployment serves: `settings.per_bot` protects the others, so it applies only when
        # there are others (a one-bot shop's rush hour keeps every slot). None: it always applies.
        self.bots_served = bots_served
        self.queue = queue
        self.observe = observe  # (queue, kind, result) after every run
        self.settings = settings
        self.on_give_up = on_give_up
        self.owner = f"worker-{uuid.uuid4().hex[:12]}"
        self._wakeup = asyncio.Event()
        self._running: dict[int, asyncio.Task[None]] = {}  # job id -> the task running it
        self._bot_of: dict[int, int] = {}  # job id -> its bot, for each bot's fair share
        self._tasks: list[asyncio.Task[None]] = []  # the claimer and the lease keeper
        self._stopping = False

    @property
    def running(self) -> int:
        """Jobs running now."""
        return len(self._running)

    @property
    def capacity(self) -> int:
        return self.settings.workers

    def wake(self) -> None:
        self._wakeup.set()

    def start(self) -> None:
        if self.settings.workers <= 0:
            return  # this instance only receives
        name = f"outbox-{self.queue or 'customers'}"
        self._tasks = [asyncio.create_task(self._loop(), name=name),
                       asyncio.create_task(self._keep_leases(), name=f"{name}-leases")]

    async def stop(self, grace: float = 10.0) -> None:
        """Stop claiming, give running jobs `grace` seconds to finish, then interrupt the rest.

        An interrupted job is handed back for the next start. Jobs are not cancelled at once:
        Tortoise's SQLite transaction leaks its connection lock when cancelled while it begins,
        and every later query would wait on that lock forever.
        """
        self._stopping = True
        self._wakeup.set()
        if self._tasks:
            await asyncio.wait(self._tasks[:1], timeout=grace)  # the claimer ends after its claim
        jobs = list(self._running.values())
        if jobs:
            _, unfinished = await asyncio.wait(jobs, timeout=grace)
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*jobs, return_exceptions=True)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _loop(self) -> None:
        while not self._stopping:
            # Cleared before claiming, not after: a wake-up (or stop) that comes while this claim
            # runs is then kept, instead of being wiped out and waited through for a whole poll.
            self._wakeup.clear()
            free = self.settings.workers - len(self._running)
            jobs: list[OutboxJob] = []
            if free > 0:
                try:
                    jobs = await self.claim_many(min(free, CLAIM_BATCH))
                except Exception:
                    log.exception("outbox: claiming jobs failed")
            if self._stopping:
                for job in jobs:
                    await self._release(job)
                break
            for job in jobs:
                self._bot_of[job.id] = job.bot_id
                self._running[job.id] = asyncio.create_task(self._run_and_free(job), name=f"outbox-job-{job.id}")
            if len(jobs) == CLAIM_BATCH and len(self._running) < self.settings.workers:
                continue  # more may be due right now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self.settings.idle_poll_seconds)

    async def _run_and_free(self, job: OutboxJob) -> None:
        try:
            await self.run(job)
        finally:
            self._running.pop(job.id, None)
            self._bot_of.pop(job.id, None)
            self._wakeup.set()  # a slot is free, and more may be waiting behind the lane just freed

    async def _keep_leases(self) -> None:
        """Renew the leases of the jobs running here, well before they run out."""
        period = self.settings.lease_seconds / 3
        while True:
            await asyncio.sleep(period)
            running = list(self._running)
            if not running:
                continue
            try:
                await OutboxJob.filter(id__in=running, lease_owner=self.owner, status=JobStatus.RUNNING).update(
                    lease_expires_at=now() + timedelta(seconds=self.settings.lease_seconds))
            except Exception:
                log.exception("outbox: renewing the leases of running jobs failed")

    async def claim(self) -> OutboxJob | None:
        """One due job, leased to this worker (or None)."""
        jobs = await self.claim_many(1)
        return jobs[0] if jobs else None

    async def claim_many(self, limit: int) -> list[OutboxJob]:
        """Up to `limit` due jobs, leased to this worker in one transaction, at most one per lane, and
        none of a bot that runs its fair share already while another bot's jobs wait.

        The transaction sends the same few statements however many jobs it claims (the candidates, their
        lanes, the lease): on SQLite every other query waits for it, and at rush hour each statement waits
        its turn on a busy event loop, so a statement per job held a burst's claim for seconds."""
        moment = now()
        expired_or_pending = Q(status=JobStatus.PENDING) | Q(status=JobStatus.RUNNING, lease_expires_at__lt=moment)
        busy_lanes = await self._busy_lanes(moment)
        running = Counter(self._bot_of.values())
        share = await self._fair_share(moment)
        lease = moment + timedelta(seconds=self.settings.lease_seconds)
        async with in_transaction() as connection:
            query = OutboxJob.filter(expired_or_pending, queue=self.queue, run_after__lte=moment)
            if busy_lanes:
                query = query.exclude(lane__in=busy_lanes)
            if full := [bot for bot, count in running.items() if count >= share]:
                query = query.exclude(bot_id__in=full)
            query = query.order_by("priority", "id").limit(limit + 8).using_db(connection)
            if connection.capabilities.dialect == "postgres":
                query = query.select_for_update(skip_locked=True)
            candidates = list(await query)
            free = await self._free_lanes(candidates, moment, connection)
            chosen: list[OutboxJob] = []
            lanes_taken: set[str] = set()
            for job in candidates:
                if len(chosen) == limit:
                    break
                if running[job.bot_id] >= share:
                    continue
                if job.lane and (job.lane in lanes_taken or free.get(job.lane) != job.id):
                    continue  # its lane is busy, or an earlier job of it waits for a retry: order comes first
                chosen.append(job)
                running[job.bot_id] += 1
                if job.lane:
                    lanes_taken.add(job.lane)
            if not chosen:
                return []
            ids = [job.id for job in chosen]
            taken = await OutboxJob.filter(expired_or_pending, id__in=ids).using_db(connection).update(
                status=JobStatus.RUNNING, lease_owner=self.owner, attempts=F("attempts") + 1, lease_expires_at=lease)
            if taken != len(ids):  # another process's claim came first for some (SQLite has no row locks)
                ours = {int(row[0]) for row in await OutboxJob.filter(
                    id__in=ids, lease_owner=self.owner, lease_expires_at=lease).using_db(connection).values_list("id")}
                chosen = [job for job in chosen if job.id in ours]
        for job in chosen:
            job.attempts += 1
            job.status = JobStatus.RUNNING
            job.lease_owner = self.owner
            job.lease_expires_at = lease
        return chosen

    async def _fair_share(self, moment: datetime) -> int:
        """How many of this worker's slots one bot may hold: all of them while one bot has jobs waiting,
        an equal part while several do, so one bot's flood (waiting at a busy AI provider, say) never
        keeps another bot's customers out."""
        waiting = await OutboxJob.filter(queue=self.queue, status=JobStatus.PENDING, run_after__lte=moment).distinct(
            ).limit(MANY_BOTS).values_list("bot_id", flat=True)
        share = max(1, self.settings.workers // len(waiting)) if len(waiting) > 1 else self.settings.workers
        if (cap := per_bot_cap(self.settings.per_bot, self.bots_served)) is not None:
            share = min(share, cap)
        return share

    async def _busy_lanes(self, moment: datetime) -> list[str]:
        """Lanes with a running job: a cheap first cut of the candidates. Read before the claim's
        transaction, so another instance may have claimed since; `_free_lanes` decides."""
        lanes = await OutboxJob.filter(
            queue=self.queue, status=JobStatus.RUNNING, lease_expires_at__gte=moment).exclude(lane="").values_list(
            "lane", flat=True)
        return [str(lane) for lane in lanes]

    async def _free_lanes(self, candidates: list[OutboxJob], moment: datetime, connection: Any) -> dict[str, int]:
        """For the candidates' lanes that may start a job now, the one job that may: the lane's earliest
        unfinished one, while no job of the lane runs.

        Jobs of one lane come from several transactions (a customer's message, a manager's reply),
        which may commit out of id order, so a lane's earlier job can appear while a later one runs.
        On PostgreSQL other instances claim at the same moment: a transaction-level advisory lock on
        each lane makes this check and the claim after it one step for the whole database. A lane
        whose lock another claimer holds is skipped, never waited for; the check reads after the
        locks are taken, so it sees every claim committed before.
        """
        lanes = list(dict.fromkeys(job.lane for job in candidates if job.lane))
        if not lanes:
            return {}
        if connection.capabilities.dialect == "postgres":
            rows = await connection.execute_query_dict(
                "SELECT lane, pg_try_advisory_xact_lock($1, hashtext(lane)) AS locked FROM unnest($2::text[]) AS lane",
                [LANE_LOCKS, lanes])
            lanes = [row["lane"] for row in rows if row["locked"]]
            if not lanes:
                return {}
        rows = await (OutboxJob.filter(queue=self.queue, lane__in=lanes,
                                       status__in=[JobStatus.PENDING, JobStatus.RUNNING])
                      .annotate(first=Min("id"),
                                live=Min("id", _filter=Q(status=JobStatus.RUNNING, lease_expires_at__gte=moment)))
                      .group_by("lane").using_db(connection).values("lane", "first", "live"))
        return {str(row["lane"]): int(row["first"]) for row in rows if row["live"] is None}

    async def run(self, job: OutboxJob) -> None:
        handler = self.handlers.get(job.kind)
        conversation.set(job.lane.removeprefix("topic:") or None)  # on every log line of the job
        result = "done"
        try:
            if handler is None:
                raise LookupError(f"no handler for outbox job kind {job.kind!r}")
            await handler(job)
        except asyncio.CancelledError:
            await self._release(job)
            raise
        except Postpone as postponed:
            result = "postponed"
            log.info("outbox: job %s (%s) postponed %ss: %s", job.id, job.kind, postponed.seconds, postponed)
            await self._release(job, delay=postponed.seconds)
        except Exception as error:
            result = "failed"
            log.exception("outbox: job %s (%s) failed, attempt %s", job.id, job.kind, job.attempts)
            await self._failed(job, error)
        else:
            await self._finish(job, JobStatus.DONE)
        if self.observe is not None:
            self.observe(self.queue, job.kind, result)

    async def _finish(self, job: OutboxJob, status: JobStatus, error: str = "") -> None:
        await OutboxJob.filter(id=job.id, lease_owner=self.owner).update(
            status=status, finished_at=now(), lease_expires_at=None, last_error=error[:2000])

    async def _release(self, job: OutboxJob, delay: float = 0.0) -> None:
        """Hand a job back uncounted, so the next worker starts it without waiting for the lease."""
        await asyncio.shield(OutboxJob.filter(id=job.id, lease_owner=self.owner).update(
            status=JobStatus.PENDING, lease_expires_at=None, attempts=max(0, job.attempts - 1),
            run_after=now() + timedelta(seconds=delay)))

    async def _failed(self, job: OutboxJob, error: Exception) -> None:
        if job.attempts < self.settings.max_attempts:
            backoff = min(2 ** job.attempts, 60)
            await OutboxJob.filter(id=job.id, lease_owner=self.owner).update(
                status=JobStatus.PENDING, lease_expires_at=None, last_error=repr(error)[:2000],
                run_after=now() + timedelta(seconds=backoff))
            return
        await self._finish(job, JobStatus.FAILED, repr(error))
        if self.on_give_up is not None:
            try:
                await self.on_give_up(job)
            except Exception:
                log.exception("outbox: telling the customer about failed job %s failed too", job.id)


class Outboxes:
    """The workers of every queue, started, stopped and woken together."""

    def __init__(self, *workers: OutboxWorker) -> None:
        self.workers = list(workers)

    def add(self, *workers: OutboxWorker) -> None:
        """More queues' workers (before `start`): the composition root makes the outbox before what runs in it."""
        self.workers.extend(workers)

    def wake(self) -> None:
        for worker in self.workers:
            worker.wake()

    def start(self) -> None:
        for worker in self.workers:
            worker.start()

    async def stop(self, grace: float = 10.0) -> None:
        await asyncio.gather(*(worker.stop(grace) for worker in self.workers))

    def load(self) -> dict[str, tuple[int, int]]:
        """Per queue, the jobs running on this instance and how many it may run at once."""
        return {worker.queue or "customers": (worker.running, worker.capacity) for worker in self.workers}


async def extend_lease(job: OutboxJob, seconds: float) -> None:
    """A long job (a website's sync) keeps its claim while it makes progress, so no other worker
    takes it up as abandoned; a crashed one's lease still runs out `seconds` after its last step."""
    await OutboxJob.filter(id=job.id, status=JobStatus.RUNNING).update(
        lease_expires_at=now() + timedelta(seconds=seconds))
