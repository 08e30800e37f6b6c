"""A customer's prompt projects: their document, limits, autosave, copies, order, export and import.

A project is one JSON document (its context blocks and prompt blocks) saved whole, with a revision
number as its lock: the editor sends the revision it edited, and a save based on an older one is
refused ("stale"), so two open pages never overwrite each other unseen.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator, model_validator
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from models import PromptProject, PromptVersion, User
from services.studio.compiler import Compiled, compile_template
from services.versioning import LabelError, clean_label

MAX_PROJECTS = 100  # per customer
MAX_PROJECT_BYTES = 1_000_000  # the document as JSON
MAX_BLOCKS = 50  # context blocks, and prompt blocks, per project
MAX_ITEMS = 500  # per context block
MAX_TEXT_CHARS = 100_000  # one item's text, one template, one variable's value
MAX_VARIABLES = 100  # per prompt block
EXPORT_FORMAT = "frontdesk-prompt-project"
EXPORT_VERSION = 1

Key = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS)]
_VARIABLE = re.compile(r"[^\W\d]\w{0,63}")


class StudioError(ValueError):
    """A change that cannot be made as asked; `code` says why, `params` fill its message."""

    def __init__(self, code: str, message: str, **params: object) -> None:
        super().__init__(message)
        self.code = code
        self.params = params


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ContextItem(_Strict):
    id: Key
    title: Annotated[str, StringConstraints(max_length=200)] = ""
    text: Text = ""
    selected: bool = True


class ContextBlock(_Strict):
    id: Key
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=60,
                                           pattern=r"^[^{}@]+$")]
    items: list[ContextItem] = Field(default_factory=list, max_length=MAX_ITEMS)


class PromptBlock(_Strict):
    id: Key
    name: Name
    template: Text = ""
    variables: dict[str, Text] = Field(default_factory=dict, max_length=MAX_VARIABLES)
    model: Annotated[str, StringConstraints(max_length=200)] = ""  # the model chosen for counts and runs

    @field_validator("variables")
    @classmethod
    def _names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not _VARIABLE.fullmatch(name):
                raise ValueError(f"{name!r} is not a variable name")
        return value


class ProjectDoc(_Strict):
    context_blocks: list[ContextBlock] = Field(default_factory=list, max_length=MAX_BLOCKS)
    prompt_blocks: list[PromptBlock] = Field(default_factory=list, max_length=MAX_BLOCKS)

    @model_validator(mode="after")
    def _unique(self) -> ProjectDoc:
        keys = [block.id for block in self.context_blocks] + [block.id for block in self.prompt_blocks]
        keys += [item.id for block in self.context_blocks for item in block.items]
        if len(keys) != len(set(keys)):
            raise ValueError("block and item ids must be unique in a project")
        names = [block.name.casefold() for block in self.context_blocks]
        if len(names) != len(set(names)):
            raise ValueError("context block names must be unique in a project (templates refer to them)")
        return self

    def prompt_block(self, key: str) -> PromptBlock | None:
        return next((block for block in self.prompt_blocks if block.id == key), None)


def new_key() -> str:
    return secrets.token_urlsafe(6)


def starter_doc() -> ProjectDoc:
    """A new project: one empty context block and one prompt block that uses it."""
    context = ContextBlock(id=new_key(), name="Context")
    return ProjectDoc(context_blocks=[context], prompt_blocks=[PromptBlock(
        id=new_key(), name="Prompt", template="{{@Context}}\n\n{{task}}")])


def parse_doc(data: object) -> ProjectDoc:
    """The document as stored; raises StudioError("invalid", …) naming the first problems."""
    try:
        doc = ProjectDoc.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(str(part) for part in e['loc']) or 'document'}: {e['msg']}"
                             for e in error.errors()[:5])
        raise StudioError("invalid", f"the project is not valid: {problems}", problems=problems) from error
    _fits(doc)
    return doc


def doc_json(doc: ProjectDoc) -> dict[str, Any]:
    return doc.model_dump(mode="json")


def _size(doc: ProjectDoc) -> int:
    """Bytes of the document as compact UTF-8 JSON (pydantic's serializer: a few times faster than
    json.dumps of the dumped dict, and the same bytes)."""
    return len(doc.model_dump_json().encode())


def _fits(doc: ProjectDoc) -> int:
    size = _size(doc)
    if size > MAX_PROJECT_BYTES:
        raise StudioError("too_large", f"a project holds at most {MAX_PROJECT_BYTES // 1000} KB",
                          limit_kb=MAX_PROJECT_BYTES // 1000, size_kb=size // 1000)
    return size


def load(project: PromptProject) -> ProjectDoc:
    return ProjectDoc.model_validate(project.data)


# --- projects ------------------------------------------------------------------------------------------


async def projects_of(owner: User) -> list[PromptProject]:
    return list(await PromptProject.filter(owner_id=owner.id).order_by("position", "id"))


async def get_project(owner: User, project_id: int) -> PromptProject | None:
    """The project when it is the owner's; None for anyone else's, as if it did not exist."""
    return await PromptProject.get_or_none(id=project_id, owner_id=owner.id)


async def create_project(owner: User, name: str, doc: ProjectDoc | None = None) -> PromptProject:
    doc = doc if doc is not None else starter_doc()
    size = _fits(doc)
    async with in_transaction():
        count = await PromptProject.filter(owner_id=owner.id).count()
        if count >= MAX_PROJECTS:
            raise StudioError("too_many_projects", f"a customer has at most {MAX_PROJECTS} projects",
                              limit=MAX_PROJECTS)
        # New projects come first: what one works on now is at the top.
        await PromptProject.filter(owner_id=owner.id).update(position=F("position") + 1)
        return await PromptProject.create(bot_id=owner.bot_id, owner=owner,
                                          name=_name(name), position=0, data=doc_json(doc), size=size)


def _name(name: str) -> str:
    name = " ".join(name.split())
    if not name:
        raise StudioError("empty_name", "a project needs a name")
    return name[:120]


async def save(project: PromptProject, doc: ProjectDoc, based_on: int) -> PromptProject:
    """Autosave: store the document if nobody saved since revision `based_on`; raise "stale" otherwise."""
    size = _fits(doc)
    now = datetime.now(UTC)
    # The model itself goes to the JSON field, which serializes it with pydantic (not json.dumps).
    changed = await PromptProject.filter(id=project.id, revision=based_on).update(
        data=doc, size=size, revision=based_on + 1, updated_at=now)
    if not changed:
        current = await PromptProject.get(id=project.id)
        raise StudioError("stale", "the project was changed elsewhere", revision=current.revision)
    # What was stored is known: the row is not read back (with its whole document) to say so.
    project.data, project.size, project.revision, project.updated_at = doc_json(doc), size, based_on + 1, now
    return project


async def rename(project: PromptProject, name: str) -> PromptProject:
    project.name = _name(name)
    await project.save(update_fields=["name", "updated_at"])
    return project


async def duplicate(owner: User, project: PromptProject, copy_name: str) -> PromptProject:
    return await create_project(owner, copy_name, load(project))


async def delete(project: PromptProject) -> None:
    await project.delete()  # its versions and runs go with it


async def reorder(owner: User, ids: list[int]) -> list[PromptProject]:
    """Put the owner's projects in this order; projects left out keep their order after these."""
    projects = {project.id: project for project in await projects_of(owner)}
    if len(set(ids)) != len(ids) or not set(ids) <= projects.keys():
        raise StudioError("bad_order", "the order names projects that are not yours, or one twice")
    ordered = [projects[i] for i in ids] + [p for p in projects.values() if p.id not in set(ids)]
    async with in_transaction():
        for position, project in enumerate(ordered):
            if project.position != position:
                project.position = position
                await PromptProject.filter(id=project.id).update(position=position)
    return ordered


