"""Typed keys of the aiohttp application."""

from __future__ import annotations

from dataclasses import dataclass

from aiogram import Bot, Dispatcher
from aiohttp import web

from bot.settings import Settings
from bot.telegram import RecentUpdates
from services.outbox import OutboxWorker


@dataclass
class TelegramRuntime:
    bot: Bot
    dispatcher: Dispatcher
    secret: str
    recent: RecentUpdates
    outbox: OutboxWorker


SETTINGS = web.AppKey("settings", Settings)
TELEGRAM = web.AppKey("telegram", TelegramRuntime)
