"""Secrets at rest: what opens a sealed key and what does not, rotating ENCRYPTION_KEY, and how the
deployment gets its key (production insists on one; development makes its own)."""

from __future__ import annotations

import logging
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from bot.app import create_app
from bot.keys import BOX, SECRETS
from bot.settings import Settings
from models import Bot, ProviderKey, User
from services import bots, conversations
from services.provider_keys import KeyPolicy, ProviderKeys, context
from services.redaction import Secrets
from services.secrets_box import SecretBox, Tampered, UnknownKey, key_id, new_key, parse_key
from tests.test_process import _clean_environment

OLD, NEW = new_key(), new_key()
URL = "https://api.example.com/v1"


def box(*keys: str) -> SecretBox:
    current, *old = keys
    return SecretBox(parse_key(current), [parse_key(key) for key in old])


def test_a_sealed_value_opens_again_and_no_two_seals_look_alike() -> None:
    sealer = box(NEW)
    first, second = sealer.seal("sk-live-1234", "provider_key:7:" + URL), sealer.seal("sk-live-1234",
                                                                                        "provider_key:7:" + URL)
    assert first.secret != second.secret  # a fresh nonce each time
    assert "sk-live" not in first.secret
    assert first.key_id == key_id(parse_key(NEW))
    assert len(first.key_id) == 16
    assert sealer.open(first.secret, first.key_id, "provider_key:7:" + URL) == "sk-live-1234"


def test_a_value_sealed_under_another_encryption_key_is_told_apart_from_tampering() -> None:
    sealed = box(OLD).seal("sk-live-1234", "provider_key:7")
    with pytest.raises(UnknownKey, match="ENCRYPTION_OLD_KEYS"):
        box(NEW).open(sealed.secret, sealed.key_id, "provider_key:7")
    assert box(NEW, OLD).open(sealed.secret, sealed.key_id, "provider_key:7") == "sk-live-1234"


def test_a_tampered_ciphertext_does_not_open() -> None:
    sealer = box(NEW)
    sealed = sealer.seal("sk-live-1234", "provider_key:7")
    raw = bytearray(sealed.secret.encode())
    raw[20] = ord("A") if raw[20] != ord("A") else ord("B")
    for altered in (raw.decode(), sealed.secret[:-8], "not base64 at all!"):
        with pytest.raises(Tampered):
            sealer.open(altered, sealed.key_id, "provider_key:7")


async def test_a_key_moved_to_another_person_or_another_address_does_not_open(database: str) -> None:
    tenant = await conversations.ensure_bot(1)
    ann = await conversations.register_customer(tenant.id, conversations.Customer(1001, "Ann"), "en")
    bob = await conversations.register_customer(tenant.id, conversations.Customer(1002, "Bob"), "en")
    keys = ProviderKeys(box(NEW), Secrets(), KeyPolicy(allow_private=True))
    sealed = keys.box.seal("sk-ann-secret-key", context(ann.id, URL))
    row = await ProviderKey.create(bot_id=tenant.id, owner_id=ann.id, name="Ann's", base_url=URL, models=["m"],
                                   secret=sealed.secret, key_id=sealed.key_id, last4="-key")
    client, _ = await keys.open_client(row)
    assert client.api_key == "sk-ann-secret-key"
    await client.close()

    # Someone with access to the database copies Ann's ciphertext to Bob's row, or points her row at
    # their own server: neither opens.
    copied = await ProviderKey.create(bot_id=tenant.id, owner_id=bob.id, name="Bob's", base_url=URL, models=["m"],
                                      secret=row.secret, key_id=row.key_id, last4="-key")
    with pytest.raises(Tampered):
        await keys.open_client(copied)
    await ProviderKey.filter(id=row.id).update(base_url="https://attacker.example/v1")
    with pytest.raises(Tampered):
        await keys.open_client(await ProviderKey.get(id=row.id))


def _cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=tmp_path, capture_output=True, text=True,
                          env=_clean_environment(**env), timeout=60, check=False)


