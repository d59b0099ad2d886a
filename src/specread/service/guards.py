"""What stands between a client and the OCR pool: image sniffing, bounded uploads and the guard middleware.

* :func:`check_image` opens only common raster formats (never EPS or other
  formats that run external programs) and checks the pixel count against
  Pillow's ``MAX_IMAGE_PIXELS`` (the decompression-bomb limit) from the
  header, before anything is decoded.
* :func:`read_upload` reads an uploaded file into one buffer, up to a limit.
* :class:`ClientLimitMiddleware` bounds the requests in flight per client address.
* :class:`GuardMiddleware` guards every HTTP request whatever the ASGI server:
  body size and time limits, the byte budget taken as the body arrives
  (:mod:`specread.service.limits`), HEAD as GET, relative redirects, security headers.

Every error here is answered as the service's JSON error document
(:func:`error_response`).
"""

from __future__ import annotations

import io
from collections import Counter
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import anyio
from fastapi import UploadFile
from fastapi.responses import JSONResponse
from PIL import Image, UnidentifiedImageError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from specread.errors import ApiError
from specread.io.images import IMAGE_FORMATS
from specread.service.limits import HEALTH_PATH, ByteBudget, Reservation, busy

__all__ = [
    "FORM_SLACK",
    "ClientLimitMiddleware",
    "GuardMiddleware",
    "check_image",
    "error_response",
    "http_error_response",
    "read_upload",
]

MiB = 1024 * 1024
FORM_SLACK = 256 * 1024

MAX_HEADER_BYTES = 16 * 1024
"""Largest request header block. uvicorn's h11 refuses a larger one only while it is still
incomplete: 10,000 headers arriving in one read would otherwise be parsed and served."""

MAX_HEADERS = 100
"""Most header lines in one request (browsers send about 20)."""
"""Bytes a request body may carry beyond the image: multipart boundaries and the small text fields around it."""

_PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data: blob: http: https:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    408: "body_timeout",
    413: "upload_too_large",
    503: "busy",
}
"""Error codes of the HTTP errors starlette and the middleware raise, by status."""


def error_response(
    status: int, code: str, message: str, details: list[dict] | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The service's error document, ``{"error": {"code", "message", "details"?}}``, with ``status``."""
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def http_error_response(exc: StarletteHTTPException) -> JSONResponse:
    """A starlette (or middleware) HTTP error as the service's error document."""
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), headers=exc.headers)


