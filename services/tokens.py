"""Token counts: exact with OpenAI's tokenizer (tiktoken) where the model's is known and loaded, an
honest estimate otherwise (other providers' models, or tiktoken's files not at hand).

tiktoken downloads a model's BPE file on first use (about 2-4 MB) and keeps it in TIKTOKEN_CACHE_DIR
(else a temporary directory). A server without internet access counts exactly only what its cache
holds: the Docker image fills one at build time. Loading happens in a daemon thread, never on the
event loop, within `timeout` seconds; a failure is remembered for `retry_after` seconds, so a page
that counts at every keystroke does not ask the network each time (tiktoken's download has no
timeout of its own: a hung one is abandoned, and cannot hold up the process's exit).

The estimate cuts text as OpenAI's pre-tokenizer does and prices each piece by its script and
length, calibrated against o200k_base (docs/tokens.md: about 7% mean error over English, Russian,
Uzbek, code and JSON, where characters/4 is off by about 19%).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import tiktoken

LONG_TEXT = 20_000  # characters: longer texts are encoded off the event loop


@dataclass(frozen=True)
class TokenCount:
    tokens: int
    exact: bool  # False: an estimate (show it with "≈")
    encoding: str | None  # the tokenizer counted with, when exact


EncodingLoader = Callable[[str], tiktoken.Encoding]
"""Loads an encoding by name (tiktoken.get_encoding, which may download it)."""


def encoding_name(model: str) -> str | None:
    """The tiktoken encoding of an OpenAI model, also when written with a provider's prefix
    (`openai/gpt-4o-mini`, `gpt-4o@default`); None for any other model."""
    name = model.strip().rpartition("@")[0] or model.strip()
    provider, _, bare = name.rpartition("/")
    if provider and provider.rpartition("/")[2] not in ("openai", "azure"):
        return None  # another maker's model that happens to share a name stays an estimate
    try:
        return tiktoken.encoding_name_for_model(bare.partition(":")[0])
    except KeyError:
        return None


class TokenCounter:
    """One per process: remembers loaded encodings and recent failures to load one."""

    def __init__(self, loader: EncodingLoader = tiktoken.get_encoding, *, timeout: float = 10.0,
                 retry_after: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.loader = loader
        self.timeout = timeout
        self.retry_after = retry_after
        self.clock = clock
        self._encodings: dict[str, tiktoken.Encoding] = {}
        self._failed_until: dict[str, float] = {}
        self._loading: dict[str, concurrent.futures.Future[tiktoken.Encoding]] = {}

    async def count(self, text: str, model: str) -> TokenCount:
        """Tokens in `text` for `model`: exact when its tokenizer is at hand, else estimated."""
        name = encoding_name(model)
        encoding = await self.encoding(name) if name is not None else None
        if encoding is None:
            return TokenCount(estimate(text), False, None)
        if len(text) > LONG_TEXT:
            tokens = await asyncio.get_running_loop().run_in_executor(None, encoding.encode_ordinary, text)
        else:
            tokens = encoding.encode_ordinary(text)
        return TokenCount(len(tokens), True, name)

    async def encoding(self, name: str) -> tiktoken.Encoding | None:
        """The encoding, loading it when needed; None while it cannot be had."""
        known = self._encodings.get(name)
        if known is not None:
            return known
        if self.clock() < self._failed_until.get(name, 0.0):
            return None
        future = self._loading.get(name)
        if future is None or (future.done() and future.exception() is not None):
            future = self._loading[name] = self._start_loading(name)
        try:
            encoding = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), self.timeout)
        except Exception:  # offline, timed out, a corrupt cache: count with the estimate for a while
            self._failed_until[name] = self.clock() + self.retry_after
            return None  # a load still running may yet finish: it is picked up after the wait
        self._loading.pop(name, None)
        self._failed_until.pop(name, None)
        self._encodings[name] = encoding
        return encoding

    def _start_loading(self, name: str) -> concurrent.futures.Future[tiktoken.Encoding]:
        future: concurrent.futures.Future[tiktoken.Encoding] = concurrent.futures.Future()

        def load() -> None:
            try:
                future.set_result(self.loader(name))
            except BaseException as error:  # handed to whoever awaits the future
                future.set_exception(error)

        threading.Thread(target=load, name=f"tiktoken-{name}", daemon=True).start()
        return future


# --- the estimate -------------------------------------------------------------------------------------

# Pieces as o200k_base's pre-tokenizer cuts text: a word with the one space or symbol before it,
# digits in threes, a run of symbols, a line break, indentation.
_PIECES = re.compile(r"(?:[^\r\n\w]|_)?[^\W\d_]+|\d{1,3}| ?(?:[^\s\w]|_)+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
# Uzbek written in Latin letters splits into about twice as many tokens as English: told by o‘/g‘
# (or an apostrophe inside a word that is no English contraction) anywhere in the text, or by the
# word itself (a q without u, a common suffix).
_UZBEK_TEXT = re.compile(r"[oOgG][\u2018\u02bb'`][a-zA-Z]|[a-zA-Z][\u2019\u02bc'](?!(?:s|t|d|m|ll|re|ve)\b)[a-zA-Z]")
_UZBEK_WORD = re.compile(r"q(?!u)|(?:lar|lari|larni|larga|ning|dagi|dan|ni|ga|da|lik|siz|miz|ingiz|moq|ydi|adi|ildi)$")


@dataclass(frozen=True)
class _Words:
    """A word's first token holds `free` letters (after a space; `free_alone` otherwise), and each
    further token `per_token` more."""

    free: float
    free_alone: float
    per_token: float

    def cost(self, letters: int, after_space: bool) -> float:
        free = self.free if after_space else self.free_alone
        return 1 + max(0.0, letters - free) / self.per_token


# Fitted to o200k_base (bench/token_estimate.py; the numbers are in docs/tokens.md).
ENGLISH_LIKE = _Words(7.7, 10.1, 5.7)
UZBEK_LATIN = _Words(2.6, 2.25, 3.1)
CYRILLIC = _Words(4.55, 0.5, 3.6)
OTHER_ALPHABET = _Words(2.0, 2.0, 2.0)  # Greek, Arabic, Hebrew, Georgian…: not fitted, a guess
NON_ASCII_LATIN = 0.6  # each accented or modifier letter in a Latin word (é, ş, ʻ)
AFTER_SYMBOL = 0.1  # a word glued to the symbol before it (`.append`, `(name`)
SYMBOLS_FREE, SYMBOLS_PER_TOKEN = 1.6, 8.3  # a run of punctuation


def _script(char: str) -> str:
    code = ord(char)
    if code < 0x250 or 0x1E00 <= code < 0x1F00:
        return "latin"
    if 0x400 <= code < 0x530:
        return "cyrillic"
    if 0x3040 <= code < 0x3100 or 0x3400 <= code < 0xA000 or 0xAC00 <= code < 0xD7B0 or 0xF900 <= code < 0xFB00:
        return "cjk"
    return "other"


def _camel_parts(word: str) -> list[str]:
    """`camelCase` is two pieces to the tokenizer, as to the reader."""
    parts, start = [], 0
    for index in range(1, len(word)):
        if word[index - 1].islower() and word[index].isupper():
            parts.append(word[start:index])
            start = index
    parts.append(word[start:])
    return parts


def _word_cost(word: str, after_space: bool, uzbek_text: bool) -> float:
    script = _script(word[0])
    if script == "cjk":
        return float(len(word))
    if script == "cyrillic":
        return CYRILLIC.cost(len(word), after_space)
    if script == "other":
        return OTHER_ALPHABET.cost(len(word), after_space)
    uzbek = uzbek_text or (len(word) >= 4 and word.isascii() and _UZBEK_WORD.search(word.lower()) is not None)
    cost = (UZBEK_LATIN if uzbek else ENGLISH_LIKE).cost(len(word), after_space)
    return cost + NON_ASCII_LATIN * sum(1 for char in word if not char.isascii())


def estimate(text: str) -> int:
    """Tokens `text` likely takes in a modern BPE tokenizer (o200k_base-like), without one.

    The same texts come again and again (a bot's persona, its knowledge passages, a conversation's
    history, with every answer), so those of a usual size are remembered."""
    return _remembered_estimate(text) if len(text) <= REMEMBERED_CHARS else _estimate(text)


REMEMBERED_CHARS = 8000


@functools.lru_cache(maxsize=4096)
def _remembered_estimate(text: str) -> int:
    return _estimate(text)


def _estimate(text: str) -> int:
    uzbek_text = _UZBEK_TEXT.search(text) is not None
    tokens = 0.0
    for piece in _PIECES.findall(text):
        first = piece[0]
        if first.isalpha() or (len(piece) > 1 and piece[1].isalpha()):
            lead = "" if first.isalpha() else first
            for index, part in enumerate(_camel_parts(piece[len(lead):])):
                tokens += _word_cost(part, index == 0 and lead == " ", uzbek_text)
            tokens += AFTER_SYMBOL if lead not in ("", " ") else 0.0
        elif first.isdigit() or piece.isspace():
            tokens += 1
        else:
            tokens += 1 + max(0.0, len(piece.lstrip(" ")) - SYMBOLS_FREE) / SYMBOLS_PER_TOKEN
    return max(1, round(tokens)) if text else 0
