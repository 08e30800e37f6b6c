"""Customers' own API keys for the prompt studio: checked once with the provider, stored sealed.

A key is added only after one cheap call proves it works (a one-token chat completion on its first
model), and is then stored encrypted (services.secrets_box) with its last four characters for the
list. The plain key exists only in memory: while it is checked, and for a run (`open_client`).
While it is in memory it is also held in the process's `Secrets`, so no log line can carry it.

Where a key may point: only `https://` addresses that are public, because any customer can add a
key and we would otherwise call into our own network on their behalf (unmetered use of a model
server on this machine, or the answer's status and timing telling them which internal ports are
open). The rule is services/network_policy.py's, applied where each connection is made: a name is
resolved once, and the call goes to the very addresses judged (no DNS rebinding between a check
and the call). Redirects are never followed, so a public address cannot bounce the call inside
either. Only when the operator allows private providers (ALLOW_PRIVATE_PROVIDERS, for a laptop with
a local model server) may a key point at private addresses, and then `http://` too, to this
machine's names and private IP addresses: a key never crosses the internet unencrypted.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx2
import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletion
from tortoise.transactions import in_transaction

from models import ProviderKey, User
from services.limits import RateLimiter, Verdict
from services.network_policy import Resolve, checked_client, is_ip_literal, is_public, private_address_in, resolve_dns
from services.redaction import Secrets
from services.secrets_box import BoxError, SecretBox

log = logging.getLogger(__name__)

MAX_KEYS = 10
MAX_MODELS = 10
MAX_NAME = 60
MAX_URL = 300  # the column's size
MAX_MODEL_NAME = 120
LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


class KeyRefused(ValueError):
    """The key cannot be added; `code` says why to a program, `params` fill the message."""

    def __init__(self, code: str, **params: Any) -> None:
        super().__init__(code)
        self.code = code
        self.params = params


@dataclass(frozen=True)
class KeyPolicy:
    allow_private: bool = False  # ALLOW_PRIVATE_PROVIDERS: private addresses too, and http:// to them
    check_timeout: float = 15.0  # seconds the provider has to answer the check
    run_timeout: float = 60.0  # seconds a run's call may take (the client's default)


@dataclass(frozen=True)
class KeyInfo:
    """What may be shown about a key: never the key, never its ciphertext."""

    id: int
    name: str
    base_url: str
    models: list[str]
    last4: str
    created_at: datetime
    last_used_at: datetime | None
    readable: bool  # sealed under a key this deployment has (False after ENCRYPTION_KEY changed)


@dataclass(frozen=True)
class Rotation:
    resealed: int = 0
    current: int = 0
    unreadable: list[int] = field(default_factory=list)  # ids of keys no configured key opens


def context(owner_id: int, base_url: str) -> str:
    """What a sealed key is bound to: its owner and its address. Moving the ciphertext to another
    person's row, or pointing the row at another server, makes it unopenable."""
    return f"provider_key:{owner_id}:{base_url}"


class OwnKeyClient(AsyncOpenAI):
    """The official client on a customer's key; closing it lets go of the key's redaction hold."""

    def __init__(self, *, release: Callable[[], None] | None = None, **options: Any) -> None:
        super().__init__(**options)
        # Called once: at close, or when a client nobody closed is collected.
        self._release = weakref.finalize(self, release) if release is not None else None

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            if self._release is not None:
                self._release()


