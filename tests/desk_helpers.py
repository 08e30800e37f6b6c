"""The manager desk's test world: a manager group in tgsim and Frontdesk serving it.

tgsim has no control action for a user editing a message, sending an album or a moderator deleting
a topic; the helpers below do those through its world state, the way its own actions do.
"""

from __future__ import annotations

import contextlib
import copy
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from tgsim import Simulator

from tests.conftest import Frontdesk, free_port, frontdesk_environment, running_frontdesk
from tests.fake_ai import FakeAI

BOSS_ID = 900_001  # in ADMIN_IDS


@dataclass
class Desk:
    frontdesk: Frontdesk
    group: dict[str, Any]
    boss: dict[str, Any]  # the owner and a deployment admin
    mia: dict[str, Any]  # a manager: a member of the group

    @property
    def chat_id(self) -> int:
        return int(self.group["id"])


@contextlib.asynccontextmanager
async def manager_desk(database_url: str, sim: Simulator, ai: FakeAI | None, *, forum: bool = True,
                       **overrides: Any) -> AsyncIterator[Desk]:
    boss = sim.create_user("Boss", id=BOSS_ID, username="boss")
    mia = sim.create_user("Mia", username="mia")
    group = sim.create_group("Managers", owner=boss["id"], members=[mia["id"]], forum=forum,
                             supergroup=True)
    env = frontdesk_environment(database_url, sim, ai, free_port(), MANAGER_CHAT_ID=group["id"],
                                ADMIN_IDS=str(BOSS_ID), **overrides)
    async with running_frontdesk(env) as frontdesk:
        yield Desk(frontdesk, group, boss, mia)


def topics(sim: Simulator, chat_id: int) -> dict[int, Any]:
    chat = sim.world.find_chat(chat_id)
    assert chat is not None
    return dict(chat.topics)


async def wait_for_topic(sim: Simulator, chat_id: int, count: int = 1) -> list[Any]:
    await sim.wait_until(lambda: len(topics(sim, chat_id)) >= count, 10, "topics created")
    return sorted(topics(sim, chat_id).values(), key=lambda topic: topic.thread_id)


def in_topic(sim: Simulator, chat_id: int, thread_id: int) -> list[dict[str, Any]]:
    """What the topic shows (its creation notice left out)."""
    return [m for m in sim.chat_history(chat_id, thread_id=thread_id) if "forum_topic_created" not in m]


async def wait_in_topic(sim: Simulator, chat_id: int, thread_id: int, count: int) -> list[dict[str, Any]]:
    await sim.wait_until(lambda: len(in_topic(sim, chat_id, thread_id)) >= count, 10, "messages in topic")
    return in_topic(sim, chat_id, thread_id)


def edit_text(sim: Simulator, chat_id: int, message_id: int, text: str) -> None:
    """The user edits their message; the bot gets an edited_message update."""
    chat = sim.world.find_chat(chat_id)
    assert chat is not None
    stored = sim.world.message(chat, message_id)
    assert stored is not None
    data = stored.edit({"text": text} if "text" in stored.data else {"caption": text})
    sim.updates.push("edited_message", copy.deepcopy(data))


def send_album(sim: Simulator, user_id: int, count: int, caption: str = "") -> list[dict[str, Any]]:
    """The user sends `count` photos as one album: one update each, sharing a media_group_id."""
    group_id = str(uuid.uuid4().int)[:18]
    sent = []
    for index in range(count):
        stored = sim.world.add_file("photos", b"\x89PNG" + bytes([index]), extension=".jpg")
        sizes = [{"file_id": stored.file_id, "file_unique_id": stored.file_unique_id, "file_size": stored.size,
                  "width": 1280, "height": 1280}]
        content: dict[str, Any] = {"photo": sizes, "media_group_id": group_id}
        if caption and index == 0:
            content["caption"] = caption
        sent.append(sim._user_message(user_id, None, content, None, None))
    return sent


def delete_topic(sim: Simulator, chat_id: int, thread_id: int) -> None:
    """A moderator deletes a topic with everything in it."""
    chat = sim.world.find_chat(chat_id)
    assert chat is not None
    del chat.topics[thread_id]
    for stored in chat.messages.values():
        if stored.data.get("message_thread_id") == thread_id:
            stored.deleted = True
    sim.world.on_change()


def send_formatted(sim: Simulator, user_id: int, text: str, entities: list[dict[str, Any]], *, chat_id: int,
                   thread_id: int | None = None) -> dict[str, Any]:
    """A user writes formatted text: the entities as a Telegram client sends them, whatever they hold."""
    sent: dict[str, Any] = sim._user_message(user_id, chat_id, {"text": text, "entities": entities}, thread_id, None)
    return sent
