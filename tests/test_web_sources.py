"""Fetching and crawling websites for the knowledge base, against real local sites (aiohttp servers on
127.0.0.1): what a crawl finds, what it leaves alone, and the address rule that keeps staff from
pointing us at our own network."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import gzip
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from services.network_policy import Address, resolve_dns
from services.web_sources import (
    CrawlPage,
    FetchError,
    FetchPolicy,
    Validators,
    WebFetcher,
    crawl,
    host_of,
    normalise_url,
)
from tests.conftest import free_port

LOCAL = FetchPolicy(allow_private=True)  # the test sites are on 127.0.0.1
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Site:
    """A website on 127.0.0.1: handlers by path (anything else is 404), and every path asked for."""

    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.hits: list[str] = []
        self.peers: list[object] = []  # the client's address and port, request by request
        self.release = asyncio.Event()  # what a slow page waits for; set when the site stops
        self._runner: web.AppRunner | None = None
        self.port = 0

    def url(self, path: str = "/", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def page(self, path: str, body: str, *, etag: str = "", content_type: str = "text/html") -> None:
        async def serve(request: web.Request) -> web.StreamResponse:
            headers = {"ETag": etag} if etag else {}
            if etag and request.headers.get("If-None-Match") == etag:
                return web.Response(status=304, headers=headers)
            return web.Response(text=body, content_type=content_type, headers=headers)
        self.routes[path] = serve

    def links(self, path: str, *hrefs: str) -> None:
        self.page(path, "<html><body>" + "".join(f'<a href="{href}">{href}</a>' for href in hrefs) + "</body></html>")

    def redirect(self, path: str, location: str, status: int = 302) -> None:
        async def serve(request: web.Request) -> web.StreamResponse:
            return web.Response(status=status, headers={"Location": location})
        self.routes[path] = serve

    def status(self, path: str, status: int) -> None:
        async def serve(request: web.Request) -> web.StreamResponse:
            return web.Response(status=status, text="no")
        self.routes[path] = serve

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> Site:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._serve)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=ssl_context).start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        self.hits.append(request.path_qs)
        self.peers.append(request.transport.get_extra_info("peername") if request.transport else None)
        handler = self.routes.get(request.path)
        return await handler(request) if handler else web.Response(status=404, text="not here")


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    site = await Site().start()
    yield site
    await site.stop()


async def crawled(start: str, *, policy: FetchPolicy = LOCAL, **options: object) -> list[CrawlPage]:
    async with WebFetcher(policy) as fetcher:
        return [found async for found in crawl(fetcher, start, **options)]  # type: ignore[arg-type]


async def refusal(fetch: Awaitable[object]) -> FetchError:
    with pytest.raises(FetchError) as caught:
        await fetch
    return caught.value


# --- a crawl -------------------------------------------------------------------------------------


async def test_crawl_follows_links_within_the_site_breadth_first(site: Site) -> None:
    site.links("/", "/about", "contact#form", "/about#team", "http://other.test/", "mailto:a@b.test",
               "tel:+100", "javascript:void(0)", "ftp://files.test/x", "/brochure.pdf")
    site.links("/about", "/about/team", "/")
    site.links("/contact", "/")
    site.page("/about/team", "<p>Team</p>")
    pages = await crawled(site.url("/"))
    assert [found.url for found in pages] == [site.url(path) for path in ("/", "/about", "/contact", "/about/team")]
    assert all(found.page is not None and found.error is None for found in pages)
    assert "/brochure.pdf" not in site.hits  # not a page: never asked for


async def test_crawl_finds_pages_listed_only_in_the_sitemap(site: Site) -> None:
    site.links("/", "/linked")
    site.page("/linked", "<p>linked</p>")
    site.page("/unlinked", "<p>only in the sitemap</p>")
    site.page("/sitemap.xml", f"""<?xml version="1.0" encoding="UTF-8"?>
        <urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
          <url><loc>{site.url('/unlinked')}</loc></url>
          <url><loc>http://elsewhere.test/page</loc></url>
        </urlset>""", content_type="application/xml")
    pages = await crawled(site.url("/"))
    assert {found.url for found in pages} == {site.url("/"), site.url("/linked"), site.url("/unlinked")}


async def test_crawl_follows_the_sitemap_index_named_in_robots_txt(site: Site) -> None:
    site.page("/robots.txt", f"User-agent: *\nAllow: /\nSitemap: {site.url('/maps/index.xml')}\n",
              content_type="text/plain")
    site.page("/", "<p>home, no links</p>")
    site.page("/maps/index.xml", f"""<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
        <sitemap><loc>{site.url('/maps/pages.xml')}</loc></sitemap></sitemapindex>""", content_type="text/xml")
    site.page("/maps/pages.xml", f"""<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"
        xmlns:image="http://www.google.com/schemas/sitemap-image/1.1">
        <url><loc>{site.url('/prices')}</loc><image:image><image:loc>{site.url('/photo')}</image:loc></image:image>
        </url></urlset>""", content_type="text/xml")
    site.page("/prices", "<p>prices</p>")
    pages = await crawled(site.url("/"))
    assert [found.url for found in pages] == [site.url("/"), site.url("/prices")]
    assert "/sitemap.xml" not in site.hits  # robots.txt named the sitemap


async def test_a_sitemap_cannot_make_us_read_local_files(site: Site, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text(site.url("/leaked-from-a-file"))
    site.page("/", "<p>home</p>")
    site.page("/sitemap.xml", f"""<?xml version="1.0"?>
        <!DOCTYPE urlset [<!ENTITY secret SYSTEM "{secret.as_uri()}">]>
        <urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>&secret;</loc></url></urlset>""",
              content_type="application/xml")
    pages = await crawled(site.url("/"))
    assert [found.url for found in pages] == [site.url("/")]
    assert "/leaked-from-a-file" not in site.hits


async def test_crawl_leaves_out_what_robots_txt_disallows_for_our_user_agent(site: Site) -> None:
    site.page("/robots.txt", "User-agent: FrontdeskBot\nDisallow: /staff\n\nUser-agent: *\nDisallow: /\n",
              content_type="text/plain")
    site.links("/", "/menu", "/staff/rota")
    site.page("/menu", "<p>menu</p>")
    site.page("/staff/rota", "<p>private</p>")
    pages = await crawled(site.url("/"))
    assert [found.url for found in pages] == [site.url("/"), site.url("/menu")]
    assert "/staff/rota" not in site.hits


async def test_a_start_page_that_robots_txt_disallows_fails_the_source(site: Site) -> None:
    site.page("/robots.txt", "User-agent: *\nDisallow: /private\n", content_type="text/plain")
    site.page("/private/page", "<p>no</p>")
    error = await refusal(crawled(site.url("/private/page"), single_page=True))
    assert error.code == "robots_disallowed"
    assert "/private/page" not in site.hits


async def test_a_single_page_source_fetches_only_its_page(site: Site) -> None:
    site.links("/offer", "/other")
    site.page("/other", "<p>other</p>")
    pages = await crawled(site.url("/offer"), single_page=True)
    assert [found.url for found in pages] == [site.url("/offer")]
    assert site.hits == ["/robots.txt", "/offer"]


async def test_missing_pages_are_reported_gone_and_broken_ones_with_their_error(site: Site) -> None:
    site.links("/", "/removed", "/deleted", "/broken")
    site.status("/deleted", 410)
    site.status("/broken", 500)
    pages = {found.url: found for found in await crawled(site.url("/"))}
    assert pages[site.url("/removed")] == CrawlPage(site.url("/removed"), None, None)
    assert pages[site.url("/deleted")] == CrawlPage(site.url("/deleted"), None, None)
    broken = pages[site.url("/broken")]
    assert broken.page is None
    assert broken.error is not None
    assert (broken.error.code, broken.error.params) == ("http_error", {"status": 500})


@pytest.mark.parametrize(("path", "code"), [("/missing", "http_error"), ("/file", "not_html")])
async def test_a_start_page_that_fails_fails_the_source(site: Site, path: str, code: str) -> None:
    site.page("/file", "a,b\n1,2\n", content_type="text/csv")
    error = await refusal(crawled(site.url(path)))
    assert error.code == code


async def test_an_unreachable_site_fails_the_source() -> None:
    error = await refusal(crawled(f"http://127.0.0.1:{free_port()}/"))
    assert (error.code, error.params) == ("unreachable", {"host": "127.0.0.1"})


async def test_a_link_that_is_not_a_page_is_skipped_without_failing_the_crawl_or_counting_as_a_page(
        site: Site) -> None:
    site.links("/", "/data", "/menu")
    site.page("/data", '{"a": 1}', content_type="application/json")
    site.page("/menu", "<p>menu</p>")
    pages = await crawled(site.url("/"), page_limit=2)
    assert [found.url for found in pages] == [site.url("/"), site.url("/menu")]
    assert "/data" in site.hits


async def test_crawl_stops_at_the_page_limit(site: Site) -> None:
    site.links("/", *(f"/p{number}" for number in range(10)))
    for number in range(10):
        site.page(f"/p{number}", f"<p>{number}</p>")
    pages = await crawled(site.url("/"), page_limit=3)
    assert [found.url for found in pages] == [site.url("/"), site.url("/p0"), site.url("/p1")]
    assert [hit for hit in site.hits if hit.startswith("/p")] == ["/p0", "/p1"]


async def test_a_recrawl_gets_not_modified_for_unchanged_pages_and_new_html_for_changed_ones(site: Site) -> None:
    site.page("/", '<a href="/hours">hours</a><a href="/prices">prices</a>', etag='"home-1"')
    site.page("/hours", "<p>9 to 5</p>", etag='"hours-1"')
    site.page("/prices", "<p>10 dollars</p>", etag='"prices-1"')
    first = await crawled(site.url("/"))
    known = {found.url: Validators(found.page.etag, found.page.last_modified) for found in first if found.page}
    site.page("/prices", "<p>12 dollars</p>", etag='"prices-2"')

    again = {found.url: found.page for found in await crawled(site.url("/"), known=known) if found.page}

    # /hours and /prices are found though the unchanged home page showed no links this time
    assert {url: page.not_modified for url, page in again.items()} == {
        site.url("/"): True, site.url("/hours"): True, site.url("/prices"): False}
    assert (again[site.url("/prices")].html, again[site.url("/prices")].etag) == ("<p>12 dollars</p>", '"prices-2"')


async def test_a_redirect_within_the_site_is_followed_and_a_redirect_elsewhere_refused(site: Site) -> None:
    site.links("/", "/old", "/away", "/new")
    site.redirect("/old", "/new", status=301)
    site.redirect("/away", site.url("/", host="localhost"))  # the same server, under another host name
    site.page("/new", "<p>moved here</p>")
    pages = {found.url: found for found in await crawled(site.url("/"))}
    assert pages.keys() == {site.url("/"), site.url("/new"), site.url("/away")}  # a page under where it is
    moved = pages[site.url("/new")].page
    assert moved is not None
    assert (moved.url, moved.html) == (site.url("/new"), "<p>moved here</p>")
    assert site.hits.count("/new") == 1  # reached through /old: not fetched a second time
    away = pages[site.url("/away")].error
    assert away is not None
    assert (away.code, away.params) == ("other_host", {"host": f"localhost:{site.port}"})


async def test_fetch_page_refuses_a_redirect_to_another_host_only_when_asked(site: Site) -> None:
    site.redirect("/away", site.url("/landing", host="localhost"))
    site.page("/landing", "<p>landing</p>")
    async with WebFetcher(LOCAL) as fetcher:
        error = await refusal(fetcher.fetch_page(site.url("/away"), same_host=host_of(site.url())))
        page = await fetcher.fetch_page(site.url("/away"))
    assert error.code == "other_host"
    assert page.url == site.url("/landing", host="localhost")


async def test_a_redirect_loop_stops_after_five_redirects(site: Site) -> None:
    site.redirect("/loop", "/loop")
    async with WebFetcher(LOCAL) as fetcher:
        error = await refusal(fetcher.fetch_page(site.url("/loop")))
    assert error.code == "too_many_redirects"
    assert len(site.hits) == 6


# --- a page --------------------------------------------------------------------------------------


async def test_a_body_larger_than_the_limit_is_refused_while_it_streams(site: Site) -> None:
    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/html"})  # no Content-Length: chunked
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            for _ in range(64):
                await response.write(b"<p>" + b"x" * 65536)
        return response
    site.routes["/huge"] = endless
    async with WebFetcher(FetchPolicy(allow_private=True, max_bytes=100_000)) as fetcher:
        error = await refusal(fetcher.fetch_page(site.url("/huge")))
    assert (error.code, error.params) == ("too_large", {"limit_mb": 0.1})
    assert str(error) == "The page is larger than 0.1 MB."


async def test_a_slow_site_times_out(site: Site) -> None:
    async def stalled(request: web.Request) -> web.StreamResponse:
        await site.release.wait()
        return web.Response(text="too late", content_type="text/html")
    site.routes["/slow"] = stalled
    async with WebFetcher(FetchPolicy(allow_private=True, timeout=0.2)) as fetcher:
        error = await refusal(fetcher.fetch_page(site.url("/slow")))
    assert error.code == "timeout"


@pytest.mark.parametrize(("content_type", "body"), [
    ("text/html; charset=windows-1251", "<p>Цены</p>".encode("cp1251")),
    ("text/html", '<meta charset="windows-1251"><p>Цены</p>'.encode("cp1251")),
    ("text/html", "<p>Цены</p>".encode()),
    ("application/xhtml+xml", '<?xml version="1.0" encoding="utf-8"?><p>Цены</p>'.encode()),
])
async def test_a_page_is_decoded_by_its_declared_charset(site: Site, content_type: str, body: bytes) -> None:
    async def serve(request: web.Request) -> web.StreamResponse:
        return web.Response(body=body, headers={"Content-Type": content_type})
    site.routes["/prices"] = serve
    async with WebFetcher(LOCAL) as fetcher:
        page = await fetcher.fetch_page(site.url("/prices"))
    assert "<p>Цены</p>" in page.html


async def test_a_compressed_page_is_decompressed(site: Site) -> None:
    async def serve(request: web.Request) -> web.StreamResponse:
        response = web.Response(text="<p>" + "menu " * 2000 + "</p>", content_type="text/html")
        response.enable_compression()
        return response
    site.routes["/menu"] = serve
    async with WebFetcher(LOCAL) as fetcher:
        page = await fetcher.fetch_page(site.url("/menu"))
    assert page.html.count("menu") == 2000


async def test_a_compressed_body_is_refused_once_it_decompresses_past_the_limit(site: Site) -> None:
    bomb = gzip.compress(b"<p>" + b"0" * 20_000_000)  # about 20 KB on the wire
    async def serve(request: web.Request) -> web.StreamResponse:
        return web.Response(body=bomb, headers={"Content-Type": "text/html", "Content-Encoding": "gzip"})
    site.routes["/bomb"] = serve
    async with WebFetcher(FetchPolicy(allow_private=True, max_bytes=100_000)) as fetcher:
        error = await refusal(fetcher.fetch_page(site.url("/bomb")))
    assert error.code == "too_large"


async def test_the_pages_of_a_site_come_over_one_connection_kept_alive(site: Site) -> None:
    site.page("/a", "<p>a</p>")
    site.page("/b", "<p>b</p>", etag='"b-1"')
    site.redirect("/old", "/a")
    async with WebFetcher(LOCAL) as fetcher:
        assert await fetcher.fetch_text(site.url("/robots.txt")) is None  # a 404, read past
        await fetcher.fetch_page(site.url("/old"))  # a redirect, read past
        await fetcher.fetch_page(site.url("/b"), Validators(etag='"b-1"'))  # a 304
        await fetcher.fetch_page(site.url("/b"))
    assert site.hits == ["/robots.txt", "/old", "/a", "/b", "/b"]
    assert len(set(site.peers)) == 1  # one client port: one connection


async def test_no_cookie_is_kept_between_pages(site: Site) -> None:
    sent: list[str | None] = []
    async def serve(request: web.Request) -> web.StreamResponse:
        sent.append(request.headers.get("Cookie"))
        return web.Response(text="<p>page</p>", content_type="text/html", headers={"Set-Cookie": "session=1; Path=/"})
    site.routes["/a"] = serve
    async with WebFetcher(LOCAL) as fetcher:
        await fetcher.fetch_page(site.url("/a"))
        await fetcher.fetch_page(site.url("/a"))
    assert sent == [None, None]


async def test_proxy_settings_in_the_environment_are_ignored(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{free_port()}")  # nothing listens there
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    site.page("/", "<p>direct</p>")
    async with WebFetcher(LOCAL) as fetcher:
        page = await fetcher.fetch_page(site.url("/"))
    async with WebFetcher(FetchPolicy()) as fetcher:
        error = await refusal(fetcher.fetch_page(site.url("/")))
    assert "direct" in page.html
    assert error.code == "private_address"
    assert site.hits == ["/"]


async def test_fetch_text_is_none_for_a_file_that_is_not_there_and_fails_on_a_server_error(site: Site) -> None:
    site.page("/robots.txt", "User-agent: *\n", content_type="text/plain")
    site.status("/forbidden.txt", 403)
    site.status("/error.txt", 503)
    async with WebFetcher(LOCAL) as fetcher:
        assert await fetcher.fetch_text(site.url("/robots.txt")) == "User-agent: *\n"
        assert await fetcher.fetch_text(site.url("/missing.txt")) is None
        assert await fetcher.fetch_text(site.url("/forbidden.txt")) is None
        error = await refusal(fetcher.fetch_text(site.url("/error.txt")))
    assert (error.code, error.params) == ("http_error", {"status": 503})


async def test_a_hostile_crawl_delay_is_capped(site: Site) -> None:
    site.page("/robots.txt", "User-agent: *\nCrawl-delay: 3600\n", content_type="text/plain")
    site.links("/", "/next")
    site.page("/next", "<p>next</p>")
    async with asyncio.timeout(10):
        pages = await crawled(site.url("/"), policy=FetchPolicy(allow_private=True, max_crawl_delay=0.01))
    assert len(pages) == 2


# --- https ---------------------------------------------------------------------------------------


def certificate_authority(directory: Path, name: x509.GeneralName | None = None) -> tuple[ssl.SSLContext, str]:
    """A server context for `name` (127.0.0.1 unless given) and its CA's certificate (PEM): the client
    trusts only what it is told."""
    now = datetime.datetime.now(datetime.UTC)

    def certificate(subject: str, key: ec.EllipticCurvePrivateKey, issuer: str, signer: ec.EllipticCurvePrivateKey,
                    *extensions: x509.ExtensionType) -> x509.Certificate:
        builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=1))
                   .not_valid_after(now + datetime.timedelta(days=1)))
        for extension in extensions:
            builder = builder.add_extension(extension, critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = certificate("Test CA", ca_key, "Test CA", ca_key, x509.BasicConstraints(ca=True, path_length=None))
    server = certificate("Test server", server_key, "Test CA", ca_key, x509.SubjectAlternativeName(
        [name or x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]))
    (directory / "server.pem").write_bytes(server.public_bytes(serialization.Encoding.PEM))
    (directory / "server.key").write_bytes(server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(directory / "server.pem", directory / "server.key")
    return context, ca.public_bytes(serialization.Encoding.PEM).decode()


async def test_an_https_page_is_fetched_only_with_a_certificate_that_verifies(tmp_path: Path) -> None:
    server_context, ca = certificate_authority(tmp_path)
    site = await Site().start(ssl_context=server_context)
    site.page("/", "<p>secure</p>")
    url = f"https://127.0.0.1:{site.port}/"
    try:
        async with WebFetcher(LOCAL, tls=ssl.create_default_context(cadata=ca)) as fetcher:
            page = await fetcher.fetch_page(url)
        async with WebFetcher(LOCAL) as fetcher:  # the system's trust store does not know the test CA
            error = await refusal(fetcher.fetch_page(url))
    finally:
        await site.stop()
    assert (page.url, page.html) == (url, "<p>secure</p>")
    assert (error.code, error.params["host"]) == ("unreachable", "127.0.0.1")
    assert str(error).startswith("Could not connect to 127.0.0.1. Its TLS certificate did not verify (")


async def test_the_certificate_is_checked_for_the_host_name_not_for_the_address_connected_to(tmp_path: Path) -> None:
    server_context, ca = certificate_authority(tmp_path, x509.DNSName("public.test"))
    site = await Site().start(ssl_context=server_context)
    site.page("/", "<p>secure</p>")
    trust = ssl.create_default_context(cadata=ca)
    try:
        async with WebFetcher(FetchPolicy(), resolve=public_test, tls=trust) as fetcher:
            page = await fetcher.fetch_page(f"https://public.test:{site.port}/")  # connected to 127.0.0.1
        async with WebFetcher(LOCAL, tls=trust) as fetcher:
            error = await refusal(fetcher.fetch_page(f"https://127.0.0.1:{site.port}/"))  # not a name it is for
    finally:
        await site.stop()
    assert page.html == "<p>secure</p>"
    assert error.code == "unreachable"
    assert "certificate did not verify" in str(error)


# --- the address rule ----------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "[::ffff:127.0.0.1]", "0.0.0.0", "127.1",
                                  "2130706433"])
async def test_private_addresses_are_refused_unless_allowed(site: Site, host: str) -> None:
    site.page("/", "<p>inside</p>")
    async with WebFetcher(FetchPolicy()) as fetcher:
        error = await refusal(fetcher.fetch_page(site.url("/", host=host)))
    assert error.code == "private_address"
    assert site.hits == []  # refused before connecting


async def public_test(host: str, port: int) -> list[Address]:
    """The tests' resolver: `public.test` is this machine, vouched for as public; other names as usual."""
    if host == "public.test":
        return [Address("127.0.0.1", public=True)]
    if host == "mixed.test":
        return [Address("93.184.216.34", public=True), Address("127.0.0.1", public=False)]
    return await resolve_dns(host, port)


