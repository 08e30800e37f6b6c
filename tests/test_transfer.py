"""Moving from the one-process SQLite setup to another database: `python -m bot export` / `import`."""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from bot import db
from models import (
    AuthorKind,
    Bot,
    Conversation,
    KnowledgeItem,
    Message,
    MessageCopy,
    Persona,
    PromptProject,
    PromptRun,
    PromptTemplate,
    PromptVersion,
    ProviderKey,
    StoredFile,
    Usage,
    UsageSlot,
    User,
    WidgetSite,
)
from services import knowledge, persona, widget
from services.studio import projects
from tests.conftest import ROOT
from tests.test_process import _clean_environment

RECEIPT = bytes(range(256)) * 3  # every byte value, the NUL and the invalid UTF-8 ones too


def _cli(tmp_path: Path, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=tmp_path, capture_output=True, text=True,
                          env=_clean_environment(DATABASE_URL=database_url), timeout=120, check=False)


async def _shop(database_url: str) -> None:
    await db.open_database(database_url, run_migrations=False)
    try:
        bot = await Bot.create(telegram_id=7000000001, username="shop_bot", manager_chat_id=-1001,
                               settings={"working_hours": "mon-fri 09:00-18:00"})
        # Ann chatted on the website before she wrote in Telegram, then confirmed the chat is hers: the
        # visitor's row points at a later row of the same table.
        visitor = await User.create(bot=bot, widget_visitor_id="v1:0f0f", first_name="Ann (web)", language="ru")
        ann = await User.create(bot=bot, telegram_id=10, first_name="Ann", language="ru")
        visitor.linked_to = ann
        await visitor.save(update_fields=["linked_to_id"])
        conversation = await Conversation.create(uuid=uuid.uuid4(), bot=bot, user=ann, rating=5)
        question = await Message.create(bot=bot, conversation=conversation, author_kind=AuthorKind.CUSTOMER,
                                        text="Есть овсяное молоко?", source_key="tg:1")
        answer = await Message.create(bot=bot, conversation=conversation, author_kind=AuthorKind.AI,
                                      text="Да!", reply_to=question, ai_meta={"model": "m", "cost": 0.0001})
        await MessageCopy.create(bot=bot, message=answer, chat_id=10, telegram_message_id=2)
        # A file a website visitor attached: its bytes are in the database, so they move with it.
        await StoredFile.create(bot=bot, conversation=conversation, name="receipt.png", mime_type="image/png",
                                size=len(RECEIPT), content=RECEIPT)
        await knowledge.import_entries(bot.id, knowledge.parse_file(ROOT / "demo" / "knowledge.md"))
        await persona.set_persona(bot.id, "You are the barista.")
        await widget.create_site(bot.id, ["https://shop.example"], title="Coffee", public_key="shop-site")
        # The prompt studio: a shipped template (the product's own, not moved) before Ann's own one.
        await PromptTemplate.create(slug="en/summarize-text", title="Summarize", body="Summarize: {{text}}")
        await PromptTemplate.create(owner=ann, title="Моё письмо", body="Напиши письмо {{кому}}")
        project = await projects.create_project(ann, "Письма")
        block = projects.load(project).prompt_blocks[0]
        version = await PromptVersion.create(project=project, block_key=block.id, number=1, name=block.name,
                                             template=block.template, compiled="Напиши", labels=["production"],
                                             author=ann)
        key = await ProviderKey.create(bot=bot, owner=ann, name="OpenRouter", base_url="https://openrouter.ai/api/v1",
                                       models=["gpt-4o-mini"], secret="c2VhbGVk", key_id="k1", last4="a1b2")
        await PromptRun.create(bot=bot, user=ann, project=project, version=version, api_key=key, model="gpt-4o-mini",
                               own_key=True, prompt="Напиши", answer="Готово", status="ok", tokens_in=5, cost=0.0001)
        # What the analytics count by quarter of an hour, beside the customer's day.
        await Usage.create(bot=bot, user=ann, day=date(2026, 12, 1), messages=4, ai_messages=3)
        await UsageSlot.create(bot=bot, slot=datetime(2026, 12, 1, 9, 15, tzinfo=UTC), ai_messages=3,
                               tokens_in=900, tokens_out=120, cost=Decimal("0.0021"))
    finally:
        await db.close_database()


