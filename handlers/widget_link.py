"""A customer confirms that a website chat is theirs: `/start link-<code>` from the widget's deep link.

The bot asks first, naming the website; the chat is linked only when the person who opened the
link presses "Yes" (services.widget_links).
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import CommandObject, CommandStart
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _

from bot.settings import Settings
from handlers.filters import in_private_chat
from handlers.identity import as_customer
from models import User
from services import conversations, widget_links
from services.render import escape
from services.widget import WidgetLive


class LinkChoice(CallbackData, prefix="wlink"):
    link: int
    confirmed: bool


async def _customer(event: Message | CallbackQuery, tenant_id: int, settings: Settings, customer: User | None) -> User:
    if customer is not None:
        return customer
    assert event.from_user is not None  # private messages and button presses always have a sender
    return await conversations.register_customer(tenant_id, as_customer(event.from_user), settings.default_locale)


async def link_start(message: Message, command: CommandObject, tenant_id: int, settings: Settings,
                     customer: User | None) -> None:
    user = await _customer(message, tenant_id, settings, customer)
    code = (command.args or "").removeprefix(widget_links.START_PREFIX)
    request = await widget_links.claim(tenant_id, code, user)
    if request is None:
        await message.answer(escape(_("This link has expired or was already used. Ask for a new one in the chat on "
                                      "the website.")))
        return
    site = request.site
    where = (site.title or (site.allowed_origins or [""])[0]) if site is not None else ""
    text = "\n".join([f"🌐 {where}" if where else "", _("Messages: {count}").format(count=request.messages), "",
                      _("Add this website chat to your history here? You'll see it in the app, and it will be part "
                        "of your data export and deletion."), "",
                      _("Only confirm if you asked for this link in that chat yourself just now.")]).strip()
    keyboard = InlineKeyboardMarkup(inline_keyboard=[
        [InlineKeyboardButton(text=_("Yes, it's my chat"),
                              callback_data=LinkChoice(link=request.link_id, confirmed=True).pack())],
        [InlineKeyboardButton(text=_("Cancel"),
                              callback_data=LinkChoice(link=request.link_id, confirmed=False).pack())]])
    await message.answer(escape(text), reply_markup=keyboard)


async def link_chosen(query: CallbackQuery, callback_data: LinkChoice, tenant_id: int, settings: Settings,
                      customer: User | None, widget_live: WidgetLive) -> None:
    await query.answer()
    user = await _customer(query, tenant_id, settings, customer)
    if not callback_data.confirmed:
        await widget_links.decline(tenant_id, callback_data.link, user)
        text = _("Nothing was linked.")
    else:
        visitor = await widget_links.confirm(tenant_id, callback_data.link, user)
        if visitor is not None and visitor.widget_visitor_id:
            await widget_live.publish(visitor.widget_visitor_id, {"type": "linked"})
        text = (_("Done: the website chat is in your history now. You can carry on here too.") if visitor is not None
                else _("This link has expired or was already used. Ask for a new one in the chat on the website."))
    if isinstance(query.message, Message):
        await query.message.edit_text(escape(text))


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(in_private_chat)
    from_the_widget = CommandStart(deep_link=True, magic=F.args.startswith(widget_links.START_PREFIX))
    router.message.register(link_start, from_the_widget)
    router.callback_query.register(link_chosen, LinkChoice.filter())
    return router
