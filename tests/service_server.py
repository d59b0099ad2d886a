"""A real server for the service tests: uvicorn with the service's protocol on a free 127.0.0.1 port, raw clients.

Every client socket has a timeout and every wait a deadline, so nothing here can hang.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import uvicorn

from specread.service.app import create_app, uvicorn_options
from specread.settings import ServiceSettings

__all__ = ["connect", "json_error", "one_response", "parse", "read_until_closed", "running"]


@contextmanager
def running(settings: ServiceSettings, wrap: Callable | None = None, app: Any = None) -> Iterator[int]:
    """Serve ``app`` (default: ``create_app(settings)``), wrapped by ``wrap``, under :func:`uvicorn_options`.

    Yields the port.
    """
    app = app or create_app(settings)
    config = uvicorn.Config(wrap(app) if wrap else app, log_level="error", **uvicorn_options(settings))
    server = uvicorn.Server(config)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.01)
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(20)
        sock.close()


def connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    """A connection to the server from ``source``: another loopback address (127.0.0.2) is another client."""
    return socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))


def read_until_closed(sock: socket.socket, within: float) -> bytes:
    """Everything the server sends until it closes; fails if it is still open after ``within`` seconds."""
    deadline = time.monotonic() + within
    data = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            pytest.fail(f"the server kept the connection open for over {within:g} s (got {data[:200]!r})")
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        except TimeoutError:
            continue
        if not chunk:
            return data
        data += chunk


def parse(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def json_error(raw: bytes, status: int, code: str) -> dict:
    got, headers, body = parse(raw)
    assert got == status, raw[:300]
    assert headers["content-type"].startswith("application/json")
    error = json.loads(body)["error"]
    assert error["code"] == code and error["message"]
    return error


def one_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read exactly one response with a Content-Length (the connection stays open)."""
    raw = b""
    while b"\r\n\r\n" not in raw:
        raw += sock.recv(65536)
    status, headers, body = parse(raw)
    while len(body) < int(headers.get("content-length", 0)):
        body += sock.recv(65536)
    return status, headers, body
