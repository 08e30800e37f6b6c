"""The vector index: every bot's embedded Q&A items and chunks, in memory, searched exactly.

Why in process and exact: a bot's knowledge is at most some hundred thousand chunks, and a product of
a (n, 384) float32 matrix with one query vector takes a few milliseconds for n = 100k on one core
(docs/BENCHMARKS.md), with no approximate index to build or tune, the same on SQLite and PostgreSQL
(whose Debian packages here have no pgvector). The database holds the vectors; each instance loads a
bot's on first use, by groups (the Q&A items, and each source's chunks), and reloads a group when an
event on the bus says it changed, so a new source is used by every instance within a moment. A check
every `reconcile_every` seconds catches an event that was lost (the bus is best effort).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from tortoise import connections

from models import KnowledgeChunk, KnowledgeItem, KnowledgeSource
from services.embeddings import Embedder, EmbeddingError, Vectors, from_bytes
from services.events import EventBus, Payload

log = logging.getLogger(__name__)

CHANNEL = "knowledge"
ITEMS = 0  # the group of a bot's Q&A items; a source's group is its id (ids start at 1)

Kind = Literal["item", "chunk"]


@dataclass(frozen=True)
class VectorHit:
    kind: Kind
    id: int
    score: float  # cosine similarity, -1..1
    typical: float = 0.0  # the passage's cosine with the bot's average vector: how much it is like all the rest


@dataclass
class _Group:
    ids: npt.NDArray[np.int64]
    vectors: Vectors
    signature: tuple[int, int]  # (rows, largest id) when loaded: what the reconcile compares


def _empty_group() -> _Group:
    return _Group(np.zeros(0, np.int64), np.zeros((0, 0), np.float32), (0, 0))


class BotVectors:
    """One bot's vectors as one matrix, its rows tagged with their group (the items, or a source).

    One matrix, not one per group plus their stack: at 100,000 chunks that is 147 MiB instead of
    twice as much. Replacing a group copies the rest once, when it changes, never per search.

    Each row's cosine with the bot's average vector (`typical`, 4 bytes a row) is kept beside it: a
    passage near the average is near every question (a "hub"), and the search can hold that against
    it (services.retrieval.Scoring.typical_weight).
    """

    def __init__(self) -> None:
        self.matrix: Vectors = np.zeros((0, 0), np.float32)
        self.ids: npt.NDArray[np.int64] = np.zeros(0, np.int64)
        self.group_of: npt.NDArray[np.int64] = np.zeros(0, np.int64)
        self.typical: Vectors = np.zeros(0, np.float32)
        self.signatures: dict[int, tuple[int, int]] = {}
        self._rows: dict[tuple[Kind, int], int] | None = None

    def _measure(self) -> None:
        """Each row's likeness to the average row, after the matrix changed (~20 ms at 100,000 rows)."""
        self.typical = self.matrix @ self.matrix.mean(axis=0) if len(self.matrix) else np.zeros(0, np.float32)

    def put(self, group: int, loaded: _Group) -> None:
        keep = self.group_of != group
        parts = [self.matrix[keep]] if len(self.ids) else []
        if len(loaded.ids):
            parts.append(loaded.vectors)
            self.signatures[group] = loaded.signature
        else:
            self.signatures.pop(group, None)
        self.matrix = np.vstack(parts) if any(len(part) for part in parts) else np.zeros((0, 0), np.float32)
        self.ids = np.concatenate([self.ids[keep], loaded.ids])
        self.group_of = np.concatenate([self.group_of[keep], np.full(len(loaded.ids), group, np.int64)])
        self._measure()
        self._rows = None

    def fill(self, groups: dict[int, _Group]) -> None:
        """All groups at once: one stack, not one copy of the growing matrix per group."""
        loaded = {key: group for key, group in groups.items() if len(group.ids)}
        self.signatures = {key: group.signature for key, group in loaded.items()}
        if loaded:
            self.matrix = np.vstack([group.vectors for group in loaded.values()])
            self.ids = np.concatenate([group.ids for group in loaded.values()])
            self.group_of = np.concatenate([np.full(len(group.ids), key, np.int64) for key, group in loaded.items()])
        self._measure()
        self._rows = None

    def drop(self, group: int) -> None:
        if group in self.signatures:
            self.put(group, _empty_group())

    def __len__(self) -> int:
        return len(self.ids)

    def _kind(self, row: int) -> Kind:
        return "item" if self.group_of[row] == ITEMS else "chunk"

    def _row_of(self) -> dict[tuple[Kind, int], int]:
        if self._rows is None:
            self._rows = {(self._kind(row), int(row_id)): row for row, row_id in enumerate(self.ids)}
        return self._rows

    def search(self, query: Vectors, limit: int, also: Sequence[tuple[Kind, int]] = (),
               typical_weight: float = 0.0) -> list[VectorHit]:
        """The `limit` nearest, best first, then those of `also` that have a vector (found by words).

        Nearest by the cosine less `typical_weight` × the row's likeness to the average row."""
        if not len(self.ids) or self.matrix.shape[1] != query.shape[0]:
            return []
        cosines = self.matrix @ query
        scores = cosines - typical_weight * self.typical if typical_weight else cosines
        top = np.argpartition(-scores, limit - 1)[:limit] if len(scores) > limit else np.arange(len(scores))
        top = top[np.argsort(-scores[top])]
        if also:
            seen = {(self._kind(i), int(self.ids[i])) for i in top}
            rows = self._row_of()
            top = np.concatenate([top, np.array([rows[key] for key in also if key not in seen and key in rows],
                                                np.int64)])
        return [VectorHit(self._kind(i), int(self.ids[i]), float(cosines[i]), float(self.typical[i])) for i in top]


