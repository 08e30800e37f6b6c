"""Rules of the codebase's shape that a reviewer would otherwise have to remember."""

from __future__ import annotations

import ast
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from services.i18n import SUPPORTED_LOCALES
from tests.conftest import ROOT


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_services_import_neither_aiogram_nor_aiohttp() -> None:
    offenders = {path.name: _imports(path) & {"aiogram", "aiohttp", "bot", "handlers", "miniapp"}
                 for path in (ROOT / "services").rglob("*.py")}
    assert {name: found for name, found in offenders.items() if found} == {}


def test_models_import_no_other_layer() -> None:
    for path in (ROOT / "models").glob("*.py"):
        assert not _imports(path) & {"aiogram", "aiohttp", "bot", "handlers", "services", "miniapp"}, path


def _source_messages() -> set[str]:
    found: set[str] = set()
    for directory in ("bot", "handlers", "services", "miniapp"):
        for _, _, message, _, _ in extract_from_dir(
                ROOT / directory, method_map=[("**.py", "python")],
                keywords={"_": None, "N_": None, "__": None, "N_plural": (1, 2)}):
            found.add(message if isinstance(message, str) else message[0])
    return found


def test_every_user_facing_string_is_translated_in_every_language() -> None:
    source = _source_messages()
    for locale in SUPPORTED_LOCALES:
        with (ROOT / "locales" / locale / "LC_MESSAGES" / "messages.po").open("rb") as po:
            # A message with plural forms is keyed by its singular and holds every form of the language.
            catalog = {m.id if isinstance(m.id, str) else m.id[0]:
                       (m.string,) if isinstance(m.string, str) else tuple(m.string or ()) for m in read_po(po) if m.id}
        assert source - catalog.keys() == set(), f"{locale}: run `make messages` and translate"
        if locale != "en":
            untranslated = {msgid for msgid in source if not all(catalog[msgid])}
            assert untranslated == set(), f"{locale} lacks translations"
            for msgid in source:
                placeholders = sorted(part.split("}")[0] for part in msgid.split("{")[1:])
                for form in catalog[msgid]:
                    assert sorted(part.split("}")[0] for part in form.split("{")[1:]) == placeholders, msgid


def _calls(path: Path) -> list[tuple[str, str, int]]:
    """Every `x.y(...)` call in a file: the called attribute, the name (or attribute) it is called on, the line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            name = owner.id if isinstance(owner, ast.Name) else owner.attr if isinstance(owner, ast.Attribute) else ""
            found.append((node.func.attr, name, node.lineno))
    return found


def test_adapters_leave_an_events_consequences_to_its_listeners() -> None:
    """Handlers and views call one service function per event; the outbox's wake-up, the inbox feed and the
    widget's push follow from the event (services/listeners.py), never from the adapter."""
    offenders = []
    for directory in ("handlers", "miniapp"):
        for path in (ROOT / directory).rglob("*.py"):
            for attr, owner, line in _calls(path):
                if attr == "wake" or (attr in ("changed", "customer_wrote") and "feed" in owner) or (
                        attr in ("message", "status") and owner.endswith("live")):
                    offenders.append(f"{path.relative_to(ROOT)}:{line} {owner}.{attr}()")
    assert offenders == []


FLOW_MODULES = ("answering.py", "desk.py", "flow.py", "listeners.py", "handoff.py", "managers.py")


def test_the_conversation_flow_does_not_branch_on_the_channel() -> None:
    """Telegram and the widget differ only in services/channels.py: the flows ask a conversation's channel."""
    offenders = []
    for name in FLOW_MODULES:
        tree = ast.parse((ROOT / "services" / name).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("widget_visitor_id", "WIDGET", "TELEGRAM"):
                offenders.append(f"services/{name}:{node.lineno} .{node.attr}")
            if isinstance(node, ast.Compare) and isinstance(node.left, ast.Attribute) and \
                    node.left.attr == "telegram_id" and any(isinstance(c, ast.Constant) and c.value is None
                                                            for c in node.comparators):
                offenders.append(f"services/{name}:{node.lineno} telegram_id is None")
    assert offenders == []


def test_job_kinds_come_from_their_enum() -> None:
    """Every job the product queues names a `JobKind` member (services/outbox.py), never a string of its own."""
    offenders = []
    for directory in ("services", "bot", "handlers", "miniapp"):
        for path in (ROOT / directory).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                        node.func.attr == "enqueue" and len(node.args) > 1 and isinstance(node.args[1], ast.Constant):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []
