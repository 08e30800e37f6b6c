"""Running prompts: a compiled prompt block (or one of its versions) on a model the customer picks,
streamed, recorded with its version, model, tokens, latency and cost; and "improve my prompt".

The models are the deployment's (counted against the customer's daily AI quota, as answers are)
and the customer's own API keys (not counted: they pay for those calls themselves).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import openai
from openai import AsyncOpenAI

from models import PromptProject, PromptRun, PromptVersion, ProviderKey, User
from services import bot_settings, quotas
from services.ai import AIClient, AIObserver, AIUnavailable, PriceOf, Progress, Route, stream_chat
from services.generation import GenerationStopped
from services.limits import ConcurrencyLimiter, MemoryConcurrencyLimiter
from services.provider_keys import KeyRefused, ProviderKeys
from services.secrets_box import BoxError
from services.studio import projects, versions
from services.studio.projects import StudioError

log = logging.getLogger(__name__)

OWN_KEY_MODEL = re.compile(r"key(\d+)/(.+)")  # "key12/gpt-4o-mini": model gpt-4o-mini on own key 12
MAX_ERROR_CHARS = 300

KeyOpener = Callable[[ProviderKey], Awaitable[AsyncOpenAI]]
"""Opens a client on a customer's own key (decrypted in memory only, for this call)."""


def key_opener(keys: ProviderKeys) -> KeyOpener:
    """Own keys as runs open them: a key that cannot be used any more is the customer's problem to fix."""

    async def open_key(key: ProviderKey) -> AsyncOpenAI:
        try:
            client, _ = await keys.open_client(key)
        except (BoxError, KeyRefused) as error:
            log.warning("own key %s cannot be opened: %s", key.id, type(error).__name__)
            raise StudioError("key_unusable", "this API key cannot be used any more") from error
        return client

    return open_key


@dataclass(frozen=True)
class ModelOption:
    id: str  # what a run names: a route's key, or "key<id>/<model>"
    model: str
    provider: str  # the deployment's provider name, or the own key's name
    own_key: bool


@dataclass(frozen=True)
class StudioRuntime:
    """What the studio runs with, from the deployment's settings."""

    ai: AIClient | None
    price_of: PriceOf
    daily_ai_quota: int
    open_key: KeyOpener
    observer: AIObserver | None = None
    runs: ConcurrencyLimiter = field(default_factory=lambda: MemoryConcurrencyLimiter(2))
    max_prompt_chars: int = 60_000  # what one run may send (the system prompt and the prompt)
    max_output_tokens: int | None = 2000
    # The bot's monthly AI budget (services/budgets.py BudgetWatch.allows_ai): at it, the deployment's models
    # run nothing more for that bot's people this month; their own keys still do.
    within_budget: Callable[[int], Awaitable[bool]] | None = None


async def model_options(runtime: StudioRuntime, user: User) -> list[ModelOption]:
    """The deployment's models (in the admins' order) and the models of the customer's own keys."""
    options: list[ModelOption] = []
    if runtime.ai is not None:
        for route in await runtime.ai.routes_now(user.bot_id):
            options.append(ModelOption(route.key, route.model, route.provider, own_key=False))
        options += [ModelOption(route.key, route.model, route.provider, own_key=False)
                    for route in runtime.ai.routes if route.key not in {o.id for o in options}]
    for key in await ProviderKey.filter(owner_id=user.id).order_by("id"):
        options += [ModelOption(f"key{key.id}/{model}", model, key.name, own_key=True) for model in key.models]
    return options


@dataclass
class _Target:
    route: Route
    key: ProviderKey | None

    async def close(self) -> None:
        if self.key is not None:
            await self.route.client.close()


