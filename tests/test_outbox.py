"""The outbox's rules where they live: leases, lanes, retries and giving up."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest
from tgsim import Simulator
from tortoise.transactions import in_transaction

from models import Bot, Conversation, ConversationMode, HandoffReason, JobStatus, OutboxJob
from services import outbox
from services.outbox import OutboxSettings, OutboxWorker
from tests.conftest import BACKEND, eventually
from tests.desk_helpers import manager_desk, wait_for_topic, wait_in_topic
from tests.fake_ai import FakeAI
from tests.miniapp_helpers import statements_sent
from tests.telegram_proxy import telegram_refusing


async def _bot() -> Bot:
    return await Bot.create(telegram_id=1)


async def test_a_job_failing_every_time_is_given_up_and_reported_once(database: str) -> None:
    bot = await _bot()
    job = await outbox.enqueue(bot.id, "flaky", {"n": 1})
    given_up: list[int] = []

    async def always_fails(_: OutboxJob) -> None:
        raise RuntimeError("boom")

    async def give_up(failed: OutboxJob) -> None:
        given_up.append(failed.id)

    worker = OutboxWorker({"flaky": always_fails}, OutboxSettings(workers=1, max_attempts=2), on_give_up=give_up)
    for _ in range(2):
        claimed = await worker.claim()
        assert claimed is not None
        await worker.run(claimed)
        await OutboxJob.filter(id=job.id).update(run_after=outbox.now())  # skip the backoff wait
    stored = await OutboxJob.get(id=job.id)
    assert stored.status == JobStatus.FAILED
    assert stored.attempts == 2
    assert "boom" in stored.last_error
    assert given_up == [job.id]
    assert await worker.claim() is None


async def test_a_leased_job_is_not_taken_until_its_lease_expires(database: str) -> None:
    bot = await _bot()
    job = await outbox.enqueue(bot.id, "work", {})
    first = OutboxWorker({}, OutboxSettings(lease_seconds=60))
    second = OutboxWorker({}, OutboxSettings(lease_seconds=60))
    assert (await first.claim()) is not None
    assert await second.claim() is None  # the first worker holds it
    await OutboxJob.filter(id=job.id).update(lease_expires_at=outbox.now() - timedelta(seconds=1))
    taken_over = await second.claim()  # the first worker died: its lease ran out
    assert taken_over is not None
    assert taken_over.attempts == 2


async def test_jobs_of_one_conversation_run_one_at_a_time_in_order(database: str) -> None:
    bot = await _bot()
    for n in range(3):
        await outbox.enqueue(bot.id, "step", {"n": n}, lane="conversation-a")
    await outbox.enqueue(bot.id, "step", {"n": 10}, lane="conversation-b")
    running: set[str] = set()
    order: list[int] = []
    overlapped = False

    async def step(job: OutboxJob) -> None:
        nonlocal overlapped
        overlapped = overlapped or job.lane in running
        running.add(job.lane)
        await asyncio.sleep(0.05)  # a job that takes a while: time in which a second one of its lane would overlap
        order.append(int(str(job.payload["n"])))
        running.discard(job.lane)

    worker = OutboxWorker({"step": step}, OutboxSettings(workers=4, idle_poll_seconds=0.05))
    worker.start()
    try:
        await eventually(_done(4), "every job done")
    finally:
        await worker.stop()
    assert not overlapped
    assert [n for n in order if n < 10] == [0, 1, 2]
    assert 10 in order


async def test_jobs_of_many_conversations_run_side_by_side_up_to_the_limit(database: str) -> None:
    bot = await _bot()
    for n in range(60):
        await outbox.enqueue(bot.id, "wait", {"n": n}, lane=f"conversation-{n}")
    release = asyncio.Event()
    started: list[int] = []

    async def wait(job: OutboxJob) -> None:
        started.append(int(str(job.payload["n"])))
        await release.wait()  # an AI answer streaming: all I/O

    worker = OutboxWorker({"wait": wait}, OutboxSettings(workers=50, idle_poll_seconds=0.05))
    worker.start()
    try:
        await eventually(_holds(lambda: len(started) == 50), "50 jobs running")
        assert worker.running == 50
        assert await OutboxJob.filter(status=JobStatus.PENDING).count() == 10  # the rest wait in the outbox
        release.set()
        await eventually(_done(60), "every job done")
    finally:
        release.set()
        await worker.stop()
    assert sorted(started) == list(range(60))  # each once


async def test_one_claim_takes_one_job_of_each_lane_in_order(database: str) -> None:
    bot = await _bot()
    for n in range(3):
        await outbox.enqueue(bot.id, "step", {"n": n}, lane="conversation-a")
    for n in (10, 11):
        await outbox.enqueue(bot.id, "step", {"n": n}, lane="conversation-b")
    await outbox.enqueue(bot.id, "step", {"n": 20})
    jobs = await OutboxWorker({}, OutboxSettings()).claim_many(10)
    assert sorted(_step(job) for job in jobs) == [0, 10, 20]  # type: ignore[type-var]


async def test_a_claim_of_thirty_two_jobs_sends_no_more_statements_than_a_claim_of_one(database: str) -> None:
    """A burst starts in claims of up to 32 jobs. On SQLite every other query waits for a claim's
    transaction, and at rush hour each statement waits its turn on a busy event loop: a statement per
    job held a burst's claim, and the webhooks' writes behind it, for seconds."""
    bot = await _bot()

    async def statements_to_claim(jobs: int, first: int) -> int:
        for n in range(first, first + jobs):
            await outbox.enqueue(bot.id, "step", {"n": n}, lane=f"conversation-{n}")
        with statements_sent() as sent:
            claimed = await OutboxWorker({}, OutboxSettings(workers=32)).claim_many(jobs)
        assert sorted(_step(job) for job in claimed) == list(range(first, first + jobs))  # type: ignore[type-var]
        return len(sent)

    assert await statements_to_claim(32, first=100) == await statements_to_claim(1, first=0)


async def test_a_long_running_job_keeps_its_lease_and_is_never_taken_up_twice(database: str) -> None:
    bot = await _bot()
    job = await outbox.enqueue(bot.id, "long", {})
    release = asyncio.Event()
    runs: list[int] = []

    async def long(claimed: OutboxJob) -> None:
        runs.append(claimed.id)
        await release.wait()  # waiting its turn at a busy AI provider, say

    worker = OutboxWorker({"long": long}, OutboxSettings(workers=2, lease_seconds=0.6, idle_poll_seconds=0.05))
    worker.start()
    try:
        await eventually(_holds(lambda: runs == [job.id]), "the job running")
        first_lease = (await OutboxJob.get(id=job.id)).lease_expires_at
        assert first_lease is not None

        async def renewed() -> bool:
            lease = (await OutboxJob.get(id=job.id)).lease_expires_at
            return lease is not None and lease > first_lease

        async def renewed_after_it_ran_out() -> bool:
            lease = (await OutboxJob.get(id=job.id)).lease_expires_at
            return lease is not None and lease - timedelta(seconds=worker.settings.lease_seconds) > first_lease

        await eventually(renewed, "the lease renewed")
        # Time itself is what this is about: wait (by the worker's own clock) for a renewal made
        # after the first lease would have run out, then the job is still not free to take.
        await eventually(renewed_after_it_ran_out, "a renewal past the first lease")
        assert await OutboxWorker({"long": long}, OutboxSettings()).claim() is None  # still ours
        release.set()
        await eventually(_done(1), "the job done")
    finally:
        release.set()
        await worker.stop()
    assert runs == [job.id]


def _holds(condition: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return condition()

    return check


def _done(count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await OutboxJob.filter(status=JobStatus.DONE).count() == count

    return check


@asynccontextmanager
async def _earlier_job_committing_late(bot_id: int, lane: str) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    """A job of `lane` written by a transaction that commits only when told to: a later job of the
    lane (committed meanwhile) can be claimed first, as when a manager's reply and a customer's
    message for one conversation are stored at the same moment."""
    written, commit = asyncio.Event(), asyncio.Event()

    async def writer() -> None:
        async with in_transaction():
            await outbox.enqueue(bot_id, "step", {"n": 0}, lane=lane)
            written.set()
            await commit.wait()

    task = asyncio.create_task(writer())
    await written.wait()

    async def committed() -> None:
        commit.set()
        await task

    try:
        yield committed
    finally:
        await committed()


def _step(job: OutboxJob | None) -> object:
    return None if job is None else job.payload["n"]


postgres_only = pytest.mark.skipif(BACKEND != "postgres", reason="one process claims one job at a time on SQLite")


@postgres_only
async def test_a_lane_busy_on_another_instance_since_we_looked_is_not_claimed_again(database: str) -> None:
    bot = await _bot()
    other_instance = OutboxWorker({}, OutboxSettings())
    async with _earlier_job_committing_late(bot.id, "conversation-a") as commit_earlier:
        await outbox.enqueue(bot.id, "step", {"n": 1}, lane="conversation-a")

        class LooksFirst(OutboxWorker):
            async def _busy_lanes(self, moment: datetime) -> list[str]:
                lanes = await super()._busy_lanes(moment)  # nothing runs yet ...
                assert _step(await other_instance.claim()) == 1  # ... then the other instance claims
                await commit_earlier()
                return lanes

        assert await LooksFirst({}, OutboxSettings()).claim() is None  # job 0 waits for job 1
    assert await OutboxJob.filter(status=JobStatus.RUNNING).count() == 1


@postgres_only
async def test_two_instances_deciding_on_one_lane_at_once_claim_one_job_of_it(database: str) -> None:
    bot = await _bot()
    other_instance = OutboxWorker({}, OutboxSettings())
    async with _earlier_job_committing_late(bot.id, "conversation-a") as commit_earlier:
        await outbox.enqueue(bot.id, "step", {"n": 1}, lane="conversation-a")
        seen_by_other: list[object] = []
        outside = contextvars.copy_context()  # the other instance's claim must not join our transaction

        class DecidesFirst(OutboxWorker):
            async def _free_lanes(self, candidates: list[OutboxJob], moment: datetime,
                                  connection: Any) -> dict[str, int]:
                free = await super()._free_lanes(candidates, moment, connection)  # job 1 may start ...
                await commit_earlier()  # ... job 0 appears, and the other instance looks at the lane
                seen_by_other.append(_step(await asyncio.create_task(other_instance.claim(), context=outside)))
                return free

        assert _step(await DecidesFirst({}, OutboxSettings()).claim()) == 1
        assert seen_by_other == [None]
    assert await OutboxJob.filter(status=JobStatus.RUNNING).count() == 1


# --- giving up, as the customer and the managers see it ------------------------------------------


async def test_an_answer_failing_every_attempt_goes_to_a_person_and_the_customer_is_told(
        database_url: str, sim: Simulator, ai: FakeAI) -> None:
    ai.script.reply = "An unsendable answer."

    def unsendable(method: str, body: bytes) -> tuple[int, str] | None:
        return (400, "Bad Request: refused") if method == "sendMessage" and b"unsendable" in body else None

    async with telegram_refusing(sim, unsendable) as (telegram, refusals), \
            manager_desk(database_url, sim, ai, TELEGRAM_API_BASE=telegram, OUTBOX_MAX_ATTEMPTS="2") as desk:
        ann = sim.create_user("Ann")
        sim.send_text(ann["id"], "what are your opening hours?")
        [notice] = await sim.wait_for_messages(ann["id"], timeout=30)
        assert "passed your conversation to a person" in notice["text"]
        assert refusals == ["sendMessage"] * 2  # each attempt wrote the answer, and Telegram refused it
        assert len(ai.requests) == 2
        conversation = await Conversation.get(user__telegram_id=ann["id"])
        assert conversation.mode == ConversationMode.HUMAN
        assert conversation.handoff_reason == HandoffReason.AI_FAILURE
        [topic] = await wait_for_topic(sim, desk.chat_id)
        [card, *_] = await wait_in_topic(sim, desk.chat_id, topic.thread_id, 1)
        assert "what are your opening hours?" in card["text"]
        assert (await OutboxJob.get(kind="answer")).status == JobStatus.FAILED


async def _flood(bot: Bot, numbers: range, lane: str) -> None:
    """A "wait" job for each of `numbers` at `bot`, each in a lane of its own (a customer each)."""
    for n in numbers:
        await outbox.enqueue(bot.id, "wait", {"n": n}, lane=f"{lane}-{n}")


@asynccontextmanager
async def _holding_slots(settings: OutboxSettings, **options: Any) -> AsyncIterator[tuple[OutboxWorker, list[int]]]:
    """A running worker whose "wait" jobs note their payload's `n` as they start, then hold their slots until
    the end; with the numbers started."""
    release = asyncio.Event()
    started: list[int] = []

    async def wait(job: OutboxJob) -> None:
        started.append(int(str(job.payload["n"])))
        await release.wait()

    worker = OutboxWorker({"wait": wait}, settings, **options)
    worker.start()
    try:
        yield worker, started
    finally:
        release.set()
        await worker.stop()


async def test_one_bots_flood_leaves_another_bots_customers_their_share_of_the_slots(database: str) -> None:
    busy, quiet = await Bot.create(telegram_id=1), await Bot.create(telegram_id=2)
    await _flood(busy, range(10), "busy")  # a flood at one shop, each answer waiting long (a busy AI provider, say)
    await _flood(quiet, range(100, 101), "quiet")
    async with _holding_slots(OutboxSettings(workers=4, idle_poll_seconds=0.05)) as (_, started):
        await eventually(_holds(lambda: 100 in started), "the other shop's customer answered")
        assert started.index(100) < 3  # the flooding shop took its half of the slots, not all of them
        await eventually(_holds(lambda: len(started) == 4), "the free slot back to the flooding shop")


async def test_a_bots_jobs_hold_at_most_their_cap_of_the_slots_even_alone(database: str) -> None:
    """A flood at one shop waits in the outbox past OUTBOX_JOBS_PER_BOT, with slots free: the next shop's
    customer, a moment later, finds one at once."""
    busy = await Bot.create(telegram_id=1)
    await _flood(busy, range(10), "busy")
    async with _holding_slots(OutboxSettings(workers=8, idle_poll_seconds=0.05, per_bot=3)) as (worker, started):
        await eventually(_holds(lambda: len(started) == 3), "the flooding shop's first jobs")
        quiet = await Bot.create(telegram_id=2)
        await _flood(quiet, range(100, 101), "quiet")
        worker.wake()
        await eventually(_holds(lambda: 100 in started), "the other shop's customer answered")
        assert len(started) == 4  # the flood still holds its three, no more


async def test_a_deployment_of_one_bot_keeps_every_slot_for_its_rush_hour(database: str) -> None:
    """The cap per bot protects other bots; with none, a rush at the one bot is not held back by it."""
    shop = await Bot.create(telegram_id=1)
    await _flood(shop, range(6), "shop")
    async with _holding_slots(OutboxSettings(workers=8, idle_poll_seconds=0.05, per_bot=3),
                              bots_served=lambda: 1) as (_, started):
        await eventually(_holds(lambda: len(started) == 6), "every customer of the rush at once")
