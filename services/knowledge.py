"""The knowledge base: full-text search (FTS5 / tsvector), the bar for a direct answer, its file formats."""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tortoise import connections
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from models import JobStatus, KnowledgeItem, OutboxJob
from services import outbox
from services.outbox import JobKind

_WORD = re.compile(r"\w+", re.UNICODE)
_MAX_QUERY_WORDS = 32


# Indexing work (services.knowledge_sources) runs in its own outbox queue, never in a request.
QUEUE = "knowledge"
EMBED_JOB = JobKind.KB_EMBED

MAX_QUESTION_CHARS = 500
MAX_ANSWER_CHARS = 4000  # with its header, a knowledge answer fits one Telegram message
MAX_TAGS_CHARS = 512  # the column's size


class KnowledgeError(Exception):
    """A knowledge-base change or query that cannot be done, as a stable `code` and its parameters.

    The Mini App translates the code; the parameters fill in its message (`field`, `limit`, `row`...).
    """

    def __init__(self, code: str, **params: Any) -> None:
        super().__init__(code, params)
        self.code = code
        self.params = params

    def __str__(self) -> str:
        details = ", ".join(f"{name}={value!r}" for name, value in self.params.items())
        return f"{self.code} ({details})" if details else self.code


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def question_key(question: str) -> str:
    return hashlib.sha256(" ".join(words(question)).encode()).hexdigest()


@dataclass(frozen=True)
class KnowledgeHit:
    item: KnowledgeItem
    rank: float  # the database's relevance: larger is better
    overlap: float  # how well the customer's words and the item's question agree, 0..1
    coverage: float  # the share of the customer's words found anywhere in the item, 0..1


def overlap(asked: str, known_question: str) -> float:
    """F1 of the word sets: 1.0 when the customer asked the item's question in its words.

    Full-text rank orders candidates but says nothing absolute; a direct answer needs the
    customer to have asked (nearly) this question, so the bar is on word agreement.
    """
    asked_words, known_words = set(words(asked)), set(words(known_question))
    common = len(asked_words & known_words)
    if not common:
        return 0.0
    precision, recall = common / len(asked_words), common / len(known_words)
    return 2 * precision * recall / (precision + recall)


def coverage(asked: str, item: KnowledgeItem) -> float:
    asked_words = set(words(asked))
    if not asked_words:
        return 0.0
    return len(asked_words & set(words(f"{item.question} {item.tags} {item.answer}"))) / len(asked_words)


# Uzbek's oʻ and gʻ are typed with any of these. Only U+02BB is a letter to the full-text tokenizers
# (one word, "boʻladi"); the others split a word in two ("bo", "ladi"). A query asks for both forms.
_APOSTROPHES = re.compile(r"(?<=\w)[ʻʼ‘’'`´](?=\w)")
_UZBEK_MARK = "ʻ"
# Words at least this long are also looked for by their beginning, which stands in for stemming in
# Russian and Uzbek ("доставку" finds "доставка", "yetkazib" finds "yetkazish").
PREFIX_FROM = 6
PREFIX_KEEP = 5


# The commonest function words of English, Russian and Uzbek, left out of full-text queries: in every
# other passage, they made a query over 100,000 chunks rank a third of them (docs/BENCHMARKS.md).
# Written here because no package has Uzbek's, and stopwords-iso's English and Russian lists also drop
# words customers mean ("open", "order", "free", "время", "работа").
_STOPWORDS_TEXT = """
a an the and or but if of to in on at by for with from about as into over is are was were be been am
do does did have has had i me my we our us you your u ur he she it its they them their this that these
those there here what which who whom whose when where why how can could will would shall should may
might must not no yes so too very just any some all please hi hello thanks thank pls plz
и в во не что он на я с со как а то все она так его но да ты к у же вы за бы по только ее мне было вот
от меня еще нет о из ему теперь когда даже ну вдруг ли если уже или ни быть был него до вас нибудь
опять уж вам ведь там потом себя ничего ей может они тут где есть надо ней для мы тебя их чем была
сам чтоб без будто чего раз тоже себе под будет ж тогда кто этот того потому этого какой совсем ним
здесь этом почти мой тем чтобы нее сейчас были куда зачем всех никогда можно при наконец об
другой хоть после над больше тот через эти нас про всего них какая много разве эту моя впрочем
хорошо свою этой перед иногда лучше чуть том нельзя такой им более всегда конечно всю между
здравствуйте привет спасибо пожалуйста подскажите скажите
va bilan uchun ham lekin yoki bu shu u men sen biz siz ular bor yo'q yoʻq emas edi ekan kerak mi mu
qanday nima qachon qayerda qayer nega necha qancha ha salom rahmat iltimos assalomu alaykum
"""
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())


