"""What arrives from outside, read one way: JSON (the API's bodies, the widget's and live socket's
frames, Telegram's updates) and row ids (in paths, queries and frames).

One JSON parser refuses what the standard library would let through to break later.
`json.loads` alone recurses once per nesting level (deep input raises RecursionError, not
ValueError), accepts `NaN`/`Infinity` (which no database's JSON column takes back), and decodes
`"\\ud800"` into a lone surrogate that cannot be encoded to UTF-8 (the database write fails).
Every one of those is a ValueError here, so each caller's "not valid JSON" answer covers it.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_ROW_ID = 2**63 - 1  # the largest id a BIGINT column holds
MAX_JSON_DEPTH = 32  # no request of ours nests deeper than about 8 (a studio project's document)
_SURROGATE = re.compile("[\ud800-\udfff]")


class JsonRefused(ValueError):
    """Well-formed or not, JSON that is not taken."""


def _no_constants(name: str) -> Any:
    raise JsonRefused(f"{name} is not a JSON number")


def parse_json(raw: bytes | str) -> Any:
    """The value, or ValueError: not UTF-8, not JSON, nested deeper than MAX_JSON_DEPTH, NaN or
    Infinity, or a string holding a lone surrogate."""
    try:
        value = json.loads(raw, parse_constant=_no_constants)
    except RecursionError as error:
        raise JsonRefused("nested too deeply") from error
    _check(value)
    return value


def _check(value: Any) -> None:
    """Depth and strings, without recursion (the value may be as deep as the parser allowed)."""
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            if not item.isascii() and _SURROGATE.search(item):
                raise JsonRefused("a string holds a lone surrogate")
        elif isinstance(item, dict | list):
            if depth >= MAX_JSON_DEPTH:
                raise JsonRefused(f"nested deeper than {MAX_JSON_DEPTH}")
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)


def row_id(value: object) -> int | None:
    """A row id from a path, a query or a frame: a whole number a database column holds, else None.
    Only ASCII digits: "²".isdigit() holds and int() refuses it; "١٢" would be read as 12."""
    if isinstance(value, str):
        value = int(value) if value.isascii() and value.isdigit() and len(value) <= 19 else None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_ROW_ID:
        return value
    return None
