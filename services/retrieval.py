"""Retrieval: the passages of a bot's knowledge that answer a question, by meaning and by words.

Candidates come from the vector index (services.knowledge_index: the nearest by the cosine of their
embeddings, which finds a reworded or translated question) and from full-text search over Q&A items
and chunks (FTS5 / tsvector, which finds names, numbers and rare words). Each candidate is scored by
- its cosine with the question,
- less a part of its cosine with the bot's average passage: a passage like all the others is near
  every question (a "hub") and otherwise comes first for questions it does not answer;
- plus a small bonus for the question's words it holds (word beginnings, so Russian and Uzbek endings
  do not matter), and one for the pieces of the question's words it holds (their character
  4-grams, scored as BM25 would words: a typo, an inflected or run-together Russian or Uzbek word
  still shares most of its pieces). Each word and piece is weighed by how rare it is among the
  candidates, which is all these bonuses look at: they cost the same at 100,000 chunks as at 40 items.
The weights were tuned on half of bench/data/knowledge_eval.json's questions and checked on the other
half (docs/BENCHMARKS.md); this fusion beat reciprocal-rank fusion of the rankings in every language.
Without vectors (no embedder, or a source or model not embedded yet) candidates are ranked by their
words alone.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from tortoise import connections

from models import KnowledgeChunk, KnowledgeItem
from services import knowledge, tokens
from services.knowledge_index import KnowledgeIndex, VectorHit

Kind = Literal["item", "chunk"]
Key = tuple[Kind, int]


@dataclass(frozen=True)
class Scoring:
    """How candidates are found and ranked."""

    words_weight: float = 0.03  # the bonus for holding all of the question's (rare) words
    pieces_weight: float = 0.1  # the bonus for holding the pieces of its words as often as BM25 can reward
    typical_weight: float = 0.5  # the penalty per unit of cosine with the bot's average passage
    candidates: int = 30  # taken from the vectors, and from each full-text search


@dataclass(frozen=True)
class Passage:
    kind: Kind
    id: int
    title: str  # an item's question; a chunk's document or page title
    text: str  # an item's answer; a chunk's text
    heading: str = ""  # the chunk's heading path
    url: str = ""  # the web page a chunk came from
    page_number: int | None = None  # the PDF page a chunk came from
    source_id: int | None = None
    tags: str = ""  # an item's tags
    score: float = 0.0  # cosine plus the words' bonus: larger is better
    similarity: float | None = None  # the cosine with the question, when the vectors found it
    item: KnowledgeItem | None = None

    @property
    def label(self) -> str:
        """How the AI and staff see where it came from."""
        if self.kind == "item":
            return f"FAQ: {self.title}"
        place = f", p. {self.page_number}" if self.page_number else ""
        heading = f" › {self.heading}" if self.heading else ""
        return f"{self.title}{place}{heading}"


async def retrieve(bot_id: int, question: str, *, index: KnowledgeIndex | None, limit: int = 6,
                   scoring: Scoring = Scoring(), items_by_words: Sequence[knowledge.KnowledgeHit] | None = None,
                   ) -> list[Passage]:
    """The best passages for `question`, best first. `items_by_words`: knowledge.search's hits for the same
    question with at least `scoring.candidates` as its limit, when the caller has them already."""
    vectors = await index.vectors(bot_id) if index is not None else None
    by_meaning = vectors is not None and len(vectors) > 0
    # The question is embedded while the full-text queries run (another core, or the database's, works
    # meanwhile): it is the longest step.
    embedding = asyncio.ensure_future(index.embed(question)) if index is not None and by_meaning else None
    try:
        item_hits = list(items_by_words[:scoring.candidates]) if items_by_words is not None else \
            await knowledge.search(bot_id, question, limit=scoring.candidates)
        chunk_ids = await search_chunks(bot_id, question, limit=scoring.candidates, every=by_meaning)
        query = await embedding if embedding is not None else None
    finally:
        if embedding is not None and not embedding.done():
            embedding.cancel()
    if by_meaning and query is None:  # the embedder failed: words are all there is, any of them will do
        chunk_ids = await search_chunks(bot_id, question, limit=scoring.candidates)
    by_words = _interleave([("item", hit.item.id) for hit in item_hits], [("chunk", cid) for cid in chunk_ids])
    vector_hits = vectors.search(query, scoring.candidates, also=by_words, typical_weight=scoring.typical_weight) \
        if vectors and query is not None else []
    keys = list(dict.fromkeys([(hit.kind, hit.id) for hit in vector_hits] + by_words))
    passages = await _passages(keys, {hit.item.id: hit.item for hit in item_hits})
    if not vector_hits:
        return passages[:limit]  # in the full-text ranking's order
    return _ranked(question, passages, vector_hits, scoring)[:limit]


def _ranked(question: str, passages: list[Passage], vector_hits: Sequence[VectorHit],
            scoring: Scoring) -> list[Passage]:
    similarity = {(hit.kind, hit.id): hit.score for hit in vector_hits}
    meaning = {(hit.kind, hit.id): hit.score - scoring.typical_weight * hit.typical for hit in vector_hits}
    floor = min(meaning.values())  # a passage without a vector yet (not embedded) ranks by its words
    asked = _words(question)
    texts = [_words(f"{passage.title} {passage.heading} {passage.tags} {passage.text}") for passage in passages]
    words = _word_match(asked, texts)
    pieces = _piece_match(asked, texts) if scoring.pieces_weight else [0.0] * len(texts)
    scored = [Passage(**{**passage.__dict__, "similarity": similarity.get((passage.kind, passage.id)),
                         "score": meaning.get((passage.kind, passage.id), floor) + scoring.words_weight * word_share
                         + scoring.pieces_weight * piece_share})
              for passage, word_share, piece_share in zip(passages, words, pieces, strict=True)]
    return sorted(scored, key=lambda passage: -passage.score)


_APOSTROPHES = re.compile(r"(?<=\w)[ʻʼ‘’'`´](?=\w)")
_WORD = re.compile(r"\w+")
STEM = 5  # a word's first letters stand for the word, whatever its ending


def _words(text: str) -> list[str]:
    """The text's words, lowercase, an Uzbek word's apostrophe dropped (customers type any of several)."""
    return _WORD.findall(_APOSTROPHES.sub("", text.lower()))


def _stems(words: Sequence[str], *, content_only: bool = False) -> set[str]:
    return {word[:STEM] for word in words if not (content_only and word in knowledge.STOPWORDS)}


def shared_words(text: str, other: str) -> float:
    """The share of `text`'s content words (their beginnings) that `other` has too: 0..1."""
    words = _stems(_words(text), content_only=True)
    return len(words & _stems(_words(other))) / len(words) if words else 0.0


