"""Albums: several photos (or files) a Telegram customer sends at once are one message with several attachments.

Telegram delivers each item of an album as an update of its own, sharing a `media_group_id`. The first item
to be stored creates the message under the album's source key (unique per bot, so two instances storing two
items at once make one message: the loser of the insert appends instead); each later item is appended to it
under a row lock, ordered by its Telegram message id, its caption added to the message's text. A re-delivered
item (its Telegram message id is in the album already) is stored nothing.

Whoever acts on the album (the answer job, the copy into the manager chat) first waits until no item has
arrived for the settle window, then seals it in the same locked row: an item arriving after that (a very late
one) can no longer change what was answered, so it becomes a message of its own. Nothing is lost, and nothing
answered twice. The state lives in the message's `ai_meta["album"]` (`last_at`, `sealed`), in the database,
so it holds across instances and restarts.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from tortoise.transactions import in_transaction

from models import Message

MAX_ITEMS = 10  # Telegram's largest album
MAX_WAIT_SETTLES = 10  # items that keep arriving delay an album by at most this many settle windows


def album_key(chat_id: int, media_group_id: str) -> str:
    """The source key of an album's one message."""
    return f"tg-album:{chat_id}:{media_group_id}"[:96]


def album_state(message: Message) -> dict[str, Any] | None:
    state = message.ai_meta.get("album") if isinstance(message.ai_meta, dict) else None
    return state if isinstance(state, dict) else None


def item(attachment: dict[str, Any], caption: str) -> dict[str, Any]:
    """An album item's attachment: it keeps its own caption (and its Telegram message id, for the order and
    re-deliveries)."""
    return {**attachment, "caption": caption} if caption else attachment


def first_state() -> dict[str, Any]:
    return {"last_at": datetime.now(UTC).isoformat(), "sealed": False}


def _order(attachment: dict[str, Any]) -> int:
    value = attachment.get("telegram_message_id")
    return value if isinstance(value, int) else 0


def text_of(attachments: list[dict[str, Any]]) -> str:
    """The album's words: its items' captions, in their order (usually the first item has the only one)."""
    return "\n\n".join(str(a["caption"]) for a in attachments if a.get("caption"))


class Added(StrEnum):
    """What became of an album item: appended to its album, a re-delivery, or to be stored as a message."""

    APPENDED = "appended"
    DUPLICATE = "duplicate"
    NEW_ALBUM = "new_album"  # the first item: store it as the album's message, under the album's key
    ALONE = "alone"  # the album was answered already: store it as a message of its own


async def is_open(bot_id: int, key: str) -> bool:
    """Whether the album has its message and takes more items (it is not answered yet, nor full)."""
    album = await Message.get_or_none(bot_id=bot_id, source_key=key).only("id", "attachments", "ai_meta")
    if album is None:
        return False
    state = album_state(album) or {}
    return not state.get("sealed") and len(album.attachments) < MAX_ITEMS


async def add_item(bot_id: int, key: str, attachment: dict[str, Any]) -> tuple[Added, Message | None]:
    """Append an item to its album's message, if that message exists and is not sealed."""
    async with in_transaction():
        album = await Message.select_for_update().get_or_none(bot_id=bot_id, source_key=key)
        if album is None:
            return Added.NEW_ALBUM, None
        items: list[dict[str, Any]] = [dict(a) for a in album.attachments]
        if any(_order(a) == _order(attachment) for a in items):
            return Added.DUPLICATE, album
        state = album_state(album) or {}
        if state.get("sealed") or len(items) >= MAX_ITEMS:
            return Added.ALONE, album
        items = sorted([*items, attachment], key=_order)
        album.attachments = items
        album.text = text_of(items)
        album.ai_meta = {**album.ai_meta, "album": {**state, "last_at": datetime.now(UTC).isoformat()}}
        await album.save(update_fields=["attachments", "text", "ai_meta"])
        return Added.APPENDED, album


async def settle(message: Message, seconds: float) -> None:
    """For an album's message: wait until no item has arrived for `seconds`, then seal it, and bring `message`
    up to date (all its items, its captions). Any other message is left as it is, at once."""
    if album_state(message) is None:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds * MAX_WAIT_SETTLES
    while True:
        async with in_transaction():
            current = await Message.select_for_update().get(id=message.id)
            state = album_state(current) or {}
            wait = 0.0
            if not state.get("sealed"):
                last = datetime.fromisoformat(str(state.get("last_at") or current.created_at.isoformat()))
                wait = seconds - (datetime.now(UTC) - last).total_seconds()
                if wait <= 0 or loop.time() >= deadline:
                    state = {**state, "sealed": True}
                    current.ai_meta = {**current.ai_meta, "album": state}
                    await current.save(update_fields=["ai_meta"])
                    wait = 0.0
        if wait <= 0:
            message.attachments, message.text, message.ai_meta = current.attachments, current.text, current.ai_meta
            return
        await asyncio.sleep(min(wait, max(0.0, deadline - loop.time())) + 0.01)
