"""tgsim behind a proxy that can answer some Bot API calls with an error, as Telegram sometimes does
(a message it will not take, a bad gateway); every other call reaches tgsim unchanged."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import web
from tgsim import Simulator

from tests.conftest import free_port

# (the Bot API method, the request's body) -> None to pass it on, or (HTTP status, Telegram's description)
Refusal = Callable[[str, bytes], tuple[int, str] | None]


@asynccontextmanager
async def telegram_refusing(sim: Simulator, refuse: Refusal) -> AsyncIterator[tuple[str, list[str]]]:
    """The proxy's base URL (for TELEGRAM_API_BASE) and the methods it refused so far."""
    refusals: list[str] = []

    async def forward(request: web.Request) -> web.Response:
        body = await request.read()
        method = request.path.rsplit("/", 1)[-1]
        refused = refuse(method, body)
        if refused is not None:
            refusals.append(method)
            status, description = refused
            return web.json_response({"ok": False, "error_code": status, "description": description}, status=status)
        async with http.request(request.method, sim.base_url + request.path_qs, data=body,
                                headers={"Content-Type": request.headers.get("Content-Type", "")}) as answer:
            return web.Response(body=await answer.read(), status=answer.status,
                                headers={"Content-Type": answer.headers.get("Content-Type", "application/json")})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    runner = web.AppRunner(app, access_log=None)
    async with aiohttp.ClientSession() as http:
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            yield f"http://127.0.0.1:{port}", refusals
        finally:
            await runner.cleanup()
