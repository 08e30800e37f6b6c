"""The prompt studio's template library: the shipped set, search and its ranking, highlighting, hostile
queries, who sees what, and one's own templates. Runs on SQLite and on PostgreSQL (their search
differs: FTS5 with bm25, a weighted tsvector with ts_rank)."""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from models import Bot, PromptTemplate, User
from services.studio import templates
from services.studio.templates import SHIPPED_DIR, TemplateError

pytestmark = pytest.mark.usefixtures("database")


async def person(name: str, telegram_id: int, language: str = "en") -> User:
    bot = await Bot.get_or_none(telegram_id=9001) or await Bot.create(telegram_id=9001, username="shop")
    return await User.create(bot=bot, telegram_id=telegram_id, first_name=name, language=language)


async def refused(call: Any) -> TemplateError:
    with pytest.raises(TemplateError) as caught:
        await call
    return caught.value


async def titles(user: User | None, query: str, **options: Any) -> list[str]:
    page = await templates.search(user, query, **options)
    return [hit.template.title for hit in page.hits]


# --- the shipped library -------------------------------------------------------------------------


def test_every_language_ships_a_full_valid_starter_set() -> None:
    shipped = templates.shipped_templates()
    for locale in ("en", "ru", "uz"):
        mine = {slug: draft for slug, draft in shipped.items() if slug.startswith(f"{locale}/")}
        assert len(mine) >= 24, locale
        for slug, draft in mine.items():
            assert draft.locale == locale
            assert draft.description, slug
            assert draft.tags, slug
            assert templates.variables_of(draft.body), f"{slug} has no {{{{variables}}}}"
            # Every placeholder is a snake_case variable: none is left half-written.
            assert re.findall(r"\{\{[^}]*\}\}", draft.body) == [
                match.group(0) for match in re.finditer(r"\{\{[a-z][a-z0-9_]*\}\}", draft.body)], slug
    uzbek = "".join(draft.body + draft.title for slug, draft in shipped.items() if slug.startswith("uz/"))
    assert "o‘" in uzbek
    assert "g‘" in uzbek
    assert "’" in uzbek
    assert not re.search(r"[a-z]['ʻ`][a-z]", uzbek)  # o‘ and g‘ with U+2018, the tutuq belgisi with U+2019


async def test_seeding_twice_changes_nothing_and_a_changed_file_is_followed(tmp_path: Path) -> None:
    first = await templates.seed_library()
    assert first.created == len(templates.shipped_templates())
    assert first.updated == first.removed == 0
    before = {t.slug: (t.id, t.updated_at) for t in await PromptTemplate.all()}
    again = await templates.seed_library()
    assert (again.created, again.updated, again.removed) == (0, 0, 0)
    assert {t.slug: (t.id, t.updated_at) for t in await PromptTemplate.all()} == before

    summarize = await PromptTemplate.get(slug="en/summarize-text")
    await templates.count_use(templates._view(summarize, None))
    # A new version of the product: one template reworded, one dropped, one added.
    shutil.copytree(SHIPPED_DIR, tmp_path / "templates")
    path = tmp_path / "templates" / "en.json"
    entries = json.loads(path.read_text(encoding="utf-8"))
    for entry in entries:
        if entry["slug"] == "summarize-text":
            entry["title"] = "Summarize any text"
    entries = [entry for entry in entries if entry["slug"] != "tldr"]
    entries.append({"slug": "haiku", "title": "Write a haiku", "description": "Three lines.", "tags": "poetry",
                    "body": ["A haiku about {{subject}}."]})
    path.write_text(json.dumps(entries, ensure_ascii=False), encoding="utf-8")
    report = await templates.seed_library(tmp_path / "templates")
    assert (report.created, report.updated, report.removed) == (1, 1, 1)
    changed = await PromptTemplate.get(slug="en/summarize-text")
    assert (changed.id, changed.title, changed.uses) == (summarize.id, "Summarize any text", 1)
    assert not await PromptTemplate.filter(slug="en/tldr").exists()
    assert await titles(None, "haiku") == ["Write a haiku"]
    assert await titles(None, "summarize any") == ["Summarize any text"]  # the index follows the update


