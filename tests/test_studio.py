"""The prompt studio: compiling, projects (autosave, limits, copies, order, export/import), versions
and labels, runs streamed on the deployment's models and what they count."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

import aiohttp
import pytest
from tgsim import Simulator

from models import AuditLog, PromptProject, PromptRun, PromptTemplate, PromptVersion, Usage
from services.studio import projects
from services.studio.compiler import compile_template, variable_names
from services.studio.projects import ContextBlock, ContextItem
from tests.conftest import ROOT, Frontdesk, eventually
from tests.desk_helpers import Desk, manager_desk
from tests.fake_ai import FakeAI
from tests.miniapp_helpers import AppClient, app_client

# --- compiling (pure) ----------------------------------------------------------------------------------


def _block(name: str, *items: tuple[str, str, bool]) -> ContextBlock:
    return ContextBlock(id=name.lower().replace(" ", "-"), name=name,
                        items=[ContextItem(id=f"{name[:3]}{i}", title=t, text=x, selected=s)
                               for i, (t, x, s) in enumerate(items)])


def test_variables_are_filled_and_missing_ones_named_and_left_visible() -> None:
    compiled = compile_template("Write a {{ tone }} email to {{name}} about {{topic}}. Sign as {{name}}.",
                                {"tone": "warm", "name": "Ann", "topic": "  "}, [])
    assert compiled.text == "Write a warm email to Ann about {{topic}}. Sign as Ann."
    assert compiled.variables == ["tone", "name", "topic"]
    assert compiled.missing == ["topic"]
    assert not compiled.ready
    assert compile_template("Hi {{name}}", {"name": "Bob"}, []).ready


def test_context_references_put_the_selected_items_in_under_their_titles() -> None:
    docs = _block("Product docs", ("Prices", "Basic is $10.", True), ("", "Old price list", False),
                  ("", "Refunds within 14 days.", True))
    compiled = compile_template("Answer from:\n{{@product DOCS}}\n\nQ: {{q}}", {"q": "Cost?"}, [docs])
    assert compiled.text == "Answer from:\n## Prices\nBasic is $10.\n\nRefunds within 14 days.\n\nQ: Cost?"
    assert [(c.block, c.items) for c in compiled.context] == [("Product docs", 2)]
    unknown = compile_template("{{@Nowhere}} {{q}}", {"q": "x"}, [docs])
    assert unknown.unknown_context == ["Nowhere"]
    assert not unknown.ready
    assert "{{@Nowhere}}" in unknown.text


def test_values_are_not_expanded_again_and_braces_can_be_written() -> None:
    compiled = compile_template(r"Literal \{{name}} and {{a}}", {"a": "{{b}} {{@Docs}}", "name": "x"}, [])
    assert compiled.text == "Literal {{name}} and {{b}} {{@Docs}}"
    assert compiled.variables == ["a"]
    assert compiled.ready
    bad = compile_template("{{two words}} {{}}", {}, [])
    assert bad.bad_placeholders == ["{{two words}}", "{{}}"]
    assert not bad.ready
    assert variable_names("{{имя}} and {{ism}} {{@Docs}} {{имя}}") == ["имя", "ism"]


def test_a_compiled_prompt_past_the_limit_is_not_ready() -> None:
    huge = _block("Docs", ("", "x" * 100_000, True))
    compiled = compile_template("{{@Docs}}" * 5, {}, [huge])
    assert compiled.chars == 500_000
    assert not compiled.ready


def test_a_projects_size_is_its_document_as_compact_utf8_json() -> None:
    text = 'Line\n\t"quoted" \\ \x01 \x7f \u2028 😀 o‘zbek, русский'
    doc = projects.parse_doc({"context_blocks": [{"id": "c", "name": "Тон", "items": [{"id": "i", "text": text}]}],
                            "prompt_blocks": [{"id": "p", "name": "P", "template": "{{@Тон}}", "variables": {}}]})
    expected = json.dumps(projects.doc_json(doc), ensure_ascii=False, separators=(",", ":")).encode()
    assert projects._size(doc) == len(expected)


# --- projects through the API --------------------------------------------------------------------------


async def _project(client: AppClient, name: str = "Emails") -> dict[str, Any]:
    project: dict[str, Any] = await client.post("/api/studio/projects", {"name": name})
    return project


def _doc(template: str, variables: dict[str, str] | None = None,
         items: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"context_blocks": [{"id": "ctx", "name": "Docs", "items": items or [
                {"id": "i1", "title": "Tone", "text": "Friendly, short.", "selected": True}]}],
            "prompt_blocks": [{"id": "p1", "name": "Reply", "template": template, "variables": variables or {},
                               "model": "main-model@default"}]}


async def _save(client: AppClient, project: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    status, body = await client.call("PUT", f"/api/studio/projects/{project['id']}",
                                     {"revision": project["revision"], "data": data})
    assert status == 200, body
    project["revision"] = body["revision"]
    return dict(body)


async def test_a_project_is_created_autosaved_with_its_revision_and_stale_saves_refused(
        frontdesk: Frontdesk, sim: Simulator) -> None:
    ann = sim.create_user("Ann")
    async with app_client(frontdesk, sim, ann["id"]) as client:
        project = await _project(client)
        assert project["revision"] == 1
        assert project["data"]["prompt_blocks"][0]["template"]
        first = await _save(client, project, _doc("{{@Docs}} Reply to: {{message}}"))
        assert first["revision"] == 2
        # A second window still on revision 1 would overwrite that: refused, told the current revision.
        status, body = await client.call("PUT", f"/api/studio/projects/{project['id']}",
                                         {"revision": 1, "data": _doc("older text")})
        assert status == 409
        assert body["error"]["code"] == "stale"
        assert body["error"]["details"] == {"revision": 2}
        saved = await client.get(f"/api/studio/projects/{project['id']}")
        assert saved["data"]["prompt_blocks"][0]["template"] == "{{@Docs}} Reply to: {{message}}"
        compiled = await client.post(f"/api/studio/projects/{project['id']}/compile",
                                     {"block_id": "p1", "data": _doc("{{@Docs}} Reply to: {{message}}",
                                                                     {"message": "Hi!"})})
        assert compiled["text"] == "## Tone\nFriendly, short. Reply to: Hi!"
        assert compiled["chars"] == len(compiled["text"])
        assert compiled["tokens"] > 0
        assert compiled["ready"]
        missing = await client.post(f"/api/studio/projects/{project['id']}/compile", {"block_id": "p1"})
        assert missing["missing"] == ["message"]
        assert not missing["ready"]


async def test_invalid_and_oversized_projects_are_refused_whole(frontdesk: Frontdesk, sim: Simulator) -> None:
    ann = sim.create_user("Ann")
    async with app_client(frontdesk, sim, ann["id"]) as client:
        project = await _project(client)
        bad = _doc("x")
        bad["context_blocks"].append({"id": "ctx", "name": "docs", "items": []})
        status, body = await client.call("PUT", f"/api/studio/projects/{project['id']}",
                                         {"revision": 1, "data": bad})
        assert status == 400
        assert body["error"]["code"] == "invalid"
        assert "unique" in body["error"]["message"]
        items = [{"id": f"i{n}", "title": "", "text": "y" * 90_000, "selected": True} for n in range(12)]
        large = io.BytesIO(json.dumps({"revision": 1, "data": _doc("x", items=items)}).encode())
        async with client.session.put(f"{client.base}/api/studio/projects/{project['id']}", data=large,
                                      headers=client.headers({"Content-Type": "application/json"})) as response:
            status, body = response.status, await response.json()
        assert status == 413
        assert body["error"]["code"] == "too_large"
        assert "1000 KB" in body["error"]["message"]
        status, body = await client.call("PUT", f"/api/studio/projects/{project['id']}",
                                         {"revision": 1, "data": _doc("x")}, headers={"Accept-Language": "ru"})
        assert status == 200  # nothing of the refused saves was kept
        stored = await PromptProject.get(id=project["id"])
        assert stored.revision == 2
        assert stored.size < 1000


async def test_rename_duplicate_reorder_delete_and_nobody_elses_projects(frontdesk: Frontdesk,
                                                                         sim: Simulator) -> None:
    ann, bob = sim.create_user("Ann"), sim.create_user("Bob")
    async with app_client(frontdesk, sim, ann["id"]) as client, app_client(frontdesk, sim, bob["id"]) as other:
        first = await _project(client, "First")
        second = await _project(client, "Second")
        listed = await client.get("/api/studio/projects")
        assert [p["name"] for p in listed["projects"]] == ["Second", "First"]  # newest on top
        status, renamed = await client.call("PATCH", f"/api/studio/projects/{first['id']}", {"name": "  Main  "})
        assert status == 200
        assert renamed["name"] == "Main"
        copy = await client.post(f"/api/studio/projects/{first['id']}/duplicate")
        assert copy["name"] == "Main (copy)"
        assert copy["data"] == first["data"]
        ordered = await client.post("/api/studio/projects/order", {"ids": [first["id"], second["id"]]})
        assert [p["name"] for p in ordered["projects"]] == ["Main", "Second", "Main (copy)"]
        assert [p["name"] for p in (await client.get("/api/studio/projects"))["projects"]] == \
            ["Main", "Second", "Main (copy)"]
        for method, path, body in [("GET", "", None), ("PUT", "", {"revision": 1, "data": _doc("x")}),
                                   ("PATCH", "", {"name": "mine"}), ("DELETE", "", None),
                                   ("POST", "/duplicate", None), ("GET", "/export", None),
                                   ("POST", "/compile", {"block_id": "p1"}), ("GET", "/runs", None),
                                   ("POST", "/runs", {"block_id": "p1", "model": "main-model@default"})]:
            status, answer = await other.call(method, f"/api/studio/projects/{first['id']}{path}", body)
            assert (status, answer["error"]["code"]) == (404, "not_found"), (method, path)
        status, answer = await other.call("POST", "/api/studio/projects/order", {"ids": [first["id"]]})
        assert status == 400
        assert (await other.get("/api/studio/projects"))["projects"] == []
        status, _ = await client.call("DELETE", f"/api/studio/projects/{second['id']}")
        assert status == 200
        assert not await PromptProject.filter(id=second["id"]).exists()


async def test_export_then_import_keeps_the_document_versions_and_labels(frontdesk: Frontdesk,
                                                                         sim: Simulator) -> None:
    ann = sim.create_user("Ann")
    async with app_client(frontdesk, sim, ann["id"]) as client:
        project = await _project(client, "Support")
        await _save(client, project, _doc("{{@Docs}} {{message}}", {"message": "Hello"}))
        await _run(client, project["id"], {"block_id": "p1", "model": "main-model@default"})
        version = (await client.get(f"/api/studio/projects/{project['id']}/versions?block_id=p1"))["versions"][0]
        await client.post(f"/api/studio/versions/{version['id']}/labels", {"label": "production"})
        async with client.session.get(f"{client.base}/api/studio/projects/{project['id']}/export",
                                      headers=client.headers()) as response:
            assert response.status == 200
            assert "attachment" in response.headers["Content-Disposition"]
            exported = json.loads(await response.read())
        imported = await client.post("/api/studio/projects/import", exported)
        assert imported["name"] == "Support"
        assert imported["data"] == exported["data"]
        versions = await client.get(f"/api/studio/projects/{imported['id']}/versions?block_id=p1")
        assert [(v["number"], v["labels"]) for v in versions["versions"]] == [(1, ["production"])]
        letters = await _project(client, "Письма клиентам")
        async with client.session.get(f"{client.base}/api/studio/projects/{letters['id']}/export",
                                      headers=client.headers()) as response:
            disposition = response.headers["Content-Disposition"]
        assert "filename*=UTF-8''%D0%9F%D0%B8%D1%81%D1%8C%D0%BC%D0%B0-" in disposition
        broken = {**exported, "data": {"prompt_blocks": "not a list"}}
        status, body = await client.call("POST", "/api/studio/projects/import", broken)
        assert status == 400
        assert body["error"]["code"] == "invalid"
        status, body = await client.call("POST", "/api/studio/projects/import", {"format": "other"})
        assert status == 400
    assert await PromptProject.filter(owner__telegram_id=ann["id"]).count() == 3


# --- runs, versions, labels ------------------------------------------------------------------------------


async def _run(client: AppClient, project_id: int, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The run's NDJSON lines as the page reads them."""
    async with client.session.post(f"{client.base}/api/studio/projects/{project_id}/runs", json=body,
                                   headers=client.headers()) as response:
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"].startswith("application/x-ndjson")
        return [json.loads(line) async for line in response.content if line.strip()]