def _build_in_another_process(database_url: str) -> None:
    """In a process of its own: Tortoise keeps one dialect's SQL per process (see tests/run.sh)."""
    built = subprocess.run([sys.executable, "-c", f"import asyncio, tests.test_transfer as t; "
                            f"asyncio.run(t._shop({database_url!r}))"], cwd=ROOT, capture_output=True, text=True,
                           timeout=120, check=False)
    assert built.returncode == 0, built.stderr


async def test_export_from_sqlite_and_import_elsewhere_keeps_everything(
        database_url: str, sqlite_template: Path, tmp_path: Path) -> None:
    source_path = tmp_path / "small-shop.sqlite3"
    shutil.copy(sqlite_template, source_path)
    source = f"sqlite://{source_path}"
    _build_in_another_process(source)

    exported = _cli(tmp_path, source, "export", str(tmp_path / "shop.jsonl"))
    assert exported.returncode == 0, exported.stderr
    assert "exported 1 Bot, 1 WidgetSite, 2 User, 1 Conversation, 2 Message" in exported.stdout
    assert "1 PromptProject, 1 PromptVersion, 1 ProviderKey, 1 PromptRun, 1 PromptTemplate" in exported.stdout
    imported = _cli(tmp_path, database_url, "import", str(tmp_path / "shop.jsonl"))
    assert imported.returncode == 0, imported.stderr

    await db.open_database(database_url, run_migrations=False)
    try:
        bot = await Bot.get(telegram_id=7000000001)
        assert bot.settings == {"working_hours": "mon-fri 09:00-18:00"}
        answer = await Message.get(author_kind=AuthorKind.AI).prefetch_related("reply_to", "conversation")
        assert answer.reply_to is not None
        assert answer.reply_to.text == "Есть овсяное молоко?"
        assert answer.ai_meta == {"model": "m", "cost": 0.0001}
        assert answer.conversation.rating == 5
        assert await KnowledgeItem.filter(bot=bot).count() == 8
        [hit, *_] = await knowledge.search(bot.id, "opening hours")  # the full-text index knows them
        assert "open" in hit.item.answer.lower()
        assert (await persona.active_persona(bot.id)) == "You are the barista."
        assert await Persona.filter(bot=bot).count() == 1
        web = await User.get(widget_visitor_id="v1:0f0f").prefetch_related("linked_to")
        assert web.linked_to is not None
        assert web.linked_to.first_name == "Ann"  # her website chat is still hers
        receipt = await StoredFile.get(name="receipt.png")
        assert (bytes(receipt.content), receipt.mime_type, receipt.size) == (RECEIPT, "image/png", len(RECEIPT))
        site = await WidgetSite.get(public_key="shop-site")  # the website keeps its widget
        assert (site.title, site.allowed_origins) == ("Coffee", ["https://shop.example"])
        run = await PromptRun.get()
        version = await PromptVersion.get(id=run.version_id)
        key = await ProviderKey.get(id=run.api_key_id)
        project = await PromptProject.get(id=run.project_id)
        ann = await User.get(id=run.user_id)
        assert (project.name, version.labels, key.last4, ann.first_name, run.answer) == \
            ("Письма", ["production"], "a1b2", "Ann", "Готово")
        assert version.author_id == ann.id
        assert projects.load(project).prompt_blocks[0].id == version.block_key
        [template] = await PromptTemplate.all()  # the shipped one comes with the product, not the file
        assert (template.title, template.owner_id) == ("Моё письмо", ann.id)
        later = await Message.create(bot=bot, conversation=answer.conversation, author_kind=AuthorKind.CUSTOMER,
                                     text="Спасибо", source_key="tg:2")  # new rows get new ids
        assert later.id > answer.id
        slot = await UsageSlot.get(bot=bot)
        assert (slot.slot, slot.ai_messages, slot.tokens_in, slot.cost) == \
            (datetime(2026, 12, 1, 9, 15, tzinfo=UTC), 3, 900, Decimal("0.0021"))
        assert (await Usage.get(user=ann)).ai_messages == 3
    finally:
        await db.close_database()

    again = _cli(tmp_path, database_url, "import", str(tmp_path / "shop.jsonl"))
    assert again.returncode == 1
    assert "already has data" in again.stderr


async def test_import_refuses_a_file_that_is_not_an_export(database_url: str, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello\n")
    result = _cli(tmp_path, database_url, "import", str(tmp_path / "notes.txt"))
    assert result.returncode == 1
    assert "not a Frontdesk export" in result.stderr

