"""The template library in the Mini App: its API (who sees what, errors) and its page in a browser."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from playwright.async_api import Browser, expect
from tgsim import Simulator

from miniapp.api import TRANSLATE
from models import PromptTemplate, User
from services.studio import templates
from tests.conftest import Frontdesk
from tests.miniapp_helpers import app_client
from tests.test_miniapp_browser import browser, shot, telegram_page

__all__ = ["browser"]


async def test_anyone_signed_in_searches_the_library_and_keeps_templates_of_their_own(
        frontdesk: Frontdesk, sim: Simulator) -> None:
    ann = sim.create_user("Ann", language_code="en")
    async with app_client(frontdesk, sim, ann["id"]) as client:
        found = await client.get("/api/studio/templates?q=summ&locale=en")
        first = found["templates"][0]
        assert (first["title"], first["title_html"]) == ("Summarize a text", "<mark>Summarize</mark> a text")
        assert first["shipped"]
        assert not first["mine"]
        assert "body" not in first
        assert found["has_more"] is False
        assert found["next_offset"] is None

        made = await client.post("/api/studio/templates", {
            "title": "Launch <email>", "body": "Announce {{product}} to {{audience}}.", "tags": ["Launch", "email"],
            "description": "For new products"})
        assert (made["locale"], made["mine"], made["shipped"], made["slug"]) == ("en", True, False, None)
        assert (made["tags"], made["variables"]) == (["launch", "email"], ["product", "audience"])
        assert await client.get(f"/api/studio/templates/{made['id']}") == made

        [hit] = (await client.get("/api/studio/templates?q=launch%20ema&scope=mine"))["templates"]
        assert hit["title_html"] == "<mark>Launch</mark> &lt;<mark>email</mark>&gt;"
        status, changed = await client.call("PUT", f"/api/studio/templates/{made['id']}",
                                             {"title": "Launch note", "body": "Tell {{who}}.", "tags": []})
        assert (status, changed["title"], changed["tags"], changed["description"]) == (200, "Launch note", [], "")
        tags = (await client.get("/api/studio/templates/tags?scope=mine"))["tags"]
        assert tags == []
        english = (await client.get("/api/studio/templates/tags?locale=en"))["tags"]
        all_tags = {tag["tag"]: tag["count"] for tag in english}
        assert all_tags["email"] >= 3

        status, deleted = await client.call("DELETE", f"/api/studio/templates/{made['id']}")
        assert (status, deleted) == (200, {"deleted": True})
        status, gone = await client.call("GET", f"/api/studio/templates/{made['id']}")
        assert (status, gone["error"]["code"], gone["error"]["message"]) == (
            404, "not_found", "This template no longer exists.")
    async with app_client(frontdesk) as anonymous:
        status, body = await anonymous.call("GET", "/api/studio/templates")
        assert (status, body["error"]["code"]) == (401, "unauthorized")


async def test_another_customers_template_is_not_found_anywhere(frontdesk: Frontdesk, sim: Simulator) -> None:
    ann, bob = sim.create_user("Ann"), sim.create_user("Bob")
    async with app_client(frontdesk, sim, bob["id"]) as client:
        secret = await client.post("/api/studio/templates", {"title": "Bob's zanzibar pricing",
                                                             "body": "Secret {{price}}", "tags": ["zanzibar"]})
    async with app_client(frontdesk, sim, ann["id"]) as client:
        path = f"/api/studio/templates/{secret['id']}"
        for method, body in (("GET", None), ("PUT", {"title": "Mine", "body": "x"}), ("DELETE", None)):
            status, answer = await client.call(method, path, body)
            assert (status, answer["error"]["code"]) == (404, "not_found"), method
            assert "zanzibar" not in json.dumps(answer)
        assert (await client.get("/api/studio/templates?q=zanzibar"))["templates"] == []
        assert (await client.get("/api/studio/templates?scope=mine"))["templates"] == []
        tags = (await client.get("/api/studio/templates/tags"))["tags"]
        assert "zanzibar" not in {tag["tag"] for tag in tags}
    assert (await PromptTemplate.get(id=secret["id"])).title == "Bob's zanzibar pricing"


async def test_changes_to_shipped_templates_and_bad_input_get_clear_errors(frontdesk: Frontdesk,
                                                                          sim: Simulator) -> None:
    olga = sim.create_user("Olga", language_code="ru")
    shipped = await PromptTemplate.get(slug="ru/code-review")
    translate = frontdesk.app[TRANSLATE]
    async with app_client(frontdesk, sim, olga["id"]) as client:
        for method in ("PUT", "DELETE"):
            status, answer = await client.call(method, f"/api/studio/templates/{shipped.id}",
                                               {"title": "Mine", "body": "x"} if method == "PUT" else None)
            assert (status, answer["error"]["code"]) == (403, "read_only"), method
        status, answer = await client.call("POST", "/api/studio/templates", {"title": "t" * 201, "body": "x"})
        assert (status, answer["error"]["code"]) == (400, "too_long")
        expected = translate("ru", "The {field} is too long: at most {limit} characters.").format(
            field=translate("ru", "title"), limit=200)
        assert answer["error"]["message"] == expected  # in Olga's language
        status, answer = await client.call("POST", "/api/studio/templates",
                                           {"title": "t", "body": "x", "tags": [str(n) for n in range(11)]})
        assert (status, answer["error"]["code"]) == (400, "too_many_tags")
        assert "10" in answer["error"]["message"]
        status, answer = await client.call("POST", "/api/studio/templates", {"title": "t", "body": " "})
        assert (status, answer["error"]["code"]) == (400, "empty_body")
        status, answer = await client.call("POST", "/api/studio/templates", {"title": "t", "body": "x", "owner": 1})
        assert (status, answer["error"]["code"], answer["error"]["details"][0]["field"]) == (400, "bad_request",
                                                                                            "owner")
        status, answer = await client.call("GET", "/api/studio/templates?scope=everyone")
        assert (status, answer["error"]["details"][0]["field"]) == (400, "scope")
        assert answer["error"]["message"] == translate("ru", "The request is not valid.")
        status, answer = await client.call("GET", "/api/studio/templates?q=" + "x" * 201)
        assert status == 400
        for wrong in ("abc", "99999999999999999999", "-1"):
            status, answer = await client.call("GET", f"/api/studio/templates/{wrong}")
            assert (status, answer["error"]["code"]) == (404, "not_found"), wrong
        for hostile in ('"', "NEAR(a", "a*:", "'; --", "-", "((", "\x00"):
            assert isinstance((await client.get("/api/studio/templates?" + urlencode({"q": hostile})))["templates"],
                              list)

    user = await User.get(telegram_id=olga["id"])
    await PromptTemplate.bulk_create([PromptTemplate(owner_id=user.id, title=f"T{n}", body="x")
                                      for n in range(templates.MAX_OWN_TEMPLATES)])
    async with app_client(frontdesk, sim, olga["id"]) as client:
        status, answer = await client.call("POST", "/api/studio/templates", {"title": "One more", "body": "x"})
        assert (status, answer["error"]["code"]) == (409, "limit_reached")


async def test_the_library_is_in_the_api_description(frontdesk: Frontdesk) -> None:
    async with app_client(frontdesk) as client:
        paths = (await client.get("/api/openapi.json"))["paths"]
    assert set(paths["/api/studio/templates"]) == {"get", "post"}
    assert set(paths["/api/studio/templates/{template_id}"]) == {"get", "put", "delete"}
    assert set(paths["/api/studio/templates/tags"]) == {"get"}


@pytest.mark.browser
async def test_a_customer_searches_the_library_and_writes_a_template_of_their_own(
        frontdesk: Frontdesk, sim: Simulator, browser: Browser) -> None:
    ann = sim.create_user("Ann", language_code="en")
    page = await telegram_page(browser, sim, ann["id"])
    await page.goto(frontdesk.url + "/app/studio/templates")
    # The library is part of the studio: its tab is the one lit.
    await expect(page.get_by_role("link", name="Prompt studio")).to_have_attribute("aria-current", "page")
    await expect(page.locator("#heading")).to_have_text("Most used")
    await expect(page.locator("#results li")).to_have_count(20)

    # Search as you type: the results follow each letter, the matches marked.
    await page.get_by_label("Search templates").press_sequentially("summ", delay=60)
    first = page.locator("#results li").first
    await expect(first.locator(".name")).to_have_text("Summarize a text")
    await expect(first.locator(".name mark")).to_have_text("Summarize")
    await expect(page.locator("#heading")).to_have_text("Best matches")
    await shot(page, "templates-search-light")
    await first.locator("a").click()
    await expect(page.locator("#viewer-title")).to_have_text("Summarize a text")
    await expect(page.locator("#viewer-body")).to_contain_text("{{text}}")
    await expect(page.locator("#edit")).to_be_hidden()  # built-in: read-only

    # A template of her own, with markup in it that must stay text.
    await page.get_by_role("button", name="New template").click()
    await page.get_by_label("Title").fill("Zebra launch <b>email</b>")
    await page.get_by_label("Text of the prompt").fill("Announce {{product}} to <i>{{audience}}</i>.")
    await page.get_by_label("Tags, comma-separated").fill("Launch, zebra")
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator("#viewer-title")).to_have_text("Zebra launch <b>email</b>")
    await expect(page.locator("#viewer-body")).to_have_text("Announce {{product}} to <i>{{audience}}</i>.")
    await expect(page.locator("#viewer-meta")).to_contain_text("to fill in: product, audience")

    search = page.get_by_label("Search templates")
    await search.fill("")
    await search.press_sequentially("zebra laun", delay=40)
    mine = page.locator("#results li").first
    await expect(mine.locator(".name")).to_have_text("Zebra launch <b>email</b>")
    await expect(mine.locator(".name mark")).to_have_text(["Zebra launch"])
    await expect(mine.locator(".badge")).to_have_text(["Yours"])
    assert await mine.locator(".name b").count() == 0  # shown as text, never as markup
    await shot(page, "templates-mine-light")

    await page.get_by_role("radio", name="Mine").check()
    await search.fill("")
    await page.locator("#tags").get_by_role("button", name="zebra").click()
    await expect(page.locator("#results li")).to_have_count(1)
    await page.locator("#results li a").click()
    await page.get_by_role("button", name="Delete").click()
    await expect(page.locator("#status")).to_have_text(
        "You have no templates of your own yet. Press “New template” to write one.")
    assert not await PromptTemplate.filter(title="Zebra launch <b>email</b>").exists()


@pytest.mark.browser
async def test_the_studio_opens_the_template_named_in_its_link(
        frontdesk: Frontdesk, sim: Simulator, browser: Browser) -> None:
    olga = sim.create_user("Olga", language_code="ru")
    shipped = await PromptTemplate.get(slug="ru/meeting-notes")
    page = await telegram_page(browser, sim, olga["id"], theme="dark")
    await page.goto(frontdesk.url + f"/app/studio/templates?open={shipped.id}")
    await expect(page.locator("#viewer-title")).to_have_text("Протокол встречи и задачи")
    await expect(page.locator("select[name=locale]").first).to_have_value("ru")
    await shot(page, "templates-open-dark")
