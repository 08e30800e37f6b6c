"""The website widget's endpoints: the script, its socket, its history, and the demo page.

The protocol is a public contract, documented in docs/widget-protocol.md. These handlers parse
frames and answer them; what a visitor may see and how messages are stored is in services.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import BodyPartReader, WSCloseCode, WSMsgType, web

from miniapp.inputs import parse_json, row_id
from miniapp.origin import client_address, request_origin
from miniapp.widget_hub import WidgetHub
from models import Bot, User, WidgetSite
from services import conversations, desk, tenant_settings, widget, widget_links
from services.conversations import Customer, Incoming
from services.files import ConversationFiles, ServedFile, UploadRefused, UploadRules
from services.flow import ConversationFlow
from services.i18n import N_, Translate, pick_locale
from services.limits import ConcurrencyLimiter, RateLimiter, Verdict, address_group
from services.staff import WorkingHoursSource
from services.widget import IdentityPolicy, Visitor, WidgetLive

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent.parent / "webapp_static"
MAX_TEXT_CHARS = 4000
MAX_FRAME_BYTES = 16 * 1024
CLIENT_ID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# Application close codes (4000-4999): the widget does not reconnect after a 4403.
CLOSE_FORBIDDEN = 4403
CLOSE_BAD_TOKEN = 4401
CLOSE_BAD_HELLO = 4400
CLOSE_TOO_MANY = 4429  # too many sockets from the address: the widget tries again later

UI_STRINGS = {
    "title": N_("Chat with us"),
    "open": N_("Open the chat"),
    "close": N_("Close the chat"),
    "placeholder": N_("Type a message…"),
    "send": N_("Send"),
    "person": N_("Talk to a person"),
    "offline": N_("You're offline. Your messages will be sent when the connection is back."),
    "sending": N_("Sending…"),
    "failed": N_("Not sent. Tap to try again."),
    "ai": N_("Assistant"),
    "typing": N_("Typing…"),
    "manager": N_("Team"),
    "rate": N_("How would you rate this conversation?"),
    "rated": desk.RATED,
    "with_ai": N_("Our assistant answers right away"),
    "with_team": N_("A person from our team will answer"),
    "with_agent": N_("You're chatting with {name}"),
    "too_long": N_("Your message is too long: please keep it under {limit} characters."),
    "sources": N_("Sources:"),
    "link": N_("Continue in Telegram"),
    "link_open": N_("Open Telegram"),
    "link_hint": N_("Confirm in Telegram, and this chat will be in your Telegram history too. The link works once, "
                    "for 10 minutes."),
    "linked": N_("This chat is now linked with your Telegram account."),
    "attach": N_("Attach a file"),
    "uploading": N_("Sending the file… {percent}%"),
    "file_too_large": N_("This file is too large: files up to {size} MB can be sent."),
    "file_type": N_("This kind of file cannot be sent here. You can send: {types}."),
    "drop": N_("Drop the file to send it"),
    "download": N_("Download"),
}
DEFAULT_GREETING = N_("Hi! How can we help you today?")
NAMED_GREETING = N_("Hi! Welcome to {business}. How can we help you today?")

ERRORS = {
    "unknown_site": N_("This chat is not set up for this website."),
    "origin_not_allowed": N_("This chat is not set up for this website."),
    "bad_token": N_("Your chat session could not be resumed, so a new one has started."),
    "bad_identity": N_("We couldn't confirm who you are. Please reload the page."),
    "bad_frame": N_("Something went wrong with that message. Please try again."),
    "frame_too_large": UI_STRINGS["too_long"],
    "text_too_long": UI_STRINGS["too_long"],
    "empty": N_("Please type a message first."),
    "rate_limited": N_("You're sending messages very quickly. Please wait a moment, then write again."),
    "too_many_conversations": N_("Too many new conversations from your network. Please try again later."),
    "hello_required": N_("Something went wrong with that message. Please try again."),
    "too_many_sockets": N_("Too many chat windows are open from your network. Close some, then try again."),
    "link_unavailable": N_("Continuing in Telegram is not available here."),
    "file_too_large": UI_STRINGS["file_too_large"],
    "file_type": UI_STRINGS["file_type"],
    "empty_file": N_("This file is empty."),
    "bad_upload": N_("The file could not be sent. Please try again."),
    "not_found": N_("This file is not available."),
}


@dataclass
class WidgetLimits:
    """Checked before anything is stored; a visitor over them gets an error frame."""

    ip_messages: RateLimiter  # messages per minute from one address
    ip_conversations: RateLimiter  # new conversations per hour from one address
    ip_frames: RateLimiter  # frames of any kind (and history reads) per minute from one address
    ip_actions: RateLimiter  # asks for a person, ratings, Telegram links and logouts per minute
    sockets: ConcurrencyLimiter  # sockets open at once from one address


def address_key(request: web.Request, runtime: WidgetRuntime) -> str:
    """What every per-address limit counts by (an IPv6 address by its /64)."""
    return address_group(client_address(request, runtime.trust_forwarded))


@dataclass
class WidgetRuntime:
    hub: WidgetHub
    live: WidgetLive
    limits: WidgetLimits
    flow: ConversationFlow  # what a visitor's message or ask sets going, as on Telegram
    translate: Translate
    hours: WorkingHoursSource
    default_locale: str
    trust_forwarded: bool = False
    script: bytes = field(default=b"", repr=False)
    demo: bool = False  # DEMO_SITE: the demo page at `/` and its `demo` site; off, that key is unknown
    identity: IdentityPolicy = field(default_factory=IdentityPolicy)
    hello_timeout: float = 15.0  # WIDGET_HELLO_SECONDS: a socket that says nothing is closed
    heartbeat: float = 25.0  # WIDGET_PING_SECONDS: pings keep proxies from closing a quiet socket
    uploads: UploadRules = field(default_factory=UploadRules)  # WIDGET_UPLOAD_MAX_BYTES, WIDGET_UPLOAD_TYPES
    files: ConversationFiles = field(default_factory=lambda: ConversationFiles(None))  # what visitors may fetch

    async def site(self, key: str) -> WidgetSite | None:
        if key == widget.DEMO_SITE_KEY and not self.demo:
            return None  # a demo site left from a start with DEMO_SITE on serves nobody now
        return await widget.site_by_key(key)


WIDGET = web.AppKey("widget", WidgetRuntime)


class FrameError(Exception):
    def __init__(self, code: str, **params: Any) -> None:
        super().__init__(code)
        self.code = code
        self.params = params


# --- HTTP ----------------------------------------------------------------------------------------------


def _locale(request: web.Request, runtime: WidgetRuntime) -> str:
    return pick_locale(request.query.get("lang"), request.headers.get("Accept-Language"),
                       default=runtime.default_locale)


def _error_body(runtime: WidgetRuntime, locale: str, code: str) -> dict[str, Any]:
    message = runtime.translate(locale, ERRORS[code]).format(limit=MAX_TEXT_CHARS, size=_megabytes(runtime),
                                                             types=runtime.uploads.names())
    return {"error": {"code": code, "message": message}}


def _megabytes(runtime: WidgetRuntime) -> str:
    return f"{runtime.uploads.max_bytes / 1_000_000:g}"


def _cors(request: web.Request, site: WidgetSite | None) -> dict[str, str] | None:
    """CORS headers for an allowed origin; None when the origin may not use this site."""
    origin = request_origin(request)
    if site is None or not widget.origin_allowed(site, origin):
        return None
    return {"Access-Control-Allow-Origin": str(origin), "Vary": "Origin",
            "Access-Control-Allow-Headers": "Authorization, Content-Type",
            "Access-Control-Allow-Methods": "GET, POST, OPTIONS", "Access-Control-Max-Age": "600"}


@dataclass
class SiteRequest:
    """An HTTP request from a page of a known site, at an allowed origin."""

    runtime: WidgetRuntime
    locale: str
    site: WidgetSite
    cors: dict[str, str]

    def refuse(self, status: int, code: str) -> web.Response:
        return web.json_response(_error_body(self.runtime, self.locale, code), status=status, headers=self.cors)


async def _site_request(request: web.Request) -> SiteRequest:
    """The site the request names, from one of its origins; else a 404 or 403 with a JSON error."""
    runtime = request.app[WIDGET]
    locale = _locale(request, runtime)
    site = await runtime.site(request.query.get("site", ""))
    cors = _cors(request, site)
    if site is None or cors is None:
        status, code = (404, "unknown_site") if site is None else (403, "origin_not_allowed")
        raise _refusal(status, _error_body(runtime, locale, code))
    return SiteRequest(runtime, locale, site, cors)


def _refusal(status: int, body: dict[str, Any]) -> web.HTTPException:
    error = web.HTTPNotFound if status == 404 else web.HTTPForbidden
    return error(text=json.dumps(body), content_type="application/json")


async def preflight(request: web.Request) -> web.Response:
    site = await request.app[WIDGET].site(request.query.get("site", ""))
    cors = _cors(request, site)
    return web.Response(status=204 if cors else 403, headers=cors or {})


async def site_view(request: web.Request) -> web.Response:
    """GET /widget/api/site?site=KEY&lang=xx: how the widget looks, and its words in that language."""
    asked = await _site_request(request)
    runtime, locale = asked.runtime, asked.locale
    strings = {key: runtime.translate(locale, text) for key, text in UI_STRINGS.items()}
    strings["too_long"] = strings["too_long"].format(limit=MAX_TEXT_CHARS)
    strings["file_too_large"] = strings["file_too_large"].format(size=_megabytes(runtime))
    strings["file_type"] = strings["file_type"].format(types=runtime.uploads.names())
    bot = await Bot.get(id=asked.site.bot_id)
    business = tenant_settings.of(bot).business_name
    greeting = runtime.translate(locale, NAMED_GREETING).format(business=business) if business else \
        runtime.translate(locale, DEFAULT_GREETING)
    body = {"site": widget.site_config(asked.site, greeting, business), "lang": locale,
            "strings": strings, "max_text": MAX_TEXT_CHARS, "telegram": bool(bot.username),
            "upload": {"max_bytes": runtime.uploads.max_bytes, "types": list(runtime.uploads.types),
                       "accept": runtime.uploads.accept()}}
    return web.json_response(body, headers={**asked.cors, "Cache-Control": "public, max-age=60"})


async def _bearer(request: web.Request, asked: SiteRequest) -> Visitor | None:
    """The visitor whose token the request carries, if it is good and they have not logged out since."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    visitor = widget.read_token(asked.site, token.strip(), asked.runtime.identity)
    return visitor if visitor is not None and await widget.still_signed_in(visitor) else None


