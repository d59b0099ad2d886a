"""Safe URL fetching (specread.service.fetch) and the URL path of POST /v1/read.

Everything is served from a throwaway HTTP server on 127.0.0.1; tests that
must reach it allow loopback explicitly, the others check it is refused by
default. No test leaves the machine: names are resolved by injected resolvers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpcore")

from fastapi.testclient import TestClient

from specread.errors import BadUrlError, FetchFailedError, FetchTimeoutError, FetchTooLargeError, UrlNotAllowedError
from specread.service.app import create_app
from specread.service.fetch import address_allowed, fetch_image
from specread.settings import FetchPolicy, ReaderConfig, ServiceSettings
from specread.synth import LabelSpec, render_label

LOOPBACK_ONLY = FetchPolicy(allowed_networks=("127.0.0.1/32",), timeout=5.0)


def _make_png(lines: tuple[str, ...] = ("Net Wt. 340 g", "Keep dry"), seed: int = 3) -> bytes:
    buf = io.BytesIO()
    render_label(LabelSpec(lines, {}), seed=seed).save(buf, "PNG")
    return buf.getvalue()


PNG = _make_png()


class _Handler(BaseHTTPRequestHandler):
    """Routes: /label.png, /redirect?to=URL, /missing, /huge-declared, /endless, /slow, /drip."""

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        try:
            if path == "/label.png":
                self._send(200, PNG, {"Content-Type": "image/png"})
            elif path == "/redirect":
                self._send(302, b"", {"Location": query.removeprefix("to=")})
            elif path == "/missing":
                self._send(404, b"no such image")
            elif path == "/huge-declared":
                self._send(200, b"x" * 10, {"Content-Length": str(10**10)})
            elif path == "/endless":  # no Content-Length, keeps streaming
                self.send_response(200)
                self.send_header("Connection", "close")
                self.end_headers()
                for _ in range(1000):
                    self.wfile.write(b"\0" * 65536)
            elif path == "/slow":
                time.sleep(3)
                self._send(200, PNG)
            elif path == "/drip":  # headers at once, then a byte now and then, forever
                self.send_response(200)
                self.send_header("Content-Length", "1000000")
                self.end_headers()
                for _ in range(100):
                    self.wfile.write(b"\0")
                    self.wfile.flush()
                    time.sleep(0.1)
            else:
                self._send(404, b"")
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _fetch(url: str, policy: FetchPolicy = LOOPBACK_ONLY, resolver=None) -> bytes:
    return asyncio.run(fetch_image(url, policy, resolver))


def _resolver(table: dict[str, list[str]]):
    async def resolve(host: str, port: int) -> list[str]:
        if host in table:
            return table[host]
        raise OSError(f"unknown host {host}")

    return resolve


# -- the address policy ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.10",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::",
        # IPv6 forms that lead to a non-public IPv4 address
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "2002:a00:1::1",  # 6to4 of 10.0.0.1
        "::7f00:1",  # IPv4-compatible 127.0.0.1
        "::a00:1",  # IPv4-compatible 10.0.0.1
        "::ffff:169.254.169.254",
        # IPv6 ranges refused whatever they carry
        "64:ff9b:1::808:808",  # NAT64 local use
        "fec0::1",  # site-local
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
        "fd12:3456::1",  # unique local
        "fe80::1%eth0",  # link-local with a zone
        "ff02::1",  # multicast, link scope
        "ff0e::1",  # multicast, global scope
        "2001:db8::1",  # documentation
        "3fff::1",  # documentation
        "100::1",  # discard-only
    ],
)
def test_non_public_addresses_are_refused_by_default(address: str) -> None:
    assert not address_allowed(FetchPolicy(), address)
    assert address_allowed(FetchPolicy(allow_private=True), address)


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "93.184.216.34",
        "2606:4700:4700::1111",
        "64:ff9b::808:808",  # NAT64 of a public IPv4 address
        "2002:808:808::1",  # 6to4 of a public IPv4 address
        "::ffff:8.8.8.8",
    ],
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert address_allowed(FetchPolicy(), address)


def test_allowed_networks_match_the_embedded_ipv4_address() -> None:
    policy = FetchPolicy(allowed_networks=("10.0.0.0/24",))
    assert address_allowed(policy, "64:ff9b::a00:5") and address_allowed(policy, "::ffff:10.0.0.5")
    assert not address_allowed(policy, "64:ff9b::a00:105")  # 10.0.1.5


def test_allowed_networks_open_only_those_networks() -> None:
    policy = FetchPolicy(allowed_networks=("127.0.0.1/32",))
    assert address_allowed(policy, "127.0.0.1")
    assert not address_allowed(policy, "127.0.0.2")
    with pytest.raises(ValueError):
        FetchPolicy(allowed_networks=("not-a-network",))


def test_the_address_rules_live_beside_the_code_that_connects() -> None:
    """The settings hold only the policy's values; which addresses they open is decided in fetch alone."""
    import specread.settings

    assert not hasattr(FetchPolicy, "address_allowed")
    assert not any(hasattr(specread.settings, name) for name in ("is_public_address", "_embedded_ipv4"))


# -- fetching ----------------------------------------------------------------------------------------------------
def test_fetches_image_bytes_from_an_allowed_server(server: str) -> None:
    assert _fetch(f"{server}/label.png") == PNG


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "2130706433", "[::ffff:127.0.0.1]"])
def test_loopback_is_refused_by_default(server: str, host: str) -> None:
    port = server.rsplit(":", 1)[1]
    with pytest.raises(UrlNotAllowedError):
        _fetch(f"http://{host}:{port}/label.png", FetchPolicy())


