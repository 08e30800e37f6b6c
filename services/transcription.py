"""Customers' voice: voice messages, audio and video notes turned into text by any OpenAI-compatible
`/audio/transcriptions` endpoint (the official client's `audio.transcriptions.create`).

The answer job asks for a transcript before it answers; the transcript is stored with the message (in
its attachment, `transcript`) and answered like text. Without a provider (`Transcriber` None) the voice
goes to people.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

# openai is imported where the client is made and used: the helpers below run in every message's bookkeeping
# and in the CLI, which need not load openai's types (most of a second on a small server).
if TYPE_CHECKING:
    from openai import AsyncOpenAI

log = logging.getLogger(__name__)

# What a customer sends that has words to hear, and the file name the endpoint reads its format from.
SPOKEN = {"voice": "voice.ogg", "audio": "audio.mp3", "video_note": "video_note.mp4"}
# Telegram's Bot API serves files of at most 20 MB.
TELEGRAM_MAX_BYTES = 20 * 1024 * 1024


class TranscriptionFailed(Exception):
    """The provider did not transcribe (down, refused, unknown model)."""


@dataclass(frozen=True)
class Transcript:
    text: str
    model: str


def spoken(attachments: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The message's voice, audio or video note, if it has one."""
    return next((a for a in attachments if a.get("type") in SPOKEN), None)


def said(text: str, attachments: list[dict[str, Any]]) -> str:
    """A message's words: its text, with its voice's transcript when it has one."""
    voice = spoken(attachments)
    heard = str(voice.get("transcript") or "") if voice is not None else ""
    return f"{text}\n\n{heard}".strip() if heard else text


def seconds_of(voice: dict[str, Any]) -> int:
    """How long the voice is, as its channel said (Telegram does); 0 when it did not say."""
    try:
        return max(0, int(voice.get("duration") or 0))
    except (TypeError, ValueError):
        return 0


class Transcriber:
    def __init__(self, client: AsyncOpenAI, model: str, max_bytes: int = TELEGRAM_MAX_BYTES, *,
                 price_per_minute: float = 0.0) -> None:
        self.client = client
        self.model = model
        self.max_bytes = max_bytes
        self.price_per_minute = price_per_minute  # dollars a minute of audio (TRANSCRIBE_PRICE_PER_MINUTE)

    async def close(self) -> None:
        await self.client.close()

    def cost(self, seconds: int) -> float:
        """What transcribing `seconds` of audio costs, billed by the second as whisper-1 is."""
        return self.price_per_minute * seconds / 60

    async def transcribe(self, content: bytes, kind: str, language: str | None = None) -> Transcript:
        """`language`: the customer's (ISO 639-1), a hint that helps short notes; None lets the model guess."""
        from openai import APIError

        try:
            if language:
                result = await self.client.audio.transcriptions.create(
                    model=self.model, file=(SPOKEN.get(kind, "audio.ogg"), content), language=language)
            else:
                result = await self.client.audio.transcriptions.create(
                    model=self.model, file=(SPOKEN.get(kind, "audio.ogg"), content))
        except APIError as error:
            raise TranscriptionFailed(str(error)) from error
        return Transcript(result.text.strip(), self.model)


def create_transcriber(base_url: str, api_key: str, model: str, *, timeout: float,
                       price_per_minute: float = 0.0) -> Transcriber | None:
    """None without an address: voice then goes to people."""
    if not base_url:
        return None
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=base_url, api_key=api_key or "not-needed", timeout=timeout, max_retries=1)
    return Transcriber(client, model or "whisper-1", price_per_minute=price_per_minute)
