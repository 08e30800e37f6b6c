"""The prompt studio in the private chat: `/improve`, then "Save to a project" and "Run it" on its result.

The model's part runs from the outbox, never inside the webhook, and is streamed into the chat
with drafts like any answer (the customer's stop works too). The buttons carry the improve run's
id; every press is checked against the person pressing, so nobody acts on another person's run.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from models import OutboxJob, PromptProject, PromptRun, User
from services import conversations, outbox
from services.ai import Progress
from services.generation import Generations
from services.i18n import N_, Translate
from services.outbox import JobKind, Postpone
from services.ports import Button, ChatSender, Messengers, OutgoingText, RecipientBlocked
from services.render import escape, markdown_to_html, split_html
from services.studio import projects, runs
from services.studio.compiler import compile_template, variable_names
from services.studio.projects import ProjectDoc, PromptBlock, StudioError
from services.studio.runs import StudioRuntime, split_improved

log = logging.getLogger(__name__)

IMPROVE_JOB = JobKind.IMPROVE
RUN_JOB = JobKind.PROMPT_RUN
SAVE, RUN = "save", "run"
# Studio drafts are numbered past this (plus the job's id), apart from answers' drafts (message ids).
DRAFT_IDS = 1 << 40
MAX_PARTS = 5  # messages for one result; past them the rest is cut, with a note (the run keeps it all)
WITHOUT_TELEGRAM_RETRY = 300.0

IMPROVED = N_("✨ Improved prompt")
WHAT_CHANGED = N_("What I changed")
SAVE_BUTTON = N_("💾 Save to a project")
RUN_BUTTON = N_("▶️ Run it")
CUT_OFF = N_("This is too long to show here in full, so the end is cut off.")
IMPROVE_STOPPED = N_("Stopped. Your prompt was left as it was.")
NOT_YOURS = N_("Sorry, this button isn't yours, so I can't use it.")
ERRORS = {
    "no_ai": N_("No AI model is configured here."),
    "quota": N_("You've used today's {quota} AI requests. Please come back tomorrow."),
    "budget": N_("This month's AI budget is used up, so I can't run this now."),
    "failed": N_("The AI model didn't answer this time. Please try again in a moment."),
    "empty_prompt": N_("The prompt is empty."),
    "prompt_too_long": N_("The prompt is too long."),
    "prompt_over_limit": N_("The prompt is {chars} characters long; a run can send at most {limit}."),
    "too_many_runs": N_("You already have {limit} runs going. Wait for one to finish, then try again."),
    "not_yours": NOT_YOURS,
    "missing_variables": N_("This prompt has variables to fill in first: {names}. Do that in the prompt studio, "
                            "then run it there."),
    "unknown_context": N_("The template refers to context blocks that do not exist: {names}"),
    "bad_placeholder": N_("These placeholders are not variable names: {names}"),
    "too_many_projects": N_("You have {limit} projects, the most there can be. Delete one first."),
    "busy": N_("Your project is being changed right now. Please try again in a moment."),
}
Started = Callable[[PromptRun], Awaitable[None]]
T = TypeVar("T")


def button_data(action: str, run_id: int) -> str:
    """The buttons' callback data; handlers.improve.PromptRunAction reads the same `prun:<action>:<run>`."""
    return f"prun:{action}:{run_id}"


def error_text(error: StudioError, translated: Callable[[str], str]) -> str:
    """What went wrong, in the reader's words (`translated` gives a message id in their language)."""
    text = translated(ERRORS.get(error.code, ERRORS["failed"]))
    params = {key: value for key, value in error.params.items() if f"{{{key}}}" in text}
    return text.format(**params) if params else text


def _lane(user: User) -> str:
    return f"studio:{user.id}"  # one person's studio work in order, apart from their conversation


# --- what a handler asks for -----------------------------------------------------------------------------


async def request_improve(user: User, text: str, source: str) -> None:
    """Queue `/improve` once per `source` (the message that asked)."""
    await outbox.enqueue(user.bot_id, IMPROVE_JOB, {"user_id": user.id, "text": text},
                         lane=_lane(user), source_key=f"{IMPROVE_JOB}:{source}")


async def own_improved(user: User, run_id: int) -> PromptRun:
    """The person's own finished improve run; StudioError("not_yours") for any other run id."""
    run = await PromptRun.get_or_none(id=run_id, user_id=user.id, kind="improve", status="ok")
    if run is None or not split_improved(run.answer)[0]:
        raise StudioError("not_yours", "no such improved prompt of this person")
    return run


def runnable(improved: PromptRun) -> str:
    """The improved prompt as it would be sent; StudioError while it has `{{variables}}` without values."""
    compiled = compile_template(split_improved(improved.answer)[0], {}, [])
    runs.not_ready(compiled)
    return compiled.text


async def request_run(user: User, run_id: int) -> PromptRun:
    """Queue "Run it" for the person's own improved prompt, once it can run as it is."""
    improved = await own_improved(user, run_id)
    runnable(improved)
    await outbox.enqueue(user.bot_id, RUN_JOB, {"user_id": user.id, "improved_run_id": improved.id},
                         lane=_lane(user))
    return improved


