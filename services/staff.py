"""Who the staff are, where they work, and whether anyone is in.

Staff are the deployment's admins (ADMIN_IDS) plus the members of the manager chat whom an admin
approved, as a manager or as a read-only viewer (or every member, with STAFF_AUTO_APPROVE). A
member nobody approved yet is pending: no staff rights. Membership is asked of Telegram and
remembered for a minute, so a removed manager loses access quickly without a Telegram call on
every message. `StaffDirectory.current_role` is the one place a person's role is worked out: for the
manager chat's filters (which only read), the Mini App and the team list alike.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from tortoise.expressions import Q

from models import Bot, Role, User
from services import bot_settings, tenant_settings
from services.conversations import Customer
from services.ports import GroupRights, Messenger, Messengers
from services.schedule import InvalidHours, WorkingHours

STAFF_STATUSES = ("creator", "administrator", "member")
MEMBERSHIP_TTL = 60.0
ASSIGNABLE = (Role.ADMIN, Role.MANAGER, Role.VIEWER)
ACTING = (Role.ADMIN, Role.MANAGER)  # may reply to customers and change things


@dataclass(frozen=True)
class ManagerChat:
    chat_id: int
    forum: bool
    locale: str


def manager_chat(bot: Bot, default_locale: str) -> ManagerChat | None:
    if bot.manager_chat_id is None:
        return None
    own = tenant_settings.of(bot)
    return ManagerChat(int(bot.manager_chat_id), own.manager_forum, own.manager_locale or default_locale)


async def load_manager_chat(bot_id: int, default_locale: str) -> ManagerChat | None:
    """Read fresh: another instance may have run /setup since this one started."""
    bot = await Bot.get(id=bot_id)
    return manager_chat(bot, default_locale)


class StaffDirectory:
    def __init__(self, messengers: Messengers, admin_ids: frozenset[int], ttl: float = MEMBERSHIP_TTL,
                 auto_approve: bool = False) -> None:
        self.messengers = messengers  # a bot not served (Telegram off, paused): nobody is a member of its chat
        self.admin_ids = admin_ids
        self.ttl = ttl
        self.auto_approve = auto_approve  # every manager chat member is a manager, with no approval
        self._statuses: dict[tuple[int, int, int], tuple[float, str]] = {}

    def is_admin(self, telegram_id: int) -> bool:
        return telegram_id in self.admin_ids

    async def is_staff(self, bot_id: int, chat_id: int, telegram_id: int) -> bool:
        """In ADMIN_IDS or a member of the bot's manager chat (approved or not: see `role_of`)."""
        if self.is_admin(telegram_id):
            return True
        return await self._status(bot_id, chat_id, telegram_id) in STAFF_STATUSES

    async def _status(self, bot_id: int, chat_id: int, telegram_id: int) -> str:
        key = (bot_id, chat_id, telegram_id)  # asked as that bot: bots sharing a group see the same members
        cached = self._statuses.get(key)
        if cached is not None and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        messenger = self.messengers.of(bot_id)
        if messenger is None:
            return "left"
        status = await messenger.member_status(chat_id, telegram_id)
        if len(self._statuses) > 10_000:
            self._statuses.clear()
        self._statuses[key] = (time.monotonic(), status)
        return status

    async def current_role(self, bot: Bot, telegram_id: int, user: User | None, default_locale: str) -> Role:
        """What this person may do now: ADMIN_IDS are admins; someone an admin removed is a customer;
        someone who joined by invitation, and a manager chat member, has the role an admin gave them
        (a member is pending until then; `user` is None before their first step in the desk);
        anyone else is a customer. Reads only: filters ask this."""
        if self.is_admin(telegram_id):
            return Role.ADMIN
        own = tenant_settings.of(bot)
        if user is not None and user.id in own.removed_staff:  # removed by an admin, until invited again
            return Role.CUSTOMER
        if user is not None and user.id in own.invited_staff:  # joined by invitation: no chat needed
            return _member_role(own, user, auto_approve=False)
        chat = manager_chat(bot, default_locale)
        if chat is None or not await self.is_staff(bot.id, chat.chat_id, telegram_id):
            return Role.CUSTOMER
        return member_role(bot, user, self.auto_approve)

    async def role_in(self, bot_id: int, telegram_id: int, default_locale: str) -> Role:
        """`current_role` of a Telegram user, their row looked up (and never made)."""
        bot = await Bot.get(id=bot_id)
        user = await User.get_or_none(bot_id=bot_id, telegram_id=telegram_id)
        return await self.current_role(bot, telegram_id, user, default_locale)

    async def role_of(self, user: User, default_locale: str) -> Role:
        """`current_role` of a user, kept on their row too, so that the team list shows them."""
        if user.telegram_id is None:
            return Role.CUSTOMER
        bot = await Bot.get(id=user.bot_id)
        role = await self.current_role(bot, int(user.telegram_id), user, default_locale)
        if role != user.role and (role != Role.CUSTOMER or user.role in (Role.PENDING, *ASSIGNABLE)):
            user.role = role
            await user.save(update_fields=["role"])
        return role

    async def enlist(self, bot_id: int, who: Customer, default_locale: str) -> User:
        """A member's step in the desk: their row (made, or its names refreshed) and their role on it."""
        user = await self.register(bot_id, who)
        await self.role_of(user, default_locale)
        return user

    async def register(self, bot_id: int, who: Customer) -> User:
        """The staff member's row (shared with their customer row, if they ever wrote to the bot)."""
        user, created = await User.get_or_create(
            bot_id=bot_id, telegram_id=who.telegram_id,
            defaults={"first_name": who.first_name[:256], "last_name": who.last_name[:256],
                      "username": who.username[:64], "language": who.language_code[:8]})
        if not created and (user.first_name != who.first_name[:256] or user.username != who.username[:64]):
            user.first_name, user.username = who.first_name[:256], who.username[:64]
            await user.save(update_fields=["first_name", "username"])
        return user


