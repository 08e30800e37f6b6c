"""Every Mini App API route, as /api/openapi.json lists it, called by everyone who might try:
nobody, tampered or expired Telegram sign-ins, a browser session without its CSRF token, a customer,
another customer, a viewer, a manager and an admin. Each gets what its role allows and no more, and
nobody gets a 500. A route added without its check fails here, because the list is the API's own."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from tgsim import Simulator
from yarl import URL

from bot.bot_tokens import token_identifier
from models import (
    AuthorKind,
    Bot,
    Conversation,
    KnowledgeItem,
    Message,
    PromptVersion,
    ProviderKey,
    Role,
    SavedReply,
    User,
    WidgetSite,
)
from services import bots, staff, team
from services.secrets_box import SecretBox, parse_key
from services.studio import projects
from services.tenant_settings import StaffRole
from tests.conftest import ENCRYPTION_KEY, TOKEN, eventually
from tests.desk_helpers import Desk, manager_desk
from tests.fake_ai import FakeAI
from tests.miniapp_helpers import AppClient, app_client, dashboard_link, sign_in
from tests.widget_helpers import is_answer, open_widget

DENIED = (401, 403)
MISSING = 999_999_999  # an id nothing has


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # with Ann's objects' ids in it
    access: str  # "admins", "staff" or "signed-in" (x-access)
    owned: bool  # names an object of Ann's (a customer's own)

    @property
    def reads(self) -> bool:
        return self.method in ("GET", "HEAD")


@pytest.fixture
async def desk(database_url: str, sim: Simulator, ai: FakeAI) -> AsyncIterator[Desk]:
    async with manager_desk(database_url, sim, ai, STAFF_AUTO_APPROVE="false") as running:
        yield running


async def _anns_things(desk: Desk, sim: Simulator, ann: dict[str, Any]) -> dict[str, int]:
    """Ann's conversation, studio project, version and own key: what another customer must not reach."""
    sim.send_text(ann["id"], "Do you deliver?")
    await sim.wait_for_messages(ann["id"])
    user = await User.get(telegram_id=ann["id"])
    conversation = await Conversation.get(user=user)
    project = await projects.create_project(user, "Letters")
    block = projects.load(project).prompt_blocks[0]
    version = await PromptVersion.create(project=project, block_key=block.id, number=1, name=block.name,
                                         template=block.template, compiled="Hi", author=user)
    key = await ProviderKey.create(bot_id=user.bot_id, owner=user, name="Mine",
                                   base_url="https://api.example/v1", models=["m"], secret="c2VhbGVk",
                                   key_id="k1", last4="abcd")
    # The customer sees the answer before it is recorded as sent: wait for the record.
    await eventually(lambda: Message.filter(conversation=conversation, author_kind=AuthorKind.AI).exists(),
                     "Ann's answer to be recorded")
    answer = await Message.filter(conversation=conversation, author_kind=AuthorKind.AI).first()
    assert answer is not None
    return {"conversation_id": conversation.id, "project_id": project.id, "version_id": version.id,
            "key_id": key.id, "message_id": answer.id}


async def _routes(client: AppClient, owned_ids: dict[str, int], others: dict[str, str]) -> list[Route]:
    status, spec = await client.call("GET", "/api/openapi.json")
    assert status == 200
    routes = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            filled, owned = path, False
            for name in [p["name"] for p in operation["parameters"] if p["in"] == "path"]:
                value = owned_ids.get(name)
                owned = owned or value is not None
                filled = filled.replace("{" + name + "}", str(value if value is not None else
                                                              others.get(name, MISSING)))
            routes.append(Route(method.upper(), filled, operation["x-access"], owned))
    assert len(routes) > 60, "the API lists its routes"
    return routes


async def _call(client: AppClient, route: Route, *, csrf: bool = True) -> int:
    body: dict[str, Any] | None = None if route.reads else {}
    status, _ = await client.call(route.method, route.path, body, csrf=csrf)
    assert (status != 500 and status < 500) or status == 503, (route, status)  # 503: no AI configured, say
    return status


