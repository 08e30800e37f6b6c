"""Saved replies: named snippets staff insert into a reply, in the Mini App's composer or with
`/r NAME` in a conversation's topic.

Scoped by the bot; every change is audit-logged with the staff member who made it. A name is one
word (letters, digits, `-`, `_`), kept in lower case, so `/r Hours` and `/r hours` are the same.
Bad input raises `SavedReplyError(code)`.
"""

from __future__ import annotations

import re

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from models import SavedReply, User
from services.audit import audit

MAX_NAME = 40
MAX_TEXT = 4000  # what a reply from the app may hold (services.flow.MAX_APP_TEXT)
MAX_REPLIES = 500  # per bot: the picker lists them all
_NAME = re.compile(r"^[\w-]+$")


class SavedReplyError(Exception):
    """`bad_name`, `empty_text`, `too_long`, `duplicate`, `too_many` or `not_found`."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def clean_name(name: str) -> str:
    name = name.strip().lstrip("/").lower()
    if not name or len(name) > MAX_NAME or not _NAME.match(name):
        raise SavedReplyError("bad_name")
    return name


def _clean_text(text: str) -> str:
    text = text.strip()
    if not text:
        raise SavedReplyError("empty_text")
    if len(text) > MAX_TEXT:
        raise SavedReplyError("too_long")
    return text


async def list_replies(bot_id: int) -> list[SavedReply]:
    return list(await SavedReply.filter(bot_id=bot_id).order_by("name").limit(MAX_REPLIES))


async def find(bot_id: int, name: str) -> SavedReply | None:
    """The reply by its name (any case); None for a name no reply could have."""
    try:
        return await SavedReply.get_or_none(bot_id=bot_id, name=clean_name(name))
    except SavedReplyError:
        return None


async def create(bot_id: int, name: str, text: str, *, actor: User) -> SavedReply:
    name, text = clean_name(name), _clean_text(text)
    try:
        async with in_transaction():
            if await SavedReply.filter(bot_id=bot_id).count() >= MAX_REPLIES:
                raise SavedReplyError("too_many")
            reply = await SavedReply.create(bot_id=bot_id, name=name, text=text, author=actor)
            await audit(bot_id, actor, "saved_reply_create", str(reply.id), name=name)
    except IntegrityError as error:  # the unique (bot, name)
        raise SavedReplyError("duplicate") from error
    return reply


async def update(bot_id: int, reply_id: int, *, name: str | None = None, text: str | None = None,
                 actor: User) -> SavedReply:
    """Change what is given (None keeps it); a change to nothing is not logged."""
    try:
        async with in_transaction():
            reply = await SavedReply.select_for_update().get_or_none(bot_id=bot_id, id=reply_id)
            if reply is None:
                raise SavedReplyError("not_found")
            new_name = reply.name if name is None else clean_name(name)
            new_text = reply.text if text is None else _clean_text(text)
            if (new_name, new_text) == (reply.name, reply.text):
                return reply
            before = reply.name
            reply.name, reply.text = new_name, new_text
            await reply.save(update_fields=["name", "text", "updated_at"])
            await audit(bot_id, actor, "saved_reply_update", str(reply.id), name=new_name, before=before)
    except IntegrityError as error:
        raise SavedReplyError("duplicate") from error
    return reply


async def delete(bot_id: int, reply_id: int, *, actor: User) -> None:
    async with in_transaction():
        reply = await SavedReply.get_or_none(bot_id=bot_id, id=reply_id)
        if reply is None:
            raise SavedReplyError("not_found")
        await reply.delete()
        await audit(bot_id, actor, "saved_reply_delete", str(reply_id), name=reply.name)
