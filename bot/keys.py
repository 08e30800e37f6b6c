"""Typed keys of the aiohttp application."""

from __future__ import annotations

from dataclasses import dataclass

from aiogram import Dispatcher
from aiohttp import web
from redis.asyncio import Redis

from bot.fleet import Fleet
from bot.settings import Settings
from services.outbox import Outboxes
from services.redaction import Secrets
from services.secrets_box import SecretBox


@dataclass
class TelegramRuntime:
    dispatcher: Dispatcher  # one for every bot
    fleet: Fleet  # the bots served here: each one's webhook key, secret and handled update ids
    outbox: Outboxes


SETTINGS = web.AppKey("settings", Settings)
TELEGRAM = web.AppKey("telegram", TelegramRuntime)
REDIS = web.AppKey("redis", Redis)
SECRETS = web.AppKey("secrets", Secrets)  # what logs redact; the same object configure_logging got
BOX = web.AppKey("secret_box", SecretBox)  # ENCRYPTION_KEY's: seals secrets stored in the database
