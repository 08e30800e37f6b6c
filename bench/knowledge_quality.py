"""Retrieval quality on bench/data/knowledge_eval.json: does the right knowledge reach the model?

For each language (en, ru, uz) a bot holds the 39 FAQ items in that language, and every reworded
customer question is asked; the item it should find is known. Also asked: Russian and Uzbek questions
against an English-only FAQ (customers do not write in the FAQ's language). Reported per language, for
full-text search alone, vectors alone (the embedded default model) and the two fused, as production
retrieves: top-1, top-3 and MRR (over the first 10). Then the direct-answer bar (a knowledge-base answer
sent without the AI): every reworded question, every near miss and every out-of-scope question is tried,
and a direct answer that is not the expected item is counted as wrong. Finally a small grid over the
words' weight, which is how `services.retrieval.Scoring`'s default was chosen.

    .venv/bin/python bench/knowledge_quality.py          # prints the tables and writes docs/BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common import DOC_PATH, ROOT, marks, write_section

from bot import db
from models import Bot, KnowledgeItem
from services import knowledge
from services.embeddings import LocalEmbedder
from services.knowledge_index import KnowledgeIndex
from services.knowledge_sources import KnowledgeSources
from services.retrieval import Scoring, retrieve

EVAL = ROOT / "bench" / "data" / "knowledge_eval.json"
LANGUAGES = ("en", "ru", "uz")
DEPTH = 10
SCRIPT = "knowledge_quality.py"


@dataclass
class Scores:
    ranks: list[int | None] = field(default_factory=list)  # 1-based rank of the right item, None past DEPTH

    def add(self, ranking: Sequence[int], expected: int) -> None:
        self.ranks.append(ranking.index(expected) + 1 if expected in ranking[:DEPTH] else None)

    def top(self, k: int) -> float:
        return sum(1 for rank in self.ranks if rank is not None and rank <= k) / len(self.ranks)

    @property
    def mrr(self) -> float:
        return sum(1 / rank for rank in self.ranks if rank is not None) / len(self.ranks)


@dataclass
class Setup:
    name: str  # "en", "ru → en FAQ", ...
    bot_id: int
    items: dict[str, int]  # eval id -> knowledge item id
    questions: list[tuple[str, str]]  # (text, eval id)
    misses: list[str]  # questions no item answers directly (near misses, out of scope)


async def load(data: dict[str, Any], sources: KnowledgeSources) -> list[Setup]:
    setups = []
    by_language: dict[str, Setup] = {}
    for number, language in enumerate(LANGUAGES, start=1):
        bot = await Bot.create(telegram_id=1000 + number, username=f"eval_{language}")
        entries = [knowledge.Entry(item[language]["question"], item[language]["answer"], item.get("tags", ""))
                   for item in data["items"]]
        await knowledge.import_entries(bot.id, entries)
        await sources.embed_items(bot.id)
        ids = {}
        for item in data["items"]:
            key = knowledge.question_key(item[language]["question"])
            found = await KnowledgeItem.get(bot_id=bot.id, question_key=key)
            ids[item["id"]] = found.id
        questions = [(text, item["id"]) for item in data["items"] for text in item[language]["asked"]]
        misses = [entry["text"] for entry in data["near_misses"] + data["out_of_scope"] if entry["lang"] == language]
        setup = Setup(language, bot.id, ids, questions, misses)
        by_language[language] = setup
        setups.append(setup)
    english = by_language["en"]
    for language in ("ru", "uz"):
        setups.append(Setup(f"{language} → en FAQ", english.bot_id, english.items, by_language[language].questions,
                            []))
    return setups


async def rankings(setup: Setup, index: KnowledgeIndex, scoring: Scoring) -> dict[str, Scores]:
    scores = {"words": Scores(), "vectors": Scores(), "both": Scores()}
    for text, expected_id in setup.questions:
        expected = setup.items[expected_id]
        words = await retrieve(setup.bot_id, text, index=None, limit=DEPTH, scoring=scoring)
        scores["words"].add([p.id for p in words if p.kind == "item"], expected)
        vectors = await index.search(setup.bot_id, text, DEPTH)
        scores["vectors"].add([hit.id for hit in vectors if hit.kind == "item"], expected)
        both = await retrieve(setup.bot_id, text, index=index, limit=DEPTH, scoring=scoring)
        scores["both"].add([p.id for p in both if p.kind == "item"], expected)
    return scores


async def direct_answers(setup: Setup, threshold: float) -> tuple[int, int, int]:
    """(tried, right, wrong) direct answers: a wrong one is another item, or any for a miss."""
    right = wrong = 0
    for text, expected_id in setup.questions:
        hit = await knowledge.direct_answer(setup.bot_id, text, threshold)
        if hit is not None:
            right += hit.item.id == setup.items[expected_id]
            wrong += hit.item.id != setup.items[expected_id]
    for text in setup.misses:
        wrong += await knowledge.direct_answer(setup.bot_id, text, threshold) is not None
    return len(setup.questions) + len(setup.misses), right, wrong


async def latency(setup: Setup, index: KnowledgeIndex) -> list[float]:
    took = []
    for text, _ in setup.questions:
        start = time.perf_counter()
        await retrieve(setup.bot_id, text + " ?", index=index)  # a new text: the query vector is not cached
        took.append((time.perf_counter() - start) * 1000)
    return took


async def measure(options: argparse.Namespace) -> dict[str, Any]:
    data = json.loads(EVAL.read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory() as work:
        await db.open_database(f"sqlite://{Path(work) / 'eval.sqlite3'}")
        embedder = LocalEmbedder()
        index = KnowledgeIndex(embedder)
        sources = KnowledgeSources(embedder, index)
        try:
            setups = await load(data, sources)
            scoring = Scoring()
            results: dict[str, Any] = {"model": embedder.name, "scoring": scoring.__dict__, "setups": {}, "grid": []}
            for setup in setups:
                scores = await rankings(setup, index, scoring)
                tried, right, wrong = await direct_answers(setup, options.threshold) if setup.misses else (0, 0, 0)
                results["setups"][setup.name] = {
                    "questions": len(setup.questions),
                    **{name: {"top1": s.top(1), "top3": s.top(3), "mrr": s.mrr} for name, s in scores.items()},
                    "direct": {"tried": tried, "right": right, "wrong": wrong}}
            took = await latency(setups[0], index)
            results["latency_ms"] = {"p50": statistics.median(took), "p99": sorted(took)[int(len(took) * 0.99) - 1]}
            if options.grid:
                results["grid"] = await grid(setups, index)
        finally:
            await embedder.close()
            await db.close_database()
    return results


async def grid(setups: Sequence[Setup], index: KnowledgeIndex) -> list[dict[str, Any]]:
    """The words' weight tried on every setup: the worst setup's top-1 decides, then the mean MRR."""
    rows = []
    for words_weight in (0.0, 0.03, 0.06, 0.09, 0.12):
        scoring = Scoring(words_weight=words_weight)
        per = [(await rankings(setup, index, scoring))["both"] for setup in setups]
        rows.append({"words_weight": words_weight, "worst_top1": min(s.top(1) for s in per),
                     "worst_top3": min(s.top(3) for s in per), "mean_mrr": statistics.mean(s.mrr for s in per),
                     "per": {setup.name: (s.top(1), s.top(3)) for setup, s in zip(setups, per, strict=True)}})
    return sorted(rows, key=lambda row: (-row["worst_top1"], -row["mean_mrr"]))


def percent(value: float) -> str:
    return f"{value * 100:.0f}%"


def section(results: dict[str, Any], command: str) -> str:
    begin, end = marks(SCRIPT)
    lines = [begin, "",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
             f"{datetime.now(UTC):%Y-%m-%d}; `{command}`. Model: `{results['model']}` (in process, one thread). "
             f"Scoring: cosine + {results['scoring']['words_weight']:g} × the share of the question's words held, "
             f"over {results['scoring']['candidates']} candidates from each ranking.", "",
             "| FAQ and questions | questions | words top-1 | top-3 | MRR | vectors top-1 | top-3 | MRR "
             "| both top-1 | top-3 | MRR | direct answers (right / wrong of tried) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, row in results["setups"].items():
        cells = [f"{percent(row[kind]['top1'])} | {percent(row[kind]['top3'])} | {row[kind]['mrr']:.2f}"
                 for kind in ("words", "vectors", "both")]
        direct = row["direct"]
        direct_cell = f"{direct['right']} / {direct['wrong']} of {direct['tried']}" if direct["tried"] else "—"
        lines.append(f"| {name} | {row['questions']} | " + " | ".join(cells) + f" | {direct_cell} |")
    lines += ["", f"Retrieval of one question (embedding it, vectors, full text, fusion, loading the passages), "
                  f"39 items: p50 {results['latency_ms']['p50']:.1f} ms, p99 {results['latency_ms']['p99']:.1f} ms."]
    if results["grid"]:
        names = list(results["setups"])
        lines += ["", "The words' weight, tried on all five setups (top-1 / top-3 of each; sorted by the worst "
                      "setup's top-1, then the mean MRR):", "",
                  "| words weight | " + " | ".join(names) + " | mean MRR |",
                  "| --- | " + " | ".join("---" for _ in names) + " | --- |"]
        lines += [f"| {row['words_weight']:g} | " + " | ".join(
            f"{percent(row['per'][name][0])} / {percent(row['per'][name][1])}" for name in names)
            + f" | {row['mean_mrr']:.3f} |" for row in results["grid"]]
    return "\n".join([*lines, "", end])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--threshold", type=float, default=0.8, help="the direct-answer bar (KB_DIRECT_THRESHOLD)")
    parser.add_argument("--no-grid", dest="grid", action="store_false", help="skip the fusion weights' grid")
    parser.add_argument("--no-write", dest="write", action="store_false", help="print only")
    options = parser.parse_args()
    results = asyncio.run(measure(options))
    command = os.environ.get("BENCH_LAUNCHER", "bash bench/run.sh knowledge_quality")
    text = section(results, command)
    print(text)
    if options.write:
        write_section(DOC_PATH, SCRIPT, text, "Knowledge retrieval quality")


if __name__ == "__main__":
    main()
