"""`/improve` in the private chat, and the buttons under an improved prompt: "Save to a project", "Run it".

`/improve TEXT`, or `/improve` in reply to a message, queues the work (the model is called from the
outbox, streamed into the chat); the buttons act on the presser's own run only.
"""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandObject
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message, WebAppInfo
from aiogram.types import User as TelegramUser
from aiogram.utils.i18n import gettext as _

from bot.settings import Settings
from handlers.filters import in_private_chat
from handlers.identity import as_customer
from models import User
from services import conversations
from services.answering import SLOW_DOWN
from services.i18n import N_
from services.limits import RateLimiter, Verdict
from services.render import escape
from services.studio import chat
from services.studio.chat import StudioChat
from services.studio.projects import StudioError

USAGE = N_("Send me a prompt after the command, like “/improve Write a post about our new menu”, or reply "
           "/improve to a message with the prompt. I'll rewrite it so an AI model follows it better, and tell "
           "you what I changed.")
PROJECT_NAME = N_("From Telegram")
BLOCK_NAME = N_("Improved prompt")
SAVED = N_("Saved to your project “{project}” in the prompt studio.")
SAVED_BEFORE = N_("It's already saved in your project “{project}” in the prompt studio.")
OPEN_BUTTON = N_("✏️ Open in the studio")


class PromptRunAction(CallbackData, prefix="prun"):
    """The buttons under an improved prompt (services.studio.chat.button_data writes the same data)."""

    action: str  # "save" or "run"
    run: int  # the improve run's id


def studio_url(settings: Settings, bot_id: int, project_id: int) -> str:
    """The project in the bot's Mini App; empty without an https PUBLIC_BASE_URL (Telegram opens only those)."""
    return settings.public_address.mini_app_url_of(bot_id, "studio/project", id=project_id)


def _open_keyboard(settings: Settings, bot_id: int, project_id: int) -> InlineKeyboardMarkup | None:
    url = studio_url(settings, bot_id, project_id)
    if not url:
        return None
    return InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text=_(OPEN_BUTTON),
                                                                       web_app=WebAppInfo(url=url))]])


async def _person(tenant_id: int, settings: Settings, person: TelegramUser, customer: User | None) -> User:
    if customer is not None:
        return customer
    return await conversations.register_customer(tenant_id, as_customer(person), settings.default_locale)


async def _allowed(limiter: RateLimiter, tenant_id: int, person: TelegramUser) -> Verdict:
    """The customer's one rate limit, shared with their messages."""
    return await limiter.check(as_customer(person).rate_key(tenant_id))


async def improve_command(message: Message, command: CommandObject, tenant_id: int, settings: Settings,
                          customer: User | None, limiter: RateLimiter, studio_chat: StudioChat) -> None:
    text = (command.args or "").strip()
    quoted = message.reply_to_message
    if not text and quoted is not None:
        text = (quoted.text or quoted.caption or "").strip()
    if not text:
        await message.answer(escape(_(USAGE)))
        return
    assert message.from_user is not None  # a private chat's message has a sender
    verdict = await _allowed(limiter, tenant_id, message.from_user)
    if verdict != Verdict.ALLOW:
        if verdict == Verdict.WARN:
            await message.answer(escape(_(SLOW_DOWN)))
        return
    await studio_chat.request_improve(await _person(tenant_id, settings, message.from_user, customer), text,
                                      source=f"{message.chat.id}:{message.message_id}")


async def _refuse(query: CallbackQuery) -> None:
    await query.answer(_(chat.NOT_YOURS), show_alert=True)


async def save_pressed(query: CallbackQuery, callback_data: PromptRunAction, settings: Settings,
                       customer: User | None, bot: Bot) -> None:
    if customer is None:
        await _refuse(query)
        return
    try:
        saved = await chat.save_improved(customer, callback_data.run, project_name=_(PROJECT_NAME),
                                         block_name=_(BLOCK_NAME))
    except StudioError as error:
        if error.code == "not_yours":
            await _refuse(query)
            return
        await query.answer(chat.error_text(error, _), show_alert=True)
        return
    text = _(SAVED if saved.created else SAVED_BEFORE).format(project=saved.project.name)
    await query.answer()
    await bot.send_message(query.from_user.id, escape(text),
                           reply_markup=_open_keyboard(settings, int(customer.bot_id), saved.project.id))


async def run_pressed(query: CallbackQuery, callback_data: PromptRunAction, tenant_id: int, settings: Settings,
                      customer: User | None, limiter: RateLimiter, studio_chat: StudioChat, bot: Bot) -> None:
    if customer is None:
        await _refuse(query)
        return
    verdict = await _allowed(limiter, tenant_id, query.from_user)
    if verdict != Verdict.ALLOW:
        await query.answer(_(SLOW_DOWN) if verdict == Verdict.WARN else None)
        return
    try:
        await studio_chat.request_run(customer, callback_data.run)
    except StudioError as error:
        if error.code == "not_yours":
            await _refuse(query)
            return
        await query.answer()
        await _not_runnable(bot, query, error, settings, customer, callback_data.run)
        return
    await query.answer()


async def _not_runnable(bot: Bot, query: CallbackQuery, error: StudioError, settings: Settings, customer: User,
                        run_id: int) -> None:
    """Say what to fill in, and offer the studio: the saved project, or saving it there first."""
    project = await chat.project_of(customer, run_id)
    keyboard = _open_keyboard(settings, int(customer.bot_id), project.id) if project is not None else \
        InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(
            text=_(chat.SAVE_BUTTON), callback_data=PromptRunAction(action="save", run=run_id).pack())]])
    await bot.send_message(query.from_user.id, escape(chat.error_text(error, _)), reply_markup=keyboard)


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(in_private_chat)
    router.message.register(improve_command, Command("improve"))
    router.callback_query.register(save_pressed, PromptRunAction.filter(F.action == chat.SAVE))
    router.callback_query.register(run_pressed, PromptRunAction.filter(F.action == chat.RUN))
    return router
