"""Websites as knowledge: one page, or a site followed from a start URL within its host.

This module is the network part: it returns a page's raw HTML and what the server said about it
(its final URL, ETag, Last-Modified); turning HTML into text is done elsewhere.

The address rule (services/network_policy.py). Whoever adds a website makes this process fetch it,
so a staff member could otherwise point us at our own network (an admin page on 10.0.0.5, the
cloud's metadata service at 169.254.169.254) and read the answer back as "knowledge". So unless the
policy allows private addresses (the operator's CLI does; the Mini App only when the operator says
so: KNOWLEDGE_ALLOW_PRIVATE_URLS, else ALLOW_PRIVATE_PROVIDERS), every address we connect to must
be public. The rule is applied where the connection is made, not to the URL beforehand (a name is
resolved once and the connection goes to the addresses judged: no DNS rebinding). Redirects are
followed by hand, at most `max_redirects`, and every hop connects through the same rule, so a public
page cannot bounce us inside. Only http and https, and no credentials in URLs.

HTTP is httpx2's (the client the OpenAI SDK brings; services import neither aiogram nor aiohttp,
tests/test_architecture.py), over network_policy's checked client. One client per WebFetcher keeps
a site's connection alive from page to page.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import ipaddress
import logging
import re
import ssl
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import PurePosixPath
from types import MappingProxyType, TracebackType
from typing import Any
from urllib.parse import quote, urljoin, urlsplit, urlunsplit
from urllib.robotparser import RobotFileParser

import httpx2
import lxml.html
from lxml import etree

from services.network_policy import PrivateAddress, Resolve, checked_client, resolve_dns

log = logging.getLogger(__name__)

DEFAULT_PORTS = {"http": 80, "https": 443}
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
REDIRECTS = frozenset({301, 302, 303, 307, 308})
GONE = frozenset({404, 410})
# Links to these are not pages: not worth a request (a page that is not HTML anyway is skipped).
SKIPPED_EXTENSIONS = frozenset({
    ".pdf", ".jpg", ".jpeg", ".png", ".gif", ".webp", ".svg", ".ico", ".bmp", ".tif", ".tiff", ".avif",
    ".zip", ".gz", ".tgz", ".tar", ".rar", ".7z", ".bz2", ".xz", ".css", ".js", ".mjs", ".json", ".xml",
    ".rss", ".atom", ".mp3", ".mp4", ".m4a", ".wav", ".ogg", ".webm", ".mov", ".avi", ".mkv", ".woff",
    ".woff2", ".ttf", ".otf", ".eot", ".doc", ".docx", ".xls", ".xlsx", ".ppt", ".pptx", ".odt", ".ods",
    ".csv", ".exe", ".dmg", ".apk", ".iso", ".bin",
})
MAX_SITEMAPS = 10  # sitemap files read per crawl (from robots.txt, and per index)
MAX_QUEUED = 10_000  # distinct URLs a crawl remembers: a huge sitemap cannot fill the memory
_KEEPALIVE = 5.0  # seconds an idle connection is kept for the next page of its site
_SKIPPED_BODY = 64 * 1024  # an unwanted body up to this is read past, to keep its connection
_SAFE_PATH = "/%:@!$&'()*+,;="  # kept as they are; anything else (spaces, non-ASCII) is percent-encoded
_SAFE_QUERY = _SAFE_PATH + "?"
_HOST = re.compile(r"[a-z0-9._-]+|\[[0-9a-f:.]+\]")
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
_META_CHARSET = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?\s*([a-zA-Z0-9_.:-]+)", re.IGNORECASE)

_MESSAGES = {
    "bad_url": "The address is not a valid http or https URL.",
    "private_address": "{host} is a private address; only public addresses may be fetched.",
    "unreachable": "Could not connect to {host}.",
    "timeout": "The site took too long to answer.",
    "too_large": "The page is larger than {limit_mb} MB.",
    "not_html": "The address is not a web page (its content type is '{content_type}').",
    "http_error": "The site answered with HTTP status {status}.",
    "too_many_redirects": "The address redirects too many times.",
    "other_host": "The page redirects to another site ({host}).",
    "robots_disallowed": "The site's robots.txt does not allow us to read {url}.",
}


class FetchError(Exception):
    """A page that could not be fetched: `code` for a program (the Mini App translates it), `params`
    to fill its message (a `reason`, where there is one, is added to it)."""

    def __init__(self, code: str, **params: Any) -> None:
        super().__init__(code, params)
        self.code = code
        self.params = params

    def __str__(self) -> str:
        try:
            message = _MESSAGES[self.code].format(**self.params)
        except (KeyError, IndexError):
            return f"{self.code} {self.params}"
        return f"{message} {self.params['reason']}" if "reason" in self.params else message


@dataclass(frozen=True)
class FetchPolicy:
    allow_private: bool = False
    timeout: float = 20.0  # seconds for a whole fetch, its redirects included
    connect_timeout: float = 5.0  # per address tried
    max_bytes: int = 5 * 1024 * 1024  # per page, counted while reading (Content-Length may lie or be absent)
    max_redirects: int = 5
    user_agent: str = "FrontdeskBot/1.0 (+knowledge base sync)"
    max_crawl_delay: float = 2.0  # robots.txt's Crawl-delay is honoured up to this: a hostile value cannot stall a sync


@dataclass(frozen=True)
class Validators:
    """What a previous fetch returned, for a conditional request."""

    etag: str = ""
    last_modified: str = ""


NO_VALIDATORS = Validators()


@dataclass(frozen=True)
class Page:
    url: str  # the final URL, after redirects
    html: str  # decoded: charset from the headers, else from a <meta>, else UTF-8 with replacement characters
    etag: str
    last_modified: str
    not_modified: bool = False  # the server answered 304 to the validators given: html is ""


# --- URLs ----------------------------------------------------------------------------------------


def normalise_url(url: str) -> str:
    """One spelling per page: lowercase scheme and host (IDNA for non-ASCII names), no default port,
    no fragment, "/" for an empty path, non-ASCII and spaces percent-encoded. FetchError("bad_url")
    for anything but an http(s) URL with a host and without credentials."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as error:
        raise FetchError("bad_url") from error
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname or parts.username is not None or parts.password is not None:
        raise FetchError("bad_url")
    host = _ascii_host(parts.hostname)
    netloc = host if port in (None, DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    path = quote(parts.path or "/", safe=_SAFE_PATH)
    return urlunsplit((scheme, netloc, path, quote(parts.query, safe=_SAFE_QUERY), ""))


def host_of(url: str) -> str:
    """The host and any non-default port ("example.com", "127.0.0.1:8080"): what "another host" means."""
    return urlsplit(normalise_url(url)).netloc


def _ascii_host(hostname: str) -> str:
    host = hostname.lower()
    if ":" in host:  # urlsplit took the brackets off an IPv6 literal
        try:
            host = f"[{ipaddress.IPv6Address(host)}]"
        except ValueError as error:
            raise FetchError("bad_url") from error
    elif not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError as error:
            raise FetchError("bad_url") from error
    if not _HOST.fullmatch(host):
        raise FetchError("bad_url")
    return host


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


# --- one HTTP exchange ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Response:
    url: str
    status: int
    headers: httpx2.Headers
    charset: str | None  # the Content-Type's
    body: bytes  # read only when the caller wanted it

    def header(self, name: str) -> str:
        return self.headers.get(name, "")

    @property
    def content_type(self) -> str:
        return _media_type(self.header("Content-Type"))


WantsBody = Callable[[int, str], bool]
"""Whether a response's body is read, from its status and media type."""

# What the HTTP stack raises for a site that cannot be read (FetchError from the address rule passes as it is).
_HTTP_ERRORS = (httpx2.TimeoutException, httpx2.NetworkError, httpx2.ProtocolError, httpx2.DecodingError,
                httpx2.InvalidURL, OSError)


class WebFetcher:
    """Fetches pages under a FetchPolicy. Use one per sync (`async with WebFetcher(policy) as fetcher`):
    its connections are kept alive from one page of a site to the next."""

    def __init__(self, policy: FetchPolicy, *, resolve: Resolve = resolve_dns,
                 tls: ssl.SSLContext | None = None) -> None:
        self.policy = policy
        self.resolve = resolve
        self._tls = tls  # the system's trust store unless given (made on first use: loading it takes a moment)
        self._client: httpx2.AsyncClient | None = None

    async def __aenter__(self) -> WebFetcher:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes the connections kept alive, and any still open (a fetch cancelled elsewhere, for one)."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def fetch_page(self, url: str, validators: Validators = NO_VALIDATORS, *,
                         same_host: str | None = None) -> Page:
        """An HTML page (text/html or application/xhtml+xml). With `same_host`, a redirect to another
        host is refused ("other_host"); a 304 to the validators given is a Page with not_modified."""
        headers = {"Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1", **_conditional(validators)}
        response = await self._get(url, headers, _wants_html, same_host)
        if response.status == 304 and validators != NO_VALIDATORS:
            return Page(response.url, "", response.header("ETag") or validators.etag,
                        response.header("Last-Modified") or validators.last_modified, not_modified=True)
        if response.status != 200:
            raise FetchError("http_error", status=response.status)
        if response.content_type not in HTML_TYPES:
            raise FetchError("not_html", content_type=response.content_type)
        return Page(response.url, _decode_html(response.body, response.charset), response.header("ETag"),
                    response.header("Last-Modified"))

    async def fetch_text(self, url: str) -> str | None:
        """A text file such as robots.txt or a sitemap; None when the server says it is not there for
        us (any 4xx, as crawlers read a robots.txt answer), FetchError for anything else."""
        response = await self._get(url, {"Accept": "text/plain,application/xml,text/xml,*/*;q=0.5"},
                                   _wants_ok, None)
        if 400 <= response.status < 500:
            return None
        if response.status != 200:
            raise FetchError("http_error", status=response.status)
        charset = _bom_charset(response.body) or response.charset or "utf-8"
        return _decode(response.body, charset if _known_codec(charset) else "utf-8")

    async def _get(self, url: str, headers: dict[str, str], wants_body: WantsBody, same_host: str | None) -> _Response:
        try:
            async with asyncio.timeout(self.policy.timeout):
                return await self._follow(normalise_url(url), headers, wants_body, same_host)
        except TimeoutError as error:
            raise FetchError("timeout") from error

    async def _follow(self, url: str, headers: dict[str, str], wants_body: WantsBody,
                      same_host: str | None) -> _Response:
        """Redirects by hand: each target is checked here (scheme, host), and its connection by the address rule."""
        for _ in range(self.policy.max_redirects + 1):
            response = await self._exchange(url, headers, wants_body)
            location = response.header("Location")
            if response.status not in REDIRECTS or not location:
                return response
            url = _redirect_target(url, location, same_host)
            headers = {name: value for name, value in headers.items() if not name.startswith("If-")}
        raise FetchError("too_many_redirects")

    async def _exchange(self, url: str, headers: Mapping[str, str], wants_body: WantsBody) -> _Response:
        try:
            async with self._http().stream("GET", url, headers=headers) as response:
                wanted = wants_body(response.status_code, _media_type(response.headers.get("Content-Type", "")))
                body = await _read_body(response, self.policy.max_bytes) if wanted else await _skip_body(response)
        except PrivateAddress as refused:
            raise FetchError("private_address", host=refused.host) from refused
        except _HTTP_ERRORS as error:
            raise _failure(error, urlsplit(url).hostname or "") from error
        return _Response(url, response.status_code, response.headers, response.charset_encoding, body)

    def _http(self) -> httpx2.AsyncClient:
        if self._client is None:
            self._client = checked_client(
                allow_private=self.policy.allow_private, resolve=self.resolve, tls=self._tls,
                keepalive_expiry=_KEEPALIVE, headers={"User-Agent": self.policy.user_agent},
                timeout=httpx2.Timeout(self.policy.timeout, connect=self.policy.connect_timeout),  # asyncio.timeout
                # bounds the whole; no cookies kept: every page is fetched as by a stranger
                cookies=CookieJar(DefaultCookiePolicy(allowed_domains=[])))
        return self._client


