"""Hostile input on every public surface: the Telegram webhook, the widget's socket and REST calls,
the Mini App API and its live socket, and the browser login.

Deeply nested JSON, huge bodies and frames, invalid UTF-8, lone surrogates, non-ASCII and non-UTF-8
headers, 10k-character fields: each gets a 4xx with a JSON error (or an error frame / a close on a
socket), never a 500; nothing is stored, and nothing is logged as an unhandled error.

Headers that no well-behaved client library would send (raw bytes) go out over a plain TCP
connection, as an attacker's script would send them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from tgsim import Simulator
from tortoise import Tortoise
from yarl import URL

from models import WebSession
from tests.desk_helpers import Desk, manager_desk
from tests.fake_ai import FakeAI
from tests.miniapp_helpers import AppClient, app_client, dashboard_link, sign_in
from tests.widget_helpers import open_widget

DEEP = b"[" * 100_000 + b"]" * 100_000  # past any parser's recursion limit
DEEP_FRAME = "[" * 6_000 + "]" * 6_000  # as deep, within a socket's frame limit
NESTED = b'{"a":' * 200 + b"1" + b"}" * 200  # parses, but no request of ours is 200 levels deep
INVALID_UTF8 = b'{"text": "\xff\xfe\xfd", "action": "take"}'
LONE_SURROGATE = b'{"text": "\\ud800", "action": "\\udfff", "question": "\\ud800", "language": "\\ud800"}'
HUGE = b'{"text": "' + b"a" * (3 * 1024 * 1024) + b'"}'  # over every body limit
LONG = "x" * 10_000
LONG_LINE = "x" * 8_000  # about the longest header or URL aiohttp reads (8190 bytes)


class Unread(frozenset[int]):
    """aiohttp's own answer to a request line or header it cannot parse (over 8190 bytes, raw bytes
    that are not ASCII in the URL): refused before the app sees it, in plain text, and logged as one
    WARNING line rather than a traceback."""


UNREAD = Unread({400})
BODIES = {"deep JSON": DEEP, "nested JSON": NESTED, "invalid UTF-8": INVALID_UTF8,
          "lone surrogates": LONE_SURROGATE, "huge body": HUGE}


@pytest.fixture
async def desk(database_url: str, sim: Simulator, ai: FakeAI) -> AsyncIterator[Desk]:
    async with manager_desk(database_url, sim, ai, PUBLIC_BASE_URL="https://desk.example") as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


# --- what the server says, and what it kept -------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    content_type: str
    body: bytes

    def error(self) -> Any:
        """The JSON error the body must be."""
        assert self.content_type == "application/json", (self.status, self.content_type, self.body[:200])
        data = json.loads(self.body)
        assert "error" in data, data
        return data["error"]


async def raw_request(url: str, method: str, path: str, headers: list[tuple[bytes, bytes]] | None = None,
                      body: bytes = b"", *, chunked: bool = False) -> Answer:
    """One request written byte by byte: any header bytes, any body, with or without a length."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    head = [f"{method} {path} HTTP/1.1".encode(), f"Host: {parts.netloc}".encode(), b"Connection: close"]
    head += [name + b": " + value for name, value in headers or []]
    head.append(b"Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(body)}".encode())

    async def send() -> None:
        with contextlib.suppress(ConnectionError):
            writer.write(b"\r\n".join(head) + b"\r\n\r\n")
            if chunked:
                for start in range(0, len(body), 65536):
                    piece = body[start:start + 65536]
                    writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                    await writer.drain()
                writer.write(b"0\r\n\r\n")
            else:
                writer.write(body)
            await writer.drain()

    sending = asyncio.create_task(send())
    try:
        data = await asyncio.wait_for(reader.read(), 30)
    finally:
        await sending
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    head_bytes, _, content = data.partition(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    fields = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    if fields.get("transfer-encoding") == "chunked":
        content = _unchunk(content)
    return Answer(int(lines[0].split()[1]), fields.get("content-type", "").split(";")[0], content)


def _unchunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2:]
    return out


async def stored() -> dict[str, int]:
    """How many rows every table holds."""
    return {name: await model.all().count() for name, model in sorted(Tortoise.apps["models"].items())}


