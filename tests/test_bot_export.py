"""One bot's data out of a deployment of several (issue 19): `python -m bot export FILE --bot NAME`, and
`bots remove NAME --export FILE`. The file imports into a new database as that business alone."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from bot import db
from models import (
    AuthorKind,
    Bot,
    BotState,
    Conversation,
    KnowledgeChunk,
    KnowledgeItem,
    KnowledgePage,
    KnowledgeSource,
    Message,
    Persona,
    PromptTemplate,
    PromptVersion,
    SourceKind,
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

SHOPS = {"tea_bot": 7100000011, "bakery_bot": 7100000012}


async def _cli(database_url: str, *args: str, cwd: Path | None = None) -> tuple[int, str, str]:
    """`python -m bot ARGS` (or `python -c` with `-c`), without blocking the loop."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, *(args if args[0] == "-c" else ("-m", "bot", *args)), cwd=cwd or ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=_clean_environment(DATABASE_URL=database_url))
    out, err = await asyncio.wait_for(process.communicate(), 120)
    return int(process.returncode or 0), out.decode(), err.decode()


async def _two_shops(database_url: str) -> None:
    """Two businesses, each with a bit of everything; each row says whose it is in its text."""
    await db.open_database(database_url, run_migrations=False)
    try:
        for name, telegram_id in SHOPS.items():
            bot = await Bot.create(telegram_id=telegram_id, username=name, settings={"business_name": name})
            ann = await User.create(bot=bot, telegram_id=10, first_name=f"Ann of {name}")
            conversation = await Conversation.create(uuid=uuid.uuid4(), bot=bot, user=ann)
            question = await Message.create(bot=bot, conversation=conversation, author_kind=AuthorKind.CUSTOMER,
                                            text=f"a question to {name}", source_key="tg:1")
            await Message.create(bot=bot, conversation=conversation, author_kind=AuthorKind.AI,
                                 text=f"an answer from {name}", reply_to=question)
            await StoredFile.create(bot=bot, conversation=conversation, name=f"{name}.png", mime_type="image/png",
                                    size=3, content=b"\x00\x01\x02")
            await knowledge.import_entries(bot.id, [knowledge.Entry(f"What does {name} sell?", f"{name} sells.")])
            source = await KnowledgeSource.create(bot=bot, kind=SourceKind.PAGE, title=f"{name} site",
                                                  location=f"https://{name}.example/")
            page = await KnowledgePage.create(source=source, url=f"https://{name}.example/", url_key=name)
            await KnowledgeChunk.create(bot=bot, source=source, page=page, ordinal=0, text=f"{name} opens at 9")
            await persona.set_persona(bot.id, f"You are {name}'s assistant.")
            await widget.create_site(bot.id, [f"https://{name}.example"], title=name, public_key=f"{name}-site")
            await Usage.create(bot=bot, user=ann, day=date(2026, 12, 1), messages=2, ai_messages=1)
            await UsageSlot.create(bot=bot, slot=datetime(2026, 12, 1, 9, 15, tzinfo=UTC), ai_messages=1,
                                   cost=Decimal("0.25"))
            project = await projects.create_project(ann, f"{name} letters")
            block = projects.load(project).prompt_blocks[0]
            await PromptVersion.create(project=project, block_key=block.id, number=1, name=block.name,
                                       template=block.template, compiled=name, author=ann)
            await PromptTemplate.create(owner=ann, title=f"{name} template", body="Write {{what}}")
        await PromptTemplate.create(slug="en/summarize-text", title="Summarize", body="Summarize: {{text}}")
    finally:
        await db.close_database()


async def _deployment_of_two(tmp_path: Path, sqlite_template: Path) -> str:
    """A SQLite deployment with both shops, built in a process of its own (one dialect per process)."""
    path = tmp_path / "two-shops.sqlite3"
    shutil.copy(sqlite_template, path)
    source = f"sqlite://{path}"
    code, _, err = await _cli(source, "-c", f"import asyncio, tests.test_bot_export as t; "
                                            f"asyncio.run(t._two_shops({source!r}))")
    assert code == 0, err
    return source


