"""The platform owner's bots (issue 19): `python -m bot bots ...`, and `--bot` on the commands that touch one
business's data. Telegram is tgsim with a second bot in its world; the commands run as the operator runs them."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tgsim import Simulator

from bot import db
from models import AuditLog, Bot, BotState, KnowledgeItem, Persona, User
from services import bots
from services.secrets_box import SecretBox, parse_key
from tests.conftest import ENCRYPTION_KEY, TOKEN
from tests.test_process import _clean_environment

SHOP_TOKEN = "7100000002:SHOP-two-token-for-the-tests"
OTHER_TOKEN = "7100000003:OTHER-token-for-the-tests"


async def _cli(database_url: str, sim: Simulator, *args: str, stdin: str = "") -> tuple[int, str, str]:
    """`python -m bot ARGS`, without blocking the loop tgsim answers on."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_clean_environment(DATABASE_URL=database_url, BOT_TOKEN=TOKEN, TELEGRAM_API_BASE=sim.base_url,
                               ENCRYPTION_KEY=ENCRYPTION_KEY, APP_ENV="development"))
    out, err = await asyncio.wait_for(process.communicate(stdin.encode()), 120)
    return int(process.returncode or 0), out.decode(), err.decode()


def _refused(code: int, err: str, because: str) -> None:
    assert code == 1, err
    assert because in err


def _done(code: int, out: str, shows: str, err: str = "") -> None:
    assert code == 0, err
    assert shows in out


def secret_box_for_tests() -> SecretBox:
    return SecretBox(parse_key(ENCRYPTION_KEY))


async def _with_db(database_url: str) -> None:
    await db.open_database(database_url, run_migrations=False)


async def test_the_platform_owner_adds_a_bot_and_commands_name_the_one_they_mean(
        database_url: str, sim: Simulator, tmp_path: Path) -> None:
    sim.add_bot(SHOP_TOKEN, username="shop_two_bot")
    persona = tmp_path / "persona.md"
    persona.write_text("You are the tea shop's assistant.", encoding="utf-8")
    # One bot (BOT_TOKEN's): commands need no --bot.
    code, _, err = await _cli(database_url, sim, "persona", "set", str(persona))
    assert code == 0, err

    # The token comes on stdin: not in the shell's history or the process list.
    code, out, err = await _cli(database_url, sim, "bots", "add", "-", stdin=SHOP_TOKEN + "\n")
    assert code == 0, err
    assert "@shop_two_bot\t7100000002\tactive" in out
    code, _, err = await _cli(database_url, sim, "bots", "add", "-", stdin=SHOP_TOKEN + "\n")
    _refused(code, err, "@shop_two_bot is already here")

    # Two bots: a command that does not name one fails, naming both; named, it touches only that one.
    code, _, err = await _cli(database_url, sim, "persona", "set", str(persona))
    # (BOT_TOKEN's bot has no username until the server asks Telegram: its Telegram id names it.)
    _refused(code, err, "this deployment has 2 bots: name one with --bot USERNAME_OR_ID "
                        "(bot 7000000001 (id 1), @shop_two_bot (id 2))")
    persona.write_text("You are the bakery's assistant.", encoding="utf-8")
    code, _, err = await _cli(database_url, sim, "persona", "set", "--bot", "shop_two_bot", str(persona))
    assert code == 0, err
    code, _, err = await _cli(database_url, sim, "kb", "import", "--bot", "@shop_two_bot",
                              str(Path(__file__).parent.parent / "demo" / "knowledge.md"))
    assert code == 0, err
    code, _, err = await _cli(database_url, sim, "kb", "sources", "--bot", "no_such_bot")
    _refused(code, err, "no bot is called 'no_such_bot'")

    await _with_db(database_url)
    try:
        first = await Bot.get(telegram_id=int(TOKEN.partition(":")[0]))
        shop = await Bot.get(telegram_id=7100000002)
        assert [p.text for p in await Persona.filter(bot=first, active=True)] == [
            "You are the tea shop's assistant."]
        assert [p.text for p in await Persona.filter(bot=shop, active=True)] == ["You are the bakery's assistant."]
        assert await KnowledgeItem.filter(bot=shop).count() > 0
        assert not await KnowledgeItem.filter(bot=first).exists()
        # The token is stored sealed, and opens only as this bot's.
        assert SHOP_TOKEN not in shop.token_secret
        assert shop.token_last4 == SHOP_TOKEN[-4:]
        assert len(shop.webhook_key) >= 32  # its own webhook path
        assert bots.open_token(shop, secret_box_for_tests()) == SHOP_TOKEN
    finally:
        await db.close_database()


