"""Several instances on one PostgreSQL and one Redis: what one instance hears reaches the others.

The second instance is a real `python -m bot` process: two apps in one test process would share
Tortoise's connections, which is not what two instances do.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import aiohttp
import pytest
from tgsim import Simulator

from miniapp.knowledge_api import KNOWLEDGE
from models import AuthorKind, Bot, KnowledgeSource, Message, SourceStatus
from tests.conftest import (
    BACKEND,
    REDIS_URL,
    Frontdesk,
    eventually,
    free_port,
    frontdesk_environment,
    running_frontdesk,
)
from tests.desk_helpers import BOSS_ID, wait_for_topic, wait_in_topic
from tests.fake_ai import FakeAI
from tests.miniapp_helpers import app_client
from tests.test_process import _start
from tests.widget_helpers import is_answer, open_widget

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
        answers = Message.filter(author_kind=AuthorKind.AI)
        await eventually(answers.exists, "the answer recorded")  # right after it is sent
        stored = await answers.get()
        assert stored.ai_meta["stopped"] is True
        assert [d["url"] for d in sim.deliveries()][-1].startswith(f"http://127.0.0.1:{port}")


async def test_a_managers_reply_reaches_the_widget_on_every_instance(
        database_url: str, sim: Simulator, ai: FakeAI, tmp_path: Path,
        processes: list[subprocess.Popen[bytes]]) -> None:
    ai.script.reply = "Let me find someone for you."
    sim.create_user("Boss", id=BOSS_ID, username="boss")
    mia = sim.create_user("Mia", username="mia")
    group = sim.create_group("Managers", owner=BOSS_ID, members=[mia["id"]], forum=True, supergroup=True)
    env = frontdesk_environment(database_url, sim, ai, free_port(), MANAGER_CHAT_ID=group["id"],
                                ADMIN_IDS=str(BOSS_ID))
    async with running_frontdesk(env) as here, aiohttp.ClientSession() as http:
        port = free_port()
        await _start(tmp_path, {**env, "PORT": str(port), "WEBHOOK_BASE_URL": f"http://127.0.0.1:{port}"},
                     processes)  # Telegram's updates now reach the other instance
        tab_here, welcome = await open_widget(http, here.url)
        await tab_here.send_message("I need a person, please")
        await tab_here.until(lambda f: is_answer(f))
        # The same visitor in a second tab, whose socket the load balancer put on the other instance.
        tab_there, _ = await open_widget(http, f"http://127.0.0.1:{port}", token=welcome["token"],
                                         origin=here.url)
        await tab_there.until(lambda f: is_answer(f))
        await tab_there.socket.send_json({"type": "person"})
        await tab_here.until(lambda f: f["type"] == "status" and f["mode"] == "human")
        [topic] = await wait_for_topic(sim, group["id"])
        await wait_in_topic(sim, group["id"], topic.thread_id, 1)

        sim.send_text(mia["id"], "Hello from Mia", chat_id=group["id"], thread_id=topic.thread_id)
        for tab in (tab_here, tab_there):
            reply = await tab.until(lambda f: f["type"] == "message" and f["author"] == "manager", within=5)
            assert reply["text"] == "Hello from Mia"
        # The widget is shown the reply before the webhook answers, so tgsim may record it a moment later.
        await sim.wait_until(lambda: bool(sim.deliveries()), 5, "the webhook delivery recorded")
        assert [d["url"] for d in sim.deliveries()][-1].startswith(f"http://127.0.0.1:{port}")
        await asyncio.gather(tab_here.socket.close(), tab_there.socket.close())


async def test_a_new_source_is_used_by_every_instance_without_waiting_for_a_check(
        database_url: str, sim: Simulator, ai: FakeAI, tmp_path: Path,
        processes: list[subprocess.Popen[bytes]]) -> None:
    """The other instance has its index loaded before the source arrives; the bus's event reloads it,
    long before its own periodic check (every 30 s) would have."""
    env = frontdesk_environment(database_url, sim, ai, free_port(), ADMIN_IDS=str(BOSS_ID))
    ai.script.reply = "Let me check."
    async with running_frontdesk(env) as first:
        port = free_port()
        other_env = {**env, "PORT": str(port), "WEBHOOK_BASE_URL": f"http://127.0.0.1:{port}"}
        await _start(tmp_path, other_env, processes)
        other = Frontdesk(first.settings, first.app, first.runner, f"http://127.0.0.1:{port}")
        sim.create_user("Boss", id=BOSS_ID)
        question = "можете организовать утренний кофе для нашей команды?"  # no word in common: found by meaning

        async def prompt_on_the_other_instance() -> str:
            async with app_client(other, sim, BOSS_ID) as boss:
                await boss.post("/api/knowledge/try", {"question": question})
            return str(ai.requests[-1]["messages"][0]["content"])

        assert "pastries" not in await prompt_on_the_other_instance()  # its index is loaded, without it
        bot = await Bot.all().order_by("id").first()
        assert bot is not None
        sources = first.app[KNOWLEDGE].sources
        assert sources is not None
        source = await sources.add_file(bot.id, "catering.md", b"# Catering\n\nWe bring coffee and fresh pastries "
                                                               b"to offices for 10 to 200 people.\n")
        await eventually(lambda: KnowledgeSource.exists(id=source.id, status=SourceStatus.READY), "the source")

        async def used_there() -> bool:
            return "pastries" in await prompt_on_the_other_instance()

        # 5 s: far less than the 30 s between the other instance's own checks
        await eventually(used_there, "the other instance to use the new source", within=5)
