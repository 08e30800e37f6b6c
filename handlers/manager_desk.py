"""The manager chat: staff commands, header-card buttons, and what managers write in topics.

Only staff in the registered manager chat are heard; everything else in groups is ignored.
Replies to staff go through the managers' outbox queue (the group's budget is 20 a minute), so
a handler never waits for that budget while holding Telegram's webhook connection.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiogram import BaseMiddleware, Bot, Router
from aiogram.filters import Command, CommandObject
from aiogram.filters.callback_data import CallbackData
from aiogram.types import BotCommand, BotCommandScopeChat, CallbackQuery, Message, TelegramObject, Update

from bot.settings import Settings
from handlers.identity import as_customer
from handlers.media import attachments, html_text
from models import Bot as Tenant
from models import Conversation, Role, User
from services import desk, desk_reports, saved_replies, staff
from services.flow import ConversationFlow, Posted
from services.i18n import N_, Translate, pick_locale
from services.ports import Messenger, Where
from services.render import escape
from services.schedule import InvalidHours
from services.staff import ManagerChat, StaffDirectory, WorkingHoursSource, set_working_hours, split_hours_and_zone

NOT_A_CONVERSATION = N_("Use this command inside a conversation's topic (or as a reply to a customer's message).")
TAKEN = N_("✋ {name} took this conversation.")
ALREADY = N_("Nothing to change: it is like that already.")
RETURNED = N_("🤖 The AI answers this conversation again.")
CLOSED = N_("✅ Closed. The customer was asked for a rating.")
BANNED = N_("🚫 Banned: this customer's messages are ignored from now on.")
UNBANNED = N_("The customer is no longer banned.")
NOTE_SAVED = N_("📝 Note saved (the customer does not see it).")
NOTE_EMPTY = N_("Write the note after the command: /note TEXT")
ONLINE = N_("🟢 {name} is online: customers are told a person will answer soon.")
AWAY = N_("⚪ {name} is away.")
STAFF_HELP = N_(
    "How the desk works\n\n"
    "Each conversation a customer wants a person for gets its own topic here. Write in the topic to "
    "answer the customer: text, photos, files, voice, anything. Start a message with // to leave a "
    "note only staff can see.\n\n"
    "In a topic:\n"
    "/take: assign the conversation to me\n"
    "/ai: give it back to the AI\n"
    "/close: close it (the customer is asked for a rating)\n"
    "/note TEXT: a note for staff\n"
    "/info: the customer's card\n"
    "/ban, /unban: ignore or hear this customer again\n\n"
    "Anywhere here:\n"
    "/open: conversations waiting for a person\n"
    "/stats: today's numbers\n"
    "/online, /away: whether customers are told someone is here\n"
    "/hours: working hours (admins can change them)\n"
    "/setup: check the bot's rights in this group"
)
HOURS_ALWAYS = N_("No working hours are set: customers hear that a person will answer as soon as someone is free.")
HOURS_SHOW = N_("Working hours: {hours} ({zone}).")
HOURS_SET = N_("✅ Working hours are now: {hours} ({zone}).")
HOURS_CLEARED = N_("✅ Working hours cleared.")
HOURS_HOW = N_("To change them: /hours mon-fri 09:00-18:00, sat 10:00-14:00 Asia/Tashkent (or /hours off).")
HOURS_INVALID = N_("I couldn't read those hours or that time zone.")
ADMINS_ONLY = N_("Only the bot's admins can change this.")
NOT_APPROVED = N_("An admin has not approved you yet, so what you write here does not reach customers. "
                  "Admins approve new managers in the desk app, on the Team page.")
READ_ONLY = N_("You can read the desk but not act in it: your role is viewer. An admin can change that in the "
               "desk app, on the Team page.")
SETUP_DONE = N_("✅ This group is now the manager chat.")
SETUP_NEED_ADMIN = N_("• Make the bot an administrator of this group.")
SETUP_NEED_TOPICS_RIGHT = N_("• Give the bot the right to manage topics.")
SETUP_NEED_FORUM = N_(
    "• Turn on topics in the group's settings to get one topic per conversation. Until then, "
    "customers' messages arrive here with a header: reply to one to answer that customer.")
SETUP_MISSING = N_("To work fully, the bot still needs:")
SETUP_READY = N_("Everything is in place: each conversation handed to people gets its own topic here.")
SETUP_NOT_MEMBER = N_("The bot is not a member of this group.")
SAVED_REPLY_SENT = N_("↩️ Sent the saved reply “{name}”:")
SAVED_REPLY_UNKNOWN = N_("There is no saved reply named “{name}”.")
SAVED_REPLY_HOW = N_("Send one with /r NAME. Saved replies: {names}.")
NO_SAVED_REPLIES = N_("There are no saved replies yet: staff add them in the desk app, beside a conversation's "
                      "reply box.")


STAFF_COMMANDS = [
    ("take", N_("Assign this conversation to me")),
    ("ai", N_("Give this conversation back to the AI")),
    ("close", N_("Close this conversation")),
    ("note", N_("A note only staff see")),
    ("r", N_("Send a saved reply: /r NAME")),
    ("info", N_("The customer's card")),
    ("ban", N_("Ignore this customer")),
    ("unban", N_("Hear this customer again")),
    ("open", N_("Conversations waiting for a person")),
    ("stats", N_("Today's numbers")),
    ("online", N_("I'm here: customers hear a person will answer soon")),
    ("away", N_("I'm away")),
    ("hours", N_("Working hours")),
    ("app", N_("Open the desk app")),
    ("help", N_("How the desk works")),
]


async def set_staff_commands(bot: Bot, chat_id: int, translate: Translate, locale: str) -> None:
    """The manager chat's own command menu, in its language."""
    commands = [BotCommand(command=name, description=translate(locale, text)) for name, text in STAFF_COMMANDS]
    await bot.set_my_commands(commands, scope=BotCommandScopeChat(chat_id=chat_id))


