"""The Mini App from the bot: a browser login link for staff, and a customer's own data.

`/dashboard` (private chat, staff): a one-time link that opens the Mini App in a normal browser.
`/app` (manager chat, staff): the Mini App's button, sent privately (Telegram allows Mini App
buttons only in private chats). `/mydata` sends everything stored about the customer as a JSON
document; `/deletemydata` deletes it after a confirmation.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.exceptions import TelegramForbiddenError
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    WebAppInfo,
)
from aiogram.utils.i18n import gettext as _

from bot.settings import Settings
from handlers.filters import in_private_chat
from handlers.identity import as_customer
from models import Role, User
from services import accounts, conversations, privacy, staff
from services.render import escape
from services.staff import StaffDirectory


class ForgetMe(CallbackData, prefix="forget"):
    confirmed: bool




async def dashboard_command(message: Message, tenant_id: int, settings: Settings,
                            staff_directory: StaffDirectory) -> None:
    person = message.from_user
    assert person is not None
    user = await staff_directory.register(tenant_id, as_customer(person))
    role = await staff_directory.role_of(user, settings.default_locale)
    if role == Role.PENDING:
        await message.answer(escape(_("An admin has not approved you yet. Ask one to approve you in the desk app, "
                                      "on the Team page.")))
        return
    if role not in staff.ASSIGNABLE:
        await message.answer(escape(_("The dashboard is for the business's team.")))
        return
    token = await accounts.create_login_link(user)
    link = f"{settings.public_address.base()}/app/login?token={token}"
    text = _("Your sign-in link for the dashboard in a browser. It works once, for 5 minutes. Don't share it.")
    await message.answer(f"{escape(text)}\n\n{escape(link)}")


async def app_in_group(message: Message, tenant_id: int, settings: Settings, staff_directory: StaffDirectory) -> None:
    """Staff in the manager chat get the Mini App's button in their private chat with the bot."""
    person = message.from_user
    if person is None or message.chat.type not in ("group", "supergroup"):
        return
    chat = await staff.load_manager_chat(tenant_id, settings.default_locale)
    if chat is None or chat.chat_id != message.chat.id or \
            await staff_directory.role_in(tenant_id, person.id, settings.default_locale) == Role.CUSTOMER:
        return
    url = settings.public_address.mini_app_url_of(tenant_id)
    bot = message.bot
    assert bot is not None
    if not url:
        await message.reply(escape(_("The app needs an https PUBLIC_BASE_URL. Meanwhile, send /dashboard to me in a "
                                     "private chat for a browser link.")))
        return
    keyboard = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text=_("📱 Open the desk"),
                                                                           web_app=WebAppInfo(url=url))]])
    try:
        await bot.send_message(person.id, escape(_("The desk: inbox, knowledge base and analytics.")),
                               reply_markup=keyboard)
    except TelegramForbiddenError:
        me = await bot.me()
        start = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(
            text=_("Start a chat with me"), url=f"https://t.me/{me.username}?start=app")]])
        await message.reply(escape(_("Start a private chat with me first, then send /app again.")),
                            reply_markup=start)
        return
    await message.reply(escape(_("I've sent you the app's button in our private chat.")))


async def my_data_command(message: Message, tenant_id: int, customer: User | None) -> None:
    if customer is None:
        await message.answer(escape(_("We don't store anything about you.")))
        return
    data = privacy.export_bytes(await privacy.export_customer_data(customer))
    await message.answer_document(BufferedInputFile(data, filename=f"my-data-{customer.id}.json"),
                                  caption=escape(_("Everything we store about you.")))


async def delete_my_data_command(message: Message) -> None:
    keyboard = InlineKeyboardMarkup(inline_keyboard=[
        [InlineKeyboardButton(text=_("Yes, delete everything"), callback_data=ForgetMe(confirmed=True).pack())],
        [InlineKeyboardButton(text=_("Cancel"), callback_data=ForgetMe(confirmed=False).pack())]])
    await message.answer(escape(_("Delete everything we store about you: your conversations, messages and settings? "
                                  "This cannot be undone.")), reply_markup=keyboard)


async def forget_me(query: CallbackQuery, callback_data: ForgetMe, tenant_id: int) -> None:
    await query.answer()
    if not isinstance(query.message, Message):
        return
    if not callback_data.confirmed:
        await query.message.edit_text(escape(_("Nothing was deleted.")))
        return
    customer = await conversations.find_customer(tenant_id, query.from_user.id)
    if customer is not None:
        await privacy.delete_customer_data(customer, via="bot")
    await query.message.edit_text(escape(_("Done: everything we stored about you has been deleted.")))


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.register(app_in_group, Command("app"))
    private = Router(name=f"{__name__}.private")
    private.message.filter(in_private_chat)
    private.message.register(dashboard_command, Command("dashboard"))
    private.message.register(my_data_command, Command("mydata"))
    private.message.register(delete_my_data_command, Command("deletemydata"))
    private.callback_query.register(forget_me, ForgetMe.filter(F.confirmed.in_({True, False})))
    router.include_router(private)
    return router