def member_role(bot: Bot, user: User | None, auto_approve: bool) -> Role:
    """A manager chat member's role (not for ADMIN_IDS): as an admin set it, else pending."""
    if user is None:  # no row yet: nobody could approve them
        return Role.MANAGER if auto_approve else Role.PENDING
    return _member_role(tenant_settings.of(bot), user, auto_approve)


def _member_role(own: tenant_settings.TenantSettings, user: User, auto_approve: bool) -> Role:
    if user.id in own.granted_admins:
        return Role.ADMIN
    given = (own.staff_roles or {}).get(user.id)
    if given is not None:
        return Role(given)
    return Role.MANAGER if auto_approve else Role.PENDING


async def adopt_existing_staff(bot_id: int) -> None:
    """On the first start of a version with approvals: the managers already at work stay managers
    (approved as they were), so an upgrade locks nobody out. Later members wait for approval."""
    async with tenant_settings.edit(bot_id) as draft:
        if draft.settings.staff_roles is not None:
            return
        managers = await User.filter(bot_id=bot_id, role=Role.MANAGER).values_list("id", flat=True)
        draft.settings = draft.settings.changed(staff_roles={user_id: Role.MANAGER.value for user_id in managers})


def granted_admin(bot: Bot, user: User) -> bool:
    """Whether an admin made this staff member an admin (ADMIN_IDS are admins without it)."""
    return user.id in tenant_settings.of(bot).granted_admins


@dataclass(frozen=True)
class TeamMember:
    telegram_id: int
    user: User | None  # None: an ADMIN_IDS admin who has used neither the desk nor the app yet
    owner: bool  # in ADMIN_IDS: an admin whatever anyone sets here
    role: Role  # admin, manager, viewer, or pending (waiting for an admin's approval)
    invited: bool = False  # joined by an invitation (services.team), not (only) through the manager chat

    @property
    def admin(self) -> bool:
        return self.role == Role.ADMIN


async def team(bot_id: int, directory: StaffDirectory, default_locale: str) -> list[TeamMember]:
    """ADMIN_IDS, and the manager chat's members who have used the desk or the app (those waiting
    for approval too): admins first."""
    bot = await Bot.get(id=bot_id)
    admin_ids = directory.admin_ids
    rows = await User.filter(Q(role__in=[Role.PENDING, *ASSIGNABLE]) | Q(telegram_id__in=sorted(admin_ids)),
                             bot_id=bot_id, telegram_id__isnull=False).order_by("id")
    roles = await asyncio.gather(*(directory.current_role(bot, int(user.telegram_id or 0), user, default_locale)
                                   for user in rows))
    invited = set(tenant_settings.of(bot).invited_staff)
    members = [TeamMember(int(user.telegram_id or 0), user, int(user.telegram_id or 0) in admin_ids, role,
                          user.id in invited)
               for user, role in zip(rows, roles, strict=True) if role != Role.CUSTOMER]
    seen = {member.telegram_id for member in members}
    members += [TeamMember(telegram_id, None, True, Role.ADMIN) for telegram_id in sorted(admin_ids - seen)]
    order = {Role.ADMIN: 0, Role.PENDING: 1, Role.MANAGER: 2, Role.VIEWER: 3}
    return sorted(members, key=lambda m: (not m.owner, order.get(m.role, 4),
                                          (m.user.first_name.lower() if m.user else "")))


