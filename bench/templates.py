"""The template library's search on 10,000 templates: p50 and p99 per query shape, SQLite and PostgreSQL.

A fresh database per profile, migrated by Frontdesk's migrations, gets the shipped library
(`seed_library`) and synthetic templates up to `--templates`: English, Russian and Uzbek (half, a
third, a sixth), their words drawn from the shipped templates' own vocabulary of that language with
Zipf-like frequencies (so some words are everywhere and most are rare, as in real text), with
`{{variables}}`, list lines and tags. 60% are public (as a large shared library would be: the worst
case for search, since every public match is visible), 40% belong to 400 customers; the measured
customer owns 25.

Each query is `services.studio.templates.search(customer, q, limit=20)`: the product's function, through
Tortoise, highlighting included; the time is the whole `await`. The query shapes: one word, two
words, a prefix as typed (3–4 letters), the most frequent words (matching thousands of templates),
a pasted phrase of four words, a word that matches nothing, the empty query (the most used) and the
tag list. Queries are random, in the three languages, interleaved across shapes; each round runs
every shape, and the reported figure is the median over the rounds of each round's p50 or p99.

Each profile runs in its own process (Tortoise keeps one dialect's SQL per process).
`bash bench/run.sh templates` starts a throwaway PostgreSQL and runs this.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common import DOC_PATH, ROOT, marks, write_section
from ingest import code_version, machine, scratch_database
from tortoise import connections
from tortoise.transactions import in_transaction

from bot import db
from models import Bot, PromptTemplate, User
from services.studio import templates
from services.studio.template_search import Query

BEGIN_MARK, END_MARK = marks("templates.py")
TARGET_MS = 20.0
LOCALES = (("en", 0.5), ("ru", 0.33), ("uz", 0.17))
PUBLIC_SHARE = 0.6
CUSTOMERS = 400
MEASURED_OWN = 25
WORD = re.compile(r"[^\W_]+")
SHAPES = ("one word", "one word, in its language", "two words", "prefix, as typed", "most frequent word",
          "most frequent word, in its language", "two frequent words", "pasted phrase (4 words)", "no match",
          "empty query (most used)", "tag list")
LAYOUTS = {
    "own": "only the shipped templates are public; the rest belong to 400 customers",
    "shared": "60% are public (a large shared library: every public match is visible, the worst case)",
}


# --- the data ------------------------------------------------------------------------------------


@dataclass
class Vocabulary:
    words: list[str]  # most frequent first
    weights: list[float]
    tags: list[str]
    variables: list[str]

    def pick(self, rng: random.Random, count: int) -> list[str]:
        return rng.choices(self.words, self.weights, k=count)

    def ranked(self, rng: random.Random, low: int, high: int, min_length: int = 2) -> str:
        while True:
            word = self.words[rng.randrange(low, min(high, len(self.words)))]
            if len(word) >= min_length:
                return word


def vocabularies() -> dict[str, Vocabulary]:
    """Each language's words as its shipped templates use them, most frequent first."""
    found: dict[str, Vocabulary] = {}
    shipped = templates.shipped_templates()
    for locale, _ in LOCALES:
        drafts = [draft for slug, draft in shipped.items() if slug.startswith(f"{locale}/")]
        counts = Counter(word.lower() for draft in drafts
                         for word in WORD.findall(re.sub(r"\{\{\w+\}\}", " ", f"{draft.title} {draft.description} "
                                                                                  f"{draft.body}"))
                         if len(word) > 1 and not word.isdigit())
        words = [word for word, _ in counts.most_common()]
        found[locale] = Vocabulary(words, [1 / (rank + 1) ** 1.05 for rank in range(len(words))],
                                   sorted({tag for draft in drafts for tag in draft.tags}),
                                   sorted({name for draft in drafts for name in templates.variables_of(draft.body)}))
    return found


def sentence(vocabulary: Vocabulary, rng: random.Random, low: int, high: int) -> str:
    words = vocabulary.pick(rng, rng.randint(low, high))
    return " ".join(words).capitalize()


def synthetic(vocabulary: Vocabulary, locale: str, rng: random.Random) -> dict[str, Any]:
    lines = []
    for _ in range(rng.randint(4, 12)):
        line = sentence(vocabulary, rng, 5, 16) + rng.choice([".", ".", ":", "?"])
        if rng.random() < 0.25:
            line = f"- {line}"
        if rng.random() < 0.3:
            line += " {{" + rng.choice(vocabulary.variables) + "}}"
        lines.append(line)
    return {"locale": locale, "title": sentence(vocabulary, rng, 2, 6), "description": sentence(vocabulary, rng, 6, 18),
            "body": "\n".join(lines), "tags": ", ".join(sorted(set(rng.sample(vocabulary.tags, rng.randint(1, 4))))),
            "uses": int(rng.expovariate(0.2))}


