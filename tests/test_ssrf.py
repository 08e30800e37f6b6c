"""SSRF: under the default settings, a customer's own API key cannot make this process connect into its
own network, whatever address, spelling or DNS trick it uses; only the operator can allow a local model
server (ALLOW_PRIVATE_PROVIDERS). Every attempt goes through the real server, and a listener on the
loopback addresses shows that nothing was contacted."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp import web
from cryptography import x509
from tgsim import Simulator

from bot.settings import Settings
from miniapp.api import TRANSLATE
from miniapp.keys_api import PROVIDER_KEYS, REFUSALS
from models import ProviderKey
from services.network_policy import Address, is_public, private_address_in, resolve_dns
from services.provider_keys import ProviderKeys
from services.secrets_box import new_key
from tests.conftest import Frontdesk
from tests.fake_ai import FakeAI
from tests.miniapp_helpers import AppClient, app_client
from tests.test_web_sources import certificate_authority

OWN_KEY = "sk-own-Zq8v3LmN0pQr5tUw7yA1cD9f"


class Tripwire:
    """A TCP listener on 127.0.0.1 and ::1, on one port, that records every connection made to it."""

    def __init__(self) -> None:
        self.connections: list[object] = []
        self.port = 0
        self._servers: list[asyncio.Server] = []

    async def start(self) -> Tripwire:
        self._servers.append(await asyncio.start_server(self._connected, "127.0.0.1", 0))
        self.port = self._servers[0].sockets[0].getsockname()[1]
        with contextlib.suppress(OSError):  # a machine without IPv6 cannot be reached on ::1 either
            self._servers.append(await asyncio.start_server(self._connected, "::1", self.port))
        return self

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
            await server.wait_closed()

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections.append(writer.get_extra_info("peername"))
        writer.close()


class FakeDNS:
    """The tests' DNS: a name's answers in turn (the last one stays), each 127.0.0.1 vouched for as public
    (a provider on the internet) or known as private; other names as the system resolves them."""

    def __init__(self, **names: list[bool]) -> None:
        self.names = {name.replace("_", "."): list(answers) for name, answers in names.items()}
        self.asked: list[str] = []

    async def resolve(self, host: str, port: int) -> list[Address]:
        self.asked.append(host)
        answers = self.names.get(host)
        if not answers:
            return await resolve_dns(host, port)
        public = answers.pop(0) if len(answers) > 1 else answers[0]
        return [Address("127.0.0.1", public)]


@pytest.fixture
async def tripwire() -> AsyncIterator[Tripwire]:
    wire = await Tripwire().start()
    yield wire
    await wire.stop()


@pytest.fixture
async def ann(frontdesk: Frontdesk, sim: Simulator) -> AsyncIterator[AppClient]:
    async with app_client(frontdesk, sim, sim.create_user("Ann")["id"]) as client:
        yield client


def own_keys(frontdesk: Frontdesk, dns: FakeDNS, trust: ssl.SSLContext | None = None) -> ProviderKeys:
    """The server's own keys service, with the tests' DNS (and trust in the test CA) as its dependencies."""
    keys = frontdesk.app[PROVIDER_KEYS]
    keys.resolve = dns.resolve
    keys.tls = trust
    return keys


def key_body(base_url: str) -> dict[str, Any]:
    return {"name": "Mine", "base_url": base_url, "api_key": OWN_KEY, "models": ["own-model"]}


def refusal(frontdesk: Frontdesk, code: str, locale: str = "en", **params: Any) -> dict[str, Any]:
    return {"code": code, "message": frontdesk.app[TRANSLATE](locale, REFUSALS[code][1]).format(**params)}


# (base URL, the host the refusal names); {port} is the tripwire's.
MATRIX = [
    ("http://127.0.0.1:{port}/v1", "127.0.0.1"),
    ("https://localhost:{port}/v1", "localhost"),
    ("http://localhost.localdomain:{port}/v1", "localhost.localdomain"),
    ("https://[::1]:{port}/v1", "::1"),
    ("https://10.0.0.8/v1", "10.0.0.8"),
    ("https://172.16.5.4/v1", "172.16.5.4"),
    ("https://192.168.1.10/v1", "192.168.1.10"),
    ("http://169.254.169.254/latest/v1", "169.254.169.254"),  # the cloud's metadata service
    ("https://100.64.0.1/v1", "100.64.0.1"),  # CGNAT
    ("http://0.0.0.0:{port}/v1", "0.0.0.0"),
    ("https://[::ffff:127.0.0.1]:{port}/v1", "::ffff:127.0.0.1"),  # IPv4-mapped
    ("https://[::127.0.0.1]:{port}/v1", "::127.0.0.1"),  # IPv4-compatible
    ("https://[64:ff9b::7f00:1]:{port}/v1", "64:ff9b::7f00:1"),  # NAT64 of 127.0.0.1
    ("https://[64:ff9b:1::a00:8]/v1", "64:ff9b:1::a00:8"),  # local-use NAT64
    ("https://[2002:7f00:1::]:{port}/v1", "2002:7f00:1::"),  # 6to4 of 127.0.0.1
    ("https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/v1", "2001:0:4136:e378:8000:63bf:3fff:fdd2"),  # Teredo
    ("https://[fd12:3456::1]/v1", "fd12:3456::1"),  # unique-local
    ("https://[fe80::1]/v1", "fe80::1"),  # link-local
    ("https://224.0.0.251/v1", "224.0.0.251"),  # multicast
    ("https://internal.test:{port}/v1", "internal.test"),  # a name for a private address
    ("https://2130706433:{port}/v1", "2130706433"),  # 127.0.0.1 as one number, read by the system's resolver
]


async def test_under_the_default_settings_no_key_may_point_into_our_network(
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI, ann: AppClient, tripwire: Tripwire) -> None:
    assert frontdesk.settings.allow_private_providers is False
    own_keys(frontdesk, FakeDNS(internal_test=[False]))
    answers, expected = {}, {}
    for url, host in MATRIX:
        base_url = url.format(port=tripwire.port)
        status, answer = await ann.call("POST", "/api/studio/keys", key_body(base_url))
        answers[base_url] = (status, answer["error"])
        expected[base_url] = (400, refusal(frontdesk, "private_address", host=host))
    assert answers == expected
    async with app_client(frontdesk, sim, sim.create_user("Олег", language_code="ru")["id"]) as oleg:
        status, answer = await oleg.call("POST", "/api/studio/keys", key_body("https://internal.test/v1"))
    assert (status, answer["error"]) == (400, refusal(frontdesk, "private_address", "ru", host="internal.test"))
    assert "адрес" in answer["error"]["message"]
    assert tripwire.connections == []  # nothing was contacted
    assert ai.requests == []
    assert await ProviderKey.all().count() == 0


async def test_a_name_that_moves_to_a_private_address_after_the_check_is_refused_at_the_connection(
        frontdesk: Frontdesk, ann: AppClient, tmp_path: Path) -> None:
    server_tls, ca = certificate_authority(tmp_path, x509.DNSName("provider.test"))
    provider = await FakeAI().start(server_tls)  # "a provider on the internet" while the name says so
    provider.script.api_keys = {OWN_KEY}
    dns = FakeDNS(provider_test=[True, False])  # public when first asked, private from then on
    keys = own_keys(frontdesk, dns, ssl.create_default_context(cadata=ca))
    try:
        status, added = await ann.call("POST", "/api/studio/keys",
                                       key_body(f"https://provider.test:{provider.port}/v1"))
        assert status == 201, added
        assert dns.asked == ["provider.test"]  # asked once: the call went to the address the rule judged
        assert len(provider.requests) == 1

        client, models = await keys.open_client(await ProviderKey.get(id=added["id"]))
        async with client:
            with pytest.raises(openai.APIConnectionError) as failed:
                await client.chat.completions.create(model=models[0], messages=[{"role": "user", "content": "Hi"}])
    finally:
        await provider.stop()
    refused = private_address_in(failed.value)
    assert refused is not None
    assert refused.host == "provider.test"
    assert len(provider.requests) == 1  # the name now points inside: nothing went there


async def test_a_redirect_into_our_network_is_not_followed(
        frontdesk: Frontdesk, ann: AppClient, tripwire: Tripwire, tmp_path: Path) -> None:
    asked: list[str] = []

    async def jump(request: web.Request) -> web.Response:
        asked.append(request.path)
        raise web.HTTPTemporaryRedirect(f"http://127.0.0.1:{tripwire.port}/v1/chat/completions")

    server_tls, ca = certificate_authority(tmp_path, x509.DNSName("jump.test"))
    app = web.Application()
    app.router.add_post("/v1/chat/completions", jump)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_tls).start()
    own_keys(frontdesk, FakeDNS(jump_test=[True]), ssl.create_default_context(cadata=ca))
    try:
        status, answer = await ann.call("POST", "/api/studio/keys",
                                        key_body(f"https://jump.test:{runner.addresses[0][1]}/v1"))
    finally:
        await runner.cleanup()
    assert (status, answer["error"]) == (422, refusal(frontdesk, "redirected", status=307))
    assert asked == ["/v1/chat/completions"]
    assert tripwire.connections == []


@pytest.mark.parametrize("frontdesk_settings", [{"ALLOW_PRIVATE_PROVIDERS": "true"}], indirect=True)
async def test_the_operator_may_allow_a_local_model_server(frontdesk: Frontdesk, ai: FakeAI, ann: AppClient) -> None:
    ai.script.api_keys = {"test-key", OWN_KEY}
    status, added = await ann.call("POST", "/api/studio/keys", key_body(ai.base_url))  # http://127.0.0.1:…/v1
    assert status == 201, added
    assert ai.keys_seen == [OWN_KEY]
    # Plain http stays for this machine and private addresses: a key never crosses the internet unencrypted.
    far = {**key_body("http://api.example.com/v1"), "name": "Far"}
    status, answer = await ann.call("POST", "/api/studio/keys", far)
    assert (status, answer["error"]["code"]) == (400, "https_only")


def test_private_addresses_take_an_explicit_setting_whatever_the_environment() -> None:
    environments: list[dict[str, Any]] = [{}, {"APP_ENV": "development"},
                                          {"APP_ENV": "production", "ENCRYPTION_KEY": new_key()}]
    for env in environments:
        settings = Settings(_env_file=None, **env)
        assert (settings.allow_private_providers, settings.staff_may_fetch_private) == (False, False)
    laptop = Settings(_env_file=None, ALLOW_PRIVATE_PROVIDERS="true")
    assert (laptop.allow_private_providers, laptop.staff_may_fetch_private) == (True, True)
    intranet = Settings(_env_file=None, KNOWLEDGE_ALLOW_PRIVATE_URLS="true")
    assert (intranet.allow_private_providers, intranet.staff_may_fetch_private) == (False, True)


@pytest.mark.parametrize(("address", "public"), [
    ("8.8.8.8", True), ("2606:4700:4700::1111", True), ("::ffff:8.8.8.8", True), ("64:ff9b::808:808", True),
    ("2002:808:808::1", True),
    ("127.0.0.1", False), ("10.0.0.5", False), ("172.16.0.1", False), ("192.168.0.1", False),
    ("169.254.169.254", False), ("100.64.0.1", False), ("0.0.0.0", False), ("224.0.0.1", False),
    ("239.255.255.250", False), ("240.0.0.1", False), ("255.255.255.255", False), ("192.0.2.1", False),
    ("::1", False), ("::", False), ("fe80::1", False), ("fe80::1%eth0", False), ("fd00::1", False),
    ("fec0::1", False), ("ff0e::1", False), ("2001:db8::1", False),
    ("::ffff:10.0.0.5", False), ("::127.0.0.1", False), ("::8.8.8.8", False), ("64:ff9b::a00:5", False),
    ("64:ff9b::7f00:1", False), ("64:ff9b:1::808:808", False), ("2002:a00:5::1", False), ("2002:7f00:1::", False),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False),
])
def test_an_address_is_public_only_if_every_ipv4_address_inside_it_is(address: str, public: bool) -> None:
    assert is_public(address) is public

