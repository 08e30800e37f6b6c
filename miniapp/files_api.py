"""The files of a conversation's messages, for staff who may see that conversation (the Mini App's page)."""

from __future__ import annotations

from aiohttp import web

from miniapp.api import Api, ApiError, path_id
from miniapp.auth import staff_member
from miniapp.inputs import row_id
from miniapp.widget import file_headers
from models import Message
from services import inbox
from services.files import ConversationFiles

FILES = web.AppKey("conversation_files", ConversationFiles)


async def message_file(request: web.Request) -> web.Response:
    """A visitor's upload (stored) or a Telegram file (through getFile), of a message of a conversation the
    caller may see; 404 for anything else, as for a conversation they may not see."""
    caller = await staff_member(request)
    conversation = await inbox.visible_conversation(caller, path_id(request, "conversation_id"))
    index = row_id(request.match_info["index"])
    message = await Message.get_or_none(id=path_id(request, "message_id"), conversation_id=conversation.id) \
        if conversation is not None else None
    served = await request.app[FILES].serve(message, index) if message is not None and index is not None else None
    if served is None:
        raise ApiError(404, "not_found")
    return web.Response(body=served.content, headers=file_headers(served))


def add_routes(app: web.Application, api: Api) -> None:
    api.route(app, "GET", "/api/conversations/{conversation_id}/messages/{message_id}/files/{index}", message_file,
              roles="staff", content_type="application/octet-stream",
              summary="The file of a message's attachment (an image inline, anything else as a download)")