async def _target(runtime: StudioRuntime, user: User, model_id: str) -> _Target:
    own = OWN_KEY_MODEL.fullmatch(model_id)
    if own is not None:
        key = await ProviderKey.get_or_none(id=int(own.group(1)), owner_id=user.id)
        if key is None or own.group(2) not in key.models:
            raise StudioError("no_model", "there is no such model among yours", model=model_id)
        return _Target(Route(own.group(2), await runtime.open_key(key), key.name), key)
    routes = {route.key: route for route in runtime.ai.routes} if runtime.ai is not None else {}
    if model_id not in routes:
        raise StudioError("no_model", "there is no such model", model=model_id)
    return _Target(routes[model_id], None)


@asynccontextmanager
async def _admitted(runtime: StudioRuntime, user: User, target: _Target) -> AsyncIterator[quotas.Reservation | None]:
    """Let a run through only within the person's concurrent runs and (on the deployment's models) the
    daily quota, both taken before anything is stored or sent; given back as the run ends."""
    person = str(user.id)
    lease = await runtime.runs.acquire(person)
    if lease is None:
        raise StudioError("too_many_runs", "too many runs at once", limit=runtime.runs.limit)
    try:
        reservation = None
        if target.key is None:
            quota = await bot_settings.daily_ai_quota(user.bot_id, runtime.daily_ai_quota)
            if runtime.within_budget is not None and not await runtime.within_budget(user.bot_id):
                raise StudioError("budget", "this month's AI budget is used up; your own API key works without it")
            reservation = await quotas.reserve(user.bot_id, user.id, quota)
            if reservation is None:
                raise StudioError("quota", "today's AI quota is used up; your own API key works without it",
                                  quota=quota)
        try:
            yield reservation
        finally:
            if reservation is not None:
                await asyncio.shield(reservation.release())  # a no-op once the model's use was settled
    finally:
        await asyncio.shield(runtime.runs.release(person, lease))


def _check_size(runtime: StudioRuntime, prompt: str, system: str | None = None) -> None:
    chars = len(prompt) + len(system or "")
    if chars > runtime.max_prompt_chars:
        raise StudioError("prompt_over_limit", "the prompt is longer than a run may send", chars=chars,
                          limit=runtime.max_prompt_chars)


async def run_block(runtime: StudioRuntime, user: User, project: PromptProject, *, model_id: str,
                    block_key: str | None = None, version: PromptVersion | None = None,
                    on_start: Callable[[PromptRun], Awaitable[None]] | None = None,
                    on_progress: Progress) -> PromptRun:
    """Run a prompt block as it is saved now (a new version when it changed) or one of its versions.

    Problems found before the call (no such model, the quota, too many runs, a missing variable,
    a prompt too long) raise StudioError and store nothing; the model's failure is a run with
    status "error", kept in the history like any other.
    """
    target = await _target(runtime, user, model_id)
    try:
        if version is not None:
            _check_size(runtime, version.compiled)
            async with _admitted(runtime, user, target) as reservation:
                return await _run(runtime, user, target, reservation, version.compiled, kind="run",
                                  project=project, version=version, on_start=on_start, on_progress=on_progress)
        doc = projects.load(project)
        block = doc.prompt_block(block_key or "")
        if block is None:
            raise StudioError("no_block", "the project has no such prompt block")
        compiled = projects.compile_block(doc, block.id)
        not_ready(compiled)
        _check_size(runtime, compiled.text)
        async with _admitted(runtime, user, target) as reservation:
            version = await versions.snapshot(project, block, compiled, user)
            return await _run(runtime, user, target, reservation, version.compiled, kind="run", project=project,
                              version=version, on_start=on_start, on_progress=on_progress)
    finally:
        await target.close()


def not_ready(compiled: Any) -> None:
    """Raise what stops a compiled prompt from being sent, most useful first."""
    if compiled.missing:
        raise StudioError("missing_variables", "fill in the variables first", names=", ".join(compiled.missing))
    if compiled.unknown_context:
        raise StudioError("unknown_context", "the template refers to context blocks that do not exist",
                          names=", ".join(compiled.unknown_context))
    if compiled.bad_placeholders:
        raise StudioError("bad_placeholder", "the template has placeholders that are not variable names",
                          names=", ".join(compiled.bad_placeholders))
    if not compiled.text.strip():
        raise StudioError("empty_prompt", "the prompt is empty")
    if not compiled.ready:
        raise StudioError("prompt_too_long", "the compiled prompt is too long")