async def test_pause_resume_a_new_token_and_removal(database_url: str, sim: Simulator) -> None:
    sim.add_bot(SHOP_TOKEN, username="shop_two_bot")
    sim.add_bot(OTHER_TOKEN, username="other_bot")
    code, _, err = await _cli(database_url, sim, "bots", "add", SHOP_TOKEN)
    assert code == 0, err
    code, out, _ = await _cli(database_url, sim, "bots", "pause", "shop_two_bot")
    _done(code, out, "paused (owner)")
    code, out, _ = await _cli(database_url, sim, "bots", "list")
    assert "@shop_two_bot\t7100000002\tpaused (owner)" in out
    code, out, _ = await _cli(database_url, sim, "bots", "resume", "7100000002")
    _done(code, out, "\tactive\t")
    # Another bot's token is not this bot's new token; a token Telegram refuses stores nothing.
    code, _, err = await _cli(database_url, sim, "bots", "token", "shop_two_bot", OTHER_TOKEN)
    _refused(code, err, "another bot's")
    code, _, err = await _cli(database_url, sim, "bots", "add", "7100000009:NEVER-issued-by-botfather")
    _refused(code, err, "Telegram refused the token")
    assert "Traceback" not in err
    code, _, err = await _cli(database_url, sim, "bots", "add", "not a token")
    _refused(code, err, "not a bot token")

    code, out, err = await _cli(database_url, sim, "bots", "remove", "shop_two_bot")
    _done(code, out, "\tremoved\t")
    assert "deleted after 30 days" in err
    code, out, err = await _cli(database_url, sim, "bots", "remove", "shop_two_bot")  # again: nothing changes
    _done(code, out, "\tremoved\t", err)
    code, _, err = await _cli(database_url, sim, "kb", "sources", "--bot", "shop_two_bot")
    _refused(code, err, "no bot is called")

    await _with_db(database_url)
    try:
        assert not await Bot.exists(telegram_id=7100000009)
        shop = await Bot.get(telegram_id=7100000002)
        assert (shop.state, shop.token_secret) == (BotState.REMOVED, "")  # its token is forgotten
        assert shop.removed_at is not None
        assert shop.removed_at > datetime.now(UTC) - timedelta(minutes=5)
        actions = [entry.action for entry in await AuditLog.filter(bot=shop).order_by("id")]
        assert actions == ["bot.add", "bot.pause", "bot.resume", "bot.remove"]
    finally:
        await db.close_database()
    # Added again before its data is deleted: it comes back with its data.
    code, out, err = await _cli(database_url, sim, "bots", "add", SHOP_TOKEN)
    _done(code, out, "\tactive\t", err)


async def test_a_removed_bot_and_its_data_go_after_the_retention_period(database: str) -> None:
    now = datetime.now(UTC)
    long_gone = await Bot.create(telegram_id=1, username="old_bot", state=BotState.REMOVED,
                                 removed_at=now - timedelta(days=31))
    recently = await Bot.create(telegram_id=2, username="recent_bot", state=BotState.REMOVED,
                                removed_at=now - timedelta(days=5))
    serving = await Bot.create(telegram_id=3, username="serving_bot")
    for bot in (long_gone, recently, serving):
        await User.create(bot=bot, telegram_id=10, first_name="Ann")
    assert await bots.purge_removed(timedelta(days=30)) == ["@old_bot"]
    assert not await Bot.exists(id=long_gone.id)
    assert not await User.exists(bot_id=long_gone.id)
    assert await User.filter(bot_id__in=[recently.id, serving.id]).count() == 2
