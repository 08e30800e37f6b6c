"""The shapes of the persona editor's and the admins' settings API (and their OpenAPI schemas)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from miniapp.schemas import Person, Strict
from services.tenant_settings import PersonaForm

Origin = Annotated[str, Field(max_length=200)]
RouteKey = Annotated[str, Field(max_length=200)]

# --- the persona --------------------------------------------------------------------------------------


class PersonaVersionSummary(BaseModel):
    version: int
    created_at: str
    active: bool
    author: Person | None = Field(description="Who saved it; null when it came from the command line")
    restored_from: int | None = Field(description="The older version whose text it brought back, if a rollback")
    chars: int
    preview: str = Field(description="Its first line, shortened")
    labels: list[str] = Field(description="Names such as `production`: each names one version at a time")


class PersonaVersionOut(PersonaVersionSummary):
    text: str


class PersonaOverview(BaseModel):
    text: str = Field(description="What the AI is told now: the active version, else the built-in default")
    active: PersonaVersionOut | None = Field(description="null while the built-in default is in use")
    versions: list[PersonaVersionSummary] = Field(description="Newest first")
    has_more: bool = Field(description="Older versions exist: ask with before=<the last version>")
    max_chars: int
    form: PersonaForm = Field(description="The guided form as last saved (its defaults if it never was)")
    form_writes_text: bool = Field(description="The text is what the form writes (false: edited by hand, or the "
                                               "business's name changed since)")
    business_name: str = Field(description="The name the form puts in the prompt (\"\": none set)")
    ai_enabled: bool = Field(description="Whether an AI answers at all: without one the persona is not used")


class PersonaHistoryParams(Strict):
    before: int | None = Field(None, ge=1)
    limit: int = Field(50, ge=1, le=200)


class PersonaIn(Strict):
    text: str = Field(min_length=1, max_length=100_000)
    form: PersonaForm | None = Field(None, description="The guided form the text was written with, kept to fill "
                                                       "the form in next time")
    base_version: int | None = Field(
        None, ge=0, description="The version the text was edited from (0: the default). When another version was "
                                "saved meanwhile, nothing is stored and the answer is 409")


class ComposeIn(Strict):
    form: PersonaForm


class ComposeOut(BaseModel):
    text: str = Field(description="The prompt the form writes, in the form's language")


class TurnIn(Strict):
    author: Literal["customer", "assistant"]
    text: str = Field(min_length=1, max_length=4096)


class PersonaTryIn(Strict):
    question: str = Field(min_length=1, max_length=4096)
    text: str | None = Field(None, max_length=100_000, description="The draft persona to answer with (null: the "
                                                                   "active one)")
    earlier: list[TurnIn] = Field(default_factory=list, max_length=20, description="The test chat so far, oldest "
                                                                                   "first")
    locale: Literal["en", "ru", "uz"] | None = None


class LabelIn(Strict):
    label: str = Field(max_length=64)


class DiffParams(Strict):
    against: int | None = Field(None, ge=1, description="The version to compare with (default: the one before)")


class DiffSegment(BaseModel):
    text: str
    changed: bool


class DiffLine(BaseModel):
    kind: Literal["same", "added", "removed"]
    text: str
    old: int | None = Field(description="Its line number in the previous version")
    new: int | None = Field(description="Its line number in this version")
    segments: list[DiffSegment] = Field(description="For a changed line: its words, marking those that changed")


class PersonaDiffOut(BaseModel):
    version: int
    previous: int | None = Field(description="The version compared with; null: the built-in default")
    hunks: list[list[DiffLine]] = Field(description="Changed lines with a little unchanged context around them")
    added: int
    removed: int


# --- the admins' settings -----------------------------------------------------------------------------


class OfflineTexts(Strict):
    en: str = Field("", max_length=1000)
    ru: str = Field("", max_length=1000)
    uz: str = Field("", max_length=1000)


class OpeningOut(BaseModel):
    day: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    start: str = Field(description="HH:MM, 24-hour")
    end: str = Field(description="HH:MM, 24-hour; 24:00 is the end of the day")


class HoursOut(BaseModel):
    working_hours: str = Field(description="Like `mon-fri 09:00-18:00, sat 10:00-14:00`; empty: always in")
    openings: list[OpeningOut] = Field(description="The same hours day by day, Monday first")
    timezone: str
    always_open: bool
    open_now: bool
    offline_text: OfflineTexts = Field(description="Told to customers after hours; empty: the default below")
    default_offline_text: OfflineTexts = Field(description="The translated default; {when} is the time we're back")


class HoursIn(Strict):
    working_hours: str = Field("", max_length=500)
    timezone: str = Field(min_length=1, max_length=64)
    offline_text: OfflineTexts = Field(default_factory=OfflineTexts)


class ModelRoute(BaseModel):
    key: str
    model: str
    provider: str = Field(description="The provider's name in the deployment's settings (never its address or key)")


class AIModelsOut(BaseModel):
    enabled: bool = Field(description="false: no AI is configured, answers come from the knowledge base")
    routes: list[ModelRoute] = Field(description="Every model the deployment configured")
    order: list[str] = Field(description="The keys tried in order: the first answers, the rest are fallbacks")
    customized: bool = Field(description="true: the admins chose the order; false: the deployment's own")


class AIModelsIn(Strict):
    order: list[RouteKey] = Field(max_length=20, description="Route keys in order; [] goes back to the deployment's")


class LimitValues(BaseModel):
    daily_ai_quota: int
    burst: int
    per_minute: float


class LimitsIn(Strict):
    daily_ai_quota: int | None = Field(None, ge=0, le=100_000, description="AI answers per customer a day; null: "
                                                                        "the deployment's")
    burst: int | None = Field(None, ge=1, le=100, description="Messages a customer may send at once")
    per_minute: float | None = Field(None, gt=0, le=600, description="Messages a customer may send a minute")


class LimitsOut(BaseModel):
    effective: LimitValues
    defaults: LimitValues = Field(description="The deployment's (DAILY_AI_QUOTA, CUSTOMER_RATE_BURST and _PER_MINUTE)")
    overrides: LimitsIn


class AdminSettings(BaseModel):
    hours: HoursOut
    ai: AIModelsOut
    limits: LimitsOut
    timezones: list[str]


class SiteOut(BaseModel):
    id: int
    public_key: str
    title: str
    color: str
    text_color: str
    greeting: str
    allowed_origins: list[str]
    secret: str = Field(description="Signs the site's own logged-in users' ids: keep it on the site's server")
    previous_secret_until: str | None = Field(
        None, description="After a rotation: until when the replaced secret still verifies identities")
    embed: str = Field(description="The script tag for the site's pages")
    created_at: str


class SiteList(BaseModel):
    sites: list[SiteOut]
    secret_overlap_hours: float = Field(description="WIDGET_SECRET_OVERLAP_HOURS: a rotation's default overlap")


class SiteIn(Strict):
    allowed_origins: list[Origin] = Field(min_length=1, max_length=20)
    title: str = Field("", max_length=128)
    color: str = Field("", max_length=16)
    text_color: str = Field("", max_length=16)
    greeting: str = Field("", max_length=1000)


class SitePatch(Strict):
    allowed_origins: list[Origin] | None = Field(None, min_length=1, max_length=20)
    title: str | None = Field(None, max_length=128)
    color: str | None = Field(None, max_length=16)
    text_color: str | None = Field(None, max_length=16)
    greeting: str | None = Field(None, max_length=1000)


class SecretRotationIn(Strict):
    overlap_hours: float | None = Field(
        None, ge=0, le=720, description="How long the old secret still verifies identities (null: the deployment's "
                                        "WIDGET_SECRET_OVERLAP_HOURS; 0: not at all)")


class TeamMemberOut(BaseModel):
    id: int | None = Field(description="null: an ADMIN_IDS admin who has not used the desk or the app yet")
    telegram_id: int
    name: str
    username: str | None
    role: Literal["admin", "manager", "viewer", "pending"] = Field(
        description="pending: in the manager chat, waiting for an admin to approve them as a manager or viewer")
    owner: bool = Field(description="In ADMIN_IDS: an admin always, not changeable here")
    invited: bool = Field(False, description="Joined by an invitation (need not be in the manager chat)")


class InviteOut(BaseModel):
    id: str
    role: Literal["manager", "viewer"]
    expires_at: str
    created_by: str | None = Field(description="The admin who made it, by name")
    opened: bool = Field(description="Someone opened the link: only they can still accept it")


class Team(BaseModel):
    members: list[TeamMemberOut]
    invites: list[InviteOut] = Field(default_factory=list, description="Invitations not used yet, oldest first")
    can_invite: bool = Field(True, description="False while the bot has no Telegram username (Telegram is off)")


class InviteIn(Strict):
    role: Literal["manager", "viewer"]


class InviteCreated(BaseModel):
    link: str = Field(description="t.me/<bot>?start=invite-<code>: works once; shown only now")
    invite: InviteOut
    team: Team


class RoleIn(Strict):
    role: Literal["admin", "manager", "viewer"]


# --- the business's name (issue 17: its own small endpoint) ----------------------------------------------


class BusinessIn(Strict):
    business_name: str = Field(max_length=400, description="One line, at most 100 characters; \"\": no name")


class BusinessOut(BaseModel):
    business_name: str = Field(description="What the widget's header and greeting and the bot's /start say; "
                                           "\"\": none yet")
