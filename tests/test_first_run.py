"""The first run as an owner meets it: no Telegram, no AI, the demo knowledge, the widget and the inbox."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from dotenv import dotenv_values
from tgsim import Simulator

from bot.settings import Settings
from models import AuditLog, Bot, Conversation, Message
from services import knowledge
from services.answering import AnswerPolicy
from tests.conftest import ROOT, Frontdesk, free_port, outbox_idle
from tests.miniapp_helpers import LINK, app_client, sign_in
from tests.test_process import _clean_environment, _start
from tests.widget_helpers import is_answer, open_widget

NO_TELEGRAM = {"BOT_TOKEN": "", "use_ai": False}
OWNER = 4242


@pytest.fixture
async def http() -> Any:
    async with aiohttp.ClientSession() as session:
        yield session


async def load_demo(language: str = "") -> None:
    bot = await Bot.get(telegram_id=0)
    name = f"knowledge.{language}.md" if language else "knowledge.md"
    await knowledge.import_entries(bot.id, knowledge.parse_file(ROOT / "demo" / name))


@pytest.mark.parametrize("frontdesk_settings", [NO_TELEGRAM], indirect=True)
@pytest.mark.parametrize("lang", ["ru", "uz"])
async def test_a_handed_off_visitor_gets_an_outcome_for_every_later_message_without_telegram(
        frontdesk: Frontdesk, sim: Simulator, http: aiohttp.ClientSession, lang: str) -> None:
    await load_demo()  # English only: nothing answers a Russian or Uzbek question, so it goes to a person
    visitor, welcome = await open_widget(http, frontdesk.url, lang=lang)
    assert welcome["type"] == "welcome"
    await visitor.send_message("Можно ли прийти с собакой?" if lang == "ru" else "Itim bilan kelsam bo‘ladimi?")
    first = await visitor.until(lambda f: f["type"] == "message" and f["author"] == "customer")
    handed = await visitor.until(lambda f: is_answer(f, first["id"]))
    assert handed["author"] == "system"
    # Later messages: each gets its outcome too, never silence.
    for text in ("Алло?", "Есть кто-нибудь?") if lang == "ru" else ("Salom?", "Kimdir bormi?"):
        await visitor.send_message(text)
        mine = await visitor.until(lambda f, text=text: f["type"] == "message" and f["author"] == "customer"
                                   and f["text"] == text)
        told = await visitor.until(lambda f, to=mine["id"]: is_answer(f, to))
        assert told["author"] == "system"
    await visitor.socket.close()
    await outbox_idle(sim, queue="")  # Telegram is off: no worker runs the manager group's queue


@pytest.mark.parametrize("frontdesk_settings", [NO_TELEGRAM], indirect=True)
async def test_without_telegram_the_widget_says_a_person_sees_it_in_the_inbox_and_why_it_was_handed_off(
        frontdesk: Frontdesk, sim: Simulator, http: aiohttp.ClientSession) -> None:
    await load_demo()
    visitor, _ = await open_widget(http, frontdesk.url)
    await visitor.send_message("Can I bring my dog?")
    first = await visitor.until(lambda f: f["type"] == "message" and f["author"] == "customer")
    handed = await visitor.until(lambda f: is_answer(f, first["id"]))
    assert handed["text"] == ("I can't answer this myself right now, so I've passed your conversation to a person. "
                              "It's waiting in our team's inbox, and someone will answer you right here.")
    await visitor.send_message("It's a small dog")
    later = await visitor.until(lambda f: f["type"] == "message" and f["author"] == "customer"
                                and f["id"] > first["id"])
    told = await visitor.until(lambda f: is_answer(f, later["id"]))
    assert "inbox" in told["text"]
    await visitor.socket.close()
    await outbox_idle(sim, queue="")  # Telegram is off: no worker runs the manager group's queue
    conversation = await Conversation.get(id=first["conversation"])
    # Staff see the honest reason: no AI is configured, so nothing failed; the knowledge base had no answer.
    assert conversation.handoff_reason == "not_in_knowledge"
    assert conversation.last_message_at is not None
    assert conversation.last_message_at >= (await Message.get(id=later["id"])).created_at


def dashboard_link(tmp_path: Path, database_url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m bot dashboard-link` as the owner runs it in the server's shell (beside the running server)."""
    return subprocess.run([sys.executable, "-m", "bot", "dashboard-link", *args], cwd=tmp_path, capture_output=True,
                          text=True, env=_clean_environment(DATABASE_URL=database_url, **env), timeout=60, check=False)


