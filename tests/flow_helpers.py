"""The conversation flow as the composition root builds it, for tests that call services directly."""

from __future__ import annotations

from services.answering import preview_html, without_marks
from services.channels import Channels, TelegramChannel, WidgetChannel
from services.events import LocalBus
from services.flow import ConversationEvents, ConversationFlow
from services.generation import Generations
from services.i18n import Translate
from services.inbox import InboxFeed
from services.limits import MemoryRateLimiter
from services.listeners import subscribe_listeners
from services.ports import DraftBudget, Messenger
from services.staff import WorkingHoursSource
from services.widget import WidgetLive


def english(locale: str, text: str) -> str:
    return text


class NoBots:
    """services.ports.Messengers while no bot is served (Telegram off): Telegram's jobs wait."""

    def of(self, bot_id: int) -> Messenger | None:
        return None

    def budget_of(self, bot_id: int) -> DraftBudget | None:
        return None


def make_channels(bus: LocalBus | None = None) -> Channels:
    """Telegram off (its jobs wait), and the widget over an in-process bus."""
    return Channels(TelegramChannel(NoBots(), Generations(), 0.6, preview_html),
                    WidgetChannel(WidgetLive(bus or LocalBus()), 0.15, without_marks))


def make_flow(channels: Channels | None = None, translate: Translate = english,
              hours: WorkingHoursSource | None = None, bus: LocalBus | None = None) -> ConversationFlow:
    """A flow with every listener subscribed (the audit log, the inbox feed, the widget), none waking an outbox."""
    bus = bus or LocalBus()
    events = ConversationEvents()
    subscribe_listeners(events, wake=lambda: None, feed=InboxFeed(bus), channels=channels or make_channels(bus))
    return ConversationFlow(events, limiter=MemoryRateLimiter(100, 100.0), default_locale="en", translate=translate,
                            hours=hours or WorkingHoursSource("", "UTC"))
