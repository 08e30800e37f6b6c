"""Typed keys of the aiohttp application."""

from __future__ import annotations

from dataclasses import dataclass

from aiogram import Bot, Dispatcher
from aiohttp import web
from redis.asyncio import Redis

from bot.dedup import RecentUpdates
from bot.settings import Settings
from services.outbox import Outboxes


@dataclass
class TelegramRuntime:
    bot: Bot
    dispatcher: Dispatcher
    secret: str
    recent: RecentUpdates
    outbox: Outboxes


SETTINGS = web.AppKey("settings", Settings)
TELEGRAM = web.AppKey("telegram", TelegramRuntime)
REDIS = web.AppKey("redis", Redis)