def _failure(error: Exception, host: str) -> FetchError:
    if isinstance(error, httpx2.InvalidURL):
        return FetchError("bad_url")
    if isinstance(error, httpx2.TimeoutException) and not isinstance(error, httpx2.ConnectTimeout):
        return FetchError("timeout")  # connected, then kept waiting
    certificate = _certificate_error(error)
    if certificate is not None:
        return FetchError("unreachable", host=host,
                          reason=f"Its TLS certificate did not verify ({certificate.verify_message}).")
    # No connection (refused, or no answer in the connect timeout), one cut short, or an answer that is not
    # HTTP or that does not decode: nothing usable came from this host.
    return FetchError("unreachable", host=host)


def _certificate_error(error: BaseException | None) -> ssl.SSLCertVerificationError | None:
    while error is not None:
        if isinstance(error, ssl.SSLCertVerificationError):
            return error
        error = error.__cause__ or error.__context__
    return None


def _conditional(validators: Validators) -> dict[str, str]:
    headers = {}
    if validators.etag:
        headers["If-None-Match"] = _header_value(validators.etag)
    if validators.last_modified:
        headers["If-Modified-Since"] = _header_value(validators.last_modified)
    return headers


def _header_value(value: str) -> str:
    """A stored validator as a header may carry it: one line, ASCII."""
    return " ".join(value.split()).encode("ascii", "replace").decode("ascii")


