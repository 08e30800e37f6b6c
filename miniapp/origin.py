"""What a request says about our own address, answered by services.public_address (PUBLIC_BASE_URL) and
nothing else: the page origin the widget and the live socket check, and whether cookies are `Secure`."""

from __future__ import annotations

from aiohttp import web

from services.public_address import PublicAddress

PUBLIC = web.AppKey("public_address", PublicAddress)


def _came_to(request: web.Request) -> str:
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
    """The address to put in links shown on a page: PUBLIC_BASE_URL, else the one this request came to."""
    return request.app[PUBLIC].base(_came_to(request))
