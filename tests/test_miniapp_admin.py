"""The persona editor and the admins' settings through the real server: who may call what, what is
refused, and that every change reaches customers (the AI's prompt and model, quotas, the widget,
the after-hours notice, the team's roles)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from tgsim import Simulator

from miniapp.auth import MINIAPP
from models import AuditLog, Bot, Conversation, ConversationMode, Message, Persona, User, WidgetSite
from services.persona import default_persona
from services.schedule import DAYS
from tests.conftest import eventually
from tests.desk_helpers import Desk, manager_desk, wait_for_topic
from tests.fake_ai import FakeAI
from tests.miniapp_helpers import AppClient, app_client, dashboard_link, sign_in


@pytest.fixture
async def desk(database_url: str, sim: Simulator, ai: FakeAI) -> Any:
    async with manager_desk(database_url, sim, ai, PUBLIC_BASE_URL="https://desk.example") as running:
        yield running


def system_prompt(request: dict[str, Any]) -> str:
    return str(request["messages"][0]["content"])


async def ask(sim: Simulator, ai: FakeAI, customer: dict[str, Any], text: str) -> dict[str, Any]:
    """The customer writes; returns the bot's answer in their chat."""
    before = len([m for m in sim.chat_history(customer["id"]) if m["from"]["is_bot"]])
    sim.send_text(customer["id"], text)
    answers = await sim.wait_for_messages(customer["id"], before + 1, timeout=10)
    return dict(answers[-1])


async def recorded_answer(question: str) -> Message:
    """The AI's stored answer to a question (stored just after it reaches the chat)."""
    answers = Message.filter(author_kind="ai", reply_to__text=question)
    await eventually(answers.exists, f"the stored answer to {question!r}")
    answer = await answers.first()
    assert answer is not None
    return answer


async def settings_row(desk: Desk) -> dict[str, object]:
    return dict((await Bot.get(id=desk.frontdesk.app[MINIAPP].default_bot_id)).settings)


async def use_the_desk(sim: Simulator, desk: Desk, user_id: int) -> None:
    """A staff member sends /open in the manager chat and gets the bot's answer."""
    def answers() -> int:
        return len([m for m in sim.chat_history(desk.chat_id) if m.get("from", {}).get("is_bot")])

    before = answers()
    sim.send_command(user_id, "open", chat_id=desk.chat_id)
    await sim.wait_until(lambda: answers() > before, 10, "the desk's answer")


# --- who may call what ------------------------------------------------------------------------------

STAFF_CALLS: list[tuple[str, str, Any]] = [
    ("GET", "/api/persona", None),
    ("GET", "/api/persona/versions/1", None),
    ("GET", "/api/persona/versions/1/diff", None),
    ("POST", "/api/persona/versions", {"text": "You are a pirate.", "base_version": 1}),
    ("POST", "/api/persona/versions/1/restore", None),
]
ADMIN_CALLS: list[tuple[str, str, Any]] = [
    ("GET", "/api/admin/settings", None),
    ("PUT", "/api/admin/settings/hours", {"working_hours": "mon 09:00-10:00", "timezone": "UTC"}),
    ("PUT", "/api/admin/settings/ai", {"order": ["backup-model@default"]}),
    ("PUT", "/api/admin/settings/limits", {"daily_ai_quota": 1}),
    ("GET", "/api/admin/sites", None),
    ("POST", "/api/admin/sites", {"allowed_origins": ["https://evil.example"]}),
    ("PATCH", "/api/admin/sites/{site}", {"allowed_origins": ["https://evil.example"]}),
    ("POST", "/api/admin/sites/{site}/secret", {"overlap_hours": 1}),
    ("DELETE", "/api/admin/sites/{site}", None),
    ("GET", "/api/admin/staff", None),
    ("PUT", "/api/admin/staff/{mia}/role", {"role": "admin"}),
]