def _word_match(question: Sequence[str], texts: Sequence[Sequence[str]]) -> list[float]:
    """For each text (its words), the share of the question's words it holds, each word weighed by its
    rarity among these texts (a word every text has tells nothing): 0..1."""
    asked = _stems(question)
    held = [asked & _stems(text) for text in texts]
    counts: dict[str, int] = {}
    for stems in held:
        for stem in stems:
            counts[stem] = counts.get(stem, 0) + 1
    weight = {stem: math.log(1 + len(texts) / (1 + counts.get(stem, 0))) for stem in asked}
    total = sum(weight.values()) or 1.0
    return [sum(weight[stem] for stem in stems) / total for stems in held]


PIECE = 4  # the length of the pieces a word is cut into, its edges marked by spaces (3-5 did no better)
_K1, _B = 1.2, 0.75  # BM25's usual saturation and length normalisation


def _pieces(question: Sequence[str]) -> Counter[str]:
    """The character 4-grams of the question's content words: " доставку " gives " дос", "дост", ..."""
    found: Counter[str] = Counter()
    for word in question:
        if word not in knowledge.STOPWORDS:
            padded = f" {word} "
            found.update(padded[start:start + PIECE] for start in range(max(1, len(padded) - PIECE + 1)))
    return found


def _piece_match(question: Sequence[str], texts: Sequence[Sequence[str]]) -> list[float]:
    """For each text (its words), BM25 over the pieces of the question's words (rarer pieces among these
    texts weigh more), as a share of the most a text could score: 0..1.

    A text is read as its words between single spaces, so each piece is counted by `str.count`, in C:
    some 3,000 counts for 60 candidates of 160 words, a few milliseconds."""
    asked = _pieces(question)
    if not asked or not texts:
        return [0.0] * len(texts)
    spaced = [f" {' '.join(text)} " for text in texts]
    counts = np.array([[text.count(piece) for piece in asked] for text in spaced], np.float32)
    lengths = np.array([len(text) for text in spaced], np.float32)
    held = (counts > 0).sum(axis=0)
    rarity = np.log(1 + (len(texts) - held + 0.5) / (held + 0.5))
    weight = np.array(list(asked.values()), np.float32) * rarity
    saturated = counts * (_K1 + 1) / (counts + _K1 * (1 - _B + _B * lengths[:, None] / lengths.mean()))
    best = (_K1 + 1) * float(weight.sum()) or 1.0
    return [float(score) / best for score in saturated @ weight]


