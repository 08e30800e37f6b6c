"""One address flooding the widget: every frame kind is limited, sockets are capped, and an IPv6
network's /64 counts as one address."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from models import AuthorKind, Message
from tests.conftest import Frontdesk, eventually
from tests.widget_helpers import VisitorSocket, open_widget


@pytest.fixture
async def http() -> Any:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.mark.parametrize("frontdesk_settings", [{"use_ai": False}], indirect=True)
async def test_a_hundred_asks_for_a_person_store_one_notice(frontdesk: Frontdesk, http: aiohttp.ClientSession) -> None:
    visitor, _ = await open_widget(http, frontdesk.url)
    for _ in range(100):
        await visitor.socket.send_json({"type": "person"})
    await visitor.until(lambda f: sum(1 for g in visitor.frames if g["type"] in ("error", "status")) >= 100)
    errors = [frame for frame in visitor.frames if frame["type"] == "error"]
    assert len(errors) >= 80
    assert {frame["code"] for frame in errors} == {"rate_limited"}
    assert await Message.filter(author_kind=AuthorKind.SYSTEM).count() == 1
    await visitor.socket.close()


@pytest.mark.parametrize("frontdesk_settings", [{"WIDGET_IP_FRAMES_PER_MINUTE": "20", "use_ai": False}],
                         indirect=True)
async def test_a_flood_of_typing_frames_is_told_once_then_ignored(frontdesk: Frontdesk,
                                                                  http: aiohttp.ClientSession) -> None:
    visitor, _ = await open_widget(http, frontdesk.url, autoping=False)  # the hello is a frame too
    for _ in range(200):
        await visitor.socket.send_json({"type": "typing"})
    await visitor.send_message("still here?")
    came = await visitor.all_handled()
    assert [(frame["type"], frame.get("code")) for frame in came] == [("error", "rate_limited")]
    assert await Message.all().count() == 0  # the other 180 frames and the message got nothing
    await visitor.socket.close()


async def _sockets(http: aiohttp.ClientSession, frontdesk: Frontdesk, address: str,
                   count: int) -> list[tuple[VisitorSocket, dict[str, Any]]]:
    return [await open_widget(http, frontdesk.url, headers={"X-Forwarded-For": address}) for _ in range(count)]


@pytest.mark.parametrize("frontdesk_settings", [{"WIDGET_MAX_SOCKETS_PER_ADDRESS": "3",
                                                 "TRUST_PROXY_HEADERS": "true", "use_ai": False}], indirect=True)
async def test_one_address_may_hold_only_so_many_sockets(frontdesk: Frontdesk, http: aiohttp.ClientSession) -> None:
    held = await _sockets(http, frontdesk, "203.0.113.7", 3)
    assert [first["type"] for _, first in held] == ["welcome"] * 3
    [(extra, refused)] = await _sockets(http, frontdesk, "203.0.113.7", 1)
    assert refused["code"] == "too_many_sockets"
    assert refused["message"] == "Too many chat windows are open from your network. Close some, then try again."
    closing = await extra.socket.receive(timeout=5)
    assert (closing.type, closing.data, closing.extra) == (aiohttp.WSMsgType.CLOSE, 4429, "too_many_sockets")
    [(_, other)] = await _sockets(http, frontdesk, "203.0.113.8", 1)
    assert other["type"] == "welcome"
    await held[0][0].socket.close()

    async def room_again() -> bool:
        [(socket, first)] = await _sockets(http, frontdesk, "203.0.113.7", 1)
        await socket.socket.close()
        return bool(first["type"] == "welcome")

    await eventually(room_again, "a closed socket's place freed")


@pytest.mark.parametrize("frontdesk_settings", [{"WIDGET_MAX_SOCKETS_PER_ADDRESS": "2",
                                                 "WIDGET_IP_MESSAGES_PER_MINUTE": "2",
                                                 "TRUST_PROXY_HEADERS": "true", "use_ai": False}], indirect=True)
async def test_addresses_in_one_ipv6_64_share_their_limits(frontdesk: Frontdesk, http: aiohttp.ClientSession) -> None:
    [(first, _)] = await _sockets(http, frontdesk, "2001:db8:5:7::1", 1)
    [(second, _)] = await _sockets(http, frontdesk, "2001:db8:5:7:ffff:1234:abcd:9", 1)
    [(_third, refused)] = await _sockets(http, frontdesk, "2001:db8:5:7::3", 1)
    assert refused["code"] == "too_many_sockets"
    [(neighbour, welcome)] = await _sockets(http, frontdesk, "2001:db8:5:8::1", 1)  # the next /64
    assert welcome["type"] == "welcome"
    for visitor, text in ((first, "one"), (second, "two")):
        await visitor.send_message(text)
        await visitor.until(lambda f, text=text: f["type"] == "message" and f["text"] == text)
    await first.send_message("three")
    assert (await first.until(lambda f: f["type"] == "error"))["code"] == "rate_limited"
    await neighbour.send_message("from next door")
    await neighbour.until(lambda f: f["type"] == "message" and f["text"] == "from next door")
    assert sorted(m.text for m in await Message.filter(author_kind=AuthorKind.CUSTOMER)) == [
        "from next door", "one", "two"]
    await asyncio.gather(first.socket.close(), second.socket.close(), neighbour.socket.close())


@pytest.mark.parametrize("frontdesk_settings", [{"WIDGET_MAX_SOCKETS_PER_ADDRESS": "2", "use_ai": False}],
                         indirect=True)
async def test_without_trust_proxy_headers_a_forged_forwarded_for_dodges_no_limit(
        frontdesk: Frontdesk, http: aiohttp.ClientSession) -> None:
    """TRUST_PROXY_HEADERS is off by default: every socket here comes from 127.0.0.1, whatever it claims."""
    held = [await _sockets(http, frontdesk, f"198.51.100.{n}", 1) for n in (1, 2)]
    assert [first["type"] for [(_, first)] in held] == ["welcome"] * 2
    [(_, refused)] = await _sockets(http, frontdesk, "198.51.100.3", 1)
    assert refused.get("code") == "too_many_sockets", refused
    await asyncio.gather(*(visitor.socket.close() for [(visitor, _)] in held))


@pytest.mark.parametrize("frontdesk_settings", [{"WIDGET_MAX_SOCKETS_PER_ADDRESS": "2", "TRUST_PROXY_HEADERS": "true",
                                                 "use_ai": False}], indirect=True)
async def test_behind_a_proxy_the_address_the_proxy_saw_counts_not_what_the_visitor_claims(
        frontdesk: Frontdesk, http: aiohttp.ClientSession) -> None:
    """The proxy appends the address it saw; whatever the visitor put before it is theirs to forge."""
    held = [await _sockets(http, frontdesk, f"198.51.100.{n}, 203.0.113.7", 1) for n in (1, 2)]
    assert [first["type"] for [(_, first)] in held] == ["welcome"] * 2
    [(_, refused)] = await _sockets(http, frontdesk, "198.51.100.3, 203.0.113.7", 1)
    assert refused.get("code") == "too_many_sockets", refused
    [(neighbour, welcome)] = await _sockets(http, frontdesk, "198.51.100.1, 203.0.113.8", 1)
    assert welcome["type"] == "welcome"  # another visitor behind the same proxy
    await asyncio.gather(neighbour.socket.close(), *(visitor.socket.close() for [(visitor, _)] in held))