# -- input checks --------------------------------------------------------------------------------------------------
def check_image(data: bytes) -> tuple[str, int, int]:
    """Sniff an encoded image from its header, without decoding the pixels.

    Returns:
        ``(format, width, height)``.

    Raises:
        ApiError: 415 not an image of :data:`specread.io.images.IMAGE_FORMATS` (the
            formats the decoder reads); 422 empty, corrupt header, or more pixels
            than ``PIL.Image.MAX_IMAGE_PIXELS``.
    """
    if not data:
        raise ApiError(422, "bad_image", "the image is empty")
    limit = Image.MAX_IMAGE_PIXELS
    try:
        with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as img:
            fmt, (width, height) = str(img.format), img.size
    except Image.DecompressionBombError as exc:
        raise ApiError(422, "image_too_large", f"the image has too many pixels ({exc})") from None
    except UnidentifiedImageError:
        formats = ", ".join(IMAGE_FORMATS)
        raise ApiError(415, "not_an_image", f"not an image in a supported format ({formats})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ApiError(422, "bad_image", f"the image header is corrupt ({exc})") from None
    if limit and width * height > limit:
        raise ApiError(
            422,
            "image_too_large",
            f"the image is {width}x{height} = {width * height} pixels; the limit is {limit} (decompression-bomb guard)",
        )
    return fmt, width, height


async def read_upload(upload: UploadFile, limit: int) -> bytes:
    """The uploaded file's bytes, in one buffer (no pieces to join: a second copy of a large image).

    The form parser has already spooled the file (to disk past 1 MiB) and counted its size; the
    spooled copy is closed once read, so only the returned bytes are left.

    Raises:
        ApiError: 413 past ``limit`` bytes.
    """
    if upload.size is not None and upload.size > limit:
        raise ApiError(413, "upload_too_large", f"the image is larger than the limit of {limit} bytes")
    data = await upload.read(limit + 1) if upload.size is None else await upload.read()
    await upload.close()
    if len(data) > limit:
        raise ApiError(413, "upload_too_large", f"the image is larger than the limit of {limit} bytes")
    return data


# -- the middleware ------------------------------------------------------------------------------------------------
class _BodyError(StarletteHTTPException):
    """Raised from ``receive``; an HTTPException so FastAPI's body parser passes it through to the handlers."""


class _BodyTooLarge(_BodyError):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the upload is larger than the limit of {limit} bytes")


class _BodyTimeout(_BodyError):
    def __init__(self, message: str) -> None:
        super().__init__(408, message, headers={"Connection": "close"})


class _BodyOverBudget(_BodyError):
    def __init__(self, error: ApiError) -> None:
        super().__init__(503, error.message, headers={**(error.headers or {}), "Connection": "close"})


def _path_only(location: bytes) -> bytes:
    """A redirect target reduced to its path and query: never a host from the client's ``Host`` header, nor ``//x``."""
    parts = urlsplit(location.decode("latin-1"))
    path = "/" + parts.path.lstrip("/\\")
    return urlunsplit(("", "", path, parts.query, parts.fragment)).encode("latin-1")


class GuardMiddleware:
    """Guards every HTTP request, whatever the ASGI server.

    * counts request-body bytes as they arrive (413 past ``max_body``) and takes them from
      ``budget`` as they do (503 ``busy`` with ``Retry-After`` when it is spent; given back
      when the request ends, so the share covers the body's copies until the answer);
    * times the body: all of it within ``body_timeout`` seconds, no wait for the
      next piece over ``body_idle_timeout`` (408 and ``Connection: close``);
    * refuses more than :data:`MAX_HEADERS` headers or :data:`MAX_HEADER_BYTES` of them (431);
    * runs HEAD as GET and drops the body, so HEAD works wherever GET does;
    * makes redirect ``Location`` headers relative (no ``Host`` reflection);
    * adds security headers (and a CSP on the web page).
    """

    def __init__(
        self,
        app: ASGIApp,
        max_body: int,
        max_upload: int,
        body_timeout: float = 60.0,
        body_idle_timeout: float = 15.0,
        budget: ByteBudget | None = None,
    ) -> None:
        self.app = app
        self.budget = budget
        self.max_body = max_body
        self.max_upload = max_upload
        self.body_timeout = body_timeout
        self.body_idle_timeout = min(body_idle_timeout, body_timeout)

    def _timeout(self, deadline: float) -> _BodyTimeout:
        if anyio.current_time() >= deadline:
            return _BodyTimeout(f"the request body did not arrive within {self.body_timeout:g} s")
        return _BodyTimeout(f"the request body stalled: nothing arrived for {self.body_idle_timeout:g} s")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        received = 0
        body_done = False
        started = False
        head = scope["method"] == "HEAD"
        if head:
            scope = {**scope, "method": "GET"}
        page = scope["path"] == "/" or scope["path"].startswith("/static/")
        deadline = anyio.current_time() + self.body_timeout
        share = Reservation(self.budget) if self.budget is not None else None
        if share is not None:  # for the route: a fetched image is taken from the same share
            scope.setdefault("state", {})["byte_share"] = share

        async def limited_receive() -> Message:
            nonlocal received, body_done
            if body_done:  # after the body only a disconnect can come: no deadline
                return await receive()
            try:
                with anyio.fail_after(max(0.0, min(self.body_idle_timeout, deadline - anyio.current_time()))):
                    message = await receive()
            except TimeoutError:
                raise self._timeout(deadline) from None
            if message["type"] == "http.request":
                size = len(message.get("body", b""))
                received += size
                if received > self.max_body:
                    raise _BodyTooLarge(self.max_upload)
                if share is not None:
                    try:
                        share.take(size)
                    except ApiError as exc:
                        raise _BodyOverBudget(exc) from None
                body_done = not message.get("more_body", False)
            else:
                body_done = True
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                redirect = 300 <= message["status"] < 400
                headers = [
                    (k, _path_only(v) if redirect and k.lower() == b"location" else v)
                    for k, v in message.get("headers", [])
                ]
                headers += [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
                if page:
                    headers.append((b"content-security-policy", _PAGE_CSP.encode()))
                message = {**message, "headers": headers}
            elif head and message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        if len(scope["headers"]) > MAX_HEADERS or sum(len(k) + len(v) for k, v in scope["headers"]) > MAX_HEADER_BYTES:
            too_many = f"more than {MAX_HEADERS} headers or {MAX_HEADER_BYTES} bytes of them"
            answer = error_response(431, "headers_too_large", too_many, headers={"Connection": "close"})
            await answer(scope, receive, guarded_send)
            return
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), b"")
        if declared.isdigit() and int(declared) > self.max_body:  # refuse before reading a byte
            await http_error_response(_BodyTooLarge(self.max_upload))(scope, receive, guarded_send)
            return
        try:
            await self.app(scope, limited_receive, guarded_send)
        except _BodyError as exc:  # raised outside a route (a route's own read is answered by the handlers)
            if started:
                raise
            await http_error_response(exc)(scope, receive, guarded_send)
        finally:
            if share is not None:
                share.close()


class ClientLimitMiddleware:
    """At most ``limit`` requests in flight per client address; the next gets a JSON 503 with ``Retry-After``.

    The address is ``scope["client"]``: the peer, or the client a trusted proxy names (uvicorn
    rewrites it). In flight means from the request's headers to its answer, so it covers an
    upload being read, a request queued for OCR and one being read.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.in_flight: Counter[str] = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == HEALTH_PATH:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        key = str(client[0]) if client else ""
        if self.in_flight[key] >= self.limit:
            refusal = busy(f"more than {self.limit} requests in flight from your address; retry shortly")
            # closed (gracefully, its body drained) rather than kept: the client is over its share already
            headers = {**(refusal.headers or {}), "Connection": "close"}
            answer = error_response(refusal.status, refusal.code, refusal.message, headers=headers)
            await answer(scope, receive, send)
            return
        self.in_flight[key] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight[key] -= 1
            if not self.in_flight[key]:
                del self.in_flight[key]
