"""Which scheme and which address people reach this deployment at: one answer for cookies, origin checks and links.

PUBLIC_BASE_URL is that answer when it is set. Behind a proxy that ends TLS (the compose file's
Caddy behind an outer TLS proxy, a load balancer) a request arrives over plain http, so what the
request says about its scheme is not what the browser sees; the setting is. Without it (local
development), the request's own address is all there is for origin checks and cookies. A link
(the Mini App's, a /dashboard link, an embed snippet) is made the same way wherever it is shown:
PUBLIC_BASE_URL, else WEBHOOK_BASE_URL (Telegram reaches us there, so people can too), else the
address the request came to, else this machine's.

Every address of this deployment is built here, Telegram's webhook included.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

WEBHOOK_PATH = "/telegram/webhook"


@dataclass(frozen=True)
class PublicAddress:
    base_url: str = ""  # PUBLIC_BASE_URL without its trailing slash; "" when unset
    webhook_base: str = ""  # WEBHOOK_BASE_URL without its trailing slash; "" (long polling) when unset
    port: int = 8080  # where this machine listens (PORT)

    @classmethod
    def of(cls, public_base_url: str, webhook_base_url: str = "", port: int = 8080) -> PublicAddress:
        return cls(public_base_url.strip().rstrip("/"), webhook_base_url.strip().rstrip("/"), port)

    @property
    def https(self) -> bool:
        return self.base_url.lower().startswith("https://")

    @property
    def origin(self) -> str:
        """PUBLIC_BASE_URL's origin (scheme://host[:port], as a browser's Origin header says it); "" when unset."""
        if not self.base_url:
            return ""
        parts = urlsplit(self.base_url)
        return f"{parts.scheme.lower()}://{parts.netloc.lower()}"

    def base(self, seen_as: str = "") -> str:
        """The address to put in a link: PUBLIC_BASE_URL, else WEBHOOK_BASE_URL, else the one a request came to
        (`seen_as`: a proxy's plain http, behind one, so only a guess), else this machine's."""
        return self.base_url or self.webhook_base or seen_as.rstrip("/") or f"http://localhost:{self.port}"

    @property
    def webhook_url(self) -> str:
        """Where Telegram posts updates; "" means long polling."""
        return f"{self.webhook_base}{WEBHOOK_PATH}" if self.webhook_base else ""

    @property
    def demo_origins(self) -> list[str]:
        """The pages the demo chat may be embedded in: this machine's, and PUBLIC_BASE_URL's."""
        local = [f"http://localhost:{self.port}", f"http://127.0.0.1:{self.port}"]
        return [*local, self.origin] if self.origin else local

    @property
    def mini_app_url(self) -> str:
        """The Mini App's address for Telegram's buttons, which open https only; "" otherwise."""
        return f"{self.base_url}/app/" if self.https else ""

    def mini_app_url_of(self, bot_id: int, path: str = "", **query: str | int) -> str:
        """A bot's Mini App (the page at `path` under /app/, with `query`) for that bot's buttons: the app learns
        from `?bot=` whose it is, and checks Telegram's signature with that bot's token. "" without https."""
        base = self.mini_app_url
        return f"{base}{path.lstrip('/')}?{urlencode({'bot': bot_id, **query})}" if base else ""

    def secure_cookies(self, over_tls: bool) -> bool:
        """Cookies are `Secure` whenever PUBLIC_BASE_URL is https, whatever scheme a proxy passed the request on
        with; without it, when the request itself came over TLS."""
        return self.https or over_tls

    def own_origin(self, request_origin: str) -> str:
        """The origin of our own pages: PUBLIC_BASE_URL's, else the one the request came to."""
        return self.origin or request_origin

    def is_own(self, origin: str, request_origin: str) -> bool:
        """Whether a page at `origin` is one of ours. With PUBLIC_BASE_URL only its origin is (not the same host
        over http, which is what a proxy's plain-http request would otherwise say)."""
        return bool(origin) and origin.lower() == self.own_origin(request_origin).lower()
