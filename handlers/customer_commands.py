"""A customer's commands and menu buttons in the private chat."""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandStart
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _

from bot.settings import Settings
from handlers.filters import in_private_chat
from handlers.identity import as_customer
from handlers.keyboards import (
    LANGUAGE_NAMES,
    LanguageChoice,
    MenuAction,
    RateConversation,
    language_keyboard,
    start_keyboard,
)
from models import Bot as Tenant
from models import User
from services import conversations, desk, staff, tenant_settings
from services.flow import ConversationFlow
from services.i18n import N_
from services.render import escape
from services.staff import StaffDirectory

# What staff may do from their private chat with the bot, under /start and /help.
FOR_STAFF = N_("For the team:\n"
               "/dashboard: a sign-in link for the desk in a browser (inbox, knowledge base, settings)\n"
               "/id: your Telegram id\n"
               "In the managers' group, /help lists the desk's commands and /app opens the desk app.")


async def _registered(event: Message | CallbackQuery, tenant_id: int, settings: Settings,
                      customer: User | None) -> User:
    if customer is not None:
        return customer
    assert event.from_user is not None  # private messages and button presses always have a sender
    return await conversations.register_customer(tenant_id, as_customer(event.from_user), settings.default_locale)


async def _for_staff(message: Message, tenant: Tenant, person_row: User | None, settings: Settings,
                     staff_directory: StaffDirectory) -> str:
    """The team's own commands, for a staff member (an admin, a manager or a viewer); "" for anyone else.
    `tenant` and `person_row` are the rows the handler has read already (each /start is one more read
    of each otherwise, and /start is what a crowd arriving from an ad sends)."""
    person = message.from_user
    if person is None or await staff_directory.current_role(tenant, person.id, person_row, settings.default_locale) \
            not in staff.ASSIGNABLE:
        return ""
    return "\n\n" + escape(_(FOR_STAFF))


async def start(message: Message, tenant_id: int, settings: Settings, customer: User | None,
                staff_directory: StaffDirectory) -> None:
    user = await _registered(message, tenant_id, settings, customer)
    name = f"<b>{escape(user.first_name or _('there'))}</b>"
    tenant = await Tenant.get(id=tenant_id)  # read fresh: another instance may have changed its settings
    business = tenant_settings.of(tenant).business_name
    if business:
        text = _(
            "Hello, {name}! 👋\n\n"
            "I'm the assistant of {business}. Ask me anything: I answer right away, day and night. If you'd "
            "rather talk to a person, tap the button below or send /human at any time."
        ).format(name=name, business=f"<b>{escape(business)}</b>")
    else:
        text = _(
            "Hello, {name}! 👋\n\n"
            "I'm the assistant of this business. Ask me anything: I answer right away, day and night, "
            "from what the business has taught me. If you'd rather talk to a person, tap the button below "
            "or send /human at any time."
        ).format(name=name)
    text += await _for_staff(message, tenant, user, settings, staff_directory)
    await message.answer(text, reply_markup=start_keyboard(settings.public_address.mini_app_url_of(tenant_id)))


async def help_command(message: Message, tenant_id: int, settings: Settings, customer: User | None,
                       staff_directory: StaffDirectory) -> None:
    text = _(
        "Just write your question and I'll answer.\n\n"
        "/new: start a new conversation\n"
        "/human: talk to a person\n"
        "/language: change the language\n"
        "/help: this help"
    )
    tenant = await Tenant.get(id=tenant_id)
    await message.answer(escape(text) + await _for_staff(message, tenant, customer, settings, staff_directory))


async def id_command(message: Message, settings: Settings) -> None:
    """Anyone's own Telegram id (what ADMIN_IDS holds): how an owner finds theirs while setting the bot up."""
    person = message.from_user
    if person is None:
        return
    text = _("Your Telegram id: {id}").format(id=f"<code>{person.id}</code>")
    if not settings.admin_ids:
        text += "\n\n" + escape(_("Nobody is this bot's admin yet: the owner puts their id in ADMIN_IDS (in the "
                                    "server's .env) and restarts it."))
    await message.answer(text)


async def language_command(message: Message) -> None:
    await message.answer(escape(_("Choose your language:")), reply_markup=language_keyboard())


async def language_button(query: CallbackQuery, bot: Bot) -> None:
    await query.answer()
    if query.message is not None:
        await bot.send_message(query.from_user.id, escape(_("Choose your language:")), reply_markup=language_keyboard())


async def language_chosen(query: CallbackQuery, callback_data: LanguageChoice, tenant_id: int,
                          settings: Settings, customer: User | None, i18n: I18n, bot: Bot) -> None:
    if callback_data.code not in LANGUAGE_NAMES:
        await query.answer()
        return
    user = await _registered(query, tenant_id, settings, customer)
    await conversations.set_language(user, callback_data.code)
    with i18n.use_locale(callback_data.code):
        await query.answer(_("Language: {language}").format(language=LANGUAGE_NAMES[callback_data.code]))
        await bot.send_message(query.from_user.id, escape(_("Done! I'll speak English with you now.")))


async def new_conversation(message: Message, tenant_id: int, settings: Settings, customer: User | None) -> None:
    user = await _registered(message, tenant_id, settings, customer)
    await conversations.start_new_conversation(user)
    await message.answer(escape(_("Starting afresh. What can I help you with?")))


async def _ask_for_person(event: Message | CallbackQuery, tenant_id: int, settings: Settings, customer: User | None,
                          flow: ConversationFlow, bot: Bot) -> None:
    """The notice comes from the customers' queue, stored with the handoff; asked again, it is said again."""
    user = await _registered(event, tenant_id, settings, customer)
    asked = await flow.ask_for_person(user)
    if not asked.handed and user.telegram_id is not None:
        await bot.send_message(user.telegram_id, escape(asked.notice))


async def human_command(message: Message, tenant_id: int, settings: Settings, customer: User | None,
                        flow: ConversationFlow, bot: Bot) -> None:
    await _ask_for_person(message, tenant_id, settings, customer, flow, bot)


async def human_button(query: CallbackQuery, tenant_id: int, settings: Settings, customer: User | None,
                       flow: ConversationFlow, bot: Bot) -> None:
    await query.answer()
    await _ask_for_person(query, tenant_id, settings, customer, flow, bot)


async def rated(query: CallbackQuery, callback_data: RateConversation, tenant_id: int, settings: Settings,
                customer: User | None, flow: ConversationFlow) -> None:
    user = await _registered(query, tenant_id, settings, customer)
    if not await flow.rate(tenant_id, user, callback_data.conversation, callback_data.stars):
        await query.answer()
        return
    await query.answer(_(desk.RATED))
    if isinstance(query.message, Message):
        stars = "⭐" * callback_data.stars
        await query.message.edit_text(f"{query.message.html_text}\n\n{stars}")


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(in_private_chat)
    router.message.register(start, CommandStart())
    router.message.register(help_command, Command("help"))
    router.message.register(id_command, Command("id"))
    router.message.register(language_command, Command("language"))
    router.callback_query.register(language_button, MenuAction.filter(F.action == "language"))
    router.callback_query.register(language_chosen, LanguageChoice.filter())
    router.message.register(new_conversation, Command("new"))
    router.message.register(human_command, Command("human"))
    router.callback_query.register(human_button, MenuAction.filter(F.action == "human"))
    router.callback_query.register(rated, RateConversation.filter())
    return router
