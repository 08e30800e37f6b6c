"""Knowledge at scale: retrieval p50/p99 and memory at 1k, 10k and 100k chunks (SQLite, PostgreSQL), and
indexing speed for a 300-page PDF and a 200-page website.

Retrieval. A fresh database per profile and size, migrated by Frontdesk's migrations, gets one bot
with the 39 Q&A items of bench/data/knowledge_eval.json (13 each in English, Russian and Uzbek, their
vectors made by the real model) and N chunks in sources of up to 2,000 (documents with pages and
headings, websites with pages of five chunks). The chunks' text is generated, 60–160 words, from
each language's words as the evaluation set and the shipped prompt templates use them, with a long
tail of derived words, at Zipf-like frequencies (so "the", "и", "va" are in nearly every chunk and
most words are rare, as in real text); half English, 30% Russian, 20% Uzbek. Their vectors are
random unit vectors stored as float16 under the local embedder's model name, so the index loads
them as real ones (embedding 100k passages would take hours); only the questions are embedded by
the model. The loading is not measured.

Then a process pinned to one core (`taskset -c 0` where available; on PostgreSQL its backend is
pinned to the same core) opens the database with `LocalEmbedder(threads=1)` and a `KnowledgeIndex`,
records its RSS (/proc/self/status) before and after the index loads the bot's vectors, and asks
customer-like questions (the evaluation set's reworded questions, near misses and out-of-scope
ones, each with a greeting or a closing, so every text is new and the embedder's cache never
answers) through `retrieve(bot, q, index=..., limit=8)` as the answering path calls it. Its parts
are timed inside the same calls, by wrapping what it calls: embedding the question, the vector
search (`BotVectors.search`), full text over the items (`knowledge.search`) and over the chunks
(`retrieval.search_chunks`), loading the passages; the rest is ranking (and, once in 30 s, the
index's reconcile check). Each round asks `--questions` of them; a cell is the median over the
rounds of each round's p50 or p99. The chunks' full-text query is then taken apart on other
questions: counted without its ranking, explained (PostgreSQL: EXPLAIN ANALYZE), and tried in three
variants (only the question's words in at most 10% of the chunks; only its three rarest words in at
most 1%; ranking only the first 1,000 matches). PostgreSQL's parallel query is off in these databases
(`max_parallel_workers_per_gather = 0`): its workers would run on other cores.

Indexing. `KnowledgeSources.index_now` (the operator's CLI path) on SQLite: a 300-page PDF made with
fpdf2 (chapters in the three languages, bookmarks, running header and page numbers), and a 200-page
website served by aiohttp on 127.0.0.1 (navigation, footer, related links, robots.txt, sitemap.xml).
Reading, chunking, embedding and storing are timed by wrapping the functions `index_now` calls; one
embedding thread (EMBEDDING_THREADS's default), not pinned. Then the same sample of the PDF's passages
is embedded with one thread and with two, each in a fresh process.

`bash bench/run.sh knowledge` starts a throwaway PostgreSQL and runs this.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import hashlib
import json
import os
import re
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import numpy as np
from common import DOC_PATH, ROOT, marks, write_section
from ingest import code_version, machine, scratch_database
from tortoise import connections

from bot import db
from models import Bot, KnowledgeChunk, KnowledgeItem, KnowledgePage, KnowledgeSource, SourceKind, SourceStatus
from services import knowledge, knowledge_sources, retrieval
from services.answering import PASSAGES
from services.embeddings import STORED, LocalEmbedder, Vectors
from services.knowledge_index import BotVectors, KnowledgeIndex
from services.knowledge_sources import KnowledgeSources, item_text, passage_text
from services.studio import templates
from services.web_sources import WebFetcher

SCRIPT = "knowledge_scale.py"
BEGIN_MARK, END_MARK = marks(SCRIPT)
EVAL = ROOT / "bench" / "data" / "knowledge_eval.json"
FONTS = Path("/usr/share/fonts/truetype/dejavu")
TARGET_MS = 50.0
DIM = 384
LANGUAGES = (("en", 0.5), ("ru", 0.3), ("uz", 0.2))
CHUNKS_PER_SOURCE = 2000
CHUNKS_PER_PAGE = 5  # a website's page, in the generated sources
WORD = re.compile(r"\w+(?:['ʻʼ’`]\w+)*")
TAIL = {"en": ("s", "ed", "ing", "er", "ly", "ness"),
        "ru": ("а", "у", "ой", "ом", "ами", "ов", "е", "ы", "ого", "ие", "ую"),
        "uz": ("lar", "ni", "ga", "da", "dan", "ning", "imiz", "lari", "dagi", "siz")}
SYLLABLES = ("ka", "ri", "mo", "ta", "lu", "ven", "sor", "bek", "al", "no", "zi", "pra", "dor", "mi", "sa", "kon")
VOCABULARY_SIZE = 16_000  # per language: the real words first, then derived ones
PARTS = ("retrieve", "fts_items", "fts_chunks", "embed", "vectors", "passages", "rest")
PART_NAMES = {"retrieve": "whole `retrieve()`", "embed": "embedding the question", "vectors": "vector search",
              "fts_items": "full text, items", "fts_chunks": "full text, chunks", "passages": "loading the passages",
              "rest": "the rest (ranking, the reconcile check)"}
OPENERS = {"en": ("", "hi, ", "hello! ", "excuse me, ", "quick question: ", "good morning, ", "hey, "),
           "ru": ("", "здравствуйте, ", "добрый день! ", "подскажите, ", "привет, ", "скажите пожалуйста, "),
           "uz": ("", "assalomu alaykum, ", "salom, ", "iltimos, ", "ayting-chi, ", "xayrli kun! ")}
CLOSERS = {"en": ("", "?", " please", " thanks", "??", " :)"),
           "ru": ("", "?", " пожалуйста", " спасибо", "??", " :)"),
           "uz": ("", "?", " rahmat", " iltimos", "??", " :)")}
EXPLAINED = {"en": "what time do u open in the morning", "ru": "во сколько открываетесь утром?",
             "uz": "ertalab soat nechida ochilasizlar?"}
P = ParamSpec("P")
R = TypeVar("R")


# --- text -----------------------------------------------------------------------------------------


def evaluation() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(EVAL.read_text(encoding="utf-8"))
    return data


def vocabulary(language: str) -> list[str]:
    """The language's words, most frequent first: the evaluation set's (customer service) and the shipped
    templates', then words derived from them (inflections) and made-up names, up to VOCABULARY_SIZE."""
    counts: Counter[str] = Counter()
    data = evaluation()
    for item in data["items"]:
        entry = item[language]
        for text in (entry["question"], entry["answer"], *entry["asked"]):
            counts.update({word: 3 for word in WORD.findall(text.lower())})
    for slug, draft in templates.shipped_templates().items():
        if slug.startswith(f"{language}/"):
            counts.update(WORD.findall(f"{draft.title} {draft.description} {draft.body}".lower()))
    words = [word for word, _ in counts.most_common() if not word.isdigit() and "_" not in word]
    known = set(words)
    base = len(words)
    for suffix in TAIL[language]:
        for word in words[:base]:
            if len(word) >= 4 and word[-1].isalpha() and word + suffix not in known:
                words.append(word + suffix)
                known.add(word + suffix)
    rng = np.random.default_rng(len(language))
    while len(words) < VOCABULARY_SIZE:
        name = "".join(SYLLABLES[i] for i in rng.integers(0, len(SYLLABLES), int(rng.integers(2, 5))))
        if name not in known:
            words.append(name)
            known.add(name)
    return words[:VOCABULARY_SIZE]


