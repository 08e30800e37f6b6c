"""The platform page's API (issue 19): the platform's owners (PLATFORM_ADMIN_IDS) list every bot with its
state, traffic, AI cost and errors, add one by its token, pause, resume and give one a new token. Everyone
else signed in gets 404. Telegram is tgsim with the added bots in its world."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from tgsim import Simulator

from bot.events import RedisBus
from miniapp.live import LIVE
from models import AuditLog, AuthorKind, Bot, Conversation, JobStatus, Message, OutboxJob, UsageSlot, User
from services import budgets
from services.events import Payload
from tests.conftest import ENCRYPTION_KEY, Frontdesk, eventually, free_port, frontdesk_environment, running_frontdesk
from tests.desk_helpers import BOSS_ID
from tests.fake_ai import FakeAI
from tests.miniapp_helpers import app_client, statements_sent

OWNER_ID = 5_550_001  # the platform's owner: no role in any bot
SHOP_TOKEN = "7100000002:SHOP-two-token-for-the-platform"
CAFE_TOKEN = "7100000004:CAFE-token-for-the-platform"
UNKNOWN_TOKEN = "7100000009:NOBODY-issued-this-token"


@pytest.fixture
async def platform(database_url: str, sim: Simulator, ai: FakeAI) -> AsyncIterator[Frontdesk]:
    sim.create_user("Olga", id=OWNER_ID, username="olga")
    sim.create_user("Boss", id=BOSS_ID, username="boss")
    env = frontdesk_environment(database_url, sim, ai, free_port(), ADMIN_IDS=str(BOSS_ID),
                                PLATFORM_ADMIN_IDS=str(OWNER_ID), ENCRYPTION_KEY=ENCRYPTION_KEY)
    async with running_frontdesk(env) as running:
        yield running


def bots_changed_events(frontdesk: Frontdesk) -> Callable[[], Awaitable[list[Payload]]]:
    """What the app's event bus carries on its `bots` channel from now on (every instance hears it)."""
    feed = frontdesk.app[LIVE].feed
    assert feed is not None
    bus, heard = feed.bus, []
    if not isinstance(bus, RedisBus):
        async def handler(payload: Payload) -> None:
            heard.append(payload)

        bus.subscribe("bots", handler)

        async def local() -> list[Payload]:
            return heard

        return local
    pubsub = bus.redis.pubsub()

    async def from_redis() -> list[Payload]:
        if not pubsub.subscribed:
            await pubsub.subscribe(f"{bus.prefix}:bots")
        while (message := await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)) is not None:
            heard.append(json.loads(message["data"]))
        return heard

    return from_redis


ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/api/platform/bots", None),
    ("POST", "/api/platform/bots", {"token": SHOP_TOKEN}),
    ("POST", "/api/platform/bots/1/pause", {}),
    ("POST", "/api/platform/bots/1/resume", {}),
    ("PUT", "/api/platform/bots/1/token", {"token": SHOP_TOKEN}),
]


async def test_only_the_platform_owners_find_the_platform(platform: Frontdesk, sim: Simulator) -> None:
    sim.add_bot(SHOP_TOKEN, username="shop_two_bot")
    ann = sim.create_user("Ann")
    async with app_client(platform, sim, OWNER_ID) as owner:
        me = await owner.get("/api/me")
        assert me["platform"] is True
        assert me["role"] == "customer"  # a platform owner is no bot's admin
        status, _ = await owner.call("GET", "/api/admin/settings")
        assert status == 403
        assert len((await owner.get("/api/platform/bots"))["bots"]) == 1
    for person in (BOSS_ID, ann["id"]):  # the bot's admin and a customer: as if there were no such page
        async with app_client(platform, sim, person) as someone:
            assert (await someone.get("/api/me"))["platform"] is False
            for method, path, body in ROUTES:
                status, data = await someone.call(method, path, body)
                assert (status, data["error"]["code"]) == (404, "not_found"), (person, method, path)
                assert data["error"]["message"] == "Not found."
    async with app_client(platform) as nobody:
        for method, path, body in ROUTES:
            assert (await nobody.call(method, path, body))[0] == 401
    # Nothing any of them sent was done.
    assert await Bot.filter(username="shop_two_bot").count() == 0
    assert not await AuditLog.filter(action__startswith="bot.").exists()


