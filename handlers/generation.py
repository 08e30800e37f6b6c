"""The customer pressed stop on an answer being streamed to them."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import MessageGenerationStopped

from services.generation import Generations


async def generation_stopped(event: MessageGenerationStopped, generations: Generations) -> None:
    await generations.stop(event.chat.id, event.draft_id)


def create_router() -> Router:
    router = Router(name=__name__)
    router.stopped_message_generation.register(generation_stopped)
    return router