async def test_a_customer_template_survives_seeding_and_is_never_taken_for_a_shipped_one() -> None:
    ann = await person("Ann", 1)
    own = await templates.create(ann, title="My summary", body="Summarize {{text}} my way")
    await templates.seed_library()
    await templates.seed_library()
    assert (await templates.get(ann, own.id)).title == "My summary"


# --- ranking -------------------------------------------------------------------------------------


async def test_a_title_match_outranks_a_body_match() -> None:
    ann = await person("Ann", 1)
    await templates.create(ann, title="Weekly report", body="Write about the invoice numbers of {{week}}, "
                                                           "the invoice totals and every invoice that is late.")
    await templates.create(ann, title="Invoice reminder", body="Remind {{customer}} politely to pay.")
    await templates.create(ann, title="Shopping list", body="Plan {{meals}}.", tags="invoice")
    assert await titles(ann, "invoice", scope="mine") == ["Invoice reminder", "Shopping list", "Weekly report"]


async def test_the_template_titled_as_the_query_comes_first() -> None:
    ann = await person("Ann", 1)
    await templates.seed_library()
    for title in ("Cold email follow up for investors", "Email", "Follow up email"):
        await templates.create(ann, title=title, body="Write a follow up email about {{topic}}.",
                               description="Follow up email, email follow up.", tags="follow up, email")
    found = await titles(ann, "follow up email")
    assert found[0] == "Follow up email"
    assert found.index("Cold email follow up for investors") < found.index("Email")
    assert (await titles(ann, "Email"))[0] == "Email"


async def test_the_last_word_is_a_prefix_while_typing() -> None:
    await templates.seed_library()
    assert "Summarize a text" in await titles(None, "summ")
    assert "Summarize a text" in await titles(None, "text summ")
    assert await titles(None, "summ ") == []  # a finished word is a word
    assert "Write unit tests for a function" in await titles(None, "unit te")


async def test_russian_and_uzbek_templates_are_found_in_their_words() -> None:
    await templates.seed_library()
    assert (await titles(None, "ответ на письмо"))[0] == "Ответ на письмо"
    assert "Извинение за задержку заказа" in await titles(None, "задерж")
    assert (await titles(None, "Xatga javob"))[0] == "Xatga javob"
    assert "Kodni yangi boshlovchiga tushuntirish" in await titles(None, "boshlovch")
    # o‘ is written in several ways: ‘ (the house style), ' on a plain keyboard, ʻ (the official letter).
    for typed in ("o‘rganish rejasi", "o'rganish rejasi", "oʻrganish rejasi", "ko‘nikmani o‘rg"):
        assert "Yangi ko‘nikmani o‘rganish rejasi" in await titles(None, typed), typed
    assert await titles(None, "письмо", locale="uz") == []


async def test_words_with_diacritics_are_found_as_written() -> None:
    ann = await person("Ann", 1)
    await templates.create(ann, title="Café crème menu", body="Describe {{dish}} for the café.")
    await templates.create(ann, title="Твёрдый знак", body="Объясни {{тему}} твёрдо.")
    [hit] = (await templates.search(ann, "café crè", scope="mine")).hits
    assert hit.title_html == "<mark>Café crème</mark> menu"
    [hit] = (await templates.search(ann, "твёрдый", scope="mine")).hits
    assert hit.title_html == "<mark>Твёрдый</mark> знак"
    assert await titles(ann, "ТВЁРД", scope="mine") == ["Твёрдый знак"]


async def test_an_empty_query_lists_the_most_used_first() -> None:
    await templates.seed_library()
    tests = await PromptTemplate.get(slug="ru/write-unit-tests")
    for _ in range(3):
        await templates.count_use(tests)
    await templates.count_use(await PromptTemplate.get(slug="en/job-post"))
    page = await templates.search(None, "", limit=3)
    assert [hit.template.slug for hit in page.hits[:2]] == ["ru/write-unit-tests", "en/job-post"]
    assert page.has_more
    assert page.next_offset == 3
    assert [hit.template.locale for hit in (await templates.search(None, "  ", locale="uz")).hits] == ["uz"] * 20