class ProviderKeys:
    def __init__(self, box: SecretBox, secrets: Secrets, policy: KeyPolicy, checks: RateLimiter | None = None,
                 resolve: Resolve = resolve_dns, tls: ssl.SSLContext | None = None) -> None:
        self.box = box
        self.secrets = secrets
        self.policy = policy
        self.checks = checks  # each check calls a server the customer chose: a budget per person
        self.resolve = resolve  # where names point, judged at each connection (a seam for tests)
        self.tls = tls  # the system's trust store unless given

    # --- adding ----------------------------------------------------------------------------------

    async def add(self, owner: User, name: str, base_url: str, api_key: str, models: Sequence[str]) -> KeyInfo:
        """Check the key with its provider and store it sealed; KeyRefused says why not."""
        name, url, api_key, names = _name(name), _url(base_url), _api_key(api_key), _models(models)
        await self._check_room(owner, name)
        self._check_address(url)  # what the URL alone shows costs no check
        if self.checks is not None and await self.checks.check(f"key-check:{owner.id}") is not Verdict.ALLOW:
            raise KeyRefused("too_many_checks")
        await self._try_key(url, api_key, names[0])
        sealed = self.box.seal(api_key, context(owner.id, url))
        async with in_transaction() as connection:
            query = User.filter(id=owner.id)
            if connection.capabilities.dialect == "postgres":
                query = query.select_for_update()  # one person's adds, one at a time
            await query.get()
            await self._check_room(owner, name)
            row = await ProviderKey.create(bot_id=owner.bot_id, owner_id=owner.id,
                                           name=name, base_url=url, models=names, secret=sealed.secret,
                                           key_id=sealed.key_id, last4=api_key[-4:])
        log.info("user %s added provider key %s for %s", owner.id, row.id, urlsplit(url).hostname)
        return self._info(row)

    async def _check_room(self, owner: User, name: str) -> None:
        names = await ProviderKey.filter(owner_id=owner.id).values_list("name", flat=True)
        if len(names) >= MAX_KEYS:
            raise KeyRefused("too_many_keys", max=MAX_KEYS)
        if name.casefold() in {str(existing).casefold() for existing in names}:
            raise KeyRefused("duplicate_name", name=name)

    def _check_address(self, url: str) -> None:
        """What the URL alone shows: a private IP literal or this machine's name, and plain http. Where a
        name points is judged at each connection (network_policy), as the call is made."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        local = host in LOCAL_NAMES or host.endswith(".localhost") or (is_ip_literal(host) and not is_public(host))
        if local and not self.policy.allow_private:
            raise KeyRefused("private_address", host=host)
        if parts.scheme != "https" and not local:
            raise KeyRefused("https_only")

    async def _try_key(self, url: str, api_key: str, model: str) -> None:
        """One chat completion of one token: what the provider answers says whether the key works."""
        timeout = self.policy.check_timeout
        client = self._client(url, api_key, timeout)
        host = urlsplit(url).hostname or url
        try:
            async with asyncio.timeout(timeout + 1):
                answer = await client.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": "Hi"}], max_tokens=1)
        except openai.AuthenticationError as error:
            raise KeyRefused("bad_key") from error
        except openai.PermissionDeniedError as error:
            raise KeyRefused("model_forbidden", model=model) from error
        except openai.NotFoundError as error:
            raise KeyRefused("unknown_model", model=model) from error
        except openai.RateLimitError as error:
            raise KeyRefused("rate_limited") from error
        except (openai.APITimeoutError, TimeoutError) as error:
            raise KeyRefused("timeout", seconds=round(timeout)) from error
        except openai.APIConnectionError as error:
            refused = private_address_in(error)
            if refused is not None:
                raise KeyRefused("private_address", host=refused.host) from error
            raise KeyRefused("unreachable", host=host) from error
        except openai.APIStatusError as error:
            if 300 <= error.status_code < 400:
                raise KeyRefused("redirected", status=error.status_code) from error
            raise KeyRefused("provider_error", status=error.status_code) from error
        except openai.APIError as error:
            raise KeyRefused("not_compatible") from error
        finally:
            await client.close()
        if not isinstance(answer, ChatCompletion) or not getattr(answer, "choices", None):
            raise KeyRefused("not_compatible")  # a web page, or some other API, answered 200

    def _client(self, url: str, api_key: str, timeout: float) -> OwnKeyClient:
        release = self.secrets.hold(api_key)
        try:
            # Every connection through the address rule; no redirect followed, no proxy from the environment.
            http = checked_client(allow_private=self.policy.allow_private, resolve=self.resolve, tls=self.tls,
                                  timeout=httpx2.Timeout(timeout, connect=min(timeout, 10.0)))
            return OwnKeyClient(release=release, api_key=api_key, base_url=url, timeout=timeout, max_retries=0,
                                http_client=http)
        except BaseException:
            release()
            raise

    # --- listing, removing, using ----------------------------------------------------------------

    def _info(self, row: ProviderKey) -> KeyInfo:
        return KeyInfo(row.id, row.name, row.base_url, list(row.models), row.last4, row.created_at,
                       row.last_used_at, row.key_id in self.box.key_ids)

    async def list_keys(self, owner: User) -> list[KeyInfo]:
        rows = await ProviderKey.filter(owner_id=owner.id).order_by("id")
        return [self._info(row) for row in rows]

    async def get(self, owner: User, key_id: int) -> ProviderKey | None:
        """The person's own key; None for one that is not theirs or does not exist."""
        return await ProviderKey.get_or_none(id=key_id, owner_id=owner.id)

    async def delete(self, owner: User, key_id: int) -> bool:
        deleted = await ProviderKey.filter(id=key_id, owner_id=owner.id).delete()
        if deleted:
            log.info("user %s deleted provider key %s", owner.id, key_id)
        return bool(deleted)

    async def open_client(self, key: ProviderKey) -> tuple[AsyncOpenAI, list[str]]:
        """A client on the key (decrypted in memory only) and the models it may run, the first by
        default. Close the client when the run is done (`async with client:`).

        Raises BoxError (UnknownKey: sealed under an encryption key this deployment no longer has;
        Tampered: altered in the database) and KeyRefused when the address is no longer allowed (the
        operator stopped allowing private providers). Where the name points now is judged at each of the
        client's connections: one that moved to a private address fails with openai.APIConnectionError."""
        self._check_address(key.base_url)
        plain = self.box.open(key.secret, key.key_id, context(key.owner_id, key.base_url))
        client = self._client(key.base_url, plain, self.policy.run_timeout)
        key.last_used_at = datetime.now(UTC)
        await ProviderKey.filter(id=key.id).update(last_used_at=key.last_used_at)
        return client, list(key.models)

    async def rotate(self) -> Rotation:
        """Re-seal every stored key under the current ENCRYPTION_KEY (after a key change)."""
        resealed = current = 0
        unreadable: list[int] = []
        for row in await ProviderKey.all().order_by("id"):
            if self.box.is_current(row.key_id):
                current += 1
                continue
            try:
                sealed = self.box.reseal(row.secret, row.key_id, context(row.owner_id, row.base_url))
            except BoxError:
                unreadable.append(row.id)
                continue
            # Only if the row is as read: a key deleted or re-added meanwhile is left alone.
            resealed += await ProviderKey.filter(id=row.id, key_id=row.key_id, secret=row.secret).update(
                secret=sealed.secret, key_id=sealed.key_id)
        return Rotation(resealed, current, unreadable)


