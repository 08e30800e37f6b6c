"""Where this process may connect on someone else's behalf: the one home of the public-address rule.

Two kinds of people make us open connections to addresses they choose: customers, with their own
API keys (services/provider_keys.py), and staff, with websites as knowledge (services/web_sources.py).
Either could otherwise point us at our own network (a local model server, an admin page on 10.0.0.5,
the cloud's metadata service at 169.254.169.254) and learn from the answer, or its status and timing,
what is there. Unless the operator allows private addresses, every address we connect to for them
must be public (`is_public`).

The rule is applied where the connection is made, not to the URL beforehand: `CheckedBackend` is an
httpcore2 network backend, and httpcore2 opens every connection through a backend's `connect_tcp`.
There a host name is resolved once, every address it resolves to is judged (one private address
refuses the name), and the connection goes to one of those very addresses, never to the name again;
so a name cannot point to a public address for a check and to a private one for the connection (DNS
rebinding). TLS is started afterwards on that connection, with the URL's host name, so the
certificate is checked for the name. Every connection a client makes goes through it, a redirect's
included.

`checked_client` builds the httpx2 client (httpx2 is the HTTP client the OpenAI SDK brings) that both
use. It ignores the environment (`trust_env=False`): a proxy from HTTP_PROXY or ALL_PROXY would
make the connection itself, to an address the rule never sees.

The operator's own providers (AI_BASE_URL, AI_PROVIDERS, EMBEDDING_BASE_URL) are trusted and never
pass through here: a local model server is a normal setup for them.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.cookiejar import CookieJar

import httpcore2
import httpx2

log = logging.getLogger(__name__)

_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052's well-known prefix: the IPv4 address is the last 32 bits
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215, local use: where IPv4 sits is a local choice
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated ::a.b.c.d, which some stacks still route to a.b.c.d


@dataclass(frozen=True)
class Address:
    """An address a host name resolves to, and whether it counts as public."""

    ip: str
    public: bool


Resolve = Callable[[str, int], Awaitable[list[Address]]]
"""Where a host name points (a seam: a test can name a host that counts as public, or one that moves).
IP literals never reach it: they are judged by `is_public` alone."""


class PrivateAddress(httpx2.ConnectError):
    """A connection the rule refused: `host` (as the URL names it) is, or resolves to, a private address.
    An httpx2 connection error, so that a client reports it as one (the OpenAI SDK's APIConnectionError,
    caused by this) and its callers need not know the rule."""

    def __init__(self, host: str) -> None:
        super().__init__(f"{host} is not a public address")
        self.host = host


def is_public(ip: str) -> bool:
    """A global unicast address, and for IPv6 every IPv4 address it carries must be one too (IPv4-mapped,
    NAT64, 6to4), or ::ffff:10.0.0.1 or 64:ff9b::a00:1 would reach 10.0.0.1. Loopback, private,
    link-local, unique-local, shared (CGNAT 100.64/10), multicast, reserved and unspecified addresses are
    not public; nor are Teredo, IPv4-compatible and local-use NAT64 addresses, whose IPv4 address cannot
    be judged here. ValueError for what is not an IP address."""
    address = ipaddress.ip_address(ip.split("%")[0])  # a zone (fe80::1%eth0) says nothing about the address
    if isinstance(address, ipaddress.IPv4Address):
        return _global_unicast(address)
    if address.ipv4_mapped is not None:
        return _global_unicast(address.ipv4_mapped)
    if address in _NAT64:  # Python counts the prefix as reserved; the address is the IPv4 one it translates to
        return _global_unicast(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if address in _NAT64_LOCAL or address in _IPV4_COMPATIBLE or address.teredo is not None:
        return False
    if address.sixtofour is not None and not _global_unicast(address.sixtofour):
        return False
    return _global_unicast(address)


def _global_unicast(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    # `is_global` alone lets multicast and, before Python 3.13, some reserved ranges through.
    return address.is_global and not (
        address.is_private or address.is_loopback or address.is_link_local or address.is_multicast
        or address.is_reserved or address.is_unspecified
        or (isinstance(address, ipaddress.IPv6Address) and address.is_site_local))


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return False
    return True


async def resolve_dns(host: str, port: int) -> list[Address]:
    """The system resolver's answer, each address judged by `is_public`."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [Address(ip, is_public(ip)) for ip in dict.fromkeys(str(info[4][0]) for info in infos)]


