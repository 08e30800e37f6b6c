"""A document's sections cut into chunks for retrieval by meaning.

Chunks follow the document's structure: one never spans two sections (a heading or a PDF page), holds whole
paragraphs where they fit, and cuts an over-long paragraph at sentence ends (at word boundaries only inside a
sentence longer than a chunk). Consecutive chunks of a section repeat the last sentence(s) of the one before, so
a fact cut in two still reads whole in one of them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from services.documents import Section

TINY_WORDS = 20  # a section's last chunk shorter than this joins the chunk before it

# A sentence ends at . ! ? … (perhaps followed by a closing quote or bracket) and whitespace, or at a line break.
_SENTENCE_END = re.compile(r"(?:(?<=[.!?…])|(?<=[.!?…][\"'»”’)\]]))\s+|\s*\n\s*")


@dataclass(frozen=True)
class Chunk:
    text: str
    heading_path: tuple[str, ...]
    page: int | None
    ordinal: int  # 0.. in document order


@dataclass(frozen=True)
class _Piece:
    """A sentence (or a part of an over-long one), and the paragraph of its section it belongs to."""

    paragraph: int
    text: str
    words: int


@dataclass
class _Draft:
    pieces: list[_Piece]
    carried: int  # how many of the first pieces repeat the previous chunk (the overlap)

    @property
    def words(self) -> int:
        return sum(piece.words for piece in self.pieces)

    @property
    def new_words(self) -> int:
        return sum(piece.words for piece in self.pieces[self.carried:])


def chunk_sections(sections: Sequence[Section], *, max_words: int = 160, overlap_words: int = 30) -> list[Chunk]:
    """Chunks of at most `max_words` words (words: whitespace-separated), numbered in document order; only a
    section's tiny tail (under TINY_WORDS new words) is added to the chunk before it, even past `max_words`."""
    if max_words < 1 or not 0 <= overlap_words < max_words:
        raise ValueError("chunks need max_words >= 1 and 0 <= overlap_words < max_words")
    chunks: list[Chunk] = []
    for section in sections:
        for draft in _section_drafts(section.text, max_words, overlap_words):
            chunks.append(Chunk(_render(draft.pieces), section.heading_path, section.page, len(chunks)))
    return chunks


def _section_drafts(text: str, max_words: int, overlap_words: int) -> list[_Draft]:
    paragraphs = [paragraph for paragraph in text.split("\n\n") if paragraph.strip()]
    drafts = [_Draft([], 0)]
    for number, paragraph in enumerate(paragraphs):
        pieces = [_Piece(number, part, len(part.split()))
                  for sentence in _sentences(paragraph) for part in _word_windows(sentence, max_words, overlap_words)]
        size = sum(piece.words for piece in pieces)
        if drafts[-1].words + size <= max_words:
            drafts[-1].pieces.extend(pieces)
        elif size <= max_words:  # a whole paragraph that fits a chunk of its own keeps together
            drafts.append(_next_draft(drafts[-1], max_words - size, overlap_words))
            drafts[-1].pieces.extend(pieces)
        else:  # an over-long paragraph goes sentence by sentence
            for piece in pieces:
                if drafts[-1].words + piece.words > max_words:
                    drafts.append(_next_draft(drafts[-1], max_words - piece.words, overlap_words))
                drafts[-1].pieces.append(piece)
    drafts = [draft for draft in drafts if draft.new_words]
    tiny = min(TINY_WORDS, max_words // 4)
    if len(drafts) > 1 and drafts[-1].new_words < tiny:  # a short tail reads better with what it ends
        last = drafts.pop()
        drafts[-1].pieces.extend(last.pieces[last.carried:])
    return drafts


def _next_draft(previous: _Draft, room: int, overlap_words: int) -> _Draft:
    carried = _overlap(previous.pieces, room, overlap_words)
    return _Draft(carried, len(carried))


def _overlap(pieces: list[_Piece], room: int, overlap_words: int) -> list[_Piece]:
    """The last whole sentences within `overlap_words` (and the `room` the next chunk leaves). A last sentence up
    to half as long again is repeated whole if there is room, never from its middle; a longer one by its tail."""
    budget = min(room, overlap_words)
    taken: list[_Piece] = []
    total = 0
    for piece in reversed(pieces):
        total += piece.words
        if total > budget:
            break
        taken.insert(0, piece)
    if taken or not pieces or budget <= 0:
        return taken
    last = pieces[-1]
    if last.words <= overlap_words * 3 // 2:
        return [last] if last.words <= room else []
    words = last.text.split()[-budget:]
    return [_Piece(last.paragraph, " ".join(words), len(words))]


def _sentences(paragraph: str) -> list[str]:
    sentences: list[str] = []
    for part in _SENTENCE_END.split(paragraph.strip()):
        if not part:
            continue
        # "e.g. the", "т.е. это", "5 p.m. today": a full stop before a lower-case word is an abbreviation
        if sentences and sentences[-1].endswith(".") and part[0].islower():
            sentences[-1] = f"{sentences[-1]} {part}"
        else:
            sentences.append(part)
    return sentences


def _word_windows(sentence: str, max_words: int, overlap_words: int) -> list[str]:
    """The last resort for a sentence longer than a chunk: cut it at word boundaries, into parts that leave room
    for the overlap."""
    words = sentence.split()
    if len(words) <= max_words:
        return [sentence]
    size = max_words - overlap_words
    return [" ".join(words[start:start + size]) for start in range(0, len(words), size)]


def _render(pieces: list[_Piece]) -> str:
    """Sentences of one paragraph joined by a space, paragraphs by a blank line."""
    paragraphs: list[str] = []
    current = -1
    for piece in pieces:
        if paragraphs and piece.paragraph == current:
            paragraphs[-1] = f"{paragraphs[-1]} {piece.text}"
        else:
            paragraphs.append(piece.text)
        current = piece.paragraph
    return "\n\n".join(paragraphs)
