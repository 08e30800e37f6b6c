"""Search queries over the template library as words, and highlighting of what they matched.

A query is reduced to its words (letters and digits), so nothing typed can reach a full-text index's
own syntax: each word is quoted when the query is written for FTS5 or PostgreSQL's tsquery. Words
joined by punctuation (`e-mail`, `o‘zbek`) stay together as a phrase, and the last word is also a
prefix unless the query ends with a space, so results follow typing.

Highlighting is done here, the same for both databases: the text is escaped for HTML, then the
phrases the query matched are wrapped in `<mark>`. (PostgreSQL's ts_headline drops `<tags>` from the
text it shows and treats what is inside `<script>` as blank; FTS5's snippet() leaves escaping to us.)
"""

from __future__ import annotations

import bisect
import html
import itertools
import re
import unicodedata
from dataclasses import dataclass
from functools import cached_property

MAX_QUERY_CHARS = 500
MAX_QUERY_WORDS = 16
SNIPPET_WORDS = 28

# Letters and digits. Apostrophe-like letters (ʻ ʼ, used in Uzbek) count as punctuation, like ‘ ’ and ',
# so `oʻzbek`, `o'zbek` and `o‘zbek` are all the phrase "o zbek", as the indexes split the last two.
_WORD = re.compile(r"[^\W_]+")
_APOSTROPHES = str.maketrans({"\u02bb": "'", "\u02bc": "'"})
_JOINER = re.compile(r"[ \t'‘’ʻʼ-]{1,2}")  # between two marked words: one mark


def _fold_char(char: str) -> str:
    if char in "\u02bb\u02bc":
        return "'"
    lowered = char.lower()
    bare = "".join(part for part in unicodedata.normalize("NFKD", lowered) if not unicodedata.combining(part))
    return bare if len(bare) == 1 else lowered if len(lowered) == 1 else char


class _Folding(dict[int, str]):
    """str.translate's table: each character folded the first time it is met, then remembered."""

    def __missing__(self, code: int) -> str:
        folded = self[code] = _fold_char(chr(code))
        return folded


_FOLDING = _Folding()


def fold_text(text: str) -> str:
    """Lower case without diacritics, one character for one, so positions in it are positions in `text`."""
    return text.translate(_FOLDING)


def fold(word: str) -> str:
    """A word of a query, compared as fold_text compares text."""
    bare = unicodedata.normalize("NFKD", word.lower())
    return fold_text("".join(part for part in bare if not unicodedata.combining(part)))