class CheckedBackend(httpcore2.AsyncNetworkBackend):
    """httpcore2's AnyIO backend with the address rule in `connect_tcp`, where httpcore2 opens every
    connection: the host is resolved once (an IP literal is not: it is judged as it is), every address
    is judged, and the connection goes to a judged address, never to the name."""

    def __init__(self, resolve: Resolve = resolve_dns, *, allow_private: bool = False) -> None:
        self._resolve = resolve
        self._allow_private = allow_private
        self._network = httpcore2.AnyIOBackend()

    async def connect_tcp(  # httpcore2's signature, `timeout` included
            self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,  # noqa: ASYNC109
            socket_options: Iterable[httpcore2.SOCKET_OPTION] | None = None) -> httpcore2.AsyncNetworkStream:
        addresses = await self._addresses(host, port)
        if not self._allow_private and not all(address.public for address in addresses):
            log.info("refused to connect to %s: not a public address", host)
            raise PrivateAddress(host)
        failure: Exception = httpcore2.ConnectError(f"{host} has no address")
        for address in addresses:  # `timeout` is the connect timeout, for each address tried
            try:
                return await self._network.connect_tcp(address.ip, port, timeout, local_address, socket_options)
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout) as error:
                log.info("cannot connect to %s (%s): %s", host, address.ip, error)
                failure = error
        raise failure

    async def sleep(self, seconds: float) -> None:
        await self._network.sleep(seconds)

    async def _addresses(self, host: str, port: int) -> list[Address]:
        try:
            return [Address(host, is_public(host))]  # an IP literal: no resolver
        except ValueError:
            pass
        try:
            return await self._resolve(host, port)
        except OSError as error:
            raise httpcore2.ConnectError(f"cannot resolve {host}: {error}") from error


# httpcore2's exceptions as httpx2 raises them (what httpx2.AsyncHTTPTransport does, which takes no
# network backend): the OpenAI SDK reads httpx2's, a timeout among them. The most specific class first.
_ERRORS: list[tuple[type[Exception], type[httpx2.HTTPError]]] = [
    (httpcore2.ConnectTimeout, httpx2.ConnectTimeout), (httpcore2.ReadTimeout, httpx2.ReadTimeout),
    (httpcore2.WriteTimeout, httpx2.WriteTimeout), (httpcore2.PoolTimeout, httpx2.PoolTimeout),
    (httpcore2.TimeoutException, httpx2.TimeoutException), (httpcore2.ConnectError, httpx2.ConnectError),
    (httpcore2.ReadError, httpx2.ReadError), (httpcore2.WriteError, httpx2.WriteError),
    (httpcore2.NetworkError, httpx2.NetworkError), (httpcore2.UnsupportedProtocol, httpx2.UnsupportedProtocol),
    (httpcore2.LocalProtocolError, httpx2.LocalProtocolError),
    (httpcore2.RemoteProtocolError, httpx2.RemoteProtocolError), (httpcore2.ProtocolError, httpx2.ProtocolError),
]


@contextmanager
def _httpx_errors() -> Iterator[None]:
    try:
        yield
    except Exception as error:
        for raised, mapped in _ERRORS:
            if isinstance(error, raised):
                raise mapped(str(error)) from error
        raise  # PrivateAddress among them, as it is


class CheckedTransport(httpx2.AsyncBaseTransport):
    """httpx2's requests, sent through an httpcore2 pool whose every connection is made by a CheckedBackend."""

    def __init__(self, backend: CheckedBackend, tls: ssl.SSLContext, keepalive_expiry: float | None = 5.0) -> None:
        self._pool = httpcore2.AsyncConnectionPool(ssl_context=tls, network_backend=backend,
                                                   keepalive_expiry=keepalive_expiry)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        url = request.url
        with _httpx_errors():
            response = await self._pool.handle_async_request(httpcore2.Request(
                request.method, httpcore2.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port,
                                              target=url.raw_path),
                headers=request.headers.raw, content=request.stream, extensions=request.extensions))
        return httpx2.Response(response.status, headers=response.headers, stream=_Stream(response),
                               extensions=response.extensions)

    async def aclose(self) -> None:
        await self._pool.aclose()


class _Stream(httpx2.AsyncByteStream):
    """The pool's body stream itself (as httpx2's transport hands it on): the OpenAI SDK reads a stream once
    more after its last event, to drain it, and `Response.aiter_stream()` allows only one reading."""

    def __init__(self, response: httpcore2.Response) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        stream = self._response.stream
        assert isinstance(stream, AsyncIterable)  # an async pool's
        with _httpx_errors():
            async for chunk in stream:
                yield chunk

    async def aclose(self) -> None:
        await self._response.aclose()


def checked_client(*, allow_private: bool, timeout: httpx2.Timeout, resolve: Resolve = resolve_dns,
                   tls: ssl.SSLContext | None = None, keepalive_expiry: float | None = 5.0,
                   headers: dict[str, str] | None = None, cookies: CookieJar | None = None) -> httpx2.AsyncClient:
    """An httpx2 client whose every connection obeys the rule. It follows no redirect: a caller that does
    sends each hop through this client again, and so through the rule. `tls` defaults to the system's
    trust store."""
    transport = CheckedTransport(CheckedBackend(resolve, allow_private=allow_private),
                                 tls or ssl.create_default_context(), keepalive_expiry)
    return httpx2.AsyncClient(transport=transport, timeout=timeout, headers=headers, cookies=cookies,
                              follow_redirects=False, trust_env=False)


def private_address_in(error: BaseException | None) -> PrivateAddress | None:
    """The rule's refusal behind an error a client wrapped it in (the OpenAI SDK's APIConnectionError)."""
    while error is not None:
        if isinstance(error, PrivateAddress):
            return error
        error = error.__cause__ or error.__context__
    return None