async def test_the_preferred_language_first_else_every_language() -> None:
    await templates.seed_library()
    russian = await templates.search(None, "sql", prefer_locale="ru")
    assert russian.locale == "ru"
    assert {hit.template.locale for hit in russian.hits} == {"ru"}
    anything = await templates.search(None, "haiku invoice sql", prefer_locale="ru")
    assert anything.hits == []
    assert anything.locale is None
    everywhere = await templates.search(None, "Xatga javob", prefer_locale="ru")  # none in Russian
    assert everywhere.locale is None
    assert everywhere.hits[0].template.slug == "uz/email-reply"


async def test_paging_through_results_gives_each_once() -> None:
    await templates.seed_library()
    seen: list[int] = []
    offset: int | None = 0
    while offset is not None:
        page = await templates.search(None, "text", limit=4, offset=offset)
        seen += [hit.template.id for hit in page.hits]
        offset = page.next_offset
    assert len(seen) == len(set(seen)) > 4
    assert seen == [hit.template.id for hit in (await templates.search(None, "text", limit=50)).hits]


async def test_a_word_in_more_templates_than_are_ranked_still_finds_ones_own_first() -> None:
    await templates.seed_library()
    ann = await person("Ann", 1)
    await PromptTemplate.bulk_create([PromptTemplate(title=f"Note {n}", body=f"A common word, {n}.", locale="en")
                                      for n in range(1_050)])
    mine = await templates.create(ann, title="Common", body="The common one {{x}}")
    assert templates.MAX_RANKED is not None
    assert await PromptTemplate.filter(owner_id__isnull=True).count() > templates.MAX_RANKED
    page = await templates.search(ann, "common", limit=20)
    # Only the oldest public matches are ranked, but one's own always are: hers is titled as asked.
    assert page.hits[0].template.id == mine.id
    assert len(page.hits) == 20
    assert page.has_more


# --- highlighting and hostile input --------------------------------------------------------------


async def test_highlights_are_escaped_html_with_the_matches_marked() -> None:
    ann = await person("Ann", 1)
    await templates.create(ann, title="Embed <b>widget</b> & script",
                           description="Paste <script>alert('widget')</script> on the page",
                           body="First line.\n\nAdd <script src=\"https://x.example/widget.js\"></script> before "
                                "</body> so the widget loads. " + "More words here. " * 40)
    [hit] = (await templates.search(ann, "widget scr", scope="mine")).hits
    assert hit.title_html == "Embed &lt;b&gt;<mark>widget</mark>&lt;/b&gt; &amp; <mark>script</mark>"
    assert hit.description_html == ("Paste &lt;<mark>script</mark>&gt;alert(&#x27;<mark>widget</mark>&#x27;)"
                                    "&lt;/<mark>script</mark>&gt; on the page")
    assert "&lt;<mark>script</mark> src=&quot;https://x.example/<mark>widget</mark>.js&quot;&gt;" in \
        hit.snippet_html
    assert "<script" not in hit.snippet_html + hit.title_html + hit.description_html
    assert hit.snippet_html.endswith("…")
    assert "\n" not in hit.snippet_html
    # Nothing but <mark> is markup: with the marks taken out, what is left is the escaped text.
    assert re.sub(r"</?mark>", "", hit.title_html) == "Embed &lt;b&gt;widget&lt;/b&gt; &amp; script"


async def test_a_snippet_shows_the_part_of_a_long_text_that_matched() -> None:
    ann = await person("Ann", 1)
    body = "Intro words go here. " * 100 + "Now the important part: refund the customer within 14 days." + \
        " Closing words." * 100
    await templates.create(ann, title="Policy", body=body)
    [hit] = (await templates.search(ann, "refund customer", scope="mine")).hits
    assert hit.snippet_html.startswith("…")
    assert hit.snippet_html.endswith("…")
    assert "<mark>refund</mark> the <mark>customer</mark> within 14 days" in hit.snippet_html
    assert len(hit.snippet_html) < 400


