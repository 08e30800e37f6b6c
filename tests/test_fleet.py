"""Many bots, one deployment (issue 19): every active bot of the table is served, with no restart, each as
itself: its own webhook and secret, its own customers, its own topics in a manager group, its own flood budget.
Telegram is tgsim with several bots in one world; bots are added as the operator adds them (`python -m bot`)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tgsim import Simulator

from bot.fleet import webhook_secret_of
from models import AuditLog, Bot, BotState, Conversation, Message, User
from services import bots
from tests.conftest import (
    BACKEND,
    ENCRYPTION_KEY,
    REDIS_URL,
    TOKEN,
    Frontdesk,
    eventually,
    free_port,
    frontdesk_environment,
    running_frontdesk,
)
from tests.desk_helpers import BOSS_ID, manager_desk, wait_for_topic, wait_in_topic
from tests.fake_ai import FakeAI
from tests.test_process import _clean_environment, _start

SHOP_TOKEN = "7100000002:SHOP-two-token-for-the-tests"
SHOP_ID = 7100000002
QUICK_LOOK = {"BOTS_RECHECK_SECONDS": "0.5"}  # without Redis the instances look at the table this often


async def _cli(frontdesk: Frontdesk, sim: Simulator, *args: str, stdin: str = "", fails: bool = False) -> str:
    """`python -m bot ARGS` against the running deployment's database (and Redis, when it has one)."""
    settings = frontdesk.settings
    env = _clean_environment(DATABASE_URL=settings.database_url, BOT_TOKEN=TOKEN, TELEGRAM_API_BASE=sim.base_url,
                             ENCRYPTION_KEY=ENCRYPTION_KEY, APP_ENV="development", REDIS_URL=settings.redis_url,
                             REDIS_PREFIX=settings.redis_prefix)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env)
    out, err = await asyncio.wait_for(process.communicate(stdin.encode()), 120)
    if fails:
        assert process.returncode == 1, out.decode()
        return err.decode()
    assert process.returncode == 0, err.decode()
    return out.decode()


async def _add_shop(frontdesk: Frontdesk, sim: Simulator) -> Bot:
    """The platform owner adds the second bot while the deployment runs; it is served once its webhook is set."""
    await _cli(frontdesk, sim, "bots", "add", "-", stdin=SHOP_TOKEN + "\n")
    await sim.wait_for_calls("setWebhook", bot=SHOP_TOKEN, timeout=30)
    return await Bot.get(telegram_id=SHOP_ID)


def _sent_to(sim: Simulator, chat_id: int, bot: str) -> list[dict[str, Any]]:
    return [call for call in sim.calls("sendMessage", bot=bot) if call["params"].get("chat_id") == chat_id]


