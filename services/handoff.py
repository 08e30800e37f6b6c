"""Handing a conversation to people, and telling the customer when to expect one."""

from __future__ import annotations

from datetime import UTC, datetime

from tortoise.transactions import in_transaction

from models import Bot, Conversation, ConversationMode, ConversationStatus, HandoffReason, User
from services.bot_settings import offline_text
from services.conversations import announce_to_managers, open_conversation
from services.i18n import N_, Translate
from services.schedule import WorkingHours
from services.staff import anyone_online

LEADS = {
    HandoffReason.ASKED_FOR_PERSON: N_("Sure! I've asked a person to join."),
    HandoffReason.MANAGER_TOOK_OVER: N_("A person from our team has joined the conversation."),
}
LEAD_DEFAULT = N_("I can't answer this myself right now, so I've passed your conversation to a person.")
SOON = N_("They'll answer you right here, usually within a few minutes.")
WHEN_FREE = N_("They'll answer you right here as soon as someone is free.")
# No manager chat (Telegram off, or /setup not done yet): staff see the conversation in the app's inbox only.
IN_THE_INBOX = N_("It's waiting in our team's inbox, and someone will answer you right here.")
# A later message while the conversation still waits for its first person, with no manager chat.
STILL_WAITING = N_("Thanks, I've added this to your conversation in our team's inbox. Someone will answer you "
                   "right here.")
AFTER_HOURS = N_("Our team is away right now. A person will answer you right here when we're back: {when}.")
WEEKDAYS = (N_("Monday"), N_("Tuesday"), N_("Wednesday"), N_("Thursday"), N_("Friday"), N_("Saturday"),
            N_("Sunday"))


async def hand_off(conversation_id: int, reason: HandoffReason) -> bool:
    """People answer this conversation from now on; the AI stays out until it is given back.

    The first handoff opens the conversation's place in the manager chat (a topic with its header
    card); a later one only updates the topic's state. Returns False when people had it already.
    """
    async with in_transaction():
        # Locked (PostgreSQL): of two asks at once, one hands it over and the other finds it handed.
        conversation = await Conversation.select_for_update().get(id=conversation_id)
        if conversation.mode == ConversationMode.HUMAN and conversation.status != ConversationStatus.CLOSED:
            return False
        await give_to_people(conversation, reason)
    return True


async def give_to_people(conversation: Conversation, reason: HandoffReason | None, *,
                         assignee: User | None = None) -> None:
    """People have the conversation now: waiting for one, or assigned to `assignee`.

    Call inside the transaction that decided it. The first time opens the conversation's place in
    the manager chat; a later time updates its state there.
    """
    first = conversation.handed_off_at is None
    conversation.mode = ConversationMode.HUMAN
    conversation.status = ConversationStatus.ASSIGNED if assignee else ConversationStatus.WAITING
    conversation.assignee = assignee
    if reason is not None:
        conversation.handoff_reason = reason.value
    conversation.handed_off_at = conversation.handed_off_at or datetime.now(UTC)
    await conversation.save(update_fields=["mode", "status", "assignee_id", "handoff_reason", "handed_off_at"])
    await announce_to_managers(conversation, first=first)


async def request_person(user: User, reason: HandoffReason = HandoffReason.ASKED_FOR_PERSON) -> Conversation:
    return (await person_requested(user, reason))[0]


async def person_requested(user: User, reason: HandoffReason = HandoffReason.ASKED_FOR_PERSON,
                           ) -> tuple[Conversation, bool]:
    """The customer's conversation, handed to people; False when people had it already (asked again)."""
    conversation = await open_conversation(user)
    return conversation, await hand_off(conversation.id, reason)


async def expectation(bot: Bot, hours: WorkingHours, translate: Translate, locale: str,
                      now: datetime | None = None) -> str:
    """When a person will answer, in the customer's language: soon, when free, or after opening."""
    moment = now or datetime.now(UTC)
    opening = hours.next_opening(moment)
    if opening is not None:
        weekday = translate(locale, WEEKDAYS[opening.weekday()])
        zone = "" if str(hours.zone) == "UTC" else f" ({hours.zone})"
        when = f"{weekday} {opening:%H:%M}{zone}"
        own = offline_text(bot, locale)  # the admins' words, where `{when}` may stand for the time
        return own.replace("{when}", when) if own else translate(locale, AFTER_HOURS).format(when=when)
    if bot.manager_chat_id is None:  # nobody is told in Telegram: say where a person will see it
        return translate(locale, IN_THE_INBOX)
    return translate(locale, SOON if await anyone_online(bot.id) else WHEN_FREE)


async def handoff_notice(bot: Bot, hours: WorkingHours, translate: Translate, locale: str,
                         reason: HandoffReason) -> str:
    lead = translate(locale, LEADS.get(reason, LEAD_DEFAULT))
    return f"{lead} {await expectation(bot, hours, translate, locale)}"
