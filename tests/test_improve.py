"""`/improve` in the private chat: the improved prompt streamed, then saved to a project or run, as the
chat, the Mini App and the stored runs show it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from tgsim import Simulator

from bot.app import OUTBOXES
from models import JobStatus, OutboxJob, PromptProject, PromptRun, Usage, User
from services.studio.runs import IMPROVE_SYSTEM
from tests.conftest import Frontdesk, eventually, formatted, outbox_idle
from tests.fake_ai import FakeAI
from tests.miniapp_helpers import app_client

IMPROVED = ("You are a friendly barista. Write a short Instagram post (at most 80 words) about {{drink}} "
            "for <regulars> & newcomers.\nEnd with a question to the reader.")
EXPLANATION = "- Added a **role** and a length limit.\n- The drink is now a variable."
REPLY = f"{IMPROVED}\n---\n{EXPLANATION}"
PLAIN = "You are a friendly barista. Write a short post about our oat latte."


def bot_messages(sim: Simulator, chat_id: int) -> list[dict[str, Any]]:
    return [m for m in sim.chat_history(chat_id) if m["from"]["is_bot"]]


def buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [b for row in message.get("reply_markup", {}).get("inline_keyboard", []) for b in row]


async def improved_message(sim: Simulator, chat_id: int, count: int = 1) -> dict[str, Any]:
    """Wait for the bot's `count` messages; the last is the one with the buttons."""
    messages = await sim.wait_for_messages(chat_id, count, timeout=10)
    last: dict[str, Any] = messages[-1]
    return last


async def finished(job: OutboxJob) -> OutboxJob:
    """The job once its worker has marked it done: the chat sees the message a moment before that."""
    async def done() -> bool:
        return await OutboxJob.filter(id=job.id, status=JobStatus.DONE).exists()

    await eventually(done, f"job {job.id} done")
    return await OutboxJob.get(id=job.id)


async def press(sim: Simulator, user_id: int, message: dict[str, Any], text: str,
                chat_id: int | None = None) -> dict[str, Any] | None:
    """Press a button and wait for the bot's answerCallbackQuery; returns that answer."""
    before = len(sim.calls("answerCallbackQuery"))
    query = sim.press_button(user_id, chat_id or user_id, message["message_id"], text=text)
    await sim.wait_for_calls("answerCallbackQuery", before + 1, timeout=10)
    answer: dict[str, Any] | None = sim.callback_answer(query["id"])
    return answer