class KnowledgeIndex:
    """The vectors of one embedder, per bot; `search` embeds the question and ranks by cosine."""

    def __init__(self, embedder: Embedder, bus: EventBus | None = None, reconcile_every: float = 30.0,
                 max_wait: float = 0.5) -> None:
        self.embedder = embedder
        self.bus = bus
        # At rush hour questions queue for the embedder (one core embeds ~30 a second); one that would
        # wait longer than this is found by its words alone, rather than the customer waiting.
        self.max_wait = max_wait
        self.words_only_when_busy = 0  # questions found by words alone because the embedder was busy
        self._said_busy = 0.0
        self.reconcile_every = reconcile_every
        self._bots: dict[int, BotVectors] = {}
        self._checked: dict[int, float] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._checks: set[asyncio.Task[None]] = set()
        if bus is not None:
            bus.subscribe(CHANNEL, self._on_event)

    @property
    def model(self) -> str:
        return self.embedder.name

    # --- searching -------------------------------------------------------------------------------

    async def search(self, bot_id: int, question: str, limit: int = 20,
                     also: Sequence[tuple[Kind, int]] = ()) -> list[VectorHit]:
        """The nearest items and chunks by meaning (and the similarity of those in `also`, found by
        their words); [] when the question cannot be embedded now."""
        vectors = await self.vectors(bot_id)
        if not len(vectors):
            return []
        query = await self.embed(question)
        return vectors.search(query, limit, also) if query is not None else []

    async def embed(self, question: str) -> Vectors | None:
        """The question's vector; None when the embedder cannot make one now (words still find knowledge)."""
        if self.embedder.backlog() > self.max_wait:
            self._busy()
            return None
        try:
            vectors: Vectors = await self.embedder.queries([question])
        except EmbeddingError as error:
            log.warning("knowledge search by words only: %s", error)
            return None
        vector: Vectors = vectors[0]
        return vector

    def _busy(self) -> None:
        self.words_only_when_busy += 1
        now = time.monotonic()
        if now - self._said_busy > 60:
            self._said_busy = now
            log.warning("knowledge: the embedder is %.1fs behind; questions are found by their words alone "
                        "until it catches up (more cores: EMBEDDING_THREADS, or EMBEDDING_BASE_URL)",
                        self.embedder.backlog())

    async def vectors(self, bot_id: int) -> BotVectors:
        """The bot's loaded vectors, loaded now when this instance has not yet, checked when due."""
        vectors = self._bots.get(bot_id)
        if vectors is None:
            async with self._lock(bot_id):
                vectors = self._bots.get(bot_id)
                if vectors is None:
                    vectors = await self._load_bot(bot_id)
                    self._bots[bot_id] = vectors
                    self._checked[bot_id] = time.monotonic()
        elif time.monotonic() - self._checked.get(bot_id, 0.0) > self.reconcile_every:
            self._checked[bot_id] = time.monotonic()
            task = asyncio.create_task(self._reconcile_quietly(bot_id))  # not in the question's time
            self._checks.add(task)
            task.add_done_callback(self._checks.discard)
        return vectors

    async def _reconcile_quietly(self, bot_id: int) -> None:
        try:
            await self.reconcile(bot_id)
        except Exception:
            log.exception("knowledge index: checking bot %s against the database failed", bot_id)

    def _lock(self, bot_id: int) -> asyncio.Lock:
        return self._locks.setdefault(bot_id, asyncio.Lock())

    # --- keeping fresh ---------------------------------------------------------------------------

    async def changed(self, bot_id: int, group: int) -> None:
        """Tell every instance (this one included) that a group's vectors changed in the database."""
        if self.bus is None:
            await self.reload(bot_id, group)
        else:
            await self.bus.publish(CHANNEL, {"bot": bot_id, "group": group})

    async def _on_event(self, payload: Payload) -> None:
        await self.reload(int(payload["bot"]), int(payload["group"]))

    async def reload(self, bot_id: int, group: int) -> None:
        vectors = self._bots.get(bot_id)
        if vectors is None:
            return  # not loaded here: the first search loads everything as it is then
        async with self._lock(bot_id):
            loaded = await self._load_group(bot_id, group)
            await asyncio.to_thread(vectors.put, group, loaded)  # copies the rest of the matrix once

    async def reconcile(self, bot_id: int) -> None:
        """Reload the groups whose rows in the database differ from what is loaded (a lost event)."""
        vectors = self._bots.get(bot_id)
        if vectors is None:
            return
        stored = await self._signatures(bot_id)
        stale = {key for key, signature in stored.items() if vectors.signatures.get(key) != signature}
        gone = set(vectors.signatures) - set(stored)
        for key in gone:
            vectors.drop(key)
        for key in stale:
            await self.reload(bot_id, key)

    def forget(self, bot_id: int) -> None:
        self._bots.pop(bot_id, None)

    # --- loading ---------------------------------------------------------------------------------

    async def _load_bot(self, bot_id: int) -> BotVectors:
        groups = {ITEMS: await self._load_group(bot_id, ITEMS)}
        for source_id in await KnowledgeSource.filter(bot_id=bot_id, enabled=True).values_list("id", flat=True):
            groups[int(source_id)] = await self._load_group(bot_id, int(source_id))  # type: ignore[call-overload]
        vectors = BotVectors()
        await asyncio.to_thread(vectors.fill, groups)  # 147 MiB stacked at 100,000 chunks: not on the loop
        return vectors

    async def _load_group(self, bot_id: int, group: int) -> _Group:
        if group == ITEMS:
            rows = await KnowledgeItem.filter(bot_id=bot_id, enabled=True, embedding_model=self.model).values_list(
                "id", "embedding")
        elif await KnowledgeSource.filter(id=group, bot_id=bot_id, enabled=True).exists():
            rows = await KnowledgeChunk.filter(source_id=group, embedding_model=self.model).values_list(
                "id", "embedding")
        else:
            return _empty_group()  # deleted or switched off
        rows = [(int(row_id), bytes(blob)) for row_id, blob in rows if blob]
        if not rows:
            return _empty_group()
        ids = np.fromiter((row_id for row_id, _ in rows), np.int64, len(rows))
        matrix = np.vstack([from_bytes(blob) for _, blob in rows])
        return _Group(ids, matrix, (len(rows), int(ids.max())))

    async def _signatures(self, bot_id: int) -> dict[int, tuple[int, int]]:
        """(rows, largest id) of each group's vectors in the database, as `_load_group` would load them."""
        signatures: dict[int, tuple[int, int]] = {}
        connection = connections.get("default")
        marks = ("$1", "$2") if connection.capabilities.dialect == "postgres" else ("?", "?")
        items = await connection.execute_query_dict(
            f"SELECT COUNT(*) AS n, MAX(id) AS last FROM knowledge_item WHERE bot_id = {marks[0]} AND enabled "
            f"AND embedding_model = {marks[1]}", [bot_id, self.model])
        if items and items[0]["n"]:
            signatures[ITEMS] = (int(items[0]["n"]), int(items[0]["last"]))
        enabled = set(await KnowledgeSource.filter(bot_id=bot_id, enabled=True).values_list("id", flat=True))
        rows = await connection.execute_query_dict(
            f"SELECT source_id, COUNT(*) AS n, MAX(id) AS last FROM knowledge_chunk "
            f"WHERE bot_id = {marks[0]} AND embedding_model = {marks[1]} GROUP BY source_id", [bot_id, self.model])
        for row in rows:
            if row["source_id"] in enabled:
                signatures[int(row["source_id"])] = (int(row["n"]), int(row["last"]))
        return signatures