async def _team(desk: Desk, sim: Simulator) -> tuple[dict[str, Any], dict[str, Any]]:
    """Mia approved as a manager, Vic as a viewer (Boss is in ADMIN_IDS)."""
    vic = sim.create_user("Vic")
    sim.set_member(desk.chat_id, vic["id"], "member")
    bot_id = (await User.get(telegram_id=desk.boss["id"]).only("bot_id")).bot_id
    for person, role in ((desk.mia, Role.MANAGER), (vic, Role.VIEWER)):
        user, _ = await User.get_or_create(bot_id=bot_id, telegram_id=person["id"],
                                           defaults={"first_name": person["first_name"]})
        await staff.set_role(bot_id, user, role, None)
    return desk.mia, vic


async def test_every_route_gives_each_caller_what_its_role_allows(desk: Desk, sim: Simulator) -> None:
    ann, bob = sim.create_user("Ann"), sim.create_user("Bob")
    async with app_client(desk.frontdesk, sim, desk.boss["id"]) as boss:
        await boss.get("/api/me")  # the boss's row exists
    mia, vic = await _team(desk, sim)
    owned = await _anns_things(desk, sim, ann)
    saved = await SavedReply.create(bot_id=(await User.get(telegram_id=ann["id"])).bot_id, name="hours",
                                    text="We are open 9 to 6.")
    others = {"user_id": str((await User.get(telegram_id=mia["id"])).id), "label": "production",
              "key": "x" * 8, "version": "1", "reply_id": str(saved.id)}
    checked = 0

    async with app_client(desk.frontdesk) as nobody:
        routes = await _routes(nobody, owned, others)
        for route in routes:
            assert await _call(nobody, route) == 401, route
            checked += 1

    two_days_ago = int(time.time()) - 2 * 86400
    async with app_client(desk.frontdesk, sim, desk.boss["id"], auth_date=two_days_ago) as expired, \
            app_client(desk.frontdesk, sim, desk.boss["id"]) as tampered:
        tampered.init_data = (tampered.init_data or "").replace("Boss", "B0ss")  # the signature no longer holds
        for route in routes:
            assert await _call(expired, route) == 401, route
            assert await _call(tampered, route) == 401, route
            checked += 2

    async with app_client(desk.frontdesk) as browser:
        assert await sign_in(browser, await dashboard_link(sim, desk.boss["id"])) == 303
        for route in routes:
            if not route.reads:
                assert await _call(browser, route, csrf=False) == 403, route  # the cookie alone changes nothing
                checked += 1

    async with app_client(desk.frontdesk, sim, bob["id"]) as stranger:
        for route in routes:
            status = await _call(stranger, route)
            if route.access != "signed-in":
                assert status == 403, route
            elif route.owned:
                assert status in (403, 404), route  # Ann's things are not there for Bob
            checked += 1

    for who, can in ((ann, "signed-in"), (vic, "read staff"), (mia, "staff"), (desk.boss, "admins")):
        async with app_client(desk.frontdesk, sim, who["id"]) as caller:
            for route in routes:
                status = await _call(caller, route)
                allowed = route.access == "signed-in" or (route.access == "staff" and can != "signed-in" and (
                    can != "read staff" or route.reads)) or can == "admins"
                assert (status not in DENIED) == allowed, (who["first_name"], route, status)
                checked += 1
    assert checked > 8 * len(routes)


# --- two bots: each business's data is its own --------------------------------------------------------------

SHOP_TOKEN = "7100000002:SHOP-two-token-for-the-tests"
MARKS = {"a": "Oolong-Alpha-7", "b": "Sourdough-Beta-9"}  # in each bot's data, to spot it in any answer


@dataclass
class Business:
    bot_id: int
    mark: str
    admin: dict[str, Any]  # its admin by invitation (not in ADMIN_IDS, who are every bot's admins)
    signed_by: str  # the token its Mini App's initData is signed with
    ids: dict[str, int]  # its objects, by the path parameter that names them
    site_key: str = ""
    visitor_token: str = ""


@dataclass
class TwoBots:
    a: Business
    b: Business
    ann: dict[str, Any]  # a customer of A
    zed: dict[str, Any]  # B's admin, and a customer of A


async def _joins(bot_id: int, person: dict[str, Any], role: Role) -> User:
    """The person accepted an invitation to the bot's team (no manager chat needed), and an admin gave them
    `role`."""
    user, _ = await User.get_or_create(bot_id=bot_id, telegram_id=person["id"],
                                       defaults={"first_name": person["first_name"]})
    invited: StaffRole = "viewer" if role == Role.VIEWER else "manager"
    new = await team.create_invite(bot_id, invited, user)
    assert await team.claim(bot_id, new.code, user) is not None
    assert await team.accept(bot_id, new.invite.id, user) == invited
    if role == Role.ADMIN:
        await staff.set_role(bot_id, user, Role.ADMIN, None)
    return user


