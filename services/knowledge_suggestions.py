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

from models import User
from services import knowledge, tenant_settings
from services.answering import UNANSWERED, AnswerPolicy
from services.embeddings import Embedder, EmbeddingError
from services.knowledge import KnowledgeError, question_key, words

WINDOW_CONVERSATIONS = 2000
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
                               window: int = WINDOW_CONVERSATIONS,
                               embedder: Embedder | None = None) -> list[Suggestion]:
    """The most asked first, then the most recently asked; `threshold` is the answerer's direct-answer bar.

    With an `embedder`, questions that mean the same ("how much is delivery" and "сколько стоит
    доставка") are one suggestion, counted together; without one, questions with the same words are.
    """
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
    ranked = sorted(groups.values(), key=lambda s: (s.count, s.last_asked_at), reverse=True)
    members = {suggestion.key: {suggestion.key} for suggestion in ranked}
    if embedder is not None:
        ranked, members = await _by_meaning(ranked, embedder)
    suggestions: list[Suggestion] = []
    for suggestion in ranked:
        if len(suggestions) >= limit:
            break
        if members[suggestion.key] & dismissed:
            continue
        if await knowledge.direct_answer(bot_id, suggestion.question, threshold) is not None:
            continue  # answered now
        suggestions.append(suggestion)
    return suggestions


# Two questions mean the same when their vectors' cosine is at least this. Measured on the reworded
# questions of bench/data/knowledge_eval.json: at 0.91 under 1% of pairs of different questions meet
# (Uzbek's, whose vectors lie closer together, most), so a merge is almost never wrong; a pair it misses
# only stays two suggestions.
SAME_MEANING = 0.91
MAX_EMBEDDED = 300  # distinct questions embedded per call; the rest stay grouped by their words


async def _by_meaning(ranked: list[Suggestion], embedder: Embedder) -> tuple[list[Suggestion], dict[str, set[str]]]:
    """Merge word groups that mean the same, most asked first: each joins the first group it is close to."""
    head, tail = ranked[:MAX_EMBEDDED], ranked[MAX_EMBEDDED:]
    try:
        vectors = await embedder.queries([suggestion.question for suggestion in head])
    except EmbeddingError:
        return ranked, {suggestion.key: {suggestion.key} for suggestion in ranked}
    merged: list[tuple[Suggestion, int]] = []  # a group, and the row of its first question's vector
    members: dict[str, set[str]] = {}
    for row, suggestion in enumerate(head):
        close = [i for i, (_, first) in enumerate(merged) if float(vectors[first] @ vectors[row]) >= SAME_MEANING]
        if not close:
            merged.append((suggestion, row))
            members[suggestion.key] = {suggestion.key}
            continue
        group, first = merged[close[0]]
        members[group.key].add(suggestion.key)
        latest = suggestion if suggestion.last_asked_at > group.last_asked_at else group
        merged[close[0]] = (Suggestion(group.key, latest.question, group.count + suggestion.count,
                                       latest.last_asked_at), first)
    result = sorted([group for group, _ in merged], key=lambda s: (s.count, s.last_asked_at), reverse=True)
    for suggestion in tail:
        members[suggestion.key] = {suggestion.key}
    return result + tail, members


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
    return (await tenant_settings.load(bot_id)).knowledge_dismissed


async def dismiss_suggestion(bot_id: int, key: str, actor: User) -> None:
    """Staff do not want this question in the knowledge base: it is not suggested again."""
    if not _KEY.fullmatch(key):
        raise KnowledgeError("not_found", key=key[:80])
    async with tenant_settings.edit(bot_id) as draft:
        keys = draft.settings.knowledge_dismissed
        if key in keys:
            return
        draft.settings = draft.settings.changed(knowledge_dismissed=[*keys, key][-MAX_DISMISSED:])
        draft.audit(actor, "knowledge_dismiss", key)