async def load(total: int, layout: str, rng: random.Random) -> tuple[User, dict[str, int]]:
    bot = await Bot.create(telegram_id=7000000009, username="bench_bot")
    await User.bulk_create([User(bot=bot, telegram_id=800_000_000 + n, first_name=f"C{n}") for n in range(CUSTOMERS)])
    customers = await User.filter(bot=bot).order_by("id")
    measured = customers[0]
    await templates.seed_library()
    words = vocabularies()
    shipped = await PromptTemplate.all().count()
    rows = []
    for number in range(total - shipped):
        locale = rng.choices([code for code, _ in LOCALES], [share for _, share in LOCALES])[0]
        owner = None
        if number < MEASURED_OWN:
            owner = measured.id
        elif layout == "own" or rng.random() > PUBLIC_SHARE:
            owner = customers[rng.randrange(1, len(customers))].id
        rows.append(PromptTemplate(owner_id=owner, **synthetic(words[locale], locale, rng)))
    for start in range(0, len(rows), 1000):
        async with in_transaction():
            await PromptTemplate.bulk_create(rows[start:start + 1000])
    connection = connections.get("default")
    if connection.capabilities.dialect == "postgres":
        await connection.execute_script("VACUUM ANALYZE prompt_template")
    else:
        await connection.execute_script("INSERT INTO prompt_template_fts(prompt_template_fts) VALUES ('optimize')")
        await connection.execute_script("ANALYZE")
    counts = {"templates": await PromptTemplate.all().count(),
              "public": await PromptTemplate.filter(owner_id__isnull=True).count(),
              "measured own": await PromptTemplate.filter(owner_id=measured.id).count(),
              **{locale: await PromptTemplate.filter(locale=locale).count() for locale, _ in LOCALES}}
    return measured, counts


def queries(shape: str, count: int, rng: random.Random) -> list[tuple[str, str | None]]:
    """`count` queries of a shape, in the three languages; with the language to narrow to, or None."""
    words = vocabularies()
    made: list[tuple[str, str | None]] = []
    for _ in range(count):
        locale = rng.choices([code for code, _ in LOCALES], [share for _, share in LOCALES])[0]
        vocabulary = words[locale]
        if shape.startswith("one word"):
            query = vocabulary.ranked(rng, 30, 400, 3)
        elif shape == "two words":
            query = f"{vocabulary.ranked(rng, 10, 300, 3)} {vocabulary.ranked(rng, 10, 300, 3)}"
        elif shape == "prefix, as typed":
            query = vocabulary.ranked(rng, 10, 400, 6)[:rng.randint(3, 4)]
        elif shape.startswith("most frequent word"):
            query = vocabulary.ranked(rng, 0, 5)
        elif shape == "two frequent words":
            query = f"{vocabulary.ranked(rng, 0, 15)} {vocabulary.ranked(rng, 0, 15)}"
        elif shape == "pasted phrase (4 words)":
            query = " ".join(vocabulary.ranked(rng, 0, 200) for _ in range(4)) + " "
        elif shape == "no match":
            query = "".join(rng.choice("bcdfghjklmnpqrstvwxz") for _ in range(5)) + str(rng.randint(10, 99))
        else:
            query = ""
        made.append((query, locale if shape.endswith("in its language") else None))
    return made


async def matches(user: User, query: str, locale: str | None) -> int:
    """How many templates the customer may see the query finds (for the report, not timed)."""
    parsed = Query.parse(query)
    narrow = "" if locale is None else " AND t.locale = '" + locale + "'"
    connection = connections.get("default")
    if not parsed.phrases:
        rows = await connection.execute_query_dict(
            f"SELECT count(*) AS n FROM prompt_template t WHERE (t.owner_id IS NULL OR t.owner_id = {user.id})")
    elif connection.capabilities.dialect == "postgres":
        rows = await connection.execute_query_dict(
            "SELECT count(*) AS n FROM prompt_template t, to_tsquery('simple', $1) query WHERE t.search @@ query "
            f"AND (t.owner_id IS NULL OR t.owner_id = $2){narrow}", [parsed.tsquery(), user.id])
    else:
        rows = await connection.execute_query_dict(
            "SELECT count(*) AS n FROM prompt_template_fts JOIN prompt_template t ON t.id = prompt_template_fts.rowid "
            f"WHERE prompt_template_fts MATCH ? AND (t.owner_id IS NULL OR t.owner_id = ?){narrow}",
            [parsed.fts5(), user.id])
    return int(rows[0]["n"])