class DeskAction(CallbackData, prefix="desk"):
    action: str  # take, ai, close, ban
    conversation: int


# --- who may act here ------------------------------------------------------------------------------


async def _desk_member(event: Message | CallbackQuery, tenant_id: int, settings: Settings,
                       staff_directory: StaffDirectory) -> tuple[Role, ManagerChat] | None:
    """A person in the manager chat (ADMIN_IDS or a member) and their role; else None. Reads only."""
    chat = event.chat if isinstance(event, Message) else (event.message.chat if event.message else None)
    person = event.from_user
    if chat is None or chat.type not in ("group", "supergroup") or person is None or person.is_bot:
        return None
    desk_chat = await staff.load_manager_chat(tenant_id, settings.default_locale)
    if desk_chat is None or desk_chat.chat_id != chat.id:
        return None
    role = await staff_directory.role_in(tenant_id, person.id, settings.default_locale)
    return None if role == Role.CUSTOMER else (role, desk_chat)


async def staff_in_manager_chat(event: Message | CallbackQuery, tenant_id: int, settings: Settings,
                                staff_directory: StaffDirectory) -> dict[str, Any] | bool:
    """Staff who may act, in the manager chat: puts `role` and `desk_chat` into the data."""
    member = await _desk_member(event, tenant_id, settings, staff_directory)
    if member is None or member[0] not in staff.ACTING:
        return False
    return {"role": member[0], "desk_chat": member[1]}


async def member_who_cannot_act(event: Message | CallbackQuery, tenant_id: int, settings: Settings,
                                staff_directory: StaffDirectory) -> dict[str, Any] | bool:
    """A member waiting for approval, or a viewer: puts `role` and `desk_chat` into the data."""
    member = await _desk_member(event, tenant_id, settings, staff_directory)
    if member is None or member[0] in staff.ACTING:
        return False
    return {"role": member[0], "desk_chat": member[1]}


