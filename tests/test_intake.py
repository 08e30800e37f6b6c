"""The intake (issue 20): updates stored once before the webhook answers, handled one chat at a time; and
receiving apart from working (OUTBOX_WORKERS=0)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest
from aiogram import Bot as AiogramBot
from aiogram import Dispatcher
from aiogram.types import Message as AiogramMessage
from aiogram.types import Update
from tgsim import Simulator

from bot.intake import IntakeSettings, IntakeWorker, Served, lane_of
from models import Bot, Message, OutboxJob, TelegramUpdate, UpdateState, User
from services import privacy
from services.intake import Arrival, GroupCommit, UpdateStore, keep_clean, now_ms
from tests.conftest import TOKEN, eventually, free_port, frontdesk_environment, outbox_idle, running_frontdesk
from tests.fake_ai import FakeAI

# The names of every background task a working instance starts (bot/app.py, services/outbox.py).
WORK_TASKS = ("outbox-", "intake", "knowledge-freshness", "retention")


def _work_running() -> list[str]:
    return sorted(name for task in asyncio.all_tasks() if (name := task.get_name()).startswith(WORK_TASKS))


async def test_a_receive_only_instance_stores_what_it_takes_and_a_working_one_answers_it(
        database_url: str, sim: Simulator, ai: FakeAI) -> None:
    """Receivers and workers deploy apart: the receiver runs no queue of any kind (not even the managers'
    or the knowledge schedule, not even the intake's), and what it took is answered once by an instance that
    works."""
    ai.script.reply = "Answered by the worker."
    ann = sim.create_user("Ann")
    receiver = frontdesk_environment(database_url, sim, ai, free_port(), OUTBOX_WORKERS=0)
    async with running_frontdesk(receiver):
        assert _work_running() == []
        sim.send_text(ann["id"], "anyone there?")
        await sim.wait_until_delivered(timeout=30)  # Telegram has its answer: the update is stored
        [update] = await TelegramUpdate.all()
        assert update.state == UpdateState.PENDING
        assert b"anyone there?" in (update.body or b"")
        assert not await Message.exists()
        assert not await OutboxJob.exists()
    async with running_frontdesk(frontdesk_environment(database_url, sim, ai, free_port())):
        assert _work_running() != []
        [answer] = await sim.wait_for_messages(ann["id"], timeout=30)
        await outbox_idle(sim)
        assert await Message.filter(text="anyone there?").count() == 1
    assert answer["text"] == "Answered by the worker."
    assert len(ai.requests) == 1


# --- the store: services/intake.py UpdateStore, on SQLite and PostgreSQL -------------------------

NOW = 1_800_000_000_000  # ms: the store takes the time from its caller, so the tests set it
LEASE = 60_000


def _arrival(bot: Bot, update_id: int, lane: int) -> Arrival:
    return Arrival(bot.id, update_id, lane, json.dumps({"update_id": update_id, "chat": lane}).encode())


async def _bots(count: int = 1) -> list[Bot]:
    return [await Bot.create(telegram_id=7_100_000_000 + n, username=f"shop{n}_bot") for n in range(count)]


async def test_an_update_is_stored_once_however_often_it_arrives(database: str) -> None:
    [bot] = await _bots()
    store = UpdateStore()
    assert await store.append([_arrival(bot, 1, 10), _arrival(bot, 2, 11)], NOW) == {(bot.id, 1), (bot.id, 2)}
    # Telegram sends 2 again (our answer was lost), and 3 twice in one batch.
    again = await store.append([_arrival(bot, 2, 11), _arrival(bot, 3, 10), _arrival(bot, 3, 10)], NOW)
    assert again == {(bot.id, 3)}
    rows = await TelegramUpdate.filter(bot_id=bot.id).order_by("id").values_list("update_id", "body")
    assert [update_id for update_id, _ in rows] == [1, 2, 3]
    assert json.loads(rows[0][1]) == {"update_id": 1, "chat": 10}


async def test_a_claim_takes_each_chats_oldest_update_and_the_next_only_once_it_is_handled(database: str) -> None:
    [bot] = await _bots()
    store = UpdateStore()
    await store.append([_arrival(bot, 1, 10), _arrival(bot, 2, 10), _arrival(bot, 3, 11)], NOW)
    first = await store.claim("a", NOW, LEASE, 10)
    assert [(u.update_id, u.lane, u.attempts) for u in first] == [(1, 10, 1), (3, 11, 1)]
    assert json.loads(first[0].body)["update_id"] == 1
    assert await store.claim("b", NOW, LEASE, 10) == []  # chat 10's second waits for its first
    await store.finish("a", [first[0].id], NOW + 5)
    [second] = await store.claim("b", NOW + 5, LEASE, 10)
    assert second.update_id == 2
    handled = await TelegramUpdate.get(id=first[0].id)
    assert (handled.state, handled.body, handled.finished_at) == (UpdateState.DONE, None, NOW + 5)
    assert await store.backlog(NOW + 5) == (2, None)  # 2 and 3 run: none waits for a worker
    await store.append([_arrival(bot, 4, 12)], NOW + 6)
    assert await store.backlog(NOW + 9) == (3, NOW + 6)


async def test_bots_take_turns_so_one_bots_flood_does_not_stand_in_front_of_another(database: str) -> None:
    flooded, quiet = await _bots(2)
    store = UpdateStore()
    await store.append([_arrival(flooded, n, 1000 + n) for n in range(1, 21)], NOW)
    await store.append([_arrival(quiet, 1, 5)], NOW + 1)
    claimed = await store.claim("a", NOW + 1, LEASE, 2)
    assert [(u.bot_id, u.update_id) for u in claimed] == [(flooded.id, 1), (quiet.id, 1)]


async def test_a_bots_running_updates_count_against_its_share_so_a_later_customer_of_another_goes_first(
        database: str) -> None:
    flooded, quiet = await _bots(2)
    store = UpdateStore()
    await store.append([_arrival(flooded, n, 1000 + n) for n in range(1, 21)], NOW)
    first = await store.claim("a", NOW, LEASE, 10, per_bot=3)
    assert [u.update_id for u in first] == [1, 2, 3]  # the flood alone: still only its share
    assert await store.claim("a", NOW, LEASE, 10, per_bot=3) == []
    assert [u.update_id for u in await store.claim("b", NOW, LEASE, 1, per_bot=3)] == [4]  # another claimer's own
    await store.append([_arrival(quiet, 1, 5), _arrival(quiet, 2, 6)], NOW + 1)
    # The quiet bot runs nothing yet: both of its customers come before the flood's fourth, though older
    claimed = await store.claim("a", NOW + 1, LEASE, 2, per_bot=4)
    assert [(u.bot_id, u.update_id) for u in claimed] == [(quiet.id, 1), (quiet.id, 2)]
    await store.finish("a", [first[0].id, first[1].id], NOW + 2)
    assert [u.update_id for u in await store.claim("a", NOW + 2, LEASE, 10, per_bot=3)] == [5, 6]


async def test_the_share_per_bot_holds_only_while_several_bots_are_served(database: str) -> None:
    bot, other = await _bots(2)
    for served, most_at_once in ((2, 3), (1, 8)):
        first = 100 * served
        await _stored(bot, [_message_update(n, n, f"message {n}") for n in range(first, first + 12)])
        recorder = HeldRecorder()
        worker = IntakeWorker(UpdateStore(), recorder.dispatcher, Served(lambda _: AiogramBot(TOKEN), _active),
                              IntakeSettings(workers=8, idle_poll_seconds=0.02, per_bot=3),
                              bots_served=_always(served))
        worker.start()
        try:
            await eventually(recorder.holding(most_at_once),
                             f"{most_at_once} updates running at once with {served} bots served")
            if served > 1:  # a claim after the share was reached takes another bot's customer, not the flood's 4th
                await _stored(other, [_message_update(first, 900, "another shop's customer")])
                most_at_once += 1
                await eventually(recorder.holding(most_at_once), "another bot's customer taken beside the share")
            assert recorder.most == most_at_once
        finally:
            recorder.release.set()
            await worker.stop(1)


async def test_an_update_whose_worker_died_is_taken_again_when_its_lease_ends(database: str) -> None:
    [bot] = await _bots()
    store = UpdateStore()
    await store.append([_arrival(bot, 1, 10)], NOW)
    [held] = await store.claim("dead", NOW, LEASE, 10)
    assert await store.claim("b", NOW + LEASE, LEASE, 10) == []  # the lease still holds at its last moment
    [again] = await store.claim("b", NOW + LEASE + 1, LEASE, 10)
    assert (again.id, again.attempts) == (held.id, 2)
    await store.finish("dead", [held.id], NOW + LEASE + 2)  # the old holder's word no longer counts
    assert (await TelegramUpdate.get(id=held.id)).state == UpdateState.RUNNING
    await store.renew("b", [held.id], NOW + 10 * LEASE)
    assert await store.claim("c", NOW + 2 * LEASE, LEASE, 10) == []


async def test_a_failing_update_holds_its_chat_until_it_is_retried_or_given_up(database: str) -> None:
    [bot] = await _bots()
    store = UpdateStore()
    await store.append([_arrival(bot, 1, 10), _arrival(bot, 2, 10), _arrival(bot, 3, 11)], NOW)
    failing, _ = await store.claim("a", NOW, LEASE, 10)
    await store.retry("a", failing.id, NOW + 2000, "TelegramNetworkError: timeout")
    assert await store.claim("a", NOW + 1999, LEASE, 10) == []  # chat 10 keeps its order: 2 waits for 1
    [retried] = await store.claim("a", NOW + 2000, LEASE, 10)
    assert (retried.update_id, retried.attempts) == (1, 2)
    await store.give_up("a", retried.id, UpdateState.FAILED, NOW + 2001, "ValueError: boom")
    [next_one] = await store.claim("a", NOW + 2001, LEASE, 10)
    assert next_one.update_id == 2
    failed = await TelegramUpdate.get(id=retried.id)
    assert (failed.state, failed.last_error, failed.body is not None) == (UpdateState.FAILED, "ValueError: boom", True)


async def test_a_stopping_worker_hands_its_updates_back_without_counting_an_attempt(database: str) -> None:
    [bot] = await _bots()
    store = UpdateStore()
    await store.append([_arrival(bot, 1, 10)], NOW)
    [held] = await store.claim("a", NOW, LEASE, 10)
    await store.release("a", [held.id])
    [again] = await store.claim("b", NOW, LEASE, 10)
    assert (again.id, again.attempts) == (held.id, 1)


async def test_old_rows_are_cleaned_and_recent_keys_kept_to_refuse_redeliveries(database: str) -> None:
    [bot] = await _bots()
    store = UpdateStore()
    await store.append([_arrival(bot, n, 10 + n) for n in (1, 2, 3, 4)], NOW)
    one, two, three, _ = await store.claim("a", NOW, LEASE, 10)
    await store.finish("a", [one.id], NOW)
    await store.finish("a", [two.id], NOW + 1000)
    await store.give_up("a", three.id, UpdateState.FAILED, NOW)
    assert await store.clean(handled_before=NOW + 1, failed_before=NOW) == 1
    assert [row.update_id for row in await TelegramUpdate.filter(bot_id=bot.id).order_by("update_id")] == [2, 3, 4]
    assert await store.append([_arrival(bot, 2, 12)], NOW + 2000) == set()


async def test_many_claimers_at_once_run_each_update_once_and_each_chat_in_order(database: str) -> None:
    """Four workers (on PostgreSQL each statement on its own connection) claim and finish 300 updates of 12
    chats: each runs once, never two of a chat at a time, and each chat's in the order they arrived."""
    [bot] = await _bots()
    store = UpdateStore()
    await store.append([_arrival(bot, n, n % 12) for n in range(1, 301)], NOW)
    running: dict[int, int] = {}  # lane → update running
    handled: list[tuple[int, int]] = []
    overlaps: list[int] = []

    async def worker(owner: str) -> None:
        while claimed := await store.claim(owner, NOW, LEASE, 5):
            for update in claimed:
                if update.lane in running:
                    overlaps.append(update.lane)
                running[update.lane] = update.update_id
            await store.renew(owner, [update.id for update in claimed], NOW + LEASE)  # the others claim meanwhile
            for update in claimed:
                del running[update.lane]
                handled.append((update.lane, update.update_id))
            await store.finish(owner, [update.id for update in claimed], NOW)

    await asyncio.gather(*(worker(f"w{n}") for n in range(4)))
    assert overlaps == []
    assert sorted(update_id for _, update_id in handled) == list(range(1, 301))
    for lane in range(12):
        in_lane = [update_id for chat, update_id in handled if chat == lane]
        assert in_lane == sorted(in_lane)


async def test_deleting_a_customers_data_takes_what_they_sent_that_the_intake_still_holds(database: str) -> None:
    """A failed update keeps its body for a week, an unhandled one until it runs: both are the customer's words.
    The keys of handled ones (no body) stay, to refuse a re-delivery."""
    [bot] = await _bots()
    ann = await User.create(bot=bot, telegram_id=500, first_name="Ann")
    store = UpdateStore()
    await store.append([_arrival(bot, 1, 500), _arrival(bot, 2, 500), _arrival(bot, 3, 600)], NOW)
    handled, _beas = await store.claim("a", NOW, LEASE, 10)
    await store.finish("a", [handled.id], NOW)
    [failed] = await store.claim("a", NOW, LEASE, 10)
    await store.give_up("a", failed.id, UpdateState.FAILED, NOW, "ValueError: a bug")
    await store.append([_arrival(bot, 4, 500)], NOW)  # not handled yet
    await privacy.delete_customer_data(ann, via="bot")
    rows = {row.update_id: row for row in await TelegramUpdate.filter(bot_id=bot.id)}
    assert sorted(rows) == [1, 3]  # Ann's handled key, and Bea's update
    assert rows[1].body is None
    assert rows[3].lane == 600


async def test_old_keys_and_failed_updates_are_cleaned_in_the_background(database: str) -> None:
    [bot] = await _bots()
    store = UpdateStore()
    await store.append([_arrival(bot, n, 10 + n) for n in (1, 2)], NOW)
    first, second = await store.claim("a", NOW, LEASE, 10)
    await store.finish("a", [first.id], now_ms() - 26 * 3_600_000)  # past the 25 hours Telegram may re-deliver
    await store.finish("a", [second.id], now_ms())
    cleaning = asyncio.create_task(keep_clean(store, 25, 7, every=60))
    try:
        await eventually(lambda: _kept(bot, [2]), "the old key cleaned")
    finally:
        cleaning.cancel()


async def _kept(bot: Bot, update_ids: list[int]) -> bool:
    return [row.update_id for row in await TelegramUpdate.filter(bot_id=bot.id).order_by("update_id")] == update_ids


# --- group commit ------------------------------------------------------------------------------


class CountedStore(UpdateStore):
    """The real store, counting its append statements."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    async def append(self, arrivals: Sequence[Arrival], now: int) -> set[tuple[int, int]]:
        self.batches.append(len(arrivals))
        return await super().append(arrivals, now)


async def test_updates_arriving_together_share_one_statement_and_each_learns_its_outcome(database: str) -> None:
    [bot] = await _bots()
    store = CountedStore()
    commits: list[int] = []
    intake = GroupCommit(store, after_commit=lambda: commits.append(1))
    assert await intake.append(_arrival(bot, 1, 10)) is True  # alone: written at once
    outcomes = await asyncio.gather(*(intake.append(_arrival(bot, n, 10 + n)) for n in (1, 2, 3, 4, 4, 5)))
    assert outcomes == [False, True, True, True, False, True]
    assert store.batches == [1, 6]
    assert commits == [1, 1]
    assert await TelegramUpdate.filter(bot_id=bot.id).count() == 5


async def test_when_a_batch_cannot_be_stored_every_caller_hears_it_and_nothing_is_kept(database: str) -> None:
    [bot] = await _bots()
    store = CountedStore()
    intake = GroupCommit(store, max_batch=3)
    gone = Arrival(bot.id + 999, 1, 1, b"{}")  # a bot that does not exist: the statement fails as a whole
    outcomes = await asyncio.gather(intake.append(_arrival(bot, 1, 10)), intake.append(gone),
                                    intake.append(_arrival(bot, 2, 11)), intake.append(_arrival(bot, 3, 12)),
                                    return_exceptions=True)
    assert [type(outcome).__name__ for outcome in outcomes[:3]] == ["IntegrityError"] * 3
    assert outcomes[3] is True  # the next batch is stored
    assert store.batches == [3, 1]
    assert [row.update_id for row in await TelegramUpdate.filter(bot_id=bot.id)] == [3]


async def test_closing_the_intake_writes_what_it_took_and_refuses_more(database: str) -> None:
    [bot] = await _bots()
    intake = GroupCommit(UpdateStore())
    # The appends start first (tasks run in the order they were made), then the close.
    outcomes = await asyncio.gather(*(intake.append(_arrival(bot, n, 10 + n)) for n in (1, 2, 3)), intake.close())
    assert outcomes == [True, True, True, None]
    with pytest.raises(RuntimeError):
        await intake.append(_arrival(bot, 4, 14))


# --- the workers: bot/intake.py IntakeWorker, with a dispatcher of the test's own ---------------


def _message_update(update_id: int, chat_id: int, text: str) -> dict[str, Any]:
    person = {"id": chat_id, "is_bot": False, "first_name": "Ann"}
    return {"update_id": update_id, "message": {"message_id": update_id, "date": 1_800_000_000, "text": text,
                                                  "chat": {"id": chat_id, "type": "private", "first_name": "Ann"},
                                                  "from": person}}


class Recorder:
    """A dispatcher whose one handler notes what it saw, one chat's updates apart from another's."""

    def __init__(self) -> None:
        self.dispatcher = Dispatcher()
        self.seen: list[tuple[int, str]] = []
        self.running: set[int] = set()
        self.overlaps: list[int] = []
        self.fail_first: dict[str, Exception] = {}
        self.dispatcher.message.register(self.handle)

    async def handle(self, message: AiogramMessage) -> None:
        chat, text = message.chat.id, message.text or ""
        if chat in self.running:
            self.overlaps.append(chat)
        self.running.add(chat)
        try:
            for _ in range(chat % 3):  # chats finish out of step with each other: a statement each
                await store_round_trip()
            if (error := self.fail_first.pop(text, None)) is not None:
                raise error
            self.seen.append((chat, text))
        finally:
            self.running.discard(chat)


class HeldRecorder:
    """A dispatcher whose handler holds every update until released, counting how many it holds at once."""

    def __init__(self) -> None:
        self.dispatcher = Dispatcher()
        self.held = self.most = 0
        self.release = asyncio.Event()
        self.dispatcher.message.register(self.handle)

    def holding(self, count: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return self.held == count
        return check

    async def handle(self, message: AiogramMessage) -> None:
        self.held += 1
        self.most = max(self.most, self.held)
        try:
            await self.release.wait()
        finally:
            self.held -= 1


def _always(count: int) -> Callable[[], int]:
    return lambda: count


async def _active(_bot_id: int) -> bool:
    return True


async def store_round_trip() -> None:
    """One statement to the database and back: the worker's next claim, if any, has run meanwhile."""
    await UpdateStore().backlog(now_ms())


def _worker(bot: Bot, recorder: Recorder, served: AiogramBot | None, *, active: bool = True,
            max_attempts: int = 10) -> IntakeWorker:
    async def is_active(_bot_id: int) -> bool:
        return active
    return IntakeWorker(UpdateStore(), recorder.dispatcher,
                        Served(lambda bot_id: served if bot_id == bot.id else None, is_active),
                        IntakeSettings(workers=8, max_attempts=max_attempts, idle_poll_seconds=0.02))


async def _stored(bot: Bot, updates: Sequence[dict[str, Any]]) -> None:
    intake = GroupCommit(UpdateStore())
    for update in updates:
        lane = lane_of(Update.model_validate(update))
        await intake.append(Arrival(bot.id, update["update_id"], lane, json.dumps(update).encode()))


async def _states(bot: Bot) -> dict[int, UpdateState]:
    return {row.update_id: UpdateState(row.state) for row in await TelegramUpdate.filter(bot_id=bot.id)}


async def test_workers_handle_every_update_once_and_each_chat_in_the_order_it_wrote(database: str) -> None:
    [bot] = await _bots()
    recorder = Recorder()
    updates = [_message_update(n, 100 + n % 5, f"message {n}") for n in range(1, 41)]
    await _stored(bot, updates)
    worker = _worker(bot, recorder, AiogramBot(TOKEN))
    worker.start()
    try:
        await eventually(lambda: _all_in(bot, {UpdateState.DONE}), "every update handled")
    finally:
        await worker.stop(1)
    assert recorder.overlaps == []
    assert sorted(recorder.seen) == sorted((100 + n % 5, f"message {n}") for n in range(1, 41))
    for chat in range(100, 105):
        texts = [text for seen_chat, text in recorder.seen if seen_chat == chat]
        assert texts == sorted(texts, key=lambda text: int(text.split()[1]))
    assert await TelegramUpdate.filter(bot_id=bot.id, body__not_isnull=True).count() == 0


async def _all_in(bot: Bot, states: set[UpdateState]) -> bool:
    return set((await _states(bot)).values()) <= states


async def test_an_update_that_fails_is_tried_again_and_its_chat_waits_for_it(database: str) -> None:
    [bot] = await _bots()
    recorder = Recorder()
    recorder.fail_first["first"] = ConnectionRefusedError("the database is restarting")
    await _stored(bot, [_message_update(1, 100, "first"), _message_update(2, 100, "second")])
    worker = _worker(bot, recorder, AiogramBot(TOKEN))
    worker.start()
    try:
        await eventually(lambda: _all_in(bot, {UpdateState.DONE}), "both handled", within=15)
    finally:
        await worker.stop(1)
    assert recorder.seen == [(100, "first"), (100, "second")]
    assert (await TelegramUpdate.get(bot_id=bot.id, update_id=1)).attempts == 2


async def test_an_update_nothing_can_handle_is_given_up_and_its_chat_moves_on(database: str) -> None:
    [bot] = await _bots()
    recorder = Recorder()
    recorder.fail_first["poison"] = ValueError("a bug")
    await _stored(bot, [_message_update(1, 100, "poison"), _message_update(2, 100, "after")])
    worker = _worker(bot, recorder, AiogramBot(TOKEN), max_attempts=1)
    worker.start()
    try:
        await eventually(lambda: _all_in(bot, {UpdateState.DONE, UpdateState.FAILED}), "the chat to move on")
    finally:
        await worker.stop(1)
    assert await _states(bot) == {1: UpdateState.FAILED, 2: UpdateState.DONE}
    assert recorder.seen == [(100, "after")]
    failed = await TelegramUpdate.get(bot_id=bot.id, update_id=1)
    assert failed.last_error == "ValueError: a bug"
    assert failed.body is not None


async def test_updates_of_a_bot_no_longer_served_are_dropped_unhandled(database: str) -> None:
    [bot] = await _bots()
    recorder = Recorder()
    await _stored(bot, [_message_update(1, 100, "hello")])
    worker = _worker(bot, recorder, None, active=False)
    worker.start()
    try:
        await eventually(lambda: _all_in(bot, {UpdateState.DROPPED}), "the update dropped")
    finally:
        await worker.stop(1)
    assert recorder.seen == []


async def test_a_stopping_worker_hands_back_what_it_could_not_finish(database: str) -> None:
    [bot] = await _bots()
    recorder = Recorder()
    release = asyncio.Event()

    async def stuck(message: AiogramMessage) -> None:
        await release.wait()
    recorder.dispatcher = Dispatcher()
    recorder.dispatcher.message.register(stuck)
    await _stored(bot, [_message_update(1, 100, "hello")])
    worker = _worker(bot, recorder, AiogramBot(TOKEN))
    worker.start()
    await eventually(lambda: _all_in(bot, {UpdateState.RUNNING}), "the update taken")
    await worker.stop(0.05)
    row = await TelegramUpdate.get(bot_id=bot.id, update_id=1)
    assert (row.state, row.attempts, row.lease_owner) == (UpdateState.PENDING, 0, "")


def test_each_update_runs_in_its_chats_lane() -> None:
    def lane(data: dict[str, Any]) -> int:
        return lane_of(Update.model_validate(data))
    assert lane(_message_update(1, 42, "hi")) == 42
    press = {"update_id": 2, "callback_query": {
        "id": "1", "from": {"id": 7, "is_bot": False, "first_name": "Ann"}, "chat_instance": "x", "data": "d",
        "message": {"message_id": 3, "date": 0, "chat": {"id": -100, "type": "supergroup", "title": "Desk"}}}}
    assert lane(press) == -100
    query = {"update_id": 3, "inline_query": {"id": "q", "from": {"id": 9, "is_bot": False, "first_name": "Bo"},
                                              "query": "", "offset": ""}}
    assert lane(query) == 9
    assert lane({"update_id": 4}) == 0
