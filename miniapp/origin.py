"""What a request says about itself behind a proxy, in one place.

Our own address and scheme are answered by services.public_address (PUBLIC_BASE_URL) and nothing else:
the page origin the widget and the live socket check, and whether cookies are `Secure`. No header a
proxy adds (X-Forwarded-Proto, X-Forwarded-Host) is read for them. The visitor's address is the one
thing TRUST_PROXY_HEADERS lets a proxy tell: `client_address`.
"""

from __future__ import annotations

from aiohttp import web

from services.public_address import PublicAddress

PUBLIC = web.AppKey("public_address", PublicAddress)


def _came_to(request: web.Request) -> str:
    """The scheme and host this server saw the request come to (a proxy's plain http, behind one)."""
    return f"{request.scheme}://{request.host}"


def own_origin(request: web.Request) -> str:
    """The origin of our own pages."""
    return request.app[PUBLIC].own_origin(_came_to(request))


def request_origin(request: web.Request) -> str:
    """The page's origin. Browsers leave Origin out of same-origin GETs: then it is our own."""
    return request.headers.get("Origin") or own_origin(request)


def from_own_page(request: web.Request) -> bool:
    """Whether the request comes from one of our own pages (a cookie rides along with any page's request)."""
    return request.app[PUBLIC].is_own(request_origin(request), _came_to(request))


def secure_cookies(request: web.Request) -> bool:
    return request.app[PUBLIC].secure_cookies(request.secure)


def public_base(request: web.Request) -> str:
    """The address to put in links shown on a page: as everywhere (PublicAddress.base), with this request's
    address only as the guess of last resort."""
    return request.app[PUBLIC].base(_came_to(request))


def client_address(request: web.Request, trust_forwarded: bool) -> str:
    """The visitor's address; behind a proxy (TRUST_PROXY_HEADERS) the one it saw, else the peer's."""
    if trust_forwarded:
        forwarded = request.headers.get("X-Forwarded-For", "")
        if forwarded:
            return forwarded.split(",")[-1].strip()
    return request.remote or "?"