@dataclass(frozen=True)
class Query:
    """A search query as words: phrases of words (each phrase's words were joined by punctuation) and
    whether the last word is also a prefix. The words are in lower case, diacritics kept: the indexes
    fold them as they fold the text (FTS5 removes Latin diacritics, PostgreSQL's 'simple' keeps them)."""

    phrases: tuple[tuple[str, ...], ...]
    prefix: bool

    @classmethod
    def parse(cls, text: str) -> Query:
        text = text[:MAX_QUERY_CHARS].translate(_APOSTROPHES)
        phrases: list[tuple[str, ...]] = []
        budget = MAX_QUERY_WORDS
        for chunk in text.split():
            words = tuple(word.lower() for word in _WORD.findall(chunk))[:budget]
            if words:
                phrases.append(words)
                budget -= len(words)
            if budget <= 0:
                break
        # Search as you type: "summ" finds "summarize"; "summ " is a finished word. One letter is too
        # short to be worth the index's time as a prefix.
        prefix = bool(phrases) and not text[-1:].isspace() and _WORD.fullmatch(text[-1:]) is not None \
            and len(phrases[-1][-1]) >= 2
        return cls(tuple(phrases), prefix)

    def fts5(self) -> str:
        """FTS5: every phrase quoted (words only inside, so nothing else can be syntax), all of them."""
        parts = [f'"{" ".join(phrase)}"' for phrase in self.phrases]
        if self.prefix:
            parts[-1] += "*"
        return " AND ".join(parts)

    def tsquery(self) -> str:
        """PostgreSQL's to_tsquery: every word quoted, a phrase's words adjacent, all of them."""
        parts = [" <-> ".join(f"'{word}'" for word in phrase) for phrase in self.phrases]
        if self.prefix:
            parts[-1] += ":*"
        return " & ".join(f"({part})" for part in parts)

    @cached_property
    def _folded(self) -> list[str]:
        return [fold(word) for phrase in self.phrases for word in phrase]

    @cached_property
    def pattern(self) -> re.Pattern[str]:
        """Where the query matches a folded text: its phrases (the longest first), each a whole word
        or, for the last word while typing, the start of one."""
        last = len(self.phrases) - 1
        alternatives = []
        for number, phrase in sorted(enumerate(self.phrases), key=lambda item: -len(item[1])):
            words = [re.escape(fold(word)) for word in phrase]
            # The word's start is checked after the word (a lookbehind of its length), so the pattern
            # starts with letters and the search skips ahead to them: six times faster than checking first.
            words[0] += rf"(?<![^\W_]{words[0]})"
            if number == last and self.prefix:
                words[-1] += r"[^\W_]*"
            alternatives.append(r"[\W_]+".join(words))
        return re.compile("(?:" + "|".join(alternatives) + r")(?![^\W_])")

    def title_tier(self, title: str) -> int:
        """2: the title is the query; 1: the title holds every word of it; 0: otherwise."""
        folded, words = fold_text(title), self._folded
        if not words or not all(word in folded for word in words):  # most candidates: a word is not there
            return 0
        title_words = _WORD.findall(folded)

        def same(asked: str, word: str, last: bool) -> bool:
            return word.startswith(asked) if last and self.prefix else word == asked

        last = len(words) - 1
        if len(title_words) == len(words) and all(
                same(asked, word, index == last) for index, (asked, word) in enumerate(zip(words, title_words,
                                                                                         strict=True))):
            return 2
        if all(any(same(asked, word, index == last) for word in title_words) for index, asked in enumerate(words)):
            return 1
        return 0


# --- highlighting --------------------------------------------------------------------------------


def _marked(text: str, query: Query | None) -> list[tuple[int, int]]:
    """The character spans of `text` the query matched (whole phrases), neighbours joined when only a
    space, an apostrophe or a hyphen is between them."""
    if query is None or not query.phrases:
        return []
    spans: list[tuple[int, int]] = []
    for match in query.pattern.finditer(fold_text(text)):
        start, end = match.span()
        if spans and _JOINER.fullmatch(text[spans[-1][1]:start]):
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
    return spans


def highlight(text: str, query: Query | None) -> str:
    """The whole text, escaped for HTML, its matched words in <mark>."""
    out, position = [], 0
    for start, end in _marked(text, query):
        out += [html.escape(text[position:start]), "<mark>", html.escape(text[start:end]), "</mark>"]
        position = end
    out.append(html.escape(text[position:]))
    return "".join(out)


def snippet(text: str, query: Query | None, words: int = SNIPPET_WORDS) -> str:
    """About `words` words of the text around its best cluster of matches (its start when none), on
    one line, escaped for HTML with the matches in <mark>; `…` where it was cut."""
    spans = _marked(text, query)
    # The words' positions: all of them to place the window, else only the first ones shown.
    tokens = [match.span() for match in itertools.islice(_WORD.finditer(text), None if spans else words + 1)]
    if not tokens:
        return html.escape(" ".join(text.split())[:200])
    first = 0
    if spans:
        starts = [start for start, _ in tokens]
        hits = [bisect.bisect_left(starts, start) for start, _ in spans]
        # The window holding the most matches; it starts a few words before its first one.
        best = max(range(len(hits)), key=lambda i: bisect.bisect_left(hits, hits[i] + words - 4) - i)
        first = max(0, hits[best] - 4)
    last = min(len(tokens), first + words) - 1
    start = tokens[first][0] if first else 0
    end = tokens[last][1] if last < len(tokens) - 1 else len(text)
    shown = " ".join(highlight(text[start:end], query).split())
    return ("…" if start else "") + shown + ("…" if end < len(text) else "")
