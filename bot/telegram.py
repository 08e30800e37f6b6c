"""Telegram side of the composition root: the Bot, the Dispatcher, commands and update intake."""

from __future__ import annotations

import logging
from typing import Unpack

from aiogram import Bot, Dispatcher
from aiogram.dispatcher.middlewares.base import BaseMiddleware
from aiogram.fsm.storage.base import BaseStorage
from aiogram.types import BotCommand, BotCommandScopeAllPrivateChats, MenuButtonWebApp, WebAppInfo
from aiogram.utils.i18n import I18n

from bot.middlewares import IdentityMiddleware, WorkflowData
from handlers import get_routers
from services.i18n import N_, SUPPORTED_LOCALES

log = logging.getLogger(__name__)

COMMANDS = [
    ("start", N_("Start")),
    ("new", N_("Start a new conversation")),
    ("human", N_("Talk to a person")),
    ("templates", N_("Find a prompt template")),
    ("language", N_("Change the language")),
    ("improve", N_("Improve a prompt")),
    ("mydata", N_("Download my data")),
    ("deletemydata", N_("Delete my data")),
    ("help", N_("Help")),
]


def create_dispatcher(i18n: I18n, storage: BaseStorage, tenancy: BaseMiddleware,
                      **workflow_data: Unpack[WorkflowData]) -> Dispatcher:
    """One dispatcher for every bot: `tenancy` (bot/fleet.py) says per update which bot's business it is."""
    dispatcher = Dispatcher(storage=storage, i18n=i18n, **workflow_data)
    dispatcher.update.outer_middleware(tenancy)
    identity = IdentityMiddleware(i18n)
    dispatcher.message.outer_middleware(identity)
    dispatcher.callback_query.outer_middleware(identity)
    dispatcher.my_chat_member.outer_middleware(identity)
    dispatcher.edited_message.outer_middleware(identity)
    dispatcher.include_routers(*get_routers())
    return dispatcher


async def set_commands(bot: Bot, i18n: I18n) -> None:
    """The command menu, in every supported language (the default one for everyone else)."""
    scope = BotCommandScopeAllPrivateChats()
    for locale in (None, *SUPPORTED_LOCALES):
        commands = [BotCommand(command=name, description=i18n.gettext(text, locale=locale or i18n.default_locale))
                    for name, text in COMMANDS]
        await bot.set_my_commands(commands, scope=scope, language_code=locale)


async def set_menu_button(bot: Bot, url: str, text: str) -> None:
    """The button beside the message box opens the Mini App (Telegram requires an https address)."""
    await bot.set_chat_menu_button(menu_button=MenuButtonWebApp(text=text, web_app=WebAppInfo(url=url)))
