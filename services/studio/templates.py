"""The prompt studio's template library: the shipped starter set, a customer's own templates, and search.

A person sees the public templates (shipped with the product: `slug` set, no owner) and their own,
never another customer's: a template they may not see is `not_found`, exactly like a missing one.
Shipped templates are read-only. Bad input raises `TemplateError(code, **params)`.

Search is the database's full-text index (migration 0008: FTS5 on SQLite, a weighted tsvector on
PostgreSQL) over title, tags, description and body, weighted 10 / 5 / 3 / 1, with the query's words
quoted (services.studio.template_search). The best `CANDIDATES` matches are ranked again here: a title
that is the query, then a title holding every word, then the index's relevance.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from tortoise import connections
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from models import PromptTemplate, User
from services.i18n import SUPPORTED_LOCALES, pick_locale
from services.studio.template_search import MAX_QUERY_CHARS, Query, highlight, snippet

SHIPPED_DIR = Path(__file__).parent.parent / "defaults" / "templates"

MAX_TITLE_CHARS = 200
MAX_DESCRIPTION_CHARS = 1_000
MAX_BODY_CHARS = 20_000
MAX_TAGS = 10
MAX_TAG_CHARS = 30
MAX_OWN_TEMPLATES = 500
MAX_PAGE = 50
CANDIDATES = 200  # matches ranked again here; a search pages through at most these
MAX_RANKED: int | None = 1_000  # public matches the database ranks at most (None: all of them)

Scope = Literal["all", "public", "mine"]

_VARIABLE = re.compile(r"\{\{\s*([a-z][a-z0-9_]*)\s*\}\}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


class TemplateError(Exception):
    """A template change or query that cannot be done, as a stable `code` and its parameters."""

    def __init__(self, code: str, **params: Any) -> None:
        super().__init__(code, params)
        self.code = code
        self.params = params

    def __str__(self) -> str:
        details = ", ".join(f"{name}={value!r}" for name, value in self.params.items())
        return f"{self.code} ({details})" if details else self.code


@dataclass(frozen=True)
class TemplateView:
    id: int
    slug: str | None  # shipped ones: "en/summarize-text"
    locale: str
    title: str
    description: str
    body: str
    tags: list[str]
    variables: list[str]  # the `{{name}}` placeholders in the body, in order of appearance
    uses: int
    shipped: bool  # read-only, shared by everyone
    mine: bool  # the caller's own
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Hit:
    template: TemplateView
    title_html: str  # escaped, with the matched words in <mark>
    description_html: str
    snippet_html: str  # a few lines of the body around the matches (its start without a query)
    rank: float | None  # the index's relevance, larger is better; None without a query


@dataclass(frozen=True)
class SearchPage:
    hits: list[Hit]
    has_more: bool
    next_offset: int | None
    locale: str | None  # the language the results were limited to, if any


@dataclass(frozen=True)
class TagCount:
    tag: str
    count: int


# --- text ----------------------------------------------------------------------------------------


def variables_of(body: str) -> list[str]:
    return list(dict.fromkeys(_VARIABLE.findall(body)))


def _clean_text(text: str) -> str:
    return _CONTROL.sub("", "\n".join(text.splitlines()))


def clean_tags(tags: str | Iterable[str]) -> list[str]:
    """`["Email", " sales  copy", "email"]` or `"Email, sales copy"` → `["email", "sales copy"]`."""
    parts = tags.split(",") if isinstance(tags, str) else [piece for tag in tags for piece in tag.split(",")]
    cleaned = [" ".join(_clean_text(part).lower().split()).lstrip("#").strip() for part in parts]
    unique = list(dict.fromkeys(tag for tag in cleaned if tag))
    if len(unique) > MAX_TAGS:
        raise TemplateError("too_many_tags", limit=MAX_TAGS)
    if any(len(tag) > MAX_TAG_CHARS for tag in unique):
        raise TemplateError("tag_too_long", limit=MAX_TAG_CHARS)
    return unique


@dataclass(frozen=True)
class Draft:
    title: str
    description: str
    body: str
    tags: list[str]
    locale: str


def clean(title: str, body: str, description: str = "", tags: str | Iterable[str] = "",
          locale: str = "en") -> Draft:
    """The template as stored: a one-line title, `\\n` line ends, tags normalised; raises TemplateError."""
    title = " ".join(_clean_text(title).split())
    description = _clean_text(description).strip()
    body = _clean_text(body).strip("\n").rstrip()
    if not title:
        raise TemplateError("empty_title")
    if not body.strip():
        raise TemplateError("empty_body")
    for name, value, limit in (("title", title, MAX_TITLE_CHARS), ("description", description, MAX_DESCRIPTION_CHARS),
                               ("body", body, MAX_BODY_CHARS)):
        if len(value) > limit:
            raise TemplateError("too_long", field=name, limit=limit)
    if locale not in SUPPORTED_LOCALES:
        raise TemplateError("bad_locale")
    return Draft(title, description, body, clean_tags(tags), locale)


# --- reading -------------------------------------------------------------------------------------


def _view(template: PromptTemplate, viewer: User | None) -> TemplateView:
    owner_id = template.owner_id
    return TemplateView(
        template.id, template.slug, template.locale, template.title, template.description, template.body,
        [tag for tag in template.tags.split(", ") if tag], variables_of(template.body), template.uses,
        template.slug is not None, viewer is not None and owner_id == viewer.id, template.created_at,
        template.updated_at)


class _Sql:
    """Parameters in the dialect's style: `?` for SQLite, `$n` for PostgreSQL."""

    def __init__(self, dialect: str) -> None:
        self.postgres = dialect == "postgres"
        self.values: list[Any] = []

    def __call__(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}" if self.postgres else "?"