class Writer:
    """Sentences in one language: words drawn at Zipf-like frequencies (rank r weighs 1 / (r + 2.7))."""

    def __init__(self, language: str, rng: np.random.Generator) -> None:
        self.language = language
        self.words = np.array(vocabulary(language), dtype=object)
        weights = 1 / (np.arange(len(self.words)) + 2.7)
        self.cdf = np.cumsum(weights / weights.sum())
        self.rng = rng

    def draw(self, count: int) -> list[str]:
        picked = np.searchsorted(self.cdf, self.rng.random(count), side="right").clip(0, len(self.words) - 1)
        return [str(word) for word in self.words[picked]]

    def phrase(self, low: int, high: int) -> str:
        return " ".join(self.draw(int(self.rng.integers(low, high + 1)))).capitalize()

    def text(self, words: int) -> str:
        drawn = self.draw(words)
        sentences = []
        start = 0
        while start < len(drawn):
            length = int(self.rng.integers(5, 17))
            mark = "?" if self.rng.random() < 0.08 else "."
            sentences.append(" ".join(drawn[start:start + length]).capitalize() + mark)
            start += length
        return " ".join(sentences)


def language_of(number: int) -> str:
    """Source `number`'s language: half English, 30% Russian, 20% Uzbek."""
    return ("en", "ru", "en", "uz", "en", "ru", "en", "uz", "en", "ru")[number % 10]


def question_texts(seed: int) -> Iterator[str]:
    """Customer-like questions in the three languages, never the same text twice."""
    data = evaluation()
    rng = np.random.default_rng(seed)
    asked: dict[str, list[str]] = {language: [] for language, _ in LANGUAGES}
    for item in data["items"]:
        for language in asked:
            asked[language] += item[language]["asked"]
    for entry in data["near_misses"] + data["out_of_scope"]:
        asked[entry["lang"]].append(entry["text"])
    combos = [(opener, question, closer) for language, questions in asked.items() for question in questions
              for opener in OPENERS[language] for closer in CLOSERS[language]]
    seen: set[str] = set()
    for number in rng.permutation(len(combos)):
        opener, question, closer = combos[int(number)]
        text = opener + (question[0].lower() + question[1:] if opener else question) + closer
        if text not in seen:
            seen.add(text)
            yield text


# --- loading the knowledge ------------------------------------------------------------------------


async def embed_items(out: Path) -> None:
    """The Q&A items (13 per language) with their vectors from the real model, for every database."""
    data = evaluation()
    embedder = LocalEmbedder()
    rows = []
    try:
        for number, item in enumerate(data["items"]):
            language = ("en", "ru", "uz")[number % 3]
            entry = item[language]
            rows.append({"question": entry["question"], "answer": entry["answer"], "tags": item.get("tags", "")})
        vectors = await embedder.passages([item_text(row["question"], row["answer"], row["tags"]) for row in rows])
    finally:
        await embedder.close()
    for row, vector in zip(rows, vectors, strict=True):
        row["embedding"] = vector.astype(STORED).tobytes().hex()
    out.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")


