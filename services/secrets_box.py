"""Secrets at rest: AES-256-GCM under the deployment's ENCRYPTION_KEY.

A sealed value is base64(nonce | ciphertext | tag) with a fresh 96-bit random nonce each time, and
stored beside the id of the key that sealed it (the first 16 hex digits of the key's SHA-256). The
associated data names what the value is and whose (`provider_key:42:https://api.example/v1`), so a
ciphertext copied into another row, or a row whose address was changed, does not open.

Rotation: the box opens with the current key or any old one (ENCRYPTION_OLD_KEYS) and always seals
with the current one; `python -m bot rotate-keys` re-seals what was sealed under an old key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12
HOW_TO_MAKE_ONE = "make one with `python -m bot encryption-key` (or `openssl rand -base64 32`)"


class BoxError(Exception):
    """A sealed value could not be opened."""


class UnknownKey(BoxError):
    """Sealed under an encryption key this deployment does not have (ENCRYPTION_KEY changed, and
    the old one is not in ENCRYPTION_OLD_KEYS)."""


class Tampered(BoxError):
    """The key is right but the value does not open: it was altered, or belongs to another row."""


def parse_key(text: str) -> bytes:
    """A key written as base64 (standard or URL-safe, padded or not) of exactly 32 bytes."""
    cleaned = text.strip().replace("-", "+").replace("_", "/")
    try:
        raw = base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True)
    except (binascii.Error, ValueError) as error:
        raise ValueError(f"is not base64: it must be 32 random bytes in base64; {HOW_TO_MAKE_ONE}") from error
    if len(raw) != KEY_BYTES:
        raise ValueError(f"is {len(raw)} bytes long, not {KEY_BYTES}: {HOW_TO_MAKE_ONE}")
    return raw


def new_key() -> str:
    """A fresh key, as URL-safe base64 (44 characters)."""
    return base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).decode()


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:16]


@dataclass(frozen=True)
class Sealed:
    secret: str  # base64(nonce | ciphertext | tag)
    key_id: str  # which key sealed it


class SecretBox:
    def __init__(self, current: bytes, old: Sequence[bytes] = ()) -> None:
        self.key_id = key_id(current)
        self._current = AESGCM(current)
        self._keys = {key_id(key): AESGCM(key) for key in old}
        self._keys[self.key_id] = self._current

    def seal(self, plain: str, context: str) -> Sealed:
        """Encrypt `plain` for `context` (what it is and whose); only the same context opens it."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._current.encrypt(nonce, plain.encode(), context.encode())
        return Sealed(base64.b64encode(nonce + sealed).decode(), self.key_id)

    def open(self, secret: str, sealed_with: str, context: str) -> str:
        aead = self._keys.get(sealed_with)
        if aead is None:
            raise UnknownKey(f"sealed under encryption key {sealed_with}, which is neither ENCRYPTION_KEY "
                             "nor one of ENCRYPTION_OLD_KEYS")
        try:
            raw = base64.b64decode(secret, validate=True)
        except (binascii.Error, ValueError) as error:
            raise Tampered("the sealed value is not base64") from error
        if len(raw) < NONCE_BYTES + 16:
            raise Tampered("the sealed value is too short")
        try:
            return aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode()).decode()
        except InvalidTag as error:
            raise Tampered("the sealed value was altered or belongs to another row") from error

    @property
    def key_ids(self) -> frozenset[str]:
        """The ids of every key this box opens with."""
        return frozenset(self._keys)

    def is_current(self, sealed_with: str) -> bool:
        return sealed_with == self.key_id

    def reseal(self, secret: str, sealed_with: str, context: str) -> Sealed:
        """The same plain value sealed under the current key (for rotation)."""
        return self.seal(self.open(secret, sealed_with, context), context)
