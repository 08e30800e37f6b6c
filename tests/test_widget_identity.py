"""A widget visitor's identity over time: tokens expire, a logout ends them everywhere, a signed-in
user needs a fresh identity hash, and a site's secret can be rotated with an overlap."""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from models import AuditLog, User, WidgetSite
from services import widget
from tests.conftest import Frontdesk
from tests.fake_ai import FakeAI
from tests.test_process import _run_cli
from tests.widget_helpers import VisitorSocket, is_answer, open_widget, signed_in


@pytest.fixture
async def http() -> Any:
    async with aiohttp.ClientSession() as session:
        yield session


async def _history(http: aiohttp.ClientSession, frontdesk: Frontdesk, token: str) -> tuple[int, dict[str, Any]]:
    async with http.get(f"{frontdesk.url}/widget/api/history?site=demo",
                        headers={"Authorization": f"Bearer {token}", "Origin": frontdesk.url}) as response:
        return response.status, await response.json()


async def _logout(http: aiohttp.ClientSession, frontdesk: Frontdesk, token: str) -> tuple[int, dict[str, Any]]:
    async with http.post(f"{frontdesk.url}/widget/api/logout?site=demo",
                         headers={"Authorization": f"Bearer {token}", "Origin": frontdesk.url}) as response:
        return response.status, await response.json()


async def _chat(visitor: VisitorSocket, text: str) -> dict[str, Any]:
    await visitor.send_message(text)
    mine = await visitor.until(lambda f: f["type"] == "message" and f["author"] == "customer")
    await visitor.until(lambda f: is_answer(f, mine["id"]))
    return mine


async def _refused(visitor: VisitorSocket, first: dict[str, Any]) -> tuple[str, int | None]:
    assert first["type"] == "error", first
    await visitor.socket.receive(timeout=5)  # the close frame
    return str(first["code"]), visitor.socket.close_code


async def test_a_token_replayed_after_logout_resumes_nothing(frontdesk: Frontdesk, ai: FakeAI,
                                                             http: aiohttp.ClientSession) -> None:
    ai.script.reply = "Your order ships tomorrow."
    visitor, welcome = await open_widget(http, frontdesk.url)
    await _chat(visitor, "Where is order 5521?")
    other_tab, second = await open_widget(http, frontdesk.url, token=welcome["token"])  # another tab
    token = second["token"]  # renewed on every visit
    async with http.options(f"{frontdesk.url}/widget/api/logout?site=demo",
                            headers={"Origin": frontdesk.url, "Access-Control-Request-Method": "POST"}) as preflight:
        assert "POST" in preflight.headers["Access-Control-Allow-Methods"]

    assert await _logout(http, frontdesk, token) == (200, {"signed_out": True})
    # The open tab is told, and closed: nothing more reaches it.
    assert (await other_tab.until(lambda f: f["type"] == "signed_out"))["type"] == "signed_out"
    closing = await other_tab.socket.receive(timeout=5)
    assert (closing.type, closing.data) == (aiohttp.WSMsgType.CLOSE, 4401)
    # An attacker replaying either token gets nothing: not the socket, not the history.
    for old in (welcome["token"], token):
        again, first = await open_widget(http, frontdesk.url, token=old)
        assert await _refused(again, first) == ("bad_token", 4401)
        status, body = await _history(http, frontdesk, old)
        assert (status, body["error"]["code"]) == (401, "bad_token")
        assert "5521" not in str(body)
    # Nor can an old token log out a later session.
    assert (await _logout(http, frontdesk, token))[0] == 401
    await visitor.socket.close()


async def test_a_signed_in_user_logs_out_and_only_a_newer_identity_hash_opens_their_chat(
        frontdesk: Frontdesk, ai: FakeAI, http: aiohttp.ClientSession) -> None:
    site = await WidgetSite.get(public_key="demo")
    page = signed_in(site, "customer-77", "Dana")  # what the shop's page carried while Dana was logged in
    laptop, welcome = await open_widget(http, frontdesk.url, user=page)
    await _chat(laptop, "My card ends in 4242")
    status, _ = await _history(http, frontdesk, welcome["token"])
    assert status == 200  # the token of a signed-in user reads the history while the hash is fresh

    assert (await _logout(http, frontdesk, welcome["token"]))[0] == 200
    await laptop.until(lambda f: f["type"] == "signed_out")
    replayed, first = await open_widget(http, frontdesk.url, user=page)
    assert await _refused(replayed, first) == ("bad_identity", 4401)
    status, _ = await _history(http, frontdesk, welcome["token"])
    assert status == 401
    # Dana logs in again: the shop signs a new hash, and her chat is there.
    fresh, back = await open_widget(http, frontdesk.url, user=signed_in(site, "customer-77", at=int(time.time()) + 2))
    assert back["type"] == "welcome"
    assert "4242" in (await fresh.until(lambda f: f["type"] == "message"))["text"]
    await fresh.socket.close()


