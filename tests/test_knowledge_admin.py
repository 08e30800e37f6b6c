"""The knowledge-base editor's domain: what staff can list, change, export, import, try and are suggested."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
from openai import AsyncOpenAI

from models import AuditLog, Bot, KnowledgeItem, Message, OutboxJob, Role, Usage, User
from services import conversations, knowledge
from services.ai import AIClient, Route
from services.answering import Answerer, AnswerPolicy, build_prompt, try_answer
from services.conversations import Customer, Incoming
from services.embeddings import LocalEmbedder
from services.knowledge import Entry, KnowledgeError
from services.knowledge_admin import (
    create_item,
    delete_item,
    export_csv,
    export_markdown,
    get_item,
    import_text,
    list_items,
    set_enabled,
    update_item,
)
from services.knowledge_suggestions import dismiss_suggestion, unanswered_questions
from services.limits import MemoryRateLimiter
from services.staff import WorkingHoursSource
from tests.fake_ai import FakeAI
from tests.flow_helpers import make_channels, make_flow

pytestmark = pytest.mark.usefixtures("database")

HOURS = WorkingHoursSource("", "UTC")
_visitors = itertools.count(1)


def english(locale: str, message: str) -> str:
    return message


async def make_bot(telegram_id: int = 9001) -> Bot:
    return await Bot.create(telegram_id=telegram_id, username=f"shop{telegram_id}")


async def make_admin(bot: Bot) -> User:
    return await User.create(bot=bot, telegram_id=bot.telegram_id + 1, first_name="Ada", role=Role.ADMIN)


async def refused(call: Any) -> KnowledgeError:
    with pytest.raises(KnowledgeError) as caught:
        await call
    return caught.value


async def audit_trail(bot: Bot) -> list[tuple[str, str, int | None]]:
    return [(entry.action, entry.target, entry.actor_id)
            for entry in await AuditLog.filter(bot=bot).order_by("id")]


@pytest.fixture
async def ai_client(ai: FakeAI) -> AsyncIterator[AIClient]:
    """An AI client against the fake server, built as bot.app's create_ai builds it."""
    client = AIClient([Route("main-model", AsyncOpenAI(base_url=ai.base_url, api_key="test-key", max_retries=0))],
                      lambda model: (1.0, 2.0))
    yield client
    await client.close()


# --- changes -------------------------------------------------------------------------------------


async def test_an_item_needs_a_question_and_an_answer_within_their_limits() -> None:
    bot = await make_bot()
    admin = await make_admin(bot)
    cases = [
        (dict(question="  ", answer="Yes."), "empty_question", {}),
        (dict(question="?!", answer="Yes."), "empty_question", {}),
        (dict(question="Do you deliver?", answer=" \n "), "empty_answer", {}),
        (dict(question="Why? " * 101, answer="Yes."), "too_long", {"field": "question", "limit": 500}),
        (dict(question="Why?", answer="y" * 4001), "too_long", {"field": "answer", "limit": 4000}),
        (dict(question="Why?", answer="Yes.", tags="t" * 513), "too_long", {"field": "tags", "limit": 512}),
    ]
    for fields, code, params in cases:
        error = await refused(create_item(bot.id, actor=admin, **fields))
        assert (error.code, error.params) == (code, params)
    assert await KnowledgeItem.all().count() == 0
    assert await AuditLog.all().count() == 0

    item = await create_item(bot.id, question="  Do   you\ndeliver? ", answer="\r\nYes,\r\nevery day.\n\n",
                             tags=" delivery,, Shipping ,delivery", actor=admin)
    assert (item.question, item.answer, item.tags) == ("Do you deliver?", "Yes,\nevery day.", "delivery, Shipping")
    error = await refused(update_item(bot.id, item.id, answer="", actor=admin))
    assert error.code == "empty_answer"
    assert (await get_item(bot.id, item.id)).answer == "Yes,\nevery day."