def _visible(sql: _Sql, user: User | None, scope: Scope) -> str:
    """Which templates `user` may see, of the scope: the public ones (shipped), their own, or both."""
    if user is None and scope == "mine":
        return "1 = 0"  # someone the database does not know has none of their own
    if user is None or scope == "public":
        return "t.owner_id IS NULL"
    if scope == "mine":
        return f"t.owner_id = {sql(user.id)}"
    return f"(t.owner_id IS NULL OR t.owner_id = {sql(user.id)})"


def _narrowed(sql: _Sql, locale: str | None, tag: str | None) -> list[str]:
    clauses = []
    if locale is not None:
        clauses.append(f"t.locale = {sql(locale)}")
    if tag is not None:
        position = "strpos" if sql.postgres else "instr"
        clauses.append(f"{position}(', ' || t.tags || ',', {sql(f', {tag},')}) > 0")
    return clauses


def _tag_filter(tag: str | None) -> str | None:
    """A tag as stored (one that cannot be stored matches nothing, and is no error)."""
    if not tag:
        return None
    return " ".join(_clean_text(tag[:MAX_QUERY_CHARS]).lower().split()).lstrip("#").strip() or None


# bm25 is smaller for better matches: negated, larger is better, as ts_rank. Title 10, tags 5,
# description 3, body 1.
_BM25 = "-bm25(prompt_template_fts, 10.0, 5.0, 3.0, 1.0)"


def _sources(user: User | None, scope: Scope) -> list[tuple[str, bool]]:
    """The templates to search, in parts: (who may see them, whether the part is capped at MAX_RANKED).

    One's own are few (MAX_OWN_TEMPLATES) and always ranked; the public ones are capped."""
    public, own = ("t.owner_id IS NULL", True), (f"t.owner_id = {int(user.id)}" if user else "1 = 0", False)
    if user is None or scope == "public":
        return [public]
    return [own] if scope == "mine" else [own, public]


