"""The outbound sender: the only path to the Bot API.

aiogram has no outgoing rate limiter and never retries a 429, so every request passes through
this session middleware. It paces sends to Telegram's limits (per private chat, per group, per
bot), waits out `retry_after`, and retries server and network errors with backoff.

By concern: priorities (who goes first), pacing (one process's budget), redis_pacing (the
budget shared by every instance), middleware (the session middleware), chat_sender (the domain's
Messenger over aiogram).
"""

from bot.sending.chat_sender import BOT_DEFAULTS, TelegramChatSender, topic_icon_ids
from bot.sending.middleware import PACED_METHODS, CallObserver, SenderMiddleware
from bot.sending.pacing import DRAFTS, Budget, Limits, Pacer, acquire
from bot.sending.priorities import YIELD, WaitingSends, send_priority
from bot.sending.redis_pacing import RedisPacer

__all__ = [
    "BOT_DEFAULTS",
    "DRAFTS",
    "PACED_METHODS",
    "YIELD",
    "Budget",
    "CallObserver",
    "Limits",
    "Pacer",
    "RedisPacer",
    "SenderMiddleware",
    "TelegramChatSender",
    "WaitingSends",
    "acquire",
    "send_priority",
    "topic_icon_ids",
]
