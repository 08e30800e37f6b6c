"""`python -m bot site add|list|remove`: the operator registers a website, and only it may embed the widget."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from tgsim import Simulator

from models import WidgetSite
from tests.conftest import Frontdesk, free_port, frontdesk_environment, running_frontdesk
from tests.desk_helpers import manager_desk
from tests.fake_ai import FakeAI
from tests.miniapp_helpers import app_client
from tests.test_process import _run_cli
from tests.widget_helpers import open_widget


async def test_a_site_added_from_the_shell_serves_its_origins_until_it_is_removed(
        frontdesk: Frontdesk, tmp_path: Path) -> None:
    database_url = frontdesk.settings.database_url
    added = _run_cli(tmp_path, database_url, "site", "add", "--origin", "https://Shop.example:443/",
                     "--origin", "http://localhost:3000", "--title", "Bean There", "--color", "#7c2d12")
    assert added.returncode == 0, added.stderr
    lines = added.stdout.strip().splitlines()
    key = lines[-1]
    assert key.startswith("site_")
    assert f'data-site="{key}"' in added.stdout
    assert "origins: http://localhost:3000, https://shop.example" in lines

    listed = _run_cli(tmp_path, database_url, "site", "list")
    assert f"{key}\tBean There\thttp://localhost:3000 https://shop.example" in listed.stdout.splitlines()

    async with aiohttp.ClientSession() as http:
        visitor, welcome = await open_widget(http, frontdesk.url, site=key, origin="https://shop.example")
        assert welcome["type"] == "welcome"
        await visitor.socket.close()
        async with http.get(f"{frontdesk.url}/widget/api/site?site={key}",
                            headers={"Origin": "http://localhost:3000"}) as response:
            config = await response.json()
            assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
        assert config["site"]["title"] == "Bean There"
        assert config["site"]["color"] == "#7c2d12"
        stranger, refused = await open_widget(http, frontdesk.url, site=key, origin="https://shop.example.evil.com")
        assert refused["code"] == "origin_not_allowed"
        await stranger.socket.close()

        removed = _run_cli(tmp_path, database_url, "site", "remove", key)
        assert removed.returncode == 0, removed.stderr
        gone, refused = await open_widget(http, frontdesk.url, site=key, origin="https://shop.example")
        assert refused["code"] == "unknown_site"
        await gone.socket.close()
    again = _run_cli(tmp_path, database_url, "site", "remove", key)
    assert again.returncode == 1
    assert "no site has the key" in again.stderr


def test_a_site_needs_real_origins_and_colours(database_url: str, tmp_path: Path) -> None:
    bad_origin = _run_cli(tmp_path, database_url, "site", "add", "--origin", "shop.example")
    assert bad_origin.returncode == 1
    assert "'shop.example' is not an origin" in bad_origin.stderr
    bad_colour = _run_cli(tmp_path, database_url, "site", "add", "--origin", "https://shop.example",
                          "--color", "red; background:url(x)")
    assert bad_colour.returncode == 1
    assert "is not a colour" in bad_colour.stderr
    assert _run_cli(tmp_path, database_url, "site", "list").stdout.strip() == ""


@pytest.mark.parametrize("frontdesk_settings", [{}, {"APP_ENV": "production", "DEMO_SITE": "true"}], indirect=True)
async def test_the_demo_chat_is_at_the_root_in_development_or_when_the_operator_turns_it_on(
        frontdesk: Frontdesk) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(frontdesk.url + "/") as page:
            assert page.status == 200
            assert 'data-site="demo"' in await page.text()
        visitor, welcome = await open_widget(http, frontdesk.url)
        assert welcome["type"] == "welcome"
        await visitor.socket.close()


@pytest.mark.parametrize("frontdesk_settings", [{"APP_ENV": "production"}, {"DEMO_SITE": "false"}], indirect=True)
async def test_in_production_there_is_no_demo_chat_unless_the_operator_turns_it_on(frontdesk: Frontdesk) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(frontdesk.url + "/") as page:
            assert page.status == 404
        visitor, refused = await open_widget(http, frontdesk.url)
        assert refused["code"] == "unknown_site"
        await visitor.socket.close()
        async with http.get(frontdesk.url + "/widget/api/site?site=demo", headers={"Origin": frontdesk.url}) as site:
            assert site.status == 404
    assert not await WidgetSite.exists(public_key="demo")


async def test_a_demo_site_left_from_a_development_start_serves_nobody_once_the_demo_is_off(
        database_url: str, sim: Simulator, ai: FakeAI) -> None:
    port = free_port()
    async with running_frontdesk(frontdesk_environment(database_url, sim, ai, port)) as frontdesk, \
            aiohttp.ClientSession() as http:
        visitor, welcome = await open_widget(http, frontdesk.url)
        assert welcome["type"] == "welcome"
        await visitor.socket.close()
    async with running_frontdesk(frontdesk_environment(database_url, sim, ai, port, APP_ENV="production")) as \
            frontdesk, aiohttp.ClientSession() as http:
        assert await WidgetSite.exists(public_key="demo")  # kept (`site remove demo` removes it), but unused
        visitor, refused = await open_widget(http, frontdesk.url)
        assert refused["code"] == "unknown_site"
        await visitor.socket.close()


async def test_the_embed_snippet_points_at_the_public_address_whatever_host_the_admins_browser_used(
        database_url: str, sim: Simulator, ai: FakeAI) -> None:
    """The shell's `site add` and the Mini App's Sites page give one snippet: PUBLIC_BASE_URL, else
    WEBHOOK_BASE_URL. The page used to take the address a proxy passed the request to instead (plain
    http, an inner host name), a snippet that no shop could load."""
    async with manager_desk(database_url, sim, ai) as desk, app_client(desk.frontdesk, sim, desk.boss["id"]) as boss:
        public = desk.frontdesk.settings.webhook_base_url  # no PUBLIC_BASE_URL here
        status, site = await boss.call("POST", "/api/admin/sites", {"allowed_origins": ["https://shop.example"]},
                                       headers={"Host": "frontdesk.internal:8080"})
        assert status == 201, site
        assert site["embed"] == f'<script src="{public}/widget.js" data-site="{site["public_key"]}" async></script>'
