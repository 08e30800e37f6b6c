"""The Mini App's conversations: a customer's own history, the staff inbox, transcripts and actions."""

from __future__ import annotations

from aiohttp import web

from miniapp import schemas
from miniapp.api import Api, ApiError, ok, path_id, read_body, read_query
from miniapp.auth import MINIAPP, Caller, authenticate, staff_member
from models import Channel, Conversation
from services import inbox
from services.flow import Typed
from services.i18n import N_
from services.inbox import BadCursor, InboxQuery
from services.widget import WidgetLive

ALREADY = N_("Nothing changed: the conversation was already like that.")
EMPTY_TEXT = N_("Please type a message first.")
TOO_LONG = N_("The message is too long.")

WIDGET_LIVE = web.AppKey("miniapp_widget_live", WidgetLive)


def _id(request: web.Request) -> int:
    return path_id(request, "conversation_id")


async def _conversation(request: web.Request, caller: Caller) -> Conversation:
    """The conversation in the path if the caller may see it: 404 for another's, never its data."""
    conversation = await inbox.visible_conversation(caller, _id(request))
    if conversation is None:
        raise ApiError(404, "not_found")
    return conversation


async def list_conversations(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    params = read_query(request, schemas.InboxParams)
    try:
        page = await inbox.conversations_page(caller, InboxQuery(
            view=params.view, channel=Channel(params.channel) if params.channel else None, search=params.q,
            cursor=params.cursor, limit=params.limit, assignee=params.assignee))
    except BadCursor as error:
        raise ApiError(400, "bad_cursor") from error
    rows = [inbox.conversation_json(row, page.previews.get(row.id), staff=caller.staff) for row in page.conversations]
    return ok(schemas.ConversationPage.model_validate({"conversations": rows, "next_cursor": page.next_cursor}))


async def inbox_summary(request: web.Request) -> web.Response:
    caller = await staff_member(request)
    params = read_query(request, schemas.InboxCountsParams)
    counts = await inbox.tab_counts(caller, channel=Channel(params.channel) if params.channel else None,
                                    assignee=params.assignee)
    staff = [inbox.person(user) for user in await inbox.assignable_staff(caller.bot_id)]
    return ok(schemas.InboxSummary.model_validate({"counts": vars(counts), "staff": staff}))


async def conversation_detail(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    conversation = await _conversation(request, caller)
    previews = await inbox.last_messages([conversation.id], staff=caller.staff)
    return ok(schemas.ConversationOut.model_validate(
        inbox.conversation_json(conversation, previews.get(conversation.id), staff=caller.staff)))


async def conversation_messages(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    params = read_query(request, schemas.MessagesParams)
    conversation = await _conversation(request, caller)
    rows, more = await inbox.messages_page(caller, conversation, before=params.before, after=params.after,
                                           limit=params.limit)
    return ok(schemas.MessagesPage.model_validate(
        {"messages": [inbox.message_json(row, staff=caller.staff) for row in rows], "has_more": more}))


async def conversation_action(request: web.Request) -> web.Response:
    """Take, return to the AI, close, ban, unban: the same functions as the topic's commands."""
    caller = await staff_member(request)
    action = (await read_body(request, schemas.ConversationAction)).action
    conversation = await _conversation(request, caller)
    staff, flow = caller.user, request.app[MINIAPP].flow
    if action == "take":
        done = await flow.take(conversation, staff, via="app")
    elif action == "return":
        done = await flow.give_back(conversation, staff, via="app")
    elif action == "close":
        done = await flow.close(conversation, staff, via="app")
    else:
        done = await flow.set_banned(conversation, staff, action == "ban", via="app")
    if not done:
        raise ApiError(409, "conflict", ALREADY)
    return await conversation_detail(request)


async def _write(request: web.Request, *, note: bool) -> web.Response:
    caller = await staff_member(request)
    text = (await read_body(request, schemas.TextIn)).text
    conversation = await _conversation(request, caller)
    try:
        message = await request.app[MINIAPP].flow.manager_wrote(conversation, caller.user, Typed(text), note=note)
    except ValueError as error:
        raise ApiError(400, str(error), EMPTY_TEXT if str(error) == "empty" else TOO_LONG) from error
    assert message is not None  # only a message from Telegram can be a re-delivery
    return ok(schemas.MessageOut.model_validate(inbox.message_json(message, staff=True)), status=201)


async def reply(request: web.Request) -> web.Response:
    return await _write(request, note=False)


async def add_note(request: web.Request) -> web.Response:
    return await _write(request, note=True)


def add_routes(app: web.Application, api: Api) -> None:
    api.route(app, "GET", "/api/conversations", list_conversations, query=schemas.InboxParams,
              response=schemas.ConversationPage, roles="anyone signed in (customers get their own)",
              summary="Conversations, newest activity first: a customer's own, or the staff inbox")
    api.route(app, "GET", "/api/inbox/summary", inbox_summary, query=schemas.InboxCountsParams,
              response=schemas.InboxSummary, roles="staff", summary="The inbox's tab counts and the team to filter by")
    api.route(app, "GET", "/api/conversations/{conversation_id}", conversation_detail,
              response=schemas.ConversationOut, roles="its customer, or staff", summary="One conversation")
    api.route(app, "GET", "/api/conversations/{conversation_id}/messages", conversation_messages,
              query=schemas.MessagesParams, response=schemas.MessagesPage, roles="its customer, or staff",
              summary="A conversation's messages, oldest first (notes and AI metadata for staff only)")
    api.route(app, "POST", "/api/conversations/{conversation_id}/actions", conversation_action,
              body=schemas.ConversationAction, response=schemas.ConversationOut, roles="staff",
              summary="Take, return to the AI, close, ban or unban (409 when nothing changes)")
    api.route(app, "POST", "/api/conversations/{conversation_id}/reply", reply, body=schemas.TextIn,
              response=schemas.MessageOut, roles="staff",
              summary="Reply to the customer, delivered as a reply in the topic would be")
    api.route(app, "POST", "/api/conversations/{conversation_id}/notes", add_note, body=schemas.TextIn,
              response=schemas.MessageOut, roles="staff", summary="An internal note, never shown to the customer")
