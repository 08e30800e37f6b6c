"""Every Mini App API route, as /api/openapi.json lists it, called by everyone who might try:
nobody, tampered or expired Telegram sign-ins, a browser session without its CSRF token, a customer,
another customer, a viewer, a manager and an admin. Each gets what its role allows and no more, and
nobody gets a 500. A route added without its check fails here, because the list is the API's own."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from tgsim import Simulator

from models import AuthorKind, Conversation, Message, PromptVersion, ProviderKey, Role, SavedReply, User
from services import staff
from services.studio import projects
from tests.conftest import eventually
from tests.desk_helpers import Desk, manager_desk
from tests.fake_ai import FakeAI
from tests.miniapp_helpers import AppClient, app_client, dashboard_link, sign_in

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
