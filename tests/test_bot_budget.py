"""A bot's monthly AI budget (issue 19): at it, the AI pauses for the rest of the month (UTC), the knowledge base
and people still answer, and the bot's admins are told once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from tgsim import Simulator

from models import AuditLog, Bot, PromptRun, UsageSlot
from services import budgets, knowledge
from services.conversations import add_counters
from tests.conftest import Frontdesk, outbox_idle
from tests.fake_ai import FakeAI
from tests.miniapp_helpers import app_client
from tests.test_bots import _cli
from tests.test_studio import _doc, _project, _save

BOSS_ID = 900_101
USED_UP = "This month's AI budget of $1.00 is used up ($1.00 so far)."
HANDED_OVER = "I can't answer this myself right now, so I've passed your conversation to a person."


def bot_texts(sim: Simulator, chat_id: int) -> list[str]:
    return [m["text"] for m in sim.chat_history(chat_id) if m["from"]["is_bot"]]


async def _ask(sim: Simulator, name: str, text: str) -> str:
    """A new customer writes; the bot's first reply to them."""
    customer = sim.create_user(name)
    sim.send_text(customer["id"], text)
    [reply] = await sim.wait_for_messages(customer["id"])
    return str(reply["text"])


@pytest.mark.parametrize("frontdesk_settings", [{"ADMIN_IDS": str(BOSS_ID)}], indirect=True)
async def test_a_used_up_monthly_budget_pauses_the_ai_and_tells_the_admins_once(
        frontdesk_settings: dict[str, Any], frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    boss = sim.create_user("Boss", id=BOSS_ID)
    bot = await Bot.get()
    await knowledge.import_entries(bot.id, [knowledge.Entry("What are your opening hours?", "We open at 9.")])
    code, out, err = await _cli(frontdesk.settings.database_url, sim, "bots", "budget", str(bot.id), "1")
    assert code == 0, err
    assert "AI budget: $1.00 a month; spent this month (UTC): $0.00" in out

    # Under the budget, the AI answers.
    assert await _ask(sim, "Ann", "Do you deliver?") == ai.script.reply
    assert len(ai.requests) == 1

    # This month's cost reaches the budget: no model is asked any more.
    month = budgets.month_start(datetime.now(UTC))
    await add_counters(UsageSlot, {"bot_id": bot.id, "slot": month}, cost=Decimal("1.00") - await
                       budgets.spent_this_month(bot.id))
    assert await _ask(sim, "Bob", "What are your opening hours?") == "📚 From our knowledge base:\n\nWe open at 9."
    assert (await _ask(sim, "Cid", "Do you cater weddings?")).startswith(HANDED_OVER)
    assert (await _ask(sim, "Dee", "Can I book a table?")).startswith(HANDED_OVER)
    await outbox_idle(sim)
    assert len(ai.requests) == 1
    # The admins are told once, however many customers wrote.
    [told] = bot_texts(sim, boss["id"])
    assert told.startswith(USED_UP)
    assert await AuditLog.filter(bot=bot, action="bot.budget_reached").count() == 1

    # A new month: what was spent is last month's, and the AI answers again.
    for slot in await UsageSlot.filter(bot_id=bot.id):
        await UsageSlot.filter(id=slot.id).update(slot=slot.slot - timedelta(days=40))  # before this month began
    assert await _ask(sim, "Eve", "Do you have oat milk?") == ai.script.reply
    assert len(ai.requests) == 2
    assert len(bot_texts(sim, boss["id"])) == 1


async def test_a_used_up_budget_stops_studio_runs_on_the_deployments_models(
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    """The studio's runs cost the bot too: at its budget, a run on the deployment's models is refused (429, in the
    person's language) and nothing is asked or stored."""
    bot = await Bot.get()
    await budgets.set_budget(bot.id, Decimal("1"))
    await add_counters(UsageSlot, {"bot_id": bot.id, "slot": budgets.month_start(datetime.now(UTC))},
                       cost=Decimal("1.00"))
    ann = sim.create_user("Ann", language_code="ru")
    async with app_client(frontdesk, sim, ann["id"]) as client:
        project = await _project(client)
        await _save(client, project, _doc("Write a post about our latte"))
        status, body = await client.call("POST", f"/api/studio/projects/{project['id']}/runs",
                                         {"block_id": "p1", "model": "main-model@default"})
    assert (status, body["error"]["code"]) == (429, "budget")
    assert body["error"]["message"] == ("Бюджет на ИИ в этом месяце исчерпан. "
                                        "Запуски с вашим собственным API-ключом работают.")
    assert ai.requests == []
    assert not await PromptRun.exists()