async def add_prompt_block(project: PromptProject, name: str, template: str) -> tuple[PromptProject, str]:
    """Append a prompt block (from a template, from the bot) to a project; its key is returned too.

    Done on the server's latest revision, so an open editor sees it as a change made elsewhere.
    """
    for _ in range(5):
        current = await PromptProject.get(id=project.id)
        doc = load(current)
        block = PromptBlock(id=new_key(), name=_name(name), template=template[:MAX_TEXT_CHARS])
        if len(doc.prompt_blocks) >= MAX_BLOCKS:
            raise StudioError("invalid", f"a project has at most {MAX_BLOCKS} prompt blocks",
                              problems=f"at most {MAX_BLOCKS} prompt blocks")
        doc.prompt_blocks.append(block)
        try:
            return await save(current, doc, current.revision), block.id
        except StudioError as error:
            if error.code != "stale":
                raise
    raise StudioError("busy", "the project is being changed elsewhere; try again")


def compile_block(doc: ProjectDoc, block_key: str) -> Compiled:
    block = doc.prompt_block(block_key)
    if block is None:
        raise StudioError("no_block", "the project has no such prompt block")
    return compile_template(block.template, block.variables, doc.context_blocks)


# --- export and import ---------------------------------------------------------------------------------


async def export(project: PromptProject) -> dict[str, Any]:
    """The project and its versions (labels included), as a file to keep or to import elsewhere."""
    versions = await PromptVersion.filter(project_id=project.id).order_by("block_key", "number")
    return {
        "format": EXPORT_FORMAT, "version": EXPORT_VERSION, "name": project.name, "data": project.data,
        "versions": [{"block": v.block_key, "number": v.number, "name": v.name, "template": v.template,
                      "variables": v.variables, "compiled": v.compiled, "labels": v.labels,
                      "created_at": v.created_at.isoformat()} for v in versions],
    }