async def test_one_bots_export_holds_only_its_rows_and_imports_as_that_business_alone(
        database_url: str, sqlite_template: Path, tmp_path: Path) -> None:
    source = await _deployment_of_two(tmp_path, sqlite_template)
    code, out, err = await _cli(source, "export", str(tmp_path / "tea.jsonl"), "--bot", "@tea_bot")
    assert code == 0, err
    assert "exported 1 Bot, 1 WidgetSite, 1 User, 1 Conversation, 2 Message" in out
    lines = (tmp_path / "tea.jsonl").read_text(encoding="utf-8").splitlines()
    assert "bakery" not in "\n".join(lines)  # not one of the other business's rows, nor the shipped template
    assert "Summarize" not in "\n".join(lines)
    tables = {json.loads(line)["table"] for line in lines[1:]}
    assert {"KnowledgePage", "PromptVersion", "PromptTemplate", "KnowledgeChunk", "StoredFile"} <= tables

    code, _, err = await _cli(database_url, "import", str(tmp_path / "tea.jsonl"))
    assert code == 0, err
    await db.open_database(database_url, run_migrations=False)
    try:
        [bot] = await Bot.all()
        assert (bot.username, bot.settings) == ("tea_bot", {"business_name": "tea_bot"})
        assert [user.first_name for user in await User.all()] == ["Ann of tea_bot"]
        assert sorted(m.text for m in await Message.all()) == ["a question to tea_bot", "an answer from tea_bot"]
        assert [bytes(f.content) for f in await StoredFile.filter(bot=bot)] == [b"\x00\x01\x02"]
        [item] = await KnowledgeItem.filter(bot=bot)
        assert item.answer == "tea_bot sells."
        assert [c.text for c in await KnowledgeChunk.all()] == ["tea_bot opens at 9"]
        assert await persona.active_persona(bot.id) == "You are tea_bot's assistant."
        assert [site.public_key for site in await WidgetSite.all()] == ["tea_bot-site"]
        assert [(u.ai_messages, s.cost) for u, s in zip(await Usage.all(), await UsageSlot.all(), strict=True)] \
            == [(1, Decimal("0.25"))]
        assert [v.compiled for v in await PromptVersion.all()] == ["tea_bot"]
        assert [t.title for t in await PromptTemplate.all()] == ["tea_bot template"]
        assert await Persona.all().count() == 1
    finally:
        await db.close_database()


async def test_remove_with_export_writes_the_file_first_and_a_failed_export_removes_nothing(
        sqlite_template: Path, tmp_path: Path) -> None:
    source = await _deployment_of_two(tmp_path, sqlite_template)
    code, _, err = await _cli(source, "bots", "remove", "bakery_bot", "--export",
                              str(tmp_path / "no-such-folder" / "bakery.jsonl"))
    assert code == 1
    assert "no-such-folder" in err
    assert "Traceback" not in err

    code, out, err = await _cli(source, "bots", "remove", "bakery_bot", "--export", str(tmp_path / "bakery.jsonl"))
    assert code == 0, err
    assert "\tremoved\t" in out
    assert "exported 1 Bot" in err
    rows = [json.loads(line) for line in (tmp_path / "bakery.jsonl").read_text(encoding="utf-8").splitlines()[1:]]
    assert [row["row"]["username"] for row in rows if row["table"] == "Bot"] == ["bakery_bot"]
    assert "tea_bot" not in json.dumps(rows)
    assert not list(tmp_path.glob("*.partial"))

    await db.open_database(source, run_migrations=False)
    try:
        states = {bot.username: bot.state for bot in await Bot.all()}
        assert states == {"tea_bot": BotState.ACTIVE, "bakery_bot": BotState.REMOVED}
    finally:
        await db.close_database()
    # The first, failed try changed nothing: only the second removal is in the audit log.
    code, out, err = await _cli(source, "export", str(tmp_path / "all.jsonl"))
    assert code == 0, err
    assert "exported 2 Bot" in out  # without --bot: the whole deployment, every bot
    actions = [json.loads(line)["row"]["action"] for line in (tmp_path / "all.jsonl").read_text().splitlines()[1:]
               if json.loads(line)["table"] == "AuditLog"]
    assert [action for action in actions if action.startswith("bot.")] == ["bot.remove"]
