"""What the knowledge base lacks: the questions customers asked that nobody could answer.

The answerer marks such a reply (`answering.UNANSWERED`): the AI said it cannot answer, or there
was no AI and no knowledge item held the question. Equal questions (the same words, see
`knowledge.question_key`) are grouped; those a knowledge item now answers directly, and those
staff dismissed, are left out.

Only the bot's most recent conversations are read (`window`, by the inbox's index on
(bot_id, last_message_at DESC, id DESC)), their messages through (conversation_id, id): the cost
follows the window, not the size of the message table. With 100k conversations and 1M messages,
the default window's query took about 12 ms on SQLite and 30 ms on PostgreSQL (a busy 2-core box).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from tortoise import connections
from tortoise.transactions import in_transaction

from models import Bot, User
from services import knowledge
from services.answering import UNANSWERED, AnswerPolicy
from services.audit import audit
from services.knowledge import KnowledgeError, question_key, words

WINDOW_CONVERSATIONS = 2000
DISMISSED_SETTING = "knowledge_dismissed"  # in Bot.settings: the keys, oldest first
MAX_DISMISSED = 1000  # the oldest dismissals are forgotten beyond this
_KEY = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Suggestion:
    key: str  # for dismiss_suggestion
    question: str  # as last asked
    count: int  # how many times it was asked
    last_asked_at: datetime


async def unanswered_questions(bot_id: int, *, limit: int = 20,
                               threshold: float = AnswerPolicy().kb_direct_threshold,
                               window: int = WINDOW_CONVERSATIONS) -> list[Suggestion]:
    """The most asked first, then the most recently asked; `threshold` is the answerer's direct-answer bar."""
    groups: dict[str, Suggestion] = {}
    for text, asked_at in await _unanswered(bot_id, window):
        if not words(text):
            continue
        key = question_key(text)
        seen = groups.get(key)
        if seen is None:
            groups[key] = Suggestion(key, text, 1, asked_at)
        elif asked_at >= seen.last_asked_at:
            groups[key] = Suggestion(key, text, seen.count + 1, asked_at)
        else:
            groups[key] = Suggestion(key, seen.question, seen.count + 1, seen.last_asked_at)
    dismissed = set(await _dismissed(bot_id))
    suggestions: list[Suggestion] = []
    for suggestion in sorted(groups.values(), key=lambda s: (s.count, s.last_asked_at), reverse=True):
        if len(suggestions) >= limit:
            break
        if suggestion.key in dismissed:
            continue
        if await knowledge.direct_answer(bot_id, suggestion.question, threshold) is not None:
            continue  # answered now
        suggestions.append(suggestion)
    return suggestions


async def _unanswered(bot_id: int, window: int) -> list[tuple[str, datetime]]:
    """The customer messages whose reply is marked unanswered, in the bot's `window` latest conversations."""
    connection = connections.get("default")
    if connection.capabilities.dialect == "postgres":
        # Conversation by conversation through the index: left to itself, the planner underestimates
        # the marked rows and scans the whole message table; OFFSET 0 keeps LATERAL from being flattened.
        rows = await connection.execute_query_dict(
            "SELECT q.text AS text, q.created_at AS asked_at FROM (SELECT id FROM conversation WHERE bot_id = $1 "
            "ORDER BY last_message_at DESC, id DESC LIMIT $2) c "
            "CROSS JOIN LATERAL (SELECT reply_to_id FROM message WHERE conversation_id = c.id "
            f"AND author_kind IN ('ai', 'system') AND (ai_meta ->> '{UNANSWERED}') = 'true' OFFSET 0) r "
            "JOIN message q ON q.id = r.reply_to_id AND q.author_kind = 'customer'",
            [bot_id, window])
    else:
        rows = await connection.execute_query_dict(
            "SELECT q.text AS text, q.created_at AS asked_at FROM (SELECT id FROM conversation WHERE bot_id = ? "
            "ORDER BY last_message_at DESC, id DESC LIMIT ?) c "
            "JOIN message r ON r.conversation_id = c.id "
            "JOIN message q ON q.id = r.reply_to_id AND q.author_kind = 'customer' "
            f"WHERE r.author_kind IN ('ai', 'system') AND json_extract(r.ai_meta, '$.{UNANSWERED}') = 1",
            [bot_id, window])
    return [(str(row["text"]), _moment(row["asked_at"])) for row in rows]


def _moment(value: datetime | str) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)  # SQLite gives text


async def _dismissed(bot_id: int) -> list[str]:
    bot = await Bot.get(id=bot_id)
    keys = bot.settings.get(DISMISSED_SETTING, [])
    return [str(key) for key in keys] if isinstance(keys, list) else []


async def dismiss_suggestion(bot_id: int, key: str, actor: User) -> None:
    """Staff do not want this question in the knowledge base: it is not suggested again."""
    if not _KEY.fullmatch(key):
        raise KnowledgeError("not_found", key=key[:80])
    async with in_transaction() as connection:
        query = Bot.filter(id=bot_id)
        if connection.capabilities.dialect == "postgres":
            query = query.select_for_update()
        bot = await query.get()
        earlier = bot.settings.get(DISMISSED_SETTING, [])
        keys = [str(k) for k in earlier] if isinstance(earlier, list) else []
        if key in keys:
            return
        bot.settings = {**bot.settings, DISMISSED_SETTING: [*keys, key][-MAX_DISMISSED:]}
        await bot.save(update_fields=["settings"])
        await audit(bot_id, actor, "knowledge_dismiss", key)