async def test_without_platform_owners_there_is_no_platform_page(frontdesk: Frontdesk, sim: Simulator) -> None:
    async with app_client(frontdesk, sim, sim.create_user("Olga")["id"]) as someone:
        assert (await someone.get("/api/me"))["platform"] is False  # no Platform tab
        assert (await someone.call("GET", "/api/platform/bots"))[0] == 404
        async with someone.session.get(frontdesk.url + "/app/platform") as page:
            assert page.status == 404


async def test_a_bad_token_is_refused_with_its_reason_and_nothing_is_written(
        platform: Frontdesk, sim: Simulator) -> None:
    bots_before = await Bot.all().count()
    async with app_client(platform, sim, OWNER_ID) as owner:
        status, data = await owner.call("POST", "/api/platform/bots", {"token": "my bot's token"})
        assert (status, data["error"]["code"]) == (400, "bad_token")
        assert data["error"]["message"] == "That is not a bot token: @BotFather gives one like 123456789:AAE…"
        status, data = await owner.call("POST", "/api/platform/bots", {"token": UNKNOWN_TOKEN})
        assert (status, data["error"]["code"]) == (400, "token_refused")
        assert data["error"]["message"].startswith("Telegram does not accept this token")
        status, data = await owner.call("POST", "/api/platform/bots", {})
        assert (status, data["error"]["code"]) == (400, "bad_request")
        status, data = await owner.call("POST", "/api/platform/bots/999999/pause", {})
        assert (status, data["error"]["code"]) == (404, "not_found")
    assert await Bot.all().count() == bots_before
    assert not await AuditLog.filter(action__startswith="bot.").exists()


async def test_a_bot_added_by_its_token_is_served_paused_and_resumed(platform: Frontdesk, sim: Simulator) -> None:
    sim.add_bot(SHOP_TOKEN, username="shop_two_bot")
    sim.add_bot(CAFE_TOKEN, username="cafe_bot")
    events = bots_changed_events(platform)
    await events()
    async with app_client(platform, sim, OWNER_ID) as owner:
        status, added = await owner.call("POST", "/api/platform/bots", {"token": f"  {SHOP_TOKEN}\n"})
        assert status == 201, added
        assert (added["username"], added["telegram_id"], added["state"]) == ("shop_two_bot", 7100000002, "active")
        assert added["token_last4"] == SHOP_TOKEN[-4:]
        assert added["token_from_settings"] is False
        row = await Bot.get(telegram_id=7100000002)
        assert row.token_secret
        assert SHOP_TOKEN.split(":")[1] not in row.token_secret
        listed = {bot["username"]: bot for bot in (await owner.get("/api/platform/bots"))["bots"]}
        assert listed["shop_two_bot"]["state"] == "active"
        home = [bot for name, bot in listed.items() if name != "shop_two_bot"]
        assert [bot["token_from_settings"] for bot in home] == [True]  # BOT_TOKEN's bot
        await eventually(lambda: _heard(events, 1), "the instances told that the bots changed")

        status, again = await owner.call("POST", "/api/platform/bots", {"token": SHOP_TOKEN})
        assert (status, again["error"]["message"]) == (409, "@shop_two_bot is already on the platform.")

        paused = await owner.post(f"/api/platform/bots/{row.id}/pause")
        assert (paused["state"], paused["paused_reason"]) == ("paused", "owner")
        assert (await Bot.get(id=row.id)).state == "paused"
        await eventually(lambda: _heard(events, 2), "the instances told of the pause")
        resumed = await owner.post(f"/api/platform/bots/{row.id}/resume")
        assert (resumed["state"], resumed["paused_reason"]) == ("active", "")
        assert (await Bot.get(id=row.id)).state == "active"

        # Another bot's token is not this bot's new token.
        status, refused = await owner.call("PUT", f"/api/platform/bots/{row.id}/token", {"token": CAFE_TOKEN})
        assert (status, refused["error"]["message"]) == (400, "This token belongs to another bot, not @shop_two_bot.")
        # Telegram refused its token (the fleet pauses it so): resuming waits for a new token, which serves it again.
        await Bot.filter(id=row.id).update(state="paused", paused_reason="revoked")
        listed = {bot["id"]: bot for bot in (await owner.get("/api/platform/bots"))["bots"]}
        assert (listed[row.id]["state"], listed[row.id]["paused_reason"]) == ("paused", "revoked")
        status, refused = await owner.call("POST", f"/api/platform/bots/{row.id}/resume", {})
        assert (status, refused["error"]["code"]) == (409, "token_revoked")
        renewed = await owner.call("PUT", f"/api/platform/bots/{row.id}/token", {"token": SHOP_TOKEN})
        assert renewed[0] == 200
        assert (renewed[1]["state"], renewed[1]["paused_reason"]) == ("active", "")
        await eventually(lambda: _heard(events, 4), "the instances told of every change")

    audit = await AuditLog.filter(bot_id=row.id, action__startswith="bot.").order_by("id").values("action", "details")
    assert [entry["action"] for entry in audit] == ["bot.add", "bot.pause", "bot.resume", "bot.token"]
    assert all(entry["details"]["by"] == OWNER_ID for entry in audit)