@dataclass(frozen=True)
class Term:
    text: str
    prefix: bool = False  # matches every word that starts with `text`


def query_terms(text: str) -> list[list[Term]]:
    """What a full-text query looks for, one group per word of the question: the word, the other
    spelling of an Uzbek word with an apostrophe, and the beginning of a long word. Function words are
    left out unless the question has nothing else; at most `_MAX_QUERY_WORDS` words."""
    text = text.lower()
    if _APOSTROPHES.search(text):
        joined = _WORD.findall(_APOSTROPHES.sub(_UZBEK_MARK, text))
        # the split spelling as a phrase ("bo ladimi"): its halves alone say little
        groups = [[word, " ".join(_WORD.findall(word.replace(_UZBEK_MARK, " ")))] for word in joined]
    else:
        groups = [[word] for word in _WORD.findall(text)]
    content = [group for group in groups if group[0] not in STOPWORDS] or groups
    unique = list({group[0]: group for group in content}.values())[:_MAX_QUERY_WORDS]
    return [_variants(group) for group in unique]


def _variants(spellings: Sequence[str]) -> list[Term]:
    terms = [Term(spelling) for spelling in dict.fromkeys(spellings)]
    terms += [Term(spelling[:PREFIX_KEEP], prefix=True) for spelling in dict.fromkeys(spellings)
              if len(spelling) >= PREFIX_FROM and _UZBEK_MARK not in spelling[:PREFIX_KEEP] and " " not in spelling]
    return list(dict.fromkeys(terms))


def _fts5_term(term: Term) -> str:
    return f'"{term.text}"' + ("*" if term.prefix else "")


def _ts_term(term: Term) -> str:
    if " " in term.text:  # a phrase: its words in this order
        return "(" + " <-> ".join(f"'{word}'" for word in term.text.split()) + ")"
    return f"'{term.text}'" + (":*" if term.prefix else "")


def fts5_query(groups: Sequence[Sequence[Term]], *, every: bool = False) -> str:
    """An FTS5 MATCH expression: any of the words, or (`every`) all of them, each in any spelling. Each
    term is quoted, so no word is taken for an operator."""
    if every:
        return " AND ".join("(" + " OR ".join(_fts5_term(term) for term in group) + ")" for group in groups)
    return " OR ".join(_fts5_term(term) for group in groups for term in group)


def tsquery(groups: Sequence[Sequence[Term]], *, every: bool = False) -> str:
    """The same as a `to_tsquery('simple', ...)` expression."""
    if every:
        return " & ".join("(" + " | ".join(_ts_term(term) for term in group) + ")" for group in groups)
    return " | ".join(_ts_term(term) for group in groups for term in group)


async def search(bot_id: int, text: str, limit: int = 3) -> list[KnowledgeHit]:
    terms = query_terms(text)
    if not terms:
        return []
    connection = connections.get("default")
    if connection.capabilities.dialect == "postgres":
        rows = await connection.execute_query_dict(
            "SELECT id, ts_rank(search, query) AS rank FROM knowledge_item, to_tsquery('simple', $1) query "
            "WHERE bot_id = $2 AND enabled AND search @@ query ORDER BY rank DESC, id LIMIT $3",
            [tsquery(terms), bot_id, limit],
        )
    else:
        # bm25 is smaller for better matches; question words weigh most, then tags, then answers.
        rows = await connection.execute_query_dict(
            "SELECT k.id AS id, -bm25(knowledge_fts, 10.0, 1.0, 3.0) AS rank FROM knowledge_fts "
            "JOIN knowledge_item k ON k.id = knowledge_fts.rowid "
            "WHERE knowledge_fts MATCH ? AND k.bot_id = ? AND k.enabled = 1 ORDER BY rank DESC, k.id LIMIT ?",
            [fts5_query(terms), bot_id, limit],
        )
    items = {item.id: item for item in await KnowledgeItem.filter(id__in=[row["id"] for row in rows])}
    return [KnowledgeHit(item, float(row["rank"]), overlap(text, item.question), coverage(text, item))
            for row in rows if (item := items.get(row["id"])) is not None]