async def _fill(desk: Desk, sim: Simulator, business: Business) -> None:
    """The business's admin sets it up in its own Mini App; a website visitor writes to it."""
    mark = business.mark
    async with app_client(desk.frontdesk, sim, business.admin["id"], bot=business.bot_id,
                          signed_by=business.signed_by) as admin:
        item = await admin.post("/api/knowledge", {"question": f"When does {mark} open?", "answer": f"{mark}: at 7"})
        for text in (f"You are the assistant of {mark}.", f"You are the helpful assistant of {mark}."):
            await admin.post("/api/persona/versions", {"text": text})
        site = await admin.post("/api/admin/sites", {"allowed_origins": [desk.frontdesk.url], "title": mark})
        reply = await admin.post("/api/saved-replies", {"name": mark, "text": f"Thanks from {mark}"})
        async with admin.session.post(admin.base + f"/api/knowledge/sources/file?name={mark}.md",
                                      data=f"# {mark}\n\nWe bake every morning.".encode(),
                                      headers=admin.headers({"Content-Type": "text/markdown"})) as response:
            assert response.status == 201, await response.text()
            source = await response.json()
    async with aiohttp.ClientSession() as http:
        visitor, welcome = await open_widget(http, desk.frontdesk.url, site=site["public_key"])
        assert welcome["type"] == "welcome", welcome
        await visitor.send_message(f"Hello {mark}")
        await visitor.until(lambda frame: is_answer(frame))
        await visitor.socket.close()
    conversation = await Conversation.filter(bot_id=business.bot_id).order_by("-id").first()
    assert conversation is not None
    message = await Message.filter(conversation=conversation).order_by("id").first()
    assert message is not None
    customer = await User.get(id=conversation.user_id)
    business.ids = {"conversation_id": conversation.id, "message_id": message.id, "item_id": item["id"],
                    "site_id": site["id"], "reply_id": reply["id"], "source_id": source["id"],
                    "user_id": customer.id}
    business.site_key, business.visitor_token = site["public_key"], str(welcome["token"])


@pytest.fixture
async def two_bots(desk: Desk, sim: Simulator) -> TwoBots:
    """Bot A (BOT_TOKEN's) and bot B (added by the platform owner), each with its admin, knowledge, persona,
    site, saved reply, document and a website visitor's conversation; Zed is B's admin and A's customer."""
    sim.add_bot(SHOP_TOKEN, username="shop_two_bot")
    shop = await bots.add_bot(SHOP_TOKEN, token_identifier(desk.frontdesk.settings),
                              SecretBox(parse_key(ENCRYPTION_KEY)))
    home = await Bot.get(telegram_id=int(TOKEN.partition(":")[0]))
    ada, zed, ann = sim.create_user("Ada"), sim.create_user("Zed"), sim.create_user("Ann")
    await _joins(home.id, ada, Role.ADMIN)
    await _joins(shop.id, zed, Role.ADMIN)
    sim.send_text(zed["id"], "Do you have oolong?")  # Zed is also a customer of bot A
    await sim.wait_for_messages(zed["id"])
    a = Business(home.id, MARKS["a"], ada, TOKEN, {})
    b = Business(shop.id, MARKS["b"], zed, SHOP_TOKEN, {})
    await _fill(desk, sim, a)
    await _fill(desk, sim, b)
    return TwoBots(a, b, ann, zed)


def _shows(body: Any, mark: str) -> bool:
    return mark in (body if isinstance(body, str) else json.dumps(body, ensure_ascii=False))


