"""Typed keys of the aiohttp application."""

from __future__ import annotations

from dataclasses import dataclass

from aiogram import Dispatcher
from aiohttp import web
from redis.asyncio import Redis

from bot.fleet import Fleet
from bot.intake import IntakeWorker
from bot.settings import Settings
from services.intake import GroupCommit
from services.outbox import Outboxes
from services.redaction import Secrets
from services.secrets_box import SecretBox


@dataclass
class TelegramRuntime:
    dispatcher: Dispatcher  # one for every bot
    fleet: Fleet  # the bots served here: each one's webhook key and secret
    outbox: Outboxes
    intake: GroupCommit  # where the webhook and long polling store updates
    intake_worker: IntakeWorker  # where they are handled (started only on an instance that works)


SETTINGS = web.AppKey("settings", Settings)
TELEGRAM = web.AppKey("telegram", TelegramRuntime)
REDIS = web.AppKey("redis", Redis)
SECRETS = web.AppKey("secrets", Secrets)  # what logs redact; the same object configure_logging got
BOX = web.AppKey("secret_box", SecretBox)  # ENCRYPTION_KEY's: seals secrets stored in the database
