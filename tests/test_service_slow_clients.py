"""Slow and hostile clients against a real server: uvicorn with the service's protocol, on 127.0.0.1.

Each server runs in a thread on a free loopback port with short timeouts
(headers 1 s, body 2 s) and a thread pool that never loads an OCR model; the
clients are raw sockets, every one with a timeout, so nothing here can hang.
"""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from tempfile import SpooledTemporaryFile

import pytest

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")

import starlette.formparsers  # noqa: E402

from service_server import connect as _connect  # noqa: E402
from service_server import json_error as _json_error  # noqa: E402
from service_server import one_response as _one_response  # noqa: E402
from service_server import parse as _parse  # noqa: E402
from service_server import read_until_closed as _read_until_closed  # noqa: E402
from service_server import running as _running  # noqa: E402
from specread import settings as settings_module  # noqa: E402
from specread.settings import ReaderConfig, ServiceSettings  # noqa: E402

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 2.0
SLACK = 1.5  # scheduling slack on a busy machine
BOUNDARY = b"specread-test"


def _settings(**overrides: object) -> ServiceSettings:
    base: dict[str, object] = {
        "reader": ReaderConfig(cache_dir=None),
        "executor": "thread",
        "warmup": False,
        "header_timeout": HEADER_TIMEOUT,
        "body_timeout": BODY_TIMEOUT,
    }
    return ServiceSettings(**(base | overrides))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    with _running(_settings()) as p:
        yield p


def _upload_head(rest: int = 100_000) -> bytes:
    """Request headers and the start of a multipart upload, declaring ``rest`` more body bytes to come."""
    preamble = (
        b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
        b"Content-Type: image/png\r\n\r\n"
    )
    return (
        b"POST /v1/read HTTP/1.1\r\nHost: test\r\n"
        b"Content-Type: multipart/form-data; boundary=" + BOUNDARY + b"\r\n"
        b"Content-Length: " + str(len(preamble) + rest).encode() + b"\r\n\r\n" + preamble
    )


