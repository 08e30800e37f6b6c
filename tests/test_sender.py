"""The outbound sender keeps within Telegram's limits and survives its refusals."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiohttp import web
from tgsim import Simulator

from bot.sending import BOT_DEFAULTS, YIELD, Limits, Pacer, SenderMiddleware, TelegramChatSender, topic_icon_ids
from services.ports import OutgoingText, RecipientBlocked, SendPriority


def _bot(base_url: str, token: str, middleware: SenderMiddleware) -> Bot:
    session = AiohttpSession(api=TelegramAPIServer.from_base(base_url))
    session.middleware(middleware)
    return Bot(token, session=session, default=BOT_DEFAULTS)


@pytest.fixture
async def paced_bot(sim: Simulator) -> AsyncIterator[Bot]:
    bot = _bot(sim.base_url, sim.token, SenderMiddleware())
    yield bot
    await bot.session.close()


async def test_a_burst_to_one_chat_is_paced_without_a_single_429(sim: Simulator, paced_bot: Bot) -> None:
    ann = sim.create_user("Ann")
    sender = TelegramChatSender(paced_bot)
    await asyncio.gather(*(sender.send_text(ann["id"], OutgoingText(f"message {n}")) for n in range(6)))
    assert len(sim.chat_history(ann["id"])) == 6
    # Unpaced, three of the six would be refused; a loaded machine's timing jitter may cost one.
    assert sum(1 for call in sim.calls("sendMessage") if not call["ok"]) <= 1


async def test_retry_after_is_waited_out_and_the_message_still_arrives(sim: Simulator) -> None:
    careless = SenderMiddleware(Limits(private_burst=100, private_per_second=100))  # lets Telegram say 429
    bot = _bot(sim.base_url, sim.token, careless)
    ann = sim.create_user("Ann")
    try:
        sender = TelegramChatSender(bot)
        await asyncio.gather(*(sender.send_text(ann["id"], OutgoingText(f"m{n}")) for n in range(5)))
    finally:
        await bot.session.close()
    assert len(sim.chat_history(ann["id"])) == 5
    assert any(call.get("error_code") == 429 for call in sim.calls("sendMessage"))


async def test_a_blocked_customer_raises_recipient_blocked(sim: Simulator, paced_bot: Bot) -> None:
    ann = sim.create_user("Ann")
    sim.block_bot(ann["id"])
    with pytest.raises(RecipientBlocked):
        await TelegramChatSender(paced_bot).send_text(ann["id"], OutgoingText("hello?"))


async def test_server_errors_are_retried_with_backoff(unused_tcp_port: int) -> None:
    attempts: list[int] = []

    async def flaky_telegram(request: web.Request) -> web.Response:
        attempts.append(1)
        if len(attempts) < 3:
            return web.json_response({"ok": False, "error_code": 502, "description": "Bad Gateway"}, status=502)
        return web.json_response({"ok": True, "result": {
            "message_id": 1, "date": 0, "chat": {"id": 5, "type": "private"}, "text": "hi"}})

    app = web.Application()
    app.router.add_post("/bot{token}/sendMessage", flaky_telegram)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", unused_tcp_port).start()
    bot = _bot(f"http://127.0.0.1:{unused_tcp_port}", "1:flaky", SenderMiddleware())
    try:
        assert await TelegramChatSender(bot).send_text(5, OutgoingText("hi")) == 1
    finally:
        await bot.session.close()
        await runner.cleanup()
    assert len(attempts) == 3


def test_group_pace_is_twenty_a_minute_in_a_sliding_window() -> None:
    pacer = Pacer(Limits())
    for second in range(20):
        assert pacer.wait_time(-100, 1, now=float(second)) == 0
        pacer.take(-100, 1, now=float(second))
    assert pacer.wait_time(-100, 1, now=20.0) == pytest.approx(40.0)  # the first send leaves the window at 60 s
    assert pacer.wait_time(-200, 1, now=20.0) == 0  # other groups are not held up


def test_the_whole_bot_keeps_under_thirty_a_second() -> None:
    pacer = Pacer(Limits())
    for chat in range(30):
        assert pacer.wait_time(chat + 1, 1, now=0.5) == 0
        pacer.take(chat + 1, 1, now=0.5)
    assert pacer.wait_time(999, 1, now=0.6) == pytest.approx(0.9)


async def test_a_send_holds_its_place_until_its_answer_came_back() -> None:
    # Telegram counts a message when it arrives: a slow request must not let the next second's
    # sends arrive inside the same second as it.
    pacer = Pacer(Limits(per_second=2))
    for chat in (1, 2):
        pacer.wait_time(chat, 1, now=0.0)
        pacer.take(chat, 1, now=0.0)
    assert pacer.wait_time(3, 1, now=0.5) == pytest.approx(0.5)
    await pacer.settle(1, now=0.8)
    await pacer.settle(2, now=0.8)
    assert pacer.wait_time(3, 1, now=1.05) == pytest.approx(0.75)  # counted from the answers, not the sends
    assert pacer._in_flight == {}


def test_drafts_take_the_bot_wide_budget_and_give_way_to_more_urgent_sends() -> None:
    pacer = Pacer(Limits(per_second=2))
    assert pacer.draft_wait(0.0, SendPriority.FIRST_WORDS) == 0
    pacer.wait_time(1, 1, now=0.0)
    pacer.take(1, 1, now=0.0)
    assert pacer.draft_wait(0.1) == pytest.approx(0.9)  # a draft counts like a message in the bot's second
    assert pacer.wait_time(2, 1, now=0.1) == pytest.approx(0.9)
    pacer.queue.start(SendPriority.FOLLOW_UP)  # an answer to someone reading its draft waits for the budget
    assert pacer.draft_wait(1.5, SendPriority.UPDATE) == YIELD  # the next draft update gives way ...
    assert pacer.draft_wait(1.5, SendPriority.FIRST_WORDS) == 0  # ... a first draft does not
    pacer.queue.stop(SendPriority.FOLLOW_UP)
    assert pacer.draft_wait(1.6, SendPriority.UPDATE) == 0


def test_idle_chats_are_forgotten_so_memory_stays_bounded() -> None:
    pacer = Pacer(Limits(), max_chats=100)
    for chat in range(1, 101):
        pacer.wait_time(chat, 1, now=0.0)
        pacer.take(chat, 1, now=0.0)
    pacer.wait_time(500, 1, now=10.0)  # the 101st chat, long after the others refilled
    assert len(pacer._private) == 1


def test_topic_icons_are_found_by_emoji_with_or_without_its_variation_selector() -> None:
    icons = topic_icon_ids([("❗️", "5377498341074542641"), ("💬", "5417915203100613993"), ("", "1")])
    assert icons == {"❗": "5377498341074542641", "💬": "5417915203100613993"}
