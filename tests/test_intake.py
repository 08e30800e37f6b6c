"""Receiving apart from working: what an instance with OUTBOX_WORKERS=0 takes, and who handles it."""

from __future__ import annotations

import asyncio

from tgsim import Simulator

from models import JobStatus, Message, OutboxJob
from tests.conftest import free_port, frontdesk_environment, outbox_idle, running_frontdesk
from tests.fake_ai import FakeAI

# The names of every background task a working instance starts (bot/app.py, services/outbox.py).
WORK_TASKS = ("outbox-", "knowledge-freshness", "retention")


def _work_running() -> list[str]:
    return sorted(name for task in asyncio.all_tasks() if (name := task.get_name()).startswith(WORK_TASKS))


async def test_a_receive_only_instance_stores_what_it_takes_and_a_working_one_answers_it(
        database_url: str, sim: Simulator, ai: FakeAI) -> None:
    """Receivers and workers deploy apart: the receiver runs no queue of any kind (not even the managers'
    or the knowledge schedule), and what it took is answered once by an instance that works."""
    ai.script.reply = "Answered by the worker."
    ann = sim.create_user("Ann")
    receiver = frontdesk_environment(database_url, sim, ai, free_port(), OUTBOX_WORKERS=0)
    async with running_frontdesk(receiver):
        assert _work_running() == []
        sim.send_text(ann["id"], "anyone there?")
        await sim.wait_until_delivered(timeout=30)
        assert await Message.filter(text="anyone there?").count() == 1
        assert await OutboxJob.filter(status=JobStatus.PENDING).count() == 1
        assert ai.requests == []
    async with running_frontdesk(frontdesk_environment(database_url, sim, ai, free_port())):
        assert _work_running() != []
        [answer] = await sim.wait_for_messages(ann["id"], timeout=30)
        await outbox_idle(sim)
    assert answer["text"] == "Answered by the worker."
    assert len(ai.requests) == 1