async def _ranked(query: Query, user: User | None, scope: Scope, locale: str | None,
                  tag: str | None) -> list[tuple[int, float]]:
    """The best CANDIDATES matches by the index's relevance, then ordered by how their titles match.

    Of the public templates, at most MAX_RANKED matches are ranked (in the order the index finds
    them: about the oldest, the shipped ones among them): a word in thousands of templates says little
    about any one of them, and ranking them all would cost more than the page is worth (see
    docs/BENCHMARKS.md). One's own are always ranked.
    """
    connection = connections.get("default")
    sql = _Sql(connection.capabilities.dialect)

    def cap(capped: bool) -> str:
        """A capped part's LIMIT, made where it stands in the text (SQLite's `?` are taken in order)."""
        return f" LIMIT {sql(MAX_RANKED)}" if capped and MAX_RANKED else ""

    parts = []
    for number, (visible, capped) in enumerate(_sources(user, scope)):
        if sql.postgres:
            # Weights for D, C, B, A: body 1, description 3, tags 5, title 10; long texts count a little less.
            tsquery = sql(query.tsquery())
            where = " AND ".join(["t.search @@ query", visible, *_narrowed(sql, locale, tag)])
            part = (f"SELECT t.id AS id, t.title AS title, t.uses AS uses, "
                    f"ts_rank('{{0.1, 0.3, 0.5, 1.0}}', t.search, query, 1) AS rank "
                    f"FROM prompt_template t, to_tsquery('simple', {tsquery}) query WHERE {where}{cap(capped)}")
        elif locale is None and tag is None:
            # Who may see a match is told by the owner index alone (`+rowid`: a filter, not a lookup
            # per id), so the wide rows are read for the candidates only.
            part = (f"SELECT rowid AS id, {_BM25} AS rank FROM prompt_template_fts "
                    f"WHERE prompt_template_fts MATCH {sql(query.fts5())} "
                    f"AND +rowid IN (SELECT t.id FROM prompt_template t WHERE {visible}){cap(capped)}")
        else:
            # The same filter first: only the rows one may see are read to check language and tags.
            where = " AND ".join([f"prompt_template_fts MATCH {sql(query.fts5())}",
                                  f"+prompt_template_fts.rowid IN (SELECT t.id FROM prompt_template t WHERE {visible})",
                                  *_narrowed(sql, locale, tag)])
            part = (f"SELECT t.id AS id, t.title AS title, t.uses AS uses, {_BM25} AS rank "
                    f"FROM prompt_template_fts JOIN prompt_template t ON t.id = prompt_template_fts.rowid "
                    f"WHERE {where}{cap(capped)}")
        parts.append(f"SELECT * FROM ({part}) p{number}")
    if not parts:
        return []
    matches = " UNION ALL ".join(parts)
    if not sql.postgres and locale is None and tag is None:
        statement = (f"SELECT t.id AS id, t.title AS title, t.uses AS uses, m.rank AS rank FROM ("
                     f"SELECT id, rank FROM ({matches}) ORDER BY rank DESC LIMIT {sql(CANDIDATES)}) m "
                     f"JOIN prompt_template t ON t.id = m.id")
    else:
        statement = f"SELECT * FROM ({matches}) m ORDER BY rank DESC, uses DESC, id LIMIT {sql(CANDIDATES)}"
    rows = await connection.execute_query_dict(statement, sql.values)
    rows.sort(key=lambda row: (-query.title_tier(row["title"]), -float(row["rank"]), -int(row["uses"]), row["id"]))
    return [(int(row["id"]), float(row["rank"])) for row in rows]


async def _listed(user: User | None, scope: Scope, locale: str | None, tag: str | None, offset: int,
                  limit: int) -> list[int]:
    """Without a query: one's own newest first ("mine"), else the most used, then the newest."""
    connection = connections.get("default")
    sql = _Sql(connection.capabilities.dialect)
    where = " AND ".join([_visible(sql, user, scope), *_narrowed(sql, locale, tag)])
    order = "t.updated_at DESC, t.id DESC" if scope == "mine" else "t.uses DESC, t.updated_at DESC, t.id DESC"
    rows = await connection.execute_query_dict(
        f"SELECT t.id AS id FROM prompt_template t WHERE {where} ORDER BY {order} "
        f"LIMIT {sql(limit)} OFFSET {sql(offset)}", sql.values)
    return [int(row["id"]) for row in rows]


