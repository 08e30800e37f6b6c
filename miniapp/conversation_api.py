"""The conversation view's tools for a team: assign to a teammate, say who is writing, the customer's side
panel, saved replies, and a manager's answer added to the knowledge base.

Staff read; only staff who may act (managers, admins) change anything; customers are refused.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field

from miniapp.api import Api, ApiError, ok, path_id, read_body
from miniapp.auth import MINIAPP, staff_member, tenant
from miniapp.inbox_api import ALREADY, conversation_detail
from miniapp.knowledge_api import ItemIn, ItemOut, _failed, _item
from miniapp.live import LIVE
from miniapp.schemas import ConversationOut, Person, Strict
from models import AuthorKind, Conversation, Message, SavedReply, User
from services import customer_profile, inbox, knowledge_admin, saved_replies, staff
from services.i18n import N_
from services.inbox import person, state_of
from services.knowledge import KnowledgeError
from services.saved_replies import SavedReplyError

NOT_A_TEAMMATE = N_("Only a manager or an admin of this desk can be given a conversation.")
REPLY_ERRORS = {
    "bad_name": (400, N_("A name is one word of letters, digits, - or _ (at most 40 characters).")),
    "empty_text": (400, N_("Please write the reply's text.")),
    "too_long": (400, N_("The reply is too long: at most 4000 characters.")),
    "duplicate": (409, N_("There is already a saved reply with this name.")),
    "too_many": (400, N_("There are too many saved replies: delete some first.")),
    "not_found": (404, N_("This saved reply no longer exists.")),
}


class Teammates(BaseModel):
    teammates: list[Person] = Field(description="Managers and admins: whom a conversation can be given to")


class AssignIn(Strict):
    user_id: int = Field(ge=1, description="A teammate from /api/teammates")


class PastConversation(BaseModel):
    id: int
    state: str
    channel: str
    created_at: str
    last_message_at: str
    rating: int | None
    assignee: Person | None
    question: str = Field(description="The customer's first question in it")


class NoteOut(BaseModel):
    conversation_id: int
    author_name: str | None
    text: str
    created_at: str


class CustomerPanel(BaseModel):
    customer: Person
    language: str | None
    channel: str = Field(description="This conversation's channel")
    telegram_id: int | None
    first_seen: str
    conversation_count: int
    conversations: list[PastConversation] = Field(description="Newest first, this one included (at most 20)")
    notes: list[NoteOut] = Field(description="The team's notes in any of their conversations, newest first")
    ratings: int
    average_rating: float | None


class SavedReplyOut(BaseModel):
    id: int
    name: str
    text: str
    author: Person | None
    updated_at: str


class SavedReplies(BaseModel):
    replies: list[SavedReplyOut]


class SavedReplyIn(Strict):
    name: str = Field(max_length=100)
    text: str = Field(max_length=10_000)


class SavedReplyPatch(Strict):
    name: str | None = Field(None, max_length=100)
    text: str | None = Field(None, max_length=10_000)


class Done(BaseModel):
    ok: bool = True


async def _conversation(request: web.Request) -> Conversation:
    caller = await staff_member(request)
    conversation = await inbox.visible_conversation(caller, path_id(request, "conversation_id"))
    if conversation is None:
        raise ApiError(404, "not_found")
    return conversation


# --- assigning -------------------------------------------------------------------------------------------


async def _acting_team(request: web.Request) -> list[Person]:
    runtime = request.app[MINIAPP]
    members = await staff.team(await tenant(request), runtime.staff, runtime.default_locale)
    return [Person.model_validate(person(member.user)) for member in members
            if member.user is not None and member.role in staff.ACTING]


async def teammates(request: web.Request) -> web.Response:
    await staff_member(request)
    return ok(Teammates(teammates=await _acting_team(request)))


async def assign(request: web.Request) -> web.Response:
    caller = await staff_member(request)
    wanted = (await read_body(request, AssignIn)).user_id
    conversation = await _conversation(request)
    if wanted not in {teammate.id for teammate in await _acting_team(request)}:
        raise ApiError(400, "not_a_teammate", NOT_A_TEAMMATE)
    teammate = await User.get(id=wanted)
    if not await request.app[MINIAPP].flow.assign(conversation, caller.user, to=teammate, via="app"):
        raise ApiError(409, "conflict", ALREADY)
    return await conversation_detail(request)


async def typing(request: web.Request) -> web.Response:
    """The caller is writing here: the other staff's open pages say so for a few seconds (best effort)."""
    caller = await staff_member(request)
    conversation = await _conversation(request)
    hub = request.app.get(LIVE)
    if hub is not None and hub.feed is not None:
        await hub.feed.staff_typing(conversation, caller.user)
    return ok(Done())


# --- the customer's side panel ------------------------------------------------------------------------------