# --- what a key's fields may be ------------------------------------------------------------------


def _name(name: str) -> str:
    name = " ".join(name.split())
    if not name or len(name) > MAX_NAME:
        raise KeyRefused("bad_name", max=MAX_NAME)
    return name


def _url(base_url: str) -> str:
    url = base_url.strip().rstrip("/")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a port that is not a number)
    except ValueError as error:
        raise KeyRefused("bad_url") from error
    if (parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password
            or parts.query or parts.fragment or len(url) > MAX_URL or not url.isascii() or " " in url):
        raise KeyRefused("bad_url")
    return url


def _api_key(api_key: str) -> str:
    api_key = api_key.strip()
    if not 8 <= len(api_key) <= 500 or not api_key.isascii() or not api_key.isprintable() or " " in api_key:
        raise KeyRefused("bad_api_key")
    return api_key


def _models(models: Sequence[str]) -> list[str]:
    names = list(dict.fromkeys(model.strip() for model in models if model.strip()))
    if not 1 <= len(names) <= MAX_MODELS:
        raise KeyRefused("bad_models", max=MAX_MODELS)
    for model in names:
        if len(model) > MAX_MODEL_NAME or not model.isprintable() or any(c.isspace() for c in model):
            raise KeyRefused("bad_model_name", max=MAX_MODEL_NAME)
    return names