async def search(user: User | None, query: str = "", *, locale: str | None = None, tag: str | None = None,
                 scope: Scope = "all", limit: int = 20, offset: int = 0,
                 prefer_locale: str | None = None) -> SearchPage:
    """The templates `user` may see that match `query` (all of them without one), best first.

    `locale` and `tag` narrow the results; `prefer_locale` narrows them to that language when it has
    any, else leaves every language in (the page says which: `SearchPage.locale`). `user` None: the
    public templates only (someone the database does not know yet).
    """
    limit = max(1, min(limit, MAX_PAGE))
    offset = max(0, offset)
    tag = _tag_filter(tag)
    if locale is None and prefer_locale is not None:
        page = await search(user, query, locale=prefer_locale, tag=tag, scope=scope, limit=limit, offset=offset)
        if page.hits or offset:
            return page
    parsed = Query.parse(query)
    if not parsed.phrases:
        ids = await _listed(user, scope, locale, tag, offset, limit + 1)
        ranks: dict[int, float | None] = {}
        highlighted = None
    else:
        ranked = await _ranked(parsed, user, scope, locale, tag)
        ids = [template_id for template_id, _ in ranked[offset:offset + limit + 1]]
        ranks = dict(ranked)
        highlighted = parsed
    has_more = len(ids) > limit
    ids = ids[:limit]
    found = {template.id: template for template in await PromptTemplate.filter(id__in=ids)}
    hits = []
    for template_id in ids:
        template = found.get(template_id)
        if template is None:  # deleted meanwhile
            continue
        view = _view(template, user)
        hits.append(Hit(view, highlight(view.title, highlighted), highlight(view.description, highlighted),
                        snippet(view.body, highlighted), ranks.get(template_id)))
    return SearchPage(hits, has_more, offset + limit if has_more else None, locale)


async def tags(user: User | None, *, scope: Scope = "all", locale: str | None = None) -> list[TagCount]:
    """The tags of the templates `user` may see, with how many carry each; the most common first.

    The database joins the tag lists into one string (one round trip, one value) and it is counted here."""
    connection = connections.get("default")
    sql = _Sql(connection.capabilities.dialect)
    where = " AND ".join([_visible(sql, user, scope), *_narrowed(sql, locale, None), "t.tags <> ''"])
    joined = "string_agg(t.tags, ', ')" if sql.postgres else "group_concat(t.tags, ', ')"
    rows = await connection.execute_query_dict(f"SELECT {joined} AS tags FROM prompt_template t WHERE {where}",
                                               sql.values)
    counts = Counter(tag for tag in str(rows[0]["tags"] or "").split(", ") if tag)
    return [TagCount(tag, count) for tag, count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))]


async def _readable(user: User | None, template_id: int, *, for_update: bool = False) -> PromptTemplate:
    if not 0 < template_id < 2**31:  # not an id the column can hold: PostgreSQL would refuse the query
        raise TemplateError("not_found", template_id=template_id)
    query = PromptTemplate.filter(id=template_id)
    if for_update and connections.get("default").capabilities.dialect == "postgres":
        query = query.select_for_update()
    template = await query.first()
    owner_id = template.owner_id if template is not None else None
    if template is None or (owner_id is not None and (user is None or owner_id != user.id)):
        raise TemplateError("not_found", template_id=template_id)
    return template


async def get(user: User | None, template_id: int) -> TemplateView:
    """One template `user` may see; `not_found` for another customer's, exactly like a missing one."""
    return _view(await _readable(user, template_id), user)


async def count_use(template: TemplateView | PromptTemplate) -> None:
    """Someone put the template to use: the library lists the most used first."""
    await PromptTemplate.filter(id=template.id).update(uses=F("uses") + 1)


# --- one's own templates -------------------------------------------------------------------------


async def create(user: User, *, title: str, body: str, description: str = "", tags: str | Iterable[str] = "",
                 locale: str | None = None) -> TemplateView:
    draft = clean(title, body, description, tags, locale or pick_locale(user.language, default="en"))
    async with in_transaction():
        if await PromptTemplate.filter(owner_id=user.id).count() >= MAX_OWN_TEMPLATES:
            raise TemplateError("limit_reached", limit=MAX_OWN_TEMPLATES)
        template = await PromptTemplate.create(owner_id=user.id, locale=draft.locale, title=draft.title,
                                               description=draft.description, body=draft.body,
                                               tags=", ".join(draft.tags))
    return _view(template, user)


async def _own(user: User, template_id: int) -> PromptTemplate:
    template = await _readable(user, template_id, for_update=True)
    if template.owner_id is None:
        raise TemplateError("read_only", template_id=template_id)
    return template