async def test_customers_and_managers_get_403_and_never_the_data(desk: Desk, sim: Simulator) -> None:
    async with app_client(desk.frontdesk, sim, desk.boss["id"]) as boss:
        await boss.post("/api/persona/versions", {"text": "You are the bakery's assistant. Secret recipe: rye."})
    ann = sim.create_user("Ann")
    async with app_client(desk.frontdesk, sim, desk.mia["id"]) as mia:
        await mia.get("/api/me")  # Mia has used the app: she is on the team
    mia_id = (await User.get(telegram_id=desk.mia["id"])).id
    site = await WidgetSite.get(public_key="demo")
    before = (await settings_row(desk), await Persona.all().count(), await WidgetSite.all().count(),
              (await User.get(id=mia_id)).role, await AuditLog.all().count())

    def calls(table: list[tuple[str, str, Any]]) -> list[tuple[str, str, Any]]:
        return [(method, path.format(site=site.id, mia=mia_id), body) for method, path, body in table]

    async def refused(client: AppClient, table: list[tuple[str, str, Any]], status: int) -> None:
        for method, path, body in calls(table):
            got, answer = await client.call(method, path, body)
            assert got == status, (method, path, got, answer)
            assert list(answer) == ["error"], (method, path)
            text = json.dumps(answer)
            for secret in ("rye", site.secret, "main-model", "backup-model", "test-key", "Mia"):
                assert secret not in text, (method, path)

    async with app_client(desk.frontdesk) as anonymous:
        await refused(anonymous, STAFF_CALLS + ADMIN_CALLS, 401)
    async with app_client(desk.frontdesk, sim, ann["id"]) as customer:
        await refused(customer, STAFF_CALLS + ADMIN_CALLS, 403)
    async with app_client(desk.frontdesk, sim, desk.mia["id"]) as manager:
        await refused(manager, ADMIN_CALLS, 403)
        for method, path, body in calls(STAFF_CALLS[:3]):
            assert (await manager.call(method, path, body))[0] == 200, path
    after = (await settings_row(desk), await Persona.all().count(), await WidgetSite.all().count(),
             (await User.get(id=mia_id)).role, await AuditLog.all().count())
    assert after == before  # nothing was written by any refused call

    # A browser session needs its CSRF token for admin changes too.
    link = await dashboard_link(sim, desk.boss["id"])
    async with app_client(desk.frontdesk) as browser:
        await sign_in(browser, desk.frontdesk.url + link.removeprefix("https://desk.example"))
        status, body = await browser.call("PUT", "/api/admin/settings/limits", {"daily_ai_quota": 1}, csrf=False)
        assert (status, body["error"]["code"]) == (403, "csrf")
        assert (await browser.call("PUT", "/api/admin/settings/limits", {"daily_ai_quota": 5}))[0] == 200
    assert (await settings_row(desk))["daily_ai_quota"] == 5


async def test_every_new_endpoint_is_in_the_openapi_document(desk: Desk) -> None:
    async with aiohttp.ClientSession() as session, session.get(desk.frontdesk.url + "/api/openapi.json") as response:
        document = await response.json()
    for method, path, _ in STAFF_CALLS + ADMIN_CALLS:
        path = path.replace("/1", "/{version}").replace("{site}", "{site_id}").replace("{mia}", "{user_id}")
        assert method.lower() in document["paths"][path], (method, path)
    assert "admins" in document["paths"]["/api/admin/settings"]["get"]["description"]
    assert "secret" in document["components"]["schemas"]["SiteOut"]["properties"]


# --- the persona ---------------------------------------------------------------------------------------