async def history_view(request: web.Request) -> web.Response:
    """GET /widget/api/history?site=KEY&after=ID with `Authorization: Bearer TOKEN`."""
    asked = await _site_request(request)
    if await asked.runtime.limits.ip_frames.check(f"widget-frames:{address_key(request, asked.runtime)}") \
            != Verdict.ALLOW:
        return asked.refuse(429, "rate_limited")
    visitor = await _bearer(request, asked)
    if visitor is None:
        return asked.refuse(401, "bad_token")
    after_text = request.query.get("after", "")
    after = row_id(after_text) if after_text else None
    if after_text and after is None:
        return asked.refuse(400, "bad_frame")
    user = await widget.visitor_user(visitor)
    conversation = await conversations.current_conversation(user) if user else None
    messages = await widget.visible_messages(user, after) if user else []
    return web.json_response({
        "conversation": conversation.id if conversation else None,
        "mode": str(conversation.mode.value) if conversation else "ai",
        "messages": [widget.message_frame(message) for message in messages],
    }, headers=asked.cors)


async def logout_view(request: web.Request) -> web.Response:
    """POST /widget/api/logout?site=KEY with `Authorization: Bearer TOKEN`: the visitor logged out.

    Every token and identity hash issued to them before now stops working, on every device, and
    their open sockets are closed.
    """
    asked = await _site_request(request)
    runtime = asked.runtime
    if await runtime.limits.ip_actions.check(f"widget-act:{address_key(request, runtime)}") != Verdict.ALLOW:
        return asked.refuse(429, "rate_limited")
    visitor = await _bearer(request, asked)
    if visitor is None:  # also a token that an earlier logout ended: it cannot end newer sessions
        return asked.refuse(401, "bad_token")
    await widget.sign_out(visitor, runtime.default_locale)
    await runtime.live.signed_out(visitor.visitor_id)
    return web.json_response({"signed_out": True}, headers=asked.cors)