def asks_all_of(asked: str, known_question: str) -> bool:
    """Every word of the item's question is in the customer's message.

    A one-word swap keeps a high F1 ("do you sell SIM cards" against "Do you sell gift cards?" is
    0.8) and is exactly the close but wrong question a direct answer must not take.
    """
    return set(words(known_question)) <= set(words(asked))


DIRECT_CANDIDATES = 5  # the best items by words that a direct answer is chosen from


async def direct_answer(bot_id: int, text: str, threshold: float) -> KnowledgeHit | None:
    """The item to answer with, without the AI, when the customer asked its question: all of its
    words, and not many more (word F1 at least `threshold`)."""
    return direct_among(await search(bot_id, text, limit=DIRECT_CANDIDATES), text, threshold)


def direct_among(found: Sequence[KnowledgeHit], text: str, threshold: float) -> KnowledgeHit | None:
    """direct_answer's choice among `found`, `search`'s hits for `text` (of any limit: its first ones are the
    same whatever the limit), so one search serves the direct answer and the AI's passages."""
    hits = [hit for hit in found[:DIRECT_CANDIDATES] if asks_all_of(text, hit.item.question)]
    best = max(hits, key=lambda hit: hit.overlap, default=None)
    return best if best is not None and best.overlap >= threshold else None


async def queue_items_embedding(bot_id: int) -> None:
    """After items changed (call inside that transaction): their vectors are made, or dropped, in the
    background; meanwhile retrieval finds them by their words."""
    lane = f"kb-items:{bot_id}"
    if not await OutboxJob.filter(queue=QUEUE, lane=lane, kind=EMBED_JOB, status=JobStatus.PENDING).exists():
        await outbox.enqueue(bot_id, EMBED_JOB, {"bot": bot_id}, lane=lane, queue=QUEUE)


async def count_hit(item: KnowledgeItem) -> None:
    await KnowledgeItem.filter(id=item.id).update(hit_count=F("hit_count") + 1)


@dataclass(frozen=True)
class Entry:
    question: str
    answer: str
    tags: str = ""


def clean_entry(question: str, answer: str, tags: str = "") -> Entry:
    """The entry as stored: a one-line question, `\\n` line ends, tags as `a, b`; raises KnowledgeError.

    One shape for every way in (the editor, a file), so that exports read back as they were.
    """
    question = " ".join(question.split())
    answer = "\n".join(answer.splitlines()).strip()
    tags = ", ".join(dict.fromkeys(tag for tag in (" ".join(part.split()) for part in tags.split(",")) if tag))
    if not words(question):
        raise KnowledgeError("empty_question")
    if not answer:
        raise KnowledgeError("empty_answer")
    for name, value, limit in (("question", question, MAX_QUESTION_CHARS), ("answer", answer, MAX_ANSWER_CHARS),
                               ("tags", tags, MAX_TAGS_CHARS)):
        if len(value) > limit:
            raise KnowledgeError("too_long", field=name, limit=limit)
    return Entry(question, answer, tags)


def parse_csv(text: str) -> list[Entry]:
    """`question,answer[,tags]`; a first row naming those columns is a header."""
    rows = [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]
    if rows and [cell.strip().lower() for cell in rows[0][:2]] == ["question", "answer"]:
        rows = rows[1:]
    entries = []
    for number, row in enumerate(rows, start=1):
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            raise ValueError(f"row {number}: expected question,answer[,tags]")
        entries.append(Entry(row[0].strip(), row[1].strip(), row[2].strip() if len(row) > 2 else ""))
    return entries