async def test_each_bots_staff_get_404_on_the_other_bots_things_and_never_see_its_data(
        desk: Desk, sim: Simulator, two_bots: TwoBots) -> None:
    for own, other in ((two_bots.a, two_bots.b), (two_bots.b, two_bots.a)):
        async with app_client(desk.frontdesk, sim, own.admin["id"], bot=own.bot_id, signed_by=own.signed_by) as staff:
            assert (await staff.get("/api/me"))["role"] == "admin"
            theirs = await _routes(staff, other.ids, {"version": "2", "label": "production", "key": "x" * 8})
            mine = await _routes(staff, own.ids, {"version": "2", "label": "production", "key": "x" * 8})
            for route in theirs:
                if route.owned and route.access != "signed-in":
                    status = await _call(staff, route)
                    # Another bot's conversation, item, site, reply or document does not exist here.
                    assert status == 404 if route.reads else status in (400, 404), (own.mark, route, status)
            seen = 0
            for route in mine:
                if route.reads and "/files/" not in route.path:
                    status, body = await staff.call(route.method, route.path)
                    assert not _shows(body, other.mark), (own.mark, route, body)
                    seen += _shows(body, own.mark)
            assert seen >= 8, "its own data shows: its inbox, knowledge, persona, sites, replies, documents..."
    # Nothing of B's was changed by A's admin's tries (nor A's by B's).
    for business in (two_bots.a, two_bots.b):
        assert await KnowledgeItem.filter(id=business.ids["item_id"], bot_id=business.bot_id).exists()
        assert await WidgetSite.filter(id=business.ids["site_id"], bot_id=business.bot_id).exists()
        assert await SavedReply.filter(id=business.ids["reply_id"], bot_id=business.bot_id).exists()
        assert not await Message.filter(conversation_id=business.ids["conversation_id"],
                                        author_kind__in=[AuthorKind.MANAGER, AuthorKind.NOTE]).exists()


async def test_a_customer_of_one_bot_never_sees_another_bots_data(
        desk: Desk, sim: Simulator, two_bots: TwoBots) -> None:
    async with app_client(desk.frontdesk, sim, two_bots.ann["id"]) as ann:
        assert (await ann.get("/api/me"))["role"] == "customer"
        for route in await _routes(ann, two_bots.b.ids, {"version": "2", "label": "production", "key": "x" * 8}):
            status, body = await ann.call(route.method, route.path, None if route.reads else {})
            assert status < 500, (route, status)
            if route.owned:
                assert status in (403, 404), (route, status)
            assert not _shows(body, two_bots.b.mark), (route, body)


async def test_init_data_counts_only_for_the_bot_that_signed_it(desk: Desk, sim: Simulator,
                                                                 two_bots: TwoBots) -> None:
    a, b, zed = two_bots.a, two_bots.b, two_bots.zed
    # Signed by A's token, naming B (or B's, naming A): refused, whoever it is.
    for person, signed_by, named in ((a.admin, a.signed_by, b.bot_id), (zed, b.signed_by, a.bot_id),
                                     (zed, b.signed_by, None), (zed, a.signed_by, 999_999)):
        async with app_client(desk.frontdesk, sim, person["id"], bot=named, signed_by=signed_by) as wrong:
            for path in ("/api/me", "/api/conversations", "/api/knowledge",
                         f"/api/conversations/{b.ids['conversation_id']}"):
                assert (await wrong.call("GET", path))[0] == 401, (person["first_name"], named, path)
    # Zed is A's customer and B's admin: the staff views only with B.
    async with app_client(desk.frontdesk, sim, zed["id"], bot=a.bot_id, signed_by=a.signed_by) as as_customer, \
            app_client(desk.frontdesk, sim, zed["id"], bot=b.bot_id, signed_by=b.signed_by) as as_staff:
        me = await as_customer.get("/api/me")
        assert (me["role"], me["bot_id"]) == ("customer", a.bot_id)
        assert [(choice["id"], choice["current"]) for choice in me["bots"]] == [(a.bot_id, True), (b.bot_id, False)]
        assert next(choice for choice in me["bots"] if choice["id"] == b.bot_id)["link"] == "https://t.me/shop_two_bot"
        assert (await as_customer.call("GET", "/api/inbox/summary"))[0] == 403
        assert (await as_customer.call("GET", "/api/knowledge"))[0] == 403
        me = await as_staff.get("/api/me")
        assert (me["role"], me["bot_id"]) == ("admin", b.bot_id)
        inbox = await as_staff.get("/api/conversations")
        assert [row["id"] for row in inbox["conversations"]] == [b.ids["conversation_id"]]
        history = await as_customer.get("/api/conversations")  # his own conversation with A, as a customer
        [own] = history["conversations"]
        assert await Conversation.exists(id=own["id"], bot_id=a.bot_id, user__telegram_id=zed["id"])

        await bots.pause(await Bot.get(id=b.bot_id))  # a paused bot lets nobody in (within seconds)

        async def refused() -> bool:
            return (await as_staff.call("GET", "/api/me"))[0] == 401
        await eventually(refused, "the paused bot's Mini App to refuse its staff")
        assert (await as_customer.get("/api/me"))["bots"] == [
            {"id": a.bot_id, "name": "@frontdesk_test_bot", "username": "frontdesk_test_bot", "current": True,
             "link": "https://t.me/frontdesk_test_bot"}]


