"""The admins' settings API: working hours and the offline text, the AI's models, limits, widget
sites, the team's roles, invitations to the team and removing a member. Admins only: managers and
customers get 403 and nothing else."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import available_timezones

from aiohttp import web

from miniapp import admin_schemas as shapes
from miniapp.api import Api, ApiError, ok, path_id, read_body
from miniapp.auth import MINIAPP, admin, tenant
from miniapp.origin import public_base
from models import Bot, Role, User, WidgetSite
from services import accounts, bot_settings, inbox, staff, team, tenant_settings, widget
from services.ai import AIClient
from services.handoff import AFTER_HOURS
from services.i18n import N_, SUPPORTED_LOCALES
from services.schedule import DAYS, InvalidHours, WorkingHours


@dataclass
class AdminRuntime:
    ai: AIClient | None  # None: no AI configured
    defaults: bot_settings.Limits  # the deployment's, from the environment
    default_hours: str
    default_timezone: str
    rates: bot_settings.RatesByBot | None = None  # re-read at once when the admins change the rate
    secret_overlap_hours: float = 24.0  # WIDGET_SECRET_OVERLAP_HOURS: a rotated site secret's overlap


ADMIN = web.AppKey("miniapp_admin", AdminRuntime)

BAD_ZONE = N_("Unknown time zone: pick one from the list, like Asia/Tashkent.")
BAD_HOURS = N_("Write the working hours like “mon-fri 09:00-18:00, sat 10:00-14:00”, or leave them empty for "
               "“always”.")
AI_OFF = N_("No AI is configured for this deployment, so there are no models to choose from.")
SETTING_ERRORS = {
    "unknown_route": N_("That model is not one of those configured for this deployment."),
    "duplicate_route": N_("Each model can be listed only once."),
    "too_long": N_("The text is too long."),
    "bad_name": N_("The name holds characters that cannot be shown."),
}
SITE_ERRORS = {
    "bad_origin": N_("Allowed origins are website addresses like https://shop.example."),
    "no_origin": N_("A site needs at least one allowed origin."),
    "bad_color": N_("Colours are written like #2563eb."),
}
OWNER = N_("This person is an admin in the deployment's settings (ADMIN_IDS) and always stays one.")
NOT_YOURSELF = N_("You cannot remove yourself: ask another admin.")
NO_TELEGRAM = N_("Invitations are links to the bot in Telegram: connect the bot (BOT_TOKEN) first.")
TOO_MANY_INVITES = N_("There are too many open invitations: cancel some first.")


@functools.cache
def timezones() -> list[str]:
    zones = (zone for zone in available_timezones() if "/" in zone
             and not zone.startswith(("posix/", "right/", "Etc/", "SystemV/")))
    return ["UTC", *sorted(zones)]


def _id(request: web.Request, name: str) -> int:
    return path_id(request, name)


# --- settings --------------------------------------------------------------------------------------------


async def _settings(request: web.Request) -> shapes.AdminSettings:
    runtime, own = request.app[MINIAPP], request.app[ADMIN]
    bot = await Bot.get(id=await tenant(request))
    hours = staff.working_hours(bot, own.default_hours, own.default_timezone)
    defaults = {locale: runtime.translate(locale, AFTER_HOURS) for locale in SUPPORTED_LOCALES}
    routes, order, chosen = [], [], False
    if own.ai is not None:
        routes = [shapes.ModelRoute(key=route.key, model=route.model, provider=route.provider)
                  for route in {route.key: route for route in reversed(own.ai.routes)}.values()]
        routes.reverse()
        order = [route.key for route in await own.ai.routes_now(bot.id)]
        chosen = any(key in own.ai.route_keys for key in await bot_settings.route_order(bot.id))
    limits = bot_settings.limits(bot, own.defaults)
    return shapes.AdminSettings(
        hours=shapes.HoursOut(working_hours=hours.text, openings=_openings(hours), timezone=str(hours.zone),
                              always_open=hours.always_open,
                              open_now=hours.is_open(datetime.now(UTC)),
                              offline_text=shapes.OfflineTexts(**bot_settings.offline_texts(bot)),
                              default_offline_text=shapes.OfflineTexts(**defaults)),
        ai=shapes.AIModelsOut(enabled=own.ai is not None, routes=routes, order=order, customized=chosen),
        limits=shapes.LimitsOut(effective=shapes.LimitValues(**vars(limits)),
                                defaults=shapes.LimitValues(**vars(own.defaults)),
                                overrides=shapes.LimitsIn(**bot_settings.overrides(bot))),
        timezones=timezones())


def _openings(hours: WorkingHours) -> list[shapes.OpeningOut]:
    def clock(moment: time) -> str:
        return "24:00" if moment == time(23, 59, 59) else moment.strftime("%H:%M")

    return [shapes.OpeningOut(day=DAYS[o.weekday], start=clock(o.start), end=clock(o.end))
            for o in sorted(hours.openings, key=lambda o: (o.weekday, o.start))]


async def settings_view(request: web.Request) -> web.Response:
    await admin(request)
    return ok(await _settings(request))


async def set_hours(request: web.Request) -> web.Response:
    caller = await admin(request)
    body = await read_body(request, shapes.HoursIn)
    try:
        WorkingHours.parse("", body.timezone)
    except InvalidHours as error:
        raise ApiError(400, "bad_timezone", BAD_ZONE) from error
    try:
        await bot_settings.set_hours(await tenant(request), body.working_hours, body.timezone,
                                     body.offline_text.model_dump(), caller.user)
    except InvalidHours as error:
        raise ApiError(400, "bad_hours", BAD_HOURS) from error
    except bot_settings.SettingError as error:
        raise ApiError(400, error.code, SETTING_ERRORS[error.code]) from error
    return ok(await _settings(request))


async def set_models(request: web.Request) -> web.Response:
    caller = await admin(request)
    body = await read_body(request, shapes.AIModelsIn)
    ai = request.app[ADMIN].ai
    if ai is None:
        raise ApiError(409, "ai_off", AI_OFF)
    try:
        await bot_settings.set_route_order(await tenant(request), body.order, ai.route_keys, caller.user)
    except bot_settings.SettingError as error:
        raise ApiError(400, error.code, SETTING_ERRORS[error.code]) from error
    return ok(await _settings(request))


async def set_limits(request: web.Request) -> web.Response:
    caller = await admin(request)
    body = await read_body(request, shapes.LimitsIn)
    await bot_settings.set_limits(await tenant(request), daily_ai_quota=body.daily_ai_quota, burst=body.burst,
                                  per_minute=body.per_minute, actor=caller.user)
    rates = request.app[ADMIN].rates
    if rates is not None:
        await rates.reload(caller.user.bot_id)
    return ok(await _settings(request))


# --- the business's name ---------------------------------------------------------------------------------


async def business_view(request: web.Request) -> web.Response:
    await admin(request)
    bot = await Bot.get(id=await tenant(request))
    return ok(shapes.BusinessOut(business_name=bot_settings.business_name(bot)))


async def set_business(request: web.Request) -> web.Response:
    caller = await admin(request)
    body = await read_body(request, shapes.BusinessIn)
    try:
        name = await bot_settings.set_business_name(await tenant(request), body.business_name, caller.user)
    except bot_settings.SettingError as error:
        raise ApiError(400, error.code, SETTING_ERRORS[error.code]) from error
    return ok(shapes.BusinessOut(business_name=name))


# --- widget sites ----------------------------------------------------------------------------------------


def _site(request: web.Request, site: WidgetSite) -> shapes.SiteOut:
    base = public_base(request)  # where widget.js is served, for the embed snippet
    return shapes.SiteOut(id=site.id, public_key=site.public_key, title=site.title, color=site.color,
                          text_color=site.text_color, greeting=site.greeting, allowed_origins=site.allowed_origins,
                          secret=site.secret, previous_secret_until=_when(widget.previous_secret_until(site)),
                          embed=widget.embed_snippet(site, base), created_at=site.created_at.isoformat())


def _when(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


async def _own_site(request: web.Request) -> WidgetSite:
    site = await WidgetSite.get_or_none(id=_id(request, "site_id"), bot_id=await tenant(request))
    if site is None:
        raise ApiError(404, "not_found")
    return site


def _site_error(error: widget.SiteError) -> ApiError:
    return ApiError(400, error.code, SITE_ERRORS.get(error.code))


async def sites_view(request: web.Request) -> web.Response:
    await admin(request)
    sites = await widget.list_sites(await tenant(request))
    return ok(shapes.SiteList(sites=[_site(request, site) for site in sites],
                              secret_overlap_hours=request.app[ADMIN].secret_overlap_hours))


async def add_site(request: web.Request) -> web.Response:
    caller = await admin(request)
    body = await read_body(request, shapes.SiteIn)
    try:
        site = await widget.create_site(await tenant(request), body.allowed_origins, title=body.title,
                                        color=body.color, text_color=body.text_color, greeting=body.greeting,
                                        actor=caller.user)
    except widget.SiteError as error:
        raise _site_error(error) from error
    return ok(_site(request, site), status=201)


async def edit_site(request: web.Request) -> web.Response:
    caller = await admin(request)
    body = await read_body(request, shapes.SitePatch)
    site = await _own_site(request)
    try:
        await widget.update_site(site, origins=body.allowed_origins, title=body.title, color=body.color,
                                 text_color=body.text_color, greeting=body.greeting, actor=caller.user)
    except widget.SiteError as error:
        raise _site_error(error) from error
    return ok(_site(request, site))


async def rotate_secret(request: web.Request) -> web.Response:
    caller = await admin(request)
    body = await read_body(request, shapes.SecretRotationIn)
    site = await _own_site(request)
    hours = request.app[ADMIN].secret_overlap_hours if body.overlap_hours is None else body.overlap_hours
    return ok(_site(request, await widget.rotate_secret(site, timedelta(hours=hours), caller.user)))


async def remove_site(request: web.Request) -> web.Response:
    caller = await admin(request)
    site = await _own_site(request)
    await widget.delete_site(site, caller.user)
    return await sites_view(request)


# --- the team --------------------------------------------------------------------------------------------


async def _team(request: web.Request) -> list[staff.TeamMember]:
    runtime = request.app[MINIAPP]
    return await staff.team(await tenant(request), runtime.staff, runtime.default_locale)


async def _team_json(request: web.Request) -> shapes.Team:
    rows = []
    for member in await _team(request):
        who = inbox.person(member.user) or {"id": None, "name": f"#{member.telegram_id}", "username": None}
        rows.append(shapes.TeamMemberOut(id=who["id"], telegram_id=member.telegram_id, name=who["name"],
                                         username=who["username"], role=member.role.value, owner=member.owner,
                                         invited=member.invited))
    bot = await Bot.get(id=await tenant(request))
    invites = team.open_invites(tenant_settings.of(bot))
    authors = {user.id: user for user in await User.filter(id__in=[i.created_by for i in invites if i.created_by])}
    return shapes.Team(members=rows, invites=[_invite_json(invite, authors) for invite in invites],
                       can_invite=bool(bot.username))


def _invite_json(invite: tenant_settings.TeamInvite, authors: dict[int, User]) -> shapes.InviteOut:
    author = authors.get(invite.created_by or 0)
    return shapes.InviteOut(id=invite.id, role=invite.role, expires_at=invite.expires_at.isoformat(),
                            created_by=author.first_name if author is not None else None,
                            opened=invite.claimed_by is not None)


async def team_view(request: web.Request) -> web.Response:
    await admin(request)
    return ok(await _team_json(request))


async def invite(request: web.Request) -> web.Response:
    """A one-time link to the bot that makes whoever confirms it a manager or a viewer."""
    caller = await admin(request)
    body = await read_body(request, shapes.InviteIn)
    bot = await Bot.get(id=caller.bot_id)
    if not bot.username:
        raise ApiError(409, "no_telegram", NO_TELEGRAM)
    try:
        made = await team.create_invite(caller.bot_id, body.role, caller.user)
    except team.TeamError as error:
        raise ApiError(409, error.code, TOO_MANY_INVITES) from error
    return ok(shapes.InviteCreated(link=team.deep_link(bot.username, made.code),
                                   invite=_invite_json(made.invite, {caller.user.id: caller.user}),
                                   team=await _team_json(request)), status=201)


async def cancel_invite(request: web.Request) -> web.Response:
    caller = await admin(request)
    try:
        await team.cancel_invite(caller.bot_id, request.match_info["invite_id"], caller.user)
    except team.TeamError as error:
        raise ApiError(404, "not_found") from error
    return ok(await _team_json(request))


async def remove_member(request: web.Request) -> web.Response:
    """Take a member off the team: no role, no browser sessions (ADMIN_IDS stay: 409)."""
    caller = await admin(request)
    user_id = _id(request, "user_id")
    member = next((m for m in await _team(request) if m.user is not None and m.user.id == user_id), None)
    if member is None or member.user is None:
        raise ApiError(404, "not_found")
    if member.owner:
        raise ApiError(409, "owner", OWNER)
    if member.user.id == caller.user.id:
        raise ApiError(409, "yourself", NOT_YOURSELF)
    await team.remove_member(caller.bot_id, member.user, caller.user)
    return ok(await _team_json(request))


async def set_role(request: web.Request) -> web.Response:
    caller = await admin(request)
    body = await read_body(request, shapes.RoleIn)
    user_id = _id(request, "user_id")
    member = next((m for m in await _team(request) if m.user is not None and m.user.id == user_id), None)
    if member is None or member.user is None:
        raise ApiError(404, "not_found")
    if member.owner:
        raise ApiError(409, "owner", OWNER)
    await staff.set_role(await tenant(request), member.user, Role(body.role), caller.user)
    return ok(await _team_json(request))


async def sign_out_member(request: web.Request) -> web.Response:
    """End every browser session of a team member (a lost laptop, someone who left)."""
    caller = await admin(request)
    user_id = _id(request, "user_id")
    member = next((m for m in await _team(request) if m.user is not None and m.user.id == user_id), None)
    user = member.user if member is not None else await User.get_or_none(id=user_id, bot_id=caller.bot_id)
    if user is None or user.telegram_id is None:
        raise ApiError(404, "not_found")
    await accounts.sign_out_everywhere(user, caller.user)
    return ok(await _team_json(request))


def add_routes(app: web.Application, api: Api) -> None:
    route = functools.partial(api.route, app, roles="admins")
    route("GET", "/api/admin/settings", settings_view, response=shapes.AdminSettings,
          summary="The business's settings: working hours, offline text, AI models, limits")
    route("PUT", "/api/admin/settings/hours", set_hours, body=shapes.HoursIn, response=shapes.AdminSettings,
          summary="Working hours, their time zone and the offline text customers get after hours")
    route("PUT", "/api/admin/settings/ai", set_models, body=shapes.AIModelsIn, response=shapes.AdminSettings,
          summary="Which configured model answers first and the fallbacks' order, from the next answer on")
    route("PUT", "/api/admin/settings/limits", set_limits, body=shapes.LimitsIn, response=shapes.AdminSettings,
          summary="AI answers per customer a day and the per-customer message rate (null: the deployment's)")
    route("GET", "/api/admin/sites", sites_view, response=shapes.SiteList,
          summary="The websites that embed the chat widget, with their embed snippets and identity secrets")
    route("POST", "/api/admin/sites", add_site, body=shapes.SiteIn, response=shapes.SiteOut,
          summary="Register a website for the widget")
    route("PATCH", "/api/admin/sites/{site_id}", edit_site, body=shapes.SitePatch, response=shapes.SiteOut,
          summary="Change a site's title, colours, greeting or allowed origins (its key and secret stay)")
    route("POST", "/api/admin/sites/{site_id}/secret", rotate_secret, body=shapes.SecretRotationIn,
          response=shapes.SiteOut, summary="A new identity secret; the old one verifies for the overlap (audited)")
    route("DELETE", "/api/admin/sites/{site_id}", remove_site, response=shapes.SiteList,
          summary="Stop serving a site's widget")
    route("GET", "/api/admin/staff", team_view, response=shapes.Team,
          summary="The team: ADMIN_IDS and the manager chat's members who have used the desk or the app")
    route("PUT", "/api/admin/staff/{user_id}/role", set_role, body=shapes.RoleIn, response=shapes.Team,
          summary="Approve a member as a manager or a read-only viewer, or make them an admin (ADMIN_IDS stay "
                  "admins: 409)")
    route("POST", "/api/admin/staff/{user_id}/sign-out", sign_out_member, response=shapes.Team,
          summary="Sign a team member out of every browser")
    route("GET", "/api/admin/business", business_view, response=shapes.BusinessOut,
          summary="The business's name, as customers see it")
    route("PUT", "/api/admin/business", set_business, body=shapes.BusinessIn, response=shapes.BusinessOut,
          summary="Name the business: the widget's header and greeting and the bot's /start use it (audited)")
    route("DELETE", "/api/admin/staff/{user_id}", remove_member, response=shapes.Team,
          summary="Remove a member from the team: their role and browser sessions end (ADMIN_IDS: 409; yourself: 409)")
    route("POST", "/api/admin/staff/invites", invite, body=shapes.InviteIn, response=shapes.InviteCreated,
          summary="A one-time t.me link (24 hours) that makes whoever opens and confirms it a manager or a viewer")
    route("DELETE", "/api/admin/staff/invites/{invite_id}", cancel_invite, response=shapes.Team,
          summary="Cancel an invitation: its link stops working")
