"""The Mini App's pages: Jinja2 templates rendered in the reader's language, data fetched by the page.

Pages are the same for everyone and hold no data: inside Telegram the page only learns who it
is showing to from Telegram's script, so every page asks the API (`/api/me`, then its own data)
and shows what the caller's role allows. The language comes from `?lang=`, else the cookie the
page sets once it knows the caller's language, else the browser's.
"""

from __future__ import annotations

import functools
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web
from babel import Locale
from multidict import MultiDictProxy

from miniapp.api import ApiError, error_response
from miniapp.auth import (
    CSRF_COOKIE,
    CSRF_HEADER,
    MINIAPP,
    SESSION_COOKIE,
    caller_locale,
    same_token,
    set_session_cookies,
)
from miniapp.origin import from_own_page, secure_cookies
from services import accounts
from services.i18n import LOCALE_NAMES, N_, N_plural, TranslatePlural
from services.schedule import DAYS

TEMPLATES = Path(__file__).resolve().parent / "templates"
TRANSLATE_PLURAL: web.AppKey[TranslatePlural] = web.AppKey("miniapp_translate_plural")
TELEGRAM_SCRIPT = "https://telegram.org/js/telegram-web-app.js?59"


@dataclass(frozen=True)
class Page:
    path: str
    template: str
    title: str
    audience: str  # "everyone", "staff" or "admins": what the navigation shows to whom
    script: str
    module: bool = False  # the script is an ES module (its imports: see revalidate_imports)


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
    Page("/app/studio", "studio.html", N_("Prompt studio"), "everyone", "studio.js"),
    Page("/app/studio/project", "studio_project.html", N_("Prompt project"), "everyone", "studio_project.js",
         module=True),
    Page("/app/studio/keys", "studio_keys.html", N_("My API keys"), "everyone", "studio_keys.js"),
    Page("/app/studio/templates", "studio_templates.html", N_("Prompt templates"), "everyone", "studio_templates.js"),
]
NAVIGATION = [
    ("/app/", N_("My conversations"), "customers"),
    ("/app/inbox", N_("Inbox"), "staff"),
    ("/app/knowledge", N_("Knowledge base"), "staff"),
    ("/app/analytics", N_("Analytics"), "staff"),
    ("/app/persona", N_("Persona"), "staff"),
    ("/app/admin", N_("Admin"), "admins"),
    ("/app/platform", N_("Platform"), "platform"),  # PLATFORM_ADMIN_IDS only (/api/me's `platform`)
    ("/app/studio", N_("Prompt studio"), "studio"),  # staff, and customers with a model to run (/api/me)
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
    "state_assigned_team": N_("With our team"),
    "state_closed": N_("Closed"),
    "channel_telegram": N_("Telegram"),
    "channel_widget": N_("Website"),
    "website_visitor": N_("Website visitor"),  # an anonymous visitor, by what the inbox calls them
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
    "sources": N_("Sources:"),
    "passages_given": N_("What the AI was given ({count})"),
    "passage_by_words": N_("found by its words"),
    "passage_similarity": N_("similarity {value}"),
    "from_kb": N_("From the knowledge base"),
    "voice_transcript": N_("Transcript:"),
    "search": N_("Search by name, @username or number"),
    "not_signed_in": N_("Please open this app from the bot in Telegram."),
    "switch_business": N_("Business"),
    "switch_in_telegram": N_("Inside Telegram, open the other business's app from its bot's chat."),
    "blocked": N_("blocked the bot"),
    "seconds_short": N_("s"),
    "minutes_short": N_("min"),
    "hours_short": N_("h"),
    "p90": N_("9 in 10 within {value}"),
    "per_day_chart": N_("Conversations per day, by channel"),
    "outcomes_chart": N_("Conversations resolved by the AI and handed to people"),
    "handed_off": N_("Handed to people"),
    "ratings_chart": N_("How many conversations got each rating"),
    "conversations": N_("Conversations"),
    "tokens_chart": N_("AI tokens per day"),
    "tokens_in": N_("Tokens in"),
    "tokens_out": N_("Tokens out"),
    "cost_chart": N_("AI cost per day, in dollars"),
    "media_usage": N_("Voice messages heard: {voice} ({minutes} min) · images seen: {images}"),
    "compare_before": N_("before: {value}"),
    "compared_with": N_("Each figure is compared with the period just before: {period}."),
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
    # The knowledge page: documents and websites
    "src_kind_file": N_("Document"),
    "src_kind_page": N_("Web page"),
    "src_kind_site": N_("Website"),
    "src_queued": N_("Queued"),
    "src_indexing": N_("Indexing {done} of {total}"),
    "src_indexing_started": N_("Indexing…"),
    "src_ready": N_("Ready"),
    "src_failed": N_("Failed"),
    "src_passages_one": N_("1 passage"),
    "src_passages": N_("{count} passages"),
    "src_pages_one": N_("1 page"),
    "src_pages": N_("{count} pages"),
    "src_synced": N_("synced {when}"),
    "src_synced_just_now": N_("synced just now"),
    "src_synced_minutes": N_("synced {count} min ago"),
    "src_synced_hours": N_("synced {count} h ago"),
    "src_use": N_("Use in answers"),
    "src_resync": N_("Re-sync now"),
    "src_confirm_delete": N_("Delete “{title}”? The AI stops answering from it."),
    "src_uploading": N_("Uploading {name}: {percent}%"),
    "src_reading": N_("Reading {name}…"),
    "src_upload_failed": N_("The upload did not finish. Check the connection and try again."),
    "src_bad_page_limit": N_("The page limit must be between 1 and {limit}."),
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
    "label_remove": N_("Remove the label {label}"),
    "diff_same": N_("unchanged"),
    "diff_added": N_("added"),
    "diff_removed": N_("removed"),
    # The admins' settings
    "admins_only": N_("This page is for the business's admins."),
    "save": N_("Save"),
    "hours_always": N_("No working hours are set: someone is always in."),
    "hours_open": N_("The team is in now."),
    "hours_closed": N_("The team is away now: customers get the offline text."),
    "hours_need_times": N_("Set both times, or untick the day."),
    "hours_end_before_start": N_("The end is before the start."),
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
    "site_confirm_rotate": N_("Make a new identity secret for {name}? Your website's server must use the new one; "
                              "the old one keeps working for {hours} hours."),
    "site_secret_rotated": N_("New secret made: copy it to your website's server."),
    "site_old_secret_until": N_("The old secret keeps working until {when}."),
    "role_owner": N_("Admin (ADMIN_IDS)"),
    "role_admin": N_("Admin"),
    "role_manager": N_("Manager"),
    "make_admin": N_("Make admin"),
    "make_manager": N_("Make manager"),
    "role_viewer": N_("Viewer (reads only)"),
    "role_pending": N_("Waiting for approval"),
    "approve_manager": N_("Approve as manager"),
    "approve_viewer": N_("Approve as viewer"),
    "make_viewer": N_("Make viewer"),
    "sign_out_member": N_("Sign out of browsers"),
    "signed_out_member": N_("Signed out of every browser."),
    "pending_banner": N_("An admin has not approved you as staff yet. Until then you see the app as a customer."),
    "viewer_banner": N_("Your role is viewer: you can read everything here but not change it."),
    "session_current": N_("This browser"),
    "session_item": N_("Signed in {when}, until {until}"),
    "session_end": N_("Sign out"),
    "sessions_none": N_("No browser is signed in."),
    "sessions_end_others": N_("Sign out of all other browsers"),
    # The prompt studio: my projects
    "studio_no_projects": N_("No projects yet. Create the first one above."),
    "studio_projects_count": N_("{count} of {max} projects"),
    "studio_blocks_count": N_("context: {context}, prompts: {prompts}"),
    "studio_size_kb": N_("{size} KB"),
    "studio_changed": N_("changed {when}"),
    "studio_rename": N_("Rename"),
    "studio_rename_named": N_("Rename “{name}”"),
    "studio_duplicate": N_("Duplicate"),
    "studio_duplicate_named": N_("Duplicate “{name}”"),
    "studio_export": N_("Export"),
    "studio_export_named": N_("Export “{name}” as a file"),
    "studio_move_up_named": N_("Move “{name}” up"),
    "studio_move_down_named": N_("Move “{name}” down"),
    "studio_delete_named": N_("Delete “{name}”"),
    "studio_project_name": N_("Project name"),
    "studio_cancel": N_("Cancel"),
    "studio_duplicated": N_("Copied as “{name}”."),
    "studio_confirm_delete": N_("Delete the project “{name}” with its versions and run history? "
                                "This cannot be undone."),
    "studio_deleted": N_("“{name}” was deleted."),
    "studio_not_a_project_file": N_("This file is not a project exported from here."),
    "studio_imported": N_("Imported as “{name}”."),
    # The prompt studio: a project's editor
    "studio_no_project": N_("Open a project from the list of your projects."),
    "studio_state_saving": N_("Saving…"),
    "studio_state_offline": N_("Offline — changes kept on this device"),
    "studio_state_offline_unkept": N_("Offline — keep this page open: the changes could not be stored on this device"),
    "studio_state_error": N_("Not saved: {reason}"),
    "studio_state_conflict": N_("Not saved: this project was saved somewhere else"),
    "studio_loaded_latest": N_("The latest saved version is shown; your changes were discarded."),
    "studio_need_context_name": N_("Every context block needs a name."),
    "studio_bad_context_name": N_("A context block’s name cannot contain braces or “@”: {name}"),
    "studio_context_name_twice": N_("Two context blocks are called “{name}”: a prompt could not tell them apart."),
    "studio_need_prompt_name": N_("Every prompt needs a name."),
    "studio_context_name": N_("Name"),
    "studio_default_context": N_("Context"),
    "studio_default_prompt": N_("Prompt"),
    "studio_selected_of": N_("{selected} of {total} in use"),
    "studio_reference_is": N_("A prompt puts it in with {ref}"),
    "studio_item": N_("Item"),
    "studio_item_n": N_("Item {n}"),
    "studio_use_item": N_("Put “{name}” into the prompt"),
    "studio_item_title": N_("Title (optional)"),
    "studio_item_title_of": N_("Title of item {n}"),
    "studio_item_text": N_("Text"),
    "studio_item_text_of": N_("Text of item {n}"),
    "studio_confirm_delete_item": N_("Delete “{name}”? Its text is gone for good."),
    "studio_confirm_delete_context": N_("Delete the context block “{name}” with its items ({count})?"),
    "studio_confirm_delete_prompt": N_("Delete the prompt “{name}”? Its versions and runs stay in the history."),
    "studio_insert_named": N_("Insert a reference to “{name}”"),
    "studio_model_own": N_("{model} · your key “{key}”"),
    "studio_model_gone": N_("{model} (no longer available)"),
    "studio_no_models": N_("No models are available"),
    "studio_values": N_("Values"),
    "studio_preview_offline": N_("Offline: the preview updates when the connection is back."),
    "studio_problem_missing": N_("Fill in: {names}"),
    "studio_problem_unknown": N_("No context block is called: {names}"),
    "studio_problem_bad": N_("Not a variable name: {names}. A name is letters, digits and _, without spaces."),
    "studio_problem_empty": N_("The prompt is empty."),
    "studio_problem_long": N_("The prompt is too long."),
    "studio_ready": N_("Ready to run."),
    "studio_chars": N_("{count} characters"),
    "studio_tokens_exact": N_("Counted with the model’s tokenizer ({encoding})"),
    "studio_tokens_estimate": N_("An estimate: there is no exact tokenizer for this model here"),
    "studio_context_used": N_("Context used: {blocks}"),
    "studio_context_items": N_("{name} (items: {count})"),
    "studio_run": N_("Run"),
    "studio_run_both": N_("Run both"),
    "studio_current_text": N_("The current text"),
    "studio_running": N_("Starting…"),
    "studio_running_on": N_("Writing on {model}…"),
    "studio_run_cut": N_("The connection broke before the answer was complete. What arrived is in the run history."),
    "studio_run_failed": N_("The model failed: {reason}"),
    "studio_run_offline": N_("No connection: the run did not start."),
    "studio_run_unsaved": N_("A run uses the saved project, and it is not saved yet: {reason}"),
    "studio_run_tokens": N_("{tokens_in} + {tokens_out} tokens"),
    "studio_version": N_("Version {n}"),
    "studio_no_versions": N_("No versions yet: run the prompt to keep one."),
    "studio_remove_label": N_("Remove the label {label}"),
    "studio_previous_version": N_("The version before"),
    "studio_first_version": N_("The first version: nothing to compare with"),
    "studio_against": N_("Compared with version {n}"),
    "studio_confirm_restore": N_("Put version {n} back into this prompt? Its current text is replaced (it stays in the "
                                 "history only if it was run)."),
    "studio_restored": N_("Version {n} is back in the prompt."),
    "studio_status_ok": N_("done"),
    "studio_status_error": N_("failed"),
    "studio_status_running": N_("running"),
    "studio_status_stopped": N_("stopped"),
    "studio_prompt": N_("Prompt sent"),
    "studio_answer": N_("Answer"),
    # Own API keys (the prompt studio)
    "keys_none": N_("No keys yet. Add one to run prompts on your own account with a provider."),
    "keys_count": N_("{count} of {max} keys"),
    "key_added_on": N_("added {when}"),
    "key_used_on": N_("last used {when}"),
    "key_unreadable": N_("This key can no longer be read (the server's encryption key changed). Delete it and "
                         "add it again."),
    "key_checking": N_("Checking the key with the provider…"),
    "key_added": N_("The provider accepted the key. It is saved."),
    "key_confirm_delete": N_("Delete the key “{name}”? Runs made with it stay in your history."),
    "key_deleted": N_("The key was deleted."),
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
    # The persona's guided form and test chat; inviting and removing teammates (issue 17)
    "persona_business": N_("The prompt names the business “{name}” (set on the Admin page)."),
    "persona_no_business": N_("No business name is set, so the prompt says “this business”."),
    "persona_thinking": N_("Writing an answer…"),
    "invite_made": N_("Send this link to your teammate. It works once, until {when}: they open it in Telegram "
                      "and confirm there."),
    "invite_item": N_("{role}, invited by {name}, until {when}"),
    "invite_opened": N_("opened: waiting for them to confirm"),
    "invite_cancel": N_("Cancel"),
    "invite_cancelled": N_("The invitation was cancelled: its link no longer works."),
    "member_invited": N_("joined by invitation"),
    "member_remove": N_("Remove from the team"),
    "member_confirm_remove": N_("Remove {name} from the team? They lose their role and are signed out of every "
                                "browser. If they are in the manager chat, remove them there in Telegram too."),
    "member_removed": N_("{name} is no longer on the team."),
}


