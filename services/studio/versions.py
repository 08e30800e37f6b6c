"""Prompt block versions: an immutable snapshot each time a changed block is run; labels, diffs, restore."""

from __future__ import annotations

from dataclasses import dataclass

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from models import PromptProject, PromptVersion, User
from services.studio import projects
from services.studio.compiler import Compiled
from services.studio.projects import PromptBlock, StudioError
from services.versioning import DiffLine, clean_label, diff_lines, moved_label


async def snapshot(project: PromptProject, block: PromptBlock, compiled: Compiled,
                   author: User | None) -> PromptVersion:
    """The version this run uses: the latest one when nothing changed since, else a new one."""
    for _ in range(3):  # another run of the same block may take the next number first
        latest = await PromptVersion.filter(project_id=project.id, block_key=block.id).order_by("-number").first()
        if latest is not None and (latest.template, latest.variables, latest.compiled, latest.name) == \
                (block.template, block.variables, compiled.text, block.name):
            return latest
        try:
            return await PromptVersion.create(
                project=project, block_key=block.id, number=(latest.number + 1) if latest else 1, name=block.name,
                template=block.template, variables=dict(block.variables), compiled=compiled.text, author=author)
        except IntegrityError:
            continue
    raise StudioError("busy", "the block is being run elsewhere; try again")


async def versions_of(project: PromptProject, block_key: str) -> list[PromptVersion]:
    """A block's versions, newest first."""
    return list(await PromptVersion.filter(project_id=project.id, block_key=block_key).order_by("-number"))


async def get_version(owner: User, version_id: int) -> PromptVersion | None:
    """The version when its project is the owner's; None otherwise, as if it did not exist."""
    return await PromptVersion.get_or_none(id=version_id, project__owner_id=owner.id)


async def label(version: PromptVersion, name: str) -> PromptVersion:
    """Put a label on this version, taking it off the block's other version that had it."""
    name = clean_label(name)
    async with in_transaction():
        labelled = await PromptVersion.filter(
            project_id=version.project_id, block_key=version.block_key,
        ).values_list("id", "labels")
        labels_of: dict[int, list[str]] = {int(i): list(labels or []) for i, labels in labelled if labels}
        labels_of.setdefault(version.id, list(version.labels))
        for version_id, labels in moved_label(labels_of, version.id, name).items():
            await PromptVersion.filter(id=version_id).update(labels=labels)
    return await PromptVersion.get(id=version.id)


async def unlabel(version: PromptVersion, name: str) -> PromptVersion:
    version.labels = [label for label in version.labels if label != name.strip().lower()]
    await PromptVersion.filter(id=version.id).update(labels=version.labels)
    return version


async def by_label(project: PromptProject, block_key: str, name: str) -> PromptVersion | None:
    """The version of a block that carries a label (`production`…), if one does."""
    name = name.strip().lower()
    return next((v for v in await versions_of(project, block_key) if name in v.labels), None)


@dataclass(frozen=True)
class VersionDiff:
    version: PromptVersion
    against: PromptVersion | None  # None: against nothing (the first version)
    hunks: list[list[DiffLine]]
    compiled_hunks: list[list[DiffLine]]  # what was sent differs too when only the context changed
    added: int
    removed: int


async def diff(version: PromptVersion, against: PromptVersion | None = None) -> VersionDiff:
    """A version against another of the same block (by default, the one before it)."""
    if against is None:
        against = await PromptVersion.filter(
            project_id=version.project_id, block_key=version.block_key,
            number__lt=version.number).order_by("-number").first()
    elif (against.project_id, against.block_key) != (version.project_id, version.block_key):
        raise StudioError("other_block", "versions of different blocks are not compared")
    hunks = diff_lines(against.template if against else "", version.template)
    lines = [line for hunk in hunks for line in hunk]
    return VersionDiff(version, against, hunks, diff_lines(against.compiled if against else "", version.compiled),
                       sum(line.kind == "added" for line in lines), sum(line.kind == "removed" for line in lines))


async def restore(project: PromptProject, version: PromptVersion, based_on: int) -> PromptProject:
    """Put a version's template and values back into its block (the block again, if it was deleted).

    This changes the project (a new revision), not the history: the next run of the block makes
    a new version if the restored text differs from the latest.
    """
    doc = projects.load(project)
    block = doc.prompt_block(version.block_key)
    if block is None:
        block = PromptBlock(id=version.block_key, name=version.name)
        doc.prompt_blocks.append(block)
    block.template, block.variables, block.name = version.template, dict(version.variables), version.name
    return await projects.save(project, projects.parse_doc(projects.doc_json(doc)), based_on)