async def _heard(events: Callable[[], Awaitable[list[Payload]]], count: int) -> bool:
    heard = await events()
    assert all(payload == {"bots": "changed"} for payload in heard)
    return len(heard) >= count


async def _customer(bot_id: int, telegram_id: int) -> tuple[User, Conversation]:
    user = await User.create(bot_id=bot_id, telegram_id=telegram_id, first_name="Ann")
    return user, await Conversation.create(uuid=uuid.uuid4(), bot_id=bot_id, user=user)


async def _messages(conversation: Conversation, author: User, kind: AuthorKind, count: int, when: datetime) -> None:
    for _ in range(count):
        message = await Message.create(bot_id=conversation.bot_id, conversation=conversation, author_kind=kind,
                                       author=author if kind == AuthorKind.CUSTOMER else None, text="hi")
        await Message.filter(id=message.id).update(created_at=when)


async def _job(bot_id: int, status: JobStatus, finished: datetime) -> None:
    await OutboxJob.create(bot_id=bot_id, kind="answer", status=status, run_after=finished, finished_at=finished)


async def test_each_bots_traffic_cost_and_errors_are_its_own_rows(platform: Frontdesk, sim: Simulator) -> None:
    sim.add_bot(SHOP_TOKEN, username="shop_two_bot")
    async with app_client(platform, sim, OWNER_ID) as owner:
        shop_id = (await owner.post("/api/platform/bots", {"token": SHOP_TOKEN}))["id"]
        home_id = next(bot["id"] for bot in (await owner.get("/api/platform/bots"))["bots"] if bot["id"] != shop_id)
    now = datetime.now(UTC)
    hour_ago, days_ago, long_ago = now - timedelta(hours=1), now - timedelta(days=3), now - timedelta(days=40)
    ann, ann_talk = await _customer(shop_id, 901)
    await _messages(ann_talk, ann, AuthorKind.CUSTOMER, 3, hour_ago)
    await _messages(ann_talk, ann, AuthorKind.AI, 2, hour_ago)
    await _messages(ann_talk, ann, AuthorKind.MANAGER, 1, hour_ago)
    await _messages(ann_talk, ann, AuthorKind.SYSTEM, 4, hour_ago)  # notices are not answers
    await _messages(ann_talk, ann, AuthorKind.NOTE, 4, hour_ago)  # nor are the team's notes
    await _messages(ann_talk, ann, AuthorKind.CUSTOMER, 5, days_ago)
    await _messages(ann_talk, ann, AuthorKind.AI, 4, days_ago)
    await _messages(ann_talk, ann, AuthorKind.CUSTOMER, 7, long_ago)  # older than 30 days
    bob, bob_talk = await _customer(home_id, 902)
    await _messages(bob_talk, bob, AuthorKind.CUSTOMER, 1, days_ago)
    month = budgets.month_start(now)
    await UsageSlot.create(bot_id=shop_id, slot=month, cost=Decimal("1.25"))
    await UsageSlot.create(bot_id=shop_id, slot=now.replace(second=0, microsecond=0, minute=0), cost=Decimal("0.5"))
    await UsageSlot.create(bot_id=shop_id, slot=month - timedelta(minutes=15), cost=Decimal("9"))  # last month
    await UsageSlot.create(bot_id=home_id, slot=month, cost=Decimal("0.3"))
    await budgets.set_budget(shop_id, Decimal("25"))
    await _job(shop_id, JobStatus.FAILED, hour_ago)
    await _job(shop_id, JobStatus.FAILED, hour_ago)
    await _job(shop_id, JobStatus.FAILED, days_ago)  # longer ago than 24 h
    await _job(shop_id, JobStatus.DONE, hour_ago)
    await _job(home_id, JobStatus.FAILED, hour_ago)

    async with app_client(platform, sim, OWNER_ID) as owner:
        listed = {bot["id"]: bot for bot in (await owner.get("/api/platform/bots"))["bots"]}
    shop, home = listed[shop_id], listed[home_id]
    assert shop["day"] == {"messages_in": 3, "answers_out": 3}
    assert shop["month"] == {"messages_in": 8, "answers_out": 7}
    assert (shop["ai_cost"], shop["ai_budget"], shop["failed_jobs"]) == ("1.75", "25.00", 2)
    assert home["day"] == {"messages_in": 0, "answers_out": 0}
    assert home["month"] == {"messages_in": 1, "answers_out": 0}
    assert (home["ai_cost"], home["ai_budget"], home["failed_jobs"]) == ("0.30", None, 1)


