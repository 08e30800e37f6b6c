"""Live updates for open Mini App pages: a WebSocket told whenever a conversation it may see changes.

A page authenticates like the API: by its session cookie (checked with the Origin at the
handshake), or with a first frame `{"type": "auth", "init_data": "...", "bot": 2}` from inside Telegram
(`bot`: what the API's calls name in X-Frontdesk-Bot). A socket hears of its caller's bot only.
Events name a conversation only (`{"type": "conversation", "id": 12}`); the page then asks the
API for what changed, so every rule about who sees what stays in one place.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from miniapp.api import ApiError
from miniapp.auth import SESSION_COOKIE, Caller, authenticate, caller_from_init_data
from miniapp.inputs import parse_json
from miniapp.origin import from_own_page
from services.inbox import InboxFeed

log = logging.getLogger(__name__)

AUTH_TIMEOUT = 10.0
CLOSE_UNAUTHORIZED = 4401


@dataclass(eq=False)
class Listener:
    socket: web.WebSocketResponse
    bot_id: int
    user_id: int
    staff: bool

    def wants(self, event: dict[str, Any]) -> bool:
        if event.get("bot") != self.bot_id:
            return False
        typing = event.get("typing")
        if isinstance(typing, dict):  # staff presence: for the other staff only
            return self.staff and typing.get("id") != self.user_id
        return self.staff or event.get("user") == self.user_id


class LiveHub:
    """This instance's open pages; the bus brings events from every instance."""

    def __init__(self, feed: InboxFeed | None = None) -> None:
        self.listeners: set[Listener] = set()
        self.feed = feed  # where a staff member's typing is announced (to every instance)

    async def on_event(self, event: dict[str, Any]) -> None:
        typing = event.get("typing")
        frame = json.dumps({"type": "typing", "id": event.get("conversation"), "by": typing}
                           if isinstance(typing, dict) else {"type": "conversation", "id": event.get("conversation")})
        for listener in [listener for listener in self.listeners if listener.wants(event)]:
            if listener.socket.closed:
                continue
            with contextlib.suppress(ConnectionError, RuntimeError):
                await listener.socket.send_str(frame)

    async def close_all(self) -> None:
        for listener in list(self.listeners):
            with contextlib.suppress(Exception):
                await listener.socket.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")


LIVE = web.AppKey("miniapp_live", LiveHub)


async def _caller_by_frame(request: web.Request, socket: web.WebSocketResponse) -> Caller | None:
    try:
        frame = await socket.receive(timeout=AUTH_TIMEOUT)
    except TimeoutError:
        return None
    if frame.type != WSMsgType.TEXT:
        return None
    try:
        data = parse_json(frame.data)
    except ValueError:
        return None
    init_data = data.get("init_data") if isinstance(data, dict) and data.get("type") == "auth" else None
    if not isinstance(init_data, str):
        return None
    named = data.get("bot")
    if isinstance(named, bool) or not isinstance(named, int | str | None):
        return None
    try:
        return await caller_from_init_data(request, init_data, None if named is None else str(named))
    except ApiError:
        return None


async def live_socket(request: web.Request) -> web.WebSocketResponse:
    hub = request.app[LIVE]
    socket = web.WebSocketResponse(heartbeat=30.0, max_msg_size=16 * 1024)
    # A cookie rides along with any page's WebSocket: only our own pages may use it.
    caller: Caller | None = None
    if from_own_page(request) and request.cookies.get(SESSION_COOKIE):
        with contextlib.suppress(ApiError):
            caller = await authenticate(request)
    await socket.prepare(request)
    if caller is None:
        caller = await _caller_by_frame(request, socket)
    if caller is None:
        await socket.close(code=CLOSE_UNAUTHORIZED, message=b"unauthorized")
        return socket
    listener = Listener(socket, caller.bot_id, caller.user.id, caller.staff)
    hub.listeners.add(listener)
    try:
        await socket.send_str(json.dumps({"type": "ready", "role": caller.role.value}))
        async for message in socket:
            if message.type == WSMsgType.TEXT and message.data == "ping":
                await socket.send_str("pong")
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        hub.listeners.discard(listener)
    return socket
