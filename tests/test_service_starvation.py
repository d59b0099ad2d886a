"""One client cannot starve the others (issue 18): idle sockets, bursts, abandoned requests, the byte budget.

A real server (uvicorn with the service's protocol) on a loopback port, a thread pool whose
worker is a stub that waits for the test's go-ahead, raw-socket clients with timeouts. A second
loopback address (127.0.0.2, which Linux routes to lo) is "another client".
"""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, suppress

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from PIL import Image

from service_server import connect, json_error, one_response, read_until_closed, running
from specread.service import worker
from specread.service.app import create_app
from specread.settings import ReaderConfig, ServiceSettings

OTHER = "127.0.0.2"
BOUNDARY = b"specread-starve"
ANSWER = {"width": 1, "height": 1, "tokens": [], "predictions": {}}


def _settings(**overrides: object) -> ServiceSettings:
    base: dict[str, object] = {"reader": ReaderConfig(cache_dir=None), "executor": "thread", "warmup": False}
    return ServiceSettings(**(base | overrides))  # type: ignore[arg-type]


def _png(padding: int = 0) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), "white").save(buf, "PNG")
    return buf.getvalue() + b"\0" * padding  # bytes after IEND: still sniffs as a PNG


def _form(image: bytes) -> bytes:
    return (
        b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="entities"\r\n\r\nitem_weight\r\n'
        b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
        b"Content-Type: image/png\r\n\r\n" + image + b"\r\n--" + BOUNDARY + b"--\r\n"
    )


def _post_head(body_size: int) -> bytes:
    return (
        b"POST /v1/read HTTP/1.1\r\nHost: test\r\nContent-Type: multipart/form-data; boundary=" + BOUNDARY + b"\r\n"
        b"Content-Length: " + str(body_size).encode() + b"\r\n\r\n"
    )


def _post(port: int, source: str = "127.0.0.1", image: bytes | None = None) -> socket.socket:
    """Send a whole read request; the caller reads the answer."""
    body = _form(image or _png())
    sock = connect(port, source)
    sock.sendall(_post_head(len(body)) + body)
    return sock


def _get(port: int, path: str, source: str = "127.0.0.1") -> tuple[int, dict[str, str], bytes]:
    with connect(port, source) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
        return one_response(sock)


def _wait(condition: Callable[[], bool], what: str, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.01)


class Gate:
    """The stub worker: records each call and holds it until :meth:`open`."""

    def __init__(self) -> None:
        self.calls = 0
        self.released = threading.Event()

    def __call__(self, *args: object) -> dict:
        self.calls += 1
        self.released.wait(10)
        return ANSWER

    def open(self) -> None:
        self.released.set()


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    stub = Gate()
    monkeypatch.setattr(worker, "read_image", stub)
    yield stub
    stub.open()


def _ok(sock: socket.socket) -> None:
    status, _, body = one_response(sock)
    assert status == 200 and json.loads(body) == ANSWER, body


# -- idle sockets and connection limits ----------------------------------------------------------------------------
def test_idle_sockets_of_one_client_starve_no_one(gate: Gate) -> None:
    gate.open()
    settings = _settings(max_client_connections=8, max_connections=4, header_timeout=10)
    with running(settings) as port, ExitStack() as idle:
        for _ in range(30):  # far over both the client's limit and the global one
            idle.enter_context(connect(port))
        time.sleep(0.2)  # all accepted
        assert _get(port, "/healthz", OTHER)[0] == 200
        with _post(port, OTHER) as other:
            _ok(other)
        assert _get(port, "/healthz")[0] == 200  # the flooding client's own health check too
        status, headers, body = _get(port, "/v1/entities")  # but its 31st connection does no work
        assert status == 503 and headers["retry-after"] == "1"
        assert json.loads(body)["error"]["code"] == "busy"
    assert gate.calls == 1


def test_the_global_limit_counts_requests_served(gate: Gate) -> None:
    with running(_settings(max_connections=1)) as port, _post(port) as first:
        _wait(lambda: gate.calls == 1, "the first request reached the worker")
        status, _, body = _get(port, "/v1/entities", OTHER)
        assert status == 503 and "requests" in json.loads(body)["error"]["message"]
        assert _get(port, "/healthz", OTHER)[0] == 200  # never refused
        gate.open()
        _ok(first)
    assert gate.calls == 1


def test_requests_in_flight_are_limited_per_client(gate: Gate) -> None:
    app = create_app(_settings(max_client_requests=2))
    with running(app.state.settings, app=app) as port, _post(port) as one, _post(port) as two:
        _wait(lambda: app.state.pool.pending == 2, "two requests in the pool")
        with _post(port) as third:
            json_error(read_until_closed(third, 5), 503, "busy")
        with _post(port, OTHER) as other:  # another client's request is queued, not refused
            _wait(lambda: app.state.pool.pending == 3, "the other client's request in the pool")
            assert _get(port, "/healthz")[0] == 200
            gate.open()
            for sock in (one, two, other):
                _ok(sock)
    assert gate.calls == 3


# -- abandoned requests --------------------------------------------------------------------------------------------
def test_requests_whose_clients_left_are_dropped_from_the_queue(gate: Gate) -> None:
    app = create_app(_settings(workers=1, max_client_requests=10))
    with running(app.state.settings, app=app) as port, _post(port) as first:
        _wait(lambda: gate.calls == 1, "the first request reached the worker")
        leavers = [_post(port) for _ in range(5)]
        _wait(lambda: app.state.pool.pending == 6, "five requests queued behind it")
        for sock in leavers:
            sock.close()
        _wait(lambda: app.state.pool.pending == 1, "the abandoned requests left the queue")
        gate.open()
        _ok(first)
        with _post(port, OTHER) as fresh:
            _ok(fresh)
    assert gate.calls == 2  # the first and the fresh one: none of the five was read


# -- the byte budget -----------------------------------------------------------------------------------------------
def test_the_byte_budget_counts_uploads_from_the_first_byte(gate: Gate) -> None:
    app = create_app(_settings(max_upload_bytes=200_000, max_queued_bytes=300_000))
    pool = app.state.pool
    with running(app.state.settings, app=app) as port, _post(port, image=_png(150_000)) as held:
        _wait(lambda: gate.calls == 1, "the first upload reached the worker")
        assert pool.queued_bytes > 150_000  # held until it is answered
        body = _form(_png(180_000))
        with connect(port, OTHER) as late:
            late.sendall(_post_head(len(body)) + body[:100_000])
            _wait(lambda: pool.queued_bytes > 240_000, "the half-sent upload counted as it arrives")
            with suppress(BrokenPipeError, ConnectionResetError):
                late.sendall(body[100_000:])  # over the budget: answered, and the rest read and dropped
            error = json_error(read_until_closed(late, 5), 503, "busy")
            assert "upload" in error["message"]
        _wait(lambda: pool.queued_bytes < 200_000, "the refused upload's share given back")
        gate.open()
        _ok(held)
    _wait(lambda: pool.queued_bytes == 0, "every share given back")
