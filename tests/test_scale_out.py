"""Several instances on one PostgreSQL and one Redis: what one instance hears reaches the others.

The second instance is a real `python -m bot` process: two apps in one test process would share
Tortoise's connections, which is not what two instances do.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
from tgsim import Simulator

from models import AuthorKind, Message
from tests.conftest import BACKEND, REDIS_URL, free_port, frontdesk_environment, running_frontdesk
from tests.fake_ai import FakeAI
from tests.test_process import _start

pytestmark = pytest.mark.skipif(
    BACKEND != "postgres" or not REDIS_URL,
    reason="instances share events through Redis: the PostgreSQL run has it, the SQLite run is one process")


async def test_a_stop_pressed_while_another_instance_streams_stops_that_stream(
        database_url: str, sim: Simulator, ai: FakeAI, tmp_path: Path,
        processes: list[subprocess.Popen[bytes]]) -> None:
    # About 37 s of streaming: ample for the other process to start (importing aiogram takes seconds).
    ai.script.reply = "Once upon a time, " + "there was a very long story. " * 150
    ai.script.chunk_delay = 0.1
    env = frontdesk_environment(database_url, sim, ai, free_port())
    async with running_frontdesk(env):
        ann = sim.create_user("Ann")
        sim.send_text(ann["id"], "tell me a long story")  # taken and streamed by this instance
        [draft] = await sim.wait_for_calls("sendMessageDraft")
        port = free_port()
        other_env = {**env, "PORT": str(port), "WEBHOOK_BASE_URL": f"http://127.0.0.1:{port}"}
        await _start(tmp_path, other_env, processes)  # the webhook now points at it
        sim.stop_generation(ann["id"], draft["params"]["draft_id"])
        [answer] = await sim.wait_for_messages(ann["id"], timeout=15)
        assert ai.script.reply.startswith(answer["text"])
        assert len(answer["text"]) < len(ai.script.reply) * 0.8
        for _ in range(50):  # the answer is recorded right after it is sent
            stored = await Message.get_or_none(author_kind=AuthorKind.AI)
            if stored is not None:
                break
            await asyncio.sleep(0.1)
        assert stored is not None
        assert stored.ai_meta["stopped"] is True
        assert [d["url"] for d in sim.deliveries()][-1].startswith(f"http://127.0.0.1:{port}")