async def test_a_widget_key_opens_only_its_own_bots_conversations(desk: Desk, two_bots: TwoBots) -> None:
    a, b = two_bots.a, two_bots.b
    async with aiohttp.ClientSession() as http:
        # A's visitor's token on B's site: no visitor there, no history.
        async with http.get(f"{desk.frontdesk.url}/widget/api/history?site={b.site_key}",
                            headers={"Authorization": f"Bearer {a.visitor_token}",
                                     "Origin": desk.frontdesk.url}) as response:
            assert response.status == 401
            assert not _shows(await response.text(), a.mark)
        stranger, refused = await open_widget(http, desk.frontdesk.url, site=b.site_key, token=a.visitor_token)
        assert refused["type"] == "error", refused
        await stranger.socket.close()
        # B's own visitor asks for A's message's file, and rates A's conversation: nothing.
        async with http.get(f"{desk.frontdesk.url}/widget/api/files/{a.ids['message_id']}/0?site={b.site_key}",
                            headers={"Authorization": f"Bearer {b.visitor_token}",
                                     "Origin": desk.frontdesk.url}) as response:
            assert response.status == 404
        visitor, welcome = await open_widget(http, desk.frontdesk.url, site=b.site_key, token=b.visitor_token,
                                             autoping=False)
        assert welcome["type"] == "welcome"
        assert not _shows(welcome, a.mark)
        await visitor.socket.send_json({"type": "rate", "conversation": a.ids["conversation_id"], "stars": 1})
        frames = await visitor.all_handled()
        assert not any(frame["type"] == "rated" for frame in frames), frames
        assert not any(_shows(frame, a.mark) for frame in visitor.frames)
        await visitor.socket.close()
    assert (await Conversation.get(id=a.ids["conversation_id"])).rating is None


async def test_a_browser_session_moves_only_to_a_bot_its_person_works_for_and_ends_with_that_bot(
        desk: Desk, sim: Simulator, two_bots: TwoBots) -> None:
    a, b, ada = two_bots.a, two_bots.b, two_bots.a.admin
    async with app_client(desk.frontdesk) as browser:
        assert await sign_in(browser, await dashboard_link(sim, ada["id"])) == 303
        assert (await browser.get("/api/me"))["bot_id"] == a.bot_id
        status, body = await browser.call("POST", "/api/me/bot", {"bot": b.bot_id})
        assert (status, body["error"]["code"]) == (404, "not_found")  # not on B's team (yet)

        await _joins(b.bot_id, ada, Role.VIEWER)
        old_cookie = browser.session.cookie_jar.filter_cookies(URL(browser.base))["frontdesk_session"].value
        switched = await browser.post("/api/me/bot", {"bot": b.bot_id})
        assert (switched["id"], switched["current"]) == (b.bot_id, True)
        me = await browser.get("/api/me")
        assert (me["bot_id"], me["role"]) == (b.bot_id, "viewer")
        browser.csrf = me["csrf_token"]
        knowledge = await browser.get("/api/knowledge")
        assert _shows(knowledge, b.mark)
        assert not _shows(knowledge, a.mark)
        # The page left open on A in another tab names A: refused, rather than showing B's desk as A's.
        assert (await browser.call("GET", "/api/knowledge", headers={"X-Frontdesk-Bot": str(a.bot_id)}))[0] == 401
        async with aiohttp.ClientSession(cookies={"frontdesk_session": old_cookie}) as stale, \
                stale.get(browser.base + "/api/me") as response:
            assert response.status == 401  # the session it was traded for has ended

        await bots.pause(await Bot.get(id=b.bot_id))

        async def ended() -> bool:
            return (await browser.call("GET", "/api/me"))[0] == 401
        await eventually(ended, "the paused bot's browser session to stop working")

    async with app_client(desk.frontdesk, sim, ada["id"]) as in_telegram:
        status, body = await in_telegram.call("POST", "/api/me/bot", {"bot": b.bot_id})
        assert (status, body["error"]["code"]) == (400, "switch_in_telegram")