async def test_rotate_keys_reseals_stored_keys_under_the_new_encryption_key(
        database_url: str, database: str, tmp_path: Path) -> None:
    tenant = await conversations.ensure_bot(1)
    ann = await conversations.register_customer(tenant.id, conversations.Customer(1001, "Ann"), "en")
    old_box = box(OLD)
    rows = []
    for number in range(2):
        sealed = old_box.seal(f"sk-ann-key-{number}", context(ann.id, URL))
        rows.append(await ProviderKey.create(bot_id=tenant.id, owner_id=ann.id, name=f"k{number}", base_url=URL,
                                             models=["m"], secret=sealed.secret, key_id=sealed.key_id, last4="x"))
    # A bot the platform owner added keeps its token sealed too.
    token = old_box.seal("7100000002:SHOP-token", bots.token_context(7100000002))
    shop = await Bot.create(telegram_id=7100000002, token_secret=token.secret, token_key_id=token.key_id)

    # The new key alone opens nothing of the old: the list says so, and rotate-keys says how to fix it
    # and changes nothing.
    new_only = ProviderKeys(box(NEW), Secrets(), KeyPolicy(allow_private=True))
    assert [key.readable for key in await new_only.list_keys(ann)] == [False, False]
    refused = _cli(tmp_path, "rotate-keys", DATABASE_URL=database_url, ENCRYPTION_KEY=NEW)
    assert refused.returncode == 1
    assert f"ids {rows[0].id}, {rows[1].id}" in refused.stderr
    assert f"the tokens of bots {shop.id} open with no configured key" in refused.stderr
    assert "ENCRYPTION_OLD_KEYS" in refused.stderr
    assert {row.key_id for row in await ProviderKey.all()} == {old_box.key_id}

    rotated = _cli(tmp_path, "rotate-keys", DATABASE_URL=database_url, ENCRYPTION_KEY=NEW, ENCRYPTION_OLD_KEYS=OLD)
    assert rotated.returncode == 0, rotated.stderr
    assert "re-sealed 2 keys under the current ENCRYPTION_KEY; 0 already were" in rotated.stdout
    assert "re-sealed 1 bot tokens" in rotated.stdout
    assert bots.open_token(await Bot.get(id=shop.id), new_only.box) == "7100000002:SHOP-token"
    assert OLD not in rotated.stdout + rotated.stderr
    assert NEW not in rotated.stdout + rotated.stderr
    assert [key.readable for key in await new_only.list_keys(ann)] == [True, True]
    for number, row in enumerate(await ProviderKey.all().order_by("id")):
        assert row.key_id == new_only.box.key_id
        client, _ = await new_only.open_client(row)
        assert client.api_key == f"sk-ann-key-{number}"
        await client.close()
    again = _cli(tmp_path, "rotate-keys", DATABASE_URL=database_url, ENCRYPTION_KEY=NEW, ENCRYPTION_OLD_KEYS=OLD)
    assert "re-sealed 0 keys under the current ENCRYPTION_KEY; 2 already were" in again.stdout
    assert await User.get(id=ann.id)  # nothing else was touched


def test_production_refuses_to_start_without_an_encryption_key(tmp_path: Path) -> None:
    result = _cli(tmp_path, APP_ENV="production", ENCRYPTION_KEY="", PORT="0")
    assert result.returncode == 2
    assert "ENCRYPTION_KEY is required when APP_ENV=production" in result.stderr
    assert "python -m bot encryption-key" in result.stderr
    assert not list(tmp_path.rglob("encryption.key"))

    made = _cli(tmp_path, "encryption-key", APP_ENV="production", ENCRYPTION_KEY="")  # works right there
    assert made.returncode == 0
    assert len(parse_key(made.stdout.strip())) == 32


@pytest.mark.parametrize(("variable", "value", "problem"), [
    ("ENCRYPTION_KEY", "c2hvcnQ=", "is 5 bytes long, not 32"),
    ("ENCRYPTION_KEY", "not base64!", "is not base64"),
    ("ENCRYPTION_OLD_KEYS", f"{OLD},c2hvcnQ=", "is 5 bytes long, not 32"),
])
def test_a_malformed_encryption_key_is_named_without_echoing_it(variable: str, value: str, problem: str) -> None:
    with pytest.raises(ValidationError) as failure:
        Settings(_env_file=None, **{variable: value})  # type: ignore[arg-type]
    assert problem in str(failure.value)
    assert variable in str(failure.value)
    assert value not in str(failure.value)
    assert "python -m bot encryption-key" in str(failure.value)


def test_development_makes_its_own_key_beside_the_database_and_keeps_it(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings: dict[str, Any] = {"DATABASE_URL": f"sqlite://{tmp_path / 'shop' / 'frontdesk.sqlite3'}",
                                "ENCRYPTION_KEY": ""}
    with caplog.at_level(logging.WARNING, logger="bot.encryption"):
        first = create_app(Settings(_env_file=None, **settings))
        second = create_app(Settings(_env_file=None, **settings))
    key_file = tmp_path / "shop" / "encryption.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text().strip()
    assert first[BOX].key_id == second[BOX].key_id == key_id(parse_key(key))
    warnings = [record.getMessage() for record in caplog.records if "ENCRYPTION_KEY is not set" in record.getMessage()]
    assert len(warnings) == 2  # one per start
    assert "made now in" in warnings[0]
    assert str(key_file) in warnings[0]
    assert "made now" not in warnings[1]
    assert key not in caplog.text
    assert first[SECRETS].clean(f"key={key}") == "key=[redacted]"  # the logs redact it like any secret
