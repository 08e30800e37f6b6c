"""The prompt studio's own API keys: list, add (checked with the provider first), delete.

Anyone signed in, for their own keys only: another person's key answers 404, like one that does
not exist. No answer ever carries a key or its ciphertext, only its last four characters.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Annotated

from aiohttp import web
from pydantic import BaseModel, Field, SecretStr

from miniapp.api import Api, ApiError, ok, path_id, read_body
from miniapp.auth import authenticate
from miniapp.schemas import Strict
from services.i18n import N_
from services.provider_keys import MAX_KEYS, KeyInfo, KeyRefused, ProviderKeys

PROVIDER_KEYS = web.AppKey("provider_keys", ProviderKeys)

# Each a message, and the status it answers with: 400 what was sent is wrong, 409 the list does not
# take it, 422 the provider did not accept the key, 429 too many keys were tried lately.
REFUSALS: dict[str, tuple[int, str]] = {
    "bad_name": (400, N_("Give the key a name of up to {max} characters.")),
    "bad_url": (400, N_("The base URL must be a web address like https://api.openai.com/v1.")),
    "https_only": (400, N_("The base URL must start with https://.")),
    "private_address": (400, N_("{host} is not a public address: a key may only point to a provider on the "
                                "internet.")),
    "redirected": (422, N_("That address answered with a redirect (HTTP {status}), and redirects are not followed. "
                           "Enter the address the provider's documentation gives as the base URL.")),
    "bad_api_key": (400, N_("That does not look like an API key: paste the whole key, without spaces.")),
    "bad_models": (400, N_("List from 1 to {max} models this key may run, like gpt-4o-mini.")),
    "bad_model_name": (400, N_("Model names are up to {max} characters long, without spaces.")),
    "too_many_keys": (409, N_("You can keep up to {max} keys. Delete one to add another.")),
    "duplicate_name": (409, N_("You already have a key named “{name}”.")),
    "bad_key": (422, N_("The provider refused this API key (401). Check that you copied all of it and that it is "
                        "still active.")),
    "model_forbidden": (422, N_("The provider does not let this key use {model} (403).")),
    "unknown_model": (422, N_("The provider does not know the model {model} (404). Check the model's name and the "
                              "base URL (it usually ends in /v1).")),
    "rate_limited": (422, N_("The provider is limiting this key right now, or its credit has run out (429). Try "
                             "again later.")),
    "provider_error": (422, N_("The provider answered with an error (HTTP {status}). Check the base URL and the "
                               "model, or try again later.")),
    "unreachable": (422, N_("Could not reach {host}. Check the base URL.")),
    "timeout": (422, N_("The provider did not answer within {seconds} seconds. Try again later.")),
    "not_compatible": (422, N_("That address answered, but not as an OpenAI-compatible API does. Check the base "
                               "URL.")),
    "too_many_checks": (429, N_("Too many keys tried in a short time. Please wait a few minutes and try again.")),
}


class KeyIn(Strict):
    name: str = Field(max_length=200, description="How the key is called in the studio (up to 60 characters)")
    base_url: str = Field(max_length=2000, description="The provider's OpenAI-compatible API, e.g. "
                                                       "https://api.openai.com/v1 or https://openrouter.ai/api/v1")
    api_key: SecretStr = Field(max_length=1000, description="Checked with one tiny call, then stored encrypted; "
                                                            "never shown again")
    models: list[Annotated[str, Field(max_length=500)]] = Field(
        max_length=50, description="1 to 10 model names this key may run; the first is the default")


class KeyOut(BaseModel):
    id: int
    name: str
    base_url: str
    models: list[str]
    last4: str = Field(description="The key's last four characters: all that is ever shown of it")
    created_at: str
    last_used_at: str | None
    readable: bool = Field(description="False when the server's encryption key changed and this key must be "
                                       "added again")


class KeyList(BaseModel):
    keys: list[KeyOut]
    max_keys: int


def _out(key: KeyInfo) -> KeyOut:
    return KeyOut(id=key.id, name=key.name, base_url=key.base_url, models=key.models, last4=key.last4,
                  created_at=key.created_at.isoformat(), last_used_at=_iso(key.last_used_at), readable=key.readable)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


async def keys_view(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    keys = await request.app[PROVIDER_KEYS].list_keys(caller.user)
    return ok(KeyList(keys=[_out(key) for key in keys], max_keys=MAX_KEYS))


async def add_key(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    body = await read_body(request, KeyIn)
    try:
        key = await request.app[PROVIDER_KEYS].add(caller.user, body.name, body.base_url,
                                                   body.api_key.get_secret_value(), body.models)
    except KeyRefused as refused:
        status, message = REFUSALS[refused.code]
        raise ApiError(status, refused.code, message, **refused.params) from None  # the provider's words stay out
    return ok(_out(key), status=201)


async def delete_key(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    key_id = path_id(request, "key_id")
    if not await request.app[PROVIDER_KEYS].delete(caller.user, key_id):
        raise ApiError(404, "not_found")
    return await keys_view(request)


def add_routes(app: web.Application, api: Api) -> None:
    route = functools.partial(api.route, app, roles="anyone signed in, for their own keys")
    route("GET", "/api/studio/keys", keys_view, response=KeyList,
          summary="My own API keys for the prompt studio: names, addresses, models, the last four characters")
    route("POST", "/api/studio/keys", add_key, body=KeyIn, response=KeyOut,
          summary="Add an API key: checked with the provider (one tiny call) and stored encrypted; 422 with the "
                  "reason when the provider does not accept it")
    route("DELETE", "/api/studio/keys/{key_id}", delete_key, response=KeyList,
          summary="Delete one of my API keys")