class EnlistStaff(BaseMiddleware):
    """Gives the handler `staff`: the member's row, made (or its names refreshed) with their role on it,
    so the team list shows them and admins can approve them.

    An inner middleware: it runs when a handler of its router is about to run, never while the filters
    decide (aiogram asks a filter once for each handler it guards, and for updates no handler takes).
    """

    async def __call__(self, handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
                       event: TelegramObject, data: dict[str, Any]) -> Any:
        person = data.get("event_from_user")
        assert person is not None  # the filters let in only a person
        directory: StaffDirectory = data["staff_directory"]
        data["staff"] = await directory.enlist(data["tenant_id"], as_customer(person), data["settings"].default_locale)
        return await handler(event, data)


async def admin_in_a_group(message: Message, staff_directory: StaffDirectory) -> bool:
    return message.chat.type in ("group", "supergroup") and message.from_user is not None and \
        staff_directory.is_admin(message.from_user.id)


def _place(message: Message, desk_chat: ManagerChat) -> Where:
    """Where an answer to this staff message goes: its topic, replying to it."""
    thread = message.message_thread_id if message.is_topic_message else None
    return Where(desk_chat.chat_id, thread, message.message_id)


async def _conversation_of(message: Message, tenant_id: int, desk_chat: ManagerChat) -> Conversation | None:
    """The conversation a staff message is about: its topic's, else that of the bot message it replies to."""
    if message.is_topic_message and message.message_thread_id:
        conversation = await desk.by_topic(tenant_id, message.message_thread_id)
        if conversation is not None:
            return conversation
    replied = message.reply_to_message
    if replied is not None and replied.from_user is not None and replied.from_user.is_bot:
        return await desk.by_reply(tenant_id, desk_chat.chat_id, replied.message_id)
    return None


async def _answer(message: Message, desk_chat: ManagerChat, html: str, tenant_id: int, flow: ConversationFlow) -> None:
    await flow.tell_staff(tenant_id, _place(message, desk_chat), html)


# --- commands ----------------------------------------------------------------------------------------


async def conversation_command(message: Message, command: CommandObject, tenant_id: int, staff: User,
                               desk_chat: ManagerChat, translate: Translate, flow: ConversationFlow,
                               event_update: Update) -> None:
    def _(text: str) -> str:
        return translate(desk_chat.locale, text)

    conversation = await _command_conversation(message, tenant_id, desk_chat, translate, flow)
    if conversation is None:
        return
    name = command.command.lower()
    if name == "note":
        await _note(message, command.args or "", conversation, staff, desk_chat, translate, tenant_id, flow,
                    f"tg:{event_update.update_id}")
        return
    if name == "info":
        await _answer(message, desk_chat, await desk_reports.info_card(conversation, translate, desk_chat.locale),
                      tenant_id, flow)
        return
    done, reply = await _act(name, conversation, staff, translate, desk_chat.locale, flow)
    await _answer(message, desk_chat, escape(reply if done else _(ALREADY)), tenant_id, flow)


async def _command_conversation(message: Message, tenant_id: int, desk_chat: ManagerChat, translate: Translate,
                                flow: ConversationFlow) -> Conversation | None:
    """The conversation a command in the group is about; None, having told staff so, when there is none."""
    conversation = await _conversation_of(message, tenant_id, desk_chat)
    if conversation is None:
        await _answer(message, desk_chat, escape(translate(desk_chat.locale, NOT_A_CONVERSATION)), tenant_id, flow)
    return conversation