async def set_role(bot_id: int, user: User, role: Role, actor: User | None) -> bool:
    """Approve a manager chat member as a manager or viewer, or make them an admin (or not any more);
    False when nothing changes.

    Not for ADMIN_IDS (they are admins whatever this says) and only for current members: the caller checks.
    """
    if role not in ASSIGNABLE:
        raise ValueError(f"{role} is not a role an admin gives")
    async with tenant_settings.edit(bot_id) as draft:
        own = draft.settings
        before = _member_role(own, user, auto_approve=False)
        if before == role and user.role == role:
            return False
        admins = set(own.granted_admins)
        admins = admins | {user.id} if role == Role.ADMIN else admins - {user.id}
        # An admin made a manager again is a manager; the role below admin is kept for that.
        roles = {**(own.staff_roles or {}), user.id: Role.MANAGER.value if role == Role.ADMIN else role.value}
        draft.settings = own.changed(granted_admins=sorted(admins), staff_roles=roles)
        draft.audit(actor, f"make_{role.value}", f"user:{user.id}", before=before.value)
        user.role = role
        await user.save(update_fields=["role"])
    return True


async def set_online(staff: User, online: bool) -> None:
    staff.online = online
    await staff.save(update_fields=["online"])


async def anyone_online(bot_id: int) -> bool:
    return await User.filter(bot_id=bot_id, role__in=[Role.MANAGER, Role.ADMIN], online=True).exists()


def working_hours(bot: Bot, default_hours: str, default_timezone: str) -> WorkingHours:
    own = tenant_settings.of(bot)
    hours = default_hours if own.working_hours is None else own.working_hours
    zone = (default_timezone if own.timezone is None else own.timezone) or "UTC"
    try:
        return WorkingHours.parse(hours, zone)
    except InvalidHours:
        return WorkingHours.parse("", "UTC")  # settings are validated when written; never fail a handoff


async def set_working_hours(bot_id: int, text: str, timezone: str, actor: User | None) -> WorkingHours:
    """/hours: store the bot's working hours (empty text: always in), as the Mini App does but keeping
    the offline texts; raises InvalidHours on nonsense."""
    return await bot_settings.set_hours(bot_id, text, timezone, None, actor, via="group")


def split_hours_and_zone(text: str, default_timezone: str) -> tuple[str, str]:
    """`mon-fri 09:00-18:00 Asia/Tashkent` -> the hours and the zone (a last word with a slash, or UTC)."""
    words = text.split()
    if words and ("/" in words[-1] or words[-1].upper() == "UTC"):
        return " ".join(words[:-1]), words[-1]
    return text.strip(), default_timezone


class WorkingHoursSource:
    """The bot's working hours: its own settings, else the deployment's defaults."""

    def __init__(self, default_hours: str, default_timezone: str) -> None:
        self.default_hours = default_hours
        self.default_timezone = default_timezone

    def __call__(self, bot: Bot) -> WorkingHours:
        return working_hours(bot, self.default_hours, self.default_timezone)


@dataclass(frozen=True)
class SetupReport:
    rights: GroupRights
    registered: bool

    @property
    def missing(self) -> list[str]:
        """What the bot still needs, as keys the handler turns into sentences."""
        missing = []
        if not self.rights.is_admin:
            missing.append("admin")
        elif not self.rights.can_manage_topics and self.rights.is_forum:
            missing.append("manage_topics")
        if not self.rights.is_forum:
            missing.append("topics")
        return missing


async def register_manager_chat(bot_id: int, chat_id: int, rights: GroupRights, locale: str) -> None:
    async with tenant_settings.edit(bot_id) as draft:
        draft.settings = draft.settings.changed(
            manager_forum=rights.is_forum and rights.can_manage_topics, manager_locale=locale,
            manager_chat_checked_at=datetime.now(UTC))
        draft.bot.manager_chat_id = chat_id
        await draft.bot.save(update_fields=["manager_chat_id"])


async def stop_using_topics(bot_id: int) -> None:
    """The bot lost the right to manage topics: reply-threading until /setup finds it back."""
    await tenant_settings.update(bot_id, {"manager_forum": False})


async def setup_manager_chat(messenger: Messenger, bot_id: int, chat_id: int, locale: str) -> SetupReport:
    """Make `chat_id` the manager chat and say what the bot still lacks there.

    A forum where the bot may manage topics gets one topic per conversation; anything less works
    by reply-threading in the group until the rights are given and /setup is sent again.
    """
    rights = await messenger.group_rights(chat_id)
    if not rights.is_member:
        return SetupReport(rights, registered=False)
    await register_manager_chat(bot_id, chat_id, rights, locale)
    return SetupReport(rights, registered=True)