async def test_a_saved_persona_is_what_the_ai_is_told_from_the_next_answer(
        desk: Desk, sim: Simulator, ai: FakeAI) -> None:
    ann = sim.create_user("Ann")
    async with app_client(desk.frontdesk, sim, desk.mia["id"]) as mia:
        first = await mia.get("/api/persona")
        assert (first["text"], first["active"], first["versions"]) == (default_persona(), None, [])
        saved = await mia.post("/api/persona/versions", {"text": "  You are Pat, the bakery's assistant.\n"
                                                                 "Answer in one sentence.  ", "base_version": 0})
        assert (saved["version"], saved["active"], saved["author"]["name"]) == (1, True, "Mia")
        assert saved["text"] == "You are Pat, the bakery's assistant.\nAnswer in one sentence."
        await ask(sim, ai, ann, "Do you sell rye bread?")
        assert system_prompt(ai.requests[-1]).startswith("You are Pat, the bakery's assistant.")

        await mia.post("/api/persona/versions", {"text": "You are Sam.", "base_version": 1})
        await ask(sim, ai, ann, "And sourdough?")
        assert system_prompt(ai.requests[-1]).startswith("You are Sam.")
        overview = await mia.get("/api/persona")
        assert [(v["version"], v["active"]) for v in overview["versions"]] == [(2, True), (1, False)]
        assert overview["active"]["version"] == 2
        assert overview["versions"][1]["preview"] == "You are Pat, the bakery's assistant."
        assert (await mia.get("/api/persona/versions/1"))["text"].endswith("Answer in one sentence.")
    entries = await AuditLog.filter(action="persona_version").order_by("id").prefetch_related("actor")
    assert [(e.target, e.actor.first_name if e.actor else None, e.details["via"]) for e in entries] == \
        [("persona:1", "Mia", "app"), ("persona:2", "Mia", "app")]


async def test_a_versions_diff_is_structured_data_never_markup(desk: Desk, sim: Simulator) -> None:
    old = "You are Pat.\nBe kind.\nNever promise delivery dates.\nSign as Pat."
    new = "You are Pat.\nBe kind and brief.\nSign as Pat.\n<script>alert(1)</script>"
    async with app_client(desk.frontdesk, sim, desk.mia["id"]) as mia:
        await mia.post("/api/persona/versions", {"text": old})
        await mia.post("/api/persona/versions", {"text": new})
        first = await mia.get("/api/persona/versions/1/diff")
        assert first["previous"] is None  # version 1 is compared with the built-in default
        assert any(line["kind"] == "removed" for hunk in first["hunks"] for line in hunk)
        changes = await mia.get("/api/persona/versions/2/diff")
    assert (changes["version"], changes["previous"], changes["added"], changes["removed"]) == (2, 1, 2, 2)
    lines = [(line["kind"], line["text"], line["old"], line["new"]) for hunk in changes["hunks"] for line in hunk]
    assert lines == [
        ("same", "You are Pat.", 1, 1),
        ("removed", "Be kind.", 2, None),
        ("removed", "Never promise delivery dates.", 3, None),
        ("added", "Be kind and brief.", None, 2),
        ("same", "Sign as Pat.", 4, 3),
        ("added", "<script>alert(1)</script>", None, 4),
    ]
    changed_line = next(line for hunk in changes["hunks"] for line in hunk if line["text"] == "Be kind and brief.")
    assert [s["text"] for s in changed_line["segments"] if s["changed"]] == [" and brief"]
    assert "".join(s["text"] for s in changed_line["segments"]) == "Be kind and brief."


async def test_rollback_brings_an_old_text_back_as_a_new_version(desk: Desk, sim: Simulator, ai: FakeAI) -> None:
    async with app_client(desk.frontdesk, sim, desk.mia["id"]) as mia:
        await mia.post("/api/persona/versions", {"text": "You are Pat."})
        await mia.post("/api/persona/versions", {"text": "You are a pirate, arr."})
    async with app_client(desk.frontdesk, sim, desk.boss["id"]) as boss:
        restored = await boss.post("/api/persona/versions/1/restore")
        assert (restored["version"], restored["text"], restored["restored_from"], restored["active"]) == \
            (3, "You are Pat.", 1, True)
        assert restored["author"]["name"] == "Boss"
        status, body = await boss.call("POST", "/api/persona/versions/3/restore")
        assert (status, body["error"]["code"]) == (409, "unchanged")  # it is the active text already
        assert (await boss.call("POST", "/api/persona/versions/99/restore"))[0] == 404
        assert (await boss.call("GET", "/api/persona/versions/99/diff"))[0] == 404
        assert (await boss.call("GET", "/api/persona/versions/abc"))[0] == 404
    rows = await Persona.all().order_by("version")
    assert [(row.version, row.text, row.active) for row in rows] == [
        (1, "You are Pat.", False), (2, "You are a pirate, arr.", False), (3, "You are Pat.", True)]
    await ask(sim, ai, sim.create_user("Ann"), "Hello")
    assert system_prompt(ai.requests[-1]).startswith("You are Pat.")


