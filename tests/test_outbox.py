"""The outbox's rules where they live: leases, lanes, retries and giving up."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from models import Bot, JobStatus, OutboxJob
from services import outbox
from services.outbox import OutboxSettings, OutboxWorker


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
        await asyncio.sleep(0.05)
        order.append(int(str(job.payload["n"])))
        running.discard(job.lane)

    worker = OutboxWorker({"step": step}, OutboxSettings(workers=4, idle_poll_seconds=0.05))
    worker.start()
    try:
        for _ in range(100):
            if await OutboxJob.filter(status=JobStatus.DONE).count() == 4:
                break
            await asyncio.sleep(0.05)
    finally:
        await worker.stop()
    assert not overlapped
    assert [n for n in order if n < 10] == [0, 1, 2]
    assert 10 in order
