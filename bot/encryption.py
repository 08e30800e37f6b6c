"""The deployment's SecretBox from ENCRYPTION_KEY, or, in development, from a key file it makes itself."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from bot.settings import Settings
from services.redaction import Secrets
from services.secrets_box import SecretBox, new_key, parse_key

log = logging.getLogger(__name__)


def development_key(path: Path) -> tuple[str, bool]:
    """The key in `path`, made (readable by this user only) when there is none; True when made now.
    Two processes starting at once agree on one key: the file appears whole, or not at all."""
    with contextlib.suppress(FileNotFoundError):
        return path.read_text().strip(), False
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(new_key() + "\n")
    try:
        os.link(draft, path)  # fails when another process made it first: theirs wins
        made = True
    except FileExistsError:
        made = False
    finally:
        draft.unlink()
    return path.read_text().strip(), made


def secret_box(settings: Settings, secrets: Secrets) -> SecretBox:
    """ENCRYPTION_KEY (and ENCRYPTION_OLD_KEYS); without it (development only: Settings refuses
    production) the development key file, with one warning. The key joins the redacted secrets."""
    text = settings.encryption_key
    if not text:
        path = settings.encryption_key_file
        text, made = development_key(path)
        secrets.add(text)
        try:
            parse_key(text)
        except ValueError as error:
            raise ValueError(f"the development key in {path} {error} (or delete the file to get a new one, "
                             "if nothing was sealed with it)") from error
        log.warning("ENCRYPTION_KEY is not set: customers' API keys are sealed with the development key %s %s. "
                    "Set ENCRYPTION_KEY (python -m bot encryption-key) and APP_ENV=production on a server.",
                    "made now in" if made else "in", path)
    return SecretBox(parse_key(text), [parse_key(old) for old in settings.encryption_old_keys])
