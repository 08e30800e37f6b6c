"""Handing a conversation to people. The manager desk builds the human side on top of this."""

from __future__ import annotations

from models import Conversation, ConversationMode, ConversationStatus, User
from services.conversations import open_conversation
from services.i18n import N_

ASKED_FOR_PERSON = N_("Sure! I've asked a person to join. They'll answer you right here.")


async def hand_off(conversation_id: int, reason: str) -> None:
    """People answer this conversation from now on; the AI stays out until it is given back."""
    await Conversation.filter(id=conversation_id).update(
        mode=ConversationMode.HUMAN, status=ConversationStatus.WAITING, handoff_reason=reason)


async def request_person(user: User, reason: str = "asked_for_person") -> Conversation:
    conversation = await open_conversation(user)
    await hand_off(conversation.id, reason)
    return conversation
