"""The persona: the business's system prompt, versioned, one active per bot.

History is linear and immutable: every change, a rollback included, is a new version, and the
newest one is the active one. Who wrote a version is kept in the audit log beside it.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from models import AuditLog, Persona, User

DEFAULT_PERSONA_PATH = Path(__file__).parent / "defaults" / "persona.md"
MAX_PERSONA_CHARS = 20_000
AUDIT_ACTION = "persona_version"
DIFF_CONTEXT = 3  # unchanged lines shown around each change
SIMILAR_LINES = 0.5  # a removed and an added line this alike are shown as one line changed, word by word


class PersonaError(ValueError):
    """A version cannot be stored as asked; `code` says why (empty, too_long, unchanged, stale)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def default_persona() -> str:
    return DEFAULT_PERSONA_PATH.read_text(encoding="utf-8").strip()


async def active_persona(bot_id: int) -> str:
    persona = await Persona.filter(bot_id=bot_id, active=True).order_by("-version").first()
    return persona.text if persona else default_persona()


def _checked(text: str) -> str:
    text = text.strip()
    if not text:
        raise PersonaError("empty", "the persona is empty")
    if len(text) > MAX_PERSONA_CHARS:
        raise PersonaError("too_long", f"the persona is longer than {MAX_PERSONA_CHARS} characters")
    return text


async def set_persona(bot_id: int, text: str, *, actor: User | None = None, based_on: int | None = None,
                      restored_from: int | None = None, refuse_unchanged: bool = False,
                      via: str = "cli") -> Persona:
    """Store a new version and make it the active one (the AI uses it from its next answer).

    `based_on` is the version the author edited: if another one was saved meanwhile, nothing is
    stored (PersonaError "stale"), so nobody overwrites a colleague's change unseen.
    """
    text = _checked(text)
    try:
        async with in_transaction():
            latest = await Persona.filter(bot_id=bot_id).order_by("-version").first()
            if based_on is not None and (latest.version if latest else 0) != based_on:
                raise PersonaError("stale", "another version was saved meanwhile")
            if refuse_unchanged and text == (latest.text if latest else default_persona()):
                raise PersonaError("unchanged", "the text is the same as the active version")
            await Persona.filter(bot_id=bot_id, active=True).update(active=False)
            created = await Persona.create(bot_id=bot_id, text=text, active=True,
                                           version=(latest.version + 1) if latest else 1)
            await AuditLog.create(bot_id=bot_id, actor=actor, action=AUDIT_ACTION, target=_target(created.version),
                                  details={"chars": len(text), "restored_from": restored_from, "via": via})
    except IntegrityError as error:  # someone else took this version number at the same moment
        raise PersonaError("stale", "another version was saved meanwhile") from error
    return created


async def restore(bot_id: int, version: int, actor: User | None, *, via: str = "app") -> Persona | None:
    """Make an older version's text active again, as a new version; None when there is no such version."""
    old = await Persona.get_or_none(bot_id=bot_id, version=version)
    if old is None:
        return None
    return await set_persona(bot_id, old.text, actor=actor, restored_from=version, refuse_unchanged=True, via=via)


# --- reading the history ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Version:
    version: int
    text: str
    active: bool
    created_at: datetime
    author: User | None
    restored_from: int | None


def _target(version: int) -> str:
    return f"persona:{version}"


async def _versions(bot_id: int, rows: list[Persona]) -> list[Version]:
    entries = await AuditLog.filter(bot_id=bot_id, action=AUDIT_ACTION,
                                    target__in=[_target(row.version) for row in rows]).prefetch_related("actor")
    by_target = {entry.target: entry for entry in entries}
    versions = []
    for row in rows:
        entry = by_target.get(_target(row.version))
        restored = entry.details.get("restored_from") if entry is not None else None
        versions.append(Version(row.version, row.text, row.active, row.created_at,
                                entry.actor if entry is not None else None,
                                int(restored) if isinstance(restored, int) else None))
    return versions


async def history(bot_id: int, *, before: int | None = None, limit: int = 50) -> tuple[list[Version], bool]:
    """Versions newest first (below `before` when given), and whether older ones remain."""
    query = Persona.filter(bot_id=bot_id)
    if before is not None:
        query = query.filter(version__lt=before)
    rows = list(await query.order_by("-version").limit(limit + 1))
    return await _versions(bot_id, rows[:limit]), len(rows) > limit


async def get_version(bot_id: int, version: int) -> Version | None:
    row = await Persona.get_or_none(bot_id=bot_id, version=version)
    return (await _versions(bot_id, [row]))[0] if row is not None else None


async def latest_version(bot_id: int) -> Version | None:
    row = await Persona.filter(bot_id=bot_id).order_by("-version").first()
    return (await _versions(bot_id, [row]))[0] if row is not None else None


# --- what changed --------------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class PersonaDiff:
    version: int
    previous: int | None  # None: compared with the built-in default persona
    hunks: list[list[DiffLine]]
    added: int
    removed: int


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


async def diff(bot_id: int, version: int) -> PersonaDiff | None:
    """A version against the one before it (version 1 against the built-in default)."""
    row = await Persona.get_or_none(bot_id=bot_id, version=version)
    if row is None:
        return None
    before = await Persona.filter(bot_id=bot_id, version__lt=version).order_by("-version").first()
    hunks = diff_lines(before.text if before else default_persona(), row.text)
    lines = [line for hunk in hunks for line in hunk]
    return PersonaDiff(version, before.version if before else None, hunks,
                       sum(line.kind == "added" for line in lines), sum(line.kind == "removed" for line in lines))
