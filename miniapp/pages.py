"""The Mini App's pages: Jinja2 templates rendered in the reader's language, data fetched by the page.

Pages are the same for everyone and hold no data: inside Telegram the page only learns who it
is showing to from Telegram's script, so every page asks the API (`/api/me`, then its own data)
and shows what the caller's role allows. The language comes from `?lang=`, else the cookie the
page sets once it knows the caller's language, else the browser's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from miniapp.api import ApiError, error_response
from miniapp.auth import CSRF_COOKIE, MINIAPP, SESSION_COOKIE, caller_locale
from services import accounts
from services.i18n import N_

TEMPLATES = Path(__file__).resolve().parent / "templates"
TELEGRAM_SCRIPT = "https://telegram.org/js/telegram-web-app.js?59"


@dataclass(frozen=True)
class Page:
    path: str
    template: str
    title: str
    audience: str  # "everyone", "staff" or "admins": what the navigation shows to whom
    script: str


PAGES = [
    Page("/app/", "history.html", N_("My conversations"), "customers", "history.js"),
    Page("/app/conversations/{conversation_id:\\d+}", "conversation.html", N_("Conversation"), "everyone",
         "conversation.js"),
    Page("/app/settings", "settings.html", N_("My settings"), "everyone", "settings.js"),
    Page("/app/inbox", "inbox.html", N_("Inbox"), "staff", "inbox.js"),
    Page("/app/knowledge", "knowledge.html", N_("Knowledge base"), "staff", "knowledge.js"),
    Page("/app/analytics", "analytics.html", N_("Analytics"), "staff", "analytics.js"),
    Page("/app/persona", "persona.html", N_("Persona"), "staff", "persona.js"),
    Page("/app/admin", "admin.html", N_("Administration"), "admins", "admin.js"),
    Page("/app/studio/templates", "studio_templates.html", N_("Prompt templates"), "everyone", "studio_templates.js"),
]
NAVIGATION = [
    ("/app/", N_("My conversations"), "customers"),
    ("/app/inbox", N_("Inbox"), "staff"),
    ("/app/knowledge", N_("Knowledge base"), "staff"),
    ("/app/analytics", N_("Analytics"), "staff"),
    ("/app/persona", N_("Persona"), "staff"),
    ("/app/admin", N_("Admin"), "admins"),
    ("/app/studio/templates", N_("Templates"), "everyone"),
    ("/app/settings", N_("My settings"), "everyone"),
]

# Every word a page's script shows, translated into the page's language.
SCRIPT_STRINGS = {
    "loading": N_("Loading…"),
    "retry": N_("Try again"),
    "empty_history": N_("No conversations yet. Write to the bot and your conversations will appear here."),
    "empty_inbox": N_("Nothing here right now."),
    "load_more": N_("Show more"),
    "older": N_("Show earlier messages"),
    "you": N_("You"),
    "customer": N_("Customer"),
    "assistant": N_("Assistant"),
    "team": N_("Team"),
    "note": N_("Internal note"),
    "system": N_("Notice"),
    "state_ai": N_("With the AI"),
    "state_waiting": N_("Waiting"),
    "state_assigned": N_("With {name}"),
    "state_closed": N_("Closed"),
    "channel_telegram": N_("Telegram"),
    "channel_widget": N_("Website"),
    "take": N_("Take"),
    "return": N_("Return to AI"),
    "close": N_("Close"),
    "ban": N_("Ban"),
    "unban": N_("Unban"),
    "reply_placeholder": N_("Reply to the customer…"),
    "note_placeholder": N_("Internal note (only the team sees it)…"),
    "send": N_("Send"),
    "add_note": N_("Add note"),
    "reply_mode": N_("Reply"),
    "note_mode": N_("Note"),
    "saved": N_("Saved"),
    "offline": N_("Connection lost. Reconnecting…"),
    "rating": N_("Rating: {stars}"),
    "confirm_ban": N_("Ban this customer? Their messages will be ignored."),
    "confirm_close": N_("Close this conversation?"),
    "confirm_delete": N_("Delete everything we store about you? This cannot be undone."),
    "deleted": N_("Your data has been deleted."),
    "ai_meta": N_("{model} · {tokens_in}+{tokens_out} tokens · ${cost}"),
    "from_kb": N_("From the knowledge base"),
    "search": N_("Search by name, @username or number"),
    "not_signed_in": N_("Please open this app from the bot in Telegram."),
    "blocked": N_("blocked the bot"),
    "seconds_short": N_("s"),
    "minutes_short": N_("min"),
    "hours_short": N_("h"),
    "p90": N_("9 in 10 within {value}"),
    "ratings_count": N_("{count} ratings"),
    "tokens_count": N_("{count} tokens"),
    "per_day_chart": N_("Conversations per day, by channel"),
    "outcomes_chart": N_("Conversations resolved by the AI and handed to people"),
    "handed_off": N_("Handed to people"),
    "ratings_chart": N_("How many conversations got each rating"),
    "conversations": N_("Conversations"),
    "tokens_chart": N_("AI tokens per day"),
    "tokens_in": N_("Tokens in"),
    "tokens_out": N_("Tokens out"),
    "cost_chart": N_("AI cost per day, in dollars"),
    "enabled": N_("On"),
    "edit": N_("Edit"),
    "delete": N_("Delete"),
    "confirm_delete_item": N_("Delete this item?"),
    "hits": N_("direct answers: {count}"),
    "items_total": N_("Items: {count}"),
    "new_item": N_("New item"),
    "edit_item": N_("Edit item"),
    "add_answer": N_("Write an answer"),
    "dismiss": N_("Dismiss"),
    "asked_times": N_("asked {count} times"),
    "no_answer": N_("No answer: the customer would be handed to a person"),
    "would_hand_off": N_("the AI would hand this to a person"),
    "imported": N_("Imported: {created} new, {updated} updated, {unchanged} unchanged"),
    "banned": N_("banned"),
    # The persona editor
    "persona_version": N_("Version {n}"),
    "persona_active": N_("Active"),
    "persona_active_version": N_("Active: version {n}"),
    "persona_default": N_("The built-in default is in use: saving makes version 1."),
    "persona_restored_from": N_("restored from version {n}"),
    "persona_chars": N_("{count} of {max} characters"),
    "persona_saved": N_("Saved as version {n}. The assistant uses it from its next answer."),
    "persona_restored": N_("Version {old} is active again, as version {n}."),
    "persona_changes": N_("What version {n} changed"),
    "persona_against": N_("Compared with version {n}"),
    "persona_against_default": N_("Compared with the built-in default"),
    "persona_counts": N_("lines added: {added}, removed: {removed}"),
    "persona_no_changes": N_("No changes."),
    "persona_confirm_restore": N_("Make version {n} active again? Its text is saved as a new version."),
    "persona_discard": N_("Your unsaved changes will be lost. Continue?"),
    "diff_same": N_("unchanged"),
    "diff_added": N_("added"),
    "diff_removed": N_("removed"),
    # The admins' settings
    "admins_only": N_("This page is for the business's admins."),
    "save": N_("Save"),
    "hours_always": N_("No working hours are set: someone is always in."),
    "hours_open": N_("The team is in now."),
    "hours_closed": N_("The team is away now: customers get the offline text."),
    "ai_use": N_("Use {model}"),
    "ai_primary": N_("Answers first"),
    "ai_fallback": N_("Fallback {n}"),
    "ai_unused": N_("Not used"),
    "ai_need_one": N_("Tick at least one model."),
    "move_up": N_("Move up"),
    "move_down": N_("Move down"),
    "sites_none": N_("No websites yet."),
    "site_add": N_("Add the website"),
    "site_remove": N_("Remove"),
    "site_removed": N_("The website was removed."),
    "site_confirm_remove": N_("Remove {name}? Its chat bubble stops working on the website."),
    "copied": N_("Copied"),
    "copy_failed": N_("Could not copy: select the text and copy it yourself."),
    "show": N_("Show"),
    "hide": N_("Hide"),
    "role_owner": N_("Admin (ADMIN_IDS)"),
    "role_admin": N_("Admin"),
    "role_manager": N_("Manager"),
    "make_admin": N_("Make admin"),
    "make_manager": N_("Make manager"),
    # The prompt studio's template library
    "tpl_mine": N_("Yours"),
    "tpl_builtin": N_("Built-in"),
    "tpl_uses": N_("used {count} times"),
    "tpl_variables": N_("to fill in: {names}"),
    "tpl_best_matches": N_("Best matches"),
    "tpl_most_used": N_("Most used"),
    "tpl_newest": N_("Newest first"),
    "tpl_none": N_("No templates match. Try other words or another tag."),
    "tpl_none_mine": N_("You have no templates of your own yet. Press “New template” to write one."),
    "tpl_new": N_("New template"),
    "tpl_edit": N_("Edit template"),
    "tpl_copy_of": N_("{title} (copy)"),
    "tpl_confirm_delete": N_("Delete this template? This cannot be undone."),
    "tpl_deleted": N_("The template was deleted."),
}


def _strings(translate: Any, locale: str) -> str:
    return json.dumps({key: translate(locale, text) for key, text in SCRIPT_STRINGS.items()}, ensure_ascii=False)


def _render(request: web.Request, page: Page, **extra: Any) -> web.Response:
    runtime = request.app[MINIAPP]
    locale = caller_locale(request)

    def gettext(message: str) -> str:
        return runtime.translate(locale, message)

    static = request.app.router["static"]
    context = {
        "_": gettext, "locale": locale, "page": page, "title": gettext(page.title), "navigation": NAVIGATION,
        "strings": _strings(runtime.translate, locale), "telegram_script": TELEGRAM_SCRIPT,
        "asset": lambda name: str(static.url_for(filename=name)), "current": request.path, **extra,
    }
    response = aiohttp_jinja2.render_template(page.template, request, context)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self' https://telegram.org; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors https://web.telegram.org https://*.telegram.org 'self'")
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def page_view(page: Page) -> Any:
    async def view(request: web.Request) -> web.Response:
        return _render(request, page)

    return view


LOGIN = Page("/app/login", "login.html", N_("Sign in"), "everyone", "")


async def login_form(request: web.Request) -> web.Response:
    """The link's page shows a button: a link preview (Telegram fetches links) must not use up the link."""
    return _render(request, LOGIN, token=request.query.get("token", ""), failed=False)


