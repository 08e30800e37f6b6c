"""A customer's prompt studio in their data export, and gone with the rest when they delete their data."""

from __future__ import annotations

import json
from typing import Any

from tgsim import Simulator

from models import PromptProject, PromptRun, PromptTemplate, PromptVersion, ProviderKey, User
from tests.conftest import Frontdesk
from tests.fake_ai import FakeAI
from tests.miniapp_helpers import AppClient, app_client

SEALED = "bm9uY2UtY2lwaGVydGV4dC10YWc="  # what an encrypted key looks like in its row


async def _project_with_a_run(client: AppClient, name: str, template: str) -> dict[str, Any]:
    project: dict[str, Any] = await client.post("/api/studio/projects", {"name": name})
    data = {"context_blocks": [], "prompt_blocks": [{"id": "p1", "name": "Main", "template": template,
                                                     "variables": {}, "model": ""}]}
    status, _ = await client.call("PUT", f"/api/studio/projects/{project['id']}",
                                  {"revision": project["revision"], "data": data})
    assert status == 200
    async with client.session.post(f"{client.base}/api/studio/projects/{project['id']}/runs",
                                   json={"block_id": "p1", "model": "main-model@default"},
                                   headers=client.headers()) as response:
        assert response.status == 200
        await response.read()
    return project


async def _own_library(user: User, last4: str) -> None:
    await PromptTemplate.create(owner=user, title=f"{user.first_name}'s intro", body="Hi {{name}}", tags="email")
    await ProviderKey.create(bot_id=user.bot_id, owner=user, name="My OpenRouter",
                             base_url="https://openrouter.ai/api/v1", models=["gpt-4o-mini"], secret=SEALED,
                             key_id="k1", last4=last4)


async def test_my_data_holds_my_prompt_studio_and_deleting_it_takes_all_of_it(
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ai.script.reply = "Hello, Bob!"
    ann, bob = sim.create_user("Ann"), sim.create_user("Bob")
    async with app_client(frontdesk, sim, ann["id"]) as mine, app_client(frontdesk, sim, bob["id"]) as other:
        await _project_with_a_run(mine, "Greetings", "Say hello to Bob")
        await _project_with_a_run(other, "Bob's secrets", "Bob's own prompt")
        ann_user, bob_user = await User.get(telegram_id=ann["id"]), await User.get(telegram_id=bob["id"])
        await _own_library(ann_user, "a1b2")
        await _own_library(bob_user, "z9y8")
        assert await PromptTemplate.exists(slug="en/summarize-text")  # the shipped library, seeded at start

        status, exported = await mine.call("GET", "/api/me/data")
        assert status == 200
        [project] = exported["prompt_projects"]
        assert (project["name"], project["document"]["prompt_blocks"][0]["template"]) == \
            ("Greetings", "Say hello to Bob")
        assert [(v["number"], v["compiled"]) for v in project["versions"]] == [(1, "Say hello to Bob")]
        [run] = exported["prompt_runs"]
        assert (run["prompt"], run["answer"], run["model"], run["project"]) == \
            ("Say hello to Bob", "Hello, Bob!", "main-model@default", project["id"])
        assert run["tokens_in"] > 0
        assert run["tokens_out"] > 0
        assert run["cost"] >= 0
        assert run["created_at"]
        assert [t["title"] for t in exported["prompt_templates"]] == ["Ann's intro"]  # not the shipped ones
        assert exported["api_keys"] == [{"name": "My OpenRouter", "base_url": "https://openrouter.ai/api/v1",
                                         "models": ["gpt-4o-mini"], "last4": "a1b2"}]
        text = json.dumps(exported)
        assert SEALED not in text
        assert "Bob's" not in text
        assert "z9y8" not in text

        status, counts = await mine.call("DELETE", "/api/me/data", {"confirm": True})
        assert status == 200
        assert counts == {"conversations": 0, "messages": 0, "prompt_projects": 1, "prompt_versions": 1,
                          "prompt_runs": 1, "prompt_templates": 1, "api_keys": 1}
    for model in (PromptProject, PromptRun, PromptTemplate, ProviderKey):
        assert not await model.filter(**{"user_id" if model is PromptRun else "owner_id": ann_user.id}).exists()
    assert not await PromptVersion.filter(project__name="Greetings").exists()
    # Bob's studio and the shipped templates are untouched.
    assert await PromptProject.filter(owner_id=bob_user.id).count() == 1
    assert await PromptVersion.filter(project__owner_id=bob_user.id).count() == 1
    assert await PromptRun.filter(user_id=bob_user.id).count() == 1
    assert await PromptTemplate.filter(owner_id=bob_user.id).count() == 1
    assert await ProviderKey.filter(owner_id=bob_user.id).count() == 1
    assert await PromptTemplate.exists(slug="en/summarize-text")