@pytest.mark.parametrize("target", ["127.0.0.1", "localhost"])
async def test_a_redirect_from_a_public_address_to_a_private_one_is_refused(site: Site, target: str) -> None:
    site.page("/", "<p>public</p>")
    site.page("/inside", "<p>secret</p>")
    site.redirect("/jump", site.url("/inside", host=target))
    async with WebFetcher(FetchPolicy(), resolve=public_test) as fetcher:
        page = await fetcher.fetch_page(site.url("/", host="public.test"))
        error = await refusal(fetcher.fetch_page(site.url("/jump", host="public.test")))
    assert "public" in page.html  # the name counts as public...
    assert (error.code, error.params) == ("private_address", {"host": target})  # ...the redirect's target does not
    assert site.hits == ["/", "/jump"]


async def test_a_name_with_any_private_address_is_refused(site: Site) -> None:
    async with WebFetcher(FetchPolicy(), resolve=public_test) as fetcher:
        error = await refusal(fetcher.fetch_page(site.url("/", host="mixed.test")))
    assert error.code == "private_address"


async def test_a_crawl_from_a_private_address_fails_before_any_request(site: Site) -> None:
    site.page("/", "<p>inside</p>")
    error = await refusal(crawled(site.url("/"), policy=FetchPolicy()))
    assert (error.code, error.params) == ("private_address", {"host": "127.0.0.1"})
    assert site.hits == []