@pytest.mark.parametrize("frontdesk_settings", [{**NO_TELEGRAM, "ADMIN_IDS": f"{OWNER},777"}], indirect=True)
async def test_without_telegram_the_owner_signs_in_with_a_cli_link_and_answers_a_handoff_from_the_inbox(
        frontdesk: Frontdesk, sim: Simulator, http: aiohttp.ClientSession, database_url: str, tmp_path: Path) -> None:
    visitor, _ = await open_widget(http, frontdesk.url)
    await visitor.send_message("I'd like to talk to someone about a wedding order")
    await visitor.until(lambda f: f["type"] == "status" and f["mode"] == "human")

    port = str(frontdesk.settings.port)
    made = await asyncio.to_thread(dashboard_link, tmp_path, database_url, "--name", "Olga",
                                   ADMIN_IDS=f"{OWNER},777", PORT=port)
    assert made.returncode == 0, made.stderr
    assert f"admin {OWNER}" in made.stderr
    link = made.stdout.strip()
    assert LINK.fullmatch(link)
    assert link.startswith(f"http://localhost:{port}/app/login?token=")  # no PUBLIC_BASE_URL: this machine's
    async with app_client(frontdesk) as owner:
        assert await sign_in(owner, link) == 303
        me = await owner.get("/api/me")
        assert (me["name"], me["role"]) == ("Olga", "admin")
        [row] = (await owner.get("/api/conversations"))["conversations"]
        assert row["state"] == "waiting"
        assert row["handoff_reason"] == "not_in_knowledge"
        await owner.post(f"/api/conversations/{row['id']}/reply", {"text": "Congratulations! Tell me more."})
        reply = await visitor.until(lambda f: f["type"] == "message" and f["author"] == "manager")
        assert reply["text"] == "Congratulations! Tell me more."
        assert await sign_in(owner, link) == 403  # the link worked once
    await visitor.socket.close()
    await outbox_idle(sim, queue="")  # Telegram is off: no worker runs the manager group's queue

    # --admin picks another of ADMIN_IDS; the address is PUBLIC_BASE_URL's when it is set.
    other = await asyncio.to_thread(dashboard_link, tmp_path, database_url, "--admin", "777",
                                    ADMIN_IDS=f"{OWNER},777", PUBLIC_BASE_URL="https://desk.example/")
    assert other.returncode == 0, other.stderr
    assert other.stdout.startswith("https://desk.example/app/login?token=")
    assert "admin 777" in other.stderr
    assert [m.text for m in await Message.filter(author_kind="system").order_by("id")][-1] == \
        "Olga from our team has joined the conversation."


def test_a_dashboard_link_needs_an_admin_and_says_so_in_one_line(tmp_path: Path) -> None:
    database_url = f"sqlite://{tmp_path}/db.sqlite3"
    nobody = dashboard_link(tmp_path, database_url)
    assert nobody.returncode == 1
    assert nobody.stdout == ""
    [line] = nobody.stderr.strip().splitlines()
    assert line.startswith("error: ADMIN_IDS is empty: put your Telegram user id in it")
    stranger = dashboard_link(tmp_path, database_url, "--admin", "5", ADMIN_IDS=str(OWNER))
    assert stranger.returncode == 1
    assert stranger.stderr.strip() == f"error: --admin 5 is not one of ADMIN_IDS ({OWNER})"


