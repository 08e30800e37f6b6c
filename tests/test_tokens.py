"""Token counts: exact with the model's own tokenizer when it is at hand, an honest estimate otherwise,
and never a network call per keystroke. Tokenizers here are small real tiktoken encodings built in
the test (tiktoken's own files would be downloaded)."""

from __future__ import annotations

import threading

import pytest
import tiktoken

from services.tokens import TokenCounter, encoding_name, estimate

WORDS = {"o200k_base": [b"he", b"ll", b"hell", b"hello", b" w", b"or", b"ld", b" wor", b" world"],
         "cl100k_base": [b"he", b"ll"]}


def small_encoding(name: str) -> tiktoken.Encoding:
    """A real BPE encoding: every byte, plus a few merges that differ by name."""
    ranks = {bytes([byte]): byte for byte in range(256)}
    for merged in WORDS[name]:
        ranks[merged] = len(ranks)
    return tiktoken.Encoding(name, pat_str=r"\s?\w+|\s?[^\w\s]+|\s+", mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": len(ranks)})


class Loader:
    """Loads the small encodings; can fail, or wait until released, like a download."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.failing = False
        self.release: threading.Event | None = None

    def __call__(self, name: str) -> tiktoken.Encoding:
        self.calls.append(name)
        if self.release is not None:
            self.release.wait(10)
        if self.failing:
            raise OSError("no network")
        return small_encoding(name)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_openai_models_are_counted_exactly_with_their_own_tokenizer() -> None:
    loader = Loader()
    counter = TokenCounter(loader)
    newer = await counter.count("hello world", "gpt-4o-mini")
    assert (newer.tokens, newer.exact, newer.encoding) == (2, True, "o200k_base")  # "hello", " world"
    older = await counter.count("hello world", "gpt-4")
    assert (older.tokens, older.exact, older.encoding) == (9, True, "cl100k_base")  # he ll o, " world" by bytes
    for written in ("openai/gpt-4o-mini", "gpt-4o@default", "openrouter/openai/gpt-4o:free", "gpt-5-nano"):
        assert (await counter.count("hello world", written)).encoding == "o200k_base", written
    assert loader.calls == ["o200k_base", "cl100k_base"]  # each loaded once
    special = await counter.count("<|endoftext|>", "gpt-4o")  # a customer's text, never a control token
    assert special.exact
    assert special.tokens > 1


async def test_other_makers_models_are_estimated_without_loading_anything() -> None:
    loader = Loader()
    counter = TokenCounter(loader)
    for model in ("claude-3-5-sonnet", "anthropic/claude-3.5-sonnet", "meta-llama/llama-3.1-8b", "mistral/gpt-4o",
                  "", "gemini-2.0-flash"):
        count = await counter.count("Hello there, how are you?", model)
        assert (count.exact, count.encoding) == (False, None), model
        assert count.tokens == estimate("Hello there, how are you?")
    assert loader.calls == []
    assert encoding_name("text-embedding-3-small") == "cl100k_base"


async def test_a_tokenizer_that_cannot_be_loaded_is_tried_again_only_after_a_while() -> None:
    loader, clock = Loader(), Clock()
    loader.failing = True
    counter = TokenCounter(loader, retry_after=300, clock=clock)
    for _ in range(5):  # a page counting at every keystroke
        count = await counter.count("hello world", "gpt-4o")
        assert (count.tokens, count.exact) == (estimate("hello world"), False)
    assert loader.calls == ["o200k_base"]

    clock.now += 299
    await counter.count("hello world", "gpt-4o")
    assert len(loader.calls) == 1
    loader.failing = False
    clock.now += 2
    assert (await counter.count("hello world", "gpt-4o")).exact
    assert len(loader.calls) == 2


async def test_a_slow_download_is_not_waited_for_and_is_used_once_it_arrives() -> None:
    loader, clock = Loader(), Clock()
    loader.release = threading.Event()
    counter = TokenCounter(loader, timeout=0.2, retry_after=60, clock=clock)
    try:
        assert not (await counter.count("hello world", "gpt-4o")).exact
    finally:
        loader.release.set()
    clock.now += 61
    count = await counter.count("hello world", "gpt-4o")
    assert (count.tokens, count.exact) == (2, True)
    assert loader.calls == ["o200k_base"]  # the first download, finished late, is the one used


@pytest.mark.parametrize(("text", "o200k"), [
    # Exact o200k_base counts, measured once with the real tokenizer (bench/token_estimate.py's way).
    ("When the AI cannot help, or the customer asks for a person, the conversation is handed to human "
     "managers, who work from a Telegram group chat.", 30),
    ("Когда ИИ не может помочь или клиент просит человека, разговор передаётся менеджерам, которые работают "
     "из группового чата в Telegram.", 29),
    ("Sun’iy intellekt yordam bera olmasa yoki mijoz inson bilan gaplashmoqchi bo‘lsa, suhbat Telegram "
     "guruhida ishlaydigan menejerlarga o‘tkaziladi.", 42),
    ("async def count(self, text: str, model: str) -> TokenCount:\n    name = encoding_name(model)\n"
     "    if name is None:\n        return TokenCount(estimate(text), False, None)\n", 42),
    ('{"name": "My OpenAI", "base_url": "https://api.openai.com/v1", "models": ["gpt-4o-mini", "gpt-4.1"], '
     '"last4": "cD9f"}', 51),
])
def test_the_estimate_stays_near_the_real_count(text: str, o200k: int) -> None:
    assert abs(estimate(text) - o200k) <= 0.15 * o200k


def test_the_estimate_of_nothing_is_nothing() -> None:
    assert estimate("") == 0
    assert estimate("a") == 1
