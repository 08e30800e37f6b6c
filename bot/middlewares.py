"""The one outer middleware: who is this (the customer, if known) and which locale to speak.

Also the shape of the data handlers receive by name (aiogram's "middleware data typing"):
WorkflowData is what create_dispatcher is given, HandlerData all a handler may ask for.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict, cast

from aiogram.dispatcher.middlewares.data import I18nData, MiddlewareData
from aiogram.filters import CommandObject
from aiogram.filters.callback_data import CallbackData
from aiogram.types import TelegramObject
from aiogram.utils.i18n import I18n, I18nMiddleware

from bot.settings import Settings
from models import Role, User
from services import conversations
from services.flow import ConversationFlow
from services.generation import Generations
from services.i18n import Translate, pick_locale
from services.limits import RateLimiter
from services.ports import Messenger
from services.staff import ManagerChat, StaffDirectory, WorkingHoursSource
from services.studio.chat import StudioChat
from services.widget import WidgetLive


class WorkflowData(TypedDict):
    """The dispatcher's workflow data: the same for every update and every bot (bot/app.py's frontdesk_context)."""

    settings: Settings
    limiter: RateLimiter
    generations: Generations
    translate: Translate
    hours: WorkingHoursSource
    widget_live: WidgetLive
    flow: ConversationFlow  # each conversation event: one call (services/flow.py)
    studio_chat: StudioChat  # /improve and "Run it"
    staff_directory: StaffDirectory


class HandlerData(MiddlewareData, I18nData, WorkflowData, total=False):
    """Everything a handler or filter may take by name: aiogram's, the workflow data, then per update."""

    tenant_id: int  # bot/fleet.py's TenantMiddleware: the business of the bot the update came to
    messenger: Messenger  # ... and that bot, to write as it
    customer: User | None  # IdentityMiddleware: the customer's row, if they have one (never created here)
    command: NotRequired[CommandObject]  # a Command filter matched
    callback_data: NotRequired[CallbackData]  # a CallbackData filter matched
    staff: NotRequired[User]  # handlers/manager_desk.py's filters: staff who may act in the manager chat ...
    desk_chat: NotRequired[ManagerChat]  # ... and that chat
    role: NotRequired[Role]  # ... or the role of a member who may not act


class IdentityMiddleware(I18nMiddleware):
    """Reads (never writes) the customer row; puts `customer` into the handler's data."""

    def __init__(self, i18n: I18n) -> None:
        super().__init__(i18n)

    async def get_locale(self, event: TelegramObject, data: dict[str, Any]) -> str:
        known = cast(HandlerData, data)  # aiogram's signature says dict; this is what it holds
        from_user = known.get("event_from_user")
        customer = None
        if from_user is not None and not from_user.is_bot:
            customer = await conversations.find_customer(known["tenant_id"], from_user.id)
        known["customer"] = customer
        return pick_locale(
            customer.language if customer else None,
            from_user.language_code if from_user else None,
            default=self.i18n.default_locale,
        )