def _interleave(first: Sequence[Key], second: Sequence[Key]) -> list[Key]:
    """Two full-text rankings (items, chunks) as one: their scores are not comparable, their ranks are."""
    merged: list[Key] = []
    for pair in zip(first, second, strict=False):
        merged.extend(pair)
    longer = first if len(first) > len(second) else second
    merged.extend(longer[min(len(first), len(second)):])
    return merged


async def _passages(keys: Sequence[Key], items: dict[int, KnowledgeItem]) -> list[Passage]:
    """The candidates' rows, in the order of `keys` (a switched-off item or source is left out)."""
    missing_items = [key_id for kind, key_id in keys if kind == "item" and key_id not in items]
    if missing_items:
        items.update({item.id: item for item in await KnowledgeItem.filter(id__in=missing_items, enabled=True)})
    chunk_ids = [key_id for kind, key_id in keys if kind == "chunk"]
    chunks = {chunk.id: chunk for chunk in await KnowledgeChunk.filter(
        id__in=chunk_ids, source__enabled=True)} if chunk_ids else {}
    passages: list[Passage] = []
    for kind, key_id in keys:
        if kind == "item" and (item := items.get(key_id)) is not None and item.enabled:
            passages.append(Passage("item", item.id, item.question, item.answer, tags=item.tags, item=item))
        elif kind == "chunk" and (chunk := chunks.get(key_id)) is not None:
            passages.append(Passage("chunk", chunk.id, chunk.title, chunk.text, chunk.heading, chunk.url,
                                    chunk.page_number, chunk.source_id))
    return passages


# A question's most telling words: the chunks' full text looks for these alone. Any of all the
# question's words matched a third of 100,000 chunks and took 125-220 ms to rank (docs/BENCHMARKS.md).
CHUNK_WORDS = 3


async def search_chunks(bot_id: int, text: str, limit: int = 30, *, every: bool = False) -> list[int]:
    """Chunks of enabled sources holding the question's most telling words, best first (bm25 / ts_rank).

    The longest words stand for the most telling (names, places, products); function words are left
    out. With `every` (the vectors find what is meant) a chunk must hold all of them, which keeps the
    search cheap however many chunks there are; without vectors, any of them will do.
    """
    groups = sorted(knowledge.query_terms(text), key=lambda group: -len(group[0].text))[:CHUNK_WORDS]
    if not groups:
        return []
    connection = connections.get("default")
    if connection.capabilities.dialect == "postgres":
        rows = await connection.execute_query_dict(
            "SELECT c.id FROM knowledge_chunk c JOIN knowledge_source s ON s.id = c.source_id, "
            "to_tsquery('simple', $1) query WHERE c.bot_id = $2 AND s.enabled AND c.search @@ query "
            "ORDER BY ts_rank(c.search, query) DESC, c.id LIMIT $3",
            [knowledge.tsquery(groups, every=every), bot_id, limit])
    else:
        # bm25 is smaller for better matches; headings weigh most, then titles, then the text.
        rows = await connection.execute_query_dict(
            "SELECT c.id AS id FROM knowledge_chunk_fts JOIN knowledge_chunk c ON c.id = knowledge_chunk_fts.rowid "
            "JOIN knowledge_source s ON s.id = c.source_id WHERE knowledge_chunk_fts MATCH ? AND c.bot_id = ? "
            "AND s.enabled = 1 ORDER BY bm25(knowledge_chunk_fts, 2.0, 3.0, 1.0), c.id LIMIT ?",
            [knowledge.fts5_query(groups, every=every), bot_id, limit])
    return [int(row["id"]) for row in rows]


def within_budget(passages: Sequence[Passage], budget_tokens: int) -> list[Passage]:
    """The best passages whose text fits `budget_tokens`, in their order (the best is always kept)."""
    kept: list[Passage] = []
    for passage in passages:
        cost = tokens.estimate(f"{passage.label}\n{passage.text}")
        if kept and cost > budget_tokens:
            break
        kept.append(passage)
        budget_tokens -= cost
    return kept