@contextlib.asynccontextmanager
async def nothing_stored() -> AsyncIterator[None]:
    before = await stored()
    yield
    after = await stored()
    assert {name: (before[name], after[name]) for name in before if before[name] != after[name]} == {}


def unhandled(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the server logged as an unhandled error (a traceback or an ERROR line)."""
    return [f"{record.name}: {record.getMessage()}" for record in caplog.records
            if record.levelno >= logging.ERROR or record.exc_info]


def check(problems: list[str], case: str, answer: Answer, statuses: set[int] | frozenset[int]) -> None:
    """The answer is one of `statuses` with a JSON error; otherwise the case goes into `problems`."""
    try:
        assert answer.status in statuses
        if not isinstance(statuses, Unread):
            answer.error()
    except (AssertionError, ValueError):
        problems.append(f"{case}: {answer.status} {answer.content_type} {answer.body[:100]!r}")


# --- the Telegram webhook ---------------------------------------------------------------------------------------


async def test_the_webhook_refuses_hostile_bodies_and_headers_with_a_4xx(
        desk: Desk, caplog: pytest.LogCaptureFixture) -> None:
    url, secret = desk.frontdesk.url, desk.frontdesk.settings.webhook_secret.encode()
    cases: list[tuple[str, list[tuple[bytes, bytes]], bytes, bool, set[int] | frozenset[int]]] = [
        ("no secret, deep JSON", [], DEEP, False, {401}),
        ("a non-ASCII secret", [(b"X-Telegram-Bot-Api-Secret-Token", "секрет".encode())], b"{}", False, {401}),
        ("a secret of invalid UTF-8", [(b"X-Telegram-Bot-Api-Secret-Token", b"\xff\xfe" + secret)], b"{}", False,
         {401}),
        ("a 10k-character secret", [(b"X-Telegram-Bot-Api-Secret-Token", LONG.encode())], b"{}", False, UNREAD),
        ("an 8k-character secret", [(b"X-Telegram-Bot-Api-Secret-Token", LONG_LINE.encode())], b"{}", False, {401}),
        ("10k-character update id", [(b"X-Telegram-Bot-Api-Secret-Token", secret)],
         json.dumps({"update_id": LONG}).encode(), False, {400}),
        ("a huge body without a length", [(b"X-Telegram-Bot-Api-Secret-Token", secret)], HUGE, True, {413}),
    ]
    cases += [(f"{name}, with the secret", [(b"X-Telegram-Bot-Api-Secret-Token", secret)], body, False,
               {413} if name == "huge body" else {400}) for name, body in BODIES.items()]
    a_message = {"update_id": 77, "message": {
        "message_id": 1, "date": 1, "chat": {"id": 5, "type": "private", "first_name": "Eve"},
        "from": {"id": 5, "is_bot": False, "first_name": "\ud800"}, "text": "Hi \udfff"}}
    cases.append(("a message with lone surrogates", [(b"X-Telegram-Bot-Api-Secret-Token", secret)],
                  json.dumps(a_message).encode(), False, {400}))
    problems: list[str] = []
    async with nothing_stored():
        for name, headers, body, chunked, statuses in cases:
            answer = await raw_request(url, "POST", "/telegram/webhook",
                                       [(b"Content-Type", b"application/json"), *headers], body, chunked=chunked)
            check(problems, name, answer, statuses)
    assert not problems + unhandled(caplog), "\n".join(problems + unhandled(caplog))


# --- the website widget -----------------------------------------------------------------------------------------


async def test_the_widgets_rest_calls_refuse_hostile_queries_and_headers_with_a_4xx(
        desk: Desk, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture) -> None:
    url = desk.frontdesk.url
    _, welcome = await open_widget(http, url)  # a real visitor's token, to spoil
    token = welcome["token"].encode()
    origin = (b"Origin", url.encode())
    cases: list[tuple[str, str, list[tuple[bytes, bytes]], set[int] | frozenset[int]]] = [
        ("a 10k-character site key", f"/widget/api/site?site={LONG}", [origin], UNREAD),
        ("an 8k-character site key", f"/widget/api/site?site={LONG_LINE}", [origin], {404}),
        ("a site key of invalid UTF-8", "/widget/api/site?site=%ff%fe", [origin], {404}),
        ("a non-ASCII site key, unescaped", "/widget/api/site?site=кафе", [origin], UNREAD),
        ("a non-ASCII origin", "/widget/api/site?site=demo", [(b"Origin", "https://кафе.example".encode())], {403}),
        ("an origin of invalid UTF-8", "/widget/api/site?site=demo", [(b"Origin", b"https://\xff.example")], {403}),
        ("an origin that is no address", "/widget/api/site?site=demo", [(b"Origin", b"http://[")], {403}),
        ("an origin with a port past 65535", "/widget/api/history?site=demo",
         [(b"Origin", url.rsplit(":", 1)[0].encode() + b":99999"), (b"Authorization", b"Bearer " + token)], {403}),
        ("a 10k-character origin", "/widget/api/site?site=demo", [(b"Origin", b"https://" + LONG.encode())], UNREAD),
        ("an 8k-character origin", "/widget/api/site?site=demo", [(b"Origin", b"https://" + LONG_LINE.encode())],
         {403}),
        ("a non-ASCII token", "/widget/api/history?site=demo",
         [origin, (b"Authorization", "Bearer токен.подпись".encode())], {401}),
        ("a token of invalid UTF-8", "/widget/api/history?site=demo",
         [origin, (b"Authorization", b"Bearer " + token + b"\xff")], {401}),
        ("a token with a non-ASCII signature", "/widget/api/history?site=demo",
         [origin, (b"Authorization", b"Bearer " + token.split(b".")[0] + ".подпись".encode())], {401}),
        ("a 10k-character token", "/widget/api/history?site=demo",
         [origin, (b"Authorization", b"Bearer " + LONG.encode())], UNREAD),
        ("an 8k-character token", "/widget/api/history?site=demo",
         [origin, (b"Authorization", b"Bearer " + LONG_LINE.encode())], {401}),
        ("a superscript digit as the cursor", "/widget/api/history?site=demo&after=%C2%B2",
         [origin, (b"Authorization", b"Bearer " + token)], {400}),
        ("a 10k-digit cursor", f"/widget/api/history?site=demo&after={'9' * 10_000}",
         [origin, (b"Authorization", b"Bearer " + token)], UNREAD),
        ("a 30-digit cursor", f"/widget/api/history?site=demo&after={'9' * 30}",
         [origin, (b"Authorization", b"Bearer " + token)], {400}),
        ("Arabic-Indic digits as the cursor", "/widget/api/history?site=demo&after=%D9%A1%D9%A2",
         [origin, (b"Authorization", b"Bearer " + token)], {400}),
    ]
    problems: list[str] = []
    async with nothing_stored():
        for name, path, headers, statuses in cases:
            check(problems, name, await raw_request(url, "GET", path, headers), statuses)
    assert not problems + unhandled(caplog), "\n".join(problems + unhandled(caplog))


async def _frame_or_close(socket: aiohttp.ClientWebSocketResponse) -> tuple[str, Any]:
    message = await socket.receive(timeout=10)
    if message.type == aiohttp.WSMsgType.TEXT:
        return "frame", json.loads(message.data)
    return "closed", socket.close_code


HELLO = {"type": "hello", "site": "demo", "token": None, "lang": "en"}


@pytest.mark.parametrize(("case", "hello", "code", "close_code"), [
    ("deep JSON", DEEP_FRAME, "bad_frame", 4400),
    ("nested JSON", '{"type": "hello", "site": "demo", "x": ' + NESTED.decode() + "}", "bad_frame", 4400),
    ("lone surrogates", json.dumps({**HELLO, "token": "\ud800.\udfff"}), "bad_frame", 4400),
    ("a non-ASCII token", json.dumps({**HELLO, "token": "токен.подпись"}), "bad_token", 4401),
    ("a non-ASCII identity signature", json.dumps({**HELLO, "user": {"id": "42", "hash": "подпись"}}),
     "bad_identity", 4401),
    ("a 10k-character identity", json.dumps({**HELLO, "user": {"id": LONG, "hash": "00"}}), "bad_identity", 4401),
    ("a 10k-character token", json.dumps({**HELLO, "token": LONG}), "bad_token", 4401),
    ("a 10k-character site key", json.dumps({**HELLO, "site": LONG}), "unknown_site", 4403),
])
async def test_a_hostile_hello_gets_an_error_frame_and_a_close(
        desk: Desk, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture, case: str, hello: str, code: str,
        close_code: int) -> None:
    async with nothing_stored():
        socket = await http.ws_connect(desk.frontdesk.url + "/widget/ws", origin=desk.frontdesk.url)
        await socket.send_str(hello)
        kind, frame = await _frame_or_close(socket)
        assert kind == "frame", frame
        assert (frame["type"], frame["code"]) == ("error", code)
        assert frame["message"]
        assert await _frame_or_close(socket) == ("closed", close_code)
    assert unhandled(caplog) == []


@pytest.mark.parametrize("origin", ["http://[", "https://shop.example:99999", "https://кафе.example"])
async def test_a_socket_from_an_origin_that_is_no_address_is_refused(
        desk: Desk, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture, origin: str) -> None:
    async with nothing_stored():
        socket = await http.ws_connect(desk.frontdesk.url + "/widget/ws", headers={"Origin": origin})
        await socket.send_str(json.dumps(HELLO))
        kind, frame = await _frame_or_close(socket)
        assert (kind, frame["code"]) == ("frame", "origin_not_allowed")
        assert await _frame_or_close(socket) == ("closed", 4403)
    assert unhandled(caplog) == []


async def test_hostile_frames_on_an_open_widget_get_error_frames_and_store_nothing(
        desk: Desk, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture) -> None:
    message = {"type": "message", "client_id": "0b8f0a5e-7d7c-4b39-9d1e-1f6a3c2d4e5f", "text": "Hi"}
    frames: list[tuple[str, str | bytes, str]] = [
        ("deep JSON", DEEP_FRAME, "bad_frame"),
        ("nested JSON", json.dumps({**message, "x": None})[:-1] + ', "y": ' + NESTED.decode() + "}", "bad_frame"),
        ("lone surrogates in the text", json.dumps({**message, "text": "Hi \ud800"}), "bad_frame"),
        ("a 10k-character text", json.dumps({**message, "text": LONG}), "text_too_long"),
        ("a 10k-character client id", json.dumps({**message, "client_id": LONG}), "bad_frame"),
        ("a frame over the limit", json.dumps({**message, "text": "y" * 40_000}), "frame_too_large"),
        ("a binary frame of invalid UTF-8", b"\xff\xfe" + json.dumps(message).encode(), "bad_frame"),
        ("a rating of a 10k-digit conversation", '{"type": "rate", "conversation": ' + "9" * 10_000
         + ', "stars": 5}', "bad_frame"),
    ]
    visitor, welcome = await open_widget(http, desk.frontdesk.url)
    assert welcome["type"] == "welcome"
    async with nothing_stored():
        answers = []
        for case, data, _ in frames:
            if isinstance(data, bytes):
                await visitor.socket.send_bytes(data)
            else:
                await visitor.socket.send_str(data)
            kind, frame = await _frame_or_close(visitor.socket)
            answers.append((case, kind, frame.get("code") if kind == "frame" else frame))
            if kind == "closed":
                break
        assert answers == [(case, "frame", code) for case, _, code in frames]
    assert unhandled(caplog) == []


@pytest.mark.parametrize(("case", "close_code"), [("a frame past what the socket reads", 1009),
                                                  ("a text frame of invalid UTF-8", 1007)])
async def test_frames_the_socket_cannot_read_close_it_with_the_protocols_code(
        desk: Desk, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture, case: str,
        close_code: int) -> None:
    visitor, _ = await open_widget(http, desk.frontdesk.url)
    async with nothing_stored():
        if close_code == 1009:
            await visitor.socket.send_str(json.dumps({"type": "message", "text": "z" * 200_000}))
        else:
            await visitor.socket.send_frame(b'{"type": "typing", "x": "\xff"}', aiohttp.WSMsgType.TEXT)
        assert await _frame_or_close(visitor.socket) == ("closed", close_code)
    assert unhandled(caplog) == []


# --- the Mini App API ----------------------------------------------------------------------------------------


def _concrete(path: str) -> str:
    return re.sub(r"\{(\w+)(:[^}]*)?\}", lambda found: "1" if found.group(1).endswith("id") or
                  found.group(1) == "version" else "x", path)


@dataclass
class Route:
    method: str
    path: str
    fields: list[str]  # the body's top-level fields

    def long_fields(self) -> bytes:
        """Every field of the body 10k characters long."""
        return json.dumps(dict.fromkeys(self.fields, LONG)).encode()


async def _body_routes(client: AppClient) -> list[Route]:
    """Every operation the OpenAPI document says takes a body."""
    spec = await client.get("/api/openapi.json")
    schemas = spec["components"]["schemas"]
    routes = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if "requestBody" in operation:
                body = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].split("/")[-1]
                routes.append(Route(method.upper(), _concrete(path), list(schemas[body].get("properties", {}))))
    return routes


async def test_every_api_route_with_a_body_refuses_hostile_bodies_with_a_4xx(
        desk: Desk, sim: Simulator, caplog: pytest.LogCaptureFixture) -> None:
    problems: list[str] = []
    async with app_client(desk.frontdesk, sim, desk.boss["id"]) as boss:
        assert (await boss.get("/api/me"))["role"] == "admin"  # registered now, before counting
        routes = await _body_routes(boss)
        assert len(routes) > 20
        authorization = f"tma {boss.init_data}".encode()
        async with nothing_stored():
            for name in [*BODIES, "10k-character fields"]:
                for route in routes:
                    body = BODIES[name] if name in BODIES else route.long_fields()
                    answer = await raw_request(desk.frontdesk.url, route.method, route.path,
                                               [(b"Authorization", authorization),
                                                (b"Content-Type", b"application/json")], body,
                                               chunked=name == "huge body")
                    check(problems, f"{name}: {route.method} {route.path}", answer, set(range(400, 500)))
                    if answer.status in (400, 413) and route.path in ("/api/me", "/api/knowledge"):
                        expected = {"huge body": "too_large", "10k-character fields": "bad_request"}.get(name,
                                                                                                          "bad_json")
                        if answer.error()["code"] != expected:
                            problems.append(f"{name}: {route.method} {route.path}: {answer.error()['code']}")
    assert not problems + unhandled(caplog), "\n".join(problems + unhandled(caplog))


async def _session(desk: Desk, sim: Simulator, browser: AppClient) -> str:
    link = await dashboard_link(sim, desk.mia["id"])
    assert await sign_in(browser, desk.frontdesk.url + link.removeprefix("https://desk.example")) == 303
    cookie = browser.session.cookie_jar.filter_cookies(URL(desk.frontdesk.url))["frontdesk_session"]
    return cookie.value


async def test_hostile_credentials_get_a_401_or_403_not_a_500(
        desk: Desk, sim: Simulator, caplog: pytest.LogCaptureFixture) -> None:
    """initData, session cookies and CSRF headers that are not ASCII, not UTF-8, or 10k long."""
    url = desk.frontdesk.url
    async with app_client(desk.frontdesk) as browser:
        session = (await _session(desk, sim, browser)).encode()
    good = sim.init_data(desk.mia["id"])
    spoiled_hash = re.sub(r"hash=[0-9a-f]+", "hash=" + "ж" * 64, good)
    encoded_spoiled_hash = re.sub(r"hash=[0-9a-f]+", "hash=" + "%D0%B6" * 64, good)
    session_cookie = (b"Cookie", b"frontdesk_session=" + session)
    body = b'{"language": "en"}'
    cases: list[tuple[str, list[tuple[bytes, bytes]], set[int] | frozenset[int]]] = [
        ("non-ASCII initData", [(b"Authorization", "tma имя=значение&hash=подпись".encode())], {401}),
        ("initData with a non-ASCII hash", [(b"Authorization", b"tma " + spoiled_hash.encode())], {401}),
        ("initData whose hash decodes to non-ASCII", [(b"Authorization", b"tma " + encoded_spoiled_hash.encode())],
         {401}),
        ("initData of invalid UTF-8", [(b"Authorization", b"tma " + good.encode() + b"\xff")], {401}),
        ("10k-character initData", [(b"Authorization", b"tma " + LONG.encode())], UNREAD),
        ("8k-character initData", [(b"Authorization", b"tma " + LONG_LINE.encode())], {401}),
        ("a non-ASCII session cookie", [(b"Cookie", "frontdesk_session=сессия".encode())], {401}),
        ("a session cookie of invalid UTF-8", [(b"Cookie", b"frontdesk_session=" + session + b"\xff")], {401}),
        ("a 10k-character session cookie", [(b"Cookie", b"frontdesk_session=" + LONG.encode())], UNREAD),
        ("an 8k-character session cookie", [(b"Cookie", b"frontdesk_session=" + LONG_LINE.encode())], {401}),
        ("a non-ASCII CSRF token", [session_cookie, (b"X-CSRF-Token", "токен".encode())], {403}),
        ("a CSRF token of invalid UTF-8", [session_cookie, (b"X-CSRF-Token", b"\xff\xfe")], {403}),
        ("a 10k-character CSRF token", [session_cookie, (b"X-CSRF-Token", LONG.encode())], UNREAD),
        ("an 8k-character CSRF token", [session_cookie, (b"X-CSRF-Token", LONG_LINE.encode())], {403}),
        ("a non-ASCII language header", [(b"Authorization", b"tma x"),
                                         (b"Accept-Language", "узбекча,\xff".encode())], {401}),
        ("a language header of invalid UTF-8", [(b"Authorization", b"tma x"), (b"Accept-Language", b"\xff\xfe")],
         {401}),
    ]
    problems: list[str] = []
    async with nothing_stored():
        for name, headers, statuses in cases:
            answer = await raw_request(url, "PATCH", "/api/me",
                                       [(b"Content-Type", b"application/json"), *headers], body)
            check(problems, name, answer, statuses)
    assert not problems + unhandled(caplog), "\n".join(problems + unhandled(caplog))


async def test_hostile_query_strings_and_ids_get_a_4xx(
        desk: Desk, sim: Simulator, caplog: pytest.LogCaptureFixture) -> None:
    async with app_client(desk.frontdesk, sim, desk.boss["id"]) as boss:
        await boss.get("/api/me")
        authorization = f"tma {boss.init_data}".encode()
        cases: list[tuple[str, set[int] | frozenset[int]]] = [
            (f"/api/conversations?cursor={LONG}", UNREAD), (f"/api/conversations?cursor={LONG_LINE}", {400}),
            ("/api/conversations?cursor=%ff%fe", {400}), ("/api/conversations?cursor=%ED%A0%80", {400}),
            (f"/api/knowledge?cursor={LONG_LINE}", {400}), ("/api/knowledge?cursor=%ff", {400}),
            ("/api/conversations?limit=%C2%B2", {400}), ("/api/conversations?limit=" + "9" * 30, {400}),
            (f"/api/conversations/{'9' * 30}", {404}), (f"/api/conversations/{'9' * 30}/messages", {404}),
            (f"/api/knowledge/{'9' * 30}", {404}), (f"/api/studio/projects/{'9' * 30}", {404}),
            (f"/api/persona/versions/{'9' * 30}", {404}), (f"/api/studio/versions/{'9' * 30}", {404}),
            (f"/api/persona/versions/{'9' * 30}/diff", {404}), (f"/api/studio/templates/{'9' * 30}", {404}),
        ]
        changes: list[tuple[str, str, dict[str, Any]]] = [
            ("POST", "/api/admin/sites", {"allowed_origins": ["http://["]}),
            ("POST", "/api/admin/sites", {"allowed_origins": ["https://shop.example:99999"]}),
            ("DELETE", f"/api/knowledge/sources/{'9' * 30}", {}), ("DELETE", f"/api/studio/keys/{'9' * 30}", {}),
            ("DELETE", "/api/persona/versions/1/labels/%ED%A0%80", {}),
            ("POST", "/api/knowledge/suggestions/%ff/dismiss", {}),
            ("DELETE", f"/api/studio/versions/1/labels/{LONG_LINE}", {}),
            ("PATCH", f"/api/admin/sites/{'9' * 30}", {})]
        searches = [f"/api/conversations?q={LONG_LINE}", f"/api/studio/templates?q={LONG_LINE}",
                    "/api/studio/templates?q=%ff%fe", "/api/studio/templates?tag=%ED%A0%80", "/api/knowledge?q=%ff"]
        problems: list[str] = []
        async with nothing_stored():
            for path, statuses in cases:
                answer = await raw_request(desk.frontdesk.url, "GET", path, [(b"Authorization", authorization)])
                check(problems, path, answer, statuses)
            for method, path, body in changes:
                answer = await raw_request(desk.frontdesk.url, method, path, [(b"Authorization", authorization),
                                                                              (b"Content-Type", b"application/json")],
                                           json.dumps(body).encode())
                check(problems, f"{method} {path}", answer, set(range(400, 500)))
            for path in searches:  # junk may simply find nothing
                answer = await raw_request(desk.frontdesk.url, "GET", path, [(b"Authorization", authorization)])
                if answer.status != 200:
                    check(problems, path, answer, {400})
        assert not problems + unhandled(caplog), "\n".join(problems + unhandled(caplog))


@pytest.mark.parametrize(("case", "frame"), [
    ("deep JSON", DEEP_FRAME),
    ("non-ASCII initData", json.dumps({"type": "auth", "init_data": "имя=значение&hash=подпись"})),
    ("lone surrogates", json.dumps({"type": "auth", "init_data": "user=\ud800&hash=\udfff"})),
    ("10k-character initData", json.dumps({"type": "auth", "init_data": LONG})),
])
async def test_the_live_socket_closes_on_a_hostile_sign_in_frame(
        desk: Desk, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture, case: str, frame: str) -> None:
    async with nothing_stored():
        socket = await http.ws_connect(desk.frontdesk.url + "/api/live", origin=desk.frontdesk.url)
        await socket.send_str(frame)
        assert await _frame_or_close(socket) == ("closed", 4401)
    assert unhandled(caplog) == []


# --- the browser login ------------------------------------------------------------------------------------------


async def test_hostile_login_posts_get_a_4xx_and_open_no_session(
        desk: Desk, sim: Simulator, caplog: pytest.LogCaptureFixture) -> None:
    url = desk.frontdesk.url
    form = (b"Content-Type", b"application/x-www-form-urlencoded")
    cases: list[tuple[str, list[tuple[bytes, bytes]], bytes, bool, set[int]]] = [
        ("a non-ASCII token", [form], "token=токен&csrf=токен".encode(), False, {400, 403}),
        ("a token of invalid UTF-8", [form], b"token=%ff%fe&csrf=%ff%fe", False, {400, 403}),
        ("raw invalid UTF-8", [form], b"token=\xff\xfe&csrf=\xff", False, {400, 403}),
        ("a 10k-character token", [form], f"token={LONG}&csrf={LONG}".encode(), False, {400, 403}),
        ("a non-ASCII cookie", [form, (b"Cookie", "frontdesk_login=печенье".encode())],
         "token=x&csrf=печенье".encode(), False, {400, 403}),
        ("a cookie of invalid UTF-8", [form, (b"Cookie", b"frontdesk_login=\xff")], b"token=x&csrf=%ff", False,
         {400, 403}),
        ("deep JSON", [(b"Content-Type", b"application/json")], DEEP, False, {400, 403}),
        ("an origin that is no address", [form, (b"Origin", b"http://[")], b"token=x&csrf=x", False, {403}),
        ("a non-ASCII origin", [form, (b"Origin", "http://кафе".encode())], b"token=x&csrf=x", False, {403}),
        ("a huge form", [form], b"token=" + b"a" * (3 * 1024 * 1024), True, {413}),
        ("a multipart form of invalid UTF-8", [(b"Content-Type", b"multipart/form-data; boundary=XX")],
         b'--XX\r\nContent-Disposition: form-data; name="token"\r\n\r\n\xff\xfe\r\n--XX--\r\n', False, {400, 403}),
    ]
    problems: list[str] = []
    async with nothing_stored():
        for name, headers, body, chunked, statuses in cases:
            answer = await raw_request(url, "POST", "/app/login", headers, body, chunked=chunked)
            if answer.status not in statuses:
                problems.append(f"{name}: status {answer.status} {answer.body[:160]!r}")
    assert not problems + unhandled(caplog), "\n".join(problems + unhandled(caplog))
    assert not await WebSession.exists()
