"""Translation as the domain sees it: a function of (locale, message id), given by the composition root."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, get_args

# The languages Frontdesk speaks: the one list the bot, the Mini App, the widget, the catalogs and
# DEFAULT_LOCALE's check all read. A new language is a name here plus its locales/<code>/ catalog.
Locale = Literal["en", "ru", "uz"]
SUPPORTED_LOCALES: tuple[Locale, ...] = get_args(Locale)
LOCALE_NAMES: dict[str, str] = {"en": "English", "ru": "Русский", "uz": "Oʻzbekcha"}  # each in itself

Translate = Callable[[str, str], str]
"""translate(locale, message_id) -> the message in that locale."""

TranslatePlural = Callable[[str, str, str, int], str]
"""translate_plural(locale, singular, plural, n) -> the form for n in that locale (gettext's ngettext)."""


def N_(message: str) -> str:
    """Mark a message for extraction; it is translated later, in the reader's locale."""
    return message


def N_plural(singular: str, plural: str) -> tuple[str, str]:
    """Mark a message with plural forms for extraction (`make messages` reads N_plural:1,2)."""
    return singular, plural


def pick_locale(*candidates: str | None, default: str) -> str:
    """The first supported locale among the candidates (`ru-RU` counts as `ru`), else the default.

    A candidate may be a list, as browsers send one (`de-DE,de;q=0.9,ru;q=0.8`, most wanted first):
    every surface reads a browser's languages through here, so each settles on the same one.
    """
    for candidate in candidates:
        for tag in (candidate or "").split(","):
            code = tag.split(";")[0].strip().split("-")[0].split("_")[0].lower()
            if code in SUPPORTED_LOCALES:
                return code
    return default
