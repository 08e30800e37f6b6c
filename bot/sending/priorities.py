"""Which send gets a short budget first: first words, then answers, then draft updates."""

from __future__ import annotations

import contextvars

from services.ports import SendPriority

# How long a send waits while a more urgent one waits for the budget: about one message's turn.
YIELD = 0.05


class WaitingSends:
    """How many sends of this process wait for the budget, by priority: a send gives way to any more
    urgent one waiting, so a short budget goes to first words, then answers, then draft updates."""

    def __init__(self) -> None:
        self._waiting = [0] * len(SendPriority)

    def yields(self, priority: SendPriority) -> bool:
        return any(self._waiting[:priority])

    def start(self, priority: SendPriority) -> None:
        self._waiting[priority] += 1

    def stop(self, priority: SendPriority) -> None:
        self._waiting[priority] -= 1


# How urgent the send being made in this task is (TelegramChatSender sets it around a send).
send_priority: contextvars.ContextVar[SendPriority] = contextvars.ContextVar(
    "send_priority", default=SendPriority.FIRST_WORDS)