async def test_a_signed_in_users_token_needs_a_fresh_identity_hash(frontdesk: Frontdesk, ai: FakeAI,
                                                                  http: aiohttp.ClientSession) -> None:
    site = await WidgetSite.get(public_key="demo")
    visitor, welcome = await open_widget(http, frontdesk.url, user=signed_in(site, "customer-9"))
    await _chat(visitor, "Hello from customer 9")
    await visitor.socket.close()
    # The token alone (the site's user logged out of the site, the token stayed in the browser).
    alone, first = await open_widget(http, frontdesk.url, token=welcome["token"])
    assert await _refused(alone, first) == ("bad_token", 4401)
    # A hash older than WIDGET_IDENTITY_MAX_AGE, and one without a time (the old format), are refused.
    stale = signed_in(site, "customer-9", at=int(time.time()) - 86400 - 60)
    legacy = {"id": "customer-9", "hash": hmac.new(site.secret.encode(), b"customer-9", hashlib.sha256).hexdigest()}
    for user in (stale, legacy):
        refused, first = await open_widget(http, frontdesk.url, user=user)
        assert await _refused(refused, first) == ("bad_identity", 4401)
    # A token issued for an identity hash that has since grown old no longer reads the history.
    old_hash_token = widget.issue_token(site, f"u{site.id}:customer-9", identity_time=int(time.time()) - 86400 - 60,
                                        secret_id=widget.secret_id(site.secret))
    assert (await _history(http, frontdesk, old_hash_token))[0] == 401
    assert (await _history(http, frontdesk, welcome["token"]))[0] == 200


async def test_tokens_expire_unless_the_visitor_comes_back(frontdesk: Frontdesk, http: aiohttp.ClientSession) -> None:
    site = await WidgetSite.get(public_key="demo")
    visitor, _welcome = await open_widget(http, frontdesk.url)
    await visitor.send_message("hello")
    await visitor.until(lambda f: f["type"] == "message")
    await visitor.socket.close()
    visitor_id = (await User.get(widget_visitor_id__startswith="v")).widget_visitor_id
    assert visitor_id is not None
    now = datetime.now(UTC)
    expired = widget.issue_token(site, visitor_id, now=now - timedelta(days=31))
    recent = widget.issue_token(site, visitor_id, now=now - timedelta(days=29))
    gone, first = await open_widget(http, frontdesk.url, token=expired)
    assert await _refused(gone, first) == ("bad_token", 4401)
    assert (await _history(http, frontdesk, expired))[0] == 401
    back, again = await open_widget(http, frontdesk.url, token=recent)
    assert again["type"] == "welcome"
    assert again["conversation"] is not None
    # The visit renewed it: the new token is good for another 30 days.
    renewed = widget.read_token(site, again["token"], widget.IdentityPolicy(), now=now + timedelta(days=29))
    assert renewed is not None
    assert renewed.visitor_id == visitor_id
    await back.socket.close()


async def test_a_rotated_secret_verifies_until_the_overlap_ends(frontdesk: Frontdesk, tmp_path: Path,
                                                                http: aiohttp.ClientSession) -> None:
    old = await WidgetSite.get(public_key="demo")
    database_url = frontdesk.settings.database_url
    rotated = _run_cli(tmp_path, database_url, "site", "rotate-secret", "demo", "--overlap-hours", "2")
    assert rotated.returncode == 0, rotated.stderr
    new_secret = rotated.stdout.strip().splitlines()[-1].rpartition(" ")[2]
    assert "the old secret works until" in rotated.stdout
    site = await WidgetSite.get(public_key="demo")
    assert site.secret == new_secret != old.secret
    for secret in (old.secret, new_secret):  # the shop's servers switch over during the overlap
        visitor, welcome = await open_widget(http, frontdesk.url, user=signed_in(site, "customer-5", secret=secret))
        assert welcome["type"] == "welcome"
        await visitor.socket.close()
    _, with_old = await open_widget(http, frontdesk.url, user=signed_in(site, "customer-5", secret=old.secret))

    # Two hours later the overlap is over: the old secret, and the tokens it led to, stop working.
    await WidgetSite.filter(id=site.id).update(previous_secret_until=datetime.now(UTC) - timedelta(seconds=1))
    refused, first = await open_widget(http, frontdesk.url, user=signed_in(site, "customer-5", secret=old.secret))
    assert await _refused(refused, first) == ("bad_identity", 4401)
    assert (await _history(http, frontdesk, with_old["token"]))[0] == 401
    _, with_new = await open_widget(http, frontdesk.url, user=signed_in(site, "customer-5", secret=new_secret))
    assert with_new["type"] == "welcome"
    # Without an overlap the replaced secret stops at once.
    assert _run_cli(tmp_path, database_url, "site", "rotate-secret", "demo", "--overlap-hours", "0").returncode == 0
    refused, first = await open_widget(http, frontdesk.url, user=signed_in(site, "customer-5", secret=new_secret))
    assert await _refused(refused, first) == ("bad_identity", 4401)
    assert (await _history(http, frontdesk, with_new["token"]))[0] == 401
    entries = await AuditLog.filter(action="site_rotate_secret").order_by("id")
    assert [entry.details["overlap_hours"] for entry in entries] == [2, 0]
    assert not any(old.secret in str(entry.details) or new_secret in str(entry.details) for entry in entries)

    unknown = _run_cli(tmp_path, database_url, "site", "rotate-secret", "nope")
    assert (unknown.returncode, "no site has the key" in unknown.stderr) == (1, True)
