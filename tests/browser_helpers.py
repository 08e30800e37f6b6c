"""What the Mini App's browser tests share: Debian's Chromium, and a page as Telegram's webview shows it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, Route, async_playwright
from tgsim import Simulator

from tests.conftest import ROOT
from tests.test_widget_browser import CHROMIUM, CHROMIUM_ARGS

STUB = (ROOT / "tests" / "assets" / "telegram-web-app-stub.js").read_text()
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
THEMES: dict[str, dict[str, str]] = {
    "light": {"bg_color": "#ffffff", "text_color": "#000000", "hint_color": "#999999", "link_color": "#2481cc",
              "button_color": "#2481cc", "button_text_color": "#ffffff", "secondary_bg_color": "#efeff3",
              "section_bg_color": "#ffffff", "accent_text_color": "#2481cc", "destructive_text_color": "#e53935",
              "section_separator_color": "#e7e7e7"},
    "dark": {"bg_color": "#17212b", "text_color": "#f5f5f5", "hint_color": "#708499", "link_color": "#6ab3f3",
             "button_color": "#5288c1", "button_text_color": "#ffffff", "secondary_bg_color": "#232e3c",
             "section_bg_color": "#17212b", "accent_text_color": "#6ab2f2", "destructive_text_color": "#ec3942",
             "section_separator_color": "#111921"},
}


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless (never a downloaded build)."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


async def webview_context(browser: Browser, sim: Simulator, user_id: int, *, themes: dict[str, Any] | None = None,
                          color_scheme: str = "light", **options: Any) -> BrowserContext:
    """A browser context in which telegram-web-app.js is our stub, signed in as `user_id` by tgsim's initData."""
    context = await browser.new_context(color_scheme=color_scheme, **options)  # type: ignore[arg-type]
    config = {"initData": sim.init_data(user_id), "themeParams": themes or {}, "colorScheme": color_scheme}

    async def serve_stub(route: Route) -> None:
        await route.fulfill(status=200, content_type="application/javascript",
                            body=f"window.__FD_TELEGRAM__ = {json.dumps(config)};\n{STUB}")

    await context.route("https://telegram.org/**", serve_stub)
    return context


async def webview_page(browser: Browser, sim: Simulator, user_id: int, **options: Any) -> Page:
    return await (await webview_context(browser, sim, user_id, **options)).new_page()