# Words with a count, in every form the page's language has: FD.plural(key, n) picks the form with the
# browser's Intl.PluralRules, whose categories (one, few, many, other) are the ones CLDR gives gettext's rules.
SCRIPT_PLURALS = {
    "ratings_count": N_plural("{count} rating", "{count} ratings"),
    "tokens_count": N_plural("{count} token", "{count} tokens"),
    "conversations_count": N_plural("{count} conversation", "{count} conversations"),
}


def _english_plural(locale: str, singular: str, plural: str, n: int) -> str:
    return singular if n == 1 else plural


@functools.cache
def _samples(locale: str) -> dict[str, int]:
    """A number of each of the language's plural categories: {"one": 1, "few": 2, "many": 5, "other": 0}."""
    rule = Locale.parse(locale).plural_form
    found: dict[str, int] = {}
    for n in range(200):
        found.setdefault(rule(n), n)
    return found


@functools.cache
def _weekdays(locale: str) -> tuple[tuple[str, str], ...]:
    """(mon, Monday) … (sun, Sunday), named in `locale` by CLDR."""
    names = Locale.parse(locale).days["format"]["wide"]
    return tuple((code, str(names[index]).capitalize()) for index, code in enumerate(DAYS))


def _strings(translate: Any, locale: str, translate_plural: TranslatePlural = _english_plural) -> str:
    strings: dict[str, Any] = {key: translate(locale, text) for key, text in SCRIPT_STRINGS.items()}
    for key, (singular, plural) in SCRIPT_PLURALS.items():
        strings[key] = {category: translate_plural(locale, singular, plural, n)
                        for category, n in _samples(locale).items()}
    return json.dumps(strings, ensure_ascii=False)


