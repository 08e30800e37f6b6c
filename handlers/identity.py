"""Telegram's view of a person, as the services want it."""

from __future__ import annotations

from aiogram.types import User as TelegramUser

from services.conversations import Customer


def as_customer(user: TelegramUser) -> Customer:
    return Customer(user.id, user.first_name, user.last_name or "", user.username or "", user.language_code or "")
