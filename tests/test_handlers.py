"""What every handler in the dispatcher's tree must be, checked over the tree create_dispatcher builds."""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable, Iterator
from typing import Any, cast

from aiogram import Dispatcher, Router
from aiogram.dispatcher.event.handler import CallableObject
from aiogram.fsm.storage.memory import MemoryStorage

from bot.fleet import Fleet, TenantMiddleware
from bot.i18n import create_i18n
from bot.middlewares import HandlerData, WorkflowData
from bot.settings import Settings
from bot.telegram import create_dispatcher
from services.secrets_box import SecretBox


def _dispatcher() -> Dispatcher:
    # Only the tree is looked at: no handler runs, so the workflow data need not be real.
    fleet = Fleet(Settings(_env_file=None), create_i18n("en"), lambda locale, text: text, SecretBox(bytes(32)))
    return create_dispatcher(create_i18n("en"), MemoryStorage(), TenantMiddleware(fleet), **cast(WorkflowData, {}))


def _routers(router: Router) -> Iterator[Router]:
    yield router
    for child in router.sub_routers:
        yield from _routers(child)


def _ours(callable_: CallableObject) -> bool:
    return not getattr(inspect.unwrap(callable_.callback), "__module__", "").startswith("aiogram")


def _handlers() -> Iterator[tuple[str, CallableObject]]:
    for router in _routers(_dispatcher()):
        for observer in router.observers.values():
            for handler in observer.handlers:
                if _ours(handler):
                    yield f"{router.name}.{observer.event_name}", handler


def _filters() -> Iterator[tuple[str, CallableObject]]:
    for router in _routers(_dispatcher()):
        for observer in router.observers.values():
            # The router's own filters (observer.filter(...)) sit on a private handler object.
            filters = list(observer._handler.filters or [])
            for handler in observer.handlers:
                filters.extend(handler.filters or [])
            yield from ((f"{router.name}.{observer.event_name}", f) for f in filters)


def test_every_name_a_handler_or_filter_takes_is_in_the_dispatchers_data() -> None:
    """A handler asking for a name nobody provides fails on its first update (a TypeError, a 500)."""
    known = HandlerData.__required_keys__ | HandlerData.__optional_keys__
    asked = {(where, name) for where, callable_ in [*_handlers(), *_filters()]
             for name in list(inspect.signature(inspect.unwrap(callable_.callback)).parameters)[1:]}
    assert asked, "no handlers found"
    assert {(where, name) for where, name in asked if name not in known} == set()


def _returns_a_value(function: Callable[..., Any]) -> bool:
    """Whether the function's own body (not a nested function's) has a `return <value>` (other than None)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    pending = list(ast.iter_child_nodes(tree.body[0]))
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Return) and node.value is not None and \
                not (isinstance(node.value, ast.Constant) and node.value.value is None):
            return True
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            pending.extend(ast.iter_child_nodes(node))
    return False


def test_no_handler_returns_a_telegram_method() -> None:
    """`return message.answer(...)` would ride the webhook's response, which we never send: the customer
    would get nothing (long polling would send it). A handler returns None, and says so."""
    offenders = []
    for where, handler in _handlers():
        function = inspect.unwrap(handler.callback)
        if inspect.signature(function).return_annotation not in (None, "None") or _returns_a_value(function):
            offenders.append(f"{where}: {getattr(function, '__qualname__', function)}")
    assert offenders == []