async def test_the_list_comes_a_page_at_a_time_and_finds_a_bot_by_name(platform: Frontdesk, sim: Simulator) -> None:
    sim.add_bot(SHOP_TOKEN, username="shop_two_bot")
    sim.add_bot(CAFE_TOKEN, username="cafe_bot")
    async with app_client(platform, sim, OWNER_ID) as owner:
        await owner.post("/api/platform/bots", {"token": SHOP_TOKEN})
        cafe = await owner.post("/api/platform/bots", {"token": CAFE_TOKEN})
        first = await owner.get("/api/platform/bots?limit=2")
        assert (len(first["bots"]), first["total"]) == (2, 3)
        rest = await owner.get(f"/api/platform/bots?limit=2&after={first['next_after']}")
        assert ([bot["username"] for bot in rest["bots"]], rest["next_after"]) == (["cafe_bot"], None)
        found = await owner.get("/api/platform/bots?q=@CAFE")
        assert ([bot["id"] for bot in found["bots"]], found["total"]) == ([cafe["id"]], 1)
        found = await owner.get(f"/api/platform/bots?q={cafe['telegram_id']}")
        assert [bot["id"] for bot in found["bots"]] == [cafe["id"]]
        status, data = await owner.call("GET", "/api/platform/bots?limit=0")
        assert (status, data["error"]["code"]) == (400, "bad_request")


async def test_a_page_of_bots_costs_the_same_queries_however_many_bots_it_holds(
        platform: Frontdesk, sim: Simulator) -> None:
    """No query per bot: one per kind of figure (GROUP BY bot_id), counted with Tortoise's own query log."""
    for number in range(60):
        await Bot.create(telegram_id=7_200_000_000 + number, username=f"bot_{number}")
    counted: list[str] = []
    async with app_client(platform, sim, OWNER_ID) as owner:
        await owner.get("/api/me")  # the owner's row, outside the counts

        async def queries(path: str) -> tuple[int, int]:
            nonlocal counted
            with statements_sent() as counted:
                shown = len((await owner.get(path))["bots"])
            # The page's own read of failed jobs is counted; the workers' polling is not.
            page = [line for line in counted if line.lstrip().upper().startswith("SELECT")
                    and "knowledge_" not in line and "advisory" not in line
                    and ("outbox_job" not in line or "failed" in line)]
            return shown, len(page)

        few, many = await queries("/api/platform/bots?limit=2"), await queries("/api/platform/bots?limit=61")
        assert (few[0], many[0]) == (2, 61)
        assert few[1] == many[1] <= 8, counted  # the caller (2), the bots and their count, one per figure
