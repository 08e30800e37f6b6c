"""Gettext catalogs: compiled from locales/*.po at start when stale, used by aiogram's I18n."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from aiogram.utils.i18n import I18n
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from services.i18n import SUPPORTED_LOCALES, Translate, TranslatePlural

log = logging.getLogger(__name__)

LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"
DOMAIN = "messages"


def _stale(source: Path, target: Path) -> list[tuple[Path, Path]]:
    pairs = []
    for po_path in sorted(source.glob(f"*/LC_MESSAGES/{DOMAIN}.po")):
        mo_path = target / po_path.relative_to(source).with_suffix(".mo")
        if not mo_path.exists() or mo_path.stat().st_mtime < po_path.stat().st_mtime:
            pairs.append((po_path, mo_path))
    return pairs


def compile_catalogs(source: Path = LOCALES_DIR) -> Path:
    """Compile every .po whose .mo is missing or older; return the directory holding the .mo files.

    The catalogs compile in place; where the source is read-only (an installed package), they
    compile into a cache directory instead, so `pip install . && python -m bot` needs no other step.
    """
    if not _stale(source, source):
        return source
    target = source if os.access(source, os.W_OK) else Path(tempfile.gettempdir()) / "frontdesk-locales"
    for po_path, mo_path in _stale(source, target):
        mo_path.parent.mkdir(parents=True, exist_ok=True)
        with po_path.open("rb") as po_file:
            catalog = read_po(po_file, locale=po_path.parent.parent.name)
        partial = mo_path.with_suffix(".mo.tmp")
        with partial.open("wb") as mo_file:
            write_mo(mo_file, catalog)
        partial.replace(mo_path)
        log.debug("compiled %s", mo_path)
    return target


def create_i18n(default_locale: str) -> I18n:
    return I18n(path=compile_catalogs(), default_locale=default_locale, domain=DOMAIN)


def translator(i18n: I18n) -> Translate:
    def translate(locale: str, message: str) -> str:
        return i18n.gettext(message, locale=locale if locale in SUPPORTED_LOCALES else i18n.default_locale)

    return translate


def plural_translator(i18n: I18n) -> TranslatePlural:
    def translate_plural(locale: str, singular: str, plural: str, n: int) -> str:
        return i18n.gettext(singular, plural, n, locale=locale if locale in SUPPORTED_LOCALES else i18n.default_locale)

    return translate_plural
