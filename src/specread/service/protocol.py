"""uvicorn's HTTP/1.1 protocol, hardened against slow and hostile clients.

uvicorn (h11) has a keep-alive timeout but none for reading request headers:
it is cancelled on the first byte, so a client that sends one byte a second
(or connects and sends part of a request line) holds a connection, and its
share of ``limit_concurrency``, for as long as it likes. It also answers
protocol faults and the concurrency limit in plain text. The subclass here:

* starts a **header timer** when a connection opens and again whenever a new
  request may begin (after a response completes), and cancels it only once a
  request's headers are complete; when it fires, a client that sent part of a
  request gets a JSON 408, a silent one is just closed;
* answers **protocol faults** (bad request line, header over h11's size limit,
  conflicting ``Content-Length``...) with a JSON 400 (431 for oversized
  headers, 501 for an unsupported Transfer-Encoding) instead of uvicorn's plain
  text;
* answers requests over the **work limit** (``max_connections``: requests being
  served at once, all clients together; an idle connection does not count, so a
  client holding a hundred idle sockets takes nothing from the others) and requests
  on a client's connections past its **per-client limit** (``max_client_connections``
  open connections from one peer address; a trusted proxy is exempt) with a JSON 503
  and ``Retry-After``. ``/healthz`` is never refused;
* after such an error, or any answer sent while the request body is still arriving
  (413, 408, a 503 for a spent byte budget), **closes gracefully**: it half-closes the
  connection and discards what the client still sends for a moment, so unread data
  does not make the kernel reset the connection and destroy the answer.

Body timeouts are not here but in the ASGI guard middleware
(:class:`specread.service.guards.GuardMiddleware`), so they hold under any server.

Example:
    >>> import uvicorn
    >>> protocol = guarded_protocol(header_timeout=10.0)
    >>> config = uvicorn.Config(app, http=protocol, limit_concurrency=100)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from typing import Any

import h11
from h11._connection import DEFAULT_MAX_INCOMPLETE_EVENT_SIZE
from uvicorn.protocols.http.h11_impl import STATUS_PHRASES, H11Protocol

__all__ = ["LINGER_SECONDS", "GuardedH11Protocol", "error_body", "guarded_protocol"]

HEALTH_PATH = b"/healthz"
_OPENED = itertools.count()
"""Connection numbers, in the order they were opened (the oldest of a client's connections are served)."""

LINGER_SECONDS = 2.0
"""How long a connection answered with a protocol-level error keeps discarding input before it is closed."""


_FAULTS = {
    400: ("bad_request", "malformed HTTP request (request line, headers or framing)"),
    431: ("headers_too_large", "the request headers are larger than the limit"),
    501: ("not_implemented", "the request's Transfer-Encoding is not supported"),
}
"""Answers to protocol faults by h11's status hint."""


def error_body(code: str, message: str) -> bytes:
    """The service's error document, ``{"error": {"code", "message"}}``, as JSON bytes."""
    return json.dumps({"error": {"code": code, "message": message}}).encode()


def _json_headers(body: bytes, extra: tuple[tuple[bytes, bytes], ...] = ()) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        (b"x-content-type-options", b"nosniff"),
        *extra,
    ]


class _Connection(h11.Connection):
    """An h11 connection that remembers the last protocol error it raised (for its status hint)."""

    last_error: h11.RemoteProtocolError | None = None

    def next_event(self) -> Any:
        try:
            return super().next_event()
        except h11.RemoteProtocolError as exc:
            self.last_error = exc
            raise


class _GracefulTransport:
    """The transport a request's cycle writes to: its ``close`` is graceful while the request body still arrives."""

    def __init__(self, protocol: GuardedH11Protocol) -> None:
        self._protocol = protocol
        self._transport = protocol.transport

    def close(self) -> None:
        if self._protocol.conn.their_state is h11.SEND_BODY:
            self._protocol._close_gracefully()
        else:
            self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def _never_trusted(address: str) -> bool:
    return False