HOSTILE = ['"', '""', "'", "' OR 1=1 --", 'NEAR(a b)', "a NEAR b", "*", "**", "a*", "-", "-a", "a - b", ":", "title:",
           "title: email", "{title body}: x", "(", ")", "(a OR b", "a AND", "AND", "OR NOT", "^a", "a + b", "\\",
           "%", "_", "a_b", "\x00", "a\x00b", "!!!???", "…", "🙂", "🙂 email", "'; DROP TABLE prompt_template; --",
           "$1", "?", ":*", "a:*", "a & b | !c", "<->", "a <-> b", "'a':A", "email" * 2000, "x " * 5000,
           "e-mail", "o‘", "‘’ʻ", "\t\n", "a" * 300 + " " + "б" * 300]


async def test_hostile_queries_never_reach_the_index_as_syntax() -> None:
    ann = await person("Ann", 1)
    await templates.seed_library()
    await templates.create(ann, title="E-mail etiquette", body="Use a_b and NEAR words {{x}}", tags="email")
    for query in HOSTILE:
        for scope in ("all", "mine"):
            page = await templates.search(ann, query, scope=scope, tag=query[:40])
            assert isinstance(page.hits, list), query
        await templates.search(ann, query)
    # And a few hundred random strings of the characters parsers care about, in every script used here.
    pool = "aZ09_-:*^()\"'`‘’ʻʼ{}[]<>&|!@#$%+=.,;?/\\ \t\n²½ⅣﬁéñßİıёЁўқғҳ🙂\u200b\u0301\x00\x7f"
    shuffled = random.Random(8)
    for _ in range(300):
        query = "".join(shuffled.choice(pool) for _ in range(shuffled.randint(1, 24)))
        await templates.search(ann, query)
    assert await titles(ann, "e-mail", scope="mine") == ["E-mail etiquette"]
    assert await titles(ann, "NEAR(words", scope="mine") == ["E-mail etiquette"]
    assert await titles(ann, "'; DROP TABLE prompt_template; --", scope="mine") == []
    assert await PromptTemplate.filter(owner_id=ann.id).count() == 1


# --- who sees what -------------------------------------------------------------------------------


async def test_a_customer_never_sees_another_customers_templates() -> None:
    await templates.seed_library()
    ann, bob = await person("Ann", 1), await person("Bob", 2)
    secret = await templates.create(bob, title="Bob's secret pricing email", body="Quote {{price}} zanzibar",
                                    tags="zanzibar")
    await templates.create(ann, title="Ann's zanzibar note", body="Note {{thing}}")
    assert await titles(ann, "zanzibar") == ["Ann's zanzibar note"]
    assert await titles(ann, "secret pricing") == []
    assert await titles(None, "zanzibar") == []
    assert (await templates.search(None, "", scope="mine")).hits == []
    for wrong in (0, -1, 2**31, 10**20):
        assert (await refused(templates.get(ann, wrong))).code == "not_found"
    assert "zanzibar" not in {tag.tag for tag in await templates.tags(ann)}
    assert "zanzibar" in {tag.tag for tag in await templates.tags(bob, scope="mine")}
    listed = await templates.search(ann, "", scope="mine", limit=50)
    assert [hit.template.title for hit in listed.hits] == ["Ann's zanzibar note"]
    for call in (templates.get(ann, secret.id), templates.update(ann, secret.id, title="Mine now"),
                 templates.delete(ann, secret.id), templates.get(None, secret.id)):
        assert (await refused(call)).code == "not_found"
    assert (await templates.get(bob, secret.id)).title == "Bob's secret pricing email"


async def test_shipped_templates_are_read_only_and_shared() -> None:
    await templates.seed_library()
    ann = await person("Ann", 1)
    shipped = await PromptTemplate.get(slug="en/code-review")
    view = await templates.get(ann, shipped.id)
    assert (view.shipped, view.mine, view.slug) == (True, False, "en/code-review")
    assert view.variables == ["language", "context", "expected_scale", "code"]
    assert (await refused(templates.update(ann, shipped.id, title="Mine"))).code == "read_only"
    assert (await refused(templates.delete(ann, shipped.id))).code == "read_only"
    assert (await PromptTemplate.get(id=shipped.id)).title == "Review a piece of code"