def test_the_example_env_file_does_not_turn_the_ai_on_without_a_key() -> None:
    example = {key: value for key, value in dotenv_values(ROOT / ".env.example").items() if value is not None}
    assert example["AI_BASE_URL"]
    assert example["AI_MODEL"]
    assert not example["AI_API_KEY"]
    copied = Settings(_env_file=None, **example)  # type: ignore[arg-type]
    assert not copied.ai_enabled
    assert copied.ai_off_reason == "AI_API_KEY is empty, and api.openai.com needs one"
    assert Settings(_env_file=None, **{**example, "AI_API_KEY": "sk-test"}).ai_enabled  # type: ignore[arg-type]
    # A model server on this machine or the local network takes no key.
    for local in ("http://127.0.0.1:8000/v1", "http://localhost:11434/v1", "http://ollama:11434/v1",
                  "http://192.168.1.20:8080/v1", "http://[::1]:8000/v1", "http://gpu.local:8000/v1"):
        assert Settings(_env_file=None, AI_BASE_URL=local, AI_MODEL="qwen", AI_API_KEY="").ai_enabled, local
    for hosted in ("https://openrouter.ai/api/v1", "http://8.8.8.8/v1", "http://[2001:4860::8888]/v1"):
        assert not Settings(_env_file=None, AI_BASE_URL=hosted, AI_MODEL="m", AI_API_KEY=" ").ai_enabled, hosted


@pytest.mark.parametrize("frontdesk_settings", [{"ADMIN_IDS": str(OWNER)}], indirect=True)
async def test_start_and_help_show_staff_their_commands_and_id_tells_anyone_their_id(
        frontdesk: Frontdesk, sim: Simulator) -> None:
    owner = sim.create_user("Olga", id=OWNER)
    ann = sim.create_user("Ann")
    for person in (owner, ann):
        sim.send_command(person["id"], "start")
        sim.send_command(person["id"], "help")
    [owner_start, owner_help] = await sim.wait_for_messages(owner["id"], 2)
    [ann_start, ann_help] = await sim.wait_for_messages(ann["id"], 2)
    for text in (owner_start["text"], owner_help["text"]):
        assert "For the team:\n/dashboard: a sign-in link for the desk in a browser" in text
    for text in (ann_start["text"], ann_help["text"]):
        assert "/dashboard" not in text
        assert "For the team" not in text

    sim.send_command(ann["id"], "id")
    [*_, told] = await sim.wait_for_messages(ann["id"], 3)
    assert told["text"] == f"Your Telegram id: {ann['id']}"  # ADMIN_IDS has someone: no setup hint


@pytest.mark.parametrize("frontdesk_settings", [{"ADMIN_IDS": ""}], indirect=True)
async def test_id_helps_an_owner_fill_admin_ids(frontdesk: Frontdesk, sim: Simulator) -> None:
    olga = sim.create_user("Olga")
    sim.send_command(olga["id"], "id")
    [told] = await sim.wait_for_messages(olga["id"])
    assert told["text"].startswith(f"Your Telegram id: {olga['id']}\n\nNobody is this bot's admin yet: the owner "
                                   "puts their id in ADMIN_IDS")


@pytest.mark.parametrize("frontdesk_settings", [{"ADMIN_IDS": str(OWNER)}], indirect=True)
async def test_the_business_name_set_by_an_admin_names_the_widget_and_the_bots_welcome(
        frontdesk: Frontdesk, sim: Simulator, http: aiohttp.ClientSession) -> None:
    async def widget_config(lang: str) -> dict[str, Any]:
        async with http.get(f"{frontdesk.url}/widget/api/site", params={"site": "demo", "lang": lang},
                            headers={"Origin": frontdesk.url}) as response:
            assert response.status == 200
            return dict((await response.json())["site"])

    before = await widget_config("en")
    assert before["title"] == ""  # not "Frontdesk": the widget says "Chat with us" until the business has a name
    assert before["greeting"] == "Hi! How can we help you today?"
    sim.create_user("Olga", id=OWNER)
    ann = sim.create_user("Ann")
    async with app_client(frontdesk, sim, OWNER) as owner:
        assert (await owner.get("/api/admin/business")) == {"business_name": ""}
        status, saved = await owner.call("PUT", "/api/admin/business", {"business_name": "  Bean   There \n"})
        assert (status, saved) == (200, {"business_name": "Bean There"})
        status, refused = await owner.call("PUT", "/api/admin/business", {"business_name": "x" * 101})
        assert status == 400
        assert refused["error"]["code"] == "too_long"
        status, refused = await owner.call("PUT", "/api/admin/business", {"business_name": "Bean\u0000There"})
        assert status == 400
        assert refused["error"]["code"] == "bad_name"
    async with app_client(frontdesk, sim, ann["id"]) as customer:
        status, _ = await customer.call("PUT", "/api/admin/business", {"business_name": "Mine now"})
        assert status == 403
    after = await widget_config("en")
    assert after["title"] == "Bean There"
    assert after["greeting"] == "Hi! Welcome to Bean There. How can we help you today?"
    sim.send_command(ann["id"], "start")
    [welcome] = await sim.wait_for_messages(ann["id"])
    assert "I'm the assistant of Bean There." in welcome["text"]
    assert "this business" not in welcome["text"]
    [entry] = await AuditLog.filter(action="business_name")
    assert entry.details["name"] == "Bean There"