# --- URLs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "normalised"), [
    ("HTTP://Example.COM:80/a?b=1#top", "http://example.com/a?b=1"),
    ("https://example.com:443", "https://example.com/"),
    ("https://example.com:8443/x", "https://example.com:8443/x"),
    ("http://пример.рф/цены page", "http://xn--e1afmkfd.xn--p1ai/%D1%86%D0%B5%D0%BD%D1%8B%20page"),
    ("http://[::1]:8080/", "http://[::1]:8080/"),
])
def test_urls_are_normalised_to_one_spelling(url: str, normalised: str) -> None:
    assert normalise_url(url) == normalised


@pytest.mark.parametrize("url", [
    "ftp://example.com/", "javascript:alert(1)", "mailto:a@example.com", "http:///path", "/relative",
    "http://user:secret@example.com/", "http://example.com:99999/", "http://exa mple.com/",
])
def test_addresses_that_are_not_http_urls_are_bad(url: str) -> None:
    with pytest.raises(FetchError) as caught:
        normalise_url(url)
    assert caught.value.code == "bad_url"


def test_the_host_includes_a_port_that_is_not_the_default() -> None:
    assert host_of("HTTPS://Example.com:443/a") == "example.com"
    assert host_of("http://127.0.0.1:8080/a") == "127.0.0.1:8080"
