"""A business's own settings: one typed model over the `Bot.settings` JSON column, one way to change it.

Every key the column may hold is a field of `TenantSettings`, with its default. Reading (`of`) never
fails: a value of the wrong type reads as its field's default, and a key this version does not know
is kept as it is (a newer instance may have written it during a rolling upgrade).

Writing goes through `edit` (or `update`, its short form) only. In one transaction it locks the row
(SELECT ... FOR UPDATE on PostgreSQL; on SQLite a transaction holds the one connection, so writers
queue), hands over the settings as they are now, validates what the caller makes of them, stores
it and writes the audit entry with it. Two changes at once to different keys therefore both
survive, which a read, modify and write outside a transaction did not guarantee.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from tortoise.transactions import in_transaction

from models import AuditLog, Bot, User
from services.i18n import Locale

StaffRole = Literal["manager", "viewer"]
MAX_BUSINESS_NAME = 100
PersonaTone = Literal["friendly", "professional", "casual"]
HandoffWhen = Literal["asks", "upset", "sensitive", "orders", "unknown"]
DEFAULT_HANDOFF: tuple[HandoffWhen, ...] = ("asks", "upset", "sensitive")


class CustomerRate(BaseModel):
    """How fast a customer may write; None follows the deployment's CUSTOMER_RATE_* settings."""

    model_config = ConfigDict(frozen=True)

    burst: int | None = Field(None, ge=1)  # messages at once
    per_minute: float | None = Field(None, gt=0)  # messages a minute


class PersonaForm(BaseModel):
    """The persona's guided form as last saved; services.persona.compose writes the prompt from it."""

    model_config = ConfigDict(frozen=True)

    language: Locale = "en"  # the prompt's own language (it answers in the customer's)
    about: str = Field("", max_length=2000)  # what the business does and offers
    tone: PersonaTone = "friendly"
    avoid: str = Field("", max_length=2000)  # topics to stay away from, one a line
    handoff: list[HandoffWhen] = Field(default_factory=lambda: list(DEFAULT_HANDOFF))
    handoff_other: str = Field("", max_length=500)  # another case, in the admin's words


class TeamInvite(BaseModel):
    """A one-time invitation to the team (services.team): only the code's digest is kept."""

    model_config = ConfigDict(frozen=True)

    id: str  # names it in the app (to cancel it) and in the bot's buttons; not the code
    code_digest: str
    role: StaffRole
    expires_at: datetime
    created_by: int | None = None  # the admin's user id
    claimed_by: int | None = None  # the first person who opened the link: only they can accept it


