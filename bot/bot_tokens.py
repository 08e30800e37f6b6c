"""Who a bot token belongs to: Telegram's `getMe`, for the `bots` commands.

One plain HTTP call rather than aiogram's client: importing aiogram builds its hundreds of pydantic types,
five seconds of CPU on a small server, which a command that asks one question should not pay.
"""

from __future__ import annotations

import aiohttp

from bot.settings import Settings
from services.bots import BotIdentity, Identify, TokenRefused

TIMEOUT = aiohttp.ClientTimeout(total=30)


def token_identifier(settings: Settings) -> Identify:
    """getMe with a token at the configured Bot API server: the bot's id and username, or TokenRefused."""

    async def identify(token: str) -> BotIdentity:
        url = f"{settings.telegram_api_base.rstrip('/')}/bot{token}/getMe"
        async with aiohttp.ClientSession(timeout=TIMEOUT) as http, http.get(url) as response:
            try:
                answer = await response.json(content_type=None)
            except ValueError as error:
                raise TokenRefused(f"Telegram answered {response.status} without JSON") from error
        if not isinstance(answer, dict) or not answer.get("ok"):
            description = answer.get("description") if isinstance(answer, dict) else None
            raise TokenRefused(f"Telegram refused the token ({description or response.status})")
        me = answer["result"]
        return BotIdentity(int(me["id"]), str(me.get("username") or ""))

    return identify