async def test_bad_persona_changes_are_refused_in_the_callers_language(desk: Desk, sim: Simulator) -> None:
    ru = sim.create_user("Rita", language_code="ru")
    sim.set_member(desk.chat_id, ru["id"], "member")
    async with app_client(desk.frontdesk, sim, ru["id"]) as rita:
        await rita.post("/api/persona/versions", {"text": "Version one."})
        for body, status, code in (({"text": "   \n "}, 400, "empty"),
                                   ({"text": "x" * 20_001}, 400, "too_long"),
                                   ({"text": "Version one."}, 409, "unchanged"),
                                   ({"text": "Version two.", "base_version": 0}, 409, "stale"),
                                   ({"text": "Version two.", "html": True}, 400, "bad_request"),
                                   ({}, 400, "bad_request")):
            got, answer = await rita.call("POST", "/api/persona/versions", body)
            assert (got, answer["error"]["code"]) == (status, code), body
            assert any("а" <= char <= "я" for char in answer["error"]["message"]), answer  # in Russian
        _, answer = await rita.call("POST", "/api/persona/versions", {"text": "x" * 20_001})
        assert "20000" in answer["error"]["message"]
    assert await Persona.all().count() == 1


# --- working hours and the offline text ------------------------------------------------------------------


async def test_admins_set_hours_and_the_offline_text_customers_get_after_hours(desk: Desk, sim: Simulator) -> None:
    closed_day = DAYS[(datetime.now(UTC).weekday() + 2) % 7]  # not today: the team is away now
    async with app_client(desk.frontdesk, sim, desk.boss["id"]) as boss:
        settings = await boss.get("/api/admin/settings")
        assert settings["hours"]["always_open"] is True
        assert "{when}" in settings["hours"]["default_offline_text"]["ru"]
        assert "Asia/Tashkent" in settings["timezones"]
        changed = await boss.call("PUT", "/api/admin/settings/hours", {
            "working_hours": f"{closed_day} 09:00-18:00", "timezone": "Asia/Tashkent",
            "offline_text": {"en": "We're closed. Back on {when}: leave your question here!", "ru": "", "uz": ""}})
        assert changed[0] == 200, changed
        hours = changed[1]["hours"]
        assert (hours["working_hours"], hours["timezone"], hours["open_now"]) == \
            (f"{closed_day} 09:00-18:00", "Asia/Tashkent", False)
        assert hours["offline_text"] == {"en": "We're closed. Back on {when}: leave your question here!",
                                         "ru": "", "uz": ""}

        for body, code in (({"working_hours": "sometimes", "timezone": "UTC"}, "bad_hours"),
                           ({"working_hours": "mon 09:00-18:00", "timezone": "Mars/Olympus"}, "bad_timezone"),
                           ({"working_hours": "", "timezone": "UTC", "offline_text": {"en": "x" * 1001}},
                            "bad_request"),
                           ({"working_hours": "", "timezone": "UTC", "offline_text": {"fr": "Bonjour"}},
                            "bad_request")):
            status, answer = await boss.call("PUT", "/api/admin/settings/hours", body)
            assert (status, answer["error"]["code"]) == (400, code), body
        assert (await boss.get("/api/admin/settings"))["hours"] == hours  # nothing half-written

    ann = sim.create_user("Ann")
    sim.send_command(ann["id"], "human")
    [notice] = await sim.wait_for_messages(ann["id"], timeout=10)
    weekday = {"mon": "Monday", "tue": "Tuesday", "wed": "Wednesday", "thu": "Thursday", "fri": "Friday",
               "sat": "Saturday", "sun": "Sunday"}[closed_day]
    assert f"We're closed. Back on {weekday} 09:00 (Asia/Tashkent): leave your question here!" in notice["text"]
    # No Russian text was written: a Russian customer gets the translated default.
    rita = sim.create_user("Rita", language_code="ru")
    sim.send_command(rita["id"], "human")
    [notice] = await sim.wait_for_messages(rita["id"], timeout=10)
    assert "closed" not in notice["text"]
    assert "09:00" in notice["text"]
    [entry] = await AuditLog.filter(action="working_hours").prefetch_related("actor")
    assert entry.actor is not None
    assert entry.actor.first_name == "Boss"
    assert entry.details["timezone"] == "Asia/Tashkent"