async def test_tags_are_counted_over_what_one_may_see() -> None:
    await templates.seed_library()
    ann = await person("Ann", 1)
    await templates.create(ann, title="One", body="x {{a}}", tags="Email, Mine")
    await templates.create(ann, title="Two", body="y", tags=['say "hi"', "back\\slash", "[]", "mine"])
    counts = {tag.tag: tag.count for tag in await templates.tags(ann, locale="en")}
    shipped_email = sum("email" in draft.tags for slug, draft in templates.shipped_templates().items()
                        if slug.startswith("en/"))
    assert counts["email"] == shipped_email + 1
    assert counts["mine"] == 2
    assert [(tag.tag, tag.count) for tag in await templates.tags(ann, scope="mine")] == [
        ("mine", 2), ("[]", 1), ("back\\slash", 1), ("email", 1), ('say "hi"', 1)]
    listed = await templates.search(ann, "", tag="EMAIL", locale="en", limit=50)
    assert len(listed.hits) == shipped_email + 1
    assert all("email" in hit.template.tags for hit in listed.hits)
    assert (await templates.search(ann, "", tag="mai", limit=50)).hits == []  # whole tags only


# --- one's own templates -------------------------------------------------------------------------


async def test_own_templates_are_cleaned_and_validated() -> None:
    ann = await person("Ann", 1, language="ru")
    made = await templates.create(ann, title="  My   template \n", body="\r\nHello {{name}}!\r\n  ",
                                  tags=["Email", " Sales  Copy ", "email", "#news", ""])
    assert (made.title, made.body, made.tags, made.locale) == ("My template", "Hello {{name}}!",
                                                              ["email", "sales copy", "news"], "ru")
    assert (made.mine, made.shipped, made.variables) == (True, False, ["name"])
    cases: list[tuple[dict[str, Any], str, dict[str, Any]]] = [
        ({"title": " ", "body": "x"}, "empty_title", {}),
        ({"title": "t", "body": " \n "}, "empty_body", {}),
        ({"title": "t" * 201, "body": "x"}, "too_long", {"field": "title", "limit": 200}),
        ({"title": "t", "body": "x" * 20_001}, "too_long", {"field": "body", "limit": 20_000}),
        ({"title": "t", "body": "x", "description": "d" * 1001}, "too_long", {"field": "description", "limit": 1000}),
        ({"title": "t", "body": "x", "tags": [f"t{n}" for n in range(11)]}, "too_many_tags", {"limit": 10}),
        ({"title": "t", "body": "x", "tags": ["x" * 31]}, "tag_too_long", {"limit": 30}),
        ({"title": "t", "body": "x", "locale": "de"}, "bad_locale", {}),
    ]
    for fields, code, params in cases:
        error = await refused(templates.create(ann, **fields))
        assert (error.code, error.params) == (code, params), fields
    assert await templates.create(ann, title="t" * 200, body="x" * 20_000, tags=[f"t{n}" for n in range(10)])
    assert await templates.create(ann, title="Null\x00byte", body="a\x00b {{x}}")  # PostgreSQL refuses NUL: removed
    assert (await templates.search(ann, "nullbyte", scope="mine")).hits[0].template.body == "ab {{x}}"

    changed = await templates.update(ann, made.id, body="Bye {{name}}, {{date}}", tags="")
    assert (changed.title, changed.body, changed.tags, changed.variables) == (
        "My template", "Bye {{name}}, {{date}}", [], ["name", "date"])
    assert (await refused(templates.update(ann, made.id, title=""))).code == "empty_title"
    await templates.delete(ann, made.id)
    assert (await refused(templates.get(ann, made.id))).code == "not_found"


async def test_a_customer_keeps_at_most_500_templates() -> None:
    ann, bob = await person("Ann", 1), await person("Bob", 2)
    await PromptTemplate.bulk_create([PromptTemplate(owner_id=ann.id, title=f"T{n}", body="x")
                                      for n in range(templates.MAX_OWN_TEMPLATES - 1)])
    last = await templates.create(ann, title="The last one", body="x")
    error = await refused(templates.create(ann, title="One too many", body="x"))
    assert (error.code, error.params) == ("limit_reached", {"limit": 500})
    assert await templates.create(bob, title="Bob's first", body="x")  # the limit is per person
    await templates.delete(ann, last.id)
    assert await templates.create(ann, title="Room again", body="x")
