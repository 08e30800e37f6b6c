"""What versioned texts share: a prompt block's versions and the persona's.

Versions are immutable; what changes is which version carries a label (`production`, `draft`…):
a label names one version of its history at a time, so setting it on one takes it off the others.
Diffs are line by line with the changed words marked, for a reader on a phone.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Literal

DIFF_CONTEXT = 3  # unchanged lines shown around each change
SIMILAR_LINES = 0.5  # a removed and an added line this alike are shown as one line changed, word by word
MAX_LABELS = 10  # on one version
_LABEL = re.compile(r"[a-z0-9][a-z0-9_.-]{0,31}")


class LabelError(ValueError):
    """A label that cannot be set; `code` says why (bad_label, too_many_labels)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def clean_label(label: str) -> str:
    """The label as stored: lower case, 1-32 of a-z 0-9 _ . - (starting with a letter or digit)."""
    label = label.strip().lower()
    if not _LABEL.fullmatch(label):
        raise LabelError("bad_label", "a label is 1-32 of a-z, 0-9, _ . - and starts with a letter or digit")
    return label


def moved_label(labels_of: dict[int, list[str]], version_id: int, label: str) -> dict[int, list[str]]:
    """The versions whose labels change when `label` is put on `version_id`, with their new labels.

    `labels_of` maps the history's labelled versions, and `version_id` itself, to their labels.
    """
    changes = {other: [name for name in labels if name != label]
               for other, labels in labels_of.items() if other != version_id and label in labels}
    mine = labels_of.get(version_id, [])
    if label not in mine:
        if len(mine) >= MAX_LABELS:
            raise LabelError("too_many_labels", f"a version has at most {MAX_LABELS} labels")
        changes[version_id] = [*mine, label]
    return changes


@dataclass(frozen=True)
class Segment:
    text: str
    changed: bool


@dataclass(frozen=True)
class DiffLine:
    kind: Literal["same", "added", "removed"]
    text: str
    old: int | None  # its number in the previous version
    new: int | None  # its number in this version
    segments: tuple[Segment, ...] = ()  # for a changed line: which words changed


_WORDS = re.compile(r"\s+|\w+|[^\w\s]")


def _words(old: str, new: str) -> tuple[tuple[Segment, ...], tuple[Segment, ...]]:
    """The words that differ between two versions of one line, for highlighting; nothing when the
    lines have too little in common to be called one line changed (every word would be marked)."""
    a, b = _WORDS.findall(old), _WORDS.findall(new)
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    if matcher.ratio() < SIMILAR_LINES:
        return (), ()
    left: list[tuple[str, bool]] = []
    right: list[tuple[str, bool]] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        left += [(token, tag != "equal") for token in a[i1:i2]]
        right += [(token, tag != "equal") for token in b[j1:j2]]
    return _joined(left), _joined(right)


def _joined(tokens: list[tuple[str, bool]]) -> tuple[Segment, ...]:
    """Runs of tokens as segments; a space between two changed words belongs to the change."""
    marked = [changed or (token.isspace() and 0 < i < len(tokens) - 1 and tokens[i - 1][1] and tokens[i + 1][1])
              for i, (token, changed) in enumerate(tokens)]
    segments: list[Segment] = []
    for (token, _), changed in zip(tokens, marked, strict=True):
        if segments and segments[-1].changed == changed:
            segments[-1] = Segment(segments[-1].text + token, changed)
        else:
            segments.append(Segment(token, changed))
    return tuple(segments)


def diff_lines(old: str, new: str, context: int = DIFF_CONTEXT) -> list[list[DiffLine]]:
    """Line by line, grouped into hunks with `context` unchanged lines around each change."""
    a, b = old.splitlines(), new.splitlines()
    hunks: list[list[DiffLine]] = []
    for group in difflib.SequenceMatcher(None, a, b, autojunk=False).get_grouped_opcodes(context):
        lines: list[DiffLine] = []
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                lines += [DiffLine("same", a[i1 + k], i1 + k + 1, j1 + k + 1) for k in range(i2 - i1)]
                continue
            paired = min(i2 - i1, j2 - j1) if tag == "replace" else 0
            pairs = [_words(a[i1 + k], b[j1 + k]) for k in range(paired)]
            lines += [DiffLine("removed", a[i], i + 1, None, pairs[i - i1][0] if i - i1 < paired else ())
                      for i in range(i1, i2)]
            lines += [DiffLine("added", b[j], None, j + 1, pairs[j - j1][1] if j - j1 < paired else ())
                      for j in range(j1, j2)]
        hunks.append(lines)
    return hunks