async def update(user: User, template_id: int, *, title: str | None = None, body: str | None = None,
                 description: str | None = None, tags: str | Iterable[str] | None = None,
                 locale: str | None = None) -> TemplateView:
    """Change what is given (None keeps it). Shipped templates are `read_only`."""
    async with in_transaction():
        template = await _own(user, template_id)
        draft = clean(template.title if title is None else title, template.body if body is None else body,
                      template.description if description is None else description,
                      template.tags if tags is None else tags, template.locale if locale is None else locale)
        changes = {"title": draft.title, "description": draft.description, "body": draft.body,
                   "tags": ", ".join(draft.tags), "locale": draft.locale}
        changed = [name for name, value in changes.items() if getattr(template, name) != value]
        if changed:
            for name in changed:
                setattr(template, name, changes[name])
            await template.save(update_fields=[*changed, "updated_at"])
    return _view(template, user)


async def delete(user: User, template_id: int) -> None:
    async with in_transaction():
        template = await _own(user, template_id)
        await template.delete()


# --- the shipped library -------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedReport:
    created: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0


def shipped_templates(directory: Path = SHIPPED_DIR) -> dict[str, Draft]:
    """`{"en/summarize-text": Draft}` from `<locale>.json` files; raises ValueError for a bad one.

    Each file is a list of `{"slug", "title", "description", "tags": "a, b", "body"}`, the body a string
    or a list of its lines (easier to read and review in the file).
    """
    found: dict[str, Draft] = {}
    for path in sorted(directory.glob("*.json")):
        locale = path.stem
        entries = json.loads(path.read_text(encoding="utf-8"))
        if locale not in SUPPORTED_LOCALES or not isinstance(entries, list):
            raise ValueError(f"{path.name}: expected a list of templates in a file named after a language")
        for number, entry in enumerate(entries, start=1):
            slug = str(entry.get("slug", ""))
            if not _SLUG.match(slug) or f"{locale}/{slug}" in found:
                raise ValueError(f"{path.name} #{number}: a missing, malformed or repeated slug {slug!r}")
            body = entry.get("body", "")
            try:
                found[f"{locale}/{slug}"] = clean(entry["title"], "\n".join(body) if isinstance(body, list) else body,
                                                  entry.get("description", ""), entry.get("tags", ""), locale)
            except (KeyError, TemplateError) as error:
                raise ValueError(f"{path.name} {slug}: {error}") from error
    return found


def _stored_fields(draft: Draft) -> dict[str, str]:
    return {"locale": draft.locale, "title": draft.title, "description": draft.description, "body": draft.body,
            "tags": ", ".join(draft.tags)}


async def seed_library(directory: Path = SHIPPED_DIR) -> SeedReport:
    """Make the shipped templates in the database what the files say, by slug: new ones are added,
    changed ones updated (their `uses` kept), ones no longer shipped removed. One read when nothing
    changed. Safe when two instances start at once: the loser of a race finds the work done."""
    shipped = shipped_templates(directory)
    try:
        return await _seed(shipped)
    except IntegrityError:  # another instance added the same slugs at the same moment
        return await _seed(shipped)


async def _seed(shipped: dict[str, Draft]) -> SeedReport:
    names = ("id", "slug", "locale", "title", "description", "body", "tags")
    stored = {row["slug"]: row for row in await PromptTemplate.filter(slug__isnull=False).values(*names)}
    wanted = {slug: _stored_fields(draft) for slug, draft in shipped.items()}
    new = [slug for slug in wanted if slug not in stored]
    changed = [slug for slug in wanted if slug in stored
               and any(stored[slug][name] != value for name, value in wanted[slug].items())]
    gone = [row["id"] for slug, row in stored.items() if slug not in wanted]
    if new or changed or gone:
        async with in_transaction():
            if new:
                await PromptTemplate.bulk_create([PromptTemplate(slug=slug, **wanted[slug]) for slug in new])
            for slug in changed:
                await PromptTemplate.filter(id=stored[slug]["id"]).update(**wanted[slug], updated_at=datetime.now(UTC))
            if gone:
                await PromptTemplate.filter(id__in=gone, owner_id__isnull=True).delete()
    return SeedReport(len(new), len(changed), len(gone), len(wanted) - len(new) - len(changed))