def _render(request: web.Request, page: Page, **extra: Any) -> web.Response:
    runtime = request.app[MINIAPP]
    locale = caller_locale(request)

    def gettext(message: str) -> str:
        return runtime.translate(locale, message)

    static = request.app.router["static"]
    context = {
        "_": gettext, "locale": locale, "page": page, "title": gettext(page.title), "navigation": NAVIGATION,
        "strings": _strings(runtime.translate, locale, request.app.get(TRANSLATE_PLURAL, _english_plural)),
        "telegram_script": TELEGRAM_SCRIPT,
        "asset": lambda name: str(static.url_for(filename=name)), "current": request.path,
        "locales": LOCALE_NAMES, "weekdays": _weekdays(locale), **extra,
    }
    response = aiohttp_jinja2.render_template(page.template, request, context)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self' https://telegram.org; style-src 'self'; img-src 'self' data: blob:; "
        "connect-src 'self'; frame-ancestors https://web.telegram.org https://*.telegram.org 'self'")
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def page_view(page: Page) -> Any:
    async def view(request: web.Request) -> web.Response:
        return _render(request, page)

    return view


LOGIN = Page("/app/login", "login.html", N_("Sign in"), "everyone", "")
LOGIN_COOKIE = "frontdesk_login"  # the login form's own CSRF token, before there is a session
LOGIN_FORM_LIFETIME = 15 * 60  # seconds; a link works for 5 minutes anyway
LOGIN_FAILURES = {
    "link": N_("This link has expired or has already been used. Send /dashboard to the bot for a new one."),
    "form": N_("This sign-in could not be confirmed as coming from this page. Open the link from the bot again: "
               "it still works."),
}