def unit_vectors(rng: np.random.Generator, count: int) -> list[bytes]:
    vectors = rng.standard_normal((count, DIM), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return [row.tobytes() for row in vectors.astype(STORED)]


def marks_for(postgres: bool, count: int) -> str:
    return ", ".join(f"${n}" for n in range(1, count + 1)) if postgres else ", ".join("?" * count)


async def add_source(bot_id: int, number: int, size: int, writers: dict[str, Writer], rng: np.random.Generator,
                     model: str) -> None:
    """One source of `size` chunks: a document (one page row, PDF page numbers, chapters) or a website."""
    connection = connections.get("default")
    postgres = connection.capabilities.dialect == "postgres"
    writer = writers[language_of(number)]
    is_file = number % 2 == 0
    title = writer.phrase(2, 6)[:300]
    location = f"handbook-{number}.pdf" if is_file else f"https://shop{number}.example/"
    source = await KnowledgeSource.create(
        bot_id=bot_id, kind=SourceKind.FILE if is_file else SourceKind.SITE, title=title, location=location,
        status=SourceStatus.READY, chunk_count=size, progress_done=size, progress_total=size,
        last_synced_at=datetime.now(UTC))
    pages: list[tuple[str, str]] = [(location, title)] if is_file else [
        (f"{location}{'-'.join(writer.draw(2))}/{page}", writer.phrase(2, 6)[:300])
        for page in range(-(-size // CHUNKS_PER_PAGE))]
    fetched: Any = datetime.now(UTC) if postgres else datetime.now(UTC).isoformat()
    await connection.execute_many(
        "INSERT INTO knowledge_page (source_id, url, url_key, title, etag, last_modified, content_hash, fetched_at) "
        f"VALUES ({marks_for(postgres, 8)})",
        [[source.id, url, hashlib.sha256(url.encode()).hexdigest(), page_title, "", "", "", fetched]
         for url, page_title in pages])
    page_ids = {row["url_key"]: int(row["id"]) for row in await connection.execute_query_dict(
        f"SELECT id, url_key FROM knowledge_page WHERE source_id = {marks_for(postgres, 1)}", [source.id])}
    vectors = unit_vectors(rng, size)
    rows: list[list[Any]] = []
    heading = ""
    for ordinal in range(size):
        url, page_title = pages[0 if is_file else ordinal // CHUNKS_PER_PAGE]
        if is_file and (not heading or rng.random() < 0.15):
            heading = f"{writer.phrase(1, 4)} › {writer.phrase(2, 6)}"
        elif not is_file:
            heading = writer.phrase(1, 5)
        rows.append([bot_id, source.id, page_ids[hashlib.sha256(url.encode()).hexdigest()], ordinal,
                     title if is_file else page_title, heading, "" if is_file else url,
                     ordinal // 3 + 1 if is_file else None, writer.text(int(rng.integers(60, 161))),
                     vectors[ordinal], model])
    columns = ("bot_id", "source_id", "page_id", "ordinal", "title", "heading", "url", "page_number", "text",
               "embedding", "embedding_model")
    if postgres:  # COPY: the rows as Frontdesk's inserts would leave them, in a third of the time
        async with connection.acquire_connection() as raw:
            await raw.copy_records_to_table("knowledge_chunk", records=[tuple(row) for row in rows], columns=columns)
        return
    sql = f"INSERT INTO knowledge_chunk ({', '.join(columns)}) VALUES ({marks_for(postgres, len(columns))})"
    for start in range(0, len(rows), 2000):
        await connection.execute_many(sql, rows[start:start + 2000])


async def load_knowledge(url: str, chunks: int, items_file: Path, seed: int) -> dict[str, Any]:
    await db.open_database(url)
    try:
        started = time.perf_counter()
        bot = await Bot.create(telegram_id=7000000011, username="bench_knowledge")
        model = LocalEmbedder().name
        items = json.loads(items_file.read_text(encoding="utf-8"))
        await KnowledgeItem.bulk_create([
            KnowledgeItem(bot_id=bot.id, question=item["question"], answer=item["answer"], tags=item["tags"],
                          question_key=knowledge.question_key(item["question"]),
                          embedding=bytes.fromhex(item["embedding"]), embedding_model=model) for item in items])
        rng = np.random.default_rng(seed)
        writers = {language: Writer(language, rng) for language, _ in LANGUAGES}
        number = 0
        per_source = max(1, min(CHUNKS_PER_SOURCE, chunks // 10))  # ten sources at least: the languages mixed
        while number * per_source < chunks:
            await add_source(bot.id, number, min(per_source, chunks - number * per_source), writers, rng, model)
            number += 1
        connection = connections.get("default")
        if connection.capabilities.dialect == "postgres":
            await connection.execute_script("VACUUM ANALYZE")
            # One core: no parallel workers (they would run on other cores, unpinned). New sessions only.
            name = (await connection.execute_query_dict("SELECT current_database() AS name"))[0]["name"]
            await connection.execute_script(f'ALTER DATABASE "{name}" SET max_parallel_workers_per_gather = 0')
        else:
            await connection.execute_script("INSERT INTO knowledge_chunk_fts(knowledge_chunk_fts) VALUES ('optimize')")
            await connection.execute_script("INSERT INTO knowledge_fts(knowledge_fts) VALUES ('optimize')")
            await connection.execute_script("ANALYZE")
        return {"bot": bot.id, "sources": number, "chunks": await KnowledgeChunk.all().count(),
                "items": await KnowledgeItem.all().count(), "pages": await KnowledgePage.all().count(),
                "seconds": time.perf_counter() - started}
    finally:
        await db.close_database()


# --- measuring retrieval --------------------------------------------------------------------------


def array_bytes(value: object, seen: set[int] | None = None) -> int:
    """The bytes of the numpy arrays an object holds (in its attributes, dicts, lists, tuples), each once
    (a view of another array counts nothing)."""
    seen = set() if seen is None else seen
    if id(value) in seen:
        return 0
    seen.add(id(value))
    if isinstance(value, np.ndarray):
        return 0 if isinstance(value.base, np.ndarray) else int(value.nbytes)  # a view: its base counts
    if isinstance(value, dict):
        return sum(array_bytes(item, seen) for item in value.values())
    if isinstance(value, list | tuple | set):
        return sum(array_bytes(item, seen) for item in value)
    if hasattr(value, "__dict__"):
        return array_bytes(vars(value), seen)
    return 0


def proc_status(field: str) -> float:
    """A /proc/self/status memory figure, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak() -> bool:
    """Restart VmHWM (the peak RSS) from the current RSS."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


async def pin_backends() -> int:
    """Pin this database's PostgreSQL backends to the cores this process may use; how many were pinned."""
    connection = connections.get("default")
    if connection.capabilities.dialect != "postgres":
        return 0
    cores = os.sched_getaffinity(0)
    if len(cores) >= (os.cpu_count() or 1):
        return 0  # not pinned ourselves
    pinned = 0
    for row in await connection.execute_query_dict(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"):
        try:
            os.sched_setaffinity(int(row["pid"]), cores)
            pinned += 1
        except OSError:
            pass
    return pinned


async def timed(call: Awaitable[R], cpu: list[float] | None = None) -> tuple[float, R]:
    """The call's wall-clock seconds (and, into `cpu`, this process's CPU seconds, all its threads)."""
    started, used = time.perf_counter(), time.process_time()
    result = await call
    if cpu is not None:
        cpu.append(time.process_time() - used)
    return time.perf_counter() - started, result


def candidates() -> int:
    """How many candidates retrieval takes from each ranking (its scoring settings' `candidates`)."""
    settings = getattr(retrieval, "Scoring", None) or getattr(retrieval, "Fusion", None)
    return int(settings().candidates) if settings is not None else 30


def probe_retrieval(index: KnowledgeIndex, stopwatch: Stopwatch) -> None:
    """Time the parts of `retrieve()` inside it, by wrapping what it calls (in this process only)."""
    setattr(index.embedder, "queries", stopwatch.wrap_async("embed", index.embedder.queries))  # noqa: B010
    setattr(index, "reconcile", stopwatch.wrap_async("reconcile", index.reconcile))  # noqa: B010
    setattr(BotVectors, "search", stopwatch.wrap("vectors", BotVectors.search))  # noqa: B010
    setattr(knowledge, "search", stopwatch.wrap_async("fts_items", knowledge.search))  # noqa: B010
    setattr(retrieval, "search_chunks", stopwatch.wrap_async("fts_chunks", retrieval.search_chunks))  # noqa: B010
    if hasattr(retrieval, "_passages"):
        setattr(retrieval, "_passages", stopwatch.wrap_async("passages", retrieval._passages))  # noqa: B010


async def ask(bot_id: int, index: KnowledgeIndex, text: str, stopwatch: Stopwatch,
              seconds: dict[str, list[float]]) -> int:
    """One question through `retrieve()`: the whole, its parts, and this process's CPU time; how many
    passages it found."""
    stopwatch.seconds.clear()
    took, found = await timed(retrieval.retrieve(bot_id, text, index=index, limit=PASSAGES), seconds["cpu"])
    seconds["retrieve"].append(took)
    for part in PARTS[1:-1]:
        seconds[part].append(stopwatch.seconds.get(part, 0.0))
    seconds["rest"].append(took - sum(value for part, value in stopwatch.seconds.items() if part != "reconcile"))
    return len(found)


RANKED_CAP = 1000  # the capped variant ranks at most this many matches
# The variants of the chunks' full-text query tried: (label, shape of the SQL, which terms: share of the
# chunks a term may be in at most, and how many of the rarest to keep at most).
VARIANTS: dict[str, tuple[str, str, float, int | None]] = {
    "today": ("as today: any of the words `query_terms` keeps, every match ranked", "ranked", 1.0, None),
    "count": ("the same, only counting the matches", "count", 1.0, None),
    "rare": ("only its words in ≤ 10% of the chunks", "ranked", 0.10, None),
    "rarest": ("only its rarest words (in ≤ 1% of the chunks, at most 3)", "ranked", 0.01, 3),
    "capped": (f"any of its words, the first {RANKED_CAP:,} matches ranked", "capped", 1.0, None),
}


def chunk_sql(postgres: bool, shape: str) -> str:
    """`search_chunks`' query as it runs ("ranked"), the same only counting the matches ("count"), and the
    variants tried: ranking at most RANKED_CAP matches ("capped"). Values: the query, the bot, the limit."""
    if postgres:
        where = ("FROM knowledge_chunk c JOIN knowledge_source s ON s.id = c.source_id, to_tsquery('simple', $1) "
                 "query WHERE c.bot_id = $2 AND s.enabled AND c.search @@ query")
        return {"ranked": f"SELECT c.id {where} ORDER BY ts_rank(c.search, query) DESC, c.id LIMIT $3",
                "count": f"SELECT count(*) AS n {where} AND $3::int > 0",
                "capped": f"SELECT m.id FROM (SELECT c.id, c.search, query {where} LIMIT {RANKED_CAP}) m "
                          "ORDER BY ts_rank(m.search, m.query) DESC, m.id LIMIT $3"}[shape]
    where = ("FROM knowledge_chunk_fts JOIN knowledge_chunk c ON c.id = knowledge_chunk_fts.rowid "
             "JOIN knowledge_source s ON s.id = c.source_id WHERE knowledge_chunk_fts MATCH ? AND c.bot_id = ? "
             "AND s.enabled = 1")
    return {"ranked": f"SELECT c.id AS id {where} ORDER BY bm25(knowledge_chunk_fts, 2.0, 3.0, 1.0), c.id LIMIT ?",
            "count": f"SELECT count(*) AS n {where} AND ? > 0",
            "capped": f"SELECT m.id AS id FROM (SELECT c.id AS id, bm25(knowledge_chunk_fts, 2.0, 3.0, 1.0) AS score "
                      f"{where} LIMIT {RANKED_CAP}) m ORDER BY m.score, m.id LIMIT ?"}[shape]


Words = Sequence[Sequence[knowledge.Term]]  # what `knowledge.query_terms` makes: each word with its variants


def match_expression(postgres: bool, words: Words) -> str:
    return knowledge.tsquery(words) if postgres else knowledge.fts5_query(words)


class DocumentFrequency:
    """How many of the chunks hold a term (a prefix: the sum over the words it begins, an upper bound), or a
    word of the question (its commonest variant)."""

    def __init__(self, counts: dict[str, int], total: int) -> None:
        self.counts = counts
        self.sorted = sorted(counts)
        self.total = total

    @classmethod
    async def load(cls, postgres: bool, bot_id: int) -> DocumentFrequency:
        connection = connections.get("default")
        if postgres:
            rows = await connection.execute_query_dict(
                f"SELECT word AS term, ndoc AS doc FROM ts_stat('SELECT search FROM knowledge_chunk WHERE bot_id = "
                f"{int(bot_id)}')")
        else:
            await connection.execute_script("CREATE VIRTUAL TABLE IF NOT EXISTS temp.bench_chunk_vocab "
                                            "USING fts5vocab(main, knowledge_chunk_fts, row)")
            rows = await connection.execute_query_dict("SELECT term, doc FROM temp.bench_chunk_vocab")
        return cls({str(row["term"]): int(row["doc"]) for row in rows}, await KnowledgeChunk.all().count())

    def of(self, term: knowledge.Term) -> int:
        if not term.prefix:
            return self.counts.get(term.text, 0)
        first = bisect.bisect_left(self.sorted, term.text)
        last = bisect.bisect_left(self.sorted, term.text + "\U0010ffff")
        return sum(self.counts[word] for word in self.sorted[first:last])

    def of_word(self, variants: Sequence[knowledge.Term]) -> int:
        return max((self.of(term) for term in variants), default=0)

    def rarest(self, words: Words, share: float, most: int | None) -> list[Sequence[knowledge.Term]]:
        """The words in at most `share` of the chunks, the rarest `most` of them; the rarest one when none is."""
        if share >= 1.0:
            return list(words)
        kept = sorted((word for word in words if self.of_word(word) <= share * self.total), key=self.of_word)
        return kept[:most] or [min(words, key=self.of_word)]


async def diagnose(bot_id: int, texts: Iterator[str], count: int) -> dict[str, Any]:
    """Where the chunks' full text spends its time, on `count` new questions: the query as it runs, the same
    only counting its matches, and the VARIANTS, each with the terms it keeps, the chunks they match and how
    many of today's 30 best it still returns. PostgreSQL: the plans of typical questions."""
    connection = connections.get("default")
    postgres = connection.capabilities.dialect == "postgres"
    limit = candidates()
    frequency = await DocumentFrequency.load(postgres, bot_id)
    found: dict[str, dict[str, list[float]]] = {variant: defaultdict(list) for variant in VARIANTS}
    for _ in range(count):
        text = next(texts)
        terms = knowledge.query_terms(text)
        if not terms:
            continue
        today: set[int] = set()
        for variant, (_, shape, share, most) in VARIANTS.items():
            chosen = frequency.rarest(terms, share, most)
            values = [match_expression(postgres, chosen), bot_id, limit]
            took, rows = await timed(connection.execute_query_dict(chunk_sql(postgres, shape), values))
            record = found[variant]
            record["seconds"].append(took)
            record["terms"].append(len(chosen))
            if shape == "count":
                record["matched"].append(int(rows[0]["n"]))
                continue
            ids = {int(row["id"]) for row in rows}
            today = ids if variant == "today" else today
            record["kept"].append(len(today & ids) / len(today) if today else 1.0)
            if variant in ("rare", "rarest"):  # how many the kept terms match (not timed)
                counted = await connection.execute_query_dict(chunk_sql(postgres, "count"), values)
                record["matched"].append(int(counted[0]["n"]))
    plans: dict[str, str] = {}
    if postgres:
        for language, text in EXPLAINED.items():
            terms = knowledge.query_terms(text)
            for variant in ("today", "rare", "rarest"):
                _, _, share, most = VARIANTS[variant]
                explain = "EXPLAIN (ANALYZE, BUFFERS) " + chunk_sql(postgres, "ranked")
                rows = await connection.execute_query_dict(
                    explain, [match_expression(postgres, frequency.rarest(terms, share, most)), bot_id, limit])
                plans[f"{language} {variant}"] = "\n".join(str(row["QUERY PLAN"]) for row in rows)
    return {"found": found, "total": frequency.total, "plans": plans}


async def measure(url: str, bot_id: int, options: argparse.Namespace) -> dict[str, Any]:
    await db.open_database(url, run_migrations=False)
    embedder = LocalEmbedder(threads=1)
    try:
        texts = question_texts(options.seed)
        connection = connections.get("default")
        postgres = connection.capabilities.dialect == "postgres"
        for _ in range(5):  # the model loaded and warm
            await embedder.queries([next(texts)])
        await KnowledgeItem.filter(bot_id=bot_id).count()
        pinned = await pin_backends()
        rss_before = proc_status("VmRSS")
        peak_known = reset_peak()
        index = KnowledgeIndex(embedder)
        load_seconds, vectors = await timed(index.vectors(bot_id))
        rss_loaded = proc_status("VmRSS")
        peak_load = proc_status("VmHWM") if peak_known else float("nan")
        first_retrieve, _ = await timed(retrieval.retrieve(bot_id, next(texts), index=index, limit=PASSAGES))
        rss_searched = proc_status("VmRSS")
        index_bytes = array_bytes(vectors)
        stopwatch = Stopwatch()
        probe_retrieval(index, stopwatch)
        for _ in range(options.warmup):
            await ask(bot_id, index, next(texts), stopwatch, defaultdict(list))
        rounds: dict[str, list[list[float]]] = {part: [] for part in (*PARTS, "cpu")}
        short = 0  # questions answered with fewer than PASSAGES passages
        for _ in range(options.rounds):
            await pin_backends()
            seconds: dict[str, list[float]] = defaultdict(list)
            for _ in range(options.questions):
                short += await ask(bot_id, index, next(texts), stopwatch, seconds) < PASSAGES
            for part in (*PARTS, "cpu"):
                rounds[part].append(seconds[part])
        reconcile = [(await timed(index.reconcile(bot_id)))[0] for _ in range(5)]
        diagnosis = await diagnose(bot_id, texts, options.diagnose)
        if postgres:
            version = (await connection.execute_query_dict("SELECT current_setting('server_version') AS v"))[0]["v"]
            software = f"PostgreSQL {version}"
        else:
            version = (await connection.execute_query_dict("SELECT sqlite_version() AS v"))[0]["v"]
            software = f"SQLite {version}"
        return {"rounds": rounds, "load_seconds": load_seconds, "first_retrieve_seconds": first_retrieve,
                "rss_before": rss_before, "rss_loaded": rss_loaded, "rss_searched": rss_searched,
                "peak_load": peak_load, "index_bytes": index_bytes,
                "vectors": len(vectors), "short_answers": short, "reconcile_seconds": reconcile, "diagnosis": diagnosis,
                "software": software, "pinned_cores": sorted(os.sched_getaffinity(0)), "pinned_backends": pinned,
                "model": embedder.name}
    finally:
        await embedder.close()
        await db.close_database()


# --- indexing -------------------------------------------------------------------------------------


class Stopwatch:
    """Seconds spent in the functions it wraps, by name."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: Counter[str] = Counter()

    def wrap(self, name: str, function: Callable[P, R]) -> Callable[P, R]:
        def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - started
                self.calls[name] += 1
        return wrapped

    def wrap_async(self, name: str, function: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        async def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
            started = time.perf_counter()
            try:
                return await function(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - started
                self.calls[name] += 1
        return wrapped


class TimedEmbedder:
    """The local embedder, its passages timed."""

    def __init__(self, threads: int, stopwatch: Stopwatch) -> None:
        self.inner = LocalEmbedder(threads)
        self.stopwatch = stopwatch
        self.passage_count = 0
        self.first_call: float | None = None

    @property
    def name(self) -> str:
        return self.inner.name

    async def queries(self, texts: Sequence[str]) -> Vectors:
        return await self.inner.queries(texts)

    def backlog(self) -> float:
        return self.inner.backlog()

    async def passages(self, texts: Sequence[str]) -> Vectors:
        if self.first_call is None:
            self.first_call = time.perf_counter()
        self.passage_count += len(texts)
        return await self.stopwatch.wrap_async("embed", self.inner.passages)(texts)

    async def close(self) -> None:
        await self.inner.close()


def make_pdf(path: Path, pages: int, seed: int) -> dict[str, Any]:
    """A text PDF of `pages` pages: chapters (bookmarked) in the three languages, sections, paragraphs, lists."""
    from fpdf import FPDF

    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    writers = {language: Writer(language, rng) for language, _ in LANGUAGES}
    title = "Frontdesk Coffee — staff and customer handbook"

    class Handbook(FPDF):
        def header(self) -> None:
            self.set_font("DejaVu", "", 8)
            self.cell(0, 6, title, align="R", new_x="LMARGIN", new_y="NEXT")
            self.ln(4)

        def footer(self) -> None:
            self.set_y(-15)
            self.set_font("DejaVu", "", 8)
            self.cell(0, 10, str(self.page_no()), align="C")

    pdf = Handbook(format="A4")
    pdf.add_font("DejaVu", "", str(FONTS / "DejaVuSans.ttf"))
    pdf.add_font("DejaVu", "B", str(FONTS / "DejaVuSans-Bold.ttf"))
    pdf.set_title(title)
    pdf.set_auto_page_break(True, margin=20)
    pdf.add_page()
    chapter = words = 0
    while pdf.page_no() < pages:
        writer = writers[language_of(chapter)]
        chapter += 1
        heading = f"{chapter}. {writer.phrase(2, 5)}"
        pdf.start_section(heading, level=0)
        pdf.set_font("DejaVu", "B", 16)
        pdf.multi_cell(0, 9, heading, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)
        for section in range(int(rng.integers(3, 7))):
            if pdf.page_no() >= pages:
                break
            subheading = f"{chapter}.{section + 1} {writer.phrase(2, 6)}"
            pdf.start_section(subheading, level=1)
            pdf.set_font("DejaVu", "B", 12.5)
            pdf.multi_cell(0, 7, subheading, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(1)
            pdf.set_font("DejaVu", "", 11)
            for _ in range(int(rng.integers(3, 8))):
                lines = ([f"•  {writer.text(int(rng.integers(6, 18)))}" for _ in range(int(rng.integers(3, 6)))]
                         if rng.random() < 0.15 else [writer.text(int(rng.integers(40, 130)))])
                for line in lines:
                    pdf.multi_cell(0, 6.5, line, new_x="LMARGIN", new_y="NEXT")
                    words += len(line.split())
                pdf.ln(4)
    while pdf.page_no() < pages:
        pdf.add_page()
    pdf.output(str(path))
    return {"pages": pdf.page_no(), "bytes": path.stat().st_size, "seconds": time.perf_counter() - started,
            "words": words}


def site_pages(count: int, seed: int) -> dict[str, str]:
    """A trilingual shop's website: `count` HTML pages by path, with robots.txt and sitemap.xml."""
    rng = np.random.default_rng(seed)
    writers = {language: Writer(language, rng) for language, _ in LANGUAGES}
    sections = {language: [writers[language].draw(1)[0] for _ in range(4)] for language in writers}
    paths = ["/"] + [f"/{language_of(n)}/{sections[language_of(n)][n % 4]}/page-{n}" for n in range(1, count)]
    hubs = paths[1:13]
    titles = {path: writers[language_of(n)].phrase(2, 6) for n, path in enumerate(paths)}
    pages: dict[str, str] = {}
    for n, path in enumerate(paths):
        writer = writers[language_of(n)]
        nav = "".join(f'<li><a href="{hub}">{titles[hub]}</a></li>' for hub in hubs)
        related = [paths[int(i)] for i in rng.integers(1, count, 6)] + [paths[(n + 1) % count]]
        body = [f"<h1>{titles[path]}</h1>", f"<p>{writer.text(int(rng.integers(30, 70)))}</p>"]
        for _ in range(int(rng.integers(1, 4))):
            body.append(f"<h2>{writer.phrase(2, 5)}</h2>")
            for _ in range(int(rng.integers(1, 3))):
                body.append(f"<p>{writer.text(int(rng.integers(40, 110)))}</p>")
            if rng.random() < 0.3:
                body.append("<ul>" + "".join(f"<li>{writer.phrase(3, 9)}</li>" for _ in range(4)) + "</ul>")
        links = "".join(f'<li><a href="{link}">{titles[link]}</a></li>' for link in related)
        pages[path] = (
            f'<!doctype html><html lang="{writer.language}"><head><meta charset="utf-8">'
            f"<title>{titles[path]} — Frontdesk Coffee</title></head><body>"
            f'<header><a href="/">Frontdesk Coffee</a><nav><ul>{nav}</ul></nav></header>'
            f"<main><article>{''.join(body)}</article>"
            f'<aside><h3>Related</h3><ul>{links}</ul><a href="/files/menu.pdf">Menu (PDF)</a>'
            f'<img src="/img/shop.jpg" alt=""></aside></main>'
            '<footer><p>© 2026 Frontdesk Coffee · 12 Amir Temur St, Tashkent · +998 71 000 00 00</p>'
            '<a href="/">Home</a> · <a href="https://t.me/frontdesk_coffee">Telegram</a></footer></body></html>')
    return pages


def serve_site(port: int, count: int, seed: int) -> int:
    from aiohttp import web

    pages = site_pages(count, seed)
    base = f"http://127.0.0.1:{port}"
    sitemap = ('<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
               + "".join(f"<url><loc>{base}{path}</loc></url>" for path in pages) + "</urlset>")

    async def handle(request: web.Request) -> web.Response:
        if request.path == "/robots.txt":
            return web.Response(text=f"User-agent: *\nAllow: /\nSitemap: {base}/sitemap.xml\n")
        if request.path == "/sitemap.xml":
            return web.Response(text=sitemap, content_type="application/xml")
        page = pages.get(request.path)
        if page is None:
            raise web.HTTPNotFound()
        return web.Response(text=page, content_type="text/html")

    async def run() -> None:
        app = web.Application()
        app.router.add_get("/{tail:.*}", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        print("ready", flush=True)
        await asyncio.Event().wait()

    asyncio.run(run())
    return 0


async def index_source(location: str, threads: int, sample_out: Path | None, sample: int) -> dict[str, Any]:
    """`index_now` on a fresh SQLite database, its stages timed."""
    stopwatch = Stopwatch()
    for name, stage in (("extract", "read"), ("extract_html", "read"), ("chunk_sections", "chunk")):
        setattr(knowledge_sources, name, stopwatch.wrap(stage, getattr(knowledge_sources, name)))
    setattr(WebFetcher, "fetch_page", stopwatch.wrap_async("fetch", WebFetcher.fetch_page))  # noqa: B010
    setattr(WebFetcher, "fetch_text", stopwatch.wrap_async("fetch", WebFetcher.fetch_text))  # noqa: B010
    embedder = TimedEmbedder(threads, stopwatch)
    with tempfile.TemporaryDirectory() as work:
        await db.open_database(f"sqlite://{work}/index.sqlite3")
        try:
            bot = await Bot.create(telegram_id=7000000012, username="bench_index")
            sources = KnowledgeSources(embedder, KnowledgeIndex(embedder))
            await embedder.inner.passages(["warm up"])  # the model loaded, as in a running CLI
            last_progress = 0.0

            def progress(done: int, total: int) -> None:
                nonlocal last_progress
                last_progress = time.perf_counter()

            started = time.perf_counter()
            source = await sources.index_now(bot.id, location, progress=progress)
            finished = time.perf_counter()
            chunks = await KnowledgeChunk.filter(source_id=source.id).order_by("id")
            if sample_out is not None:
                sample_out.write_text(json.dumps([passage_text(c.title, c.heading, c.text) for c in chunks[:sample]],
                                                 ensure_ascii=False), encoding="utf-8")
            words = [len(chunk.text.split()) for chunk in chunks]
            return {"total": finished - started, "stages": dict(stopwatch.seconds),
                    "store": finished - last_progress, "chunks": len(chunks), "passages": embedder.passage_count,
                    "pages": await KnowledgePage.filter(source_id=source.id).count(),
                    "crawl_wall": (embedder.first_call or started) - started,
                    "chunk_words": statistics.median(words) if words else 0, "threads": threads}
        finally:
            await embedder.close()
            await db.close_database()


async def embed_sample(texts: list[str], threads: int) -> dict[str, Any]:
    embedder = LocalEmbedder(threads)
    try:
        await embedder.passages(texts[:2])
        took, _ = await timed(embedder.passages(texts))
    finally:
        await embedder.close()
    return {"threads": threads, "passages": len(texts), "seconds": took}


# --- the report -----------------------------------------------------------------------------------


def percentile(seconds: Sequence[float], share: float) -> float:
    ordered = sorted(seconds)
    return 1000 * ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def cell(result: dict[str, Any], part: str, share: float) -> float:
    return statistics.median(percentile(seconds, share) for seconds in result["rounds"][part])


def mib(size: float) -> str:
    return f"{size / 1024 / 1024:.0f} MiB" if size >= 1024 * 1024 else f"{size / 1024:.0f} KiB"


def retrieval_tables(results: dict[str, dict[str, Any]]) -> list[str]:
    whole = ["| chunks | database | `retrieve()` p50 ms | p99 ms | CPU of the process p50 / p99 ms | p99 ≤ 50 ms |",
             "| ---: | --- | ---: | ---: | ---: | --- |"]
    parts = ["| chunks | database | " + " | ".join(PART_NAMES[part] for part in PARTS[1:]) + " | chunks matched |",
             "| ---: | --- |" + " ---: |" * (len(PARTS) - 1) + " ---: |"]
    memory = ["| chunks | database | index load | first `retrieve()` after it | arrays held (the vectors alone) "
              "| RSS before load | after load | after the first `retrieve()` | peak during load | reconcile check |",
              "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, result in results.items():
        database, chunks = name.split("/")
        label = f"{int(chunks):,}"
        p99 = cell(result, "retrieve", 0.99)
        whole.append(f"| {label} | {database} | {cell(result, 'retrieve', 0.5):.1f} | {p99:.1f} | "
                     f"{cell(result, 'cpu', 0.5):.1f} / {cell(result, 'cpu', 0.99):.1f} | "
                     + ("yes" if p99 <= TARGET_MS else "**no**") + " |")
        diagnosis = result["diagnosis"]
        matched = statistics.median(diagnosis["found"]["count"]["matched"])
        parts.append(f"| {label} | {database} | " + " | ".join(
            f"{cell(result, part, 0.5):.1f} / {cell(result, part, 0.99):.1f}" for part in PARTS[1:])
            + f" | {matched:,.0f} ({100 * matched / diagnosis['total']:.0f}%) |")
        memory.append(
            f"| {label} | {database} | {result['load_seconds']:.2f} s "
            f"| {1000 * result['first_retrieve_seconds']:.0f} ms "
            f"| {mib(result['index_bytes'])} ({mib(result['vectors'] * DIM * 4)}) | {result['rss_before']:.0f} MiB "
            f"| {result['rss_loaded']:.0f} MiB | {result['rss_searched']:.0f} MiB | {result['peak_load']:.0f} MiB "
            f"| {1000 * statistics.median(result['reconcile_seconds']):.1f} ms |")
    return ["\n".join(whole), "\n".join(parts), "\n".join(memory)]


def diagnosis_table(results: dict[str, dict[str, Any]]) -> str:
    """The chunks' full-text variants, at each database's largest size."""
    lines = ["| chunks | database | query | words (median) | chunks matched (median) | p50 / p99 ms "
             "| today's 30 best kept |", "| ---: | --- | --- | ---: | ---: | ---: | ---: |"]
    for name in largest_per_database(results):
        database, chunks = name.split("/")
        found = results[name]["diagnosis"]["found"]
        for variant, (label, _, _, _) in VARIANTS.items():
            record = found[variant]
            matched = f"{statistics.median(record['matched']):,.0f}" if record.get("matched") else (
                f"≤ {RANKED_CAP:,} ranked" if variant == "capped" else "—")
            if variant == "today":
                matched = f"{statistics.median(found['count']['matched']):,.0f}"
            kept = f"{100 * statistics.mean(record['kept']):.0f}%" if record.get("kept") else "—"
            lines.append(f"| {int(chunks):,} | {database} | {label} | {statistics.median(record['terms']):.0f} | "
                         f"{matched} | {percentile(record['seconds'], 0.5):.1f} / "
                         f"{percentile(record['seconds'], 0.99):.1f} | {kept} |")
    return "\n".join(lines)


def largest_per_database(results: dict[str, dict[str, Any]]) -> list[str]:
    largest: dict[str, str] = {}
    for name in results:
        database, chunks = name.split("/")
        if database not in largest or int(chunks) > int(largest[database].split("/")[1]):
            largest[database] = name
    return list(largest.values())


def plan_excerpt(plan: str, lines: int = 14) -> str:
    kept = [line for line in plan.splitlines() if line.strip()][:lines]
    timing = [line for line in plan.splitlines() if line.startswith(("Planning Time", "Execution Time"))]
    return "\n".join(kept + (["..."] if len(plan.splitlines()) > lines else []) + timing)


def execution_ms(plan: str) -> float:
    found = re.search(r"Execution Time: ([0-9.]+) ms", plan)
    return float(found.group(1)) if found else float("nan")


def indexing_table(indexing: dict[str, Any]) -> str:
    lines = ["| source | pages | chunks (median words) | total s | fetching s | reading s | chunking s "
             "| embedding s (chunks/s) | storing s | pages/s |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, result in indexing.items():
        if name not in ("pdf", "site"):
            continue
        stages = result["stages"]
        embed = stages.get("embed", 0.0)
        fetch = f"{stages['fetch']:.1f}" if "fetch" in stages else "—"
        pages = result["made"]["pages"] if "made" in result else result["pages"]
        lines.append(
            f"| {result['label']} | {pages} | {result['chunks']:,} ({result['chunk_words']:.0f}) "
            f"| {result['total']:.1f} | {fetch} | {stages.get('read', 0.0):.1f} | {stages.get('chunk', 0.0):.2f} "
            f"| {embed:.1f} ({result['passages'] / embed if embed else 0:.2f}) | {result['store']:.2f} "
            f"| {pages / result['total']:.2f} |")
    return "\n".join(lines)


def section(options: argparse.Namespace, results: dict[str, dict[str, Any]], indexing: dict[str, Any],
            load: dict[str, dict[str, Any]], context: dict[str, Any]) -> str:
    software = list(dict.fromkeys(result["software"] for result in results.values()))
    model = next((result["model"] for result in results.values()), LocalEmbedder().name)
    parts = [
        BEGIN_MARK,
        f"- **Date:** {context['date']}",
        f"- **Machine:** {context['machine']}. Shared with other engineers' work while this ran (load average "
        f"{context['load_before']:.1f} before, {context['load_after']:.1f} after, on {os.cpu_count()} cores): "
        "the figures are noisy, the p99s most; the CPU column tells the work from the waiting.",
        "- **Software:** " + "; ".join([*software, f"model `{model}`"])
        + " (PostgreSQL with its defaults but parallel query off, `max_parallel_workers_per_gather = 0`, so that a "
        "query stays on the one core; SQLite a file in WAL mode, as Tortoise opens it)",
        f"- **Frontdesk:** commit {context['code']}",
        f"- **Command:** {context['command']}",
    ]
    if results:
        first = next(iter(results.values()))
        pinned = (f"pinned to core {','.join(map(str, first['pinned_cores']))} with `taskset`"
                  if len(first["pinned_cores"]) < (os.cpu_count() or 1) else "not pinned (no `taskset`)")
        backends = any(result["pinned_backends"] for result in results.values())
        parts += [
            f"- **Knowledge:** one bot, {next(iter(load.values()))['items']} Q&A items (vectors from the model) and "
            f"N generated chunks in sources of up to {CHUNKS_PER_SOURCE:,} (en 50%, ru 30%, uz 20%; 60–160 words "
            "drawn at Zipf-like frequencies from the evaluation set's and the shipped templates' words and "
            "inflections of them, so a common word is in most chunks of its language), their vectors random unit "
            "vectors (float16, under the model's name). Loaded (not measured) in "
            + ", ".join(f"{value['seconds']:.0f} s ({name.split('/')[0]}, {int(name.split('/')[1]):,})"
                        for name, value in load.items())
            + "; SQLite's FTS5 tables optimized, PostgreSQL vacuumed and analyzed.",
            f"- **Load:** one process {pinned}"
            + (", its PostgreSQL backend pinned to the same core" if backends else "")
            + f", `LocalEmbedder(threads=1)`; {options.warmup} questions of warm-up, then {options.rounds} rounds of "
            f"{options.questions} customer-like questions (en/ru/uz, each text new), one at a time, through "
            f"`retrieve(..., limit={PASSAGES})` as answering calls it, its parts timed inside the same calls (by "
            "wrapping the functions it calls). A cell is the median over the rounds of that round's p50 or p99. "
            "CPU = this process's CPU time (all its threads; not PostgreSQL's). The index checks the database every "
            "30 s (`reconcile`), as in production.",
            "", "**Whole retrieval** (full text on items and chunks, embedding the question, vectors, loading the "
            "passages, ranking). Where the p99 is far above the CPU's p99, the process was waiting for the shared "
            "core, not working:", "", retrieval_tables(results)[0], "",
            "**Its parts**, in the order `retrieve()` runs them (p50 / p99 ms; chunks matched: by the chunks' "
            "full-text query, median of the diagnosis' questions):", "",
            retrieval_tables(results)[1], "",
            "**Memory and loading** (RSS of the measuring process, the model already loaded; arrays held = all the "
            "numpy arrays of the bot's `BotVectors`, beside what its N × 384 float32 vectors take; the first "
            "`retrieve()` after the load pays what the index builds lazily; the reconcile check runs in one "
            "`retrieve()` every 30 s):", "", retrieval_tables(results)[2], "",
            "**The chunks' full text, where its time goes**, at the largest size, on other new questions: the "
            "query as it runs, the same only counting its matches, and variants of it, each with how many of the "
            "30 best chunks of today's query it still returns (the rare words by FTS5's vocabulary / `ts_stat` of "
            "the bot's chunks; all variants rank with the same bm25 / ts_rank, and ts_rank weighs no term by its "
            "rarity, so today's 30 best on PostgreSQL are those with the most common words):", "",
            diagnosis_table(results)]
        postgres = [name for name in results if name.startswith("PostgreSQL/")]
        if postgres:
            name = max(postgres, key=lambda key: int(key.split("/")[1]))
            plans = results[name]["diagnosis"]["plans"]
            parts += ["", f"PostgreSQL's plan at {int(name.split('/')[1]):,} chunks for `{EXPLAINED['en']}` "
                          "(EXPLAIN (ANALYZE, BUFFERS), the first lines):", "", "```", plan_excerpt(plans["en today"]),
                      "```", "", "Execution time of typical questions (EXPLAIN ANALYZE), as today / rare words only / "
                      "rarest words only: " + "; ".join(
                          f"`{text}` " + " / ".join(f"{execution_ms(plans[f'{language} {variant}']):.1f}"
                                                    for variant in ("today", "rare", "rarest")) + " ms"
                          for language, text in EXPLAINED.items()) + "."]
        largest = max(int(name.split("/")[1]) for name in results)
        verdicts = []
        for name, result in results.items():
            if int(name.split("/")[1]) == largest:
                p99 = cell(result, "retrieve", 0.99)
                verdicts.append(f"{name.split('/')[0]} {p99:.0f} ms " + ("(holds)" if p99 <= TARGET_MS else
                                                                          "(**misses**)"))
        parts += ["", f"**Target** p99 ≤ {TARGET_MS:.0f} ms at {largest:,} chunks on one core: "
                  + "; ".join(verdicts) + ". Where the time goes there (p50s, which need not add up): " + "; ".join(
                      f"{name.split('/')[0]} {cell(results[name], 'retrieve', 0.5):.0f} ms = " + " + ".join(
                          f"{PART_NAMES[part].split(' (')[0]} {cell(results[name], part, 0.5):.0f}"
                          for part in sorted(PARTS[1:], key=lambda part: -cell(results[name], part, 0.5)))
                      for name in largest_per_database(results)) + "."]
    if indexing:
        parts += ["", "**Indexing** with `index_now` (the CLI path) into SQLite, one embedding thread (the default), "
                      "not pinned; stages timed by wrapping the functions it calls (storing = the transaction and the "
                      "index reload after the last embedding):", "", indexing_table(indexing)]
        if "pdf" in indexing:
            made = indexing["pdf"]["made"]
            parts += ["", f"The PDF: {made['pages']} A4 pages, {mib(made['bytes'])}, about "
                          f"{made.get('words', 0) / made['pages']:.0f} words of text a page, made by fpdf2 (not "
                          "counted): chapters in the three languages with bookmarks, sections, lists, a running "
                          "header and page numbers. The site: served by aiohttp from memory, with robots.txt, "
                          "sitemap.xml, navigation, related links and a footer on every page."]
        samples = [indexing[key] for key in ("threads1", "threads2") if key in indexing]
        if samples:
            parts += ["", f"Embedding threads: the same {samples[0]['passages']} passages of the PDF, each setting "
                          "in a fresh process: " + "; ".join(f"{s['threads']} thread{'s' if s['threads'] > 1 else ''} "
                                                        f"{s['passages'] / s['seconds']:.2f} chunks/s" for s in samples)
                      + " (EMBEDDING_THREADS=2 on two cores that other work also uses)."]
    parts.append(END_MARK)
    return "\n".join(parts)


# --- running --------------------------------------------------------------------------------------


def run_child(argv: Sequence[str], args: Sequence[str], pin: bool = False) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as work:
        out = Path(work) / "result.json"
        prefix = ["taskset", "-c", "0"] if pin and shutil.which("taskset") else []
        subprocess.run([*prefix, sys.executable, __file__, *argv, *args, "--child-out", str(out)], check=True,
                       cwd=ROOT)
        result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
        return result


def run_retrieval(profile: str, chunks: int, items_file: Path, argv: Sequence[str],
                  options: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    with tempfile.TemporaryDirectory() as work, scratch_database(profile, work, "frontdesk_knowledge") as url:
        print(f"{profile}, {chunks:,} chunks: loading", file=sys.stderr, flush=True)
        loaded = run_child(argv, ["--child", "load", "--child-url", url, "--child-chunks", str(chunks),
                                  "--child-items", str(items_file)])
        print(f"{profile}, {chunks:,} chunks: loaded in {loaded['seconds']:.0f} s; measuring", file=sys.stderr,
              flush=True)
        measured = run_child(argv, ["--child", "measure", "--child-url", url, "--child-bot", str(loaded["bot"])],
                             pin=options.pin)
        return loaded, measured


def unfinished(results: dict[str, dict[str, Any]], loads: dict[str, dict[str, Any]], items: int | None,
               indexing: dict[str, Any], options: argparse.Namespace) -> str | None:
    """Why the work timed did not happen, or None: each database holds the chunks and items loaded, the index
    all their vectors, and every question found a full set of passages; each source indexed made chunks, and
    each sample was embedded whole."""
    for key, loaded in loads.items():
        chunks = int(key.rpartition("/")[2])
        expected = loaded["items"] if items is None else items  # None: results saved before this check
        if loaded["chunks"] != chunks or loaded["items"] != expected:
            return f"{key}: {loaded['chunks']} chunks and {loaded['items']} items loaded of {chunks} and {expected}"
        measured = results[key]
        if measured["vectors"] != chunks + expected:
            return f"{key}: {measured['vectors']} vectors in the index of {chunks + expected}"
        if measured.get("short_answers"):
            return f"{key}: {measured['short_answers']} questions found fewer than {PASSAGES} passages"
    for name in ("pdf", "site"):
        found = indexing.get(name)
        if found and not (found["chunks"] and found["pages"] and found["passages"] >= found["chunks"]):
            return f"indexing {name}: {found['pages']} pages, {found['chunks']} chunks, {found['passages']} passages"
    sample = min(options.sample, indexing["pdf"]["chunks"]) if "pdf" in indexing else options.sample
    for threads in (1, 2):
        if (found := indexing.get(f"threads{threads}")) and found["passages"] != sample:
            return f"the sample with {threads} thread(s): {found['passages']} passages of {sample}"
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def run_indexing(argv: Sequence[str], options: argparse.Namespace) -> dict[str, Any]:
    found: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as work:
        pdf = Path(work) / "handbook.pdf"
        sample = Path(work) / "sample.json"
        print(f"indexing: making a {options.pdf_pages}-page PDF", file=sys.stderr, flush=True)
        made = make_pdf(pdf, options.pdf_pages, options.seed)
        print(f"indexing: the PDF ({made['pages']} pages) with index_now", file=sys.stderr, flush=True)
        found["pdf"] = run_child(argv, ["--child", "index", "--child-url", str(pdf), "--child-threads", "1",
                                        "--child-sample", str(sample)])
        found["pdf"].update(label=f"PDF, {made['pages']} pages", made=made)
        port = free_port()
        server = subprocess.Popen([sys.executable, __file__, "--serve-site", str(port), "--site-pages",
                                   str(options.site_pages), "--seed", str(options.seed)], cwd=ROOT,
                                  stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout is not None
            if server.stdout.readline().strip() != "ready":
                raise SystemExit("the site's server did not start")
            print(f"indexing: the {options.site_pages}-page site with index_now", file=sys.stderr, flush=True)
            found["site"] = run_child(argv, ["--child", "index", "--child-url", f"http://127.0.0.1:{port}/",
                                             "--child-threads", "1"])
            found["site"].update(label=f"website, {options.site_pages} pages, 127.0.0.1")
        finally:
            server.terminate()
            server.wait(10)
        for threads in (1, 2):
            print(f"indexing: embedding the sample with {threads} thread(s)", file=sys.stderr, flush=True)
            found[f"threads{threads}"] = run_child(argv, ["--child", "sample", "--child-url", str(sample),
                                                          "--child-threads", str(threads)])
    return found


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--chunks", default="1000,10000,100000", help="comma-separated chunk counts")
    parser.add_argument("--profile", default="sqlite,postgres")
    parser.add_argument("--questions", type=int, default=80, help="questions per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=10, help="questions before the rounds")
    parser.add_argument("--diagnose", type=int, default=20, help="questions for the full-text diagnosis")
    parser.add_argument("--pdf-pages", type=int, default=300)
    parser.add_argument("--site-pages", type=int, default=200)
    parser.add_argument("--sample", type=int, default=32, help="passages embedded with 1 and 2 threads")
    parser.add_argument("--skip", default="", help="retrieval and/or indexing, comma-separated")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin the measuring process")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--no-doc", action="store_true", help="only print the section")
    parser.add_argument("--save", help="where to write the raw results (default: frontdesk-knowledge-scale.json in "
                                       "the temporary directory)")
    parser.add_argument("--report", help="measure nothing: write the section from results saved by --save")
    parser.add_argument("--serve-site", type=int, help=argparse.SUPPRESS)
    for name in ("child", "child-url", "child-out", "child-bot", "child-chunks", "child-items", "child-threads",
                 "child-sample"):
        parser.add_argument(f"--{name}", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def child(options: argparse.Namespace) -> int:
    result: dict[str, Any]
    if options.child == "load":
        result = asyncio.run(load_knowledge(options.child_url, int(options.child_chunks), Path(options.child_items),
                                            options.seed))
    elif options.child == "measure":
        result = asyncio.run(measure(options.child_url, int(options.child_bot), options))
    elif options.child == "index":
        sample_out = Path(options.child_sample) if options.child_sample else None
        result = asyncio.run(index_source(options.child_url, int(options.child_threads), sample_out, options.sample))
    elif options.child == "sample":
        texts = json.loads(Path(options.child_url).read_text(encoding="utf-8"))
        result = asyncio.run(embed_sample(texts, int(options.child_threads)))
    elif options.child == "items":
        asyncio.run(embed_items(Path(options.child_out)))
        return 0
    else:
        raise SystemExit(f"unknown child {options.child}")
    Path(options.child_out).write_text(json.dumps(result), encoding="utf-8")
    return 0


def run_all(argv: Sequence[str], options: argparse.Namespace) -> tuple[dict[str, dict[str, Any]],
                                                                       dict[str, dict[str, Any]], dict[str, Any],
                                                                       dict[str, Any]]:
    skip = set(filter(None, options.skip.split(",")))
    context: dict[str, Any] = {"load_before": os.getloadavg()[0]}
    names = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
    results: dict[str, dict[str, Any]] = {}
    loads: dict[str, dict[str, Any]] = {}
    if "retrieval" not in skip:
        with tempfile.TemporaryDirectory() as work:
            items_file = Path(work) / "items.json"
            subprocess.run([sys.executable, __file__, "--child", "items", "--child-out", str(items_file)], check=True,
                           cwd=ROOT)
            context["items"] = len(json.loads(items_file.read_text(encoding="utf-8")))
            for profile in options.profile.split(","):
                for chunks in (int(value) for value in options.chunks.split(",")):
                    key = f"{names.get(profile, profile)}/{chunks}"
                    loads[key], results[key] = run_retrieval(profile, chunks, items_file, argv, options)
    indexing = run_indexing(argv, options) if "indexing" not in skip else {}
    context["load_after"] = os.getloadavg()[0]
    return results, loads, indexing, context


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    options = parse(argv)
    if options.serve_site:
        return serve_site(options.serve_site, options.site_pages, options.seed)
    if options.child:
        return child(options)
    if options.report:
        saved = json.loads(Path(options.report).read_text(encoding="utf-8"))
        results, loads, indexing, context = saved["results"], saved["loads"], saved["indexing"], saved["context"]
        options = parse([*saved["argv"], *(["--no-doc"] if options.no_doc else [])])
    else:
        results, loads, indexing, context = run_all(argv, options)
        command = f"`{shlex.join(['python', 'bench/knowledge_scale.py', *argv])}`"
        if launcher := os.environ.get("BENCH_LAUNCHER", ""):
            command = f"`{launcher}`, which runs {command}"
        context.update(command=command, date=f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC", machine=machine(),
                       code=code_version())
        saved_to = Path(options.save or Path(tempfile.gettempdir()) / "frontdesk-knowledge-scale.json")
        saved_to.write_text(json.dumps({"results": results, "loads": loads, "indexing": indexing, "context": context,
                                        "argv": argv}), encoding="utf-8")
        print(f"raw results in {saved_to} (--report {saved_to} writes the section again)", file=sys.stderr)
    if (reason := unfinished(results, loads, context.get("items"), indexing, options)) is not None:
        print(f"knowledge_scale: the work did not happen: {reason}", file=sys.stderr)
        return 1
    text = section(options, results, indexing, loads, context)
    print(text)
    if not options.no_doc:
        write_section(DOC_PATH, SCRIPT, text, "Knowledge at scale")
        print(f"wrote {DOC_PATH}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