@dataclass(frozen=True)
class Saved:
    project: PromptProject
    block_id: str
    created: bool  # False: an earlier press had saved it already


async def project_of(user: User, run_id: int) -> PromptProject | None:
    """The project the person's improved prompt was saved into, if it was."""
    try:
        return await saved_project(user, await own_improved(user, run_id))
    except StudioError:
        return None


async def saved_project(user: User, improved: PromptRun) -> PromptProject | None:
    """The project an improved prompt was saved into, while it still holds it."""
    if improved.project_id is None:
        return None
    project = await projects.get_project(user, improved.project_id)
    if project is None or projects.load(project).prompt_block(_block_key(improved)) is None:
        return None
    return project


def _block_key(improved: PromptRun) -> str:
    return f"improved-{improved.id}"


async def save_improved(user: User, run_id: int, *, project_name: str, block_name: str) -> Saved:
    """Put the person's improved prompt into their project for prompts from Telegram, as a new prompt
    block (its variables left empty), creating that project on first use.

    Saving twice saves once: the block's key comes from the run, and the run remembers the project.
    The project is the one the person's last saved prompt went to (renamed or not); a new one is
    made when there is none, or it is full.
    """
    improved = await own_improved(user, run_id)
    project = await saved_project(user, improved)
    if project is not None:
        return Saved(project, _block_key(improved), created=False)
    prompt = split_improved(improved.answer)[0]
    if len(prompt) > projects.MAX_TEXT_CHARS:
        raise StudioError("prompt_too_long", "the prompt is too long for a prompt block")
    block = PromptBlock(id=_block_key(improved), name=_name(improved.prompt, block_name), template=prompt,
                        variables=dict.fromkeys(variable_names(prompt)[:projects.MAX_VARIABLES], ""))
    project = await _telegram_project(user)
    for _ in range(5):  # another window may save the project meanwhile
        if project is None:
            project = await projects.create_project(user, project_name, ProjectDoc(prompt_blocks=[block]))
            break
        doc = projects.load(project)
        if doc.prompt_block(block.id) is not None:
            break
        if len(doc.prompt_blocks) >= projects.MAX_BLOCKS:
            project = None
            continue
        doc.prompt_blocks.insert(0, block)  # the newest first, as projects are listed
        try:
            project = await projects.save(project, doc, project.revision)
            break
        except StudioError as error:
            if error.code == "too_large":
                project = None
            elif error.code == "stale":
                project = await projects.get_project(user, project.id)
            else:
                raise
    else:
        raise StudioError("busy", "the project keeps changing; try again")
    assert project is not None
    await PromptRun.filter(id=improved.id).update(project_id=project.id)
    return Saved(project, block.id, created=True)


async def _telegram_project(user: User) -> PromptProject | None:
    last = await PromptRun.filter(user_id=user.id, kind="improve", project_id__not_isnull=True).order_by(
        "-id").first()
    return await projects.get_project(user, last.project_id) if last is not None and last.project_id else None


def _name(original: str, fallback: str) -> str:
    """A block's name: the first words of the prompt the person wrote."""
    first_line = next((line.strip() for line in original.splitlines() if line.strip()), "")
    name = first_line if len(first_line) <= 60 else first_line[:59].rstrip() + "…"
    return name or fallback


# --- the outbox jobs -------------------------------------------------------------------------------------


def improved_html(translate: Translate, locale: str, prompt: str, explanation: str) -> str:
    """The improved prompt in a code block (it copies cleanly), then what changed (the model's Markdown)."""
    if not prompt.strip():
        return ""
    html = f"<b>{escape(translate(locale, IMPROVED))}</b>\n<pre>{escape(prompt)}</pre>"
    if explanation.strip():
        html += f"\n\n<b>{escape(translate(locale, WHAT_CHANGED))}</b>\n{markdown_to_html(explanation)}"
    return html


