"""Compiling a prompt block: its `{{variables}}` filled and its `{{@context}}` references expanded.

A template says `{{name}}` for a variable and `{{@Block name}}` for the selected items of the
context block of that name (case does not matter); `\\{{` writes a literal `{{`. Pure functions:
what the editor shows, what a run sends and what a version stores are the same text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

MAX_COMPILED_CHARS = 400_000  # far beyond any model's context window; past it something is wrong
_PLACEHOLDER = re.compile(r"\\\{\{|\{\{\s*(@?)([^{}]*?)\s*\}\}")
_VARIABLE_NAME = re.compile(r"[^\W\d]\w{0,63}")


class ContextItemLike(Protocol):
    @property
    def title(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def selected(self) -> bool: ...


class ContextBlockLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def items(self) -> Sequence[ContextItemLike]: ...


@dataclass(frozen=True)
class UsedContext:
    block: str
    items: int  # selected items put into the prompt


@dataclass(frozen=True)
class Compiled:
    text: str
    variables: list[str]  # every variable the template names, in order of first use
    missing: list[str]  # named but without a value: left as `{{name}}` in the text
    unknown_context: list[str]  # `{{@name}}` with no context block of that name: left as written
    bad_placeholders: list[str]  # `{{…}}` that are neither a variable nor a context reference
    context: list[UsedContext] = field(default_factory=list)

    @property
    def chars(self) -> int:
        return len(self.text)

    @property
    def ready(self) -> bool:
        """Whether it can be sent to a model as it is."""
        return not (self.missing or self.unknown_context or self.bad_placeholders) and \
            len(self.text) <= MAX_COMPILED_CHARS and bool(self.text.strip())


def variable_names(template: str) -> list[str]:
    """The variables a template names, in order of first use (for the editor's value fields)."""
    names: dict[str, None] = {}
    for match in _PLACEHOLDER.finditer(template):
        if match.group(0) != "\\{{" and not match.group(1) and _VARIABLE_NAME.fullmatch(match.group(2)):
            names.setdefault(match.group(2))
    return list(names)


def render_context(block: ContextBlockLike) -> tuple[str, int]:
    """The block's selected items, each under its title when it has one, a blank line between them."""
    parts = []
    for item in block.items:
        if not item.selected or not (item.title.strip() or item.text.strip()):
            continue
        title, text = item.title.strip(), item.text.strip()
        parts.append(f"## {title}\n{text}" if title and text else title or text)
    return "\n\n".join(parts), len(parts)


def compile_template(template: str, variables: Mapping[str, str],
                     context_blocks: Sequence[ContextBlockLike]) -> Compiled:
    by_name = {block.name.strip().casefold(): block for block in context_blocks}
    named: dict[str, None] = {}
    missing: dict[str, None] = {}
    unknown: dict[str, None] = {}
    bad: dict[str, None] = {}
    rendered: dict[str, tuple[str, int]] = {}

    def replace(match: re.Match[str]) -> str:
        whole = match.group(0)
        if whole == "\\{{":
            return "{{"
        is_context, name = match.group(1) == "@", match.group(2)
        if is_context:
            block = by_name.get(name.casefold())
            if block is None:
                unknown.setdefault(name)
                return whole
            if block.name not in rendered:
                rendered[block.name] = render_context(block)
            return rendered[block.name][0]
        if not _VARIABLE_NAME.fullmatch(name):
            bad.setdefault(whole)
            return whole
        named.setdefault(name)
        value = variables.get(name, "")
        if not value.strip():
            missing.setdefault(name)
            return whole
        return value

    text = _PLACEHOLDER.sub(replace, template)
    used = [UsedContext(name, count) for name, (_, count) in rendered.items()]
    return Compiled(text, list(named), list(missing), list(unknown), list(bad), used)
