"""The widget sockets open on this instance, and the live events that reach them.

Every instance listens on the event bus's widget channel; an event names a visitor, and the
instance holding that visitor's sockets (one per open tab) forwards the frame to them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from typing import Any

from aiohttp import WSCloseCode, web
from prometheus_client import Gauge

from services.events import EventBus, Payload
from services.widget import WIDGET_CHANNEL

log = logging.getLogger(__name__)

SEND_TIMEOUT = 5.0  # a socket that cannot take a frame in this long is closed; the widget resumes
CLOSE_SIGNED_OUT = 4401  # as a refused token: the widget forgets its token


class WidgetHub:
    def __init__(self, bus: EventBus, gauge: Gauge | None = None) -> None:
        self._sockets: dict[str, set[web.WebSocketResponse]] = defaultdict(set)
        self._gauge = gauge
        self._open = 0
        bus.subscribe(WIDGET_CHANNEL, self._on_event)

    @property
    def open_sockets(self) -> int:
        return self._open

    def join(self, visitor_id: str, socket: web.WebSocketResponse) -> None:
        if socket not in self._sockets[visitor_id]:
            self._sockets[visitor_id].add(socket)
            self._count(+1)

    def leave(self, visitor_id: str, socket: web.WebSocketResponse) -> None:
        sockets = self._sockets.get(visitor_id)
        if sockets is None or socket not in sockets:
            return
        sockets.discard(socket)
        if not sockets:
            del self._sockets[visitor_id]
        self._count(-1)

    def _count(self, change: int) -> None:
        self._open += change
        if self._gauge is not None:
            self._gauge.set(self._open)

    async def send(self, visitor_id: str, frame: dict[str, Any]) -> None:
        sockets = list(self._sockets.get(visitor_id, ()))
        await asyncio.gather(*(self._send_one(visitor_id, socket, frame) for socket in sockets))

    async def _send_one(self, visitor_id: str, socket: web.WebSocketResponse, frame: dict[str, Any]) -> None:
        try:
            await asyncio.wait_for(socket.send_json(frame), SEND_TIMEOUT)
        except (ConnectionError, RuntimeError, TimeoutError) as error:
            log.info("widget socket dropped while sending: %r", error)
            self.leave(visitor_id, socket)
            with contextlib.suppress(Exception):
                await socket.close()

    async def _on_event(self, event: Payload) -> None:
        visitor_id = str(event.get("visitor") or "")
        frame = event.get("frame")
        if visitor_id in self._sockets and isinstance(frame, dict):
            await self.send(visitor_id, frame)
            if event.get("close"):  # the visitor logged out: nothing more reaches these sockets
                await self.close_visitor(visitor_id)

    async def close_visitor(self, visitor_id: str) -> None:
        sockets = list(self._sockets.get(visitor_id, ()))
        for socket in sockets:
            self.leave(visitor_id, socket)
        await asyncio.gather(*(socket.close(code=CLOSE_SIGNED_OUT, message=b"signed_out") for socket in sockets),
                             return_exceptions=True)

    async def close_all(self) -> None:
        """On shutdown: every widget reconnects (to another instance) and resumes where it was."""
        sockets = [socket for group in self._sockets.values() for socket in group]
        await asyncio.gather(*(socket.close(code=WSCloseCode.GOING_AWAY, message=b"restarting")
                               for socket in sockets), return_exceptions=True)