def _media_type(content_type: str) -> str:
    return content_type.split(";")[0].strip().lower()


def _wants_html(status: int, media_type: str) -> bool:
    """Read the body only of a page we keep: a PDF's megabytes are refused from its headers."""
    return status == 200 and media_type in HTML_TYPES


def _wants_ok(status: int, media_type: str) -> bool:
    return status == 200


def _redirect_target(url: str, location: str, same_host: str | None) -> str:
    try:
        target = normalise_url(urljoin(url, location.strip()))
    except ValueError as error:
        raise FetchError("bad_url") from error
    if same_host is not None and host_of(target) != same_host:
        raise FetchError("other_host", host=host_of(target))
    return target


async def _read_body(response: httpx2.Response, limit: int) -> bytes:
    """The decoded body, refused as soon as it passes the limit (a declared length may be absent or lie;
    httpx2 decodes gzip a piece at a time, so a bomb is stopped here too)."""
    if int(response.headers.get("Content-Length") or 0) > limit:
        raise _too_large(limit)
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    return bytes(body)


async def _skip_body(response: httpx2.Response) -> bytes:
    """Nothing; but a short body is read past (not decoded), so that the connection can serve the next request."""
    length = response.headers.get("Content-Length")
    if response.status_code in (204, 304) or (length is not None and int(length) <= _SKIPPED_BODY):
        async for _ in response.aiter_raw():
            pass
    return b""