async def _act(action: str, conversation: Conversation, staff: User, translate: Translate,
               locale: str, flow: ConversationFlow) -> tuple[bool, str]:
    """One staff action on a conversation (the same for a command and a header-card button)."""
    if action == "take":
        done = await flow.take(conversation, staff)
        return done, translate(locale, TAKEN).format(name=staff.first_name)
    if action == "ai":
        return await flow.give_back(conversation, staff), translate(locale, RETURNED)
    if action == "close":
        return await flow.close(conversation, staff), translate(locale, CLOSED)
    if action == "ban":
        return await flow.set_banned(conversation, staff, True), translate(locale, BANNED)
    if action == "unban":
        return await flow.set_banned(conversation, staff, False), translate(locale, UNBANNED)
    return False, ""


async def _note(message: Message, text: str, conversation: Conversation, staff: User, desk_chat: ManagerChat,
                translate: Translate, tenant_id: int, flow: ConversationFlow, source_key: str) -> None:
    if not text.strip():
        await _answer(message, desk_chat, escape(translate(desk_chat.locale, NOTE_EMPTY)), tenant_id, flow)
        return
    posted = Posted(source_key, desk_chat.chat_id, message.message_id, text=text.strip())
    await flow.manager_wrote(conversation, staff, posted, note=True)


async def saved_reply_command(message: Message, command: CommandObject, tenant_id: int, staff: User,
                              desk_chat: ManagerChat, translate: Translate, flow: ConversationFlow,
                              event_update: Update) -> None:
    """`/r NAME` in a topic: the saved reply goes to the customer as if the manager had typed it."""
    def _(text: str) -> str:
        return translate(desk_chat.locale, text)

    conversation = await _command_conversation(message, tenant_id, desk_chat, translate, flow)
    if conversation is None:
        return
    name = (command.args or "").strip()
    reply = await saved_replies.find(tenant_id, name) if name else None
    if reply is None:
        names = ", ".join(row.name for row in await saved_replies.list_replies(tenant_id))
        lines = [_(SAVED_REPLY_UNKNOWN).format(name=name)] if name else []
        lines.append(_(SAVED_REPLY_HOW).format(names=names) if names else _(NO_SAVED_REPLIES))
        await _answer(message, desk_chat, escape("\n".join(lines)), tenant_id, flow)
        return
    posted = Posted(f"tg:{event_update.update_id}", desk_chat.chat_id, message.message_id, text=reply.text,
                    html=escape(reply.text), as_text=True)
    if await flow.manager_wrote(conversation, staff, posted, note=False) is not None:  # None: a re-delivery
        sent = f"{escape(_(SAVED_REPLY_SENT).format(name=reply.name))}\n\n{escape(reply.text)}"
        await _answer(message, desk_chat, sent, tenant_id, flow)


async def open_command(message: Message, tenant_id: int, desk_chat: ManagerChat, translate: Translate,
                       flow: ConversationFlow) -> None:
    html = await desk_reports.open_list(tenant_id, desk_chat.chat_id, desk_chat.forum, translate, desk_chat.locale)
    await _answer(message, desk_chat, html, tenant_id, flow)


async def stats_command(message: Message, tenant_id: int, desk_chat: ManagerChat, translate: Translate,
                        flow: ConversationFlow, hours: WorkingHoursSource) -> None:
    zone = hours(await Tenant.get(id=tenant_id)).zone
    now = datetime.now(UTC)
    stats = await desk_reports.day_stats(tenant_id, zone, now)
    html = desk_reports.stats_text(stats, f"{now.astimezone(zone):%Y-%m-%d}", translate, desk_chat.locale)
    await _answer(message, desk_chat, html, tenant_id, flow)


async def presence_command(message: Message, command: CommandObject, tenant_id: int, staff: User,
                           desk_chat: ManagerChat, translate: Translate, flow: ConversationFlow) -> None:
    online = command.command.lower() == "online"
    await staff_presence(staff, online)
    text = translate(desk_chat.locale, ONLINE if online else AWAY).format(name=staff.first_name)
    await _answer(message, desk_chat, escape(text), tenant_id, flow)