# --- the AI's models -------------------------------------------------------------------------------------


async def test_admins_choose_the_model_and_the_next_answer_uses_it(desk: Desk, sim: Simulator, ai: FakeAI) -> None:
    ann = sim.create_user("Ann")
    async with app_client(desk.frontdesk, sim, desk.boss["id"]) as boss:
        status, raw = await boss.call("GET", "/api/admin/settings")
        models = raw["ai"]
        assert models["enabled"] is True
        assert [(r["key"], r["model"], r["provider"]) for r in models["routes"]] == [
            ("main-model@default", "main-model", "default"), ("backup-model@default", "backup-model", "default")]
        assert (models["order"], models["customized"]) == (["main-model@default", "backup-model@default"], False)
        for secret in ("test-key", ai.base_url, str(ai.port)):
            assert secret not in json.dumps(raw)  # the providers' keys and addresses stay in the environment

        chosen = await boss.call("PUT", "/api/admin/settings/ai", {"order": ["backup-model@default"]})
        assert chosen[0] == 200
        assert (chosen[1]["ai"]["order"], chosen[1]["ai"]["customized"]) == (["backup-model@default"], True)
        await ask(sim, ai, ann, "Hello")
        assert ai.requests[-1]["model"] == "backup-model"
        assert (await recorded_answer("Hello")).ai_meta["model"] == "backup-model"

        # The fallbacks' order is the admins' too: the first fails, the second answers.
        await boss.call("PUT", "/api/admin/settings/ai", {"order": ["backup-model@default", "main-model@default"]})
        ai.script.failing_models = {"backup-model": 500}
        await ask(sim, ai, ann, "Still there?")
        assert [r["model"] for r in ai.requests[-2:]] == ["backup-model", "main-model"]
        ai.script.failing_models = {}

        for order, code in ((["gpt-9@default"], "unknown_route"),
                            (["main-model@default", "main-model@default"], "duplicate_route")):
            status, body = await boss.call("PUT", "/api/admin/settings/ai", {"order": order})
            assert (status, body["error"]["code"]) == (400, code)
        reset = await boss.call("PUT", "/api/admin/settings/ai", {"order": []})
        assert (reset[1]["ai"]["order"], reset[1]["ai"]["customized"]) == (
            ["main-model@default", "backup-model@default"], False)
        await ask(sim, ai, ann, "Once more")
        assert ai.requests[-1]["model"] == "main-model"
    actions = [e.action for e in await AuditLog.filter(action="ai_models")]
    assert len(actions) == 3


async def test_without_an_ai_there_is_no_model_to_choose(database_url: str, sim: Simulator) -> None:
    async with manager_desk(database_url, sim, None) as desk, \
            app_client(desk.frontdesk, sim, desk.boss["id"]) as boss:
        models = (await boss.get("/api/admin/settings"))["ai"]
        assert (models["enabled"], models["routes"], models["order"]) == (False, [], [])
        status, body = await boss.call("PUT", "/api/admin/settings/ai", {"order": ["main-model@default"]})
        assert (status, body["error"]["code"]) == (409, "ai_off")


# --- limits ----------------------------------------------------------------------------------------------


