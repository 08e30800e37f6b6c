"""Customers' own API keys through the real server: checked with the provider (the fake AI) before
they are stored, stored sealed, listed by their last four characters only, each person's own; and
the plain key in no answer and no log line, whatever happens."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from tgsim import Simulator

from bot.keys import SECRETS
from bot.observability import Redact
from miniapp.api import TRANSLATE
from miniapp.keys_api import PROVIDER_KEYS, REFUSALS
from models import ProviderKey, User
from services import conversations
from services.provider_keys import MAX_KEYS, KeyPolicy, KeyRefused, ProviderKeys
from services.redaction import Secrets
from services.secrets_box import SecretBox, new_key, parse_key
from tests.conftest import Frontdesk, free_port
from tests.fake_ai import FakeAI
from tests.miniapp_helpers import AppClient, app_client

OWN_KEY = "sk-own-Zq8v3LmN0pQr5tUw7yA1cD9f"
TRANSPORT_LOGGERS = ("openai", "httpx2", "httpcore2", "httpx", "httpcore", "aiohttp", "tortoise", "asyncio")


def key_body(ai: FakeAI, **changes: Any) -> dict[str, Any]:
    return {"name": "My OpenAI", "base_url": ai.base_url, "api_key": OWN_KEY, "models": ["own-model", "own-mini"],
            **changes}


@pytest.fixture
def frontdesk_settings() -> dict[str, Any]:
    """The provider is the fake AI on 127.0.0.1, as on a laptop whose operator allows a local model server
    (tests/test_ssrf.py: what the defaults allow)."""
    return {"ALLOW_PRIVATE_PROVIDERS": "true"}


@pytest.fixture
def provider(ai: FakeAI) -> FakeAI:
    """The fake AI as a provider that knows the deployment's key and the customer's own, and two models."""
    ai.script.api_keys = {"test-key", OWN_KEY}
    ai.script.models = {"main-model", "backup-model", "own-model", "own-mini"}
    return ai


@pytest.fixture
async def ann(frontdesk: Frontdesk, sim: Simulator) -> AsyncIterator[AppClient]:
    async with app_client(frontdesk, sim, sim.create_user("Ann")["id"]) as client:
        yield client


async def test_a_key_the_provider_accepts_is_stored_sealed_and_shown_by_its_last_four(
        frontdesk: Frontdesk, provider: FakeAI, ann: AppClient) -> None:
    status, added = await ann.call("POST", "/api/studio/keys", key_body(provider))
    assert status == 201, added
    assert added["last4"] == OWN_KEY[-4:] == "cD9f"
    assert added["models"] == ["own-model", "own-mini"]
    assert added["readable"] is True
    [check] = provider.requests
    assert check["model"] == "own-model"
    assert check["max_tokens"] == 1
    assert provider.keys_seen == [OWN_KEY]

    listed = await ann.get("/api/studio/keys")
    assert listed["max_keys"] == MAX_KEYS
    assert [(key["name"], key["base_url"], key["last4"]) for key in listed["keys"]] == [
        ("My OpenAI", provider.base_url, OWN_KEY[-4:])]
    assert set(listed["keys"][0]) == {"id", "name", "base_url", "models", "last4", "created_at", "last_used_at",
                                      "readable"}
    row = await ProviderKey.get(id=added["id"])
    assert OWN_KEY not in row.secret
    assert OWN_KEY[4:-4] not in row.secret

    # A run opens it in memory only: the provider sees the key, the row its last use.
    client, models = await frontdesk.app[PROVIDER_KEYS].open_client(row)
    async with client:
        answer = await client.chat.completions.create(model=models[0], messages=[{"role": "user", "content": "Hi"}])
    assert answer.choices[0].message.content
    assert provider.keys_seen[-1] == OWN_KEY
    assert (await ann.get("/api/studio/keys"))["keys"][0]["last_used_at"] is not None


@pytest.mark.parametrize(("change", "code"), [
    ({"api_key": "sk-wrong-Zq8v3LmN0pQr5tUw7yA1"}, "bad_key"),
    ({"models": ["no-such-model"]}, "unknown_model"),
    ({"base_url": "http://127.0.0.1:{closed}/v1"}, "unreachable"),
])
async def test_a_key_the_provider_refuses_is_not_stored_and_the_caller_is_told_why(
        frontdesk: Frontdesk, provider: FakeAI, ann: AppClient, change: dict[str, Any], code: str) -> None:
    body = key_body(provider, **change)
    body["base_url"] = body["base_url"].format(closed=free_port())
    status, answer = await ann.call("POST", "/api/studio/keys", body)
    assert status == 422
    assert answer["error"]["code"] == code
    message = frontdesk.app[TRANSLATE]("en", REFUSALS[code][1]).format(
        model=body["models"][0], host="127.0.0.1", status=0, seconds=0)
    assert answer["error"]["message"] == message
    assert await ProviderKey.all().count() == 0
    assert (await ann.get("/api/studio/keys"))["keys"] == []


async def test_errors_come_in_the_callers_language(frontdesk: Frontdesk, sim: Simulator, provider: FakeAI) -> None:
    async with app_client(frontdesk, sim, sim.create_user("Олег", language_code="ru")["id"]) as oleg:
        status, answer = await oleg.call("POST", "/api/studio/keys", key_body(provider, api_key="sk-wrong-key-123456"))
    assert status == 422
    assert answer["error"]["message"] == frontdesk.app[TRANSLATE]("ru", REFUSALS["bad_key"][1])


@pytest.mark.parametrize(("change", "code"), [
    ({"name": "  "}, "bad_name"),
    ({"name": "x" * 61}, "bad_name"),
    ({"base_url": "ftp://files.example/v1"}, "bad_url"),
    ({"base_url": "https://user:pass@api.example/v1"}, "bad_url"),
    ({"base_url": "http://api.example.com/v1"}, "https_only"),  # http only to private addresses, when allowed
    ({"api_key": "short"}, "bad_api_key"),
    ({"api_key": "sk-with a space-inside"}, "bad_api_key"),
    ({"models": []}, "bad_models"),
    ({"models": [f"m{n}" for n in range(11)]}, "bad_models"),
    ({"models": ["gpt 4"]}, "bad_model_name"),
])
async def test_bad_input_is_refused_with_400_before_the_provider_is_called(
        provider: FakeAI, ann: AppClient, change: dict[str, Any], code: str) -> None:
    status, answer = await ann.call("POST", "/api/studio/keys", key_body(provider, **change))
    assert (status, answer["error"]["code"]) == (400, code), answer
    assert provider.requests == []
    assert await ProviderKey.all().count() == 0


async def test_malformed_bodies_get_400(provider: FakeAI, ann: AppClient) -> None:
    for body in ({"name": "x"}, {**key_body(provider), "extra": 1}, {**key_body(provider), "models": "own-model"}):
        status, answer = await ann.call("POST", "/api/studio/keys", body)
        assert (status, answer["error"]["code"]) == (400, "bad_request")
        assert OWN_KEY not in json.dumps(answer)
    assert provider.requests == []


async def test_another_persons_key_answers_404_and_stays(
        frontdesk: Frontdesk, sim: Simulator, provider: FakeAI, ann: AppClient) -> None:
    added = await ann.post("/api/studio/keys", key_body(provider))
    bob_id = sim.create_user("Bob")["id"]
    async with app_client(frontdesk, sim, bob_id) as bob:
        assert (await bob.get("/api/studio/keys"))["keys"] == []
        for path in (f"/api/studio/keys/{added['id']}", "/api/studio/keys/999999", "/api/studio/keys/abc"):
            status, answer = await bob.call("DELETE", path)
            assert (status, answer["error"]["code"]) == (404, "not_found")
    assert await frontdesk.app[PROVIDER_KEYS].get(await User.get(telegram_id=bob_id), added["id"]) is None
    assert await ProviderKey.filter(id=added["id"]).exists()
    status, left = await ann.call("DELETE", f"/api/studio/keys/{added['id']}")
    assert (status, left["keys"]) == (200, [])
    assert not await ProviderKey.filter(id=added["id"]).exists()
    async with app_client(frontdesk) as anonymous:
        assert (await anonymous.call("GET", "/api/studio/keys"))[0] == 401


async def test_a_person_keeps_at_most_ten_keys_each_under_its_own_name(provider: FakeAI, ann: AppClient) -> None:
    for number in range(MAX_KEYS):
        await ann.post("/api/studio/keys", key_body(provider, name=f"Key {number}"))
    status, answer = await ann.call("POST", "/api/studio/keys", key_body(provider, name="One more"))
    assert (status, answer["error"]["code"]) == (409, "too_many_keys")
    assert "10" in answer["error"]["message"]
    await ann.call("DELETE", f"/api/studio/keys/{(await ProviderKey.first()).id}")  # type: ignore[union-attr]
    status, answer = await ann.call("POST", "/api/studio/keys", key_body(provider, name="key 5"))
    assert (status, answer["error"]["code"]) == (409, "duplicate_name")
    assert len(provider.requests) == MAX_KEYS  # refused ones never reached the provider
    assert await ProviderKey.all().count() == MAX_KEYS - 1


async def test_trying_keys_is_limited_per_person(frontdesk: Frontdesk, sim: Simulator, provider: FakeAI,
                                                 ann: AppClient) -> None:
    wrong = key_body(provider, api_key="sk-wrong-Zq8v3LmN0pQr5tUw7yA1")
    for _ in range(10):
        assert (await ann.call("POST", "/api/studio/keys", wrong))[0] == 422
    status, answer = await ann.call("POST", "/api/studio/keys", key_body(provider))
    assert (status, answer["error"]["code"]) == (429, "too_many_checks")
    assert len(provider.requests) == 10
    async with app_client(frontdesk, sim, sim.create_user("Bob")["id"]) as bob:
        assert (await bob.call("POST", "/api/studio/keys", key_body(provider)))[0] == 201


async def test_the_plain_key_reaches_no_log_line_and_no_answer(
        frontdesk: Frontdesk, sim: Simulator, provider: FakeAI, ann: AppClient,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name in TRANSPORT_LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    answers: list[Any] = []
    for method, path, body in [
        ("POST", "/api/studio/keys", key_body(provider, api_key=OWN_KEY[:-1] + "X")),  # refused: 401
        ("POST", "/api/studio/keys", key_body(provider, models=["no-such-model"])),  # refused: 404
        ("POST", "/api/studio/keys", key_body(provider, base_url=f"http://127.0.0.1:{free_port()}/v1")),
        ("POST", "/api/studio/keys", key_body(provider, name="y" * 61)),  # refused: 400
        ("POST", "/api/studio/keys", key_body(provider)),
        ("GET", "/api/studio/keys", None),
        ("GET", "/api/openapi.json", None),
    ]:
        answers.append(await ann.call(method, path, body))
    row = await ProviderKey.get()
    client, models = await frontdesk.app[PROVIDER_KEYS].open_client(row)
    async with client:
        await client.chat.completions.create(model=models[0], messages=[{"role": "user", "content": "Hi"}])
        provider.script.failing_models = {"own-model": 500}
        with pytest.raises(Exception, match="500"):
            await client.chat.completions.create(model=models[0], messages=[{"role": "user", "content": "Hi"}])
    answers.append(await ann.call("DELETE", f"/api/studio/keys/{row.id}"))

    assert any(record.name.startswith("openai") for record in caplog.records), "openai's debug lines were captured"
    assert any(record.name.startswith("httpx2") for record in caplog.records)
    everything = caplog.text + "\n".join(record.getMessage() for record in caplog.records) + json.dumps(answers)
    for part in (OWN_KEY, OWN_KEY[:-1] + "X", OWN_KEY[4:-4]):
        assert part not in everything


async def test_a_key_in_use_is_redacted_from_logs_until_its_client_is_closed(
        frontdesk: Frontdesk, provider: FakeAI, ann: AppClient) -> None:
    await ann.post("/api/studio/keys", key_body(provider))
    secrets = frontdesk.app[SECRETS]
    redact = Redact(secrets)

    def logged(text: str) -> str:
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "failed: %s", (text,), None)
        redact.filter(record)
        return record.getMessage()

    client, _ = await frontdesk.app[PROVIDER_KEYS].open_client(await ProviderKey.get())
    assert logged(f"Bearer {OWN_KEY}") == "failed: Bearer [redacted]"
    await client.close()
    assert logged(f"Bearer {OWN_KEY}") == f"failed: Bearer {OWN_KEY}"  # let go: it is no secret of ours now
    assert logged(frontdesk.settings.encryption_key) == "failed: [redacted]"


# --- the service alone: where keys may point, and slow or odd providers ------------------------------


@pytest.fixture
async def owner(database: str) -> User:
    tenant = await conversations.ensure_bot(1)
    return await conversations.register_customer(tenant.id, conversations.Customer(1001, "Ann"), "en")


def service(*, allow_private: bool, check_timeout: float = 15.0, **kwargs: Any) -> ProviderKeys:
    return ProviderKeys(SecretBox(parse_key(new_key())), Secrets(), KeyPolicy(allow_private, check_timeout), **kwargs)


async def test_a_key_stored_while_private_providers_were_allowed_is_not_used_once_they_are_not(
        owner: User, provider: FakeAI) -> None:
    laptop = service(allow_private=True)
    await laptop.add(owner, "Local", provider.base_url, OWN_KEY, ["own-model"])
    server = ProviderKeys(laptop.box, Secrets(), KeyPolicy(allow_private=False))
    with pytest.raises(KeyRefused) as refused:
        await server.open_client(await ProviderKey.get())
    assert (refused.value.code, refused.value.params) == ("private_address", {"host": "127.0.0.1"})
    assert len(provider.requests) == 1  # the check when it was added, and nothing since


async def test_a_provider_that_does_not_answer_in_time_is_reported(owner: User, provider: FakeAI) -> None:
    provider.script.hold = asyncio.Event()
    keys = service(allow_private=True, check_timeout=0.3)
    with pytest.raises(KeyRefused) as refused:
        await keys.add(owner, "Slow", provider.base_url, OWN_KEY, ["own-model"])
    assert (refused.value.code, refused.value.params) == ("timeout", {"seconds": 0})
    assert await ProviderKey.all().count() == 0


async def test_redirects_and_pages_that_are_no_api_are_refused(owner: User, provider: FakeAI) -> None:
    async def elsewhere(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(provider.base_url + "/chat/completions")

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<html>Welcome</html>", content_type="text/html")

    async def other_api(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/redirect/chat/completions", elsewhere)
    app.router.add_post("/page/chat/completions", page)
    app.router.add_post("/other/chat/completions", other_api)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    keys = service(allow_private=True)
    try:
        for path, code in (("redirect", "redirected"), ("page", "not_compatible"), ("other", "not_compatible")):
            with pytest.raises(KeyRefused) as refused:
                await keys.add(owner, path, f"http://127.0.0.1:{port}/{path}", OWN_KEY, ["own-model"])
            assert refused.value.code == code
    finally:
        await runner.cleanup()
    assert provider.requests == []  # the redirect was not followed