class StudioChat:
    """Runs `/improve` and "Run it" from the outbox, streaming into the person's private chat."""

    def __init__(self, messengers: Messengers, translate: Translate, runtime: StudioRuntime,
                 generations: Generations, draft_interval: float, wake: Callable[[], None] = lambda: None) -> None:
        self.messengers = messengers  # each person is written to by the bot they asked
        self.wake = wake  # the outbox: a job is waiting
        self.translate = translate
        self.runtime = runtime
        self.generations = generations
        self.draft_interval = draft_interval

    async def request_improve(self, user: User, text: str, source: str) -> None:
        """`/improve`, queued once per `source` (the message that asked), and started at once."""
        await request_improve(user, text, source)
        self.wake()

    async def request_run(self, user: User, run_id: int) -> PromptRun:
        """"Run it" on the person's own improved prompt, queued and started at once."""
        improved = await request_run(user, run_id)
        self.wake()
        return improved

    async def improve_job(self, job: OutboxJob) -> None:
        user = await self._recipient(job)
        if user is None:
            return
        locale = str(user.language)

        def preview(text: str) -> str:
            return improved_html(self.translate, locale, *split_improved(text))

        try:
            run = await self._earlier_run(job)
            if run is None or run.status == "running":
                text = run.prompt if run is not None else str(job.payload.get("text") or "")
                run = (await self._stream(job, user, preview, lambda progress, started: runs.improve(
                    self.runtime, user, text, progress, started))).run
            await self._improved(user, run)
        except StudioError as error:
            await _forget_text(job, None)
            await self._send(user, escape(error_text(error, lambda message: self.translate(locale, message))))
        except RecipientBlocked:
            await conversations.set_blocked(user.bot_id, int(user.telegram_id or 0))

    async def run_job(self, job: OutboxJob) -> None:
        user = await self._recipient(job)
        if user is None:
            return
        try:
            improved = await own_improved(user, int(str(job.payload["improved_run_id"])))
            run = await self._earlier_run(job)
            if run is None or run.status == "running":
                prompt = runnable(improved)
                run = await self._stream(job, user, markdown_to_html, lambda progress, started: runs.run_text(
                    self.runtime, user, prompt, progress, started))
            if run.status == "ok" or (run.status == "stopped" and run.answer.strip()):
                await self._send(user, markdown_to_html(run.answer))
            elif run.status != "stopped":
                await self._send(user, escape(self.translate(str(user.language), ERRORS["failed"])))
        except StudioError as error:
            await self._send(user, escape(error_text(error, lambda message: self.translate(str(user.language),
                                                                                           message))))
        except RecipientBlocked:
            await conversations.set_blocked(user.bot_id, int(user.telegram_id or 0))

    async def _recipient(self, job: OutboxJob) -> User | None:
        user = await User.get_or_none(id=job.payload.get("user_id"))
        if user is None or user.telegram_id is None or user.blocked_bot:
            return None
        if self.messengers.of(user.bot_id) is None:
            raise Postpone(WITHOUT_TELEGRAM_RETRY, f"bot {user.bot_id} is not served here now")
        return user

    def _sender(self, user: User) -> ChatSender:
        sender = self.messengers.of(user.bot_id)
        if sender is None:  # paused since the job started
            raise Postpone(WITHOUT_TELEGRAM_RETRY, f"bot {user.bot_id} is not served here now")
        return sender

    async def _earlier_run(self, job: OutboxJob) -> PromptRun | None:
        """The run an earlier attempt of this job made (a crash or a failed send came after it).

        A finished one is delivered as it is: the model is not called (nor counted) twice. One
        left running was cut off by a crash, and is done again.
        """
        run_id = job.payload.get("run_id")
        run = await PromptRun.get_or_none(id=run_id) if run_id is not None else None
        if run is not None and run.status == "running":
            await PromptRun.filter(id=run.id).update(status="error", error="interrupted")
        return run

    async def _stream(self, job: OutboxJob, user: User, render: Callable[[str], str],
                      call: Callable[[Progress, Started], Awaitable[T]]) -> T:
        assert user.telegram_id is not None

        async def started(run: PromptRun) -> None:
            await _forget_text(job, run.id)

        async with self.generations.streaming(self._sender(user), int(user.telegram_id), DRAFT_IDS + job.id,
                                              self.draft_interval, render,
                                              budget=self.messengers.budget_of(user.bot_id)) as draft:
            return await call(draft.update, started)

    async def _improved(self, user: User, run: PromptRun) -> None:
        locale = str(user.language)
        prompt, explanation = split_improved(run.answer)
        if run.status == "stopped":
            await self._send(user, escape(self.translate(locale, IMPROVE_STOPPED)))
            return
        if run.status != "ok" or not prompt:
            await self._send(user, escape(self.translate(locale, ERRORS["failed"])))
            return
        buttons = [[Button(self.translate(locale, SAVE_BUTTON), callback_data=button_data(SAVE, run.id)),
                    Button(self.translate(locale, RUN_BUTTON), callback_data=button_data(RUN, run.id))]]
        await self._send(user, improved_html(self.translate, locale, prompt, explanation), buttons)

    async def _send(self, user: User, html: str, buttons: list[list[Button]] | None = None) -> None:
        """One result in as many messages as it needs (at most MAX_PARTS); the buttons under the last."""
        assert user.telegram_id is not None
        sender = self._sender(user)
        parts = split_html(html)
        if len(parts) > MAX_PARTS:
            parts = [*parts[:MAX_PARTS], escape(self.translate(str(user.language), CUT_OFF))]
        silent = bool(user.preferences.get("silent", False))
        for number, part in enumerate(parts, start=1):
            last = number == len(parts)
            await sender.send_text(int(user.telegram_id),
                                   OutgoingText(part, buttons=(buttons or []) if last else [], silent=silent))


async def _forget_text(job: OutboxJob, run_id: int | None) -> None:
    """The job no longer holds the person's prompt (their run does, and goes when they delete their data);
    it remembers the run instead, for a retry of the job."""
    payload = {key: value for key, value in job.payload.items() if key != "text"}
    if run_id is not None:
        payload["run_id"] = run_id
    job.payload = payload
    await OutboxJob.filter(id=job.id).update(payload=payload)