async def test_the_same_question_in_other_words_case_or_punctuation_is_a_duplicate() -> None:
    bot = await make_bot()
    admin = await make_admin(bot)
    hours = await create_item(bot.id, question="What are your opening hours?", answer="9 to 5.", actor=admin)
    error = await refused(create_item(bot.id, question="what are your OPENING hours", answer="Other.", actor=admin))
    assert error.code == "duplicate"
    assert error.params["item_id"] == hours.id
    wifi = await create_item(bot.id, question="Do you have wifi?", answer="Yes.", actor=admin)
    error = await refused(update_item(bot.id, wifi.id, question="What are your opening hours!", actor=admin))
    assert (error.code, error.params["item_id"]) == ("duplicate", hours.id)
    # Its own question in other punctuation is no duplicate.
    changed = await update_item(bot.id, wifi.id, question="Do you have Wifi??", actor=admin)
    assert changed.question == "Do you have Wifi??"
    assert await KnowledgeItem.filter(bot=bot).count() == 2


async def test_another_bots_items_cannot_be_seen_changed_or_exported() -> None:
    ours, theirs = await make_bot(9001), await make_bot(9101)
    admin, their_admin = await make_admin(ours), await make_admin(theirs)
    item = await create_item(ours.id, question="Secret recipe?", answer="Butter.", actor=admin)
    for call in (get_item(theirs.id, item.id), update_item(theirs.id, item.id, answer="Margarine.", actor=their_admin),
                 set_enabled(theirs.id, item.id, False, actor=their_admin),
                 delete_item(theirs.id, item.id, actor=their_admin)):
        error = await refused(call)
        assert (error.code, error.params) == ("not_found", {"item_id": item.id})
    assert (await get_item(ours.id, item.id)).answer == "Butter."
    assert (await get_item(ours.id, item.id)).enabled
    for query in ("", "secret recipe"):
        page = await list_items(theirs.id, query=query)
        assert (page.items, page.total) == ([], 0)
    assert "Secret" not in await export_csv(theirs.id) + await export_markdown(theirs.id)
    # The same question is no duplicate for another bot.
    await create_item(theirs.id, question="Secret recipe?", answer="Salt.", actor=their_admin)
    assert await AuditLog.filter(bot=theirs).count() == 1


async def test_every_change_is_audited_with_the_staff_member_who_made_it() -> None:
    bot = await make_bot()
    admin = await make_admin(bot)
    item = await create_item(bot.id, question="Do you deliver?", answer="Yes.", actor=admin)
    await update_item(bot.id, item.id, answer="Yes, daily.", tags="delivery", actor=admin)
    await update_item(bot.id, item.id, answer="Yes, daily.", actor=admin)  # no change: not logged
    await set_enabled(bot.id, item.id, False, actor=admin)
    await set_enabled(bot.id, item.id, False, actor=admin)  # no change: not logged
    await set_enabled(bot.id, item.id, True, actor=admin)
    await import_text(bot.id, "faq.csv", "question,answer\nIs there parking?,Behind the shop.\n", admin)
    await delete_item(bot.id, item.id, actor=admin)
    target = str(item.id)
    assert await audit_trail(bot) == [
        ("knowledge_create", target, admin.id), ("knowledge_update", target, admin.id),
        ("knowledge_disable", target, admin.id), ("knowledge_enable", target, admin.id),
        ("knowledge_import", "faq.csv", admin.id), ("knowledge_delete", target, admin.id),
    ]
    entries = await AuditLog.filter(bot=bot).order_by("id")
    assert entries[1].details == {"before": {"answer": "Yes.", "tags": ""},
                                  "after": {"answer": "Yes, daily.", "tags": "delivery"}}
    assert entries[4].details == {"created": 1, "updated": 0, "unchanged": 0}
    assert entries[5].details == {"question": "Do you deliver?", "answer": "Yes, daily.", "tags": "delivery"}
    error = await refused(get_item(bot.id, item.id))
    assert error.code == "not_found"


# --- listing -------------------------------------------------------------------------------------