def format_csv(entries: Iterable[Entry]) -> str:
    """What `parse_csv` reads back: a header row, then `question,answer,tags`, quoted where needed."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["question", "answer", "tags"])
    writer.writerows([entry.question, entry.answer, entry.tags] for entry in entries)
    return out.getvalue()


# An answer's line that starts with `## ` would read as the next question: written with a backslash
# before it (one more backslash for a line that had some already), read back without it.
_ESCAPED_HEADING = re.compile(r"^(\\*)## ")


def format_markdown(entries: Iterable[Entry], title: str = "Knowledge base") -> str:
    """What `parse_markdown` reads back: `## question`, the answer, and a `Tags:` line when needed."""
    parts = [f"# {title}\n"]
    for entry in entries:
        answer = "\n".join(_ESCAPED_HEADING.sub(r"\\\1## ", line) for line in entry.answer.split("\n"))
        tags_line = entry.tags or answer.rsplit("\n", 1)[-1].lower().startswith("tags:")
        parts.append(f"## {entry.question}\n\n{answer}\n" + (f"\nTags: {entry.tags}\n" if tags_line else ""))
    return "\n".join(parts)


def parse_markdown(text: str) -> list[Entry]:
    """`## question` headings, each followed by its answer; an optional `Tags: a, b` last line.

    A line of an answer that starts with `\\## ` is the answer's own `## ` line (see `format_markdown`).
    """
    entries: list[Entry] = []
    question: str | None = None
    body: list[str] = []

    def flush() -> None:
        if question is None:
            return
        lines = list(body)
        tags = ""
        while lines and not lines[-1].strip():
            lines.pop()
        if lines and lines[-1].lower().startswith("tags:"):
            tags = lines.pop().split(":", 1)[1].strip()
        answer = "\n".join(lines).strip()
        if not answer:
            raise ValueError(f"question {question!r} has no answer")
        entries.append(Entry(question, answer, tags))

    for line in text.splitlines():
        if line.startswith("## "):
            flush()
            question, body = line[3:].strip(), []
        elif question is not None:
            body.append(_ESCAPED_HEADING.sub(lambda match: match.group(1)[1:] + "## ", line))
    flush()
    return entries


def parse_file(path: Path) -> list[Entry]:
    return parse_text(path.name, path.read_text(encoding="utf-8-sig"))


def parse_text(filename: str, text: str) -> list[Entry]:
    """A knowledge file's entries, the format told by its name; raises ValueError saying what is wrong."""
    suffix = Path(filename).suffix.lower()
    text = text.removeprefix("\ufeff")
    if suffix == ".csv":
        return parse_csv(text)
    if suffix in (".md", ".markdown"):
        return parse_markdown(text)
    raise ValueError("knowledge files are .csv (question,answer[,tags]) or .md (## question, then the answer)")


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0


async def import_entries(bot_id: int, entries: Iterable[Entry],
                         progress: Callable[[int], None] = lambda done: None) -> ImportReport:
    """Create or update items by question, all or nothing: importing the same file twice changes nothing."""
    report = ImportReport()
    async with in_transaction():
        for entry in entries:
            key = question_key(entry.question)
            item = await KnowledgeItem.get_or_none(bot_id=bot_id, question_key=key)
            if item is None:
                await KnowledgeItem.create(bot_id=bot_id, question=entry.question, answer=entry.answer,
                                           tags=entry.tags, question_key=key)
                report.created += 1
            elif (item.question, item.answer, item.tags) != (entry.question, entry.answer, entry.tags):
                item.question, item.answer, item.tags = entry.question, entry.answer, entry.tags
                item.embedding_model = ""  # its meaning changed: embedded again in the background
                await item.save(update_fields=["question", "answer", "tags", "embedding_model", "updated_at"])
                report.updated += 1
            else:
                report.unchanged += 1
            progress(1)
        if report.created or report.updated:
            await queue_items_embedding(bot_id)
    return report
