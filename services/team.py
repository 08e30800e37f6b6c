"""Inviting a teammate, and removing one.

An admin makes an invitation for a role (manager or viewer): a one-time code in a
`t.me/<bot>?start=invite-<code>` deep link, valid for a day, kept as a digest in the tenant's
settings. The first person who opens it holds it (nobody else can use it afterwards) and the bot
asks them to confirm; only then are they on the team, with that role. An invitation is enough by
itself: they need not be in the manager chat (they work in the desk app, or in a browser via
/dashboard; in the manager chat too, if they are added to it).

Removing a member takes their role away wherever it came from (an invitation, an approval in the
manager chat, an admin's grant) and ends their browser sessions. A removed person stays removed even
if they are still in the manager chat, until an admin invites them again. ADMIN_IDS cannot be
removed: the deployment makes them admins.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from models import Role, User, WebSession
from services import tenant_settings
from services.accounts import digest
from services.tenant_settings import StaffRole, TeamInvite, TenantSettings

INVITE_LIFETIME = timedelta(hours=24)
START_PREFIX = "invite-"  # the /start payload: invite-<code>; Telegram allows 64 of A-Z a-z 0-9 _ -
MAX_OPEN_INVITES = 20


class TeamError(ValueError):
    """Refused: `code` says why (too_many_invites, not_found)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def deep_link(bot_username: str, code: str) -> str:
    return f"https://t.me/{bot_username}?start={START_PREFIX}{code}"


def _open(settings: TenantSettings, now: datetime) -> list[TeamInvite]:
    return [invite for invite in settings.team_invites if invite.expires_at > now]


def open_invites(settings: TenantSettings) -> list[TeamInvite]:
    """Invitations nobody has used yet and that still work, oldest first."""
    return _open(settings, datetime.now(UTC))


@dataclass(frozen=True)
class NewInvite:
    invite: TeamInvite
    code: str  # shown once, in the link; only its digest is kept


async def create_invite(bot_id: int, role: StaffRole, actor: User,
                        lifetime: timedelta = INVITE_LIFETIME) -> NewInvite:
    """A fresh invitation for `role` (audited); expired ones are dropped on the way."""
    code, now = secrets.token_urlsafe(24), datetime.now(UTC)
    invite = TeamInvite(id=secrets.token_urlsafe(6), code_digest=digest(code), role=role, expires_at=now + lifetime,
                        created_by=actor.id)
    async with tenant_settings.edit(bot_id) as draft:
        still_open = _open(draft.settings, now)
        if len(still_open) >= MAX_OPEN_INVITES:
            raise TeamError("too_many_invites")
        draft.settings = draft.settings.changed(team_invites=[*still_open, invite])
        draft.audit(actor, "team_invite", f"invite:{invite.id}", role=role)
    return NewInvite(invite, code)


async def cancel_invite(bot_id: int, invite_id: str, actor: User) -> None:
    """The link stops working (audited); TeamError not_found when it is not open."""
    async with tenant_settings.edit(bot_id) as draft:
        still_open = _open(draft.settings, datetime.now(UTC))
        if not any(invite.id == invite_id for invite in still_open):
            raise TeamError("not_found")
        draft.settings = draft.settings.changed(team_invites=[i for i in still_open if i.id != invite_id])
        draft.audit(actor, "team_invite_cancelled", f"invite:{invite_id}")


async def claim(bot_id: int, code: str, person: User) -> TeamInvite | None:
    """The person who opened the link holds the invitation from now on; None when it is unknown, used,
    expired or held by someone else."""
    if person.telegram_id is None or not code or len(code) > 64:
        return None
    async with tenant_settings.edit(bot_id) as draft:
        still_open = _open(draft.settings, datetime.now(UTC))
        found = next((invite for invite in still_open if invite.code_digest == digest(code)), None)
        if found is None or found.claimed_by not in (None, person.id):
            return None
        held = found.model_copy(update={"claimed_by": person.id})
        draft.settings = draft.settings.changed(
            team_invites=[held if invite.id == found.id else invite for invite in still_open])
    return held


async def accept(bot_id: int, invite_id: str, person: User) -> StaffRole | None:
    """The person confirmed: they are on the team with the invitation's role, and the invitation is
    used up (audited). None when it is no longer theirs to accept (used, expired, another's)."""
    async with tenant_settings.edit(bot_id) as draft:
        own = draft.settings
        still_open = _open(own, datetime.now(UTC))
        found = next((invite for invite in still_open if invite.id == invite_id and invite.claimed_by == person.id),
                     None)
        if found is None:
            return None
        draft.settings = own.changed(
            team_invites=[invite for invite in still_open if invite.id != invite_id],
            invited_staff=sorted({*own.invited_staff, person.id}),
            removed_staff=[user_id for user_id in own.removed_staff if user_id != person.id],
            granted_admins=[user_id for user_id in own.granted_admins if user_id != person.id],
            staff_roles={**(own.staff_roles or {}), person.id: found.role})
        draft.audit(person, "team_join", f"user:{person.id}", role=found.role, invite=found.id,
                    invited_by=found.created_by)
        person.role = Role(found.role)
        await person.save(update_fields=["role"])
    return found.role


async def decline(bot_id: int, invite_id: str, person: User) -> None:
    """The person said no: the invitation is used up, so nobody else can take it."""
    async with tenant_settings.edit(bot_id) as draft:
        draft.settings = draft.settings.changed(team_invites=[
            invite for invite in _open(draft.settings, datetime.now(UTC))
            if not (invite.id == invite_id and invite.claimed_by == person.id)])


async def remove_member(bot_id: int, member: User, actor: User) -> None:
    """Take a member's role away and end their browser sessions, audited. The caller makes sure they
    are a member and not in ADMIN_IDS."""
    async with tenant_settings.edit(bot_id) as draft:
        own = draft.settings
        before = member.role
        draft.settings = own.changed(
            staff_roles={user_id: role for user_id, role in (own.staff_roles or {}).items() if user_id != member.id},
            granted_admins=[user_id for user_id in own.granted_admins if user_id != member.id],
            invited_staff=[user_id for user_id in own.invited_staff if user_id != member.id],
            removed_staff=sorted({*own.removed_staff, member.id}))
        sessions = await WebSession.filter(user_id=member.id).delete()
        draft.audit(actor, "remove_member", f"user:{member.id}", before=str(before.value), sessions=sessions)
        member.role, member.online = Role.CUSTOMER, False
        await member.save(update_fields=["role", "online"])
