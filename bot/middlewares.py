"""The one outer middleware: who is this (the customer, if known) and which locale to speak."""

from __future__ import annotations

from typing import Any

from aiogram.types import TelegramObject
from aiogram.types import User as TelegramUser
from aiogram.utils.i18n import I18n, I18nMiddleware

from models import Bot as Tenant
from services import conversations
from services.i18n import pick_locale


class IdentityMiddleware(I18nMiddleware):
    """Reads (never writes) the customer row; puts `customer` into the handler's data."""

    def __init__(self, i18n: I18n) -> None:
        super().__init__(i18n)

    async def get_locale(self, event: TelegramObject, data: dict[str, Any]) -> str:
        from_user: TelegramUser | None = data.get("event_from_user")
        tenant: Tenant = data["tenant"]
        customer = None
        if from_user is not None and not from_user.is_bot:
            customer = await conversations.find_customer(tenant.id, from_user.id)
        data["customer"] = customer
        return pick_locale(
            customer.language if customer else None,
            from_user.language_code if from_user else None,
            default=self.i18n.default_locale,
        )