def _too_large(limit: int) -> FetchError:
    return FetchError("too_large", limit_mb=round(limit / 2**20, 2))


def _decode_html(body: bytes, charset: str | None) -> str:
    """The charset a browser would pick first: a byte-order mark, the header, a <meta> near the top."""
    meta = _META_CHARSET.search(body[:4096])
    declared = meta.group(1).decode("ascii") if meta else None
    for candidate in (_bom_charset(body), charset, declared):
        if candidate and _known_codec(candidate):
            return _decode(body, candidate)
    return _decode(body, "utf-8")


def _bom_charset(body: bytes) -> str | None:
    if body.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    return None


def _known_codec(charset: str) -> bool:
    try:
        codecs.lookup(charset)
    except LookupError:
        return False
    return True


def _decode(body: bytes, charset: str) -> str:
    return body.decode("utf-8-sig" if charset.lower() in ("utf-8", "utf8") else charset, errors="replace")


# --- a crawl -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CrawlPage:
    url: str  # where the page is (normalised, after redirects); for a page gone or failed, the URL asked for
    page: Page | None  # None when the page is gone (404/410): the caller removes it
    error: FetchError | None  # a page that failed for another reason: the caller keeps what it had


_NOTHING_KNOWN: Mapping[str, Validators] = MappingProxyType({})


