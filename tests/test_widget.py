"""The website widget's protocol through the real app: answers, history, resume, errors, limits, isolation."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from tgsim import Simulator

from models import AuthorKind, Channel, Conversation, Message, User, WidgetSite
from services import widget
from tests.conftest import Frontdesk, eventually, outbox_idle
from tests.desk_helpers import Desk, manager_desk, wait_for_topic, wait_in_topic
from tests.fake_ai import FakeAI
from tests.test_observability import METRICS_TOKEN
from tests.widget_helpers import VisitorSocket, is_answer, open_widget, signed_in


@pytest.fixture
async def http() -> Any:
    async with aiohttp.ClientSession() as session:
        yield session


async def _history(http: aiohttp.ClientSession, frontdesk: Frontdesk, token: str, after: int | None = None,
                   origin: str | None = None) -> tuple[int, dict[str, Any]]:
    query = f"site=demo&after={after}" if after is not None else "site=demo"
    async with http.get(f"{frontdesk.url}/widget/api/history?{query}",
                        headers={"Authorization": f"Bearer {token}", "Origin": origin or frontdesk.url}) as response:
        return response.status, await response.json()


@pytest.mark.parametrize("frontdesk_settings", [{"METRICS_TOKEN": METRICS_TOKEN}], indirect=True)
async def test_a_visitor_sees_the_answer_stream_in_and_finds_it_in_the_history(
        frontdesk: Frontdesk, ai: FakeAI, http: aiohttp.ClientSession) -> None:
    ai.script.reply = "We roast our **own** beans, every morning, in small batches, right here in the shop."
    ai.script.chunk_size, ai.script.chunk_delay = 8, 0.05
    visitor, welcome = await open_widget(http, frontdesk.url)
    assert welcome["type"] == "welcome"
    assert welcome["token"]
    assert welcome["conversation"] is None
    client_id = await visitor.send_message("Where do your beans come from?")
    mine = await visitor.until(lambda f: f["type"] == "message" and f["author"] == "customer")
    assert mine["client_id"] == client_id
    assert mine["text"] == "Where do your beans come from?"
    answer = await visitor.until(lambda f: is_answer(f, mine["id"]))
    deltas = [f for f in visitor.frames if f["type"] == "delta"]
    assert deltas, "the answer streamed in"
    assert all(d["reply_to"] == mine["id"] for d in deltas)
    assert len(deltas[0]["text"]) < len(ai.script.reply)
    assert answer["author"] == "ai"
    assert answer["html"].count("<b>own</b>") == 1
    assert answer["text"] == "We roast our own beans, every morning, in small batches, right here in the shop."

    async with http.get(f"{frontdesk.url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}) as response:
        assert "frontdesk_widget_sockets 1.0" in await response.text()
    status, history = await _history(http, frontdesk, welcome["token"])
    assert status == 200
    assert [(m["id"], m["author"]) for m in history["messages"]] == [(mine["id"], "customer"), (answer["id"], "ai")]
    assert history["conversation"] == mine["conversation"]
    conversation = await Conversation.get(id=mine["conversation"]).prefetch_related("user")
    assert conversation.channel == Channel.WIDGET
    assert conversation.user.telegram_id is None
    assert conversation.user.widget_visitor_id
    await visitor.socket.close()


async def test_a_dropped_connection_loses_nothing_and_a_resend_is_stored_once(
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI, http: aiohttp.ClientSession) -> None:
    ai.script.hold = asyncio.Event()
    visitor, welcome = await open_widget(http, frontdesk.url)
    client_id = await visitor.send_message("Do you deliver?")
    mine = await visitor.until(lambda f: f["type"] == "message")
    await visitor.socket.close()  # the network drops while the AI writes
    ai.script.reply = "Yes, within two kilometres."
    ai.script.hold.set()

    async def answered() -> bool:
        return await Message.filter(author_kind=AuthorKind.AI).exists()
    await eventually(answered, "the answer stored while the visitor was away")

    back, again = await open_widget(http, frontdesk.url, token=welcome["token"], after=mine["id"])
    assert again["type"] == "welcome"
    assert again["token"]
    assert again["conversation"] == mine["conversation"]
    answer = await back.until(lambda f: is_answer(f, mine["id"]))
    assert answer["text"] == "Yes, within two kilometres."
    # The widget did not see its message confirmed in time, so it sends it again after reconnecting.
    await back.send_message("Do you deliver?", client_id)
    confirmed = await back.until(lambda f: f["type"] == "message" and f.get("client_id") == client_id)
    assert confirmed["id"] == mine["id"]
    assert await Message.filter(author_kind=AuthorKind.CUSTOMER).count() == 1
    await outbox_idle(sim)  # every job the resend could have caused has run
    assert await Message.filter(author_kind=AuthorKind.AI).count() == 1, "answered once"
    await back.socket.close()


async def _refused(visitor: VisitorSocket, first: dict[str, Any]) -> tuple[str, int | None]:
    assert first["type"] == "error"
    assert first["message"]
    closing = await visitor.socket.receive(timeout=5)
    assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
    return str(first["code"]), visitor.socket.close_code


async def test_unknown_sites_foreign_origins_and_forged_tokens_are_refused(
        frontdesk: Frontdesk, http: aiohttp.ClientSession) -> None:
    visitor, first = await open_widget(http, frontdesk.url, site="no-such-site")
    assert await _refused(visitor, first) == ("unknown_site", 4403)
    visitor, first = await open_widget(http, frontdesk.url, origin="https://evil.example")
    assert await _refused(visitor, first) == ("origin_not_allowed", 4403)
    visitor, first = await open_widget(http, frontdesk.url, token="eyJ2IjoidjE6eCJ9.forged")
    assert await _refused(visitor, first) == ("bad_token", 4401)
    visitor, first = await open_widget(http, frontdesk.url, lang="ru", user={"id": "42", "hash": "00" * 32})
    code, close_code = await _refused(visitor, first)
    assert (code, close_code) == ("bad_identity", 4401)
    assert first["message"] == "Не удалось подтвердить, кто вы. Перезагрузите страницу."

    async with http.get(f"{frontdesk.url}/widget/api/history?site=demo",
                        headers={"Authorization": "Bearer nope", "Origin": frontdesk.url}) as response:
        assert response.status == 401
        assert (await response.json())["error"]["code"] == "bad_token"
    async with http.get(f"{frontdesk.url}/widget/api/site?site=demo",
                        headers={"Origin": "https://evil.example"}) as response:
        assert response.status == 403
        assert "Access-Control-Allow-Origin" not in response.headers
    async with http.get(f"{frontdesk.url}/widget/api/site?site=nope", headers={"Origin": frontdesk.url}) as response:
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "unknown_site"
    assert await User.filter(widget_visitor_id__not_isnull=True).count() == 0


async def test_bad_frames_get_clear_errors_and_store_nothing(
        frontdesk: Frontdesk, http: aiohttp.ClientSession) -> None:
    visitor, welcome = await open_widget(http, frontdesk.url, lang="uz")
    assert welcome["type"] == "welcome"
    await visitor.send_message("x" * 4001)
    too_long = await visitor.next()
    assert too_long["code"] == "text_too_long"
    assert "4000" in too_long["message"]
    await visitor.socket.send_str('{"type": "message", "text": "' + "y" * 20_000 + '"}')
    assert (await visitor.next())["code"] == "frame_too_large"
    await visitor.socket.send_str("this is not JSON")
    assert (await visitor.next())["code"] == "bad_frame"
    await visitor.socket.send_json({"type": "message", "client_id": "not-a-uuid", "text": "hi"})
    assert (await visitor.next())["code"] == "bad_frame"
    await visitor.send_message("   ")
    empty = await visitor.next()
    assert empty["code"] == "empty"
    assert empty["message"] == "Iltimos, avval xabar yozing."
    assert await Message.all().count() == 0
    assert await User.filter(widget_visitor_id__not_isnull=True).count() == 0
    # The socket still works after all that.
    await visitor.send_message("hello")
    assert (await visitor.until(lambda f: f["type"] == "message"))["text"] == "hello"
    await visitor.socket.close()


@pytest.mark.parametrize("frontdesk_settings", [{"WIDGET_IP_MESSAGES_PER_MINUTE": "3",
                                                 "WIDGET_IP_CONVERSATIONS_PER_HOUR": "1",
                                                 "use_ai": False}], indirect=True)
async def test_rate_limits_per_address_refuse_and_store_nothing(
        frontdesk: Frontdesk, http: aiohttp.ClientSession) -> None:
    ann, _ = await open_widget(http, frontdesk.url)
    await ann.send_message("one")
    await ann.until(lambda f: f["type"] == "message" and f["text"] == "one")
    # Another visitor from the same address may not start another conversation this hour...
    bob, _ = await open_widget(http, frontdesk.url)
    await bob.send_message("hi, new here")
    refused = await bob.until(lambda f: f["type"] == "error")
    assert refused["code"] == "too_many_conversations"
    # ...and the address may send only so many messages a minute.
    await ann.send_message("two")
    await ann.until(lambda f: f["type"] == "message" and f["text"] == "two")
    await ann.send_message("three")
    limited = await ann.until(lambda f: f["type"] == "error")
    assert limited["code"] == "rate_limited"
    assert limited["message"] == "You're sending messages very quickly. Please wait a moment, then write again."
    assert [m.text for m in await Message.filter(author_kind=AuthorKind.CUSTOMER)] == ["one", "two"]
    assert await Conversation.all().count() == 1


async def test_two_visitors_never_see_each_other(frontdesk: Frontdesk, ai: FakeAI,
                                                 http: aiohttp.ClientSession) -> None:
    ai.script.reply = "Sure."
    ann, ann_welcome = await open_widget(http, frontdesk.url)
    bob, bob_welcome = await open_widget(http, frontdesk.url)
    ann_id = await ann.send_message("Ann's secret order: 3 croissants")
    ann_message = await ann.until(lambda f: f["type"] == "message" and f["author"] == "customer")
    await ann.until(lambda f: is_answer(f, ann_message["id"]))
    # Bob re-uses Ann's client id and asks for everything after 0: he gets his own message only.
    await bob.send_message("Bob here", ann_id)
    bob_message = await bob.until(lambda f: f["type"] == "message" and f["author"] == "customer")
    assert bob_message["id"] != ann_message["id"]
    assert bob_message["text"] == "Bob here"
    await bob.until(lambda f: is_answer(f, bob_message["id"]))
    assert not any("croissants" in str(frame) for frame in bob.frames)
    _, bob_history = await _history(http, frontdesk, bob_welcome["token"], after=0)
    assert [m["text"] for m in bob_history["messages"] if m["author"] == "customer"] == ["Bob here"]
    # A token of one site is no key to another.
    demo = await WidgetSite.get(public_key="demo")
    other = await widget.create_site(demo.bot_id, [frontdesk.url], public_key="other-site")
    stolen, first = await open_widget(http, frontdesk.url, site=other.public_key, token=ann_welcome["token"])
    assert first["code"] == "bad_token"
    await asyncio.gather(ann.socket.close(), bob.socket.close(), stolen.socket.close())


async def test_a_signed_in_user_has_one_history_on_every_device(frontdesk: Frontdesk, ai: FakeAI,
                                                                http: aiohttp.ClientSession) -> None:
    site = await WidgetSite.get(public_key="demo")
    user = signed_in(site, "customer-1001", "Dana")
    laptop, _ = await open_widget(http, frontdesk.url, user=user)
    await laptop.send_message("I ordered a cake yesterday")
    sent = await laptop.until(lambda f: f["type"] == "message" and f["author"] == "customer")
    await laptop.until(lambda f: is_answer(f, sent["id"]))
    phone, welcome = await open_widget(http, frontdesk.url, user=user)  # no token on this device
    assert welcome["conversation"] == sent["conversation"]
    backlog = await phone.until(lambda f: is_answer(f))
    assert next(m["text"] for m in phone.messages()) == "I ordered a cake yesterday"
    assert backlog["reply_to"] == sent["id"]
    dana = await User.get(widget_visitor_id=f"u{site.id}:customer-1001")
    assert dana.first_name == "Dana"
    await asyncio.gather(laptop.socket.close(), phone.socket.close())


async def test_a_handed_off_visitor_gets_the_managers_reply_live_and_after_a_reload(
        database_url: str, sim: Simulator, ai: FakeAI, http: aiohttp.ClientSession) -> None:
    async with manager_desk(database_url, sim, ai) as desk:
        await _handoff_and_reply(desk, sim, http)


async def _handoff_and_reply(desk: Desk, sim: Simulator, http: aiohttp.ClientSession) -> None:
    url = desk.frontdesk.url
    visitor, welcome = await open_widget(http, url)
    await visitor.send_message("My order never arrived")
    await visitor.until(lambda f: is_answer(f))
    await visitor.socket.send_json({"type": "person"})
    notice = await visitor.until(lambda f: f["type"] == "message" and f["author"] == "system" and
                                 "person" in f["text"])
    status = await visitor.until(lambda f: f["type"] == "status")
    assert status["mode"] == "human"
    assert status["agent"] is None
    [topic] = await wait_for_topic(sim, desk.chat_id)
    card = (await wait_in_topic(sim, desk.chat_id, topic.thread_id, 1))[0]
    assert "widget" in card["text"]
    assert "My order never arrived" in card["text"]

    sim.send_text(desk.mia["id"], "Hi! Mia here, checking your order now.", chat_id=desk.chat_id,
                  thread_id=topic.thread_id)
    reply = await visitor.until(lambda f: f["type"] == "message" and f["author"] == "manager", within=5)
    assert reply["text"] == "Hi! Mia here, checking your order now."
    # The reply is shown at once; who answers follows with the "joined" notice, placed before it.
    if not any(f["type"] == "status" and f["agent"] == "Mia" for f in visitor.frames):
        await visitor.until(lambda f: f["type"] == "status" and f["agent"] == "Mia")
    joined = next(f for f in visitor.frames if f["type"] == "message" and f["author"] == "system"
                  and "joined" in f["text"])
    assert notice["id"] < joined["id"] < reply["id"]
    await visitor.socket.close()

    reloaded, again = await open_widget(http, url, token=welcome["token"])
    assert again["mode"] == "human"
    # The backlog, and perhaps the reply once more live (the outbox's safety net): the widget sorts by id.
    await reloaded.until(lambda f: len({m["id"] for m in reloaded.messages()}) >= 5, within=5)
    by_id = {m["id"]: m["author"] for m in reloaded.messages()}
    authors = [by_id[key] for key in sorted(by_id)]
    assert authors == ["customer", "ai", "system", "system", "manager"]  # the notices are kept too
    # A visitor's message in a handed-off conversation reaches the topic.
    await reloaded.send_message("Thank you, Mia")
    await sim.wait_until(lambda: any("Thank you, Mia" in (m.get("text") or "")
                                     for m in sim.chat_history(desk.chat_id, thread_id=topic.thread_id)),
                         10, "copied into the topic")

    # The manager closes it: the visitor is asked for a rating in the widget, and gives one.
    sim.send_command(desk.mia["id"], "close", chat_id=desk.chat_id, thread_id=topic.thread_id)
    asked = await reloaded.until(lambda f: f["type"] == "message" and "rate" in f)
    assert asked["rate"] == asked["conversation"]
    assert asked["text"] == "This conversation is closed. Thank you for writing to us! How would you rate it?"
    closed = await reloaded.until(lambda f: f["type"] == "status")
    assert closed["closed"] is True
    await reloaded.socket.send_json({"type": "rate", "conversation": asked["conversation"], "stars": 5})
    assert (await reloaded.until(lambda f: f["type"] == "rated"))["stars"] == 5
    assert (await Conversation.get(id=asked["conversation"])).rating == 5
    await reloaded.socket.send_json({"type": "rate", "conversation": asked["conversation"] + 1000, "stars": 5})
    assert (await reloaded.until(lambda f: f["type"] == "error"))["code"] == "bad_frame"
    await reloaded.socket.close()
    # Nothing went to a Telegram chat for the visitor, once all the replies and notices were done: the
    # only chats written to are the group and the staff's.
    await outbox_idle(sim)
    written = {call["params"]["chat_id"] for call in sim.calls() if "chat_id" in call["params"]}
    assert written <= {desk.chat_id, desk.boss["id"], desk.mia["id"]}

