"""The widget protocol's promises a client relies on (docs/widget-protocol.md): edits replace, a
visitor who floods is slowed down like a Telegram customer, a reconnect without `after` gets the
latest 200 messages, and a shutdown closes sockets with 1001 for the client to resume elsewhere."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import pytest
from tgsim import Simulator

from models import AuthorKind, Conversation, Message
from tests.conftest import Frontdesk, free_port, frontdesk_environment, outbox_idle, running_frontdesk
from tests.desk_helpers import edit_text, manager_desk, wait_for_topic, wait_in_topic
from tests.fake_ai import FakeAI
from tests.widget_helpers import is_answer, open_widget, origin_of

LATEST = 200  # as the protocol promises


@pytest.fixture
async def http() -> Any:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_a_managers_edit_replaces_the_message_in_the_open_widget_and_the_history(
        database_url: str, sim: Simulator, ai: FakeAI, http: aiohttp.ClientSession) -> None:
    async with manager_desk(database_url, sim, ai) as desk:
        visitor, welcome = await open_widget(http, desk.frontdesk.url)
        await visitor.send_message("Where is my order?")
        await visitor.until(lambda f: is_answer(f))
        await visitor.socket.send_json({"type": "person"})
        [topic] = await wait_for_topic(sim, desk.chat_id)
        await wait_in_topic(sim, desk.chat_id, topic.thread_id, 1)
        sent = sim.send_text(desk.mia["id"], "It left on Monday.", chat_id=desk.chat_id, thread_id=topic.thread_id)
        first = await visitor.until(lambda f: f["type"] == "message" and f["author"] == "manager")
        await outbox_idle(sim)  # every job of these messages done, the customers' and the group's
        edit_text(sim, desk.chat_id, sent["message_id"], "It left on Tuesday.")
        # The same id again, now with the new text (the reply's own frames may still be on their way before it:
        # the widget keeps one copy per id, the last one shown).
        await visitor.until(lambda f: f["type"] == "message" and f["id"] == first["id"]
                            and f["text"] == "It left on Tuesday.")
        await visitor.socket.close()
        reloaded, _ = await open_widget(http, desk.frontdesk.url, token=welcome["token"])
        shown = await reloaded.until(lambda f: f["type"] == "message" and f["id"] == first["id"])
        assert shown["text"] == "It left on Tuesday."
        await reloaded.socket.close()


@pytest.mark.parametrize("frontdesk_settings", [{"CUSTOMER_RATE_BURST": "2", "CUSTOMER_RATE_PER_MINUTE": "1"}],
                         indirect=True)
async def test_a_visitor_who_floods_gets_one_slow_down_and_every_message_is_kept(
        frontdesk: Frontdesk, ai: FakeAI, http: aiohttp.ClientSession) -> None:
    visitor, _ = await open_widget(http, frontdesk.url)
    texts = [f"question {n}" for n in range(1, 6)]
    for text in texts:
        await visitor.send_message(text)
        await visitor.until(lambda f, text=text: f["type"] == "message" and f["text"] == text)
    # Once the queue has settled: the two within the burst were answered, the rest got one notice together.
    while sorted(m["author"] for m in visitor.messages() if m["author"] != "customer") != ["ai", "ai", "system"]:
        await visitor.next()
    [notice] = [m for m in visitor.messages() if m["author"] == "system"]
    assert notice["text"] == "You're sending messages very quickly. Please wait a moment, then write again."
    stored = await Message.filter(author_kind=AuthorKind.CUSTOMER).order_by("id")
    assert [m.text for m in stored] == texts
    conversation = await Conversation.get(id=notice["conversation"])
    replies = await Message.filter(conversation=conversation).exclude(author_kind=AuthorKind.CUSTOMER)
    assert sorted(m.author_kind for m in replies) == sorted([AuthorKind.AI, AuthorKind.AI, AuthorKind.SYSTEM])
    await visitor.socket.close()


async def test_a_reconnect_without_after_gets_the_latest_200_messages(
        frontdesk: Frontdesk, ai: FakeAI, http: aiohttp.ClientSession) -> None:
    visitor, welcome = await open_widget(http, frontdesk.url)
    await visitor.send_message("hello")
    answer = await visitor.until(lambda f: is_answer(f))
    await visitor.socket.close()
    conversation = await Conversation.get(id=answer["conversation"])
    await Message.bulk_create([
        Message(bot_id=conversation.bot_id, conversation=conversation,
                author_kind=AuthorKind.CUSTOMER, text=f"older {n}", source_key=f"w:{uuid.uuid4().hex}")
        for n in range(LATEST + 10)])
    everything = await Message.filter(conversation=conversation).order_by("id").values_list("id", flat=True)
    assert len(everything) == LATEST + 12
    reloaded, again = await open_widget(http, frontdesk.url, token=welcome["token"])
    assert again["type"] == "welcome"
    await reloaded.until(lambda f: len(reloaded.messages()) >= LATEST)
    await reloaded.send_message("and now")  # its echo follows the backlog: all of it has arrived
    await reloaded.until(lambda f: f["type"] == "message" and f["text"] == "and now")
    assert [m["id"] for m in reloaded.messages()][:-1] == everything[-LATEST:]
    async with http.get(f"{frontdesk.url}/widget/api/history?site=demo",
                        headers={"Authorization": f"Bearer {welcome['token']}", "Origin": frontdesk.url}) as response:
        history = await response.json()
    everything = await Message.filter(conversation=conversation).order_by("id").values_list("id", flat=True)
    assert [m["id"] for m in history["messages"]] == everything[-LATEST:]
    await reloaded.socket.close()


async def test_a_shutdown_closes_sockets_with_1001_and_the_widget_resumes_on_the_next_instance(
        database_url: str, sim: Simulator, ai: FakeAI, http: aiohttp.ClientSession) -> None:
    env = frontdesk_environment(database_url, sim, ai, free_port())
    async with running_frontdesk(env) as first:
        visitor, welcome = await open_widget(http, first.url)
        await visitor.send_message("Before the restart")
        answer = await visitor.until(lambda f: is_answer(f))
    closing = await visitor.socket.receive(timeout=10)
    assert (closing.type, closing.data) == (aiohttp.WSMsgType.CLOSE, 1001)  # going away: come back elsewhere
    second_env = {**env, "PORT": str(free_port())}
    second_env["WEBHOOK_BASE_URL"] = f"http://127.0.0.1:{second_env['PORT']}"
    async with running_frontdesk(second_env) as second:
        # The page is still the one the first instance served (behind a load balancer, one address).
        resumed, again = await open_widget(http, second.url, token=welcome["token"], after=answer["id"],
                                           origin=first.url)
        assert again["type"] == "welcome", again
        assert again["conversation"] == answer["conversation"]
        await resumed.send_message("After the restart")
        mine = await resumed.until(lambda f: f["type"] == "message" and f["text"] == "After the restart")
        await resumed.until(lambda f: is_answer(f, mine["id"]))
        assert mine["conversation"] == answer["conversation"]
        await resumed.socket.close()


@pytest.mark.parametrize("frontdesk_settings", [{"WIDGET_HELLO_SECONDS": "0.5"}], indirect=True)
async def test_a_socket_that_says_no_hello_in_time_is_closed(
        frontdesk_settings: dict[str, Any], frontdesk: Frontdesk, http: aiohttp.ClientSession) -> None:
    async with http.ws_connect(frontdesk.url + "/widget/ws", origin=origin_of(frontdesk.url)) as silent:
        closed = await silent.receive(timeout=10)  # the default deadline (15 s) would not close it by then
        assert (closed.type, closed.data, closed.extra) == (aiohttp.WSMsgType.CLOSE,
                                                             aiohttp.WSCloseCode.POLICY_VIOLATION, "no hello")


@pytest.mark.parametrize("frontdesk_settings", [{"WIDGET_PING_SECONDS": "1"}], indirect=True)
async def test_a_quiet_socket_is_pinged(
        frontdesk_settings: dict[str, Any], frontdesk: Frontdesk, http: aiohttp.ClientSession) -> None:
    """Pings keep proxies from closing a socket nobody writes on (autoping off: the client sees them)."""
    async with http.ws_connect(frontdesk.url + "/widget/ws", origin=origin_of(frontdesk.url),
                               autoping=False) as quiet:
        await quiet.send_json({"type": "hello", "site": "demo", "token": None, "after": None, "lang": "en"})
        kinds: list[aiohttp.WSMsgType] = []
        while aiohttp.WSMsgType.PING not in kinds and len(kinds) < 5:
            kinds.append((await quiet.receive(timeout=10)).type)  # the default (25 s) would not ping by then
        assert aiohttp.WSMsgType.PING in kinds
