"""A customer's own data: everything stored about them as one JSON document, and its deletion.

The same functions serve `/mydata` and `/deletemydata` in the bot and the Mini App's settings.
Staff's internal notes about a customer are not part of the export: the design promises that
notes never reach customers. Their own API keys are described without the key itself. Deletion
removes the person's row and everything hanging from it (conversations, messages, their copies,
usage, sessions, prompt projects with their versions and runs, own templates and API keys); the
audit log keeps that it happened, not who it was.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from models import (
    AuditLog,
    AuthorKind,
    Conversation,
    Message,
    PromptProject,
    PromptRun,
    PromptTemplate,
    PromptVersion,
    ProviderKey,
    TelegramUpdate,
    UpdateState,
    Usage,
    User,
)
from services.widget_links import linked_visitors

EXPORT_FORMAT = "frontdesk-personal-data"
EXPORTED_AUTHORS = (AuthorKind.CUSTOMER, AuthorKind.AI, AuthorKind.MANAGER, AuthorKind.SYSTEM)


def _when(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


async def export_customer_data(user: User) -> dict[str, Any]:
    """The person's row, and every conversation of theirs (with website chats linked to them)."""
    people = [user.id, *await linked_visitors(user)]
    conversations = await Conversation.filter(user_id__in=people).order_by("id")
    messages = await (Message.filter(conversation__user_id__in=people, author_kind__in=EXPORTED_AUTHORS)
                      .exclude(Q(author_kind=AuthorKind.SYSTEM) & Q(text="")).order_by("id"))
    by_conversation: dict[int, list[dict[str, Any]]] = {}
    for message in messages:
        by_conversation.setdefault(int(message.conversation_id), []).append({
            "id": message.id, "author": message.author_kind.value, "text": message.text,
            "attachments": [_attachment(attachment) for attachment in message.attachments],
            "created_at": _when(message.created_at)})
    usage = await Usage.filter(user_id__in=people).order_by("day")
    return {
        "format": EXPORT_FORMAT,
        "exported_at": datetime.now(UTC).isoformat(),
        "person": {
            "id": user.id, "telegram_id": user.telegram_id, "widget_visitor_id": user.widget_visitor_id,
            "first_name": user.first_name, "last_name": user.last_name, "username": user.username,
            "language": user.language, "preferences": user.preferences, "banned": user.banned,
            "blocked_the_bot": user.blocked_bot, "created_at": _when(user.created_at),
            "last_seen_at": _when(user.last_seen_at)},
        "conversations": [{
            "id": conversation.id, "channel": conversation.channel.value, "status": conversation.status.value,
            "created_at": _when(conversation.created_at), "closed_at": _when(conversation.closed_at),
            "rating": conversation.rating, "messages": by_conversation.get(conversation.id, []),
            "linked": conversation.user_id != user.id}
            for conversation in conversations],
        "usage": [{"day": row.day.isoformat(), "messages": row.messages, "ai_answers": row.ai_messages,
                   "tokens_in": row.tokens_in, "tokens_out": row.tokens_out} for row in usage],
        **await _studio(people),
    }


async def _studio(people: list[int]) -> dict[str, Any]:
    """The person's prompt studio: projects (their documents and versions), runs, own templates, and
    their API keys without the key itself."""
    projects = await PromptProject.filter(owner_id__in=people).order_by("id")
    versions = await PromptVersion.filter(project__owner_id__in=people).order_by("id")
    by_project: dict[int, list[dict[str, Any]]] = {}
    for version in versions:
        by_project.setdefault(int(version.project_id), []).append({
            "id": version.id, "block": version.block_key, "number": version.number, "name": version.name,
            "template": version.template, "variables": version.variables, "compiled": version.compiled,
            "labels": version.labels, "created_at": _when(version.created_at)})
    runs = await PromptRun.filter(user_id__in=people).order_by("id")
    templates = await PromptTemplate.filter(owner_id__in=people).order_by("id")
    keys = await ProviderKey.filter(owner_id__in=people).order_by("id")
    return {
        "prompt_projects": [{
            "id": project.id, "name": project.name, "document": project.data, "revision": project.revision,
            "created_at": _when(project.created_at), "updated_at": _when(project.updated_at),
            "versions": by_project.get(project.id, [])} for project in projects],
        "prompt_runs": [{
            "id": run.id, "kind": run.kind, "project": run.project_id, "version": run.version_id,
            "model": run.model, "own_key": run.own_key, "prompt": run.prompt, "answer": run.answer,
            "status": run.status, "error": run.error, "tokens_in": run.tokens_in, "tokens_out": run.tokens_out,
            "latency_ms": run.latency_ms, "cost": float(run.cost), "created_at": _when(run.created_at)}
            for run in runs],
        "prompt_templates": [{
            "id": template.id, "title": template.title, "description": template.description, "body": template.body,
            "tags": template.tags, "locale": template.locale, "uses": template.uses,
            "created_at": _when(template.created_at), "updated_at": _when(template.updated_at)}
            for template in templates],
        "api_keys": [{"name": key.name, "base_url": key.base_url, "models": key.models, "last4": key.last4}
                     for key in keys],
    }


def export_bytes(data: dict[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=False, indent=2).encode()


async def delete_customer_data(user: User, *, via: str) -> dict[str, int]:
    """Delete the person and everything about them, in one transaction; return what went."""
    bot_id: int = user.bot_id
    people = [user.id, *await linked_visitors(user)]
    async with in_transaction():
        counts = {"conversations": await Conversation.filter(user_id__in=people).count(),
                  "messages": await Message.filter(conversation__user_id__in=people).count(),
                  "prompt_projects": await PromptProject.filter(owner_id__in=people).count(),
                  "prompt_versions": await PromptVersion.filter(project__owner_id__in=people).count(),
                  "prompt_runs": await PromptRun.filter(user_id__in=people).count(),
                  "prompt_templates": await PromptTemplate.filter(owner_id__in=people).count(),
                  "api_keys": await ProviderKey.filter(owner_id__in=people).count()}
        await Conversation.filter(user_id__in=people).delete()
        if user.telegram_id is not None:  # what they sent that is not handled yet, failed or dropped: its body
            await TelegramUpdate.filter(bot_id=bot_id, lane=user.telegram_id).exclude(state=UpdateState.DONE).delete()
        await Usage.filter(user_id__in=people).delete()
        await User.filter(id__in=people).delete()
        await AuditLog.create(bot_id=bot_id, actor=None, action="delete_personal_data", target=f"user:{user.id}",
                              details={**counts, "via": via})
    return counts


def _attachment(attachment: dict[str, Any]) -> dict[str, Any]:
    """What they sent or were sent: its kind and name, and a voice's words as they were heard."""
    row = {"type": attachment.get("type"), "name": attachment.get("name") or attachment.get("file_name")}
    if attachment.get("transcript"):
        row["transcript"] = attachment["transcript"]
    return row