async def login(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    session = await accounts.redeem_login_link(str(form.get("token", "")))
    if session is None:
        response = _render(request, LOGIN, token="", failed=True)
        response.set_status(403)
        return response
    response = web.HTTPSeeOther("/app/inbox")
    secure = request.secure or request.headers.get("X-Forwarded-Proto") == "https"
    max_age = int(accounts.SESSION_LIFETIME.total_seconds())
    response.set_cookie(SESSION_COOKIE, session.token, max_age=max_age, path="/", httponly=True, samesite="Lax",
                        secure=secure)
    response.set_cookie(CSRF_COOKIE, session.csrf_token, max_age=max_age, path="/", samesite="Strict",
                        secure=secure)
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        csrf = request.headers.get("X-CSRF-Token") or str((await request.post()).get("csrf", ""))
        session = await accounts.session_of(token)
        if session is None or csrf != session.csrf_token:
            return error_response(request, ApiError(403, "csrf"))
        await accounts.end_session(token)
    response = web.HTTPSeeOther("/app/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    response.del_cookie(CSRF_COOKIE, path="/")
    raise response


async def to_the_app(request: web.Request) -> web.StreamResponse:
    raise web.HTTPPermanentRedirect("/app/")


def add_routes(app: web.Application) -> None:
    aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                         undefined=jinja2.StrictUndefined)
    for page in PAGES:
        app.router.add_get(page.path, page_view(page))
    app.router.add_get("/app", to_the_app)
    app.router.add_get("/app/login", login_form)
    app.router.add_post("/app/login", login)
    app.router.add_post("/app/logout", logout)