def _drip(sock: socket.socket, piece: bytes, every: float, within: float) -> bytes:
    """Send ``piece`` every ``every`` seconds until the server answers or closes; return what it sent."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        readable, _, _ = select.select([sock], [], [], every)
        if readable:
            return _read_until_closed(sock, within)
        try:
            sock.sendall(piece)
        except (BrokenPipeError, ConnectionResetError):
            return _read_until_closed(sock, within)
    pytest.fail(f"no answer to a dripping client within {within:g} s")


# -- request headers -----------------------------------------------------------------------------------------------
def test_unfinished_headers_get_408_and_are_closed(port: int) -> None:
    with _connect(port) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n")  # no blank line: the headers never end
        raw = _read_until_closed(sock, HEADER_TIMEOUT + SLACK)
    assert time.monotonic() - started >= HEADER_TIMEOUT - 0.2
    err = _json_error(raw, 408, "header_timeout")
    assert "1 s" in err["message"]


def test_headers_sent_a_byte_at_a_time_are_cut_off(port: int) -> None:
    with _connect(port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: test\r\nX-Slow: ")
        started = time.monotonic()
        raw = _drip(sock, b"a", every=0.1, within=HEADER_TIMEOUT + SLACK)
    assert time.monotonic() - started < HEADER_TIMEOUT + SLACK
    _json_error(raw, 408, "header_timeout")


def test_silent_connection_is_closed(port: int) -> None:
    with _connect(port) as sock:
        assert _read_until_closed(sock, HEADER_TIMEOUT + SLACK) == b""  # nothing asked, nothing answered


def test_next_request_on_a_kept_alive_connection_is_timed_too(port: int) -> None:
    with _connect(port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        status, _, body = _one_response(sock)
        assert status == 200 and json.loads(body)["status"] == "ok"
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # a second request that never finishes its headers
        _json_error(_read_until_closed(sock, HEADER_TIMEOUT + SLACK), 408, "header_timeout")


def test_a_request_whose_body_outlasts_the_header_timeout_is_served(port: int) -> None:
    """The header timer stops once the headers are in: a body that takes 1.35 s (under body_timeout) is read."""
    part = b"not an image " * 8
    tail = b"\r\n--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="entities"\r\n\r\nitem_weight\r\n'
    tail += b"--" + BOUNDARY + b"--\r\n"
    pieces = [part, part, tail]
    head = _upload_head(sum(map(len, pieces)))
    with _connect(port) as sock:
        sock.sendall(head)
        for piece in pieces:
            time.sleep(0.45)
            sock.sendall(piece)
        status, _, body = _one_response(sock)
    assert status == 415 and json.loads(body)["error"]["code"] == "not_an_image", body


# -- request bodies ------------------------------------------------------------------------------------------------
def test_unfinished_body_gets_408_and_is_closed(port: int) -> None:
    with _connect(port) as sock:
        sock.sendall(_upload_head() + b"\x89PNG" + b"\0" * 1000)  # 100 kB declared, 1 kB sent
        started = time.monotonic()
        raw = _read_until_closed(sock, BODY_TIMEOUT + SLACK)
    assert time.monotonic() - started >= BODY_TIMEOUT - 0.3
    _json_error(raw, 408, "body_timeout")
    assert _parse(raw)[1]["connection"] == "close"


def test_slow_body_is_cut_off_at_the_total_timeout(port: int) -> None:
    with _connect(port) as sock:
        sock.sendall(_upload_head())
        started = time.monotonic()
        raw = _drip(sock, b"\0" * 10, every=0.2, within=BODY_TIMEOUT + SLACK)  # never idle, never done
    assert BODY_TIMEOUT - 0.3 <= time.monotonic() - started < BODY_TIMEOUT + SLACK
    err = _json_error(raw, 408, "body_timeout")
    assert "within 2 s" in err["message"]


def test_a_stalled_body_is_cut_off_at_the_idle_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings_module, "BODY_IDLE_TIMEOUT", 0.5)
    with _running(_settings(body_timeout=30)) as p, _connect(p) as sock:
        sock.sendall(_upload_head() + b"\0" * 100)
        started = time.monotonic()
        raw = _read_until_closed(sock, 0.5 + SLACK)
    assert time.monotonic() - started < 0.5 + SLACK
    assert "stalled" in _json_error(raw, 408, "body_timeout")["message"]


def test_half_sent_upload_releases_its_temp_file(port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    files: list[SpooledTemporaryFile] = []

    class Tracked(SpooledTemporaryFile):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            files.append(self)

    monkeypatch.setattr(starlette.formparsers, "SpooledTemporaryFile", Tracked)
    with _connect(port) as sock:
        sock.sendall(_upload_head() + b"\x89PNG" + b"\0" * 20_000)
        _json_error(_read_until_closed(sock, BODY_TIMEOUT + SLACK), 408, "body_timeout")
    assert files, "the upload never reached the form parser"
    assert all(f.closed for f in files)


CHUNKED = (
    b"POST /v1/read HTTP/1.1\r\nHost: test\r\nContent-Type: multipart/form-data; boundary=b\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)


# -- protocol faults -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("request_bytes", "status", "code"),
    [
        (b"GARBAGE\r\n\r\n", 400, "bad_request"),
        (b"GET / HTTP/1.1\r\nHost: test\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n", 431, "headers_too_large"),
        (
            b"POST /v1/read HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
            400,
            "bad_request",
        ),
        (b"POST /v1/read HTTP/1.1\r\nHost: test\r\nContent-Length: -1\r\n\r\n", 400, "bad_request"),
        (b"GET / HTTP/1.1\r\nHost: test\r\nBad Header: x\r\n\r\n", 400, "bad_request"),
        (b"POST /v1/read HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "not_implemented"),
        (CHUNKED + b"5\r\n--b\r\n\r\nzz\r\n", 400, "bad_request"),  # broken mid-body, the app already running
        (  # 10,000 small headers sent in one go: complete, so h11's size limit never sees them
            b"GET /healthz HTTP/1.1\r\nHost: test\r\n" + b"".join(b"X-%d: a\r\n" % i for i in range(10000)) + b"\r\n",
            431,
            "headers_too_large",
        ),
    ],
    ids=[
        "request-line",
        "1MB-header",
        "conflicting-content-length",
        "negative-length",
        "space-in-name",
        "gzip-te",
        "bad-chunk",
        "10000-headers",
    ],
)
def test_protocol_faults_get_json_errors(port: int, request_bytes: bytes, status: int, code: str) -> None:
    with _connect(port) as sock:
        with suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request_bytes)
        raw = _read_until_closed(sock, SLACK + 2)
    _json_error(raw, status, code)


# -- HEAD and forwarded headers through the real server ------------------------------------------------------------
def test_head_keeps_headers_drops_the_body_and_keeps_the_connection(port: int) -> None:
    with _connect(port) as sock:
        sock.sendall(b"HEAD /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        raw = b""
        while b"\r\n\r\n" not in raw:
            raw += sock.recv(65536)
        status, headers, body = _parse(raw)
        assert (status, body) == (200, b"")
        assert int(headers["content-length"]) > 0 and headers["content-type"] == "application/json"
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")  # the framing held: the next request works
        assert _one_response(sock)[0] == 200


def _probe(seen: list[dict]) -> Callable:
    def wrap(app: Callable) -> Callable:
        async def recording(scope: dict, receive: Callable, send: Callable) -> None:
            if scope["type"] == "http":
                seen.append({"client": scope["client"][0], "scheme": scope["scheme"]})
            await app(scope, receive, send)

        return recording

    return wrap


FORWARDED = (
    b"GET /static HTTP/1.1\r\nHost: evil.example\r\nX-Forwarded-For: 203.0.113.9\r\n"
    b"X-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.example\r\nConnection: close\r\n\r\n"
)


def test_forwarded_headers_from_loopback_change_nothing_by_default() -> None:
    seen: list[dict] = []
    with _running(_settings(), wrap=_probe(seen)) as p, _connect(p) as sock:
        sock.sendall(FORWARDED)
        status, headers, _ = _parse(_read_until_closed(sock, 5))
    assert seen == [{"client": "127.0.0.1", "scheme": "http"}]
    assert status in (307, 308) and headers["location"] == "/static/"


def test_forwarded_headers_are_trusted_from_configured_proxies() -> None:
    seen: list[dict] = []
    with _running(_settings(forwarded_allow_ips=("127.0.0.1",)), wrap=_probe(seen)) as p, _connect(p) as sock:
        sock.sendall(FORWARDED)
        headers = _parse(_read_until_closed(sock, 5))[1]
    assert seen == [{"client": "203.0.113.9", "scheme": "https"}]
    assert headers["location"] == "/static/"  # still a path: no host from any header
