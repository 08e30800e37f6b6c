"""The own-API-keys page in a real browser (Debian's Chromium via Playwright), opened as Telegram would
open it for a customer: add a key the provider (the fake AI) accepts, see it as ••••last4, see why a
wrong one is refused, delete it. Screenshots in the light and dark themes go to SCREENSHOT_DIR."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, expect
from tgsim import Simulator

from models import ProviderKey
from tests.conftest import Frontdesk
from tests.fake_ai import FakeAI
from tests.test_miniapp_browser import browser, shot, telegram_page

__all__ = ["browser"]  # the fixture, shared with the Mini App's other browser tests
pytestmark = pytest.mark.browser
OWN_KEY = "sk-own-Zq8v3LmN0pQr5tUw7yA1cD9f"


# The provider is the fake AI on 127.0.0.1, as on a laptop whose operator allows a local model server.
@pytest.mark.parametrize("frontdesk_settings", [{"ALLOW_PRIVATE_PROVIDERS": "true"}], indirect=True)
async def test_a_customer_adds_a_key_sees_its_last_four_and_deletes_it(
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI, browser: Browser) -> None:
    ai.script.api_keys = {"test-key", OWN_KEY}
    ai.script.models = {"main-model", "backup-model", "gpt-4o-mini", "gpt-4.1"}
    ann = sim.create_user("Ann")
    page = await telegram_page(browser, sim, ann["id"])
    await page.goto(frontdesk.url + "/app/studio/keys")
    await expect(page.get_by_role("link", name="Prompt studio")).to_have_attribute("aria-current", "page")
    await expect(page.locator("#keys-empty")).to_have_text(
        "No keys yet. Add one to run prompts on your own account with a provider.")
    key_field = page.locator("input[name=api_key]")
    assert await key_field.get_attribute("type") == "password"
    assert await key_field.get_attribute("autocomplete") == "off"

    form = page.locator("#new-key")
    await form.locator("input[name=name]").fill("My OpenAI")
    await form.locator("input[name=base_url]").fill(ai.base_url)
    await form.locator("textarea[name=models]").fill("gpt-4o-mini\ngpt-4.1")
    await key_field.fill("sk-wrong-Zq8v3LmN0pQr5tUw7yA1")
    await form.get_by_role("button", name="Check and save").click()
    await expect(page.locator("#check-result")).to_contain_text("The provider refused this API key (401).")
    assert await ProviderKey.all().count() == 0
    await shot(page, "studio-keys-refused-light")

    await key_field.fill(OWN_KEY)
    await form.get_by_role("button", name="Check and save").click()
    await expect(page.locator("#check-result")).to_have_text("The provider accepted the key. It is saved.")
    row = page.locator("#key-list li")
    await expect(row).to_have_count(1)
    await expect(row.locator(".name")).to_have_text("My OpenAI")
    await expect(row.locator(".last4")).to_have_text("••••cD9f")
    await expect(row.locator(".models")).to_have_text("gpt-4o-mini, gpt-4.1")
    await expect(key_field).to_have_value("")  # the form forgets the key once it is stored
    assert OWN_KEY not in await page.content()
    await expect(page.locator("#keys-count")).to_have_text("1 of 10 keys")
    await shot(page, "studio-keys-light")

    dark = await telegram_page(browser, sim, ann["id"], "dark")
    await dark.goto(frontdesk.url + "/app/studio/keys")
    await expect(dark.locator("#key-list li .last4")).to_have_text("••••cD9f")
    await shot(dark, "studio-keys-dark")

    await row.get_by_role("button", name="Delete").click()
    await expect(page.locator("#key-list li")).to_have_count(0)
    await expect(page.locator("#toast")).to_have_text("The key was deleted.")
    assert await page.evaluate("window.__FD_CONFIRMS__") == [
        "Delete the key “My OpenAI”? Runs made with it stay in your history."]
    assert await ProviderKey.all().count() == 0
