"""Calling the Mini App API as Telegram's webview would: with signed initData, or a browser session."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
from tgsim import Simulator

from tests.conftest import Frontdesk


class AppClient:
    """One person's calls: `Authorization: tma <initData>` when given, else the session's cookies."""

    def __init__(self, frontdesk: Frontdesk, session: aiohttp.ClientSession, init_data: str | None = None,
                 bot: int | None = None) -> None:
        self.base = frontdesk.url
        self.session = session
        self.init_data = init_data
        self.bot = bot  # the bot the page was opened for (its `?bot=`), named in X-Frontdesk-Bot
        self.csrf: str | None = None

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Authorization": f"tma {self.init_data}"} if self.init_data else {}
        if self.bot is not None:
            headers["X-Frontdesk-Bot"] = str(self.bot)
        return {**headers, **(extra or {})}

    async def call(self, method: str, path: str, body: Any = None, *, csrf: bool = True,
                   headers: dict[str, str] | None = None) -> tuple[int, Any]:
        extra = dict(headers or {})
        if csrf and self.csrf and method not in ("GET", "HEAD"):
            extra["X-CSRF-Token"] = self.csrf
        async with self.session.request(method, self.base + path, json=body, headers=self.headers(extra)) as response:
            data = await response.json(content_type=None) if response.content_type == "application/json" else \
                await response.text()
            return response.status, data

    async def get(self, path: str) -> Any:
        status, data = await self.call("GET", path)
        assert status == 200, (path, status, data)
        return data

    async def post(self, path: str, body: Any = None) -> Any:
        status, data = await self.call("POST", path, body if body is not None else {})
        assert status in (200, 201), (path, status, data)
        return data


@contextlib.asynccontextmanager
async def app_client(frontdesk: Frontdesk, sim: Simulator | None = None, user_id: int | None = None, *,
                     bot: int | None = None, **init_fields: Any) -> AsyncIterator[AppClient]:
    """A client for `user_id` (signed by tgsim with the bot's token: another bot's with `signed_by=TOKEN`), or an
    anonymous one; `bot` names the bot its calls are for (the page's `?bot=`). With an https
    PUBLIC_BASE_URL it is a browser that reached the server there (through a proxy that ends TLS): it sends
    `Secure` cookies to the server's plain-http address."""
    secure = [frontdesk.url, frontdesk.url.replace("http", "ws")] if frontdesk.settings.public_address.https else None
    jar = aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=secure)
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        if "signed_by" in init_fields:
            init_fields["bot"] = init_fields.pop("signed_by")
        init_data = sim.init_data(user_id, **init_fields) if sim is not None and user_id is not None else None
        yield AppClient(frontdesk, session, init_data, bot)


LINK = re.compile(r"(https?://\S+/app/login\?token=[\w-]+)")


async def dashboard_link(sim: Simulator, user_id: int) -> str:
    """Ask the bot for a browser link in the private chat, as a staff member does."""
    before = len(sim.chat_history(user_id))
    sim.send_command(user_id, "dashboard")
    await sim.wait_until(lambda: len(sim.chat_history(user_id)) > before + 1, 10, "the dashboard link")
    text = sim.chat_history(user_id)[-1]["text"]
    found = LINK.search(text)
    assert found, text
    return found.group(1)


HIDDEN_FIELD = re.compile(r'<input type="hidden" name="(\w+)" value="([^"]*)">')


async def login_form(client: AppClient, link: str) -> dict[str, str]:
    """Open the link's page: the fields its form sends (the page's cookie lands in the client)."""
    token = link.rsplit("token=", 1)[1]
    async with client.session.get(client.base + "/app/login", params={"token": token}) as page:
        assert page.status == 200
        fields = dict(HIDDEN_FIELD.findall(await page.text()))
    assert fields["token"] == token
    return fields


async def sign_in(client: AppClient, link: str) -> int:
    """Open the link's page and press its button: the session's cookies land in the client."""
    fields = await login_form(client, link)
    async with client.session.post(client.base + "/app/login", data=fields, headers={"Sec-Fetch-Site": "same-origin"},
                                   allow_redirects=False) as response:
        status = response.status
    if status == 303:
        me = await client.get("/api/me")
        client.csrf = me["csrf_token"]
    return status


# The outbox workers and the knowledge's schedule query on their own (the lane's advisory lock names no table):
# what a page costs leaves them out.
BACKGROUND_QUERIES = ("outbox_job", "advisory", "knowledge_")


@contextlib.contextmanager
def statements_sent() -> Iterator[list[str]]:
    """Every SQL statement sent while inside, from Tortoise's own query log."""
    sent: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            sent.append(record.getMessage())

    logger, collect = logging.getLogger("tortoise.db_client"), Collect(logging.DEBUG)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(collect)
    try:
        yield sent
    finally:
        logger.removeHandler(collect)
        logger.setLevel(level)