async def upload_view(request: web.Request) -> web.Response:
    """POST /widget/api/upload?site=KEY with `Authorization: Bearer TOKEN`, multipart/form-data: `client_id` (a
    UUID, as for a message), `caption` (optional text) and `file`. The file is checked (its type from its bytes,
    its size) before anything is stored; then it is the visitor's message, as one typed in the socket."""
    asked = await _site_request(request)
    runtime = asked.runtime
    address = address_key(request, runtime)
    if await runtime.limits.ip_messages.check(f"widget-ip:{address}") != Verdict.ALLOW:
        return asked.refuse(429, "rate_limited")
    visitor = await _bearer(request, asked)
    if visitor is None:
        return asked.refuse(401, "bad_token")
    if (request.content_length or 0) > runtime.uploads.max_bytes + UPLOAD_OVERHEAD:
        return asked.refuse(413, "file_too_large")  # refused before a byte of it is read
    try:
        client_id, caption, name, content = await _read_upload(request, runtime.uploads.max_bytes)
        new_file = runtime.uploads.check(name, content)
    except FrameError as problem:
        return asked.refuse(400, problem.code)
    except UploadRefused as refused:
        status = {"file_too_large": 413, "file_type": 415}.get(refused.code, 400)
        return asked.refuse(status, refused.code)
    key = widget.source_key(visitor.visitor_id, client_id)
    existing = await widget.already_stored(int(visitor.site.bot_id), key)
    if existing is not None:  # sent again after a lost answer: stored once
        return web.json_response(widget.message_frame(existing, client_id), headers=asked.cors)
    user = await widget.visitor_user(visitor)
    starts_conversation = user is None or await conversations.current_conversation(user) is None
    if starts_conversation and \
            await runtime.limits.ip_conversations.check(f"widget-new:{address}") != Verdict.ALLOW:
        return asked.refuse(429, "too_many_conversations")
    who = Customer(None, first_name=user.first_name if user else "", last_name=user.last_name if user else "",
                   language_code=asked.locale, widget_visitor_id=visitor.visitor_id)
    stored = await runtime.flow.customer_wrote(int(visitor.site.bot_id), who,
                                               Incoming(key, caption, files=[new_file]), known=user,
                                               client_id=client_id)  # every tab of the visitor shows it
    message = stored.message or await widget.already_stored(int(visitor.site.bot_id), key)
    if message is None:  # a banned visitor: nothing is stored, nothing is said
        return web.json_response({"stored": False}, status=202, headers=asked.cors)
    return web.json_response(widget.message_frame(message, client_id), status=201, headers=asked.cors)


