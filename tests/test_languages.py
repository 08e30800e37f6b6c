"""Which language a person is spoken to in: one list of languages, and one way of reading a browser's.

A browser sends its languages as a list, most wanted first (`de-DE,de;q=0.9,uz;q=0.8`). The widget's
script used to read the whole list, while the Mini App's pages and the widget's server read only its
first entry, so the same browser got Uzbek in the widget and English in the Mini App.
"""

from __future__ import annotations

import re

import aiohttp
import pytest

from services.i18n import LOCALE_NAMES, SUPPORTED_LOCALES
from services.widget import DEMO_SITE_KEY
from tests.conftest import ROOT, Frontdesk

GERMAN_THEN_UZBEK = "de-DE,de;q=0.9,uz;q=0.8"


async def test_a_mini_app_page_speaks_the_first_language_of_the_browsers_list_we_know(frontdesk: Frontdesk) -> None:
    async with aiohttp.ClientSession() as http, http.get(
            f"{frontdesk.url}/app/login", headers={"Accept-Language": GERMAN_THEN_UZBEK}) as page:
        html = await page.text()
    assert re.search(r'<html lang="(\w+)"', html)[1] == "uz"  # type: ignore[index]


async def test_the_widget_speaks_the_first_language_of_the_browsers_list_we_know(frontdesk: Frontdesk) -> None:
    async with aiohttp.ClientSession() as http:
        # What widget.js sends: the page's data-lang (none here), then navigator.languages.
        async with http.get(f"{frontdesk.url}/widget/api/site",
                            params={"site": DEMO_SITE_KEY, "lang": "de-DE,uz-UZ"}) as asked:
            assert (await asked.json())["lang"] == "uz"
        async with http.get(f"{frontdesk.url}/widget/api/site", params={"site": DEMO_SITE_KEY},
                            headers={"Accept-Language": GERMAN_THEN_UZBEK}) as asked:
            body = await asked.json()
    assert body["lang"] == "uz"
    assert body["strings"]["send"] == "Yuborish"


@pytest.mark.parametrize("frontdesk_settings", [{"DEFAULT_LOCALE": "ru"}], indirect=True)
async def test_a_browser_in_no_language_we_speak_hears_the_deployments_default(frontdesk: Frontdesk) -> None:
    async with aiohttp.ClientSession() as http, http.get(
            f"{frontdesk.url}/widget/api/site", params={"site": DEMO_SITE_KEY, "lang": "de-DE,fr"}) as asked:
        assert (await asked.json())["lang"] == "ru"


def test_every_language_we_speak_has_a_name_and_a_catalog() -> None:
    assert tuple(LOCALE_NAMES) == SUPPORTED_LOCALES
    catalogs = {path.parent.parent.name for path in (ROOT / "locales").glob("*/LC_MESSAGES/messages.po")}
    assert catalogs == set(SUPPORTED_LOCALES)