def test_every_resolved_address_is_checked(server: str) -> None:
    # One public and one private answer: refused, even though the first would be fine.
    resolver = _resolver({"mixed.test": ["8.8.8.8", "10.0.0.7"]})
    with pytest.raises(UrlNotAllowedError, match=r"10\.0\.0\.7"):
        _fetch("http://mixed.test/label.png", FetchPolicy(), resolver)


def test_connects_to_the_address_it_checked(server: str) -> None:
    # The name exists only in the injected resolver: the connection must use the checked address.
    port = server.rsplit(":", 1)[1]
    resolver = _resolver({"images.test": ["127.0.0.1"]})
    assert _fetch(f"http://images.test:{port}/label.png", LOOPBACK_ONLY, resolver) == PNG


def test_redirect_to_a_disallowed_address_is_not_followed(server: str) -> None:
    port = server.rsplit(":", 1)[1]
    with pytest.raises(UrlNotAllowedError, match=r"127\.0\.0\.2"):
        _fetch(f"{server}/redirect?to=http://127.0.0.2:{port}/label.png")


def test_redirect_to_an_allowed_address_is_followed(server: str) -> None:
    assert _fetch(f"{server}/redirect?to=/label.png") == PNG


def test_redirect_to_another_scheme_is_refused(server: str) -> None:
    with pytest.raises(BadUrlError):
        _fetch(f"{server}/redirect?to=file:///etc/passwd")


def test_redirect_loops_stop(server: str) -> None:
    with pytest.raises(FetchFailedError, match="redirects"):
        _fetch(f"{server}/redirect?to=/redirect?to=/label.png", dataclasses.replace(LOOPBACK_ONLY, max_redirects=1))


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://example.com/a.png", "gopher://x/", "http://", "not a url", "//x/a.png"]
)
def test_only_http_and_https_urls(url: str) -> None:
    with pytest.raises(BadUrlError):
        _fetch(url, FetchPolicy())


def test_declared_size_over_the_cap_fails_before_reading(server: str) -> None:
    with pytest.raises(FetchTooLargeError):
        _fetch(f"{server}/huge-declared")


def test_streamed_size_over_the_cap_stops_reading(server: str) -> None:
    with pytest.raises(FetchTooLargeError):
        _fetch(f"{server}/endless", dataclasses.replace(LOOPBACK_ONLY, max_bytes=200_000))


@pytest.mark.parametrize("path", ["/slow", "/drip"])
def test_slow_servers_time_out(server: str, path: str) -> None:
    started = time.monotonic()
    with pytest.raises(FetchTimeoutError):
        _fetch(f"{server}{path}", dataclasses.replace(LOOPBACK_ONLY, timeout=0.5))
    assert time.monotonic() - started < 2.5


def test_http_errors_and_refused_connections_fail_cleanly(server: str) -> None:
    with pytest.raises(FetchFailedError, match="404"):
        _fetch(f"{server}/missing")
    with pytest.raises(FetchFailedError):
        _fetch("http://127.0.0.1:9/label.png")  # discard port: nothing listens
    with pytest.raises(FetchFailedError, match="resolve"):
        _fetch("http://nowhere.test/label.png", FetchPolicy(), _resolver({}))


# -- through the API ---------------------------------------------------------------------------------------------
def _make_client(policy: FetchPolicy) -> TestClient:
    settings = ServiceSettings(
        reader=ReaderConfig(cache_dir=None), executor="thread", warmup=False, fetch=policy, max_upload_bytes=1 << 20
    )
    return TestClient(create_app(settings))


def test_api_refuses_loopback_urls_by_default(server: str) -> None:
    with TestClient(create_app(ServiceSettings(executor="thread", warmup=False))) as client:
        resp = client.post("/v1/read", data={"entities": "item_weight", "image_url": f"{server}/label.png"})
    assert resp.status_code == 403
    assert resp.json()["error"]["code"] == "url_not_allowed"


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/missing", 502, "fetch_failed"),
        ("/huge-declared", 413, "remote_too_large"),
        ("/redirect?to=file:///etc/passwd", 422, "bad_url"),
    ],
)
def test_api_maps_fetch_failures_to_json_errors(server: str, path: str, status: int, code: str) -> None:
    with _make_client(LOOPBACK_ONLY) as client:
        resp = client.post("/v1/read", data={"entities": "item_weight", "image_url": f"{server}{path}"})
    assert resp.status_code == status
    assert resp.json()["error"]["code"] == code


def test_api_timeout_is_504(server: str) -> None:
    with _make_client(dataclasses.replace(LOOPBACK_ONLY, timeout=0.5)) as client:
        resp = client.post("/v1/read", data={"entities": "item_weight", "image_url": f"{server}/slow"})
    assert resp.status_code == 504
    assert resp.json()["error"]["code"] == "fetch_timeout"


@pytest.mark.slow
def test_api_reads_an_image_url_when_loopback_is_allowed(server: str) -> None:
    with _make_client(FetchPolicy(allow_private=True)) as client:
        resp = client.post("/v1/read", data={"entities": ["item_weight"], "image_url": f"{server}/label.png"})
    assert resp.status_code == 200, resp.text
    pred = resp.json()["predictions"]["item_weight"]
    assert pred["prediction"] == "340.0 gram"
    assert pred["evidence"]["text"].replace(" ", "").lower().startswith("netwt")