async def test_pages_follow_the_cursor_most_recently_changed_first() -> None:
    bot = await make_bot()
    admin = await make_admin(bot)
    created = [await create_item(bot.id, question=f"Question number {n}?", answer=f"Answer {n}.", actor=admin)
               for n in range(7)]
    await update_item(bot.id, created[2].id, answer="Changed.", actor=admin)
    await set_enabled(bot.id, created[5].id, False, actor=admin)
    expected = [item.id for item in await KnowledgeItem.filter(bot=bot).order_by("-updated_at", "-id")]
    assert expected[:2] == [created[5].id, created[2].id]

    seen: list[int] = []
    cursor: str | None = None
    while True:
        page = await list_items(bot.id, cursor=cursor, limit=3)
        assert page.total == 7
        seen += [item.id for item in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == expected

    switched_on = await list_items(bot.id, enabled=True, limit=100)
    assert (switched_on.total, len(switched_on.items), switched_on.next_cursor) == (6, 6, None)
    switched_off = await list_items(bot.id, enabled=False)
    assert [item.id for item in switched_off.items] == [created[5].id]
    assert switched_off.items[0].rank is None
    for bad in ("nonsense", "e30=", "eyJhZnRlciI6WzFdfQ=="):
        error = await refused(list_items(bot.id, cursor=bad))
        assert error.code == "bad_cursor"


async def test_search_finds_every_word_as_typed_and_puts_question_matches_first() -> None:
    bot = await make_bot()
    admin = await make_admin(bot)
    in_question = await create_item(bot.id, question="How do I connect to the wifi?",
                                    answer="Ask at the counter for the password.", actor=admin)
    in_answer = await create_item(bot.id, question="Can I work from your cafe?",
                                  answer="Yes: there is wifi, and sockets at every table.", actor=admin)
    in_tags = await create_item(bot.id, question="Is there internet?", answer="Yes.", tags="wifi", actor=admin)
    await create_item(bot.id, question="Do you sell cakes?", answer="Every day.", actor=admin)
    russian = await create_item(bot.id, question="Есть ли доставка?", answer="Да, по всему городу.", actor=admin)

    page = await list_items(bot.id, query="WiFi")
    assert page.total == 3
    assert page.items[0].id == in_question.id
    assert {item.id for item in page.items} == {in_question.id, in_answer.id, in_tags.id}
    ranks = [item.rank for item in page.items]
    assert all(rank is not None for rank in ranks)
    assert ranks == sorted(ranks, reverse=True)  # type: ignore[type-var]

    assert (await list_items(bot.id, query="wif")).items[0].id == in_question.id
    both = await list_items(bot.id, query="wifi password")
    assert ([item.id for item in both.items], both.total) == ([in_question.id], 1)
    assert [item.id for item in (await list_items(bot.id, query="доставк")).items] == [russian.id]
    assert (await list_items(bot.id, query="?!")).total == 5  # no words: no filter

    await set_enabled(bot.id, in_answer.id, False, actor=admin)
    assert {item.id for item in (await list_items(bot.id, query="wifi", enabled=True)).items} == \
        {in_question.id, in_tags.id}
    assert [item.id for item in (await list_items(bot.id, query="wifi", enabled=False)).items] == [in_answer.id]

    paged: list[int] = []
    cursor: str | None = None
    while True:
        one = await list_items(bot.id, query="wifi", cursor=cursor, limit=1)
        assert one.total == 3
        paged += [item.id for item in one.items]
        if (cursor := one.next_cursor) is None:
            break
    assert paged == [item.id for item in (await list_items(bot.id, query="wifi")).items]
    error = await refused(list_items(bot.id, query="wifi", cursor="eyJvZmZzZXQiOi0xfQ=="))  # offset -1
    assert error.code == "bad_cursor"


# --- files ---------------------------------------------------------------------------------------

TRICKY = [
    Entry("Do you take cards, cash, or \"vouchers\"?", 'Cards and cash; "vouchers", too,\nat the till.', "pay, money"),
    Entry("Где вы находитесь?", "Улица Навои, 5.\n\n**Вход** со двора.", "адрес"),
    Entry("Yetkazib berasizmi?", "Ha, shahar boʻylab — bepul.", ""),
    Entry("营业时间?", "每天 9:00–21:00。", "时间"),
    Entry("What is on the menu?", "## Drinks\nCoffee, tea.\n\\## not a heading\n\n## Food\nCake.", "menu"),
    Entry("Anything about tags?", "The last line looks like tags.\nTags: not really", ""),
    Entry("Quotes only", '"', ""),
]


async def stored_entries(bot: Bot) -> list[Entry]:
    return [Entry(item.question, item.answer, item.tags) for item in await KnowledgeItem.filter(bot=bot).order_by("id")]


@pytest.mark.parametrize(("name", "export"), [("faq.csv", export_csv), ("faq.md", export_markdown)])
async def test_an_export_imports_back_into_the_same_items(name: str, export: Any) -> None:
    bot, copy = await make_bot(9001), await make_bot(9101)
    admin, copy_admin = await make_admin(bot), await make_admin(copy)
    items = [await create_item(bot.id, question=entry.question, answer=entry.answer, tags=entry.tags, actor=admin)
             for entry in TRICKY]
    await set_enabled(bot.id, items[0].id, False, actor=admin)  # exported too
    exported = await export(bot.id)
    assert knowledge.parse_text(name, exported) == TRICKY

    report = await import_text(copy.id, name, exported, copy_admin)
    assert (report.created, report.updated, report.unchanged) == (len(TRICKY), 0, 0)
    assert await stored_entries(copy) == TRICKY
    again = await import_text(bot.id, name, exported, admin)
    assert (again.created, again.updated, again.unchanged) == (0, 0, len(TRICKY))
    assert await export(copy.id) == exported


async def test_a_bad_file_is_refused_whole_with_the_parsers_reason() -> None:
    bot = await make_bot()
    admin = await make_admin(bot)
    await create_item(bot.id, question="Do you deliver?", answer="Yes.", actor=admin)
    cases = [
        ("faq.txt", "Do you deliver?,No.", "bad_file", {"detail": "knowledge files are .csv (question,answer[,tags])"
                                                                  " or .md (## question, then the answer)"}),
        ("faq.csv", "Do you deliver?,No.\nJust a question\n", "bad_file",
         {"detail": "row 2: expected question,answer[,tags]"}),
        ("faq.md", "## Do you deliver?\nNo.\n## Is there parking?\n\n", "bad_file",
         {"detail": "question 'Is there parking?' has no answer"}),
        ("faq.md", "Just some text, no headings.", "bad_file", {"detail": "the file holds no questions"}),
        ("faq.csv", f"Do you deliver?,No.\nIs there parking?,{'p' * 4001}\n", "too_long",
         {"row": 2, "field": "answer", "limit": 4000}),
    ]
    for filename, text, code, params in cases:
        error = await refused(import_text(bot.id, filename, text, admin))
        assert (error.code, error.params) == (code, params)
    assert await stored_entries(bot) == [Entry("Do you deliver?", "Yes.")]
    assert [action for action, _, _ in await audit_trail(bot)] == ["knowledge_create"]
    report = await import_text(bot.id, "FAQ.MD", "\ufeff## Do you deliver?\nNo, sorry.\n", admin)
    assert (report.created, report.updated) == (0, 1)


# --- try it ---------------------------------------------------------------------------------------


async def nothing_stored_or_counted(bot: Bot) -> None:
    assert await Message.all().count() == 0
    assert await Usage.all().count() == 0
    # (the items' embedding, queued when they were written, is the only work there is)
    assert await OutboxJob.exclude(queue=knowledge.QUEUE).count() == 0
    assert await KnowledgeItem.filter(bot=bot, hit_count__gt=0).count() == 0


async def try_it(bot: Bot, question: str, ai: AIClient | None) -> Any:
    return await try_answer(bot.id, question, ai=ai, policy=AnswerPolicy(), translate=english, hours=HOURS,
                            locale="en")


async def test_trying_the_items_own_question_shows_the_knowledge_answer(ai: FakeAI, ai_client: AIClient) -> None:
    bot = await make_bot()
    admin = await make_admin(bot)
    item = await create_item(bot.id, question="What are your opening hours?", answer="**9 to 5**, every day.",
                             actor=admin)
    tried = await try_it(bot, "what are your opening hours", ai_client)
    assert (tried.source, tried.text) == ("knowledge", "**9 to 5**, every day.")
    assert tried.html == "<i>📚 From our knowledge base:</i>\n\n<b>9 to 5</b>, every day."
    assert [(used.id, used.question) for used in tried.items] == [(item.id, "What are your opening hours?")]
    assert tried.items[0].rank > 0
    assert (tried.handoff_reason, tried.model, tried.tokens_in) == (None, "", 0)
    assert ai.requests == []
    await nothing_stored_or_counted(bot)


async def test_trying_another_question_shows_the_ais_answer_and_the_items_it_was_given(
        ai: FakeAI, ai_client: AIClient) -> None:
    bot = await make_bot()
    admin = await make_admin(bot)
    milk = await create_item(bot.id, question="Do you offer plant-based milk?", answer="Oat, almond and soy.",
                             actor=admin)
    await create_item(bot.id, question="Do you sell cakes?", answer="Every day.", actor=admin)
    ai.script.reply = "Our **oat** milk is free of charge."
    tried = await try_it(bot, "is oat milk more expensive?", ai_client)
    assert (tried.source, tried.text) == ("ai", "Our **oat** milk is free of charge.")
    assert tried.html == "Our <b>oat</b> milk is free of charge."
    assert [used.id for used in tried.items] == [milk.id]
    assert tried.model == "main-model"
    assert tried.tokens_in > 0
    assert tried.tokens_out > 0
    assert tried.cost == round((tried.tokens_in * 1.0 + tried.tokens_out * 2.0) / 1_000_000, 6)
    assert tried.latency_ms >= 0
    assert (tried.handoff_reason, tried.ai_error) == (None, "")
    [request] = ai.requests
    expected = await build_prompt(bot.id, "is oat milk more expensive?", locale="en",
                                  context_tokens=AnswerPolicy().context_tokens)
    assert request["messages"] == expected.messages
    assert "Do you offer plant-based milk?" in request["messages"][0]["content"]
    await nothing_stored_or_counted(bot)


async def test_trying_a_question_the_ai_hands_over_shows_the_customers_notice(
        ai: FakeAI, ai_client: AIClient) -> None:
    bot = await make_bot()
    ai.script.reply = ""
    ai.script.handoff_reason = "cannot_answer"
    tried = await try_it(bot, "Can I book the whole cafe for a wedding?", ai_client)
    assert (tried.source, tried.handoff_reason, tried.items) == ("ai", "cannot_answer", [])
    assert tried.text.startswith("I can't answer this myself right now, so I've passed your conversation to a person.")
    assert tried.model == "main-model"
    await nothing_stored_or_counted(bot)


async def test_trying_without_an_ai_shows_what_the_customer_would_get(ai: FakeAI, ai_client: AIClient) -> None:
    bot = await make_bot()
    admin = await make_admin(bot)
    wifi = await create_item(bot.id, question="Do you have wifi?", answer="Yes, the password is BeanThere-Guest.",
                             actor=admin)
    covered = await try_it(bot, "wifi password?", None)
    assert (covered.source, [used.id for used in covered.items]) == ("knowledge", [wifi.id])
    nothing = await try_it(bot, "xyzzy plugh", None)
    # As a customer would get it: with no AI nothing failed (the reason), and with no manager chat yet the
    # person sees it in the inbox (the promise).
    assert (nothing.source, nothing.items, nothing.handoff_reason) == ("none", [], "not_in_knowledge")
    assert nothing.text == ("I can't answer this myself right now, so I've passed your conversation to a person. "
                            "It's waiting in our team's inbox, and someone will answer you right here.")
    assert nothing.html == nothing.text  # escaped, with nothing to escape

    ai.script.failing_models = {"main-model": 500}
    failing = await try_it(bot, "xyzzy plugh", ai_client)
    assert (failing.source, failing.handoff_reason) == ("none", "ai_failure")
    assert "main-model@default" in failing.ai_error
    await nothing_stored_or_counted(bot)
    error = await refused(try_it(bot, "   ", None))
    assert error.code == "empty_question"


# --- the real answerer and its traces ---------------------------------------------------------------


async def ask(bot: Bot, answerer: Answerer, text: str) -> Message:
    """A new website visitor asks `text`, and the answerer's outbox job runs: returns the reply."""
    visitor = f"visitor-{next(_visitors)}"
    stored = await conversations.record_customer_message(
        bot.id, Customer(None, first_name="Vi", language_code="en", widget_visitor_id=visitor),
        Incoming(source_key=f"w:{visitor}", text=text), limiter=MemoryRateLimiter(100, 100.0), default_locale="en")
    assert stored.message is not None
    job = await OutboxJob.filter(kind="answer").order_by("-id").first()
    assert job is not None
    await answerer.answer_job(job)
    reply = await Message.filter(reply_to_id=stored.message.id).first()
    assert reply is not None
    return reply


def answerer(ai: AIClient | None, **policy: Any) -> Answerer:
    channels = make_channels()
    return Answerer(channels, make_flow(channels, english, HOURS), english, AnswerPolicy(**policy), ai, hours=HOURS)


async def test_try_it_sends_the_ai_what_a_customers_first_message_sends(ai: FakeAI, ai_client: AIClient) -> None:
    bot = await make_bot()
    admin = await make_admin(bot)
    await create_item(bot.id, question="Do you offer plant-based milk?", answer="Oat, almond and soy.", actor=admin)
    real = answerer(ai_client)
    await ask(bot, real, "is oat milk more expensive?")
    tried = await real.try_answer(bot.id, "is oat milk more expensive?", "en")
    assert tried.source == "ai"
    customers, staffs = ai.requests
    assert customers["messages"] == staffs["messages"]


async def test_questions_nobody_could_answer_are_suggested_most_asked_first(
        ai: FakeAI, ai_client: AIClient) -> None:
    bot, other = await make_bot(9001), await make_bot(9101)
    admin = await make_admin(bot)
    await create_item(bot.id, question="What are your opening hours?", answer="9 to 5.", actor=admin)
    without_ai = answerer(None)
    await ask(bot, without_ai, "Do you deliver to Samarkand?")
    await ask(bot, without_ai, "Can I pay with crypto?")
    await ask(bot, without_ai, "what are your opening hours")  # answered from the knowledge base
    await ask(bot, without_ai, "do you DELIVER to samarkand")
    await ask(other, without_ai, "Can I bring my dog?")

    with_ai = answerer(ai_client)
    ai.script.handoff_reason = "cannot_answer"
    ai.script.reply = "I'm not sure, so I've asked a colleague."
    assert (await ask(bot, with_ai, "Is there parking nearby?")).ai_meta["unanswered"] is True
    ai.script.reply = ""
    await ask(bot, with_ai, "Do you cater weddings?")
    ai.script.handoff_reason = "complaint"
    await ask(bot, with_ai, "My coffee was cold!")  # people took it over, but not for want of knowledge
    ai.script.handoff_reason = None
    ai.script.reply = "Sure, we have tables outside."
    await ask(bot, with_ai, "Can I sit outside?")
    await ask(bot, answerer(ai_client, daily_ai_quota=0), "Tell me a joke")  # over the quota: not a gap

    suggested = await unanswered_questions(bot.id)
    assert [(s.question, s.count) for s in suggested] == [
        ("do you DELIVER to samarkand", 2), ("Do you cater weddings?", 1), ("Is there parking nearby?", 1),
        ("Can I pay with crypto?", 1)]
    assert suggested[0].last_asked_at > suggested[3].last_asked_at
    assert [s.question for s in await unanswered_questions(bot.id, limit=2)] == [
        "do you DELIVER to samarkand", "Do you cater weddings?"]
    assert [s.question for s in await unanswered_questions(other.id)] == ["Can I bring my dog?"]

    await dismiss_suggestion(bot.id, suggested[3].key, admin)
    await dismiss_suggestion(bot.id, suggested[3].key, admin)  # once is enough
    await create_item(bot.id, question="Do you deliver to Samarkand?", answer="Yes, on Fridays.", actor=admin)
    await set_enabled(bot.id, (await create_item(bot.id, question="Do you cater weddings?", answer="Yes.",
                                                 actor=admin)).id, False, actor=admin)
    assert [s.question for s in await unanswered_questions(bot.id)] == [
        "Do you cater weddings?", "Is there parking nearby?"]  # a switched-off item answers nothing
    assert [s.question for s in await unanswered_questions(other.id)] == ["Can I bring my dog?"]
    assert [(action, target) for action, target, _ in await audit_trail(bot) if action == "knowledge_dismiss"] == [
        ("knowledge_dismiss", suggested[3].key)]
    error = await refused(dismiss_suggestion(bot.id, "not a key", admin))
    assert error.code == "not_found"


async def test_unanswered_questions_that_mean_the_same_are_one_suggestion() -> None:
    bot = await make_bot(9001)
    admin = await make_admin(bot)
    without_ai = answerer(None)
    for question in ("Do you deliver to Samarkand?", "Can I get my order delivered to Samarkand?",
                     "Can I pay with crypto?", "Do you deliver to Samarkand?"):
        await ask(bot, without_ai, question)
    embedder = LocalEmbedder()
    try:
        suggested = await unanswered_questions(bot.id, embedder=embedder)
        assert [(s.question, s.count) for s in suggested] == [
            ("Do you deliver to Samarkand?", 3), ("Can I pay with crypto?", 1)]
        by_words = await unanswered_questions(bot.id)
        assert [s.count for s in by_words] == [2, 1, 1]
        # Dismissing the group dismisses every wording in it.
        await dismiss_suggestion(bot.id, suggested[0].key, admin)
        assert [s.question for s in await unanswered_questions(bot.id, embedder=embedder)] == ["Can I pay with crypto?"]
    finally:
        await embedder.close()
