"""A website visitor's side of the widget protocol, spoken the way widget.js speaks it."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from models import WidgetSite
from services.widget import DEMO_SITE_KEY, identity_signature


@dataclass
class VisitorSocket:
    """One open widget: the frames it received, and helpers to wait for the ones a test expects."""

    socket: aiohttp.ClientWebSocketResponse
    frames: list[dict[str, Any]] = field(default_factory=list)

    async def next(self, within: float = 10.0) -> dict[str, Any]:
        message = await self.socket.receive(timeout=within)
        if message.type != aiohttp.WSMsgType.TEXT:
            raise AssertionError(f"the socket closed ({message.type}, {message.data!r}, {message.extra!r})")
        frame: dict[str, Any] = json.loads(message.data)
        self.frames.append(frame)
        return frame

    async def until(self, wanted: Any, within: float = 10.0) -> dict[str, Any]:
        """Read frames until one satisfies `wanted(frame)`; return it."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError(f"no such frame; got {self.frames}")
            frame = await self.next(left)
            if wanted(frame):
                return frame

    async def all_handled(self, within: float = 10.0) -> list[dict[str, Any]]:
        """Wait until the server has handled every frame sent so far; return the frames it sent meanwhile.

        The positive event a negative check ("that frame got no answer") waits for: the server reads
        a socket's frames in order and answers a ping when it reaches it, so once the pong is back
        every frame before the ping was handled. Needs a socket opened with `autoping=False`, which
        hands the pong over instead of swallowing it.
        """
        token = uuid.uuid4().bytes
        await self.socket.ping(token)
        came: list[dict[str, Any]] = []
        deadline = asyncio.get_running_loop().time() + within
        while True:
            message = await self.socket.receive(timeout=max(0.0, deadline - asyncio.get_running_loop().time()))
            if message.type == aiohttp.WSMsgType.PONG and message.data == token:
                return came
            if message.type == aiohttp.WSMsgType.PING:
                await self.socket.pong(message.data)
            elif message.type == aiohttp.WSMsgType.TEXT:
                frame: dict[str, Any] = json.loads(message.data)
                self.frames.append(frame)
                came.append(frame)
            elif message.type != aiohttp.WSMsgType.PONG:
                raise AssertionError(f"the socket closed ({message.type}, {message.data!r}, {message.extra!r})")

    async def send_message(self, text: str, client_id: str | None = None) -> str:
        client_id = client_id or str(uuid.uuid4())
        await self.socket.send_json({"type": "message", "client_id": client_id, "text": text})
        return client_id

    def messages(self) -> list[dict[str, Any]]:
        return [frame for frame in self.frames if frame["type"] == "message"]


def origin_of(url: str) -> str:
    return url.rstrip("/")


def signed_in(site: WidgetSite, user_id: str, name: str = "", *, at: int | None = None,
              secret: str | None = None) -> dict[str, Any]:
    """What a site's page puts in `hello.user` for its logged-in user, as its server signs it (now, by default)."""
    moment = int(time.time()) if at is None else at
    return {"id": user_id, "time": moment, "hash": identity_signature(site, user_id, moment, secret), "name": name}


async def open_widget(http: aiohttp.ClientSession, base_url: str, *, site: str = DEMO_SITE_KEY,
                      token: str | None = None, after: int | None = None, origin: str | None = None,
                      user: dict[str, Any] | None = None, lang: str = "en",
                      headers: dict[str, str] | None = None,
                      autoping: bool = True) -> tuple[VisitorSocket, dict[str, Any]]:
    """Connect and say hello; returns the socket and the server's first frame (welcome or error)."""
    socket = await http.ws_connect(base_url + "/widget/ws", origin=origin or origin_of(base_url), headers=headers,
                                   autoping=autoping)
    visitor = VisitorSocket(socket)
    hello: dict[str, Any] = {"type": "hello", "site": site, "token": token, "after": after, "lang": lang}
    if user is not None:
        hello["user"] = user
    await socket.send_json(hello)
    return visitor, await visitor.next()


def is_answer(frame: dict[str, Any], to: int | None = None) -> bool:
    return frame["type"] == "message" and frame["author"] in ("ai", "system") and (
        to is None or frame.get("reply_to") == to)
