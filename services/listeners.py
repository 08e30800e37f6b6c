"""What follows from each conversation event (services/flow.py), one listener per consequence.

The composition root subscribes them once (`subscribe_listeners`); tests subscribe the same ones,
so no adapter and no service decides these things itself.
"""

from __future__ import annotations

from collections.abc import Callable

from services.audit import audit
from services.channels import Channels
from services.conversations import customer_of
from services.flow import STATE_CHANGES, ConversationEvent, ConversationEvents, EventKind
from services.inbox import InboxFeed

# The events whose transaction queued jobs: the outbox on this instance starts them at once (the
# others find them within their poll interval).
QUEUES_WORK = frozenset({EventKind.CUSTOMER_WROTE, EventKind.CUSTOMER_EDITED, EventKind.TRANSCRIBED,
                         EventKind.PERSON_REQUESTED, EventKind.AI_HANDED_OFF, EventKind.MANAGER_REPLIED,
                         EventKind.NOTE_ADDED, EventKind.MANAGER_EDITED, EventKind.TAKEN, EventKind.ASSIGNED,
                         EventKind.GIVEN_BACK, EventKind.CLOSED})

# Staff actions and what the audit log calls them.
AUDITED = {EventKind.TAKEN: "take", EventKind.GIVEN_BACK: "return_to_ai", EventKind.CLOSED: "close",
           EventKind.BANNED: "ban", EventKind.UNBANNED: "unban", EventKind.NOTE_ADDED: "note",
           EventKind.MANAGER_REPLIED: "reply", EventKind.RATED: "rate", EventKind.ASSIGNED: "assign"}


def subscribe_listeners(events: ConversationEvents, *, wake: Callable[[], None], feed: InboxFeed,
                        channels: Channels) -> None:
    events.record_with(audit_entry)

    async def wake_outbox(event: ConversationEvent) -> None:
        if event.kind in QUEUES_WORK:
            wake()

    async def tell_open_pages(event: ConversationEvent) -> None:
        if event.kind == EventKind.CUSTOMER_WROTE and event.message is not None:
            await feed.customer_wrote(event.message)  # names all the event needs: nothing is read again
        elif event.kind not in (EventKind.CUSTOMER_EDITED, EventKind.MANAGER_EDITED):
            await feed.changed(event.conversation)

    async def show_on_channel(event: ConversationEvent) -> None:
        """What a live channel shows at once; the outbox's jobs show it again if this instance dies first."""
        channel = channels.of(event.conversation)
        if event.kind in (EventKind.CUSTOMER_WROTE, EventKind.MANAGER_REPLIED) and event.message is not None:
            await channel.show_at_once(event.conversation, event.message, event.client_id)
        if event.kind in STATE_CHANGES and not event.notice_queued:  # else it follows its notice
            await channel.state_changed(event.conversation)

    events.subscribe(wake_outbox)
    events.subscribe(tell_open_pages)
    events.subscribe(show_on_channel)


async def audit_entry(event: ConversationEvent) -> None:
    """Staff actions (and a customer's rating), written in the same transaction as the change."""
    action = AUDITED.get(event.kind)
    if action is None:
        return
    conversation = event.conversation
    details = dict(event.details)
    if event.via:
        details["via"] = event.via
    if event.kind in (EventKind.BANNED, EventKind.UNBANNED):
        customer = await customer_of(conversation)
        await audit(event.bot_id, event.actor, action, str(customer.id), conversation=str(conversation.uuid), **details)
    elif event.kind == EventKind.RATED:
        await audit(event.bot_id, event.actor, action, str(conversation.id), **details)
    else:
        await audit(event.bot_id, event.actor, "close_on_ban" if event.cause == "ban" else action,
                    str(conversation.uuid), **details)