async def login_form(request: web.Request) -> web.Response:
    """The link's page shows a button: a link preview (Telegram fetches links) must not use up the link.

    The form carries a token that must come back with the cookie set here (SameSite=Strict): another
    site's page cannot read it, so it cannot make a browser sign in to an account of its choosing."""
    token = request.query.get("token", "")
    form_token = request.cookies.get(LOGIN_COOKIE, "")
    if not accounts.is_token(form_token):
        form_token = secrets.token_urlsafe(24)
    response = _render(request, LOGIN, token=token if accounts.is_token(token) else "", csrf=form_token, failure="")
    response.set_cookie(LOGIN_COOKIE, form_token, max_age=LOGIN_FORM_LIFETIME, path="/app/login", httponly=True,
                        samesite="Strict", secure=secure_cookies(request))
    return response


def _login_refused(request: web.Request, failure: str, status: int) -> web.Response:
    response = _render(request, LOGIN, token="", csrf="", failure=LOGIN_FAILURES[failure])
    response.set_status(status)
    return response


def _from_this_page(request: web.Request, form: MultiDictProxy[Any]) -> bool:
    """The POST comes from our own login page: the form's token is the one in this browser's login
    cookie, and the browser, when it says where the form was, says it was on this site.

    Sec-Fetch-Site is set by the browser itself; older browsers send only Origin, which is "null"
    on our own pages too (they are served with Referrer-Policy: no-referrer)."""
    fetched_from = request.headers.get("Sec-Fetch-Site")
    if fetched_from is not None:
        if fetched_from not in ("same-origin", "none"):
            return False
    elif request.headers.get("Origin", "null") != "null" and not from_own_page(request):
        return False
    return same_token(str(form.get("csrf", "")), request.cookies.get(LOGIN_COOKIE, ""))