class _ExportedVersion(_Strict):
    block: Key
    number: Annotated[int, Field(ge=1)]
    name: Name
    template: Text
    variables: dict[str, Text] = Field(default_factory=dict, max_length=MAX_VARIABLES)
    compiled: Annotated[str, StringConstraints(max_length=400_000)] = ""
    labels: list[str] = Field(default_factory=list, max_length=10)
    created_at: datetime | None = None


class _Export(_Strict):
    format: str
    version: int
    name: Name
    data: dict[str, Any]
    versions: list[_ExportedVersion] = Field(default_factory=list, max_length=5000)

    @model_validator(mode="after")
    def _versions_once(self) -> _Export:
        numbers = [(version.block, version.number) for version in self.versions]
        if len(numbers) != len(set(numbers)):
            raise ValueError("a block's version numbers must be unique")
        for version in self.versions:
            version.labels = list(dict.fromkeys(clean_label(label) for label in version.labels))
        return self


async def import_project(owner: User, payload: object) -> PromptProject:
    """A new project from an exported file; nothing is stored unless all of it is valid."""
    try:
        exported = _Export.model_validate(payload)
    except (ValidationError, LabelError) as error:
        first = error.errors()[0]["msg"] if isinstance(error, ValidationError) else str(error)
        raise StudioError("invalid", f"not a project file: {first}",
                          problems=first) from error
    if exported.format != EXPORT_FORMAT or exported.version != EXPORT_VERSION:
        raise StudioError("invalid", "not a project file of this format", problems="format")
    doc = parse_doc(exported.data)
    async with in_transaction():
        project = await create_project(owner, exported.name, doc)
        for version in exported.versions:
            await PromptVersion.create(project=project, block_key=version.block, number=version.number,
                                       name=version.name, template=version.template, variables=version.variables,
                                       compiled=version.compiled, labels=version.labels, author=None)
    return project