async def staff_presence(member: User, online: bool) -> None:
    await staff.set_online(member, online)
    await desk.audit(member.bot_id, member, "online" if online else "away", str(member.id))


async def hours_command(message: Message, command: CommandObject, tenant_id: int, staff: User,
                        desk_chat: ManagerChat, translate: Translate, flow: ConversationFlow, hours: WorkingHoursSource,
                        settings: Settings) -> None:
    """Show the working hours; an admin may change them (customers are told when people are back)."""
    def _(text: str) -> str:
        return translate(desk_chat.locale, text)

    wanted = (command.args or "").strip()
    if not wanted:
        current = hours(await Tenant.get(id=tenant_id))
        text = _(HOURS_ALWAYS) if current.always_open else _(HOURS_SHOW).format(
            hours=current.text, zone=current.zone)
        await _answer(message, desk_chat, escape(f"{text}\n{_(HOURS_HOW)}"), tenant_id, flow)
        return
    if staff.role != Role.ADMIN:  # ADMIN_IDS, or made an admin in the app
        await _answer(message, desk_chat, escape(_(ADMINS_ONLY)), tenant_id, flow)
        return
    text, zone = split_hours_and_zone("" if wanted.lower() == "off" else wanted, settings.timezone)
    try:
        changed = await set_working_hours(tenant_id, text, zone, staff)
    except InvalidHours:
        await _answer(message, desk_chat, escape(f"{_(HOURS_INVALID)}\n{_(HOURS_HOW)}"), tenant_id, flow)
        return
    reply = _(HOURS_CLEARED) if changed.always_open else _(HOURS_SET).format(hours=changed.text, zone=changed.zone)
    await _answer(message, desk_chat, escape(reply), tenant_id, flow)


async def help_command(message: Message, tenant_id: int, desk_chat: ManagerChat, translate: Translate,
                       flow: ConversationFlow) -> None:
    await _answer(message, desk_chat, escape(translate(desk_chat.locale, STAFF_HELP)), tenant_id, flow)


async def setup_command(message: Message, tenant_id: int, messenger: Messenger, translate: Translate,
                        settings: Settings) -> None:
    """Register this group as the manager chat and say, in the admin's language, what is missing.

    Answered directly: the group is not the manager chat until this has run, and one reply fits
    any group's budget.
    """
    locale = pick_locale(message.from_user.language_code if message.from_user else None,
                         default=settings.default_locale)

    def _(text: str) -> str:
        return translate(locale, text)

    report = await staff.setup_manager_chat(messenger, tenant_id, message.chat.id, locale)
    if not report.registered:
        await message.answer(escape(_(SETUP_NOT_MEMBER)))
        return
    if message.bot is not None:
        await set_staff_commands(message.bot, message.chat.id, translate, locale)
    sentences = {"admin": SETUP_NEED_ADMIN, "manage_topics": SETUP_NEED_TOPICS_RIGHT, "topics": SETUP_NEED_FORUM}
    lines = [_(SETUP_DONE)]
    if report.missing:
        lines += ["", _(SETUP_MISSING), *(_(sentences[key]) for key in report.missing)]
    else:
        lines.append(_(SETUP_READY))
    await desk.audit(tenant_id, None, "setup", str(message.chat.id), missing=report.missing,
                     by=message.from_user.id if message.from_user else None)
    await message.answer(escape("\n".join(lines)))


# --- buttons on the header card ----------------------------------------------------------------------


async def card_button(query: CallbackQuery, callback_data: DeskAction, tenant_id: int, staff: User,
                      desk_chat: ManagerChat, translate: Translate, flow: ConversationFlow) -> None:
    conversation = await desk.by_id(tenant_id, callback_data.conversation)
    if conversation is None:
        await query.answer()
        return
    done, reply = await _act(callback_data.action, conversation, staff, translate, desk_chat.locale, flow)
    await query.answer(reply if done else translate(desk_chat.locale, ALREADY))