async def _form(request: web.Request) -> MultiDictProxy[Any] | None:
    """The posted form, or None when it cannot be read (bytes that are not UTF-8, a broken multipart)."""
    try:
        return await request.post()
    except ValueError:
        return None


async def login(request: web.Request) -> web.StreamResponse:
    form = await _form(request)
    if form is None:
        return _login_refused(request, "form", 400)
    if not _from_this_page(request, form):
        return _login_refused(request, "form", 403)
    session = await accounts.redeem_login_link(str(form.get("token", "")), request.app[MINIAPP].session_lifetime)
    if session is None:
        return _login_refused(request, "link", 403)
    response = web.HTTPSeeOther("/app/inbox")
    set_session_cookies(response, request, session)
    response.del_cookie(LOGIN_COOKIE, path="/app/login", secure=secure_cookies(request), httponly=True,
                        samesite="Strict")
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        csrf = request.headers.get(CSRF_HEADER, "")
        if not csrf:
            form = await _form(request)
            csrf = str(form.get("csrf", "")) if form is not None else ""
        session = await accounts.session_of(token)
        if session is None or not same_token(csrf, session.csrf_token):
            return error_response(request, ApiError(403, "csrf"))
        await accounts.end_session(token)
    response = web.HTTPSeeOther("/app/login")
    response.del_cookie(SESSION_COOKIE, path="/", secure=secure_cookies(request), httponly=True, samesite="Lax")
    response.del_cookie(CSRF_COOKIE, path="/", secure=secure_cookies(request), samesite="Strict")
    raise response


async def to_the_app(request: web.Request) -> web.StreamResponse:
    raise web.HTTPPermanentRedirect("/app/")


async def revalidate_imports(request: web.Request, response: web.StreamResponse) -> None:
    """A static file asked for without `?v=` is one a module script imports (only the page's own script
    URL carries the file's version): the browser must ask again at each load (a 304 when unchanged), or
    after a deploy it could run the new entry with a module cached from the deploy before."""
    resource = request.match_info.route.resource
    if resource is not None and resource.name == "static" and "v" not in request.query:
        response.headers["Cache-Control"] = "no-cache"


def add_routes(app: web.Application) -> None:
    app.on_response_prepare.append(revalidate_imports)
    aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                         undefined=jinja2.StrictUndefined)
    for page in PAGES:
        app.router.add_get(page.path, page_view(page))
    app.router.add_get("/app", to_the_app)
    app.router.add_get("/app/login", login_form)
    app.router.add_post("/app/login", login)
    app.router.add_post("/app/logout", logout)
