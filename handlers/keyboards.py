"""Inline keyboards shown to customers."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, WebAppInfo
from aiogram.utils.i18n import gettext as _

from services.i18n import LOCALE_NAMES

LANGUAGE_NAMES = LOCALE_NAMES  # the language menu: every language we speak


class LanguageChoice(CallbackData, prefix="lang"):
    code: str


class RateConversation(CallbackData, prefix="rate"):
    """The rating buttons sent when a conversation closes (services.desk writes the same data)."""

    conversation: int
    stars: int


class MenuAction(CallbackData, prefix="menu"):
    action: str  # "human" or "language"


def start_keyboard(mini_app_url: str) -> InlineKeyboardMarkup:
    rows = [
        [InlineKeyboardButton(text=_("👤 Talk to a person"), callback_data=MenuAction(action="human").pack())],
        [InlineKeyboardButton(text=_("🌐 Language"), callback_data=MenuAction(action="language").pack())],
    ]
    if mini_app_url:
        rows.append([InlineKeyboardButton(text=_("📱 Open the app"), web_app=WebAppInfo(url=mini_app_url))])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def language_keyboard() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[
        [InlineKeyboardButton(text=name, callback_data=LanguageChoice(code=code).pack())]
        for code, name in LANGUAGE_NAMES.items()
    ])
