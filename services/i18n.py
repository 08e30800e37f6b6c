"""Translation as the domain sees it: a function of (locale, message id), given by the composition root."""

from __future__ import annotations

from collections.abc import Callable

SUPPORTED_LOCALES = ("en", "ru", "uz")

Translate = Callable[[str, str], str]
"""translate(locale, message_id) -> the message in that locale."""


def N_(message: str) -> str:
    """Mark a message for extraction; it is translated later, in the reader's locale."""
    return message


def pick_locale(*candidates: str | None, default: str) -> str:
    """The first supported locale among the candidates (`ru-RU` counts as `ru`), else the default."""
    for candidate in candidates:
        code = (candidate or "").split("-")[0].split("_")[0].lower()
        if code in SUPPORTED_LOCALES:
            return code
    return default