async def customer_panel(request: web.Request) -> web.Response:
    conversation = await _conversation(request)
    found = await customer_profile.profile(conversation)
    customer = found.customer
    return ok(CustomerPanel(
        customer=Person.model_validate(person(customer)), language=customer.language or None,
        channel=conversation.channel.value, telegram_id=customer.telegram_id, first_seen=found.since.isoformat(),
        conversation_count=found.conversation_count,
        conversations=[PastConversation(id=row.id, state=state_of(row).value, channel=row.channel.value,
                                        created_at=row.created_at.isoformat(),
                                        last_message_at=row.last_message_at.isoformat(), rating=row.rating,
                                        assignee=person(row.assignee),
                                        question=row.question) for row in found.conversations],
        notes=[NoteOut(conversation_id=note.conversation_id, text=note.text, created_at=note.created_at.isoformat(),
                       author_name=person(note.author)["name"] if note.author else None)  # type: ignore[index]
               for note in found.notes],
        ratings=found.ratings, average_rating=found.average_rating))


# --- saved replies ----------------------------------------------------------------------------------------


def _reply(reply: SavedReply) -> SavedReplyOut:
    author = person(reply.author) if reply.author_id is not None else None
    return SavedReplyOut(id=reply.id, name=reply.name, text=reply.text,
                         author=Person.model_validate(author) if author else None,
                         updated_at=reply.updated_at.isoformat())


def _reply_failed(error: SavedReplyError) -> ApiError:
    status, message = REPLY_ERRORS.get(error.code, (400, None))
    return ApiError(status, error.code, message)


async def list_replies(request: web.Request) -> web.Response:
    caller = await staff_member(request)
    rows = await saved_replies.list_replies(caller.bot_id)
    await SavedReply.fetch_for_list(rows, "author")
    return ok(SavedReplies(replies=[_reply(row) for row in rows]))


async def create_reply(request: web.Request) -> web.Response:
    caller = await staff_member(request)
    body = await read_body(request, SavedReplyIn)
    try:
        reply = await saved_replies.create(caller.bot_id, body.name, body.text, actor=caller.user)
    except SavedReplyError as error:
        raise _reply_failed(error) from error
    reply.author = caller.user
    return ok(_reply(reply), status=201)


async def update_reply(request: web.Request) -> web.Response:
    caller = await staff_member(request)
    body = await read_body(request, SavedReplyPatch)
    try:
        reply = await saved_replies.update(caller.bot_id, path_id(request, "reply_id"), name=body.name,
                                           text=body.text, actor=caller.user)
    except SavedReplyError as error:
        raise _reply_failed(error) from error
    await reply.fetch_related("author")
    return ok(_reply(reply))


async def delete_reply(request: web.Request) -> web.Response:
    caller = await staff_member(request)
    try:
        await saved_replies.delete(caller.bot_id, path_id(request, "reply_id"), actor=caller.user)
    except SavedReplyError as error:
        raise _reply_failed(error) from error
    return ok(Done())


# --- a manager's answer into the knowledge base ---------------------------------------------------------


async def add_to_knowledge(request: web.Request) -> web.Response:
    """A manager's reply in this conversation becomes a knowledge item (the question as staff word it)."""
    caller = await staff_member(request)
    body = await read_body(request, ItemIn)
    conversation = await _conversation(request)
    if not await Message.exists(id=path_id(request, "message_id"), conversation_id=conversation.id,
                                author_kind=AuthorKind.MANAGER):
        raise ApiError(404, "not_found")
    try:
        view = await knowledge_admin.create_item(caller.bot_id, question=body.question, answer=body.answer,
                                                 tags=body.tags, actor=caller.user)
    except KnowledgeError as error:
        raise _failed(request, error) from error
    return ok(_item(view), status=201)


def add_routes(app: web.Application, api: Api) -> None:
    api.route(app, "GET", "/api/teammates", teammates, response=Teammates, roles="staff",
              summary="Managers and admins, whom a conversation can be assigned to")
    api.route(app, "POST", "/api/conversations/{conversation_id}/assign", assign, body=AssignIn,
              response=ConversationOut, roles="staff",
              summary="Give the conversation to a teammate; the customer hears who joined (409 if theirs already)")
    api.route(app, "POST", "/api/conversations/{conversation_id}/typing", typing, response=Done, roles="staff",
              summary="I am writing here: other staff's open pages show it for a few seconds (send every few)")
    api.route(app, "GET", "/api/conversations/{conversation_id}/customer", customer_panel, response=CustomerPanel,
              roles="staff", summary="The customer beside the conversation: language, channel, past "
                                     "conversations, notes and ratings")
    api.route(app, "POST", "/api/conversations/{conversation_id}/messages/{message_id}/knowledge", add_to_knowledge,
              body=ItemIn, response=ItemOut, roles="staff",
              summary="Add a manager's reply in this conversation to the knowledge base")
    api.route(app, "GET", "/api/saved-replies", list_replies, response=SavedReplies, roles="staff",
              summary="Saved replies, by name")
    api.route(app, "POST", "/api/saved-replies", create_reply, body=SavedReplyIn, response=SavedReplyOut,
              roles="staff", summary="Save a named reply (409 if the name is taken)")
    api.route(app, "PATCH", "/api/saved-replies/{reply_id}", update_reply, body=SavedReplyPatch,
              response=SavedReplyOut, roles="staff", summary="Rename or rewrite a saved reply")
    api.route(app, "DELETE", "/api/saved-replies/{reply_id}", delete_reply, response=Done, roles="staff",
              summary="Delete a saved reply")
