"""The AI: any OpenAI-compatible endpoint through the official client, streamed, with fallbacks, within
each provider's limits (services/provider_limits.py)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol, cast

import openai
from openai import AsyncOpenAI

from services.provider_limits import (
    EXPECTED_OUTPUT_TOKENS,
    OnWait,
    Overdue,
    ProviderGate,
    Turn,
    request_tokens,
)

log = logging.getLogger(__name__)

HANDOFF_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "handoff_to_human",
        "description": "Hand the conversation to a human manager when you cannot help, the customer "
        "asks for a person, complains, or raises something sensitive.",
        "parameters": {
            "type": "object",
            "properties": {
                "reason": {
                    "type": "string",
                    "enum": ["asked_for_person", "cannot_answer", "complaint", "sensitive"],
                }
            },
            "required": ["reason"],
        },
    },
}

Progress = Callable[[str], Awaitable[None]]
"""Called with the whole answer so far (not a delta), so a fallback can restart the preview."""
# Seconds the stream's next pieces may wait unread, asked after each read once the first words are out (see
# services/generation.py's read_pause): 0 reads on at once.
ReadPause = Callable[[], float]


class AIUnavailable(Exception):
    """Every configured model failed."""


@dataclass(frozen=True)
class AIReply:
    text: str
    model: str
    tokens_in: int
    tokens_out: int
    latency_ms: int
    cost: float
    handoff_reason: str | None = None

    def meta(self) -> dict[str, object]:
        return {"source": "ai", "model": self.model, "tokens_in": self.tokens_in,
                "tokens_out": self.tokens_out, "latency_ms": self.latency_ms, "cost": self.cost}


PriceOf = Callable[[str], tuple[float, float]]


class AIObserver(Protocol):
    def ai_call(self, model: str, ok: bool, seconds: float, tokens_in: int = 0, tokens_out: int = 0,
                cost: float = 0.0) -> None: ...


@dataclass(frozen=True)
class Route:
    """One model at one provider; answers are tried along a list of these, in order."""

    model: str
    client: AsyncOpenAI
    provider: str = "default"

    @property
    def key(self) -> str:
        """How admins name it when they choose the order (never the provider's URL or key)."""
        return f"{self.model}@{self.provider}"


RouteOrder = Callable[[int], Awaitable[list[str]]]  # a bot's admins' order of the route keys
"""The keys of the routes to try, in order, as the bot's admins chose them; [] for the configured order."""


@dataclass(frozen=True)
class _Failed:
    why: str
    throttled: bool  # the provider said "too many requests": the model is tried again after its retry-after


class AIClient:
    def __init__(self, routes: list[Route], price_of: PriceOf, observer: AIObserver | None = None,
                 order: RouteOrder | None = None, max_output_tokens: int | None = None,
                 gate: ProviderGate | None = None, vision_models: frozenset[str] = frozenset(),
                 reads_coalesce: bool = False) -> None:
        if not routes:
            raise ValueError("at least one model is needed")
        self.routes = routes
        self.price_of = price_of
        self.observer = observer
        self.order = order
        self.max_output_tokens = max_output_tokens  # a cap on each answer's length, and so its cost
        # The providers' limits, shared with the studio's runs on these routes (no limits unless given).
        self.gate = gate if gate is not None else ProviderGate()
        self.vision_models = vision_models  # the models that take image input (AI_VISION_MODELS)
        # Whether one read of a stream takes every piece that has arrived (the client's aiohttp transport): only
        # then may a stream pause between reads. The default transport yields each HTTP chunk apart, so a pause
        # after each would hold back every piece.
        self.reads_coalesce = reads_coalesce

    @property
    def route_keys(self) -> list[str]:
        """The configured routes' keys, in the configured order, each once."""
        return list(dict.fromkeys(route.key for route in self.routes))

    @property
    def can_see(self) -> bool:
        """Whether any configured model takes images."""
        return any(route.model in self.vision_models for route in self.routes)

    async def routes_now(self, tenant: int, order: Sequence[str] | None = None) -> list[Route]:
        """The routes in the bot's admins' order (read before each answer, unless given as `order`); the
        configured order otherwise."""
        if self.order is None:
            return self.routes
        by_key = {route.key: route for route in reversed(self.routes)}
        chosen = [by_key[key] for key in (order if order is not None else await self.order(tenant)) if key in by_key]
        return chosen or self.routes

    async def close(self) -> None:
        await self.gate.close()
        for client in {id(route.client): route.client for route in self.routes}.values():
            await client.close()

    async def answer(self, messages: list[dict[str, Any]], on_progress: Progress, *, tenant: int = 0,
                     on_wait: OnWait | None = None, order: Sequence[str] | None = None,
                     pause: ReadPause | None = None) -> AIReply:
        """Stream an answer from the first model that works and has room, in the admins' order (else the
        configured one). A model its provider refused (429) is skipped until its retry-after passed; while
        no model has room, the answer waits its turn among `tenant`'s (a bot's) and the other bots' answers,
        with on_wait(True) when it starts waiting and on_wait(False) when it stops, up to the gate's
        max_wait over the whole answer. `order`: the admins' order of the routes, when read already; `pause`:
        how long the stream may go unread between reads, when no one would see its newer text sooner."""
        candidates = list(await self.routes_now(tenant, order))
        if has_images(messages):  # a model that cannot see would answer as if nothing were shown
            candidates = [route for route in candidates if route.model in self.vision_models]
        errors: dict[str, None] = {}
        deadline = self.gate.deadline()
        tokens = request_tokens(messages, min(self.max_output_tokens or EXPECTED_OUTPUT_TOKENS,
                                              EXPECTED_OUTPUT_TOKENS))
        while candidates:
            try:
                async with self.gate.turn(candidates, tenant, tokens, deadline=deadline, on_wait=on_wait) as turn:
                    route = candidates[turn.index]
                    outcome = await self._try(route, messages, on_progress, turn,
                                              pause if self.reads_coalesce else None)
            except Overdue as error:
                errors[str(error)] = None
                break
            if isinstance(outcome, AIReply):
                return outcome
            errors[f"{route.key}: {outcome.why}"] = None
            if not outcome.throttled:
                candidates.pop(turn.index)
        raise AIUnavailable("; ".join(errors))

    async def _try(self, route: Route, messages: list[dict[str, Any]], on_progress: Progress,
                   turn: Turn, pause: ReadPause | None = None) -> AIReply | _Failed:
        started = time.monotonic()
        try:
            reply = await _complete(route, messages, on_progress, self.price_of, tools=[HANDOFF_TOOL],
                                    max_tokens=self.max_output_tokens, pause=pause)
        except (openai.APIError, openai.APIConnectionError, openai.APITimeoutError, ValueError) as error:
            log.warning("AI model %s at %s failed: %s", route.model, route.provider, type(error).__name__)
            if self.observer is not None:
                self.observer.ai_call(route.model, False, time.monotonic() - started)
            throttled = await _cool_if_throttled(self.gate, route, error)
            return _Failed(type(error).__name__, throttled)
        turn.used = reply.tokens_in + reply.tokens_out
        if self.observer is not None:
            self.observer.ai_call(route.model, True, reply.latency_ms / 1000, reply.tokens_in, reply.tokens_out,
                                  reply.cost)
        return reply


def has_images(messages: list[dict[str, Any]]) -> bool:
    """Whether a message holds an image content part (OpenAI's `image_url`)."""
    return any(isinstance(message.get("content"), list)
               and any(part.get("type") == "image_url" for part in message["content"]) for message in messages)


DEFAULT_RETRY_AFTER = 1.0  # seconds, when a 429 does not say
MIN_RETRY_AFTER = 0.25  # a 429 is never retried sooner (some say "6ms")
MAX_RETRY_AFTER = 86_400.0


def retry_after(headers: Mapping[str, str], now: datetime | None = None) -> float:
    """Seconds a 429 asks to wait: `retry-after-ms`, else `retry-after` (seconds or an HTTP date)."""
    try:
        if "retry-after-ms" in headers:
            seconds = float(headers["retry-after-ms"]) / 1000
        elif "retry-after" in headers:
            value = headers["retry-after"].strip()
            try:
                seconds = float(value)
            except ValueError:
                seconds = (parsedate_to_datetime(value) - (now or datetime.now(UTC))).total_seconds()
        else:
            seconds = DEFAULT_RETRY_AFTER
    except (ValueError, TypeError):
        seconds = DEFAULT_RETRY_AFTER
    return min(max(seconds, MIN_RETRY_AFTER), MAX_RETRY_AFTER)


async def _cool_if_throttled(gate: ProviderGate, route: Route, error: Exception) -> bool:
    """A 429 for too many requests or tokens cools the model down; one for an unpaid bill ("insufficient
    quota") is a plain failure, as waiting does not help."""
    if not isinstance(error, openai.RateLimitError) or error.code == "insufficient_quota":
        return False
    await gate.cool(route, retry_after(error.response.headers))
    return True


async def stream_chat(route: Route, messages: list[dict[str, Any]], on_progress: Progress, price_of: PriceOf, *,
                      tools: list[dict[str, Any]] | None = None, max_tokens: int | None = None,
                      gate: ProviderGate | None = None, tenant: int = 0) -> AIReply:
    """One streamed completion from one model, within its provider's limits when `gate` is given (the
    deployment's models; a customer's own key is their own account): the text, its usage and its cost.

    Raises ValueError for an empty answer; the client's errors (openai.APIError…) as they come;
    AIUnavailable when the provider had no room within the gate's max_wait.
    """
    if gate is None:
        return await _complete(route, messages, on_progress, price_of, tools=tools, max_tokens=max_tokens)
    tokens = request_tokens(messages, min(max_tokens or EXPECTED_OUTPUT_TOKENS, EXPECTED_OUTPUT_TOKENS))
    try:
        async with gate.turn([route], tenant, tokens, deadline=gate.deadline()) as turn:
            try:
                reply = await _complete(route, messages, on_progress, price_of, tools=tools, max_tokens=max_tokens)
            except openai.RateLimitError as error:
                await _cool_if_throttled(gate, route, error)
                raise
            turn.used = reply.tokens_in + reply.tokens_out
            return reply
    except Overdue as error:
        raise AIUnavailable(str(error)) from None


async def _complete(route: Route, messages: list[dict[str, Any]], on_progress: Progress, price_of: PriceOf, *,
                    tools: list[dict[str, Any]] | None = None, max_tokens: int | None = None,
                    pause: ReadPause | None = None) -> AIReply:
    """One streamed completion. The official client makes the request, checks the status and raises its
    errors; the server-sent events are read as plain JSON, because building the client's typed chunk
    for each token costs ~140 µs, a core's whole time at a few hundred answers streaming at once.

    `on_progress` hears the text so far after each piece; with `pause`, once per read of the stream, and
    after the first words `pause` may leave the next pieces unread for a while: they wait in the socket, and
    the next read takes them all at once (each read costs the event loop more than parsing its events)."""
    started = time.monotonic()
    model = route.model
    extra: dict[str, Any] = {"tools": tools} if tools else {}
    if max_tokens:
        extra["max_tokens"] = max_tokens
    request = route.client.chat.completions.with_streaming_response.create(
        model=model, messages=cast(Any, messages), stream=True, stream_options={"include_usage": True}, **extra)
    text: list[str] = []
    tool_name, tool_arguments = "", []
    tokens_in = tokens_out = 0

    grew = False  # text came with the last read: with `pause`, progress is told once per read, not per piece

    async def between_reads() -> None:
        nonlocal grew
        if grew:
            grew = False
            await on_progress("".join(text))
        if text and pause is not None and (wait := pause()) > 0:
            await asyncio.sleep(wait)

    async with request as response:  # closes the HTTP response when the reader stops the answer early
        async for data in _sse_data(response.iter_bytes(), between_reads):
            chunk = json.loads(data)  # a malformed event is a ValueError: the model failed
            if not isinstance(chunk, dict):
                raise ValueError("the model sent an event that is not a JSON object")
            if chunk.get("error"):
                raise openai.APIError(str(chunk["error"])[:500], response.http_request, body=chunk["error"])
            usage = chunk.get("usage")
            if usage:
                tokens_in, tokens_out = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                if delta.get("content"):
                    text.append(str(delta["content"]))
                    if pause is None or len(text) == 1:  # the first words at once, whatever the read holds
                        await on_progress("".join(text))
                    else:
                        grew = True
                for call in delta.get("tool_calls") or []:
                    function = call.get("function") or {}
                    tool_name = str(function.get("name") or tool_name)
                    if function.get("arguments"):
                        tool_arguments.append(str(function["arguments"]))
    answer = "".join(text).strip()
    handoff = _handoff_reason(tool_name, "".join(tool_arguments))
    if not answer and handoff is None:
        raise ValueError("the model returned an empty answer")
    price_in, price_out = price_of(model)
    return AIReply(
        text=answer, model=model, tokens_in=tokens_in, tokens_out=tokens_out,
        latency_ms=int((time.monotonic() - started) * 1000),
        cost=round((tokens_in * price_in + tokens_out * price_out) / 1_000_000, 6),
        handoff_reason=handoff,
    )


async def _sse_data(chunks: AsyncIterator[bytes],
                    between_reads: Callable[[], Awaitable[None]] | None = None) -> AsyncIterator[str]:
    """The data of each server-sent event up to `[DONE]`, as OpenAI-compatible servers stream them
    (other fields and comments are skipped; an event's data lines are joined, as the standard says).

    Read from the body's byte chunks (each may hold several events, or part of one) rather than line
    by line: a line iterator's layers cost more than the parsing itself, once per token per answer.
    `between_reads` is awaited after each chunk's events, before the next read."""
    pending = b""
    async for chunk in chunks:
        pending += chunk
        *events, pending = _EVENT_END.split(pending)
        for event in events:
            data = _event_data(event)
            if data == "[DONE]":
                return
            if data is not None:
                yield data
        if between_reads is not None:
            await between_reads()
    data = _event_data(pending)
    if data is not None and data != "[DONE]":
        yield data


_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")


def _event_data(event: bytes) -> str | None:
    lines = [line for line in event.decode("utf-8").splitlines() if line.startswith("data:")]
    if not lines:
        return None
    return "\n".join(line[5:].removeprefix(" ") for line in lines)


def _handoff_reason(tool_name: str, arguments: str) -> str | None:
    if tool_name != "handoff_to_human":
        return None
    try:
        reason = json.loads(arguments or "{}").get("reason")
    except (json.JSONDecodeError, AttributeError):
        reason = None
    return reason if reason in ("asked_for_person", "cannot_answer", "complaint", "sensitive") else "cannot_answer"