@pytest.mark.parametrize("frontdesk_settings", [QUICK_LOOK], indirect=True)
async def test_a_bot_added_while_running_answers_its_own_customers_as_itself(
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    sim.add_bot(SHOP_TOKEN, username="shop_two_bot")
    ai.script.reply = "Our bakery opens at eight."
    shop = await _add_shop(frontdesk, sim)

    [webhook] = sim.calls("setWebhook", bot=SHOP_TOKEN)
    assert webhook["params"]["url"] == f"{frontdesk.url}/telegram/webhook/{shop.webhook_key}"
    assert webhook["params"]["secret_token"] == webhook_secret_of(SHOP_TOKEN) != frontdesk.settings.webhook_secret
    assert sim.calls("setMyCommands", bot=SHOP_TOKEN), "its customers see the command menu"

    ann = sim.create_user("Ann")
    sim.send_text(ann["id"], "when do you open?", bot=SHOP_TOKEN)
    [answer] = await sim.wait_for_messages(ann["id"], bot=SHOP_TOKEN, timeout=30)
    assert answer["text"] == "Our bakery opens at eight."
    assert _sent_to(sim, ann["id"], TOKEN) == []  # the first bot never writes to the shop's customer
    customer = await User.get(telegram_id=ann["id"])
    assert customer.bot_id == shop.id
    assert await Conversation.filter(bot_id=shop.id).count() == 1

    # BOT_TOKEN's bot keeps its token in the settings: a new one goes there, not into the table.
    refused = await _cli(frontdesk, sim, "bots", "token", str(sim.bot_id), "-", stdin=TOKEN + "\n", fails=True)
    assert "token is BOT_TOKEN: set the new one there and restart" in refused

    # The first bot goes on serving its own customers.
    bob = sim.create_user("Bob")
    sim.send_text(bob["id"], "and you?")
    await sim.wait_for_messages(bob["id"], timeout=30)
    assert (await User.get(telegram_id=bob["id"])).bot_id != shop.id

    # Paused: Telegram stops sending its updates here; what its customers write meanwhile waits at Telegram,
    # and is answered once it is resumed.
    await _cli(frontdesk, sim, "bots", "pause", "shop_two_bot")
    await sim.wait_for_calls("deleteWebhook", bot=SHOP_TOKEN, timeout=30)
    sim.send_text(ann["id"], "are you there?", bot=SHOP_TOKEN)
    await _cli(frontdesk, sim, "bots", "resume", "shop_two_bot")
    await sim.wait_for_messages(ann["id"], 2, bot=SHOP_TOKEN, timeout=30)
    assert await Message.filter(bot_id=shop.id, text="are you there?").count() == 1


async def test_after_a_restart_every_active_bot_is_served_again(
        database_url: str, sim: Simulator, ai: FakeAI) -> None:
    """What its customers wrote while the server was down reaches it once it is back (Telegram keeps it)."""
    sim.add_bot(SHOP_TOKEN, username="shop_two_bot")
    ai.script.reply = "Back again."
    env = frontdesk_environment(database_url, sim, ai, free_port(), **QUICK_LOOK)
    async with running_frontdesk(env) as first:
        await _add_shop(first, sim)
    ann = sim.create_user("Ann")
    sim.send_text(ann["id"], "anyone there?", bot=SHOP_TOKEN)
    async with running_frontdesk(env):
        [answer] = await sim.wait_for_messages(ann["id"], bot=SHOP_TOKEN, timeout=30)
    assert answer["text"] == "Back again."


@pytest.mark.parametrize("frontdesk_settings", [{**QUICK_LOOK, "WEBHOOK_BASE_URL": ""}], indirect=True)
async def test_without_a_webhook_address_each_bot_takes_its_updates_by_long_polling(
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    """Development (`make run`): no public address, so every bot polls Telegram for its own updates."""
    sim.add_bot(SHOP_TOKEN, username="shop_two_bot")
    ai.script.reply = "Polled and answered."
    await _cli(frontdesk, sim, "bots", "add", "-", stdin=SHOP_TOKEN + "\n")
    ann, bob = sim.create_user("Ann"), sim.create_user("Bob")
    sim.send_text(ann["id"], "hello", bot=SHOP_TOKEN)
    sim.send_text(bob["id"], "hello")
    [to_ann] = await sim.wait_for_messages(ann["id"], bot=SHOP_TOKEN, timeout=30)
    [to_bob] = await sim.wait_for_messages(bob["id"], timeout=30)
    assert to_ann["text"] == to_bob["text"] == "Polled and answered."
    assert sim.calls("getUpdates", bot=SHOP_TOKEN)
    assert sim.calls("getUpdates", bot=TOKEN)
    assert sim.calls("setWebhook") == []
    assert sim.deliveries() == []


async def test_a_webhook_names_its_bot_by_its_path_and_secret(frontdesk: Frontdesk, sim: Simulator) -> None:
    """Another bot's secret, or an unknown path, gets nothing in."""
    sim.add_bot(SHOP_TOKEN, username="shop_two_bot")
    shop = await _add_shop(frontdesk, sim)
    update = {"update_id": 1, "message": {"message_id": 1, "date": 0, "chat": {"id": 5, "type": "private"},
                                          "from": {"id": 5, "is_bot": False, "first_name": "Eve"}, "text": "hi"}}
    async with aiohttp.ClientSession() as http:
        first_secret = {"X-Telegram-Bot-Api-Secret-Token": frontdesk.settings.webhook_secret}
        async with http.post(f"{frontdesk.url}/telegram/webhook/{shop.webhook_key}", json=update,
                             headers=first_secret) as response:
            assert response.status == 401
        async with http.post(f"{frontdesk.url}/telegram/webhook/not-a-bot", json=update,
                             headers={"X-Telegram-Bot-Api-Secret-Token": webhook_secret_of(SHOP_TOKEN)}) as response:
            assert response.status == 404
            assert (await response.json())["ok"] is False
    assert not await User.filter(telegram_id=5).exists()


async def test_two_bots_share_one_manager_group_each_in_its_own_topics(
        database_url: str, sim: Simulator, ai: FakeAI) -> None:
    ai.script.reply = "Let me find someone."
    shop_bot = sim.add_bot(SHOP_TOKEN, username="shop_two_bot")
    async with manager_desk(database_url, sim, ai, BOTS_RECHECK_SECONDS="0.5") as desk:
        sim.set_member(desk.chat_id, shop_bot["id"], "administrator", can_manage_topics=True,
                       can_delete_messages=True, can_pin_messages=True)
        shop = await _add_shop(desk.frontdesk, sim)
        sim.send_command(desk.boss["id"], "setup", chat_id=desk.chat_id, bot=SHOP_TOKEN)
        await eventually(lambda: _manager_chat_is(shop.id, desk.chat_id), "the shop's /setup in the shared group")

        ann, bob = sim.create_user("Ann"), sim.create_user("Bob")
        sim.send_command(ann["id"], "human")  # the first bot's customer
        sim.send_command(bob["id"], "human", bot=SHOP_TOKEN)  # the shop's
        topics = await wait_for_topic(sim, desk.chat_id, 2)
        assert len(sim.calls("createForumTopic", bot=TOKEN)) == 1
        assert len(sim.calls("createForumTopic", bot=SHOP_TOKEN)) == 1
        await eventually(lambda: Conversation.filter(bot_id=shop.id, manager_topic_id__not_isnull=True).exists(),
                         "Bob's conversation to know its topic")
        bobs = await Conversation.get(bot_id=shop.id)
        shop_topic = next(topic for topic in topics if topic.thread_id == bobs.manager_topic_id)
        [card, *_] = await wait_in_topic(sim, desk.chat_id, shop_topic.thread_id, 1)
        assert card["from"]["id"] == shop_bot["id"]  # the shop's topic is written by the shop's bot

        sim.send_text(desk.mia["id"], "Hi Bob, Mia from the shop here.", chat_id=desk.chat_id,
                      thread_id=shop_topic.thread_id)
        await sim.wait_until(lambda: any(message.get("text", "").endswith("Mia from the shop here.") and
                                         message["from"]["id"] == shop_bot["id"]
                                         for message in sim.chat_history(bob["id"], bot=SHOP_TOKEN)),
                             30, "Mia's reply to reach Bob from the shop's bot")
        assert not any("Mia from the shop" in message.get("text", "") for message in sim.chat_history(ann["id"]))
        assert await Message.filter(bot_id=shop.id, text__contains="Mia from the shop").count() == 1
        assert not await Message.filter(bot_id__not=shop.id, text__contains="Mia from the shop").exists()


async def test_a_bots_backlog_in_its_manager_group_never_holds_up_another_bots_group(
        database_url: str, sim: Simulator, ai: FakeAI) -> None:
    """Telegram lets a bot post about 20 messages a minute into a group: a rush of handoffs in one shop's group
    takes minutes to post, and another shop's handoff is posted in its own group meanwhile."""
    ai.script.reply = "Let me find someone."
    shop_bot = sim.add_bot(SHOP_TOKEN, username="shop_two_bot")
    async with manager_desk(database_url, sim, ai, BOTS_RECHECK_SECONDS="0.5") as desk:
        shop = await _add_shop(desk.frontdesk, sim)
        shop_group = sim.create_group("Shop managers", owner=desk.boss["id"], forum=True, bot=SHOP_TOKEN)
        sim.send_command(desk.boss["id"], "setup", chat_id=shop_group["id"], bot=SHOP_TOKEN)
        await eventually(lambda: _manager_chat_is(shop.id, shop_group["id"]), "the shop's /setup")

        rush = [sim.create_user(f"Customer {n}") for n in range(30)]
        for customer in rush:  # 30 topics and their cards: about two minutes of the first group's budget
            sim.send_command(customer["id"], "human")
        await wait_for_topic(sim, desk.chat_id, 3)  # the rush is being posted
        bob = sim.create_user("Bob")
        sim.send_command(bob["id"], "human", bot=SHOP_TOKEN)
        [topic] = await wait_for_topic(sim, shop_group["id"], 1)
        assert len(await wait_in_topic(sim, shop_group["id"], topic.thread_id, 1)) >= 1
        assert len(sim.calls("createForumTopic", bot=TOKEN)) < len(rush), "the shop waited for the rush to be posted"
        assert sim.calls("createForumTopic", bot=SHOP_TOKEN)[0]["params"]["chat_id"] == shop_group["id"]
        assert shop_bot["id"] != sim.bot_id


async def _manager_chat_is(bot_id: int, chat_id: int) -> bool:
    return bool((await Bot.get(id=bot_id)).manager_chat_id == chat_id)


@pytest.mark.parametrize("frontdesk_settings", [{**QUICK_LOOK, "ADMIN_IDS": str(BOSS_ID)}], indirect=True)
async def test_a_revoked_token_pauses_its_bot_and_tells_the_admins(
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    boss = sim.create_user("Boss", id=BOSS_ID)
    sim.add_bot(SHOP_TOKEN, username="shop_two_bot")
    ai.script.reply = "Fresh bread all day."
    shop = await _add_shop(frontdesk, sim)

    # BotFather's /revoke: the old token gets 401 from now on.
    new_token = "7100000002:SHOP-new-token-after-revoke"
    account = sim.account_for_token(SHOP_TOKEN)
    assert account is not None
    account.token = new_token
    ann = sim.create_user("Ann")
    sim.send_text(ann["id"], "bread?", bot=SHOP_ID)  # its answer meets the 401

    await eventually(lambda: _state_is(shop.id, BotState.PAUSED), "the bot paused", within=30)
    assert (await Bot.get(id=shop.id)).paused_reason == bots.TOKEN_REVOKED
    [notice] = await sim.wait_for_messages(boss["id"], timeout=30)  # from the deployment's first bot
    assert "@shop_two_bot" in notice["text"]
    assert await AuditLog.filter(bot_id=shop.id, action="bot.pause").exists()

    # Resuming it would meet the same refusal: a new token brings it back, and the answer waiting goes out.
    refused = await _cli(frontdesk, sim, "bots", "resume", "shop_two_bot", fails=True)
    assert "give it the new one (`bots token`)" in refused
    await _cli(frontdesk, sim, "bots", "token", "shop_two_bot", "-", stdin=new_token + "\n")
    [answer] = await sim.wait_for_messages(ann["id"], bot=SHOP_ID, timeout=30)
    assert answer["text"] == "Fresh bread all day."


async def _state_is(bot_id: int, state: BotState) -> bool:
    return (await Bot.get(id=bot_id)).state == state


async def test_each_bot_keeps_to_its_own_flood_limits(frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    """Telegram counts 30 messages a second per bot: two bots answering crowds at once each stay inside their own
    limit (tgsim answers 429 past it), and every customer is answered by the bot they wrote to."""
    sim.add_bot(SHOP_TOKEN, username="shop_two_bot")
    ai.script.reply = "Answered."
    await _add_shop(frontdesk, sim)
    crowd = {bot: [sim.create_user(f"Customer {n}") for n in range(35)] for bot in (TOKEN, SHOP_TOKEN)}
    for bot, customers in crowd.items():
        for customer in customers:
            sim.send_text(customer["id"], "hello", bot=bot)
    for bot, customers in crowd.items():
        for customer in customers:
            await sim.wait_for_messages(customer["id"], bot=bot, timeout=60)
    refused = [call for call in sim.calls() if call["error_code"] == 429]
    assert refused == []
    assert all(_sent_to(sim, customer["id"], other) == [] for bot, customers in crowd.items()
               for customer in customers for other in crowd if other != bot)


@pytest.mark.skipif(BACKEND != "postgres" or not REDIS_URL,
                    reason="two instances share PostgreSQL (and Redis): the PostgreSQL run has them")
async def test_a_bot_added_on_one_instance_starts_answering_on_the_other(
        database_url: str, sim: Simulator, ai: FakeAI, tmp_path: Path,
        processes: list[subprocess.Popen[bytes]]) -> None:
    sim.add_bot(SHOP_TOKEN, username="shop_two_bot")
    ai.script.reply = "Served."
    env = frontdesk_environment(database_url, sim, ai, free_port())
    async with running_frontdesk(env) as first:
        port = free_port()
        other = f"http://127.0.0.1:{port}"
        await _start(tmp_path, {**env, "PORT": str(port), "WEBHOOK_BASE_URL": other}, processes)
        # Added through the first instance's database and Redis; each instance starts it on its own.
        await _cli(first, sim, "bots", "add", "-", stdin=SHOP_TOKEN + "\n")
        shop = await Bot.get(telegram_id=SHOP_ID)
        path = f"/telegram/webhook/{shop.webhook_key}"
        await sim.wait_until(lambda: {call["params"]["url"] for call in sim.calls("setWebhook", bot=SHOP_TOKEN)}
                             >= {first.url + path, other + path}, 30, "both instances to serve the new bot")
        # Telegram sends its updates to the other instance (as a load balancer would): it answers them.
        async with aiohttp.ClientSession() as http:
            await http.post(f"{sim.base_url}/bot{SHOP_TOKEN}/setWebhook",
                            json={"url": other + path, "secret_token": webhook_secret_of(SHOP_TOKEN)})
        ann = sim.create_user("Ann")
        sim.send_text(ann["id"], "hello?", bot=SHOP_TOKEN)
        [answer] = await sim.wait_for_messages(ann["id"], bot=SHOP_TOKEN, timeout=30)
        assert answer["text"] == "Served."
        assert {d["url"] for d in sim.deliveries(bot=SHOP_TOKEN)} == {other + path}
