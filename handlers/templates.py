"""`/templates QUERY` in a private chat: the prompt studio's template library from the bot.

The results (the caller's language first: only it when it has any) are buttons, eight at a time,
paged in place; a pressed one is sent in full, with a button that opens it in the studio. Which
query a results message answers is kept in the chat's FSM data, by message id: callback data holds
64 bytes, a query may not fit.
"""

from __future__ import annotations

from typing import Any

from aiogram import Bot, Router
from aiogram.filters import Command, CommandObject
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message, WebAppInfo
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _

from bot.settings import Settings
from handlers.filters import in_private_chat
from models import User
from services.render import escape
from services.studio import templates

PAGE = 8
SEARCHES = "template_searches"  # FSM data: {results message id: {"q": ..., "locale": ...}}
KEPT_SEARCHES = 5
MESSAGE_BUDGET = 4000  # of Telegram's 4096 characters (UTF-16 units) a template's message may use
BUTTON_CHARS = 60


class TemplatePick(CallbackData, prefix="tpl"):
    id: int


class TemplatePage(CallbackData, prefix="tplp"):
    offset: int


def _results(page: templates.SearchPage, query: str, offset: int) -> tuple[str, InlineKeyboardMarkup | None]:
    if not page.hits:
        if query:
            text = escape(_("Nothing found for «{query}». Try other words, or send /templates to see the most "
                            "used ones.")).format(query=escape(query))
        else:
            text = escape(_("There are no templates yet."))
        return text, None
    span = {"first": offset + 1, "last": offset + len(page.hits)}
    if query:
        text = escape(_("Templates for «{query}» ({first}–{last}). Tap one to read it:")).format(
            query=escape(query), **span)
    else:
        text = escape(_("The most used templates ({first}–{last}). Tap one to read it:").format(**span))
    rows = [[InlineKeyboardButton(text=_shorten(hit.template.title), callback_data=TemplatePick(
        id=hit.template.id).pack())] for hit in page.hits]
    paging = []
    if offset:
        paging.append(InlineKeyboardButton(text=_("⬅️ Back"), callback_data=TemplatePage(
            offset=max(0, offset - PAGE)).pack()))
    if page.next_offset is not None:
        paging.append(InlineKeyboardButton(text=_("More ➡️"), callback_data=TemplatePage(
            offset=page.next_offset).pack()))
    if paging:
        rows.append(paging)
    return text, InlineKeyboardMarkup(inline_keyboard=rows)


def _shorten(text: str, limit: int = BUTTON_CHARS) -> str:
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def _units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def template_message(template: templates.TemplateView) -> str:
    """The template as Telegram HTML within one message: a long text is cut at a line end, and says so."""
    head = [f"<b>{escape(template.title)}</b>"]
    if template.description:
        head.append(f"<i>{escape(template.description)}</i>")
    if template.tags:
        head.append("🏷 " + escape(", ".join(template.tags)))
    shortened = _("Shortened: the whole text has {count} characters.").format(count=len(template.body))
    room = MESSAGE_BUDGET - _units("\n".join(head) + "\n\n\n" + shortened) - 1
    body = template.body
    if _units(body) > room:
        cut = body[:room]
        while _units(cut) > room:  # characters outside the BMP count twice
            cut = cut[:-(_units(cut) - room)]
        line_end = cut.rfind("\n")
        body = (cut[:line_end] if line_end > room * 0.7 else cut).rstrip() + "…"
    text = "\n".join(head) + f"\n\n<pre>{escape(body)}</pre>"
    return text + (f"\n{escape(shortened)}" if body != template.body else "")


async def _remember(state: FSMContext, message_id: int, query: str, locale: str | None) -> None:
    searches: dict[str, Any] = dict((await state.get_data()).get(SEARCHES, {}))
    searches[str(message_id)] = {"q": query, "locale": locale}
    await state.update_data({SEARCHES: dict(list(searches.items())[-KEPT_SEARCHES:])})


async def templates_command(message: Message, command: CommandObject, state: FSMContext, customer: User | None,
                            i18n: I18n) -> None:
    query = " ".join((command.args or "").split())[:200]
    page = await templates.search(customer, query, prefer_locale=i18n.current_locale, limit=PAGE)
    text, keyboard = _results(page, query, 0)
    sent = await message.answer(text, reply_markup=keyboard)
    if keyboard is not None:
        await _remember(state, sent.message_id, query, page.locale)


async def turn_page(query: CallbackQuery, callback_data: TemplatePage, state: FSMContext,
                    customer: User | None) -> None:
    if not isinstance(query.message, Message):
        await query.answer()
        return
    search = (await state.get_data()).get(SEARCHES, {}).get(str(query.message.message_id))
    if search is None:
        await query.answer(_("This list is out of date: send /templates again."), show_alert=True)
        return
    page = await templates.search(customer, search["q"], locale=search["locale"], limit=PAGE,
                                  offset=callback_data.offset)
    text, keyboard = _results(page, search["q"], callback_data.offset)
    await query.answer()
    await query.message.edit_text(text, reply_markup=keyboard)


async def show_template(query: CallbackQuery, callback_data: TemplatePick, customer: User | None, tenant_id: int,
                        settings: Settings, bot: Bot) -> None:
    try:
        template = await templates.get(customer, callback_data.id)
    except templates.TemplateError:
        await query.answer(_("This template is no longer available."), show_alert=True)
        return
    await query.answer()
    keyboard = None
    # Telegram opens Mini Apps over https only; else no button.
    if url := settings.public_address.mini_app_url_of(tenant_id, "studio/templates", open=template.id):
        keyboard = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(
            text=_("📝 Open in the studio"), web_app=WebAppInfo(url=url))]])
    await bot.send_message(query.from_user.id, template_message(template), reply_markup=keyboard)


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(in_private_chat)
    router.message.register(templates_command, Command("templates"))
    router.callback_query.register(turn_page, TemplatePage.filter())
    router.callback_query.register(show_template, TemplatePick.filter())
    return router
