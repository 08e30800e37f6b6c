"""The strings no log line may show: the deployment's secrets, and customers' own API keys while in use.

One `Secrets` object per process is made by the composition root from the settings and handed both to
the logging filter (bot.observability.Redact) and to the services that hold secrets for a while (a
customer's key while it is checked or used), which `hold` them and let go when done. It is an object
passed around rather than a module global, so two apps in one process (tests) do not share it.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable

MIN_LENGTH = 8  # shorter strings are too likely to occur by chance to be replaced everywhere


class Secrets:
    """A set of strings to redact; held ones are reference-counted, so a key in two runs at once stays
    hidden until both are done. Safe to read from any thread (logging may happen in executors)."""

    def __init__(self, permanent: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._permanent = {secret for secret in permanent if len(secret) >= MIN_LENGTH}
        self._held: Counter[str] = Counter()
        self._sorted: tuple[str, ...] = ()
        self._refresh()

    def add(self, secret: str) -> None:
        """Redact `secret` for the life of the process (a key from the settings or a key file)."""
        if len(secret) < MIN_LENGTH:
            return
        with self._lock:
            self._permanent.add(secret)
            self._refresh()

    def hold(self, secret: str) -> Callable[[], None]:
        """Redact `secret` until the returned function is called (calling it again does nothing)."""
        if len(secret) < MIN_LENGTH:
            return lambda: None
        with self._lock:
            self._held[secret] += 1
            self._refresh()
        released = False

        def release() -> None:
            nonlocal released
            with self._lock:
                if released:
                    return
                released = True
                self._held[secret] -= 1
                if self._held[secret] <= 0:
                    del self._held[secret]
                self._refresh()

        return release

    def _refresh(self) -> None:
        # Longest first, so a secret containing another is replaced whole.
        self._sorted = tuple(sorted(self._permanent | set(self._held), key=len, reverse=True))

    @property
    def empty(self) -> bool:
        return not self._sorted

    def clean(self, text: str) -> str:
        for secret in self._sorted:
            if secret in text:
                text = text.replace(secret, "[redacted]")
        return text