async def crawl(fetcher: WebFetcher, start_url: str, *, page_limit: int = 200, single_page: bool = False,
                known: Mapping[str, Validators] = _NOTHING_KNOWN) -> AsyncIterator[CrawlPage]:
    """The pages of a site, breadth first, one request at a time, within the start URL's scheme, host
    and port, as robots.txt allows us. The start page failing fails the crawl (FetchError); another
    page failing is a CrawlPage with its error, and a page that is not HTML is skipped.

    At most `page_limit` CrawlPages are yielded, so fewer means the whole site was walked: what is
    skipped (not HTML, or a redirect to a page already yielded) does not count towards it.

    Pages come from the start page's links, the sitemap, and `known` (the URLs of the previous
    crawl, with their validators): an unchanged page answers 304 and shows no links, but the pages
    it linked to are among those known, so they are checked all the same."""
    start = normalise_url(start_url)
    known = _normalised_keys(known)
    robots = await _robots(fetcher, start)
    page = await _start_page(fetcher, robots, start, known)
    yield CrawlPage(normalise_url(page.url), page, None)
    if single_page:
        return
    if _origin(page.url) != _origin(start):  # http:// that moved to https://: the site is where it went
        start = normalise_url(page.url)
        robots = await _robots(fetcher, start)
    frontier = _Frontier(start, robots, fetcher.policy.user_agent)
    frontier.reached(start, page.url)
    frontier.add(*_links(page), *await _sitemap_urls(fetcher, robots, start), *known)
    delay = min(float(robots.crawl_delay(fetcher.policy.user_agent) or 0), fetcher.policy.max_crawl_delay)
    async for found in _crawl_frontier(fetcher, frontier, page_limit - 1, delay, known):
        yield found


async def _start_page(fetcher: WebFetcher, robots: RobotFileParser, start: str,
                      known: Mapping[str, Validators]) -> Page:
    if not robots.can_fetch(fetcher.policy.user_agent, start):
        raise FetchError("robots_disallowed", url=start)
    return await fetcher.fetch_page(start, _validators(known, start), same_host=host_of(start))


async def _crawl_frontier(fetcher: WebFetcher, frontier: _Frontier, budget: int, delay: float,
                          known: Mapping[str, Validators]) -> AsyncIterator[CrawlPage]:
    same_host = host_of(frontier.start)
    requests = 2 * budget + 10  # skipped URLs cost no budget, but a site of non-pages may not go on forever
    while frontier.queue and budget > 0 and requests > 0:
        url = frontier.queue.popleft()
        if url in frontier.fetched:
            continue  # reached already, as where another URL redirected
        requests -= 1
        await asyncio.sleep(delay)
        found = await _visit(fetcher, frontier, url, _validators(known, url), same_host)
        if found is not None:
            budget -= 1
            yield found


async def _visit(fetcher: WebFetcher, frontier: _Frontier, url: str, validators: Validators,
                 same_host: str) -> CrawlPage | None:
    """What one URL comes to; None when it is no new page (not HTML, or a redirect to a page fetched)."""
    try:
        page = await fetcher.fetch_page(url, validators, same_host=same_host)
    except FetchError as error:
        if error.code == "not_html":
            return None
        gone = error.code == "http_error" and error.params.get("status") in GONE
        return CrawlPage(url, None, None if gone else error)
    final = normalise_url(page.url)
    if final in frontier.fetched:
        return None
    frontier.reached(url, final)
    frontier.add(*_links(page))
    return CrawlPage(final, page, None)


class _Frontier:
    """The URLs still to fetch, in the order found, each once, within the site and robots.txt."""

    def __init__(self, start: str, robots: RobotFileParser, user_agent: str) -> None:
        self.start = start
        self.robots = robots
        self.user_agent = user_agent
        self.seen: set[str] = set()
        self.fetched: set[str] = set()
        self.queue: deque[str] = deque()

    def add(self, *urls: str) -> None:
        for url in urls:
            try:
                url = normalise_url(url)
            except FetchError:
                continue
            if url in self.seen or len(self.seen) >= MAX_QUEUED or _origin(url) != _origin(self.start):
                continue
            self.seen.add(url)
            if not _skipped_extension(url) and self.robots.can_fetch(self.user_agent, url):
                self.queue.append(url)

    def reached(self, *urls: str) -> None:
        """Fetched: neither is asked for again (a page and where it redirected)."""
        for url in map(normalise_url, urls):
            self.seen.add(url)
            self.fetched.add(url)