class NotDone(Exception):
    """The search the benchmark times did not return what the templates hold."""


def check_answers(sets: dict[str, list[tuple[str, str | None]]], answers: dict[tuple[str, str, str | None], Any],
                  counted: dict[str, list[int]]) -> None:
    """Each timed search returned a full page of what it matches (counted apart, in SQL), or all of it
    when fewer match; the tag list is not empty; and every shape but "no match" found something."""
    for shape, counts in counted.items():
        for (query, locale), count in zip(sets[shape], counts, strict=False):
            page = answers[shape, query, locale]
            if len(page.hits) != min(20, count) or page.has_more != (count > 20):
                raise NotDone(f"{shape} {query!r}: {len(page.hits)} hits (has_more={page.has_more}) "
                              f"where {count} templates match")
        if shape == "no match" and any(counts):
            raise NotDone("a query meant to match nothing matched templates")
        if shape != "no match" and not any(counts):
            raise NotDone(f"no query of the shape {shape!r} matched anything: its timings measure nothing")
    if "tag list" in sets and not all(answers["tag list", query, locale] for query, locale in sets["tag list"]):
        raise NotDone("the tag list came back empty")


async def measure_profile(url: str, layout: str, options: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(2026)
    await db.open_database(url)
    try:
        started = time.perf_counter()
        user, counts = await load(options.templates, layout, rng)
        loaded = time.perf_counter() - started
        sets = {shape: queries(shape, options.queries, rng) for shape in SHAPES}

        def call(shape: str, query: str, locale: str | None) -> Awaitable[Any]:
            if shape == "tag list":
                return templates.tags(user)
            return templates.search(user, query, locale=locale, limit=20)

        for shape in SHAPES:  # warm-up
            for query, locale in sets[shape][:5]:
                await call(shape, query, locale)
        rounds: dict[str, list[list[float]]] = {shape: [] for shape in SHAPES}
        answers: dict[tuple[str, str, str | None], Any] = {}  # each query's last answer, checked below
        for _ in range(options.rounds):
            work = [(shape, query, locale) for shape in SHAPES for query, locale in sets[shape]]
            rng.shuffle(work)
            seconds: dict[str, list[float]] = {shape: [] for shape in SHAPES}
            for shape, query, locale in work:
                begun = time.perf_counter()
                answers[shape, query, locale] = await call(shape, query, locale)
                seconds[shape].append(time.perf_counter() - begun)
            for shape in SHAPES:
                rounds[shape].append(seconds[shape])
        counted = {shape: [await matches(user, query, locale) for query, locale in sets[shape][:40]]
                   for shape in SHAPES if shape != "tag list"}
        check_answers(sets, answers, counted)
        found = {shape: statistics.median(counts) for shape, counts in counted.items()}
        examples = {shape: [query.strip() for query, _ in sets[shape][:3]] for shape in SHAPES
                    if shape not in ("empty query (most used)", "tag list")}
        connection = connections.get("default")
        if connection.capabilities.dialect == "postgres":
            version = (await connection.execute_query_dict("SELECT current_setting('server_version') AS v"))[0]["v"]
            software = f"PostgreSQL {version}"
        else:
            version = (await connection.execute_query_dict("SELECT sqlite_version() AS v"))[0]["v"]
            software = f"SQLite {version}"
        return {"counts": counts, "loaded": loaded, "rounds": rounds, "matches": found, "examples": examples,
                "software": software}
    finally:
        await db.close_database()


# --- the report ----------------------------------------------------------------------------------


def percentile(seconds: Sequence[float], share: float) -> float:
    ordered = sorted(seconds)
    return 1000 * ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def figure(result: dict[str, Any], shape: str, share: float) -> float:
    return statistics.median(percentile(seconds, share) for seconds in result["rounds"][shape])


def table(results: dict[str, dict[str, Any]], layout: str) -> str:
    runs = {name: result for name, result in results.items() if name.endswith(f"/{layout}")}
    names = [name.split("/")[0] for name in runs]
    lines = ["| query shape | examples | visible matches (median) | " + " | ".join(
        f"{name}: p50 ms | {name}: p99 ms" for name in names) + " |",
        "| --- | --- | ---: |" + " ---: | ---: |" * len(names)]
    first = next(iter(runs.values()))
    for shape in SHAPES:
        examples = ", ".join(f"`{q}`" for q in first["examples"].get(shape, [])) or "—"
        found = first["matches"].get(shape)
        cells = []
        for result in runs.values():
            p99 = figure(result, shape, 0.99)
            cells += [f"{figure(result, shape, 0.5):.2f}", f"{p99:.2f}" if p99 < TARGET_MS else f"**{p99:.2f}**"]
        lines.append(f"| {shape} | {examples} | {'—' if found is None else f'{found:,.0f}'} | " + " | ".join(cells)
                     + " |")
    return "\n".join(lines)


def section(options: argparse.Namespace, results: dict[str, dict[str, Any]], command: str) -> str:
    layouts = list(dict.fromkeys(name.split("/")[1] for name in results))
    software = list(dict.fromkeys(result["software"] for result in results.values()))
    parts = [
        BEGIN_MARK,
        f"- **Date:** {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- **Machine:** {machine()}",
        "- **Software:** " + "; ".join(software) + " (PostgreSQL with its defaults; SQLite a file, in WAL mode as "
        "Tortoise opens it)",
        f"- **Frontdesk:** commit {code_version()}",
        f"- **Command:** {command}",
        f"- **Load:** {options.queries} random queries per shape and round, interleaved, one at a time, after a "
        f"warm-up; {options.rounds} rounds; each cell is the median over the rounds of that round's p50 or p99. "
        "`search(customer, q, locale=..., limit=20)` as the API calls it (ranking, the page's rows, "
        "highlighting), and `tags(customer)`.",
    ]
    for layout in layouts:
        runs = {name: result for name, result in results.items() if name.endswith(f"/{layout}")}
        counts = next(iter(runs.values()))["counts"]
        misses = [f"{shape} ({name.split('/')[0]})" for name, result in runs.items() for shape in SHAPES
                  if figure(result, shape, 0.99) >= TARGET_MS]
        parts += [
            "", f"**{counts['templates']:,} templates, {LAYOUTS[layout]}:** {counts['en']:,} English, "
            f"{counts['ru']:,} Russian, {counts['uz']:,} Uzbek; {counts['public']:,} public; the measured customer "
            f"owns {counts['measured own']}. Loaded in " + ", ".join(f"{result['loaded']:.0f} s ({name.split('/')[0]})"
                                                              for name, result in runs.items()) + ".",
            "", table(results, layout), "",
            f"Over the target (p99 ≥ {TARGET_MS:.0f} ms): {', '.join(misses) if misses else 'none'}."]
    parts.append(END_MARK)
    return "\n".join(parts)


# --- running -------------------------------------------------------------------------------------


def child(url: str, layout: str, options: argparse.Namespace, out: Path) -> int:
    if options.uncapped:
        templates.MAX_RANKED = None
    try:
        result = asyncio.run(measure_profile(url, layout, options))
    except NotDone as error:
        print(f"templates: the work did not happen: {error}", file=sys.stderr)
        return 1
    out.write_text(json.dumps(result), encoding="utf-8")
    return 0


def run_profile(profile: str, layout: str, options: argparse.Namespace, argv: Sequence[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as work:
        out = Path(work) / "result.json"
        with scratch_database(profile, work, "frontdesk_templates") as url:
            subprocess.run([sys.executable, __file__, *argv, "--child", layout, "--child-url", url,
                            "--child-out", str(out)], check=True, cwd=ROOT)
        result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
        return result


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--templates", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=150, help="queries per shape and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", default="sqlite,postgres")
    parser.add_argument("--layout", default="own,shared", help="own: only the shipped ones public; shared: 60%%")
    parser.add_argument("--no-doc", action="store_true", help="only print the tables")
    parser.add_argument("--uncapped", action="store_true",
                        help="rank every match (services.studio.templates.MAX_RANKED = None), to see what "
                             "the cap saves")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-url", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    options = parse(argv)
    if options.child:
        return child(options.child_url, options.child, options, Path(options.child_out))
    names = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
    try:
        results = {f"{names.get(profile, profile)}/{layout}": run_profile(profile, layout, options, argv)
                   for layout in options.layout.split(",") for profile in options.profile.split(",")}
    except subprocess.CalledProcessError:
        return 1  # a measurement's own check failed; it said why
    for layout in options.layout.split(","):
        print(f"\n{LAYOUTS[layout]}\n" + table(results, layout))
    command = f"`{shlex.join(['python', 'bench/templates.py', *argv])}`"
    if launcher := os.environ.get("BENCH_LAUNCHER", ""):
        command = f"`{launcher}`, which runs {command}"
    if not options.no_doc:
        write_section(DOC_PATH, "templates.py", section(options, results, command),
                      "Prompt template search on 10,000 templates")
        print(f"wrote {DOC_PATH}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