async def test_a_lower_daily_quota_is_what_customers_hit(desk: Desk, sim: Simulator, ai: FakeAI) -> None:
    ann = sim.create_user("Ann")
    async with app_client(desk.frontdesk, sim, desk.boss["id"]) as boss:
        limits = (await boss.get("/api/admin/settings"))["limits"]
        assert limits["defaults"] == limits["effective"] == {"daily_ai_quota": 200, "burst": 5, "per_minute": 12.0}
        assert limits["overrides"] == {"daily_ai_quota": None, "burst": None, "per_minute": None}
        changed = (await boss.call("PUT", "/api/admin/settings/limits", {"daily_ai_quota": 1}))[1]["limits"]
        assert changed["effective"]["daily_ai_quota"] == 1
        await ask(sim, ai, ann, "First question")
        answered = len(ai.requests)
        second = await ask(sim, ai, ann, "Second question")
        assert "today's limit of AI answers" in second["text"]
        assert len(ai.requests) == answered
        # The conversation is with people now: it is theirs, and it has its topic in the manager group.
        assert (await Conversation.get(user__telegram_id=ann["id"])).mode == ConversationMode.HUMAN
        [topic] = await wait_for_topic(sim, desk.chat_id)
        assert "Ann" in topic.name

        for body in ({"daily_ai_quota": -1}, {"burst": 0}, {"per_minute": 0}, {"per_minute": 10_000},
                     {"daily_ai_quota": "lots"}):
            status, answer = await boss.call("PUT", "/api/admin/settings/limits", body)
            assert (status, answer["error"]["code"]) == (400, "bad_request"), body
        back = (await boss.call("PUT", "/api/admin/settings/limits", {}))[1]["limits"]
        assert back["effective"]["daily_ai_quota"] == 200
    assert "daily_ai_quota" not in await settings_row(desk)


async def test_a_lower_message_rate_slows_customers_down(desk: Desk, sim: Simulator, ai: FakeAI) -> None:
    ann = sim.create_user("Ann")
    async with app_client(desk.frontdesk, sim, desk.boss["id"]) as boss:
        await boss.call("PUT", "/api/admin/settings/limits", {"burst": 1, "per_minute": 0.5})
    sim.send_text(ann["id"], "one")
    sim.send_text(ann["id"], "two")
    await sim.wait_until(lambda: any("very quickly" in (m.get("text") or "") for m in sim.chat_history(ann["id"])),
                         10, "the slow-down notice")


# --- widget sites ------------------------------------------------------------------------------------------