def _normalised_keys(known: Mapping[str, Validators]) -> dict[str, Validators]:
    normalised: dict[str, Validators] = {}
    for url, validators in known.items():
        with contextlib.suppress(FetchError):  # a stored URL that is no longer valid is simply not known
            normalised[normalise_url(url)] = validators
    return normalised


def _validators(known: Mapping[str, Validators], url: str) -> Validators:
    return known.get(url) or NO_VALIDATORS


def _skipped_extension(url: str) -> bool:
    return PurePosixPath(urlsplit(url).path).suffix.lower() in SKIPPED_EXTENSIONS


async def _robots(fetcher: WebFetcher, site_url: str) -> RobotFileParser:
    """The site's robots.txt; none (any 4xx) allows everything. A server error fails the crawl: the
    standard says to assume everything is disallowed then."""
    parser = RobotFileParser()
    text = await fetcher.fetch_text(urljoin(site_url, "/robots.txt"))
    parser.parse((text or "").splitlines())
    return parser


def _links(page: Page) -> list[str]:
    """The a[href] of a page, absolute, without fragments; links that are not http(s) are dropped later."""
    try:
        document = lxml.html.document_fromstring(_XML_DECLARATION.sub("", page.html, count=1))
    except (etree.ParserError, ValueError):
        return []  # an empty or unparsable page links nowhere
    base = page.url
    for element in document.iterfind(".//base[@href]"):
        base = _joined(page.url, element.get("href")) or page.url
        break
    hrefs = (anchor.get("href") for anchor in document.iter("a"))
    return [url for url in (_joined(base, href) for href in hrefs if href) if url]


def _joined(base: str, href: str) -> str | None:
    try:
        return urljoin(base, href.strip())
    except ValueError:
        return None


async def _sitemap_urls(fetcher: WebFetcher, robots: RobotFileParser, site_url: str) -> list[str]:
    """The page URLs of the site's sitemaps: those robots.txt names, else /sitemap.xml; an index is
    followed one level down. A sitemap that cannot be read is left out: it is only a hint."""
    urls: list[str] = []
    for sitemap in (robots.site_maps() or [urljoin(site_url, "/sitemap.xml")])[:MAX_SITEMAPS]:
        kind, locations = await _read_sitemap(fetcher, sitemap)
        if kind != "sitemapindex":
            urls += locations
            continue
        for child in locations[:MAX_SITEMAPS]:
            child_kind, child_locations = await _read_sitemap(fetcher, child)
            urls += child_locations if child_kind == "urlset" else []
    return urls


async def _read_sitemap(fetcher: WebFetcher, url: str) -> tuple[str, list[str]]:
    """("urlset" or "sitemapindex", its <loc>s); ("", []) for one that is missing or unreadable."""
    try:
        text = await fetcher.fetch_text(url)
    except FetchError as error:
        log.info("sitemap %s left out: %s", url, error)
        return "", []
    if not text:
        return "", []
    # No entities, no DTDs from the network: a sitemap is data, and must not make us read files or URLs.
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    try:
        root = etree.fromstring(_XML_DECLARATION.sub("", text, count=1), parser)
    except (etree.XMLSyntaxError, ValueError):
        log.info("sitemap %s left out: not XML", url)
        return "", []
    return _local_name(root), list(_locations(root))


def _locations(root: Any) -> Iterable[str]:
    """<url><loc> or <sitemap><loc>, whatever the namespace (but not an <image:loc> inside a <url>)."""
    for element in root.iter():
        parent = element.getparent()
        if (_local_name(element) == "loc" and parent is not None and _local_name(parent) in ("url", "sitemap")
                and element.text and element.text.strip()):
            yield element.text.strip()


def _local_name(element: Any) -> str:
    return str(etree.QName(element).localname) if isinstance(element.tag, str) else ""
