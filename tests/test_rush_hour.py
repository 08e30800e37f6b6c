"""Rush hour: many customers at once get their answers side by side, in order, each exactly once."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from tgsim import Simulator

from models import JobStatus, OutboxJob
from tests.conftest import Frontdesk, eventually, outbox_idle
from tests.fake_ai import FakeAI
from tests.widget_helpers import is_answer, open_widget


def _customers(sim: Simulator, count: int) -> list[int]:
    return [sim.create_user(f"Customer {n}")["id"] for n in range(count)]


def _bot_texts(sim: Simulator, chat_id: int) -> list[str]:
    return [m["text"] for m in sim.chat_history(chat_id) if m["from"]["is_bot"]]


async def _readiness(frontdesk: Frontdesk) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(frontdesk.url + "/readyz") as response:
        return response.status, await response.json()


async def test_answers_for_many_customers_stream_side_by_side_by_default(
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ai.script.hold = asyncio.Event()  # every answer is being written when the next customer writes
    ai.script.reply = "Here is your answer."
    customers = _customers(sim, 12)
    for n, customer in enumerate(customers):
        sim.send_text(customer, f"question number {n} about my order")

    async def all_streaming() -> bool:
        return len(ai.requests) == len(customers)

    await eventually(all_streaming, "every customer's answer asked of the model at once")
    ai.script.hold.set()
    for customer in customers:
        [answer] = await sim.wait_for_messages(customer)
        assert answer["text"] == "Here is your answer."
    await outbox_idle(sim)
    assert all(_bot_texts(sim, customer) == ["Here is your answer."] for customer in customers)  # each once


@pytest.mark.parametrize("frontdesk_settings", [{"OUTBOX_WORKERS": 2}], indirect=True)
async def test_past_its_limit_an_instance_keeps_answers_waiting_in_the_outbox_and_says_so(
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ai.script.hold = asyncio.Event()
    ai.script.reply = "Thanks for waiting."
    customers = _customers(sim, 5)
    for customer in customers:
        sim.send_text(customer, "is my parcel on its way?")

    async def two_asked_three_waiting() -> bool:
        waiting = await OutboxJob.filter(kind="answer", status=JobStatus.PENDING).count()
        return len(ai.requests) == 2 and waiting == 3

    await eventually(two_asked_three_waiting, "two answers running and three waiting in the outbox")
    status, body = await _readiness(frontdesk)
    assert status == 200, body  # the outbox is shared: waiting there is not being unready
    assert body["checks"]["customers_queue"] == "full: new answers wait in the outbox"
    assert body["checks"]["outbox_running"]["customers"] == "2/2"
    ai.script.hold.set()
    for customer in customers:
        [answer] = await sim.wait_for_messages(customer)
        assert answer["text"] == "Thanks for waiting."
    assert await OutboxJob.filter(status=JobStatus.FAILED).count() == 0
    status, body = await _readiness(frontdesk)
    assert body["checks"]["customers_queue"] == "ok"


@pytest.mark.parametrize("frontdesk_settings", [{"TELEGRAM_MESSAGES_PER_SECOND": 5}], indirect=True)
async def test_with_the_budget_short_every_customer_sees_first_words_before_anyone_sees_more(
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    sim.set_flood_limits(global_per_second=5)  # a bot allowed 5 messages a second, answering 10 at once
    ai.script.hold = asyncio.Event()
    ai.script.reply = " ".join(f"word{n}" for n in range(60))
    ai.script.chunk_size, ai.script.chunk_delay = 8, 0.05  # each answer streams for about two seconds
    customers = _customers(sim, 10)
    for customer in customers:
        sim.send_text(customer, "what do you recommend?")

    async def all_asked() -> bool:
        return len(ai.requests) == len(customers)

    await eventually(all_asked, "every answer asked of the model")
    ai.script.hold.set()
    for customer in customers:
        [answer] = await sim.wait_for_messages(customer, timeout=60)
        assert answer["text"] == ai.script.reply
    calls = [call for call in sim.calls() if call["method"] in ("sendMessage", "sendMessageDraft")]
    drafts = [call["params"]["chat_id"] for call in calls if call["method"] == "sendMessageDraft"]
    assert sorted(drafts[:10]) == sorted(customers)  # a first draft for everyone before anyone's second
    offered = len(customers) * -(-len(ai.script.reply) // ai.script.chunk_size)
    assert len(drafts) < offered / 2  # the updates thinned out instead of queueing up
    assert all(call["ok"] for call in calls)  # no 429
    # Never more than the budget in a second; counted as they arrived, so in windows a trip's length
    # (a few milliseconds) short of a second: one send's trip may take longer than the next one's.
    times = sorted(call["time"] for call in calls)
    assert max(sum(1 for t in times[i:] if t < start + 0.98) for i, start in enumerate(times)) <= 5


@pytest.mark.parametrize("frontdesk_settings", [{"TELEGRAM_MESSAGES_PER_SECOND": 4}], indirect=True)
async def test_with_the_budget_short_first_words_go_before_answers_to_those_already_reading_a_draft(
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    sim.set_flood_limits(global_per_second=4)
    ai.script.hold = asyncio.Event()
    ai.script.reply = " ".join(f"word{n}" for n in range(20))
    ai.script.chunk_size, ai.script.chunk_delay = 10, 0.02  # answers written faster than the budget shows them
    customers = _customers(sim, 8)
    for customer in customers:
        sim.send_text(customer, "do you deliver on sundays?")

    async def all_asked() -> bool:
        return len(ai.requests) == len(customers)

    await eventually(all_asked, "every answer asked of the model")
    ai.script.hold.set()
    for customer in customers:
        await sim.wait_for_messages(customer, timeout=60)
    calls = [call for call in sim.calls() if call["method"] in ("sendMessage", "sendMessageDraft")]
    first_words: dict[int, int] = {}
    follow_ups: list[int] = []  # answers sent to customers who read a draft of them
    for index, call in enumerate(calls):
        chat = call["params"]["chat_id"]
        if chat in first_words and call["method"] == "sendMessage":
            follow_ups.append(index)
        first_words.setdefault(chat, index)
    assert sorted(first_words) == sorted(customers)
    assert follow_ups  # some did read a draft first
    assert max(first_words.values()) < min(follow_ups)  # nobody waited for a word while others got more
    assert all(call["ok"] for call in calls)


@pytest.mark.parametrize("frontdesk_settings", [{"AI_MAX_STREAMS": 1}], indirect=True)
async def test_a_customer_whose_answer_waits_for_the_provider_sees_typing_then_the_answer(
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ai.script.hold = asyncio.Event()
    ai.script.reply = "Yes, we do."
    first, second = _customers(sim, 2)
    sim.send_text(first, "do you deliver on sundays?")
    await asyncio.wait_for(ai.received.wait(), 10)  # the provider's one stream is busy with it
    sim.send_text(second, "and on saturdays?")

    def typing_to(chat: int) -> list[dict[str, Any]]:
        return [call for call in sim.calls()
                if call["method"] == "sendChatAction" and call["params"]["chat_id"] == chat]

    await sim.wait_until(lambda: bool(typing_to(second)))
    assert typing_to(second)[0]["params"]["action"] == "typing"
    assert len(ai.requests) == 1  # the second waits its turn, not asked of the model
    ai.script.hold.set()
    assert [m["text"] for m in await sim.wait_for_messages(first)] == ["Yes, we do."]
    assert [m["text"] for m in await sim.wait_for_messages(second)] == ["Yes, we do."]
    assert typing_to(first) == []  # the first never waited
    await outbox_idle(sim)
    assert all(call["time"] < _answered_at(sim, second) for call in typing_to(second))  # none after the answer


def _answered_at(sim: Simulator, chat: int) -> float:
    return float(min(call["time"] for call in sim.calls() if call["method"] == "sendMessage" and call["ok"]
                     and call["params"]["chat_id"] == chat))


@pytest.mark.parametrize("frontdesk_settings", [{"AI_MAX_STREAMS": 1}], indirect=True)
async def test_a_website_visitor_whose_answer_waits_sees_typing_then_the_answer_streaming(
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ai.script.hold = asyncio.Event()
    ai.script.reply = "We open at nine."
    telegram_customer = _customers(sim, 1)[0]
    sim.send_text(telegram_customer, "when do you open?")
    await asyncio.wait_for(ai.received.wait(), 10)  # the provider's one stream is busy
    async with aiohttp.ClientSession() as http:
        visitor, _ = await open_widget(http, frontdesk.url)
        await visitor.send_message("when do you open tomorrow?")
        mine = await visitor.until(lambda f: f["type"] == "message" and f["author"] == "customer")
        typing = await visitor.until(lambda f: f["type"] == "typing")
        assert typing["reply_to"] == mine["id"]
        ai.script.hold.set()
        answer = await visitor.until(lambda f: is_answer(f, mine["id"]))
    assert answer["text"] == "We open at nine."
    frames = [f["type"] for f in visitor.frames if f.get("reply_to") == mine["id"]]
    assert frames.index("typing") < frames.index("message")
    assert "typing" not in frames[frames.index("message"):]