UPLOAD_OVERHEAD = MAX_TEXT_CHARS * 4 + 4096  # the caption, the client id and the parts' headers
UPLOAD_CHUNK = 64 * 1024


async def _read_upload(request: web.Request, max_bytes: int) -> tuple[str, str, str, bytes]:
    """The form's client id, caption, file name and bytes; reading stops as soon as the file is over `max_bytes`."""
    try:
        reader = await request.multipart()
    except (AssertionError, ValueError, KeyError):
        raise FrameError("bad_upload") from None
    client_id, caption, name, content = "", "", "", b""
    seen_file = False
    while True:
        part = await reader.next()
        if part is None:
            break
        if not isinstance(part, BodyPartReader):
            raise FrameError("bad_upload")
        if part.name == "file" and not seen_file:
            seen_file, name = True, part.filename or ""
            chunks, size = [], 0
            while chunk := await part.read_chunk(UPLOAD_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise UploadRefused("file_too_large")
                chunks.append(chunk)
            content = b"".join(chunks)
        elif part.name in ("client_id", "caption"):
            value = (await part.read(decode=True))[:MAX_TEXT_CHARS * 4 + 1]
            try:
                text = value.decode()
            except UnicodeDecodeError:
                raise FrameError("bad_upload") from None
            if part.name == "client_id":
                client_id = text
            else:
                caption = text
        else:
            raise FrameError("bad_upload")
    if not seen_file or not CLIENT_ID.match(client_id):
        raise FrameError("bad_upload")
    if len(caption) > MAX_TEXT_CHARS:
        raise FrameError("text_too_long")
    return client_id.lower(), caption, name, content


async def file_view(request: web.Request) -> web.Response:
    """GET /widget/api/files/MESSAGE/INDEX?site=KEY with `Authorization: Bearer TOKEN`: the file of that
    attachment, only if the message is one this visitor may see (one of their own conversations'); else 404."""
    asked = await _site_request(request)
    runtime = asked.runtime
    if await runtime.limits.ip_frames.check(f"widget-frames:{address_key(request, runtime)}") != Verdict.ALLOW:
        return asked.refuse(429, "rate_limited")
    visitor = await _bearer(request, asked)
    if visitor is None:
        return asked.refuse(401, "bad_token")
    message_id, index = row_id(request.match_info["message_id"]), row_id(request.match_info["index"])
    user = await widget.visitor_user(visitor)
    message = await widget.visible_message(user, message_id) if user and message_id and index is not None else None
    served = await runtime.files.serve(message, index) if message is not None and index is not None else None
    if served is None:
        return asked.refuse(404, "not_found")
    return web.Response(body=served.content, headers={**asked.cors, **file_headers(served)})


def file_headers(served: ServedFile) -> dict[str, str]:
    """A file's headers: its type (an image, else a download that nothing renders), never sniffed, never cached
    where others could read it."""
    disposition = "inline" if served.inline else "attachment"
    return {"Content-Type": served.mime_type, "X-Content-Type-Options": "nosniff",
            "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(served.name, safe='')}",
            "Cache-Control": "private, max-age=3600", "Vary": "Origin, Authorization",
            "Content-Security-Policy": "default-src 'none'; sandbox"}


async def script_view(request: web.Request) -> web.Response:
    runtime = request.app[WIDGET]
    response = web.Response(body=runtime.script, content_type="application/javascript", charset="utf-8",
                            headers={"Cache-Control": "public, max-age=300",
                                     "Access-Control-Allow-Origin": "*"})
    response.enable_compression()
    return response


async def demo_page(request: web.Request) -> web.Response:
    """The embedded default: a page with the demo site's widget, for a first look without Telegram."""
    site = await widget.site_by_key(widget.DEMO_SITE_KEY)
    if site is None:
        raise web.HTTPNotFound(text="The demo site was removed (python -m bot site remove demo).")
    page = (STATIC / "demo.html").read_text(encoding="utf-8").replace("{{SITE_KEY}}", site.public_key)
    return web.Response(text=page, content_type="text/html", headers={"Cache-Control": "no-store"})


# --- the socket ------------------------------------------------------------------------------------------


@dataclass
class Session:
    runtime: WidgetRuntime
    socket: web.WebSocketResponse
    visitor: Visitor
    locale: str
    address: str
    name: str = ""
    user: User | None = None

    @property
    def bot_id(self) -> int:
        return int(self.visitor.site.bot_id)

    async def error(self, code: str) -> None:
        await self.socket.send_json({"type": "error", **_error_body(self.runtime, self.locale, code)["error"]})


async def widget_socket(request: web.Request) -> web.WebSocketResponse:
    runtime = request.app[WIDGET]
    # Frames a little over our limit still arrive, so the visitor gets a clear error, not a dropped socket.
    socket = web.WebSocketResponse(heartbeat=runtime.heartbeat, max_msg_size=MAX_FRAME_BYTES * 4)
    await socket.prepare(request)
    address = address_key(request, runtime)
    lease = await runtime.limits.sockets.acquire(f"widget-sockets:{address}")
    if lease is None:
        error = _error_body(runtime, _locale(request, runtime), "too_many_sockets")["error"]
        await socket.send_json({"type": "error", **error})
        await socket.close(code=CLOSE_TOO_MANY, message=b"too_many_sockets")
        return socket
    try:
        await _serve(request, runtime, socket, address)
    finally:
        await runtime.limits.sockets.release(f"widget-sockets:{address}", lease)
    return socket


async def _serve(request: web.Request, runtime: WidgetRuntime, socket: web.WebSocketResponse, address: str) -> None:
    session = await _hello(request, runtime, socket, address)
    if session is None:
        return
    runtime.hub.join(session.visitor.visitor_id, socket)
    try:
        await _send_backlog(session, session.after)
        async for frame in socket:
            if not await _frame_allowed(session):
                continue
            if frame.type != WSMsgType.TEXT:
                if frame.type == WSMsgType.BINARY:
                    await session.error("bad_frame")
                continue
            try:
                await _on_frame(session, frame.data)
            except FrameError as problem:
                await session.error(problem.code)
    finally:
        runtime.hub.leave(session.visitor.visitor_id, socket)


async def _frame_allowed(session: Session) -> bool:
    """Every frame counts against the address's budget; the first one over it is told, the rest ignored."""
    verdict = await session.runtime.limits.ip_frames.check(f"widget-frames:{session.address}")
    if verdict == Verdict.WARN:
        await session.error("rate_limited")
    return verdict == Verdict.ALLOW


@dataclass
class _Hello(Session):
    after: int | None = None


async def _hello(request: web.Request, runtime: WidgetRuntime, socket: web.WebSocketResponse,
                 address: str) -> _Hello | None:
    """The first frame names the site and the visitor; anything wrong closes the socket with a reason."""
    locale = runtime.default_locale

    async def refuse(code: str, close_code: int) -> None:
        await socket.send_json({"type": "error", **_error_body(runtime, locale, code)["error"]})
        await socket.close(code=close_code, message=code.encode())

    try:
        first = await socket.receive(timeout=runtime.hello_timeout)
    except TimeoutError:
        await socket.close(code=WSCloseCode.POLICY_VIOLATION, message=b"no hello")
        return None
    if first.type != WSMsgType.TEXT:
        await socket.close()
        return None
    if await runtime.limits.ip_frames.check(f"widget-frames:{address}") != Verdict.ALLOW:
        await refuse("rate_limited", CLOSE_TOO_MANY)
        return None
    try:
        hello = _parse(first.data)
        if hello.get("type") != "hello":
            raise FrameError("hello_required")
    except FrameError as problem:
        await refuse(problem.code, CLOSE_BAD_HELLO)
        return None
    locale = pick_locale(str(hello.get("lang") or ""), default=runtime.default_locale)
    site = await runtime.site(str(hello.get("site") or ""))
    if site is None:
        await refuse("unknown_site", CLOSE_FORBIDDEN)
        return None
    if not widget.origin_allowed(site, request_origin(request)):
        await refuse("origin_not_allowed", CLOSE_FORBIDDEN)
        return None
    visitor = await _identify(runtime, site, hello)
    if visitor is None:
        await refuse("bad_identity" if isinstance(hello.get("user"), dict) else "bad_token", CLOSE_BAD_TOKEN)
        return None
    session = _Hello(runtime, socket, visitor, locale, address, name=_name(hello),
                     after=row_id(hello.get("after")))
    if hello.get("token") is not None or visitor.verified_user_id is not None:  # a new visitor has no row yet
        session.user = await widget.visitor_user(visitor)
    conversation = await conversations.current_conversation(session.user) if session.user else None
    await socket.send_json({"type": "welcome", "token": visitor.token,
                            "conversation": conversation.id if conversation else None,
                            "mode": str(conversation.mode.value) if conversation else "ai"})
    if conversation is not None:
        await socket.send_json(await widget.status_frame(conversation))
    return session


async def _identify(runtime: WidgetRuntime, site: WidgetSite, hello: dict[str, Any]) -> Visitor | None:
    user = hello.get("user")
    if isinstance(user, dict):  # the site's own logged-in user, signed lately by the site's server
        visitor = widget.verified_visitor(site, str(user.get("id") or ""), user.get("time"),
                                          str(user.get("hash") or ""), runtime.identity)
    else:
        token = hello.get("token")
        if token is None:
            return widget.new_visitor(site)
        visitor = widget.read_token(site, token, runtime.identity) if isinstance(token, str) else None
        if visitor is not None and visitor.identified:
            return None  # a signed-in user's token alone resumes nothing: the page signs them in afresh
    return visitor if visitor is not None and await widget.still_signed_in(visitor) else None


def _name(hello: dict[str, Any]) -> str:
    user = hello.get("user")
    return str(user.get("name") or "")[:128] if isinstance(user, dict) else ""


def _parse(data: str) -> dict[str, Any]:
    if len(data.encode()) > MAX_FRAME_BYTES:
        raise FrameError("frame_too_large")
    try:
        frame = parse_json(data)
    except ValueError:
        raise FrameError("bad_frame") from None
    if not isinstance(frame, dict):
        raise FrameError("bad_frame")
    return frame


async def _send_backlog(session: Session, after: int | None) -> None:
    if session.user is None:
        return
    for message in await widget.visible_messages(session.user, after):
        await session.socket.send_json(widget.message_frame(message))


async def _on_frame(session: Session, data: str) -> None:
    frame = _parse(data)
    kind = frame.get("type")
    if kind == "message":
        await _on_message(session, frame)
    elif kind == "typing":
        return  # accepted; nothing to show yet (see docs/widget-protocol.md)
    elif kind in ("person", "rate", "link"):
        if await session.runtime.limits.ip_actions.check(f"widget-act:{session.address}") != Verdict.ALLOW:
            raise FrameError("rate_limited")
        if kind == "person":
            await _on_person(session)
        elif kind == "rate":
            await _on_rate(session, frame)
        else:
            await _on_link(session)
    elif kind == "hello":
        raise FrameError("bad_frame")
    else:
        raise FrameError("bad_frame")


def _validated_message(frame: dict[str, Any]) -> tuple[str, str]:
    client_id, text = frame.get("client_id"), frame.get("text")
    if not isinstance(client_id, str) or not CLIENT_ID.match(client_id) or not isinstance(text, str):
        raise FrameError("bad_frame")
    if len(text) > MAX_TEXT_CHARS:
        raise FrameError("text_too_long")
    if not text.strip():
        raise FrameError("empty")
    return client_id.lower(), text


async def _within_limits(session: Session) -> None:
    limits = session.runtime.limits
    if await limits.ip_messages.check(f"widget-ip:{session.address}") != Verdict.ALLOW:
        raise FrameError("rate_limited")
    starts_conversation = session.user is None or await conversations.current_conversation(session.user) is None
    if starts_conversation and \
            await limits.ip_conversations.check(f"widget-new:{session.address}") != Verdict.ALLOW:
        raise FrameError("too_many_conversations")


async def _on_message(session: Session, frame: dict[str, Any]) -> None:
    client_id, text = _validated_message(frame)
    runtime = session.runtime
    key = widget.source_key(session.visitor.visitor_id, client_id)
    existing = await widget.already_stored(session.bot_id, key)
    if existing is not None:  # re-sent after a reconnect: stored once, confirmed again
        await session.socket.send_json(widget.message_frame(existing, client_id))
        return
    await _within_limits(session)
    who = Customer(None, first_name=session.name, language_code=session.locale,
                   widget_visitor_id=session.visitor.visitor_id)
    stored = await runtime.flow.customer_wrote(session.bot_id, who, Incoming(key, text), known=session.user,
                                               client_id=client_id)  # every tab of the visitor shows it
    if stored.message is None:
        existing = await widget.already_stored(session.bot_id, key)
        if existing is not None:
            await session.socket.send_json(widget.message_frame(existing, client_id))
        return  # a banned visitor: nothing is stored, nothing is said
    session.user = await widget.visitor_user(session.visitor)


async def _on_person(session: Session) -> None:
    """The visitor asks for a person: the same handoff as /human on Telegram."""
    runtime = session.runtime
    if session.user is None:
        who = Customer(None, first_name=session.name, language_code=session.locale,
                       widget_visitor_id=session.visitor.visitor_id)
        await _within_limits(session)
        session.user = await conversations.register_customer(session.bot_id, who, runtime.default_locale)
    asked = await runtime.flow.ask_for_person(session.user)
    if not asked.handed:  # asked again while people have it: nothing new is stored, the widget hears who answers
        await session.socket.send_json(await widget.status_frame(asked.conversation))


async def _on_link(session: Session) -> None:
    """The visitor wants this chat in their Telegram too: a one-time deep link they confirm in the bot."""
    bot = await Bot.get(id=session.bot_id)
    if not bot.username:
        raise FrameError("link_unavailable")
    if session.user is None:
        who = Customer(None, first_name=session.name, language_code=session.locale,
                       widget_visitor_id=session.visitor.visitor_id)
        session.user = await conversations.register_customer(session.bot_id, who, session.runtime.default_locale)
    code = await widget_links.create_link(session.user)
    await session.socket.send_json({"type": "link", "url": widget_links.deep_link(bot.username, code),
                                    "expires_in": int(widget_links.LINK_LIFETIME.total_seconds())})


async def _on_rate(session: Session, frame: dict[str, Any]) -> None:
    conversation_id, stars = row_id(frame.get("conversation")), frame.get("stars")
    if conversation_id is None or not isinstance(stars, int) or session.user is None:
        raise FrameError("bad_frame")
    if not await session.runtime.flow.rate(session.bot_id, session.user, conversation_id, stars):
        raise FrameError("bad_frame")
    await session.socket.send_json({"type": "rated", "conversation": conversation_id, "stars": stars})


# --- wiring ------------------------------------------------------------------------------------------------


def add_routes(app: web.Application, *, demo: bool) -> None:
    if demo:
        app.router.add_get("/", demo_page)
    app.router.add_get("/widget.js", script_view)
    app.router.add_get("/widget/ws", widget_socket)
    app.router.add_get("/widget/api/site", site_view)
    app.router.add_get("/widget/api/history", history_view)
    app.router.add_post("/widget/api/logout", logout_view)
    app.router.add_post("/widget/api/upload", upload_view)
    app.router.add_get("/widget/api/files/{message_id}/{index}", file_view)
    app.router.add_route("OPTIONS", "/widget/api/upload", preflight)
    app.router.add_route("OPTIONS", "/widget/api/files/{message_id}/{index}", preflight)
    app.router.add_route("OPTIONS", "/widget/api/site", preflight)
    app.router.add_route("OPTIONS", "/widget/api/history", preflight)
    app.router.add_route("OPTIONS", "/widget/api/logout", preflight)


def load_script() -> bytes:
    return (STATIC / "widget.js").read_bytes()


async def close_sockets(app: web.Application) -> None:
    """On shutdown: widgets reconnect elsewhere (or after the restart) and resume."""
    runtime = app.get(WIDGET)
    if runtime is not None:
        await runtime.hub.close_all()