async def test_a_run_streams_records_a_version_and_counts_against_the_quota(
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ann = sim.create_user("Ann")
    ai.script.reply = "Dear Ann, thank you for writing to us. We will call you back today."
    ai.script.chunk_size = 8
    async with app_client(frontdesk, sim, ann["id"]) as client:
        project = await _project(client)
        await _save(client, project, _doc("{{@Docs}} Reply to: {{message}}", {"message": "Call me"}))
        lines = await _run(client, project["id"], {"block_id": "p1", "model": "main-model@default"})
        kinds = [line["type"] for line in lines]
        assert kinds[0] == "run"
        assert kinds[-1] == "done"
        assert kinds.count("delta") >= 5
        assert "".join(line["text"] for line in lines if line["type"] == "delta") == ai.script.reply
        done = lines[-1]["run"]
        assert done["status"] == "ok"
        assert done["answer"] == ai.script.reply
        assert done["model"] == "main-model@default"
        assert done["tokens_in"] > 0
        assert done["tokens_out"] > 0
        assert done["version"]["number"] == 1
        assert ai.requests[-1]["model"] == "main-model"
        assert ai.requests[-1]["messages"] == [{"role": "user",
                                                "content": "## Tone\nFriendly, short. Reply to: Call me"}]
        # Unchanged: the same version. Changed: a new one; the old one is as it was.
        await _run(client, project["id"], {"block_id": "p1", "model": "backup-model@default"})
        await _save(client, project, _doc("{{@Docs}} Answer: {{message}}", {"message": "Call me"}))
        third = (await _run(client, project["id"], {"block_id": "p1", "model": "main-model@default"}))[-1]["run"]
        assert third["version"]["number"] == 2
        versions = (await client.get(f"/api/studio/projects/{project['id']}/versions?block_id=p1"))["versions"]
        assert [(v["number"], v["template"]) for v in versions] == [
            (2, "{{@Docs}} Answer: {{message}}"), (1, "{{@Docs}} Reply to: {{message}}")]
        history = await client.get(f"/api/studio/projects/{project['id']}/runs")
        assert [(r["model"], r["version"]["number"]) for r in history["runs"]] == [
            ("main-model@default", 2), ("backup-model@default", 1), ("main-model@default", 1)]
        # Side by side: a version against the current block, on two models at once.
        old = await _run(client, project["id"], {"version_id": versions[1]["id"], "model": "backup-model@default"})
        assert old[-1]["run"]["prompt"] == "## Tone\nFriendly, short. Reply to: Call me"
    usage = await Usage.get(user__telegram_id=ann["id"])
    assert usage.ai_messages == 4
    assert usage.tokens_out > 0


async def test_runs_stop_at_the_daily_quota_and_refusals_store_nothing(
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ann = sim.create_user("Ann")
    async with app_client(frontdesk, sim, ann["id"]) as client:
        project = await _project(client)
        status, body = await client.call("POST", f"/api/studio/projects/{project['id']}/runs",
                                         {"block_id": project["data"]["prompt_blocks"][0]["id"],
                                          "model": "main-model@default"})
        assert (status, body["error"]["code"]) == (400, "missing_variables")
        assert "task" in body["error"]["message"]
        await _save(client, project, _doc("Say hi to {{name}}", {"name": "Bob"}))
        status, body = await client.call("POST", f"/api/studio/projects/{project['id']}/runs",
                                         {"block_id": "p1", "model": "gpt-secret@nowhere"})
        assert (status, body["error"]["code"]) == (400, "no_model")
        assert not await Usage.exists()
        owner_id = (await PromptProject.get(id=project["id"])).owner_id
        await Usage.create(bot_id=1, user_id=owner_id, day=datetime.now(UTC).date(),
                           ai_messages=frontdesk.settings.daily_ai_quota)
        status, body = await client.call("POST", f"/api/studio/projects/{project['id']}/runs",
                                         {"block_id": "p1", "model": "main-model@default"})
        assert (status, body["error"]["code"]) == (429, "quota")
    assert await PromptRun.all().count() == 0
    assert await PromptVersion.all().count() == 0
    assert ai.requests == []


async def _parallel_runs(client: AppClient, project_id: int, count: int) -> list[asyncio.Task[tuple[int, Any]]]:
    body = {"block_id": "p1", "model": "main-model@default"}
    return [asyncio.create_task(client.call("POST", f"/api/studio/projects/{project_id}/runs", body))
            for _ in range(count)]


@pytest.mark.parametrize("frontdesk_settings", [{"DAILY_AI_QUOTA": 2, "STUDIO_CONCURRENT_RUNS": 20}], indirect=True)
async def test_parallel_runs_cannot_pass_the_quota_together(
        frontdesk_settings: dict[str, Any], frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ann = sim.create_user("Ann")
    ai.script.hold = asyncio.Event()  # the model answers only when the refusals are in
    async with app_client(frontdesk, sim, ann["id"]) as client:
        project = await _project(client)
        await _save(client, project, _doc("Say hi to {{name}}", {"name": "Bob"}))
        runs = await _parallel_runs(client, project["id"], 8)
        await eventually(lambda: _done(runs, 6), "six runs refused")
        await eventually(lambda: _true(len(ai.requests) == 2), "two runs at the model")
        ai.script.hold.set()
        results = await asyncio.gather(*runs)
    refused = [body["error"]["code"] for status, body in results if status == 429]
    assert refused == ["quota"] * 6
    assert len(ai.requests) == 2
    assert await PromptRun.filter(status="ok").count() == 2
    assert await PromptRun.all().count() == 2  # a refused run stores nothing
    assert (await Usage.get(user__telegram_id=ann["id"])).ai_messages == 2


async def _done(tasks: list[asyncio.Task[tuple[int, Any]]], count: int) -> bool:
    return sum(task.done() for task in tasks) >= count


async def _true(value: bool) -> bool:
    return value


async def test_one_person_has_a_few_runs_at_once_and_each_asks_for_a_bounded_answer(
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ann, bob = sim.create_user("Ann"), sim.create_user("Bob")
    ai.script.hold = asyncio.Event()
    async with app_client(frontdesk, sim, ann["id"]) as client, app_client(frontdesk, sim, bob["id"]) as other:
        project = await _project(client)
        await _save(client, project, _doc("Say hi to {{name}}", {"name": "Bob"}))
        bobs = await _project(other)
        await _save(other, bobs, _doc("Say hi to {{name}}", {"name": "Ann"}))
        runs = await _parallel_runs(client, project["id"], 4)
        await eventually(lambda: _done(runs, 2), "two of Ann's runs refused")
        bobs_run = (await _parallel_runs(other, bobs["id"], 1))[0]  # another person is not held back
        await eventually(lambda: _true(len(ai.requests) == 3), "Ann's two runs and Bob's at the model")
        ai.script.hold.set()
        results = await asyncio.gather(*runs, bobs_run)
        assert [body["error"]["code"] for status, body in results if status == 429] == ["too_many_runs"] * 2
        assert "2 runs going" in next(body["error"]["message"] for status, body in results if status == 429)
        again = await _run(client, project["id"], {"block_id": "p1", "model": "main-model@default"})
        assert again[-1]["run"]["status"] == "ok"  # the finished runs gave their places back
    assert len(ai.requests) == 4
    assert {request["max_tokens"] for request in ai.requests} == {frontdesk.settings.ai_max_output_tokens}
    assert (await Usage.get(user__telegram_id=ann["id"])).ai_messages == 3


@pytest.mark.parametrize("frontdesk_settings", [{"STUDIO_MAX_PROMPT_CHARS": 1000}], indirect=True)
async def test_a_prompt_longer_than_a_run_may_send_is_refused_before_anything_is_stored(
        frontdesk_settings: dict[str, Any], frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ann = sim.create_user("Ann")
    async with app_client(frontdesk, sim, ann["id"]) as client:
        project = await _project(client)
        await _save(client, project, _doc("Summarise: {{text}}", {"text": "word " * 300}))
        status, body = await client.call("POST", f"/api/studio/projects/{project['id']}/runs",
                                         {"block_id": "p1", "model": "main-model@default"})
        assert (status, body["error"]["code"]) == (413, "prompt_over_limit")
        assert "1511 characters long; a run can send at most 1000" in body["error"]["message"]
    assert ai.requests == []
    assert await PromptVersion.all().count() == 0
    assert not await Usage.exists()


async def test_a_failing_model_is_a_run_with_an_error_in_the_history(
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ann = sim.create_user("Ann")
    ai.script.failing_models = {"main-model": 503}
    async with app_client(frontdesk, sim, ann["id"]) as client:
        project = await _project(client)
        await _save(client, project, _doc("Say hi to {{name}}", {"name": "Bob"}))
        lines = await _run(client, project["id"], {"block_id": "p1", "model": "main-model@default"})
        done = lines[-1]["run"]
        assert done["status"] == "error"
        assert "503" in done["error"]
        assert "test-key" not in json.dumps(lines)
    assert (await Usage.get(user__telegram_id=ann["id"])).ai_messages == 0  # a failure is not counted


async def test_labels_move_between_versions_diff_and_restore(frontdesk: Frontdesk, sim: Simulator) -> None:
    ann = sim.create_user("Ann")
    async with app_client(frontdesk, sim, ann["id"]) as client:
        project = await _project(client)
        for template in ("Greet {{name}}.\nBe brief.", "Greet {{name}} warmly.\nBe brief."):
            await _save(client, project, _doc(template, {"name": "Bob"}))
            await _run(client, project["id"], {"block_id": "p1", "model": "main-model@default"})
        new, old = (await client.get(f"/api/studio/projects/{project['id']}/versions?block_id=p1"))["versions"]
        await client.post(f"/api/studio/versions/{old['id']}/labels", {"label": "Production"})
        moved = await client.post(f"/api/studio/versions/{new['id']}/labels", {"label": "production"})
        assert moved["labels"] == ["production"]
        assert (await client.get(f"/api/studio/versions/{old['id']}"))["labels"] == []
        status, body = await client.call("POST", f"/api/studio/versions/{old['id']}/labels", {"label": "no spaces"})
        assert (status, body["error"]["code"]) == (400, "bad_label")
        diff = await client.get(f"/api/studio/versions/{new['id']}/diff")
        assert diff["against"] == 1
        assert diff["added"] == 1
        assert diff["removed"] == 1
        changed = next(line for hunk in diff["hunks"] for line in hunk if line["kind"] == "added")
        assert [s["text"] for s in changed["segments"] if s["changed"]] == [" warmly"]
        status, body = await client.call("POST", f"/api/studio/versions/{old['id']}/restore", {"revision": 1})
        assert (status, body["error"]["code"]) == (409, "stale")
        restored = await client.post(f"/api/studio/versions/{old['id']}/restore",
                                     {"revision": project["revision"]})
        assert restored["data"]["prompt_blocks"][0]["template"] == "Greet {{name}}.\nBe brief."
        bob = sim.create_user("Bob")
        async with app_client(frontdesk, sim, bob["id"]) as other:
            for method, path, body in [("GET", "", None), ("GET", "/diff", None),
                                       ("POST", "/labels", {"label": "x"}), ("POST", "/restore", {"revision": 1})]:
                status, _ = await other.call(method, f"/api/studio/versions/{old['id']}{path}", body)
                assert status == 404, (method, path)


async def test_models_lists_the_deployments_routes(frontdesk: Frontdesk, sim: Simulator) -> None:
    ann = sim.create_user("Ann")
    async with app_client(frontdesk, sim, ann["id"]) as client:
        models = (await client.get("/api/studio/models"))["models"]
        assert [(m["id"], m["own_key"]) for m in models] == [("main-model@default", False),
                                                             ("backup-model@default", False)]
        assert "test-key" not in json.dumps(models)


async def test_studio_pages_need_a_signed_in_person(frontdesk: Frontdesk) -> None:
    async with aiohttp.ClientSession() as session, session.get(frontdesk.url + "/api/studio/projects") as response:
        assert response.status == 401


def _imports(path: str, source: str) -> list[str]:
    """The paths a module's `import … from "./…";` lines load, resolved against its own path."""
    return [urljoin(path, spec) for spec in re.findall(r'^import .* from "(\./[^"]+)";$', source, re.M)]


async def test_the_editors_modules_are_asked_for_again_at_each_load(frontdesk: Frontdesk) -> None:
    """The editor is an ES module whose URL carries its version; the modules it imports have plain URLs,
    so the browser must revalidate them, or after a deploy it could run the new editor with an old module."""
    async with aiohttp.ClientSession() as session:
        async with session.get(frontdesk.url + "/app/studio/project?id=1") as page:
            [entry] = re.findall(r'<script type="module" src="(/static/studio_project\.js\?v=[^"]+)"',
                                 await page.text())
        async with session.get(frontdesk.url + entry) as response:
            pending = _imports(entry, await response.text())
        loaded: set[str] = set()
        while pending:
            path = pending.pop()
            if path in loaded:
                continue
            loaded.add(path)
            async with session.get(frontdesk.url + path) as response:
                assert (response.status, response.headers.get("Cache-Control")) == (200, "no-cache"), path
                pending += _imports(path, await response.text())
                unchanged = {"If-Modified-Since": response.headers["Last-Modified"]}
            async with session.get(frontdesk.url + path, headers=unchanged) as again:
                assert again.status == 304, path
    assert loaded == {f"/static/studio/{path.name}" for path in (ROOT / "webapp_static" / "studio").glob("*.js")}


@pytest.mark.parametrize("count", [projects.MAX_PROJECTS])
async def test_a_customer_has_at_most_so_many_projects(frontdesk: Frontdesk, sim: Simulator, count: int) -> None:
    ann = sim.create_user("Ann")
    async with app_client(frontdesk, sim, ann["id"]) as client:
        await _project(client, "one")
        owner = (await PromptProject.first()).owner_id  # type: ignore[union-attr]
        await PromptProject.bulk_create([PromptProject(bot_id=1, owner_id=owner, name=f"p{n}", data={})
                                         for n in range(count - 1)])
        status, body = await client.call("POST", "/api/studio/projects", {"name": "one too many"})
        assert (status, body["error"]["code"]) == (400, "too_many_projects")
        assert str(count) in body["error"]["message"]


# --- the persona shares the versioning -------------------------------------------------------------------


@pytest.fixture
async def desk(database_url: str, sim: Simulator, ai: FakeAI) -> AsyncIterator[Desk]:
    async with manager_desk(database_url, sim, ai) as running:
        yield running


async def test_persona_versions_carry_labels_that_move_and_diff_against_any_version(desk: Desk,
                                                                                    sim: Simulator) -> None:
    async with app_client(desk.frontdesk, sim, desk.mia["id"]) as staff:
        for text in ("You are Mia's shop.", "You are Mia's shop.\nBe brief.", "You are Mia's bakery.\nBe brief."):
            await staff.post("/api/persona/versions", {"text": text})
        await staff.post("/api/persona/versions/1/labels", {"label": "production"})
        labelled = await staff.post("/api/persona/versions/3/labels", {"label": "Production"})
        assert labelled["labels"] == ["production"]
        overview = await staff.get("/api/persona")
        assert [(v["version"], v["labels"]) for v in overview["versions"]] == [
            (3, ["production"]), (2, []), (1, [])]
        status, body = await staff.call("POST", "/api/persona/versions/2/labels", {"label": "-bad"})
        assert (status, body["error"]["code"]) == (400, "bad_label")
        diff = await staff.get("/api/persona/versions/3/diff?against=1")
        assert diff["previous"] == 1
        assert (diff["added"], diff["removed"]) == (2, 1)
        status, _ = await staff.call("DELETE", "/api/persona/versions/3/labels/production")
        assert status == 200
        assert (await staff.get("/api/persona/versions/3"))["labels"] == []
    assert await AuditLog.filter(action="persona_label").count() == 3
    ann = sim.create_user("Ann")
    async with app_client(desk.frontdesk, sim, ann["id"]) as customer:
        status, _ = await customer.call("POST", "/api/persona/versions/1/labels", {"label": "x"})
        assert status == 403


async def test_a_run_whose_reader_goes_away_is_kept_as_stopped(frontdesk: Frontdesk, sim: Simulator,
                                                               ai: FakeAI) -> None:
    ann = sim.create_user("Ann")
    ai.script.reply = "A long answer " * 50
    ai.script.chunk_size = 5
    ai.script.chunk_delay = 0.01
    ai.script.hold = asyncio.Event()
    async with app_client(frontdesk, sim, ann["id"]) as client:
        project = await _project(client)
        await _save(client, project, _doc("Say hi to {{name}}", {"name": "Bob"}))
        response = await client.session.post(f"{client.base}/api/studio/projects/{project['id']}/runs",
                                             json={"block_id": "p1", "model": "main-model@default"},
                                             headers=client.headers())
        first = json.loads(await response.content.readline())
        assert first["type"] == "run"
        response.close()  # the page was closed while the model was thinking
        ai.script.hold.set()
        ended = PromptRun.filter(id=first["run"]["id"]).exclude(status="running")
        await eventually(ended.exists, "the run ended")
    run = await PromptRun.get(id=first["run"]["id"])
    assert run.status == "stopped"
    assert ai.script.reply.startswith(run.answer)
    assert len(run.answer) < len(ai.script.reply)
    assert (await Usage.get(user__telegram_id=ann["id"])).ai_messages == 1  # cut short, yet the model worked


OWN_KEY = "sk-own-studio-K3y9w2Lm7Qx4"


# The provider is the fake AI on 127.0.0.1, as on a laptop whose operator allows a local model server.
@pytest.mark.parametrize("frontdesk_settings", [{"ALLOW_PRIVATE_PROVIDERS": "true"}], indirect=True)
async def test_runs_on_an_own_key_use_it_and_are_not_counted_even_past_the_quota(
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    ai.script.api_keys = {"test-key", OWN_KEY}
    ai.script.reply = "Answered on your own key."
    ann = sim.create_user("Ann")
    async with app_client(frontdesk, sim, ann["id"]) as client:
        key = await client.post("/api/studio/keys", {"name": "Mine", "base_url": ai.base_url, "api_key": OWN_KEY,
                                                     "models": ["own-model"]})
        models = (await client.get("/api/studio/models"))["models"]
        assert {"id": f"key{key['id']}/own-model", "model": "own-model", "provider": "Mine", "own_key": True} in models
        project = await _project(client)
        await _save(client, project, _doc("Say hi to {{name}}", {"name": "Bob"}))
        owner_id = (await PromptProject.get(id=project["id"])).owner_id
        await Usage.create(bot_id=1, user_id=owner_id, day=datetime.now(UTC).date(),
                           ai_messages=frontdesk.settings.daily_ai_quota)
        lines = await _run(client, project["id"], {"block_id": "p1", "model": f"key{key['id']}/own-model"})
        done = lines[-1]["run"]
        assert (done["status"], done["answer"], done["own_key"]) == ("ok", ai.script.reply, True)
        assert done["model_id"] == f"key{key['id']}/own-model"
        assert ai.requests[-1]["model"] == "own-model"
        history = await client.get(f"/api/studio/projects/{project['id']}/runs")
        status, body = await client.call("POST", f"/api/studio/projects/{project['id']}/runs",
                                         {"block_id": "p1", "model": "main-model@default"})
        assert (status, body["error"]["code"]) == (429, "quota")
    assert (await Usage.get(user_id=owner_id)).ai_messages == frontdesk.settings.daily_ai_quota  # not counted
    assert OWN_KEY not in json.dumps(lines) + json.dumps(history) + json.dumps(models)
    assert OWN_KEY not in caplog.text
    bob = sim.create_user("Bob")
    async with app_client(frontdesk, sim, bob["id"]) as other:
        bobs = await _project(other)
        await _save(other, bobs, _doc("Hi {{name}}", {"name": "x"}))
        status, body = await other.call("POST", f"/api/studio/projects/{bobs['id']}/runs",
                                        {"block_id": "p1", "model": f"key{key['id']}/own-model"})
        assert (status, body["error"]["code"]) == (400, "no_model")  # Ann's key is not Bob's


async def test_use_this_template_puts_it_into_a_new_or_an_existing_project(frontdesk: Frontdesk,
                                                                          sim: Simulator) -> None:
    shipped = await PromptTemplate.filter(slug__startswith="en/").order_by("id").first()
    assert shipped is not None
    ann, bob = sim.create_user("Ann"), sim.create_user("Bob")
    async with app_client(frontdesk, sim, ann["id"]) as client, app_client(frontdesk, sim, bob["id"]) as other:
        used = await client.post(f"/api/studio/templates/{shipped.id}/use", {})
        project = await client.get(f"/api/studio/projects/{used['project_id']}")
        assert project["name"] == shipped.title
        assert used["url"] == f"/app/studio/project?id={project['id']}&block={used['block_id']}"
        [block] = [b for b in project["data"]["prompt_blocks"] if b["id"] == used["block_id"]]
        assert block["template"] == shipped.body
        again = await client.post(f"/api/studio/templates/{shipped.id}/use", {"project_id": project["id"]})
        assert again["project_id"] == project["id"]
        assert len((await client.get(f"/api/studio/projects/{project['id']}"))["data"]["prompt_blocks"]) == 2
        own = await other.post("/api/studio/templates", {"title": "Bob's secret", "body": "Only {{bob}}"})
        status, body = await client.call("POST", f"/api/studio/templates/{own['id']}/use", {})
        assert (status, body["error"]["code"]) == (404, "not_found")
        status, body = await other.call("POST", f"/api/studio/templates/{shipped.id}/use",
                                        {"project_id": project["id"]})
        assert (status, body["error"]["code"]) == (404, "not_found")  # not Bob's project
    assert (await PromptTemplate.get(id=shipped.id)).uses == shipped.uses + 2