async def _run(runtime: StudioRuntime, user: User, target: _Target, reservation: quotas.Reservation | None,
               prompt: str, *, kind: str,
               project: PromptProject | None = None, version: PromptVersion | None = None,
               system: str | None = None, on_start: Callable[[PromptRun], Awaitable[None]] | None = None,
               on_progress: Progress) -> PromptRun:
    run = await PromptRun.create(
        bot_id=user.bot_id, user=user, project=project, version=version, api_key=target.key,
        kind=kind, model=target.route.model if target.key else target.route.key, own_key=target.key is not None,
        prompt=prompt)
    if on_start is not None:
        await on_start(run)
    return await _call(runtime, run, target, reservation, prompt, system, on_progress)


async def _call(runtime: StudioRuntime, run: PromptRun, target: _Target, reservation: quotas.Reservation | None,
                prompt: str, system: str | None, on_progress: Progress) -> PromptRun:
    so_far = ""

    async def progress(text: str) -> None:
        nonlocal so_far
        so_far = text
        await on_progress(text)

    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": prompt})
    # The deployment's models wait for room at their provider, as answers do; an own key is its owner's account.
    gate = runtime.ai.gate if runtime.ai is not None and target.key is None else None
    try:
        reply = await stream_chat(target.route, messages, progress, runtime.price_of,
                                  max_tokens=runtime.max_output_tokens, gate=gate, tenant=run.bot_id)
    except (asyncio.CancelledError, ConnectionError):  # the reader went away: keep what came, and say so
        await asyncio.shield(_stopped(run, reservation, so_far))
        raise
    except GenerationStopped as stopped:  # the customer pressed stop in Telegram
        await _stopped(run, reservation, stopped.text)
        return await PromptRun.get(id=run.id)
    except (openai.APIError, ValueError, AIUnavailable) as error:
        log.warning("studio run %s on %s failed: %s", run.id, run.model, type(error).__name__)
        if runtime.observer is not None and target.key is None:
            runtime.observer.ai_call(target.route.model, False, 0.0)
        return await _finish(run, status="error", answer=so_far, error=_reason(error))
    if runtime.observer is not None and target.key is None:
        runtime.observer.ai_call(reply.model, True, reply.latency_ms / 1000, reply.tokens_in, reply.tokens_out,
                                 reply.cost)
    if reservation is not None:
        await reservation.settle(tokens_in=reply.tokens_in, tokens_out=reply.tokens_out, cost=reply.cost)
    return await _finish(run, status="ok", answer=reply.text, tokens_in=reply.tokens_in, tokens_out=reply.tokens_out,
                         latency_ms=reply.latency_ms, cost=reply.cost)


async def _stopped(run: PromptRun, reservation: quotas.Reservation | None, so_far: str) -> None:
    """A run cut short still used the model: on the deployment's models it counts against the quota."""
    if reservation is not None:
        await reservation.settle()
    await _finish(run, status="stopped", answer=so_far)  # last: a run seen finished is counted already


def _reason(error: Exception) -> str:
    """What went wrong, for the customer: the HTTP status and the error's kind, never the request."""
    status = getattr(error, "status_code", None)
    name = type(error).__name__
    return (f"{name} ({status})" if status else name)[:MAX_ERROR_CHARS]


async def _finish(run: PromptRun, *, status: str, answer: str, error: str = "", tokens_in: int = 0,
                  tokens_out: int = 0, latency_ms: int = 0, cost: float = 0.0) -> PromptRun:
    await PromptRun.filter(id=run.id).update(
        status=status, answer=answer, error=error, tokens_in=tokens_in, tokens_out=tokens_out,
        latency_ms=latency_ms, cost=Decimal(str(cost)))
    return await PromptRun.get(id=run.id)