class TenantSettings(BaseModel):
    """What the business's admins set (None, or empty: the deployment's environment decides)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    # Working hours (`/hours` in the manager chat, or the Mini App) and what customers hear after them.
    working_hours: str | None = None  # like "mon-fri 09:00-18:00"; "": always in; None: WORKING_HOURS
    timezone: str | None = None  # an IANA zone; None: TIMEZONE
    offline_text: dict[str, str] = Field(default_factory=dict)  # {locale: text}, instead of the translated default
    # The AI and the customers' limits (the Mini App's admin settings).
    ai_routes: list[str] = Field(default_factory=list)  # route keys, in the order to try; []: the deployment's
    daily_ai_quota: int | None = Field(None, ge=0)  # AI answers per customer a day; None: DAILY_AI_QUOTA
    customer_rate: CustomerRate = Field(default_factory=CustomerRate)
    # The platform owner's monthly AI budget in dollars (services.budgets); None: none. At it, the AI pauses.
    monthly_ai_budget: Decimal | None = Field(None, ge=0, max_digits=12, decimal_places=2)
    budget_told: str = ""  # the month ("2026-12") whose used-up budget the admins were told of
    # The manager chat, as /setup (or MANAGER_CHAT_ID at start) found it.
    manager_forum: bool = False  # one topic per conversation (else reply-threading in the group)
    manager_locale: str | None = None  # the group's language; None: DEFAULT_LOCALE
    manager_chat_checked_at: datetime | None = None
    # The team: roles as admins gave them (ADMIN_IDS are admins anyway).
    staff_roles: dict[int, StaffRole] | None = None  # {user id: role}; None: not adopted yet (before approvals)
    granted_admins: list[int] = Field(default_factory=list)  # user ids an admin made admins
    # What customers (the widget, the bot's greetings) and staff see the business called; "": no name yet.
    business_name: str = Field("", max_length=MAX_BUSINESS_NAME)
    team_invites: list[TeamInvite] = Field(default_factory=list)  # open invitations (used or expired: dropped)
    invited_staff: list[int] = Field(default_factory=list)  # user ids who joined by invitation (no chat needed)
    removed_staff: list[int] = Field(default_factory=list)  # user ids an admin removed: no role until invited again
    # The persona's guided form (None: never saved; the prompt itself is a persona version).
    persona_form: PersonaForm | None = None
    # Odds and ends.
    knowledge_dismissed: list[str] = Field(default_factory=list)  # suggestion keys staff turned down, oldest first
    demo_site_created: bool = False  # the demo's widget site was made once (a removed one stays removed)

    @classmethod
    def read(cls, raw: object) -> TenantSettings:
        """The settings in a stored row: a key whose value does not fit reads as its default."""
        data: dict[str, Any] = {str(key): value for key, value in raw.items()} if isinstance(raw, Mapping) else {}
        while True:
            try:
                return cls.model_validate(data)
            except ValidationError as error:
                bad = {str(problem["loc"][0]) for problem in error.errors() if problem["loc"]}
                if not bad & data.keys():
                    return cls()
                data = {key: value for key, value in data.items() if key not in bad}

    def changed(self, **changes: Any) -> TenantSettings:
        """A copy with `changes`, validated: a value that does not fit raises ValidationError."""
        return type(self).model_validate({**self.model_dump(), **changes})

    def stored(self) -> dict[str, Any]:
        """The JSON for the row: only what differs from the defaults, and any key this version does not know."""
        return self.model_dump(mode="json", exclude_defaults=True)


def of(bot: Bot) -> TenantSettings:
    return TenantSettings.read(bot.settings)


async def load(bot_id: int) -> TenantSettings:
    """Read fresh: another instance may have changed them."""
    return of(await Bot.get(id=bot_id))


class Draft:
    """The settings under the lock: replace `settings`; what it holds at the end is stored, with the audit entry."""

    def __init__(self, bot: Bot, settings: TenantSettings) -> None:
        self.bot = bot
        self.before = settings
        self.settings = settings
        self._audit: dict[str, Any] | None = None

    def audit(self, actor: User | None, action: str, target: str = "", **details: Any) -> None:
        """Log who changed what (target: the bot, unless given), written with the change."""
        self._audit = {"actor": actor, "action": action, "target": target or f"bot:{self.bot.id}", "details": details}


@asynccontextmanager
async def edit(bot_id: int) -> AsyncIterator[Draft]:
    """Lock the bot's row, hand over its settings and store what the caller made of them, all or nothing.

    A value that does not fit raises ValidationError and changes nothing. Other writes of the caller
    inside the block (another column of the bot, a user's role) join the same transaction.
    """
    async with in_transaction():
        bot = await Bot.select_for_update().get(id=bot_id)
        draft = Draft(bot, of(bot))
        yield draft
        after = TenantSettings.model_validate(draft.settings.model_dump())
        if after != draft.before:
            bot.settings = after.stored()
            await bot.save(update_fields=["settings"])
        if draft._audit is not None:
            await AuditLog.create(bot_id=bot_id, **draft._audit)


Change = Mapping[str, Any] | Callable[[TenantSettings], TenantSettings]


async def update(bot_id: int, change: Change, *, actor: User | None = None, action: str = "",
                 **details: Any) -> TenantSettings:
    """Apply `change` (new values by field, or a function of the current settings) under the lock;
    with an `action`, audit-logged with `details` in the same transaction."""
    async with edit(bot_id) as draft:
        draft.settings = change(draft.settings) if callable(change) else draft.settings.changed(**change)
        if action:
            draft.audit(actor, action, **details)
    return draft.settings
