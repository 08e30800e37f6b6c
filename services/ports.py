"""What the domain needs from the outside world, as protocols the composition root fills in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


class RecipientBlocked(Exception):
    """The person blocked the bot (or never started it): nothing more can be sent to them."""


@dataclass(frozen=True)
class Button:
    text: str
    callback_data: str = ""
    url: str = ""


@dataclass(frozen=True)
class OutgoingText:
    html: str
    buttons: list[list[Button]] = field(default_factory=list)


class ChatSender(Protocol):
    """Sends to a customer's chat. Implementations pace, retry and raise RecipientBlocked."""

    async def send_text(self, chat_id: int, message: OutgoingText) -> int:
        """Send one message (at most 4096 visible characters); return its message id."""
        ...

    async def send_draft(self, chat_id: int, draft_id: int, html: str) -> None:
        """Show or update a streamed preview of an answer being written, with a stop button."""
        ...
