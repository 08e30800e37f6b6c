"""The persona: the business's system prompt, versioned, one active per bot.

History is linear and immutable: every change, a rollback included, is a new version, and the
newest one is the active one. Who wrote a version is kept in the audit log beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from models import AuditLog, Persona, User
from services.versioning import DiffLine, clean_label, diff_lines, moved_label

DEFAULT_PERSONA_PATH = Path(__file__).parent / "defaults" / "persona.md"
MAX_PERSONA_CHARS = 20_000
AUDIT_ACTION = "persona_version"


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
    labels: list[str]


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
                                int(restored) if isinstance(restored, int) else None, list(row.labels or [])))
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
class PersonaDiff:
    version: int
    previous: int | None  # None: compared with the built-in default persona
    hunks: list[list[DiffLine]]
    added: int
    removed: int


async def diff(bot_id: int, version: int, against: int | None = None) -> PersonaDiff | None:
    """A version against another (by default the one before it; version 1 against the built-in default)."""
    row = await Persona.get_or_none(bot_id=bot_id, version=version)
    if row is None:
        return None
    if against is not None:
        before = await Persona.get_or_none(bot_id=bot_id, version=against)
        if before is None:
            return None
    else:
        before = await Persona.filter(bot_id=bot_id, version__lt=version).order_by("-version").first()
    hunks = diff_lines(before.text if before else default_persona(), row.text)
    lines = [line for hunk in hunks for line in hunk]
    return PersonaDiff(version, before.version if before else None, hunks,
                       sum(line.kind == "added" for line in lines), sum(line.kind == "removed" for line in lines))


# --- labels --------------------------------------------------------------------------------------------

LABEL_ACTION = "persona_label"


async def label(bot_id: int, version: int, name: str, actor: User | None) -> Version | None:
    """Put a label (`production`…) on a version, taking it off the version that had it; None: no such version.

    Raises versioning.LabelError for a label that is not one.
    """
    name = clean_label(name)
    async with in_transaction():
        row = await Persona.get_or_none(bot_id=bot_id, version=version)
        if row is None:
            return None
        labelled = await Persona.filter(bot_id=bot_id).values_list("id", "labels")
        labels_of = {int(i): list(labels or []) for i, labels in labelled if labels}
        labels_of.setdefault(row.id, list(row.labels or []))
        changes = moved_label(labels_of, row.id, name)
        for persona_id, labels in changes.items():
            await Persona.filter(id=persona_id).update(labels=labels)
        if changes:
            await AuditLog.create(bot_id=bot_id, actor=actor, action=LABEL_ACTION, target=_target(version),
                                  details={"label": name, "set": True})
    return await get_version(bot_id, version)


async def unlabel(bot_id: int, version: int, name: str, actor: User | None) -> Version | None:
    name = name.strip().lower()
    async with in_transaction():
        row = await Persona.get_or_none(bot_id=bot_id, version=version)
        if row is None:
            return None
        if name in (row.labels or []):
            await Persona.filter(id=row.id).update(labels=[other for other in row.labels if other != name])
            await AuditLog.create(bot_id=bot_id, actor=actor, action=LABEL_ACTION, target=_target(version),
                                  details={"label": name, "set": False})
    return await get_version(bot_id, version)
