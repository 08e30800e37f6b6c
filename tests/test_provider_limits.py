"""The AI providers' limits at rush hour: concurrent streams, requests and tokens a minute, a 429's
retry-after, waiting in a fair queue across bots, and the same limits shared by instances on Redis."""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from openai import AsyncOpenAI
from redis.asyncio import Redis
from tgsim import Simulator

from services.ai import AIClient, Route, retry_after
from services.provider_limits import MemoryLedger, Overdue, ProviderGate, ProviderLimits, RedisLedger, Refused
from tests.conftest import Frontdesk, eventually, free_port
from tests.fake_ai import FakeAI
from tests.miniapp_helpers import app_client
from tests.test_studio import _doc, _project, _run, _save

REDIS_URL = os.environ.get("TEST_REDIS_URL", "")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="needs a Redis server (tests/run.sh starts one)")
PERSON = "passed your conversation to a person"


def bot_texts(sim: Simulator, chat_id: int) -> list[str]:
    return [m["text"] for m in sim.chat_history(chat_id) if m["from"]["is_bot"]]


# --- through the real app ----------------------------------------------------------------------------


@pytest.mark.parametrize("frontdesk_settings", [{"AI_MAX_STREAMS": 2, "OUTBOX_WORKERS": 6}], indirect=True)
async def test_answers_beyond_ai_max_streams_wait_their_turn_and_all_arrive(
        frontdesk_settings: dict[str, Any], frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ai.script.answer = lambda question: f"Answer to {question}."
    ai.script.first_token_delay = 0.3  # long enough for every answer to want a stream at once
    customers = [sim.create_user(f"Customer {n}") for n in range(6)]
    for n, customer in enumerate(customers):
        sim.send_text(customer["id"], f"question {n}")
    for n, customer in enumerate(customers):
        [answer] = await sim.wait_for_messages(customer["id"])
        assert answer["text"] == f"Answer to question {n}."
    assert ai.most_streaming == 2
    assert len(ai.started) == 6


async def test_a_model_its_provider_rate_limits_is_left_for_the_fallback_until_retry_after(
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ai.script.model_replies = {"main-model": "Main here.", "backup-model": "Backup here."}
    ai.script.too_many_requests = {"main-model": 1}
    ai.script.retry_after = 120
    ann, bob = sim.create_user("Ann"), sim.create_user("Bob")
    sim.send_text(ann["id"], "hello?")
    [first] = await sim.wait_for_messages(ann["id"])
    sim.send_text(bob["id"], "anyone?")
    [second] = await sim.wait_for_messages(bob["id"])
    assert (first["text"], second["text"]) == ("Backup here.", "Backup here.")
    # The main model's one 429 was its last: Bob's answer would have had it, but it was cooling down.
    assert [r["model"] for r in ai.requests] == ["main-model", "backup-model", "backup-model"]


@pytest.mark.parametrize("frontdesk_settings", [{"AI_FALLBACK_MODELS": ""}], indirect=True)
async def test_without_a_fallback_the_answer_comes_after_the_retry_after(
        frontdesk_settings: dict[str, Any], frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ai.script.reply = "Worth the wait."
    ai.script.too_many_requests = {"main-model": 1}
    ai.script.retry_after = 1
    ann = sim.create_user("Ann")
    asked = time.monotonic()
    sim.send_text(ann["id"], "hello?")
    [answer] = await sim.wait_for_messages(ann["id"])
    assert answer["text"] == "Worth the wait."
    assert [r["model"] for r in ai.requests] == ["main-model", "main-model"]
    # The 429 came after `asked`; the model was not asked again before its retry-after had passed.
    assert ai.started[0] - asked >= 1 - 0.01


@pytest.mark.parametrize("frontdesk_settings", [{"AI_FALLBACK_MODELS": "", "AI_MAX_WAIT": 0.5}], indirect=True)
async def test_a_retry_after_longer_than_ai_max_wait_hands_the_customer_to_a_person(
        frontdesk_settings: dict[str, Any], frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ai.script.too_many_requests = {"main-model": 5}
    ai.script.retry_after = 120
    ann = sim.create_user("Ann")
    sim.send_text(ann["id"], "xyzzy plugh")
    [answer] = await sim.wait_for_messages(ann["id"])
    assert PERSON in answer["text"]
    assert [r["model"] for r in ai.requests] == ["main-model"]


@pytest.mark.parametrize("frontdesk_settings", [{"AI_REQUESTS_PER_MINUTE": 3, "AI_MAX_WAIT": 0.5}],
                         indirect=True)
async def test_past_ai_requests_per_minute_the_next_answer_waits_then_goes_to_a_person(
        frontdesk_settings: dict[str, Any], frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ai.script.reply = "From the AI."
    customers = [sim.create_user(f"Customer {n}") for n in range(4)]
    for customer in customers:
        sim.send_text(customer["id"], "xyzzy plugh")
        await sim.wait_for_messages(customer["id"])
    assert [bot_texts(sim, c["id"])[0] == "From the AI." for c in customers] == [True, True, True, False]
    assert PERSON in bot_texts(sim, customers[3]["id"])[0]
    assert len(ai.requests) == 3  # the fourth waited for the minute's window rather than call


@pytest.mark.parametrize("frontdesk_settings", [{"AI_MAX_WAIT": 0.5}], indirect=True)
async def test_a_studio_run_on_a_cooling_model_waits_with_the_answers(
        frontdesk_settings: dict[str, Any], frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ai.script.too_many_requests = {"main-model": 1}
    ai.script.retry_after = 120
    ann = sim.create_user("Ann")
    sim.send_text(ann["id"], "hello?")
    await sim.wait_for_messages(ann["id"])  # main-model's 429: it cools down
    async with app_client(frontdesk, sim, ann["id"]) as client:
        project = await _project(client)
        await _save(client, project, _doc("Say hi to {{name}}", {"name": "Bob"}))
        lines = await _run(client, project["id"], {"block_id": "p1", "model": "main-model@default"})
    assert lines[-1]["run"]["status"] == "error"
    assert [r["model"] for r in ai.requests] == ["main-model", "backup-model"]


# --- the gate ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class R:
    model: str
    provider: str = "p"

    @property
    def key(self) -> str:
        return f"{self.model}@{self.provider}"


async def test_bots_take_turns_so_a_busy_bot_cannot_starve_another() -> None:
    gate = ProviderGate(MemoryLedger(), {"p": ProviderLimits(max_streams=1)})
    order: list[str] = []
    first_holds = asyncio.Event()

    async def call(name: str, tenant: int, hold: asyncio.Event | None = None) -> None:
        async with gate.turn([R("m")], tenant, 10, deadline=gate.deadline()):
            order.append(name)
            if hold is not None:
                await hold.wait()

    holder = asyncio.create_task(call("a1", 1, first_holds))
    await eventually(lambda: _true(order == ["a1"]), "the first call to hold the stream")
    calls = [asyncio.create_task(call(f"a{n}", 1)) for n in range(2, 6)]
    calls += [asyncio.create_task(call(f"b{n}", 2)) for n in range(1, 3)]
    await eventually(lambda: _true(gate.waiting == 6), "six calls waiting")
    first_holds.set()
    await asyncio.gather(holder, *calls)
    assert order == ["a1", "a2", "b1", "a3", "b2", "a4", "a5"]
    await gate.close()


async def test_a_waiting_call_is_told_when_it_waits_and_when_its_turn_comes_or_it_gives_up() -> None:
    gate = ProviderGate(MemoryLedger(), {"p": ProviderLimits(max_streams=1)}, max_wait=0.3)
    seen: list[str] = []

    async def on_wait(waiting: bool) -> None:
        seen.append("waiting" if waiting else "done")

    holding = asyncio.Event()
    async with gate.turn([R("m")], 1, 10, deadline=gate.deadline(), on_wait=on_wait):
        assert seen == []  # room at once: no wait, nothing said
        with pytest.raises(Overdue):
            async with gate.turn([R("m")], 2, 10, deadline=gate.deadline(), on_wait=on_wait):
                pass
        assert seen == ["waiting", "done"]
        waiter = asyncio.create_task(_enter_and_leave(gate, on_wait, holding))
        await eventually(lambda: _true(gate.waiting == 1), "a call waiting")
    await waiter
    assert seen == ["waiting", "done", "waiting", "done"]
    assert holding.is_set()
    await gate.close()


async def _enter_and_leave(gate: ProviderGate, on_wait: Any, entered: asyncio.Event) -> None:
    async with gate.turn([R("m")], 3, 10, deadline=gate.deadline() + 30, on_wait=on_wait):
        entered.set()


async def test_a_call_that_stops_waiting_gives_its_place_back() -> None:
    gate = ProviderGate(MemoryLedger(), {"p": ProviderLimits(max_streams=1)})
    release, holding = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with gate.turn([R("m")], 1, 10, deadline=gate.deadline()):
            holding.set()
            await release.wait()

    holder = asyncio.create_task(hold())
    await asyncio.wait_for(holding.wait(), 5)  # the only stream is taken
    gone = asyncio.create_task(_enter_and_leave(gate, None, asyncio.Event()))
    await eventually(lambda: _true(gate.waiting == 1), "a call waiting")
    gone.cancel()
    await asyncio.gather(gone, return_exceptions=True)
    assert gate.waiting == 0
    release.set()
    await holder
    entered = asyncio.Event()
    await asyncio.wait_for(_enter_and_leave(gate, None, entered), 5)  # the stream is free again
    assert entered.is_set()
    await gate.close()


async def test_a_cooling_route_is_skipped_for_the_next_one_at_once() -> None:
    gate = ProviderGate(MemoryLedger())
    await gate.cool(R("main"), 60)
    async with gate.turn([R("main"), R("backup")], 1, 10, deadline=gate.deadline()) as turn:
        assert turn.index == 1


async def test_a_call_whose_every_route_cools_past_its_deadline_gives_up_without_waiting() -> None:
    gate = ProviderGate(MemoryLedger(), max_wait=30)
    seen: list[bool] = []

    async def on_wait(waiting: bool) -> None:
        seen.append(waiting)

    await gate.cool(R("main"), 60)
    with pytest.raises(Overdue):
        async with gate.turn([R("main")], 1, 10, deadline=gate.deadline(), on_wait=on_wait):
            pass
    assert seen == []


async def test_an_answer_that_waits_for_a_stream_says_so_then_streams(ai: FakeAI) -> None:
    gate = ProviderGate(MemoryLedger(), {"default": ProviderLimits(max_streams=1)})
    client = AIClient([Route("main-model", AsyncOpenAI(base_url=ai.base_url, api_key="k", max_retries=0))],
                      lambda model: (0.0, 0.0), gate=gate)
    ai.script.hold = asyncio.Event()
    seen: list[bool] = []

    async def on_wait(waiting: bool) -> None:
        seen.append(waiting)

    async def nothing(text: str) -> None:
        pass

    messages = [{"role": "user", "content": "hi"}]
    first = asyncio.create_task(client.answer(messages, nothing, tenant=1, on_wait=on_wait))
    await ai.received.wait()
    second = asyncio.create_task(client.answer(messages, nothing, tenant=2, on_wait=on_wait))
    await eventually(lambda: _true(seen == [True]), "the second answer to wait for the stream")
    assert len(ai.requests) == 1
    ai.script.hold.set()
    replies = await asyncio.gather(first, second)
    assert [reply.text for reply in replies] == [ai.script.reply] * 2
    assert seen == [True, False]
    assert ai.most_streaming == 1
    await client.close()


async def test_requests_a_minute_count_over_the_last_sixty_seconds() -> None:
    now = [1000.0]
    ledger = MemoryLedger(clock=lambda: now[0])
    limits = ProviderLimits(requests_per_minute=3)
    taken = [await ledger.take("p", "m@p", limits, 10, f"lease{n}") for n in range(4)]
    assert taken[:3] == [None, None, None]
    assert taken[3] == Refused(60.0, cooling=False)
    now[0] += 30
    assert await ledger.take("p", "m@p", limits, 10, "lease4") == Refused(30.0, cooling=False)
    now[0] += 30
    assert await ledger.take("p", "m@p", limits, 10, "lease4") is None


async def test_tokens_a_minute_count_the_estimate_then_what_a_call_really_used() -> None:
    now = [1000.0]
    ledger = MemoryLedger(clock=lambda: now[0])
    limits = ProviderLimits(tokens_per_minute=1000)
    assert await ledger.take("p", "m@p", limits, 600, "first") is None
    assert await ledger.take("p", "m@p", limits, 600, "second") == Refused(60.0, cooling=False)
    await ledger.settle("p", "first", 300)  # it used less than estimated
    assert await ledger.take("p", "m@p", limits, 600, "second") is None
    now[0] += 60
    assert await ledger.take("p", "m@p", limits, 2000, "large") is None  # alone, a call larger than the budget


def test_retry_after_reads_milliseconds_seconds_and_dates() -> None:
    now = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)
    assert retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after({"retry-after": "7"}) == 7
    assert retry_after({"retry-after": format_datetime(now + timedelta(seconds=20), usegmt=True)}, now) == 20
    assert retry_after({"retry-after-ms": "6"}) == 0.25  # never sooner than this
    assert retry_after({}) == 1.0
    assert retry_after({"retry-after": "soon"}) == 1.0


# --- shared by instances on Redis ------------------------------------------------------------------------


@pytest.fixture
async def redis_prefix() -> AsyncIterator[tuple[Redis, str]]:
    client = Redis.from_url(REDIS_URL)
    yield client, f"test-{uuid.uuid4().hex}"
    await client.aclose()


@needs_redis
async def test_instances_share_a_providers_streams_on_redis(redis_prefix: tuple[Redis, str]) -> None:
    client, prefix = redis_prefix
    limits = {"p": ProviderLimits(max_streams=1)}
    first, second = (ProviderGate(RedisLedger(client, prefix), limits) for _ in range(2))
    seen: list[bool] = []

    async def on_wait(waiting: bool) -> None:
        seen.append(waiting)

    entered = asyncio.Event()
    async with first.turn([R("m")], 1, 10, deadline=first.deadline()):
        waiter = asyncio.create_task(_enter_and_leave(second, on_wait, entered))
        await eventually(lambda: _true(seen == [True]), "the other instance's call to wait")
        assert not entered.is_set()
    await waiter
    assert entered.is_set()
    assert seen == [True, False]
    await first.close()
    await second.close()


@needs_redis
async def test_instances_share_a_429s_cool_down_on_redis(redis_prefix: tuple[Redis, str]) -> None:
    client, prefix = redis_prefix
    first, second = (ProviderGate(RedisLedger(client, prefix)) for _ in range(2))
    await first.cool(R("main"), 60)
    async with second.turn([R("main"), R("backup")], 1, 10, deadline=second.deadline()) as turn:
        assert turn.index == 1
    refused = await second.ledger.take("p", "main@p", ProviderLimits(), 10, "x")
    assert refused is not None
    assert refused.cooling
    assert 55 < refused.seconds <= 60


@needs_redis
async def test_a_crashed_instances_streams_lapse_on_redis(redis_prefix: tuple[Redis, str]) -> None:
    client, prefix = redis_prefix
    limits = ProviderLimits(max_streams=2)
    crashed = RedisLedger(client, prefix, lease_seconds=0.5)
    assert await crashed.take("p", "m@p", limits, 10, "lost") is None
    await crashed.close()  # gone without ending its stream, and no longer renewing it
    survivor = RedisLedger(client, prefix, lease_seconds=1.0)
    assert await survivor.take("p", "m@p", limits, 10, "running") is None  # a live stream beside it
    taken = time.monotonic()
    assert await survivor.take("p", "m@p", limits, 10, "next") is not None

    async def free() -> bool:
        return await survivor.take("p", "m@p", limits, 10, "next") is None
    await eventually(free, "the lost stream's lease to lapse")
    # Time itself is what this is about (Redis's clock, which the test cannot move): past the live
    # stream's first lease, it still counts because its instance renewed it.
    await asyncio.sleep(max(0.0, taken + 1.5 - time.monotonic()))
    assert await survivor.take("p", "m@p", limits, 10, "more") is not None  # renewed, it still counts
    await survivor.close()


@needs_redis
async def test_requests_a_minute_hold_across_instances_on_redis(redis_prefix: tuple[Redis, str]) -> None:
    client, prefix = redis_prefix
    limits = ProviderLimits(requests_per_minute=2, tokens_per_minute=1000)
    first, second = RedisLedger(client, prefix), RedisLedger(client, prefix)
    assert await first.take("p", "m@p", limits, 100, "a") is None
    assert await second.take("p", "m@p", limits, 100, "b") is None
    refused = await first.take("p", "m@p", limits, 100, "c")
    assert refused is not None
    assert not refused.cooling
    assert 55 < refused.seconds <= 60
    await first.settle("p", "a", 100)
    await second.settle("p", "b", 100)
    tokens = ProviderLimits(tokens_per_minute=1000)
    assert await second.take("p", "m@p", tokens, 900, "d") is not None  # 200 used + 900 > 1000
    await first.close()
    await second.close()


async def test_without_redis_each_instance_counts_alone_and_says_so_once(caplog: pytest.LogCaptureFixture) -> None:
    client = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    ledger = RedisLedger(client, "test")
    limits = ProviderLimits(max_streams=1)
    with caplog.at_level(logging.WARNING, logger="services.provider_limits"):
        assert await ledger.take("p", "m@p", limits, 10, "a") is None
        assert await ledger.take("p", "m@p", limits, 10, "b") is not None  # the stream cap holds here
        await ledger.settle("p", "a", 10)
        assert await ledger.take("p", "m@p", limits, 10, "b") is None
    assert len([r for r in caplog.records if "unreachable" in r.getMessage()]) == 1
    await ledger.close()
    await client.aclose()


async def _true(value: bool) -> bool:
    return value