async def test_the_first_run_prints_next_steps_and_the_demo_loads_while_the_server_runs_in_three_languages(
        database_url: str, tmp_path: Path, http: aiohttp.ClientSession,
        processes: list[subprocess.Popen[bytes]]) -> None:
    port = free_port()
    env = {"DATABASE_URL": database_url, "PORT": str(port), "HOST": "127.0.0.1", "ADMIN_IDS": str(OWNER)}
    process = await _start(tmp_path, env, processes)
    url = f"http://127.0.0.1:{port}"

    loaded = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "bot", "demo"], cwd=tmp_path,
                                     capture_output=True, text=True, env=_clean_environment(**env), timeout=120,
                                     check=False)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.splitlines() == [
        "knowledge (knowledge.md, knowledge.ru.md, knowledge.uz.md): 24 created, 0 updated, 0 unchanged",
        "persona version 1 is now active", "business name: Bean There"]

    asked = {"en": ("What are your opening hours?", "Monday to Friday 7:00–20:00"),
             "ru": ("Какие у вас часы работы?", "с понедельника по пятницу с 7:00 до 20:00"),
             "uz": ("Ish vaqtingiz qanday?", "dushanbadan jumagacha 7:00 dan 20:00 gacha")}
    for lang, (question, answer) in asked.items():
        visitor, _ = await open_widget(http, url, lang=lang)
        await visitor.send_message(question)
        mine = await visitor.until(lambda f: f["type"] == "message" and f["author"] == "customer")
        reply = await visitor.until(lambda f, to=mine["id"]: is_answer(f, to), within=30)
        assert reply["author"] == "ai"  # from the knowledge base, in the visitor's language
        assert answer in reply["text"]
        await visitor.socket.close()
    async with http.get(f"{url}/widget/api/site", params={"site": "demo", "lang": "ru"},
                        headers={"Origin": url}) as response:
        site = (await response.json())["site"]
    assert site["title"] == "Bean There"

    process.send_signal(signal.SIGINT)
    assert process.wait(30) == 0
    output = (tmp_path / "process.log").read_text()
    python = "python -m bot"  # the test runs it from a scratch directory, not beside .venv
    assert "\nNext steps:\n" in output
    assert f"  1. See the demo: open http://localhost:{port}/ and ask the chat bubble something.\n" in output
    assert f"  2. Load the demo knowledge (in another terminal, while this runs): {python} demo\n" in output
    assert f"  3. Sign in to the desk (the inbox of handed-off chats): {python} dashboard-link\n" in output
    assert "  4. Connect a bot: put BOT_TOKEN (from @BotFather) in .env and restart" in output


async def test_every_question_the_demo_page_suggests_is_answered_by_the_demo_knowledge(database: str) -> None:
    page = (ROOT / "webapp_static" / "demo.html").read_text(encoding="utf-8")
    suggested = re.findall(r"<li>([^<]+)</li>", page)
    assert len(suggested) == 12
    bot = await Bot.create(telegram_id=0)
    for path in sorted((ROOT / "demo").glob("knowledge*.md")):
        await knowledge.import_entries(bot.id, knowledge.parse_file(path))
    for question in suggested:
        hit = await knowledge.direct_answer(bot.id, question, AnswerPolicy().kb_direct_threshold)
        assert hit is not None, question