class GuardedH11Protocol(H11Protocol):
    """:class:`H11Protocol` with a header timeout, JSON protocol errors and JSON 503s over the limits.

    Build a configured subclass with :func:`guarded_protocol`; uvicorn instantiates it per connection.
    The work limit is uvicorn's ``limit_concurrency`` (``Config(limit_concurrency=N)``), counted in
    requests being served rather than open connections.
    """

    header_timeout: float = 10.0
    client_connections: int | None = None
    """Connections of one peer address that may carry requests (the oldest ones); None: no limit."""
    trusted: Callable[[str], bool] = staticmethod(_never_trusted)
    """Whether a peer address is a trusted proxy (exempt from ``client_connections``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        max_size = self.config.h11_max_incomplete_event_size
        self.conn = _Connection(h11.SERVER, DEFAULT_MAX_INCOMPLETE_EVENT_SIZE if max_size is None else max_size)
        # uvicorn swaps the app for its plain-text 503 when this is set; the limit is checked in _serve instead.
        self.max_connections = self.limit_concurrency
        self.limit_concurrency = None
        self.inner_app = self.app
        self.app = self._serve
        self._header_timer: asyncio.TimerHandle | None = None
        self._got_data = False  # bytes of a new request arrived while the header timer ran
        self._draining = False
        self._opened = next(_OPENED)

    # -- the header timer --
    def _start_header_timer(self) -> None:
        self._cancel_header_timer()
        self._got_data = False
        self._header_timer = self.loop.call_later(self.header_timeout, self._header_timeout_expired)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout_expired(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        partial = self._got_data or bool(self.conn.trailing_data[0])
        if partial and self.conn.our_state is h11.IDLE and self.conn.their_state is h11.IDLE:
            message = f"the request headers did not arrive within {self.header_timeout:g} s"
            self._answer_and_close(408, "header_timeout", message)
        else:  # nothing to answer (an idle connection, or the rest of a body we already answered)
            self._close_gracefully()

    # -- uvicorn hooks --
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._draining:  # answered and closing: discard what still arrives
            return
        if self._header_timer is not None:
            self._got_data = True
        super().data_received(data)

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle:  # a request's headers are complete: its body is the middleware's to time
            self._cancel_header_timer()
            if self.cycle is not None:
                self.cycle.transport = _GracefulTransport(self)  # type: ignore[assignment]

    def handle_websocket_upgrade(self, event: h11.Request) -> None:  # pragma: no cover - the service runs ws="none"
        self._cancel_header_timer()
        super().handle_websocket_upgrade(event)

    def on_response_complete(self) -> None:
        if self._draining:  # answered before the body was read, and closing: no next request, no timers
            self.server_state.total_requests += 1
            return
        if not self.transport.is_closing():
            self._start_header_timer()  # the next request's headers (a pipelined one cancels it at once)
        super().on_response_complete()

    def send_400_response(self, msg: str) -> None:
        error = self.conn.last_error if isinstance(self.conn, _Connection) else None
        status = error.error_status_hint if error is not None and error.error_status_hint in _FAULTS else 400
        self._answer_and_close(status, *_FAULTS[status])

    def shutdown(self) -> None:
        if self._draining:
            self.transport.close()
        else:
            super().shutdown()

    # -- answers --
    async def _serve(self, scope: Any, receive: Any, send: Any) -> None:
        refusal = None if scope.get("raw_path") == HEALTH_PATH else self._refusal()
        if refusal is not None:
            self.logger.warning("answering 503: %s", refusal)
            body = error_body("busy", refusal + "; retry shortly")
            headers = _json_headers(body, ((b"retry-after", b"1"),))
            await send({"type": "http.response.start", "status": 503, "headers": headers})
            await send({"type": "http.response.body", "body": body, "more_body": False})
            return
        await self.inner_app(scope, receive, send)

    def _refusal(self) -> str | None:
        """Why this connection's request is refused (the work limit, then this client's), or None."""
        limit = self.max_connections
        if limit is not None and len(self.tasks) > limit:  # this request is one of the tasks
            return f"the server is serving {limit} requests, its limit"
        host = self.client[0] if self.client else None
        per_client = self.client_connections
        if per_client is None or host is None or self.trusted(host):
            return None
        older = sum(
            1
            for other in self.connections
            if isinstance(other, GuardedH11Protocol)
            and other._opened < self._opened
            and other.client
            and other.client[0] == host
        )
        if older >= per_client:
            return f"more than {per_client} open connections from your address"
        return None

    def _answer_and_close(self, status: int, code: str, message: str) -> None:
        """Send a JSON error if the protocol state still allows a response, then close gracefully."""
        if self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            body = error_body(code, message)
            response = h11.Response(status_code=status, headers=_json_headers(body), reason=STATUS_PHRASES[status])
            try:
                output = [self.conn.send(event) for event in (response, h11.Data(data=body), h11.EndOfMessage())]
            except h11.LocalProtocolError:  # pragma: no cover - a state h11 refuses to answer in
                output = []
            self.transport.write(b"".join(part or b"" for part in output))
        self._close_gracefully()

    def _close_gracefully(self) -> None:
        """Half-close, discard input for up to :data:`LINGER_SECONDS`, then close (no reset over our answer)."""
        self._cancel_header_timer()
        self._unset_keepalive_if_required()
        if self.transport.is_closing():
            return
        self._draining = True
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self.flow.resume_reading()
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(LINGER_SECONDS, self.transport.close)
        else:  # pragma: no cover - TLS transports cannot half-close
            self.transport.close()


def guarded_protocol(
    header_timeout: float, client_connections: int | None = None, trusted: Callable[[str], bool] | None = None
) -> type[GuardedH11Protocol]:
    """A :class:`GuardedH11Protocol` subclass to pass as uvicorn's ``http=``.

    Args:
        header_timeout: seconds a client has to send a request's headers.
        client_connections: connections of one peer address that may carry requests; None: no limit.
        trusted: whether a peer address is a trusted proxy, exempt from ``client_connections``.
    """
    if header_timeout <= 0:
        raise ValueError("header_timeout must be positive")
    if client_connections is not None and client_connections < 1:
        raise ValueError("client_connections must be at least 1")
    attributes = {
        "header_timeout": float(header_timeout),
        "client_connections": client_connections,
        "trusted": staticmethod(trusted or _never_trusted),
    }
    return type("SpecreadH11Protocol", (GuardedH11Protocol,), attributes)
