"""The Mini App's API through the real server: sign-in, who sees what, the inbox, and the desk's actions.

Customers and staff are tgsim users; their initData is signed by tgsim with the bot's token, as
Telegram signs it. Actions taken here must show in the Telegram topic and the customer's chat.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from tgsim import Simulator

from miniapp.api import ERRORS
from miniapp.auth import MINIAPP
from models import AuditLog, Bot, Conversation, ConversationStatus, LoginLink, Message, User, WebSession
from tests.conftest import outbox_idle, updates_handled
from tests.desk_helpers import Desk, in_topic, manager_desk, topics, wait_for_topic, wait_in_topic
from tests.fake_ai import FakeAI
from tests.miniapp_helpers import (
    BACKGROUND_QUERIES,
    HIDDEN_FIELD,
    app_client,
    dashboard_link,
    login_form,
    sign_in,
    statements_sent,
)


@pytest.fixture
async def desk(database_url: str, sim: Simulator, ai: FakeAI) -> Any:
    async with manager_desk(database_url, sim, ai, PUBLIC_BASE_URL="https://desk.example") as running:
        yield running


async def customer_with_answer(sim: Simulator, name: str, text: str = "Hello") -> dict[str, Any]:
    customer: dict[str, Any] = sim.create_user(name, username=name.lower())
    sim.send_text(customer["id"], text)
    await sim.wait_for_messages(customer["id"])
    return customer


async def handed_off(sim: Simulator, desk: Desk, name: str) -> tuple[dict[str, Any], Any]:
    customer = sim.create_user(name)
    before = len(topics(sim, desk.chat_id))
    sim.send_command(customer["id"], "human")
    await sim.wait_for_messages(customer["id"])
    opened = await wait_for_topic(sim, desk.chat_id, before + 1)
    await wait_in_topic(sim, desk.chat_id, opened[-1].thread_id, 1)
    return customer, opened[-1]


# --- who is calling ----------------------------------------------------------------------------------


async def test_me_tells_customers_managers_and_admins_apart(desk: Desk, sim: Simulator) -> None:
    ann = sim.create_user("Ann", last_name="Lee", username="ann", language_code="ru")
    async with app_client(desk.frontdesk, sim, ann["id"]) as client:
        me = await client.get("/api/me")
    assert (me["name"], me["role"], me["locale"], me["telegram_id"]) == ("Ann Lee", "customer", "ru", ann["id"])
    assert me["csrf_token"] is None  # Telegram's signed header needs no CSRF token
    async with app_client(desk.frontdesk, sim, desk.mia["id"]) as client:
        assert (await client.get("/api/me"))["role"] == "manager"
    async with app_client(desk.frontdesk, sim, desk.boss["id"]) as client:
        assert (await client.get("/api/me"))["role"] == "admin"

    # A manager who leaves the manager chat is a customer again (after the membership cache's minute).
    sim.set_member(desk.chat_id, desk.mia["id"], "left")
    runtime = desk.frontdesk.app[MINIAPP]
    assert runtime.staff is not None
    runtime.staff._statuses.clear()  # the minute has passed
    async with app_client(desk.frontdesk, sim, desk.mia["id"]) as client:
        assert (await client.get("/api/me"))["role"] == "customer"
        status, _error = await client.call("GET", "/api/conversations/1/messages")
        assert status in (403, 404)


def signed_init_data(bot_token: str, values: dict[str, str]) -> str:
    """initData signed as Telegram signs it, with exactly these fields (tgsim's always has a user)."""
    check = "\n".join(f"{key}={values[key]}" for key in sorted(values))
    secret = hmac.new(b"WebAppData", bot_token.encode(), hashlib.sha256).digest()
    return urlencode({**values, "hash": hmac.new(secret, check.encode(), hashlib.sha256).hexdigest()})


@pytest.mark.parametrize("problem", ["missing", "forged", "expired", "tampered", "no_user", "future"])
async def test_bad_init_data_gets_401_and_a_translated_json_error(desk: Desk, sim: Simulator, problem: str) -> None:
    ann = sim.create_user("Ann", language_code="ru")
    init_data = sim.init_data(ann["id"])
    headers = {}
    if problem == "forged":
        headers["Authorization"] = "tma " + init_data[:-4] + "0000"
    elif problem == "expired":
        headers["Authorization"] = "tma " + sim.init_data(ann["id"], auth_date=int(time.time()) - 86400 - 60)
    elif problem == "tampered":  # someone else's id with Ann's hash
        headers["Authorization"] = "tma " + init_data.replace(str(ann["id"]), str(desk.boss["id"]))
    elif problem == "no_user":  # correctly signed, but about no one
        headers["Authorization"] = "tma " + signed_init_data(
            desk.frontdesk.settings.bot_token, {"auth_date": str(int(time.time())), "query_id": "AAE1"})
    elif problem == "future":  # signed, dated ten minutes ahead (five are allowed for clock skew)
        headers["Authorization"] = "tma " + sim.init_data(ann["id"], auth_date=int(time.time()) + 600)
    async with aiohttp.ClientSession() as session, session.get(
            desk.frontdesk.url + "/api/me", headers={**headers, "Accept-Language": "ru"}) as response:
        body = await response.json()
    assert response.status == 401
    assert body["error"]["code"] == "unauthorized"
    assert "бот" in body["error"]["message"]  # in the browser's language: the caller is unknown
    assert not await User.exists(telegram_id=desk.boss["id"], role="customer")


async def test_the_allowed_age_of_init_data_is_a_setting(database_url: str, sim: Simulator, ai: FakeAI) -> None:
    async with manager_desk(database_url, sim, ai, MINIAPP_AUTH_MAX_AGE="120") as desk:
        ann = sim.create_user("Ann")
        old = sim.init_data(ann["id"], auth_date=int(time.time()) - 300)
        fresh = sim.init_data(ann["id"], auth_date=int(time.time()) - 60)
        async with app_client(desk.frontdesk) as client:
            client.init_data = old
            assert (await client.call("GET", "/api/me"))[0] == 401
            client.init_data = fresh
            assert (await client.call("GET", "/api/me"))[0] == 200


# --- who sees what -------------------------------------------------------------------------------------


async def test_a_customer_sees_only_their_own_conversations(desk: Desk, sim: Simulator) -> None:
    ann = await customer_with_answer(sim, "Ann", "Ann's question")
    bob = await customer_with_answer(sim, "Bob", "Bob's secret")
    bobs = await Conversation.get(user__telegram_id=bob["id"])
    async with app_client(desk.frontdesk, sim, ann["id"]) as client:
        page = await client.get("/api/conversations")
        assert [row["customer"]["name"] for row in page["conversations"]] == ["Ann"]
        assert page["conversations"][0]["preview"]["author"] == "ai"
        assert "assignee" not in page["conversations"][0] or page["conversations"][0]["assignee"] is None
        # Staff's views and search do not widen a customer's list.
        for query in ("?view=all", "?q=Bob", f"?q={bobs.id}"):
            rows = (await client.get("/api/conversations" + query))["conversations"]
            assert all(row["customer"]["name"] == "Ann" for row in rows)
        for path in (f"/api/conversations/{bobs.id}", f"/api/conversations/{bobs.id}/messages"):
            status, body = await client.call("GET", path)
            assert (status, body["error"]["code"]) == (404, "not_found")
            assert "secret" not in json.dumps(body)
        for path, body in ((f"/api/conversations/{bobs.id}/reply", {"text": "hi"}),
                           (f"/api/conversations/{bobs.id}/notes", {"text": "hi"}),
                           (f"/api/conversations/{bobs.id}/actions", {"action": "close"})):
            status, answer = await client.call("POST", path, body)
            assert (status, answer["error"]["code"]) == (403, "forbidden")
        anns = page["conversations"][0]["id"]
        status, answer = await client.call("POST", f"/api/conversations/{anns}/actions", {"action": "take"})
        assert status == 403  # not even on their own conversation
    assert await Message.filter(conversation_id=bobs.id).count() == 2
    assert (await Conversation.get(id=bobs.id)).status != ConversationStatus.CLOSED


async def test_staff_see_notes_and_ai_metadata_customers_do_not(desk: Desk, sim: Simulator, ai: FakeAI) -> None:
    ai.script.reply = "We open at **nine**."
    ann = await customer_with_answer(sim, "Ann", "When do you open?")
    conversation = await Conversation.get(user__telegram_id=ann["id"])
    async with app_client(desk.frontdesk, sim, desk.mia["id"]) as staff:
        await staff.post(f"/api/conversations/{conversation.id}/notes", {"text": "VIP <b>customer</b>"})
        messages = (await staff.get(f"/api/conversations/{conversation.id}/messages"))["messages"]
        assert [m["author"] for m in messages] == ["customer", "ai", "note"]
        assert messages[1]["ai"]["model"] == "main-model"
        assert messages[1]["ai"]["tokens_out"] > 0
        assert messages[1]["html"] == "We open at <b>nine</b>."
        assert messages[2]["html"] == "VIP &lt;b&gt;customer&lt;/b&gt;"  # a note is text, never markup
        assert messages[2]["author_name"] == "Mia"
    async with app_client(desk.frontdesk, sim, ann["id"]) as customer:
        messages = (await customer.get(f"/api/conversations/{conversation.id}/messages"))["messages"]
        assert [m["author"] for m in messages] == ["customer", "ai"]
        assert all(m["ai"] is None and m["author_name"] is None for m in messages)
    await outbox_idle(sim)  # whatever the note caused has gone out
    assert not any("VIP" in (m.get("text") or "") for m in sim.chat_history(ann["id"]))


# --- the inbox ---------------------------------------------------------------------------------------


async def test_inbox_views_search_and_cursor_paging(desk: Desk, sim: Simulator) -> None:
    for name in ("Ann", "Bob", "Cid", "Dee", "Eve"):
        await customer_with_answer(sim, name)
    waiting, _ = await handed_off(sim, desk, "Fay")
    async with app_client(desk.frontdesk, sim, desk.mia["id"]) as staff:
        seen: list[str] = []
        cursor = None
        while True:
            query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
            page = await staff.get("/api/conversations" + query)
            seen += [row["customer"]["name"] for row in page["conversations"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == ["Fay", "Eve", "Dee", "Cid", "Bob", "Ann"]  # newest activity first, each once
        assert [r["customer"]["name"] for r in (await staff.get("/api/conversations?view=waiting"))["conversations"]] \
            == ["Fay"]
        assert (await staff.get("/api/conversations?view=mine"))["conversations"] == []
        ai_names = [r["customer"]["name"] for r in (await staff.get("/api/conversations?view=ai"))["conversations"]]
        assert ai_names == ["Eve", "Dee", "Cid", "Bob", "Ann"]
        assert [r["customer"]["name"] for r in (await staff.get("/api/conversations?q=ci"))["conversations"]] == ["Cid"]
        assert (await staff.get("/api/conversations?channel=widget"))["conversations"] == []
        fay = (await staff.get("/api/conversations?view=waiting"))["conversations"][0]
        assert fay["state"] == "waiting"
        assert fay["handoff_reason"] == "asked_for_person"
        await staff.post(f"/api/conversations/{fay['id']}/actions", {"action": "take"})
        mine = (await staff.get("/api/conversations?view=mine"))["conversations"]
        assert [(r["customer"]["name"], r["state"], r["assignee"]["name"]) for r in mine] == \
            [("Fay", "assigned", "Mia")]

        status, body = await staff.call("GET", "/api/conversations?cursor=not-a-cursor")
        assert (status, body["error"]["code"]) == (400, "bad_cursor")
        status, body = await staff.call("GET", "/api/conversations?view=everything")
        assert (status, body["error"]["code"]) == (400, "bad_request")
        assert body["error"]["details"][0]["field"] == "view"
    assert waiting["id"]


async def test_inbox_and_transcript_pages_cost_the_same_queries_whatever_their_size(
        desk: Desk, sim: Simulator) -> None:
    """No N+1: counted with Tortoise's own query log, for a page of 2 rows and one of 8."""
    for name in ("Ann", "Bob", "Cid", "Dee", "Eve", "Fay", "Gus", "Hal"):
        await customer_with_answer(sim, name, "one")
    ann = await Conversation.get(user__first_name="Ann")
    for text in ("two", "three", "four"):
        sim.send_text(int((await User.get(first_name="Ann")).telegram_id or 0), text)
    await sim.wait_for_messages(int((await User.get(first_name="Ann")).telegram_id or 0), 4, timeout=10)
    await outbox_idle(sim)  # the last answer's bookkeeping is done: its queries are not the pages'

    counted: list[str] = []
    async with app_client(desk.frontdesk, sim, desk.mia["id"]) as staff:
        await staff.get("/api/me")  # the staff row and the membership cache, outside the counts

        async def queries(path: str) -> int:
            nonlocal counted
            with statements_sent() as counted:
                await staff.get(path)
            return len([line for line in counted if not any(word in line for word in BACKGROUND_QUERIES)
                        and line.lstrip().upper().startswith(("SELECT", "INSERT", "UPDATE", "DELETE"))])

        small, large = await queries("/api/conversations?limit=2"), await queries("/api/conversations?limit=8")
        assert small == large, counted
        assert small <= 6, counted
        small = await queries(f"/api/conversations/{ann.id}/messages?limit=2")
        large = await queries(f"/api/conversations/{ann.id}/messages?limit=8")
        assert small == large, counted
        assert small <= 6, counted


# --- acting from the app -------------------------------------------------------------------------------


async def test_a_reply_from_the_app_reaches_the_customer_and_the_topic(desk: Desk, sim: Simulator) -> None:
    ann, topic = await handed_off(sim, desk, "Ann")
    conversation = await Conversation.get(user__telegram_id=ann["id"])
    async with app_client(desk.frontdesk, sim, desk.mia["id"]) as staff:
        reply = await staff.post(f"/api/conversations/{conversation.id}/reply", {"text": "Hi Ann, <Mia> here & ready"})
        assert reply["author"] == "manager"
        assert reply["text"] == "Hi Ann, <Mia> here & ready"
        await sim.wait_until(lambda: any("<Mia> here" in (m.get("text") or "") for m in sim.chat_history(ann["id"])),
                             10, "the reply in the customer's chat")
        # Writing took the conversation: the customer heard who joined, before the reply.
        texts = [m.get("text") or "" for m in sim.chat_history(ann["id"]) if m["from"]["is_bot"]]
        assert texts[-2] == "Mia from our team has joined the conversation."
        await sim.wait_until(lambda: any("Hi Ann, <Mia> here & ready" in (m.get("text") or "")
                                         for m in in_topic(sim, desk.chat_id, topic.thread_id)), 10, "topic copy")
        row = await staff.get(f"/api/conversations/{conversation.id}")
        assert (row["state"], row["assignee"]["name"]) == ("assigned", "Mia")

        # The customer's answer comes back to the app's transcript and to the topic.
        sim.send_text(ann["id"], "Thanks!")
        await sim.wait_until(lambda: any(m.get("text") == "Thanks!" for m in in_topic(sim, desk.chat_id,
                                                                                    topic.thread_id)), 10, "copy")
        messages = (await staff.get(f"/api/conversations/{conversation.id}/messages"))["messages"]
        assert messages[-1]["text"] == "Thanks!"

        status, body = await staff.call("POST", f"/api/conversations/{conversation.id}/reply", {"text": ""})
        assert (status, body["error"]["code"]) == (400, "bad_request")
        status, body = await staff.call("POST", f"/api/conversations/{conversation.id}/reply", {"text": "x" * 4001})
        assert status == 400
    [entry] = await AuditLog.filter(action="reply")
    assert entry.details == {"via": "app"}


async def test_actions_in_the_app_and_in_the_topic_stay_in_sync(desk: Desk, sim: Simulator) -> None:
    ann, topic = await handed_off(sim, desk, "Ann")
    conversation = await Conversation.get(user__telegram_id=ann["id"])
    base = f"/api/conversations/{conversation.id}"
    async with app_client(desk.frontdesk, sim, desk.mia["id"]) as staff:
        taken = await staff.post(base + "/actions", {"action": "take"})
        assert taken["state"] == "assigned"
        status, body = await staff.call("POST", base + "/actions", {"action": "take"})
        assert (status, body["error"]["code"]) == (409, "conflict")
        chat = sim.world.find_chat(desk.chat_id)
        await sim.wait_until(lambda: chat.topics[topic.thread_id].name.startswith("💬"), 10, "topic renamed")

        # In the topic, /ai gives it back: the app shows it.
        sim.send_command(desk.mia["id"], "ai", chat_id=desk.chat_id, thread_id=topic.thread_id)
        await sim.wait_until(lambda: "assistant again" in (sim.chat_history(ann["id"])[-1].get("text") or ""), 10,
                             "back-to-AI notice")
        assert (await staff.get(base))["state"] == "ai"

        closed = await staff.post(base + "/actions", {"action": "close"})
        assert closed["state"] == "closed"
        await sim.wait_until(lambda: chat.topics[topic.thread_id].name.startswith("✅"), 10, "topic closed")
        await sim.wait_until(lambda: "rate" in (sim.chat_history(ann["id"])[-1].get("text") or ""), 10, "rating")

        banned = await staff.post(base + "/actions", {"action": "ban"})
        assert banned["banned"] is True
        # Banned: Ann's next message is taken by the webhook and dropped; nothing is stored or answered.
        sim.send_text(ann["id"], "Hello after the ban")
        await outbox_idle(sim)
        assert not await Message.exists(text="Hello after the ban")
        assert "Hello after the ban" not in json.dumps(sim.chat_history(desk.chat_id))
        assert (await staff.post(base + "/actions", {"action": "unban"}))["banned"] is False
        sim.send_text(ann["id"], "Hello after the unban")
        await updates_handled(sim)
        assert await Message.exists(text="Hello after the unban")  # heard again
    actions = [entry.action for entry in await AuditLog.filter(target=str(conversation.uuid)).order_by("id")]
    assert actions[:3] == ["take", "return_to_ai", "close"]


async def test_a_customer_who_prefers_no_rating_requests_gets_none(desk: Desk, sim: Simulator) -> None:
    ann, topic = await handed_off(sim, desk, "Ann")
    conversation = await Conversation.get(user__telegram_id=ann["id"])
    async with app_client(desk.frontdesk, sim, ann["id"]) as customer:
        me = await customer.call("PATCH", "/api/me", {"rating_requests": False, "language": "uz"})
        assert me[0] == 200
        assert me[1]["preferences"] == {"silent": False, "rating_requests": False}
        assert me[1]["locale"] == "uz"
        status, body = await customer.call("PATCH", "/api/me", {"language": "fr"})
        assert (status, body["error"]["code"]) == (400, "bad_request")
        assert body["error"]["message"] not in ("", ERRORS["bad_request"])  # in Uzbek now
    async with app_client(desk.frontdesk, sim, desk.mia["id"]) as staff:
        await staff.post(f"/api/conversations/{conversation.id}/actions", {"action": "close"})
    # Anchored on what comes after a rating request would have: the close reached the topic and every
    # job for Ann's chat has run.
    await sim.wait_until(lambda: topics(sim, desk.chat_id)[topic.thread_id].name.startswith("✅"), 10, "topic closed")
    await outbox_idle(sim)
    # No rating buttons (the request would be in Uzbek now, so its text is not what to look for).
    assert '"rate:' not in json.dumps([m.get("reply_markup") for m in sim.chat_history(ann["id"])])


# --- the browser session ---------------------------------------------------------------------------


async def test_a_one_time_link_opens_a_session_once(desk: Desk, sim: Simulator) -> None:
    link = await dashboard_link(sim, desk.mia["id"])
    assert link.startswith("https://desk.example/app/login?token=")
    path_link = desk.frontdesk.url + link.removeprefix("https://desk.example")
    async with app_client(desk.frontdesk) as browser:
        assert await sign_in(browser, path_link) == 303
        me = await browser.get("/api/me")
        assert (me["name"], me["role"]) == ("Mia", "manager")
        assert me["csrf_token"]
        # Used: a second browser cannot use it again.
        async with app_client(desk.frontdesk) as other:
            assert await sign_in(other, path_link) == 403
            assert (await other.call("GET", "/api/me"))[0] == 401


async def _login(desk: Desk, sim: Simulator, headers: dict[str, str] | None = None) -> tuple[
        aiohttp.ClientSession, dict[str, bool]]:
    """Mia signs in with a /dashboard link: the session (its cookies in its jar), and whether each cookie is Secure."""
    link = await dashboard_link(sim, desk.mia["id"])
    token = link.rsplit("token=", 1)[1]
    url = desk.frontdesk.url  # as a browser at https://desk.example, whose proxy passes it on to this address
    jar = aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=[url, url.replace("http", "ws")])
    session = aiohttp.ClientSession(cookie_jar=jar)
    async with session.get(desk.frontdesk.url + "/app/login", params={"token": token}) as page:
        fields = dict(HIDDEN_FIELD.findall(await page.text()))  # the form's fields, and its cookie in the jar
    async with session.post(desk.frontdesk.url + "/app/login", data=fields,
                            headers={"Sec-Fetch-Site": "same-origin", **(headers or {})},  # as a browser says
                            allow_redirects=False) as response:
        assert response.status == 303
        return session, {name: bool(morsel["secure"]) for name, morsel in response.cookies.items()}


async def _live_role(session: aiohttp.ClientSession, desk: Desk, origin: str) -> str | int:
    """Open the live socket from a page at `origin`, with no sign-in frame: the role it greets, or its close code."""
    url = desk.frontdesk.url.replace("http", "ws") + "/api/live"
    async with session.ws_connect(url, headers={"Origin": origin}) as socket:
        await socket.send_str("not a sign-in frame")  # a socket the cookie did not sign in is closed at once
        frame = await socket.receive(timeout=5)
        return json.loads(frame.data)["role"] if frame.type == aiohttp.WSMsgType.TEXT else int(frame.data)


async def test_behind_a_tls_proxy_the_session_cookie_is_secure_and_live_updates_take_it(
        desk: Desk, sim: Simulator) -> None:
    """PUBLIC_BASE_URL is https; requests reach the server as plain http without X-Forwarded-Proto (as from the
    compose file's proxy behind an outer one that ends TLS)."""
    session, secure = await _login(desk, sim)
    async with session:
        assert secure == {"frontdesk_session": True, "frontdesk_csrf": True, "frontdesk_login": True}
        assert await _live_role(session, desk, "https://desk.example") == "manager"
        # Only our own pages may use the cookie: not another site, nor our host over plain http.
        assert await _live_role(session, desk, "https://evil.example") == 4401
        assert await _live_role(session, desk, "http://desk.example") == 4401
        # Signing out clears the cookies the way they were set.
        async with session.get(desk.frontdesk.url + "/api/me") as me:
            csrf = (await me.json())["csrf_token"]
        async with session.post(desk.frontdesk.url + "/app/logout", headers={"X-CSRF-Token": csrf},
                                allow_redirects=False) as out:
            assert out.status == 303
            assert {name: bool(morsel["secure"]) for name, morsel in out.cookies.items()} == {
                "frontdesk_session": True, "frontdesk_csrf": True}


async def test_in_local_development_the_session_cookie_is_not_secure(
        database_url: str, sim: Simulator, ai: FakeAI) -> None:
    async with manager_desk(database_url, sim, ai) as desk:  # no PUBLIC_BASE_URL: http://127.0.0.1:PORT
        session, secure = await _login(desk, sim, headers={"X-Forwarded-Proto": "https"})  # a header proves nothing
        async with session:
            assert secure == {"frontdesk_session": False, "frontdesk_csrf": False, "frontdesk_login": False}
            assert await _live_role(session, desk, desk.frontdesk.url) == "manager"
            assert await _live_role(session, desk, "https://evil.example") == 4401


async def test_a_login_post_not_from_the_login_page_opens_no_session_and_spends_no_link(
        desk: Desk, sim: Simulator) -> None:
    """Login CSRF: another site's page must not sign a visitor's browser in to an account of its choosing
    (an attacker's own link, posted from a hidden auto-submitting form)."""
    link = await dashboard_link(sim, desk.mia["id"])  # the attacker's own link
    path_link = desk.frontdesk.url + link.removeprefix("https://desk.example")
    token = link.rsplit("token=", 1)[1]
    url = desk.frontdesk.url + "/app/login"
    async with app_client(desk.frontdesk) as attacker:
        attackers_page = await login_form(attacker, path_link)  # a valid pair, for the attacker's own browser
    async with app_client(desk.frontdesk) as victim:
        tries: list[tuple[dict[str, str], dict[str, str]]] = [
            ({"token": token}, {}),  # a form on another site: no page token at all
            (attackers_page, {}),  # another browser's page token: not this browser's cookie
        ]
        victims_page = await login_form(victim, path_link)  # the victim's browser has a login cookie now
        tries += [({**victims_page, "csrf": "guess"}, {}),
                  (victims_page, {"Origin": "https://evil.example"}),  # the browser names the sending page
                  (victims_page, {"Sec-Fetch-Site": "cross-site"}),
                  (victims_page, {"Sec-Fetch-Site": "same-site", "Origin": "null"})]
        for fields, headers in tries:
            async with victim.session.post(url, data=fields, headers=headers, allow_redirects=False) as response:
                page = await response.text()
                assert (response.status, "frontdesk_session" in response.cookies) == (403, False), (fields, headers)
                assert "could not be confirmed as coming from this page" in page
                assert 'name="token"' not in page  # no button to press on the attacker's behalf
        assert (await victim.call("GET", "/api/me"))[0] == 401
    assert not await WebSession.exists()
    async with app_client(desk.frontdesk) as browser:  # the link is still good for its owner
        assert await sign_in(browser, path_link) == 303
        assert (await browser.get("/api/me"))["name"] == "Mia"


async def test_a_link_expires_after_five_minutes(desk: Desk, sim: Simulator) -> None:
    before = datetime.now(UTC)
    link = await dashboard_link(sim, desk.mia["id"])
    [stored] = await LoginLink.all()
    # Valid for five minutes from when it was made, not longer.
    assert before + timedelta(minutes=5) <= stored.expires_at <= datetime.now(UTC) + timedelta(minutes=5)
    await LoginLink.all().update(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    async with app_client(desk.frontdesk) as browser:
        assert await sign_in(browser, desk.frontdesk.url + link.removeprefix("https://desk.example")) == 403


async def test_customers_get_no_dashboard_link(desk: Desk, sim: Simulator) -> None:
    ann = sim.create_user("Ann")
    sim.send_command(ann["id"], "dashboard")
    [answer] = await sim.wait_for_messages(ann["id"])
    assert answer["text"] == "The dashboard is for the business's team."
    assert not await LoginLink.exists()


async def test_session_changes_need_the_csrf_token(desk: Desk, sim: Simulator) -> None:
    ann, _ = await handed_off(sim, desk, "Ann")
    conversation = await Conversation.get(user__telegram_id=ann["id"])
    link = await dashboard_link(sim, desk.mia["id"])
    async with app_client(desk.frontdesk) as browser:
        await sign_in(browser, desk.frontdesk.url + link.removeprefix("https://desk.example"))
        path = f"/api/conversations/{conversation.id}/actions"
        status, body = await browser.call("POST", path, {"action": "take"}, csrf=False)
        assert (status, body["error"]["code"]) == (403, "csrf")
        status, body = await browser.call("POST", path, {"action": "take"}, headers={"X-CSRF-Token": "guess"},
                                          csrf=False)
        assert status == 403
        assert (await Conversation.get(id=conversation.id)).status == ConversationStatus.WAITING
        assert (await browser.post(path, {"action": "take"}))["state"] == "assigned"  # with the token
        # Reading needs none.
        assert (await browser.get("/api/conversations"))["conversations"]


# --- the customer's data -------------------------------------------------------------------------------


async def test_export_and_delete_my_data_in_the_app(desk: Desk, sim: Simulator) -> None:
    ann = await customer_with_answer(sim, "Ann", "My order number is 4411")
    bob = await customer_with_answer(sim, "Bob", "Bob's question")
    async with app_client(desk.frontdesk, sim, ann["id"]) as customer:
        status, data = await customer.call("GET", "/api/me/data")
        assert status == 200
        exported = data if isinstance(data, dict) else json.loads(data)
        assert exported["person"]["first_name"] == "Ann"
        [conversation] = exported["conversations"]
        assert next(m["text"] for m in conversation["messages"]) == "My order number is 4411"
        assert "Bob" not in json.dumps(exported)

        status, body = await customer.call("DELETE", "/api/me/data", {})
        assert (status, body["error"]["code"]) == (400, "bad_request")  # no confirmation, nothing deleted
        assert await User.exists(telegram_id=ann["id"])
        status, body = await customer.call("DELETE", "/api/me/data", {"confirm": True})
        assert status == 200
        assert body["conversations"] == 1
        assert body["messages"] == 2
    assert not await User.exists(telegram_id=ann["id"])
    assert not await Message.filter(text__contains="4411").exists()
    assert await Message.filter(text="Bob's question").exists()
    entry = await AuditLog.get(action="delete_personal_data")
    assert entry.details["via"] == "app"
    assert "Ann" not in json.dumps(entry.details)
    assert bob["id"]


async def test_mydata_and_deletemydata_in_the_bot(desk: Desk, sim: Simulator) -> None:
    ann = await customer_with_answer(sim, "Ann", "My order number is 4411")
    sim.send_document(ann["id"], file_name="receipt.txt", content=b"Order 4411: one latte")
    await sim.wait_for_messages(ann["id"], 2)  # its answer
    sim.send_command(ann["id"], "mydata")
    await sim.wait_until(lambda: "document" in sim.chat_history(ann["id"])[-1], 10, "the document")
    document = sim.chat_history(ann["id"])[-1]["document"]
    assert document["file_name"].endswith(".json")
    stored = sim.world.files[document["file_id"]]
    assert stored.data is not None
    assert b"4411" in stored.data
    export = json.loads(stored.data)
    assert export["person"]["first_name"] == "Ann"
    sent = [a for c in export["conversations"] for m in c["messages"] for a in m["attachments"]]
    assert sent == [{"type": "document", "name": "receipt.txt"}]  # what she sent, by its name

    sim.send_command(ann["id"], "deletemydata")
    await sim.wait_until(lambda: "reply_markup" in sim.chat_history(ann["id"])[-1], 10, "the confirmation")
    question = sim.chat_history(ann["id"])[-1]
    [[yes], [no]] = question["reply_markup"]["inline_keyboard"]
    assert await User.exists(telegram_id=ann["id"])
    sim.press_button(ann["id"], ann["id"], question["message_id"], data=yes["callback_data"])
    await sim.wait_until(lambda: sim.chat_history(ann["id"])[-1].get("text", "").startswith("Done"), 10, "deleted")
    assert not await User.exists(telegram_id=ann["id"])
    assert not await Message.filter(text__contains="4411").exists()
    [entry] = await AuditLog.filter(action="delete_personal_data")
    assert entry.details["via"] == "bot"
    assert no["text"] == "Cancel"


# --- the rest of the surface ---------------------------------------------------------------------------


async def test_openapi_describes_the_stable_paths(desk: Desk) -> None:
    async with aiohttp.ClientSession() as session, session.get(desk.frontdesk.url + "/api/openapi.json") as response:
        document = await response.json()
    assert document["openapi"].startswith("3.")
    for path in ("/api/me", "/api/conversations", "/api/conversations/{conversation_id}/messages"):
        assert "get" in document["paths"][path]
    schemas = document["components"]["schemas"]
    assert {"id", "state", "channel", "customer", "last_message_at"} <= set(schemas["ConversationOut"]["properties"])
    assert {"id", "author", "text", "created_at"} <= set(schemas["MessageOut"]["properties"])


async def test_bad_bodies_and_unknown_paths_are_json_errors(desk: Desk, sim: Simulator) -> None:
    async with app_client(desk.frontdesk, sim, desk.mia["id"]) as staff:
        async with staff.session.post(staff.base + "/api/conversations/1/reply", data=b"{not json",
                                      headers=staff.headers({"Content-Type": "application/json"})) as response:
            assert response.status == 400
            assert (await response.json())["error"]["code"] == "bad_json"
        status, body = await staff.call("POST", "/api/conversations/1/reply", {"text": "hi", "extra": 1})
        assert (status, body["error"]["code"]) == (400, "bad_request")
        status, body = await staff.call("GET", "/api/nothing-here")
        assert (status, body["error"]["code"]) == (404, "not_found")
        status, body = await staff.call("DELETE", "/api/conversations")
        assert (status, body["error"]["code"]) == (405, "method_not_allowed")
        too_large = io.BytesIO(b"x" * (3 * 1024 * 1024))
        async with staff.session.post(staff.base + "/api/conversations/1/notes", data=too_large,
                                      headers=staff.headers({"Content-Type": "application/json"})) as response:
            assert response.status == 413
            assert (await response.json())["error"]["code"] == "too_large"


async def test_the_menu_button_opens_the_app(desk: Desk, sim: Simulator) -> None:
    [call] = await sim.wait_for_calls("setChatMenuButton")
    button = call["params"]["menu_button"]
    button = json.loads(button) if isinstance(button, str) else button
    assert button["type"] == "web_app"
    bot = await Bot.get(telegram_id=sim.bot_id)
    assert button["web_app"]["url"] == f"https://desk.example/app/?bot={bot.id}"  # the app learns whose it is


async def test_app_in_the_manager_chat_sends_the_button_privately(desk: Desk, sim: Simulator) -> None:
    sim.send_command(desk.mia["id"], "start")  # Mia has a private chat with the bot
    await sim.wait_for_messages(desk.mia["id"])
    sim.send_command(desk.mia["id"], "app", chat_id=desk.chat_id)
    await sim.wait_until(lambda: any("web_app" in json.dumps(m.get("reply_markup", {}))
                                     for m in sim.chat_history(desk.mia["id"])), 10, "the app button")
    await sim.wait_until(lambda: any("private chat" in (m.get("text") or "") for m in sim.chat_history(desk.chat_id)),
                         10, "the group's answer")
    to_group = [call for call in sim.calls() if str(call["params"].get("chat_id")) == str(desk.chat_id)]
    assert "web_app" not in json.dumps(to_group)  # the group is never sent the button


async def test_live_events_reach_staff_and_only_the_customer_concerned(desk: Desk, sim: Simulator) -> None:
    ann = sim.create_user("Ann")
    bob = sim.create_user("Bob")
    url = desk.frontdesk.url.replace("http", "ws") + "/api/live"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as staff_socket, \
            session.ws_connect(url) as bob_socket, session.ws_connect(url) as stranger:
            await staff_socket.send_json({"type": "auth", "init_data": sim.init_data(desk.mia["id"])})
            assert (await staff_socket.receive_json(timeout=5))["type"] == "ready"
            await bob_socket.send_json({"type": "auth", "init_data": sim.init_data(bob["id"])})
            assert (await bob_socket.receive_json(timeout=5)) == {"type": "ready", "role": "customer"}
            await stranger.send_json({"type": "auth", "init_data": "hash=forged"})
            closed = await stranger.receive(timeout=5)
            assert closed.type == aiohttp.WSMsgType.CLOSE
            assert closed.data == 4401

            sim.send_text(ann["id"], "Hello from Ann")
            event = await staff_socket.receive_json(timeout=5)
            ann_conversation = await Conversation.get(user__telegram_id=ann["id"])
            assert event == {"type": "conversation", "id": ann_conversation.id}
            await outbox_idle(sim)  # every event of Ann's conversation is published by now
            sim.send_text(bob["id"], "Hello from Bob")
            bob_event = await bob_socket.receive_json(timeout=5)
            assert bob_event["id"] != ann_conversation.id  # none of Ann's events came before Bob's own
            assert bob_event["id"] == (await Conversation.get(user__telegram_id=bob["id"])).id


async def test_a_customer_who_chose_silent_answers_gets_them_without_a_sound(desk: Desk, sim: Simulator) -> None:
    ann = await customer_with_answer(sim, "Ann", "First question")
    loud = [call for call in sim.calls("sendMessage") if call["params"]["chat_id"] == ann["id"]]
    assert not loud[-1]["params"].get("disable_notification")
    async with app_client(desk.frontdesk, sim, ann["id"]) as customer:
        me = await customer.call("PATCH", "/api/me", {"silent": True})
        assert me[1]["preferences"]["silent"] is True
    sim.send_text(ann["id"], "Second question")
    await sim.wait_for_messages(ann["id"], 2)
    quiet = [call for call in sim.calls("sendMessage") if call["params"]["chat_id"] == ann["id"]]
    assert quiet[-1]["params"]["disable_notification"] is True


async def test_session_cookie_flags_sign_out_for_good_and_delete_my_data_ends_every_session(
        desk: Desk, sim: Simulator) -> None:
    async with app_client(desk.frontdesk) as laptop, app_client(desk.frontdesk) as phone, \
            app_client(desk.frontdesk) as tablet:
        link = await dashboard_link(sim, desk.mia["id"])
        fields = await login_form(laptop, link)
        async with laptop.session.post(laptop.base + "/app/login", data=fields, allow_redirects=False,
                                       headers={"Sec-Fetch-Site": "same-origin"}) as response:
            assert response.status == 303
            cookies = {name: morsel for name, morsel in response.cookies.items()}
        # Page scripts cannot read the session, and other sites' requests do not carry it; the CSRF token is
        # for our own page's script to read, and goes with no request from another site.
        assert (cookies["frontdesk_session"]["httponly"], cookies["frontdesk_session"]["samesite"]) == (True, "Lax")
        assert (cookies["frontdesk_csrf"]["httponly"], cookies["frontdesk_csrf"]["samesite"]) == ("", "Strict")
        stolen = cookies["frontdesk_session"].value
        laptop.csrf = (await laptop.get("/api/me"))["csrf_token"]
        async with laptop.session.post(laptop.base + "/app/logout", headers={"X-CSRF-Token": laptop.csrf},
                                       allow_redirects=False) as out:
            assert out.status == 303
        # Signed out for good: the cookie's value, kept by someone, opens nothing any more.
        async with aiohttp.ClientSession() as thief, thief.get(
                desk.frontdesk.url + "/api/me", headers={"Cookie": f"frontdesk_session={stolen}"}) as me:
            assert me.status == 401

        assert await sign_in(phone, await dashboard_link(sim, desk.mia["id"])) == 303
        assert await sign_in(tablet, await dashboard_link(sim, desk.mia["id"])) == 303
        assert await WebSession.filter(user__telegram_id=desk.mia["id"]).count() == 2
        status, _ = await phone.call("DELETE", "/api/me/data", {"confirm": True})
        assert status == 200
        assert (await tablet.call("GET", "/api/me"))[0] == 401
        assert (await phone.call("GET", "/api/me"))[0] == 401
    assert not await WebSession.exists()