async def history(project: PromptProject, *, before: int | None = None,
                  limit: int = 20) -> tuple[list[PromptRun], bool]:
    """A project's runs, newest first (below `before` when given), and whether older ones remain."""
    query = PromptRun.filter(project_id=project.id)
    if before is not None:
        query = query.filter(id__lt=before)
    rows = list(await query.order_by("-id").limit(limit + 1).prefetch_related("version"))
    return rows[:limit], len(rows) > limit


# --- improve my prompt ---------------------------------------------------------------------------------

IMPROVED_MARK = "---"
IMPROVE_SYSTEM = (
    "You are an expert prompt engineer. The user gives you a prompt they wrote for an AI model. "
    "Rewrite it so that a model follows it reliably: a clear role and goal, the needed context, "
    "explicit constraints, the output format, and placeholders in {{double_braces}} for what changes "
    "between uses. Keep the user's intent and language; do not answer the prompt itself. "
    "Reply with the improved prompt only, then a line with exactly three dashes (---), then a short "
    "list of what you changed and why, in the language of the prompt."
)


@dataclass(frozen=True)
class Improved:
    run: PromptRun
    prompt: str
    explanation: str


_FENCED = re.compile(r"```[\w+-]*\n(.*)\n```", re.DOTALL)


def split_improved(text: str) -> tuple[str, str]:
    """(improved prompt, what changed): the model writes them apart by a `---` line (and sometimes
    puts the prompt in a code fence, which is not part of it)."""
    lines = text.strip().splitlines()
    prompt, explanation = text.strip(), ""
    for index in range(len(lines) - 1, -1, -1):
        if lines[index].strip() == IMPROVED_MARK:
            prompt, explanation = "\n".join(lines[:index]).strip(), "\n".join(lines[index + 1:]).strip()
            break
    fenced = _FENCED.fullmatch(prompt)
    return (fenced.group(1).strip() if fenced else prompt), explanation


async def improve(runtime: StudioRuntime, user: User, prompt: str, on_progress: Progress,
                  on_start: Callable[[PromptRun], Awaitable[None]] | None = None) -> Improved:
    """A better version of the customer's prompt, from the deployment's first model (counted)."""
    target = await _first_model(runtime, user, prompt, IMPROVE_SYSTEM)
    async with _admitted(runtime, user, target) as reservation:
        run = await _run(runtime, user, target, reservation, prompt.strip(), kind="improve", system=IMPROVE_SYSTEM,
                         on_start=on_start, on_progress=on_progress)
    improved, explanation = split_improved(run.answer) if run.status == "ok" else ("", "")
    return Improved(run, improved, explanation)


async def run_text(runtime: StudioRuntime, user: User, prompt: str, on_progress: Progress,
                   on_start: Callable[[PromptRun], Awaitable[None]] | None = None) -> PromptRun:
    """A prompt sent as it is (no project behind it) to the deployment's first model (counted)."""
    target = await _first_model(runtime, user, prompt)
    async with _admitted(runtime, user, target) as reservation:
        return await _run(runtime, user, target, reservation, prompt.strip(), kind="run", on_start=on_start,
                          on_progress=on_progress)


async def _first_model(runtime: StudioRuntime, user: User, prompt: str, system: str | None = None) -> _Target:
    """The deployment's first model (in the admins' order of the person's bot), for a prompt that may be sent."""
    if runtime.ai is None:
        raise StudioError("no_ai", "no AI model is configured here")
    prompt = prompt.strip()
    if not prompt:
        raise StudioError("empty_prompt", "the prompt is empty")
    if len(prompt) > projects.MAX_TEXT_CHARS:
        raise StudioError("prompt_too_long", "the prompt is too long")
    _check_size(runtime, prompt, system)
    return _Target((await runtime.ai.routes_now(user.bot_id))[0], None)
