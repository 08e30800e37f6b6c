"""Joining the team: `/start invite-<code>` from the link an admin made on the Team page.

The bot says who invited them, to which business and as what, and asks; the person is on the team
only when they press "Join" (services.team). Someone already on the team keeps their role, and the
invitation stays for the person it was meant for.
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
from models import Bot, User
from services import persona, staff, team
from services.i18n import N_
from services.render import escape
from services.staff import StaffDirectory

ROLES = {
    "manager": N_("a manager: you answer customers and look after the knowledge base"),
    "viewer": N_("a viewer: you read the conversations and change nothing"),
    "admin": N_("an admin"),
}
GONE = N_("This invitation has expired or was already used. Ask the admin who sent it for a new one.")


class InviteChoice(CallbackData, prefix="tinv"):
    invite: str
    join: bool


async def _person(event: Message | CallbackQuery, tenant_id: int, staff_directory: StaffDirectory) -> User:
    assert event.from_user is not None  # private messages and button presses always have a sender
    return await staff_directory.register(tenant_id, as_customer(event.from_user))


async def invite_start(message: Message, command: CommandObject, tenant_id: int, settings: Settings,
                       staff_directory: StaffDirectory) -> None:
    person = await _person(message, tenant_id, staff_directory)
    role = await staff_directory.role_of(person, settings.default_locale)
    if role in staff.ASSIGNABLE:
        await message.answer(escape(_("You're already on the team, as {role}. Send /dashboard for the desk.").format(
            role=_(ROLES[role.value]))))
        return
    invite = await team.claim(tenant_id, (command.args or "").removeprefix(team.START_PREFIX), person)
    if invite is None:
        await message.answer(escape(_(GONE)))
        return
    bot = await Bot.get(id=tenant_id)
    inviter = await User.get_or_none(id=invite.created_by or 0, bot_id=tenant_id)
    business = persona.business_name_of(bot)
    text = (_("{admin} invites you to the team of {business}, as {role}.") if business
            else _("{admin} invites you to the team, as {role}.")).format(
        admin=inviter.first_name if inviter is not None else _("An admin"), business=business,
        role=_(ROLES[invite.role]))
    keyboard = InlineKeyboardMarkup(inline_keyboard=[
        [InlineKeyboardButton(text=_("Join the team"), callback_data=InviteChoice(invite=invite.id, join=True).pack())],
        [InlineKeyboardButton(text=_("No, thanks"), callback_data=InviteChoice(invite=invite.id, join=False).pack())]])
    await message.answer(escape(text + "\n\n" + _("Only join if you expected this invitation.")),
                         reply_markup=keyboard)


async def invite_chosen(query: CallbackQuery, callback_data: InviteChoice, tenant_id: int,
                        staff_directory: StaffDirectory) -> None:
    await query.answer()
    person = await _person(query, tenant_id, staff_directory)
    if not callback_data.join:
        await team.decline(tenant_id, callback_data.invite, person)
        text = _("You did not join. The invitation is used up.")
    else:
        role = await team.accept(tenant_id, callback_data.invite, person)
        text = _(GONE) if role is None else _(
            "Welcome to the team! You're {role}. Send /dashboard for the desk in a browser.").format(
            role=_(ROLES[role]))
    if isinstance(query.message, Message):
        await query.message.edit_text(escape(text))


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(in_private_chat)
    router.message.register(invite_start, CommandStart(deep_link=True, magic=F.args.startswith(team.START_PREFIX)))
    router.callback_query.register(invite_chosen, InviteChoice.filter())
    return router