# --- what managers write -------------------------------------------------------------------------------


async def manager_wrote(message: Message, tenant_id: int, staff: User, desk_chat: ManagerChat,
                        event_update: Update, flow: ConversationFlow) -> None:
    if message.text and message.text.startswith("/") and not message.text.startswith("//"):
        return  # a command for someone else (or a typo): never sent to a customer
    conversation = await _conversation_of(message, tenant_id, desk_chat)
    if conversation is None:
        return  # staff talking among themselves
    text = message.text or message.caption or ""
    note = text.startswith("//")
    posted = Posted(f"tg:{event_update.update_id}", desk_chat.chat_id, message.message_id,
                    text=text.removeprefix("//").strip() if note else text,
                    html="" if note else (html_text(message) if text else ""), attachments=attachments(message),
                    replying_to=message.reply_to_message.message_id if message.reply_to_message else None)
    await flow.manager_wrote(conversation, staff, posted, note=note)


async def manager_edited(message: Message, tenant_id: int, desk_chat: ManagerChat, flow: ConversationFlow) -> None:
    await flow.manager_edited(tenant_id, desk_chat.chat_id, message.message_id, html_text(message))


async def ignore(_: Message | CallbackQuery) -> None:
    """Anything else in a group: no customer can reach managers, no stranger can command the bot."""


async def cannot_act(event: Message | CallbackQuery, role: Role, desk_chat: ManagerChat, translate: Translate,
                     tenant_id: int, flow: ConversationFlow) -> None:
    """A pending member or a viewer tried to act: say why nothing happened (a reply in a conversation's
    topic or to a command; their other talk in the group is left alone)."""
    text = translate(desk_chat.locale, NOT_APPROVED if role == Role.PENDING else READ_ONLY)
    if isinstance(event, CallbackQuery):
        await event.answer(text, show_alert=True)
        return
    if event.message_thread_id is not None or (event.text or "").startswith("/"):
        await _answer(event, desk_chat, escape(text), tenant_id, flow)


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.register(setup_command, Command("setup"), admin_in_a_group)
    staff_only = Router(name=f"{__name__}.staff")
    staff_only.message.filter(staff_in_manager_chat)
    staff_only.edited_message.filter(staff_in_manager_chat)
    staff_only.callback_query.filter(staff_in_manager_chat)
    staff_only.message.register(conversation_command,
                                Command("take", "ai", "close", "note", "info", "ban", "unban"))
    staff_only.message.register(saved_reply_command, Command("r"))
    staff_only.message.register(open_command, Command("open"))
    staff_only.message.register(stats_command, Command("stats"))
    staff_only.message.register(presence_command, Command("online", "away"))
    staff_only.message.register(hours_command, Command("hours"))
    staff_only.message.register(help_command, Command("help", "start"))
    staff_only.message.register(manager_wrote)
    staff_only.edited_message.register(manager_edited)
    staff_only.callback_query.register(card_button, DeskAction.filter())
    waiting = Router(name=f"{__name__}.waiting")  # members an admin has not approved, and viewers
    waiting.message.register(cannot_act, member_who_cannot_act)
    waiting.callback_query.register(cannot_act, DeskAction.filter(), member_who_cannot_act)
    enlist = EnlistStaff()  # a member's row and role, written only when one of these handlers runs
    for observer in (staff_only.message, staff_only.edited_message, staff_only.callback_query,
                     waiting.message, waiting.callback_query):
        observer.middleware(enlist)
    # A router's own handlers run before its children's, so the catch-all is a child too, the last one.
    everyone_else = Router(name=f"{__name__}.others")
    everyone_else.message.register(ignore, _in_a_group)
    everyone_else.callback_query.register(ignore, DeskAction.filter())
    router.include_routers(staff_only, waiting, everyone_else)
    return router


async def _in_a_group(message: Message) -> bool:
    return message.chat.type in ("group", "supergroup")

