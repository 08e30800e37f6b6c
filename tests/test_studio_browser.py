"""The prompt studio's pages in a real browser, at a phone's width, as Telegram opens them: building a
prompt with its live preview, autosave through a lost connection, streamed runs (one model, two side
by side), versions with labels, diff and restore, and the list of projects."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, FilePayload, Page, Route, ViewportSize, expect
from tgsim import Simulator

from models import PromptProject, PromptVersion
from tests.conftest import Frontdesk, eventually
from tests.fake_ai import FakeAI
from tests.miniapp_helpers import app_client
from tests.test_miniapp_browser import browser, shot, telegram_page

__all__ = ["browser"]
pytestmark = pytest.mark.browser
PHONE = ViewportSize(width=390, height=844)
SAVED = "Saved"
OFFLINE = "Offline — changes kept on this device"


async def phone(browser: Browser, sim: Simulator, user_id: int, theme: str = "light") -> Page:
    page = await telegram_page(browser, sim, user_id, theme)
    await page.set_viewport_size(PHONE)
    return page


async def screenshot(page: Page, name: str) -> None:
    """The whole page from its top (scrolled, the sticky bars would sit in the middle of the picture)."""
    await page.evaluate("window.scrollTo(0, 0)")
    await shot(page, name)


async def until(check: Callable[[], Awaitable[bool]], what: str, seconds: float = 10) -> None:
    """Wait until `check()` holds (the server's side of what the page shows), or fail naming `what`."""
    await eventually(check, what, seconds)


async def stored(project_id: int) -> dict[str, Any]:
    project = await PromptProject.get(id=project_id)
    return project.data


def doc(template: str, variables: dict[str, str] | None = None) -> dict[str, Any]:
    return {"context_blocks": [{"id": "ctx", "name": "Docs", "items": [
                {"id": "i1", "title": "Tone", "text": "Friendly, short.", "selected": True}]}],
            "prompt_blocks": [{"id": "p1", "name": "Reply", "template": template, "variables": variables or {},
                               "model": "main-model@default"}]}


async def project_of(frontdesk: Frontdesk, sim: Simulator, user_id: int, data: dict[str, Any]) -> int:
    async with app_client(frontdesk, sim, user_id) as client:
        created = await client.post("/api/studio/projects", {"name": "Support", "data": data})
    return int(created["id"])


async def open_project(page: Page, frontdesk: Frontdesk, project_id: int) -> None:
    await page.goto(f"{frontdesk.url}/app/studio/project?id={project_id}")
    await expect(page.locator("#save-state")).to_have_text(SAVED)
    await expect(page.locator("#problems li").first).to_be_visible()  # the first compile arrived


async def test_a_customer_builds_a_prompt_with_a_live_preview_and_it_is_autosaved(
        frontdesk: Frontdesk, sim: Simulator, browser: Browser) -> None:
    ann = sim.create_user("Ann", language_code="en")
    page = await phone(browser, sim, ann["id"])
    await page.goto(frontdesk.url + "/app/studio")
    await expect(page.locator("#status")).to_have_text("No projects yet. Create the first one above.")
    await expect(page.get_by_role("link", name="Prompt studio")).to_have_attribute("aria-current", "page")
    await expect(page.get_by_role("link", name="Template library")).to_have_attribute("href", "/app/studio/templates")
    await expect(page.get_by_role("link", name="My API keys")).to_have_attribute("href", "/app/studio/keys")
    await page.get_by_label("Project name").fill("Support replies")
    await page.get_by_role("button", name="Create").click()

    await expect(page).to_have_url(re.compile(r"/app/studio/project\?id=\d+$"))
    project_id = int(page.url.rsplit("=", 1)[1])
    await expect(page.locator("h1")).to_have_text("Support replies")
    await expect(page.locator("#save-state")).to_have_text(SAVED)
    # The starter project: a "Context" block and a prompt that names it and a variable.
    await expect(page.locator("#problems")).to_have_text("Fill in: task")

    context = page.locator("details.ctx").first
    await context.get_by_role("button", name="+ Item").click()
    await expect(context.get_by_label("Title of item 1")).to_be_focused()
    await page.keyboard.type("Tone")
    await context.get_by_label("Text of item 1").fill("Friendly and short.")
    await page.locator("#template").fill("Reply to {{customer}} about {{topic}}.\n\n")
    await page.get_by_role("button", name="Insert a reference to “Context”").click()
    await expect(page.locator("#template")).to_have_value("Reply to {{customer}} about {{topic}}.\n\n{{@Context}}")
    await expect(page.locator("#problems")).to_have_text("Fill in: customer, topic")
    await expect(page.locator("#preview mark")).to_have_text(["{{customer}}", "{{topic}}"])

    await page.get_by_label("{{customer}}").fill("Bob")
    await page.get_by_label("{{topic}}").fill("a late parcel")
    expected = "Reply to Bob about a late parcel.\n\n## Tone\nFriendly and short."
    await expect(page.locator("#preview")).to_have_text(expected)
    await expect(page.locator("#stats .chars")).to_have_text(f"{len(expected)} characters")
    await expect(page.locator("#stats .tokens")).to_have_text(re.compile(r"^≈ \d+ tokens$"))
    await expect(page.locator("#tokens-note")).to_be_visible()  # what "≈" means, for a phone without tooltips
    await expect(page.locator("#problems")).to_have_text("Ready to run.")
    await expect(page.locator("#context-used")).to_have_text("Context used: Context (items: 1)")

    # An unticked item leaves the prompt.
    await context.get_by_label("Put “Tone” into the prompt").uncheck()
    await expect(page.locator("#preview")).to_have_text("Reply to Bob about a late parcel.")
    await context.get_by_label("Put “Tone” into the prompt").check()

    async def saved_on_server() -> bool:
        data = await stored(project_id)
        block = data["prompt_blocks"][0]
        return (block["template"] == "Reply to {{customer}} about {{topic}}.\n\n{{@Context}}"
                and block["variables"] == {"customer": "Bob", "topic": "a late parcel"}
                and data["context_blocks"][0]["items"][0]["selected"] is True)

    await until(saved_on_server, "the autosave")
    await expect(page.locator("#save-state")).to_have_text(SAVED)
    item = (await stored(project_id))["context_blocks"][0]["items"][0]
    assert (item["title"], item["text"]) == ("Tone", "Friendly and short.")
    await screenshot(page, "studio-editor-light")

    # A name the compiler could not refer to is refused here, before the server, with the reason.
    await context.get_by_label("Name").fill("Docs {x}")
    await expect(page.locator("#save-state")).to_have_text(
        "Not saved: A context block’s name cannot contain braces or “@”: Docs {x}")
    await context.get_by_label("Name").fill("Docs")
    await expect(page.locator("#problems")).to_have_text("No context block is called: Context")
    await expect(page.locator("#save-state")).to_have_text(SAVED)
    await until(lambda: _context_named(project_id, "Docs"), "the renamed block saved")


async def _context_named(project_id: int, name: str) -> bool:
    return bool((await stored(project_id))["context_blocks"][0]["name"] == name)


async def test_changes_made_offline_are_kept_on_the_device_and_saved_when_back_online(
        frontdesk: Frontdesk, sim: Simulator, browser: Browser) -> None:
    ann = sim.create_user("Ann", language_code="en")
    project_id = await project_of(frontdesk, sim, ann["id"], doc("Greet {{name}}.", {"name": "Bob"}))
    page = await phone(browser, sim, ann["id"])
    await page.clock.install()  # the page's timers, which the test moves on instead of waiting them out
    await open_project(page, frontdesk, project_id)
    template = page.locator("#template")

    await page.context.set_offline(True)
    await template.press("End")
    await template.press_sequentially(" Be brief.")
    await expect(page.locator("#save-state")).to_have_text(OFFLINE)
    await page.clock.run_for(1500)  # well past the autosave's pause (its timer fired): nothing may have been sent
    assert (await stored(project_id))["prompt_blocks"][0]["template"] == "Greet {{name}}."
    local = json.loads(await page.evaluate("localStorage.getItem(Object.keys(localStorage)[0])"))
    assert local["doc"]["prompt_blocks"][0]["template"] == "Greet {{name}}. Be brief."
    await screenshot(page, "studio-offline-light")

    await page.context.set_offline(False)
    await expect(page.locator("#save-state")).to_have_text(SAVED)
    assert (await stored(project_id))["prompt_blocks"][0]["template"] == "Greet {{name}}. Be brief."
    assert await page.evaluate("localStorage.length") == 0  # nothing left to send

    # The server cannot be reached (the browser thinks it is online): the edit survives a reload.
    async def unreachable(route: Route) -> None:
        if route.request.method == "PUT":
            await route.abort("connectionrefused")
        else:
            await route.continue_()

    await page.route("**/api/studio/projects/*", unreachable)
    item = page.get_by_label("Text of item 1")
    await item.fill("Friendly, short, and never rude.")
    await expect(page.locator("#save-state")).to_have_text(OFFLINE)
    assert (await stored(project_id))["context_blocks"][0]["items"][0]["text"] == "Friendly, short."
    await page.unroute("**/api/studio/projects/*")
    await page.reload()
    await expect(item).to_have_value("Friendly, short, and never rude.")
    await expect(page.locator("#save-state")).to_have_text(SAVED)
    await until(lambda: _item_text(project_id, "Friendly, short, and never rude."), "the kept edit saved")
    await expect(page.locator("#template")).to_have_value("Greet {{name}}. Be brief.")


async def _item_text(project_id: int, text: str) -> bool:
    return bool((await stored(project_id))["context_blocks"][0]["items"][0]["text"] == text)


async def test_a_refused_save_says_why_and_the_edit_stays_on_the_device(
        frontdesk: Frontdesk, sim: Simulator, browser: Browser) -> None:
    ann = sim.create_user("Ann", language_code="en")
    project_id = await project_of(frontdesk, sim, ann["id"], doc("Greet {{name}}.", {"name": "Bob"}))
    page = await phone(browser, sim, ann["id"])
    await open_project(page, frontdesk, project_id)
    context = page.locator("details.ctx").first
    for _ in range(10):
        await context.get_by_role("button", name="+ Item").click()
    # Eleven long texts: past the project's size limit (each one alone is allowed).
    await page.evaluate("""() => {
        for (const box of document.querySelectorAll('.ctx-item textarea')) {
            box.value = 'x'.repeat(95000);
            box.dispatchEvent(new Event('input', { bubbles: true }));
        }
    }""")
    state = page.locator("#save-state")
    await expect(state).to_have_text(re.compile(
        r"^Not saved: The project is too large: 10\d\d KB of at most 1000 KB\. Move long texts out"))
    assert (await stored(project_id))["context_blocks"][0]["items"][0]["text"] == "Friendly, short."
    local = json.loads(await page.evaluate("localStorage.getItem(Object.keys(localStorage)[0])"))
    assert len(local["doc"]["context_blocks"][0]["items"]) == 11
    # Shortening one text is enough: the next save goes through.
    await context.get_by_label("Text of item 11").fill("Short again.")
    await expect(state).to_have_text(SAVED)
    assert len((await stored(project_id))["context_blocks"][0]["items"]) == 11


async def test_a_project_saved_elsewhere_asks_whose_text_wins(
        frontdesk: Frontdesk, sim: Simulator, browser: Browser) -> None:
    ann = sim.create_user("Ann", language_code="en")
    project_id = await project_of(frontdesk, sim, ann["id"], doc("Greet {{name}}.", {"name": "Bob"}))
    page = await phone(browser, sim, ann["id"])
    await open_project(page, frontdesk, project_id)
    async with app_client(frontdesk, sim, ann["id"]) as other_window:
        status, _ = await other_window.call("PUT", f"/api/studio/projects/{project_id}",
                                            {"revision": 1, "data": doc("Hello {{name}}!", {"name": "Bob"})})
        assert status == 200

    await page.locator("#template").fill("Greet {{name}} warmly.")
    await expect(page.locator("#save-state")).to_have_text("Not saved: this project was saved somewhere else")
    await expect(page.get_by_role("alert").filter(has_text="saved somewhere else")).to_be_visible()
    await screenshot(page, "studio-conflict-light")
    await page.get_by_role("button", name="Keep mine (save over it)").click()
    await expect(page.locator("#save-state")).to_have_text(SAVED)
    await expect(page.locator("#conflict")).to_be_hidden()
    assert (await PromptProject.get(id=project_id)).revision == 3
    assert (await stored(project_id))["prompt_blocks"][0]["template"] == "Greet {{name}} warmly."

    async with app_client(frontdesk, sim, ann["id"]) as other_window:
        await other_window.call("PUT", f"/api/studio/projects/{project_id}",
                                {"revision": 3, "data": doc("Their text for {{name}}.", {"name": "Bob"})})
    await page.locator("#template").fill("Mine again for {{name}}.")
    await page.get_by_role("button", name="Load the latest (discard mine)").click()
    await expect(page.locator("#template")).to_have_value("Their text for {{name}}.")
    await expect(page.locator("#save-state")).to_have_text(SAVED)
    assert (await stored(project_id))["prompt_blocks"][0]["template"] == "Their text for {{name}}."


async def test_a_run_streams_its_answer_then_shows_tokens_and_its_version(
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI, browser: Browser) -> None:
    ann = sim.create_user("Ann", language_code="en")
    ai.script.reply = "Dear Bob, your parcel left our warehouse today and will be with you tomorrow morning."
    ai.script.chunk_size = 4
    ai.script.chunk_delay = 0.1
    project_id = await project_of(frontdesk, sim, ann["id"], doc("{{@Docs}} Tell {{name}} where the parcel is."))
    page = await phone(browser, sim, ann["id"])
    await open_project(page, frontdesk, project_id)
    # Refused before anything runs: the API's own words.
    await page.get_by_role("button", name="Run", exact=True).click()
    pane = page.locator('.pane[data-pane="0"]')
    await expect(pane.locator(".error")).to_have_text("Fill in these variables first: name")

    await page.get_by_label("{{name}}").fill("Bob")  # the run saves this first
    await page.get_by_role("button", name="Run", exact=True).click()
    full = ai.script.reply
    await page.wait_for_function(  # the answer is seen growing: some of it, not yet all
        "full => { const text = document.querySelector('.pane[data-pane=\"0\"] .answer').textContent;"
        " return text.length > 0 && text.length < full.length && full.startsWith(text); }", arg=full)
    await expect(pane.locator(".answer")).to_have_text(full)
    await expect(pane.locator(".run-meta .version")).to_have_text("Version 1")
    await expect(pane.locator(".run-meta .tokens")).to_contain_text("main-model · default")
    await expect(pane.locator(".run-meta .tokens")).to_have_text(re.compile(r"\d+\+\d+ tokens · \$0\.\d{4}"))
    assert ai.requests[-1]["messages"][-1]["content"] == "## Tone\nFriendly, short. Tell Bob where the parcel is."
    await screenshot(page, "studio-run-light")

    history = page.locator("#runs li")
    await expect(history).to_have_count(1)
    await expect(history.locator(".preview")).to_contain_text("Version 1 · Reply · done")
    await history.locator("summary").click()
    await expect(history.locator("pre").last).to_have_text(full)


async def test_two_models_answer_side_by_side(
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI, browser: Browser) -> None:
    ann = sim.create_user("Ann", language_code="en")
    ai.script.model_replies = {"main-model": "Main says: the parcel arrives tomorrow.",
                               "backup-model": "Backup says: expect it by Friday."}
    ai.script.chunk_delay = 0.02
    project_id = await project_of(frontdesk, sim, ann["id"], doc("Where is the parcel of {{name}}?", {"name": "Bob"}))
    page = await phone(browser, sim, ann["id"])
    await open_project(page, frontdesk, project_id)
    await page.get_by_label("Compare side by side").check()
    first, second = page.locator('.pane[data-pane="0"]'), page.locator('.pane[data-pane="1"]')
    await first.get_by_label("Model").select_option("main-model@default")
    await second.get_by_label("Model").select_option("backup-model@default")
    await page.get_by_role("button", name="Run both").click()
    await expect(first.locator(".answer")).to_have_text("Main says: the parcel arrives tomorrow.")
    await expect(second.locator(".answer")).to_have_text("Backup says: expect it by Friday.")
    await expect(first.locator(".run-meta .version")).to_have_text("Version 1")
    await expect(second.locator(".run-meta .version")).to_have_text("Version 1")
    top, below = await first.bounding_box(), await second.bounding_box()
    assert top is not None
    assert below is not None
    assert below["y"] >= top["y"] + top["height"]  # a phone stacks the panes
    await screenshot(page, "studio-compare-light")
    await page.set_viewport_size(ViewportSize(width=1000, height=800))
    top, beside = await first.bounding_box(), await second.bounding_box()
    assert top is not None
    assert beside is not None
    assert (beside["y"], beside["x"] > top["x"]) == (top["y"], True)  # a wide window: side by side


async def test_versions_are_labelled_compared_and_restored(
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI, browser: Browser) -> None:
    ann = sim.create_user("Ann", language_code="en")
    project_id = await project_of(frontdesk, sim, ann["id"], doc("Greet {{name}}.\nBe brief.", {"name": "Bob"}))
    page = await phone(browser, sim, ann["id"])
    await open_project(page, frontdesk, project_id)
    pane = page.locator('.pane[data-pane="0"]')
    run = page.get_by_role("button", name="Run", exact=True)
    await run.click()
    await expect(pane.locator(".run-meta .version")).to_have_text("Version 1")
    await page.locator("#template").fill("Greet {{name}} warmly.\nBe brief.")
    await run.click()
    await expect(pane.locator(".run-meta .version")).to_have_text("Version 2")
    versions = page.locator("#versions li")
    await expect(versions.locator(".name")).to_have_text(["Version 2", "Version 1"])

    await versions.filter(has_text="Version 1").get_by_role("button").click()
    await page.get_by_label("New label").fill("production")
    await page.get_by_role("button", name="Add label").click()
    await expect(page.locator("#labels .chip")).to_have_text(["production×"])
    await expect(versions.filter(has_text="Version 1").locator(".badge.label")).to_have_text("production")
    labelled = await PromptVersion.get(project_id=project_id, number=1)
    assert labelled.labels == ["production"]

    await versions.filter(has_text="Version 2").get_by_role("button").click()
    await expect(page.locator("#diff-summary")).to_have_text("Compared with version 1 · lines added: 1, removed: 1")
    await expect(page.locator("#diff li.added mark")).to_have_text(" warmly")
    await expect(page.locator("#diff li.removed")).to_contain_text("Greet {{name}}.")
    await screenshot(page, "studio-versions-light")

    # Version 1 back into the prompt: the editor and the server both have its text.
    await versions.filter(has_text="Version 1").get_by_role("button").click()
    await page.get_by_role("button", name="Remove the label production").click()
    await expect(page.locator("#labels .chip")).to_have_count(0)
    await page.get_by_role("button", name="Restore this version").click()
    await expect(page.locator("#template")).to_have_value("Greet {{name}}.\nBe brief.")
    await expect(page.locator("#save-state")).to_have_text(SAVED)
    assert (await stored(project_id))["prompt_blocks"][0]["template"] == "Greet {{name}}.\nBe brief."
    assert (await PromptVersion.get(project_id=project_id, number=1)).labels == []


async def test_my_projects_are_renamed_copied_reordered_exported_imported_and_deleted(
        frontdesk: Frontdesk, sim: Simulator, browser: Browser) -> None:
    ann = sim.create_user("Ann", language_code="en")
    for name in ("Onboarding", "Support"):
        async with app_client(frontdesk, sim, ann["id"]) as client:
            await client.post("/api/studio/projects", {"name": name})
    page = await telegram_page(browser, sim, ann["id"], accept_downloads=True)
    await page.set_viewport_size(PHONE)
    await page.goto(frontdesk.url + "/app/studio")
    names = page.locator("#projects li .name")
    await expect(names).to_have_text(["Support", "Onboarding"])

    await page.get_by_role("button", name="Rename “Support”").click()
    await page.get_by_label("Project name", exact=True).last.fill("Support replies")
    await page.keyboard.press("Enter")
    await expect(names).to_have_text(["Support replies", "Onboarding"])
    await expect(page.get_by_role("button", name="Rename “Support replies”")).to_be_focused()

    await page.get_by_role("button", name="Move “Onboarding” up").click()
    await expect(names).to_have_text(["Onboarding", "Support replies"])
    await expect(page.get_by_role("button", name="Move “Onboarding” down")).to_be_focused()

    await page.get_by_role("button", name="Duplicate “Support replies”").click()
    await expect(names).to_have_text(["Support replies (copy)", "Onboarding", "Support replies"])

    async with page.expect_download() as download_info:
        await page.get_by_role("button", name="Export “Onboarding” as a file").click()
    download = await download_info.value
    assert download.suggested_filename == "Onboarding.json"
    exported = Path(await download.path())
    assert json.loads(exported.read_text())["name"] == "Onboarding"

    await page.get_by_role("button", name="Delete “Onboarding”").click()
    await expect(names).to_have_text(["Support replies (copy)", "Support replies"])
    assert await page.evaluate("window.__FD_CONFIRMS__.length") == 1
    await page.locator("#import").set_input_files(str(exported))
    await expect(names).to_have_text(["Onboarding", "Support replies (copy)", "Support replies"])
    await expect(page.locator("#toast")).to_have_text("Imported as “Onboarding”.")
    await page.locator("#import").set_input_files(
        files=[FilePayload(name="x.json", mimeType="application/json", buffer=b'{"format": "other"}')])
    await expect(page.locator("#toast")).to_contain_text("This project is not valid")
    await screenshot(page, "studio-projects-light")


@pytest.mark.parametrize("theme", ["light", "dark"])
async def test_studio_pages_in_both_themes(frontdesk: Frontdesk, sim: Simulator, ai: FakeAI, browser: Browser,
                                           theme: str) -> None:
    ann = sim.create_user("Ann", language_code="en")
    data = doc("{{@Docs}}\n\nReply to {{customer}} about {{topic}}.", {"customer": "Bob"})
    data["context_blocks"][0]["items"].append({"id": "i2", "title": "Refunds", "text": "Within 14 days of delivery.",
                                               "selected": False})
    project_id = await project_of(frontdesk, sim, ann["id"], data)
    page = await phone(browser, sim, ann["id"], theme)
    await page.goto(frontdesk.url + "/app/studio")
    await expect(page.locator("#projects li")).to_have_count(1)
    await screenshot(page, f"studio-list-{theme}")
    await open_project(page, frontdesk, project_id)
    await expect(page.locator("#problems")).to_have_text("Fill in: topic")
    await page.get_by_label("{{topic}}").fill("refunds")
    await page.get_by_role("button", name="Run", exact=True).click()
    await expect(page.locator('.pane[data-pane="0"] .run-meta .version')).to_have_text("Version 1")
    await screenshot(page, f"studio-project-{theme}")