async def widget_site(desk: Desk, key: str, origin: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(
            desk.frontdesk.url + "/widget/api/site", params={"site": key}, headers={"Origin": origin}) as response:
        return response.status, await response.json()


async def test_admins_add_edit_and_remove_widget_sites(desk: Desk, sim: Simulator) -> None:
    async with app_client(desk.frontdesk, sim, desk.boss["id"]) as boss:
        listed = (await boss.get("/api/admin/sites"))["sites"]
        assert [site["public_key"] for site in listed] == ["demo"]
        status, site = await boss.call("POST", "/api/admin/sites", {
            "allowed_origins": ["https://Shop.example/any/page"], "title": "Shop", "color": "#ff0000",
            "greeting": "Hi! Ask us anything."})
        assert status == 201, site
        assert site["allowed_origins"] == ["https://shop.example"]
        assert site["embed"] == f'<script src="https://desk.example/widget.js" data-site="{site["public_key"]}" ' \
                                f'async></script>'
        stored = await WidgetSite.get(public_key=site["public_key"])
        assert site["secret"] == stored.secret
        assert stored.token_key not in json.dumps(site)  # the visitor tokens' key never leaves the server
        shown = await widget_site(desk, site["public_key"], "https://shop.example")
        assert (shown[0], shown[1]["site"]["title"], shown[1]["site"]["greeting"]) == \
            (200, "Shop", "Hi! Ask us anything.")

        path = f"/api/admin/sites/{site['id']}"
        edited = await boss.call("PATCH", path, {"title": "Shop & Co", "color": "#00aa00",
                                                 "allowed_origins": ["https://new.example"]})
        assert edited[0] == 200
        assert (edited[1]["public_key"], edited[1]["secret"]) == (site["public_key"], site["secret"])
        shown = await widget_site(desk, site["public_key"], "https://new.example")
        assert (shown[1]["site"]["title"], shown[1]["site"]["color"]) == ("Shop & Co", "#00aa00")
        assert (await widget_site(desk, site["public_key"], "https://shop.example"))[0] == 403

        for body, code in (({"color": "red"}, "bad_color"),
                           ({"allowed_origins": ["ftp://files.example"]}, "bad_origin"),
                           ({"allowed_origins": []}, "bad_request"), ({"title": "x" * 129}, "bad_request"),
                           ({"title": "New", "text_color": "#zzzzzz"}, "bad_color")):
            status, answer = await boss.call("PATCH", path, body)
            assert (status, answer["error"]["code"]) == (400, code), body
        status, answer = await boss.call("POST", "/api/admin/sites", {"allowed_origins": ["not a url"]})
        assert (status, answer["error"]["code"]) == (400, "bad_origin")
        assert (await WidgetSite.get(id=site["id"])).title == "Shop & Co"  # nothing half-written

        other_bot = await Bot.create(telegram_id=42, username="other_bot")
        foreign = await WidgetSite.create(bot=other_bot, public_key="theirs", secret="s" * 64, token_key="t" * 64,
                                          allowed_origins=["https://theirs.example"])
        for method in ("PATCH", "DELETE"):
            status, _ = await boss.call(method, f"/api/admin/sites/{foreign.id}", {"title": "Mine"}
                                        if method == "PATCH" else None)
            assert status == 404
        assert "theirs" not in json.dumps(await boss.get("/api/admin/sites"))

        # A new identity secret: the old one verifies for the overlap; a wrong overlap changes nothing.
        for overlap in (-1, 721, "soon"):
            status, answer = await boss.call("POST", path + "/secret", {"overlap_hours": overlap})
            assert (status, answer["error"]["code"]) == (400, "bad_request"), overlap
        assert (await WidgetSite.get(id=site["id"])).secret == site["secret"]
        assert (await boss.call("POST", f"/api/admin/sites/{foreign.id}/secret", {}))[0] == 404
        status, rotated = await boss.call("POST", path + "/secret", {})  # the deployment's overlap: 24 hours
        assert status == 200
        assert rotated["secret"] != site["secret"]
        assert rotated["previous_secret_until"] is not None
        stored = await WidgetSite.get(id=site["id"])
        assert (stored.secret, stored.previous_secret) == (rotated["secret"], site["secret"])
        assert stored.previous_secret_until is not None
        assert timedelta(hours=23) < stored.previous_secret_until - datetime.now(UTC) <= timedelta(hours=24)
        status, at_once = await boss.call("POST", path + "/secret", {"overlap_hours": 0})
        assert (status, at_once["previous_secret_until"]) == (200, None)

        remaining = await boss.call("DELETE", path)
        assert [s["public_key"] for s in remaining[1]["sites"]] == ["demo"]
        assert (await widget_site(desk, site["public_key"], "https://new.example"))[0] == 404
    entries = await AuditLog.filter(action__startswith="site_").order_by("id").prefetch_related("actor")
    assert [(e.action, e.actor.first_name if e.actor else None) for e in entries] == [
        ("site_add", "Boss"), ("site_edit", "Boss"), ("site_rotate_secret", "Boss"), ("site_rotate_secret", "Boss"),
        ("site_remove", "Boss")]
    for secret in (site["secret"], rotated["secret"], at_once["secret"]):
        assert secret not in json.dumps([e.details for e in entries])


# --- the team ---------------------------------------------------------------------------------------------


async def test_an_admin_makes_a_manager_an_admin_and_back(desk: Desk, sim: Simulator) -> None:
    await use_the_desk(sim, desk, desk.mia["id"])
    ann = sim.create_user("Ann")
    async with app_client(desk.frontdesk, sim, ann["id"]) as customer:
        await customer.get("/api/me")
    ann_id = (await User.get(telegram_id=ann["id"])).id
    async with app_client(desk.frontdesk, sim, desk.boss["id"]) as boss, \
            app_client(desk.frontdesk, sim, desk.mia["id"]) as mia:
        team = (await boss.get("/api/admin/staff"))["members"]
        assert [(m["name"], m["role"], m["owner"]) for m in team] == \
            [("Boss", "admin", True), ("Mia", "manager", False)]
        mia_id = team[1]["id"]
        assert (await mia.call("GET", "/api/admin/settings"))[0] == 403

        promoted = await boss.call("PUT", f"/api/admin/staff/{mia_id}/role", {"role": "admin"})
        assert [(m["name"], m["role"]) for m in promoted[1]["members"]] == [("Boss", "admin"), ("Mia", "admin")]
        assert (await mia.get("/api/me"))["role"] == "admin"
        assert (await mia.call("GET", "/api/admin/settings"))[0] == 200

        # Using the desk keeps the role an admin granted; and the desk's admin commands are hers now.
        sim.send_command(desk.mia["id"], "hours", "mon-fri 09:00-18:00", chat_id=desk.chat_id)
        await sim.wait_until(lambda: any("Working hours are now" in (m.get("text") or "")
                                         for m in sim.chat_history(desk.chat_id)), 10, "hours set by Mia")
        assert (await User.get(id=mia_id)).role == "admin"
        assert (await mia.get("/api/me"))["role"] == "admin"

        status, body = await mia.call("PUT", f"/api/admin/staff/{team[0]['id']}/role", {"role": "manager"})
        assert (status, body["error"]["code"]) == (409, "owner")  # ADMIN_IDS stay admins
        assert (await mia.call("PUT", f"/api/admin/staff/{ann_id}/role", {"role": "admin"}))[0] == 404
        assert (await mia.call("PUT", f"/api/admin/staff/{mia_id}/role", {"role": "owner"}))[0] == 400

        await boss.call("PUT", f"/api/admin/staff/{mia_id}/role", {"role": "manager"})
        assert (await mia.get("/api/me"))["role"] == "manager"
        assert (await mia.call("GET", "/api/admin/settings"))[0] == 403
    assert (await User.get(id=ann_id)).role == "customer"
    actions = [e.action for e in await AuditLog.filter(target=f"user:{mia_id}").order_by("id")]
    assert actions == ["make_admin", "make_manager"]


async def test_someone_removed_from_admin_ids_is_no_admin_any_more(desk: Desk, sim: Simulator) -> None:
    await use_the_desk(sim, desk, desk.boss["id"])
    assert (await User.get(telegram_id=desk.boss["id"])).role == "admin"  # his row says so
    # The deployment restarts without him in ADMIN_IDS (he stays in the manager chat).
    runtime = desk.frontdesk.app[MINIAPP]
    assert runtime.staff is not None
    runtime.admin_ids = runtime.staff.admin_ids = frozenset()
    async with app_client(desk.frontdesk, sim, desk.boss["id"]) as boss:
        assert (await boss.get("/api/me"))["role"] == "manager"
        assert (await boss.call("GET", "/api/admin/settings"))[0] == 403
    await use_the_desk(sim, desk, desk.boss["id"])
    assert (await User.get(telegram_id=desk.boss["id"])).role == "manager"


async def test_staff_who_left_the_manager_chat_are_not_on_the_team(desk: Desk, sim: Simulator) -> None:
    async with app_client(desk.frontdesk, sim, desk.mia["id"]) as mia:
        await mia.get("/api/me")
    sim.set_member(desk.chat_id, desk.mia["id"], "left")
    runtime = desk.frontdesk.app[MINIAPP]
    assert runtime.staff is not None
    runtime.staff._statuses.clear()  # the membership cache's minute has passed
    async with app_client(desk.frontdesk, sim, desk.boss["id"]) as boss:
        team = (await boss.get("/api/admin/staff"))["members"]
    assert [m["name"] for m in team] == ["Boss"]


async def test_the_cli_still_adds_sites_and_personas(desk: Desk) -> None:
    """`python -m bot persona set` and `site add` go through the same functions, without an actor."""
    from services import persona, widget

    bot = await Bot.get(id=desk.frontdesk.app[MINIAPP].default_bot_id)
    await persona.set_persona(bot.id, "Same text")
    await persona.set_persona(bot.id, "Same text")  # the CLI may store the same text twice
    site = await widget.create_site(bot.id, ["https://cli.example"], title="CLI")
    assert site.allowed_origins == ["https://cli.example"]
    assert await Persona.all().count() == 2
    assert not await AuditLog.filter(action="site_add").exists()
