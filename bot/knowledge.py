"""The knowledge sources' composition (shared by the server and the CLI, which must not import the
server's aiogram and aiohttp), and the loop that keeps them fresh."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta

from bot.settings import Settings
from services.documents import DocumentLimits
from services.embeddings import Embedder
from services.knowledge_index import KnowledgeIndex
from services.knowledge_sources import KnowledgeSources, SourcePolicy
from services.web_sources import FetchPolicy

log = logging.getLogger(__name__)


def knowledge_sources(settings: Settings, embedder: Embedder, index: KnowledgeIndex,
                      wake: Callable[[], None]) -> KnowledgeSources:
    policy = SourcePolicy(
        document_limits=DocumentLimits(max_bytes=settings.knowledge_max_file_mb * 1024 * 1024),
        fetch=FetchPolicy(), page_limit=settings.knowledge_page_limit,
        max_page_limit=max(1000, settings.knowledge_page_limit),
        resync_every=timedelta(hours=settings.knowledge_resync_hours),
        staff_may_fetch_private=settings.staff_may_fetch_private)
    return KnowledgeSources(embedder, index, policy, wake)


SYNC_CHECK_EVERY = 60.0


async def keep_knowledge_fresh(sources: KnowledgeSources) -> None:
    """At start, embed what the current model has not; then queue web sources' syncs as they fall due."""
    try:
        await sources.queue_stale_embeddings()
    except Exception:
        log.exception("knowledge: queueing embeddings failed")
    while True:
        try:
            await sources.queue_due_syncs()
        except Exception:
            log.exception("knowledge: queueing due syncs failed")
        await asyncio.sleep(SYNC_CHECK_EVERY)