async def test_improve_streams_drafts_then_the_prompt_in_a_code_block_with_save_and_run(
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ai.script.reply = REPLY
    ai.script.chunk_size = 10
    ai.script.chunk_delay = 0.03
    ann = sim.create_user("Ann")
    sim.send_command(ann["id"], "improve", "write a post about our latte\nmake it fun")
    message = await improved_message(sim, ann["id"])
    drafts = [call["params"] for call in sim.calls("sendMessageDraft")]
    assert len(drafts) >= 3
    assert len({draft["draft_id"] for draft in drafts}) == 1
    assert all(draft["text"].startswith("<b>✨ Improved prompt</b>\n<pre>You are") for draft in drafts)
    assert [len(draft["text"]) for draft in drafts] == sorted(len(draft["text"]) for draft in drafts)
    assert "&lt;regulars&gt; &amp; newcomers" in drafts[-1]["text"]
    assert message["text"].startswith("✨ Improved prompt")
    assert formatted(message, "pre") == [IMPROVED]  # escaped on the way, shown as written
    assert "What I changed" in formatted(message, "bold")
    assert "role" in formatted(message, "bold")
    assert [b["text"] for b in buttons(message)] == ["💾 Save to a project", "▶️ Run it"]
    await outbox_idle(sim)
    assert len(bot_messages(sim, ann["id"])) == 1
    [request] = ai.requests
    assert request["model"] == "main-model"
    assert request["messages"] == [{"role": "system", "content": IMPROVE_SYSTEM},
                                   {"role": "user", "content": "write a post about our latte\nmake it fun"}]
    run = await PromptRun.get(kind="improve")
    assert (run.status, run.model, run.prompt, run.answer) == \
        ("ok", "main-model@default", "write a post about our latte\nmake it fun", REPLY)
    assert run.tokens_in > 0
    assert run.tokens_out > 0
    assert {b["callback_data"] for b in buttons(message)} == {f"prun:save:{run.id}", f"prun:run:{run.id}"}
    usage = await Usage.get(user__telegram_id=ann["id"])
    assert (usage.ai_messages, usage.tokens_out) == (1, run.tokens_out)
    assert all("text" not in job.payload for job in await OutboxJob.filter(kind="improve"))  # the run holds it


async def test_a_retried_improve_job_delivers_its_run_and_redoes_only_an_interrupted_one(
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ai.script.reply = REPLY
    ann = sim.create_user("Ann")
    sim.send_command(ann["id"], "improve", "post about a drink")
    await improved_message(sim, ann["id"])
    job = await finished(await OutboxJob.get(kind="improve"))
    run = await PromptRun.get()
    assert job.payload == {"user_id": run.user_id, "run_id": run.id}
    # The worker died after the model's answer, before Telegram took the message: the job runs again.
    await OutboxJob.filter(id=job.id).update(status=JobStatus.PENDING)
    frontdesk.app[OUTBOXES].wake()
    again = await improved_message(sim, ann["id"], 2)
    assert formatted(again, "pre") == [IMPROVED]
    assert len(ai.requests) == 1
    await finished(job)
    # It died while the model was writing: the run is closed as interrupted, and the prompt improved anew.
    await PromptRun.filter(id=run.id).update(status="running", answer="You are")
    await OutboxJob.filter(id=job.id).update(status=JobStatus.PENDING)
    frontdesk.app[OUTBOXES].wake()
    third = await improved_message(sim, ann["id"], 3)
    assert formatted(third, "pre") == [IMPROVED]
    assert len(ai.requests) == 2
    assert ai.requests[-1]["messages"][-1]["content"] == "post about a drink"
    assert [(r.status, r.error) for r in await PromptRun.all().order_by("id")] == [("error", "interrupted"), ("ok", "")]
    assert (await Usage.get(user__telegram_id=ann["id"])).ai_messages == 2


async def test_improve_in_reply_to_a_message_improves_its_text_or_caption(
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ann = sim.create_user("Ann")
    mine = sim.send_text(ann["id"], "Tell me about your cakes")
    await sim.wait_for_messages(ann["id"])  # the AI's answer in the conversation
    ai.script.reply = REPLY
    sim.send_text(ann["id"], "/improve", reply_to=mine["message_id"])
    await improved_message(sim, ann["id"], 2)
    assert ai.requests[-1]["messages"][-1] == {"role": "user", "content": "Tell me about your cakes"}
    photo = sim.send_photo(ann["id"], caption="Describe this cake for our menu")
    await sim.wait_for_messages(ann["id"], 3)
    sim.send_text(ann["id"], "/improve", reply_to=photo["message_id"])
    await improved_message(sim, ann["id"], 4)
    assert ai.requests[-1]["messages"][-1] == {"role": "user", "content": "Describe this cake for our menu"}
    assert await PromptRun.filter(kind="improve").count() == 2


async def test_improve_without_a_prompt_explains_how_to_use_it(frontdesk: Frontdesk, sim: Simulator,
                                                               ai: FakeAI) -> None:
    ann = sim.create_user("Ann")
    sim.send_command(ann["id"], "improve")
    [hint] = await sim.wait_for_messages(ann["id"])
    assert "/improve Write a post about our new menu" in hint["text"]
    photo = sim.send_photo(ann["id"])  # a reply to something without words is no prompt either
    await sim.wait_for_messages(ann["id"], 2)
    sim.send_text(ann["id"], "/improve", reply_to=photo["message_id"])
    messages = await sim.wait_for_messages(ann["id"], 3)
    assert messages[-1]["text"] == hint["text"]
    assert not await PromptRun.exists()
    assert all(request["messages"][0]["content"] != IMPROVE_SYSTEM for request in ai.requests)


@pytest.mark.parametrize("frontdesk_settings", [{}, {"PUBLIC_BASE_URL": "https://desk.example"}], indirect=True)
async def test_saving_twice_makes_one_prompt_block_that_the_studio_shows(
        frontdesk_settings: dict[str, Any], frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ai.script.reply = REPLY
    ann = sim.create_user("Ann")
    sim.send_command(ann["id"], "improve", "write a post about our latte")
    message = await improved_message(sim, ann["id"])
    assert await press(sim, ann["id"], message, "💾 Save to a project") is not None
    await press(sim, ann["id"], message, "💾 Save to a project")
    first, again = (await sim.wait_for_messages(ann["id"], 3))[1:]
    assert first["text"] == "Saved to your project “From Telegram” in the prompt studio."
    assert again["text"] == "It's already saved in your project “From Telegram” in the prompt studio."
    project = await PromptProject.get()
    if frontdesk.settings.public_base_url:
        [button] = buttons(first)
        bot_id = (await User.get(telegram_id=ann["id"])).bot_id
        assert button["web_app"]["url"] == f"https://desk.example/app/studio/project?bot={bot_id}&id={project.id}"
        assert buttons(again) == [button]
    else:
        assert "reply_markup" not in first  # Telegram opens Mini Apps only from https addresses
    run = await PromptRun.get(kind="improve")
    assert run.project_id == project.id
    async with app_client(frontdesk, sim, ann["id"]) as client:
        listed = (await client.get("/api/studio/projects"))["projects"]
        assert [(p["name"], p["prompt_blocks"]) for p in listed] == [("From Telegram", 1)]
        [block] = (await client.get(f"/api/studio/projects/{project.id}"))["data"]["prompt_blocks"]
        assert (block["name"], block["template"], block["variables"]) == \
            ("write a post about our latte", IMPROVED, {"drink": ""})
        compiled = await client.post(f"/api/studio/projects/{project.id}/compile", {"block_id": block["id"]})
        assert compiled["missing"] == ["drink"]
    # The next improved prompt goes to the same project, on top.
    ai.script.reply = f"{PLAIN}\n---\nShorter."
    sim.send_command(ann["id"], "improve", "a post about oat latte")
    second = await improved_message(sim, ann["id"], 4)
    await press(sim, ann["id"], second, "💾 Save to a project")
    await sim.wait_for_messages(ann["id"], 5)
    blocks: list[dict[str, Any]] = (await PromptProject.get()).data["prompt_blocks"]  # type: ignore[assignment]
    assert [b["template"] for b in blocks] == [PLAIN, IMPROVED]
    assert (await PromptProject.get()).revision == 2


async def test_run_it_streams_the_improved_prompt_and_records_the_run(
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ai.script.replies = [f"{PLAIN}\n---\nAdded a role.", "Oat latte season is here! ☕ Who's in?"]
    ai.script.chunk_size = 6
    ai.script.chunk_delay = 0.02
    ann = sim.create_user("Ann")
    sim.send_command(ann["id"], "improve", "post about oat latte")
    message = await improved_message(sim, ann["id"])
    improve_drafts = len(sim.calls("sendMessageDraft"))
    answer = await press(sim, ann["id"], message, "▶️ Run it")
    assert answer is not None
    assert not answer.get("show_alert")
    [_, result] = await sim.wait_for_messages(ann["id"], 2, timeout=10)
    assert result["text"] == "Oat latte season is here! ☕ Who's in?"
    drafts = [call["params"] for call in sim.calls("sendMessageDraft")][improve_drafts:]
    assert len(drafts) >= 2
    assert drafts[-1]["text"].startswith("Oat latte")
    assert ai.requests[-1]["messages"] == [{"role": "user", "content": PLAIN}]
    run = await PromptRun.get(kind="run")
    assert (run.status, run.prompt, run.answer, run.model) == \
        ("ok", PLAIN, "Oat latte season is here! ☕ Who's in?", "main-model@default")
    assert run.project_id is None
    assert (await Usage.get(user__telegram_id=ann["id"])).ai_messages == 2


async def test_run_it_asks_for_the_variables_first(frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ai.script.reply = REPLY
    ann = sim.create_user("Ann")
    sim.send_command(ann["id"], "improve", "post about a drink")
    message = await improved_message(sim, ann["id"])
    await press(sim, ann["id"], message, "▶️ Run it")
    [_, ask] = await sim.wait_for_messages(ann["id"], 2)
    assert ask["text"].startswith("This prompt has variables to fill in first: drink.")
    assert [b["text"] for b in buttons(ask)] == ["💾 Save to a project"]
    await press(sim, ann["id"], ask, "💾 Save to a project")  # from there, the studio
    await sim.wait_for_messages(ann["id"], 3)
    await outbox_idle(sim)
    assert len(ai.requests) == 1
    assert not await PromptRun.filter(kind="run").exists()
    assert await PromptProject.all().count() == 1


async def test_someone_elses_buttons_are_refused_and_touch_nothing(
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ai.script.reply = f"{PLAIN}\n---\nAdded a role."
    ann, bob = sim.create_user("Ann"), sim.create_user("Bob")
    sim.send_command(bob["id"], "start")
    await sim.wait_for_messages(bob["id"])
    sim.send_command(ann["id"], "improve", "post about oat latte")
    message = await improved_message(sim, ann["id"])
    for text in ("💾 Save to a project", "▶️ Run it"):
        # Bob's client sends the callback data of Ann's run (a forwarded or forged button).
        answer = await press(sim, bob["id"], message, text, chat_id=ann["id"])
        assert answer is not None
        assert answer["show_alert"] is True
        assert answer["text"] == "Sorry, this button isn't yours, so I can't use it."
    await outbox_idle(sim)
    assert not await PromptProject.exists()
    assert await PromptRun.all().count() == 1
    assert len(ai.requests) == 1
    assert len(bot_messages(sim, bob["id"])) == 1  # the greeting only
    assert len(bot_messages(sim, ann["id"])) == 1


@pytest.mark.parametrize("frontdesk_settings", [{"DAILY_AI_QUOTA": 3}], indirect=True)
async def test_improve_and_run_stop_at_the_daily_quota(
        frontdesk_settings: dict[str, Any], frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ai.script.reply = f"{PLAIN}\n---\nAdded a role."
    ann = sim.create_user("Ann")
    sim.send_command(ann["id"], "improve", "post about oat latte")
    message = await improved_message(sim, ann["id"])
    user = await User.get(telegram_id=ann["id"])
    await Usage.filter(user=user).update(ai_messages=3)
    await press(sim, ann["id"], message, "▶️ Run it")
    [_, refused] = await sim.wait_for_messages(ann["id"], 2)
    assert refused["text"] == "You've used today's 3 AI requests. Please come back tomorrow."
    sim.send_command(ann["id"], "improve", "another one")
    [*_, again] = await sim.wait_for_messages(ann["id"], 3)
    assert again["text"] == refused["text"]
    assert len(ai.requests) == 1
    assert await PromptRun.all().count() == 1
    usage = await Usage.get(user=user, day=datetime.now(UTC).date())
    assert usage.ai_messages == 3


@pytest.mark.parametrize("frontdesk_settings", [{"use_ai": False}], indirect=True)
async def test_improve_without_an_ai_says_so(frontdesk_settings: dict[str, Any], frontdesk: Frontdesk,
                                             sim: Simulator) -> None:
    ann = sim.create_user("Ann")
    sim.send_command(ann["id"], "improve", "post about oat latte")
    [message] = await sim.wait_for_messages(ann["id"])
    assert message["text"] == "No AI model is configured here."
    assert not await PromptRun.exists()


async def test_a_failing_model_sends_a_clear_message_and_nothing_half_written(
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ai.script.failing_models = {"main-model": 503}
    ann = sim.create_user("Ann")
    sim.send_command(ann["id"], "improve", "post about oat latte")
    [message] = await sim.wait_for_messages(ann["id"])
    assert message["text"] == "The AI model didn't answer this time. Please try again in a moment."
    assert "reply_markup" not in message
    await outbox_idle(sim)
    assert len(bot_messages(sim, ann["id"])) == 1
    run = await PromptRun.get()
    assert (run.kind, run.status) == ("improve", "error")
    assert "503" in run.error
    assert not await Usage.filter(user__telegram_id=ann["id"], ai_messages__gt=0).exists()


async def test_stop_ends_the_improvement_and_keeps_the_prompt_as_it_was(
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ai.script.reply = REPLY * 3
    ai.script.chunk_size = 4
    ai.script.chunk_delay = 0.05
    ann = sim.create_user("Ann")
    sim.send_command(ann["id"], "improve", "post about oat latte")
    await sim.wait_for_calls("sendMessageDraft", 2, timeout=10)
    draft_id = sim.calls("sendMessageDraft")[-1]["params"]["draft_id"]
    sim.stop_generation(ann["id"], draft_id)
    [message] = await sim.wait_for_messages(ann["id"], timeout=10)
    assert message["text"] == "Stopped. Your prompt was left as it was."
    run = await PromptRun.get()
    assert run.status == "stopped"
    assert 0 < len(run.answer) < len(REPLY * 3)
    # The model worked until then: a stopped run counts, as one cut short by closing the page does.
    assert (await Usage.get(user__telegram_id=ann["id"])).ai_messages == 1


async def test_a_long_improved_prompt_is_split_within_telegrams_limit(
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI, flood_off: None) -> None:
    paragraph = "Describe each of our 40 drinks in two sentences, with its price & size <ml>."
    prompt = "\n\n".join(f"{n}. {paragraph}" for n in range(90))
    assert len(prompt) > 6000
    ai.script.reply = f"{prompt}\n---\nSplit the task into steps."
    ai.script.chunk_size = 500
    ann = sim.create_user("Ann")
    sim.send_command(ann["id"], "improve", "describe our drinks")
    await sim.wait_for_messages(ann["id"], 2, timeout=10)
    await outbox_idle(sim)
    parts = bot_messages(sim, ann["id"])
    assert len(parts) == 2
    assert all(len(part["text"]) <= 4096 for part in parts)
    assert "".join(piece for part in parts for piece in formatted(part, "pre")).replace("\n", "") == \
        prompt.replace("\n", "")
    assert "reply_markup" not in parts[0]
    assert [b["text"] for b in buttons(parts[1])] == ["💾 Save to a project", "▶️ Run it"]
    assert (await PromptRun.get()).answer == ai.script.reply  # the run keeps all of it


async def test_the_command_menu_offers_improve_in_every_language(frontdesk: Frontdesk, sim: Simulator) -> None:
    menus = {call["params"].get("language_code"): [c["command"] for c in call["params"]["commands"]]
             for call in sim.calls("setMyCommands") if call["params"].get("scope", {}).get("type") ==
             "all_private_chats"}
    assert set(menus) == {None, "en", "ru", "uz"}
    assert all("improve" in commands for commands in menus.values())


async def test_an_improve_redelivered_after_its_update_id_was_forgotten_is_answered_once(
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    """Telegram redelivers an update it got no answer for; the store of seen update ids is short-lived
    (memory, or a Redis key that expired), so the same message can come again under an id the
    product no longer knows. Here: the same message under two update ids."""
    ai.script.reply = REPLY
    ann = sim.create_user("Ann")
    message = {"message_id": 4242, "date": int(datetime.now(UTC).timestamp()), "text": f"/improve {PLAIN}",
               "entities": [{"type": "bot_command", "offset": 0, "length": 8}],
               "chat": {"id": ann["id"], "type": "private", "first_name": "Ann"},
               "from": {"id": ann["id"], "is_bot": False, "first_name": "Ann"}}
    headers = {"X-Telegram-Bot-Api-Secret-Token": frontdesk.settings.webhook_secret}
    async with aiohttp.ClientSession() as http:
        for update_id in (880001, 880002):
            async with http.post(frontdesk.url + "/telegram/webhook", json={"update_id": update_id,
                                                                            "message": message},
                                 headers=headers) as response:
                assert response.status == 200
    await improved_message(sim, ann["id"])
    [job] = await OutboxJob.filter(kind="improve")
    await finished(job)
    await outbox_idle(sim)
    assert len(ai.requests) == 1
    assert len(bot_messages(sim, ann["id"])) == 1
    assert await PromptRun.filter(kind="improve").count() == 1
