"""The HTTP service: ``POST /v1/read``, ``GET /healthz``, OpenAPI docs and a web page at ``/``.

Thin on purpose: it checks input, hands the image to the OCR pool and returns
:meth:`specread.types.ReadResult.to_dict`. What it adds is what a public
endpoint needs and a CLI does not:

* **OCR off the event loop.** Reading an image is CPU-bound, so it runs in a
  pool (processes by default, ``--workers`` of them, each holding one reader
  built by :func:`specread.readers.build_reader`); the event loop only
  parses requests, so ``/healthz`` answers at once under load. A full pool
  queues requests up to ``max_pending`` (and ``max_queued_bytes`` of image
  data, which bounds the memory a burst of large uploads can pin), then
  answers 503. A worker that
  dies (out of memory...) breaks a process pool; it is replaced and the
  request gets a 503 instead of every later request failing.
* **Hostile input.** The request body is counted while it is received and
  refused with 413 past the limit (a ``Content-Length`` over it is refused
  before reading anything). Images are sniffed before they reach a worker:
  only common raster formats are opened (never EPS or other formats that
  run external programs), and the pixel count is checked against Pillow's
  ``MAX_IMAGE_PIXELS`` (the decompression-bomb limit) from the header,
  before anything is decoded. URLs go through :mod:`specread.service.fetch`.
* **Slow and hostile clients.** A request body must arrive within
  ``body_timeout`` seconds in all, with no pause longer than
  ``min(body_timeout, 15)`` seconds (408, and the half-sent upload is
  dropped). HEAD is answered wherever GET is. Redirects carry a path, never
  a URL built from the client's ``Host`` header. Under uvicorn
  (:func:`serve`), :mod:`specread.service.protocol` adds a request-header
  timeout, a bound on open connections and JSON answers to protocol faults;
  ``X-Forwarded-*`` headers are trusted only from ``forwarded_allow_ips``.
* **Errors are JSON.** Every error, including an unexpected one, answers
  ``{"error": {"code", "message", "details"?}}``; tracebacks go to the log,
  never to the client.

Example:
    >>> from specread.service.app import ServiceSettings, create_app
    >>> app = create_app(ServiceSettings(workers=2))   # then: uvicorn.run(app)
"""

from __future__ import annotations

import asyncio
import io
import ipaddress
import logging
import math
import multiprocessing
from collections.abc import AsyncIterator
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

import anyio
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from PIL import Image, UnidentifiedImageError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from specread.errors import ImageLoadError, UnknownEntityError
from specread.io.images import IMAGE_FORMATS
from specread.service import worker
from specread.service.fetch import FetchError, FetchPolicy, Resolver, fetch_image
from specread.service.models import (
    EntitiesResponse,
    EntityInfo,
    EntityName,
    ErrorBody,
    HealthResponse,
    ReadResponse,
)
from specread.settings import ReaderConfig
from specread.units.registry import get_registry

__all__ = ["ApiError", "OcrPool", "ServiceSettings", "check_image", "create_app", "serve", "uvicorn_options"]

log = logging.getLogger("specread.service")

MiB = 1024 * 1024
BODY_IDLE_TIMEOUT = 15.0
"""Longest wait for the next piece of a request body (or ``body_timeout``, if shorter)."""

_FORM_SLACK = 256 * 1024  # multipart boundaries and the small text fields around the file
_STATIC = Path(str(files("specread.service") / "static"))
_PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data: blob: http: https:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


@dataclass(frozen=True)
class ServiceSettings:
    """Everything the service is configured with, fixed at start-up.

    Attributes:
        reader: how each worker builds its reader (scorer, engine, OCR cache).
            The default is ``ReaderConfig(cache_dir=None)``: no OCR cache, which
            would grow without bound and tell a client, by timing, whether an
            image was read before; give a ``cache_dir`` only where clients are trusted.
        workers: OCR pool size (processes or threads).
        executor: ``"process"`` (one process per worker: true parallelism) or
            ``"thread"`` (one process; for tests and tiny deployments).
        max_upload_bytes: largest accepted image, uploaded or fetched.
        max_pending: most requests queued for or inside the pool before 503.
        max_queued_bytes: most image bytes held for queued requests before 503.
        fetch: URL fetch policy; default: public addresses only, capped at
            ``max_upload_bytes``.
        warmup: load the OCR models in every worker before accepting requests.
        resolver: host-name resolver for URL fetches (the system one if None).
        header_timeout: seconds a client has to send a request's headers (from
            connecting, or from the end of the previous response); under
            :func:`serve` only.
        body_timeout: seconds a request body may take in all; no single wait for
            the next piece may exceed ``min(body_timeout, 15)`` seconds.
        max_connections: open connections served at once; a request on one over
            it gets 503 (under :func:`serve`: uvicorn's ``limit_concurrency``).
        forwarded_allow_ips: proxy addresses or networks (or ``"*"``) whose
            ``X-Forwarded-For``/``-Proto`` headers are trusted; empty: none.
    """

    reader: ReaderConfig = field(default_factory=lambda: ReaderConfig(cache_dir=None))
    workers: int = 1
    executor: Literal["process", "thread"] = "process"
    max_upload_bytes: int = 20 * MiB
    max_pending: int = 512
    max_queued_bytes: int = 1024 * MiB
    fetch: FetchPolicy | None = None
    warmup: bool = True
    resolver: Resolver | None = None
    header_timeout: float = 10.0
    body_timeout: float = 60.0
    max_connections: int = 100
    forwarded_allow_ips: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        counts = (self.workers, self.max_pending, self.max_upload_bytes, self.max_queued_bytes, self.max_connections)
        if min(counts) < 1:
            raise ValueError(
                "workers, max_pending, max_upload_bytes, max_queued_bytes and max_connections must be at least 1"
            )
        if self.executor not in ("process", "thread"):
            raise ValueError(f"unknown executor {self.executor!r}; choose one of: process, thread")
        for name in ("header_timeout", "body_timeout"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0 < value < math.inf):
                raise ValueError(f"{name} must be a positive number of seconds; got {value!r}")
        if isinstance(self.forwarded_allow_ips, str):
            raise ValueError("forwarded_allow_ips must be a tuple of addresses, not one string")
        for ip in self.forwarded_allow_ips:
            try:
                if ip != "*":
                    ipaddress.ip_network(ip, strict=False)
            except ValueError:
                raise ValueError(f"forwarded_allow_ips: {ip!r} is not an IP address, a network or '*'") from None

    @property
    def body_idle_timeout(self) -> float:
        """Longest wait for the next piece of a request body."""
        return min(self.body_timeout, BODY_IDLE_TIMEOUT)

    @property
    def fetch_policy(self) -> FetchPolicy:
        return self.fetch or FetchPolicy(max_bytes=self.max_upload_bytes)


class ApiError(Exception):
    """An error answered as ``{"error": {"code", "message"}}`` with an HTTP status."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status, code, message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"


def _error(
    status: int, code: str, message: str, details: list[dict] | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status, headers=headers)


# -- the OCR pool ---------------------------------------------------------------------------------------------------
class OcrPool:
    """The executor that runs :func:`specread.service.worker.read_image`, off the event loop.

    Args:
        settings: pool size, executor kind, reader config and queue bound.
    """

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.pending = 0
        self.queued_bytes = 0
        self.ready = not settings.warmup
        self._executor: Executor | None = None

    def _make(self) -> Executor:
        s = self.settings
        warm_config = s.reader if s.warmup else None
        if s.executor == "thread":
            return ThreadPoolExecutor(
                s.workers, "specread-ocr", initializer=worker.init_worker, initargs=(warm_config, False)
            )
        # spawn, not fork: the server has an event loop and threads running, which fork would copy half-alive.
        return ProcessPoolExecutor(
            s.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=worker.init_worker,
            initargs=(warm_config, True),
        )

    @property
    def executor(self) -> Executor:
        if self._executor is None:
            self._executor = self._make()
        return self._executor

    async def warm(self) -> None:
        """Start every worker (each loads its models in its initializer) and wait until they are ready."""
        loop = asyncio.get_running_loop()
        executor = self.executor
        await asyncio.gather(*(loop.run_in_executor(executor, worker.pid) for _ in range(self.settings.workers)))
        self.ready = True

    async def read(self, data: bytes, entities: tuple[str, ...], group_id: str | None) -> dict:
        """OCR ``data`` in the pool and return the read result as plain data.

        Raises:
            ApiError: 503 when the queue is full or a worker died.
            ImageLoadError: the image does not decode.
        """
        if self.pending >= self.settings.max_pending or self.queued_bytes + len(data) > self.settings.max_queued_bytes:
            raise ApiError(503, "busy", "the OCR queue is full; retry shortly", headers={"Retry-After": "1"})
        self.pending += 1
        self.queued_bytes += len(data)
        executor = self.executor
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(
                executor, worker.read_image, self.settings.reader, data, entities, group_id
            )
        except BrokenProcessPool:
            log.error("an OCR worker process died; starting a new pool")
            if self._executor is executor:
                self._executor = None
                executor.shutdown(wait=False, cancel_futures=True)
            raise ApiError(
                503, "worker_died", "an OCR worker died while reading; retry", headers={"Retry-After": "1"}
            ) from None
        finally:
            self.pending -= 1
            self.queued_bytes -= len(data)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None


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


async def _read_upload(upload: UploadFile, limit: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while chunk := await upload.read(MiB):
        total += len(chunk)
        if total > limit:
            raise ApiError(413, "upload_too_large", f"the image is larger than the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    408: "body_timeout",
    413: "upload_too_large",
}


class _BodyError(StarletteHTTPException):
    """Raised from ``receive``; an HTTPException so FastAPI's body parser passes it through to the handlers."""


class _BodyTooLarge(_BodyError):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the upload is larger than the limit of {limit} bytes")


class _BodyTimeout(_BodyError):
    def __init__(self, message: str) -> None:
        super().__init__(408, message, headers={"Connection": "close"})


def _path_only(location: bytes) -> bytes:
    """A redirect target reduced to its path and query: never a host from the client's ``Host`` header, nor ``//x``."""
    parts = urlsplit(location.decode("latin-1"))
    path = "/" + parts.path.lstrip("/\\")
    return urlunsplit(("", "", path, parts.query, parts.fragment)).encode("latin-1")


class _GuardMiddleware:
    """Guards every HTTP request, whatever the ASGI server.

    * counts request-body bytes as they arrive (413 past ``max_body``);
    * times the body: all of it within ``body_timeout`` seconds, no wait for the
      next piece over ``body_idle_timeout`` (408 and ``Connection: close``);
    * runs HEAD as GET and drops the body, so HEAD works wherever GET does;
    * makes redirect ``Location`` headers relative (no ``Host`` reflection);
    * adds security headers (and a CSP on the web page).
    """

    def __init__(
        self, app: ASGIApp, max_body: int, max_upload: int, body_timeout: float = 60.0, body_idle_timeout: float = 15.0
    ) -> None:
        self.app = app
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
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise _BodyTooLarge(self.max_upload)
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

        declared = next((v for k, v in scope["headers"] if k == b"content-length"), b"")
        if declared.isdigit() and int(declared) > self.max_body:  # refuse before reading a byte
            await _http_error_response(_BodyTooLarge(self.max_upload))(scope, receive, guarded_send)
            return
        try:
            await self.app(scope, limited_receive, guarded_send)
        except _BodyError as exc:  # raised outside a route (a route's own read is answered by the handlers)
            if started:
                raise
            await _http_error_response(exc)(scope, receive, guarded_send)


def _http_error_response(exc: StarletteHTTPException) -> JSONResponse:
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return _error(exc.status_code, code, str(exc.detail), headers=exc.headers)


# -- the app -------------------------------------------------------------------------------------------------------
_ERRORS = {
    400: ("Malformed request body.", ErrorBody),
    408: ("The request body did not arrive in time.", ErrorBody),
    403: ("The image URL points to an address the service may not fetch.", ErrorBody),
    413: ("The upload (or the fetched image) is larger than the limit.", ErrorBody),
    415: ("The data is not an image in a supported format.", ErrorBody),
    422: ("Invalid request: unknown entity, no or two images, bad URL, undecodable or oversized image.", ErrorBody),
    500: ("Unexpected error (details are in the server log).", ErrorBody),
    502: ("The image URL could not be fetched.", ErrorBody),
    503: ("The OCR queue is full or a worker died; retry.", ErrorBody),
    504: ("Fetching the image URL took too long.", ErrorBody),
}


def _version() -> str:
    try:
        return version("specread")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
        return "0"


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """Build the FastAPI app; the OCR pool starts (and warms) with the app's lifespan.

    Args:
        settings: service configuration; defaults to :class:`ServiceSettings()`.

    Returns:
        An ASGI app for uvicorn (or any ASGI server).
    """
    settings = settings or ServiceSettings()
    pool = OcrPool(settings)
    registry = get_registry()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.warmup:
            await pool.warm()
        try:
            yield
        finally:
            await run_in_threadpool(pool.close)

    app = FastAPIOffline(
        title="specread",
        version=_version(),
        description=(
            "Read product specifications (weight, volume, voltage, wattage, dimensions) off product images. "
            'Every error answers `{"error": {"code", "message"}}`.'
        ),
        lifespan=lifespan,
        static_url="/static-docs",
    )
    app.state.settings = settings
    app.state.pool = pool
    app.add_middleware(
        _GuardMiddleware,
        max_body=settings.max_upload_bytes + _FORM_SLACK,
        max_upload=settings.max_upload_bytes,
        body_timeout=settings.body_timeout,
        body_idle_timeout=settings.body_idle_timeout,
    )
    app.mount("/static", StaticFiles(directory=_STATIC), name="static")

    # -- error handlers: every error is JSON, no traceback reaches a client --
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message, headers=exc.headers)

    @app.exception_handler(FetchError)
    async def _fetch_error(request: Request, exc: FetchError) -> JSONResponse:
        return _error(exc.status, exc.code, str(exc))

    @app.exception_handler(ImageLoadError)
    async def _image_error(request: Request, exc: ImageLoadError) -> JSONResponse:
        return _error(422, "bad_image", f"the image cannot be decoded: {exc.reason}")

    @app.exception_handler(UnknownEntityError)
    async def _entity_error(request: Request, exc: UnknownEntityError) -> JSONResponse:
        return _error(422, "unknown_entity", str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        for e in exc.errors():
            if e.get("type") == "enum" and "entities" in e.get("loc", ()):
                err = UnknownEntityError(str(e.get("input")), sorted(registry.entities))
                return _error(422, "unknown_entity", str(err), details)
        return _error(422, "invalid_request", "; ".join(f"{'.'.join(d['loc'])}: {d['msg']}" for d in details), details)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _http_error_response(exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(500, "internal_error", "unexpected server error; the details are in the server log")

    # -- routes --
    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(_STATIC / "index.html", media_type="text/html")

    @app.get("/healthz", response_model=HealthResponse, tags=["service"])
    async def healthz() -> dict:
        """Liveness and readiness; answered on the event loop, never waits for OCR."""
        return {"status": "ok" if pool.ready else "starting", "workers": settings.workers, "pending": pool.pending}

    @app.get("/v1/entities", response_model=EntitiesResponse, tags=["read"])
    async def entities() -> EntitiesResponse:
        """The entities this service reads and the units each may be answered in."""
        return EntitiesResponse(
            entities=[EntityInfo(name=name, units=list(spec.units)) for name, spec in registry.entities.items()]
        )

    @app.post(
        "/v1/read",
        response_model=ReadResponse,
        tags=["read"],
        responses={status: {"description": text, "model": model} for status, (text, model) in _ERRORS.items()},
    )
    async def read(
        entities: Annotated[
            list[EntityName], Form(min_length=1, description="Entity to read; repeat the field for several.")
        ],
        # Typed without `| None` so the schema says "a file part" rather than "file or null" (which clients
        # and schema-driven tools then send as the text "null").
        image: Annotated[UploadFile, File(description="The image (JPEG, PNG, WebP, GIF, BMP, TIFF).")] = None,  # type: ignore[assignment]
        image_url: Annotated[
            str, Form(max_length=2048, description="Or an http(s) URL of the image (instead of `image`).")
        ] = "",
        group_id: Annotated[str, Form(max_length=64, description="Product group id (sharpens the priors).")] = "",
    ) -> dict:
        """Read the requested entities off one image (uploaded or fetched from a URL).

        Returns one prediction per entity (challenge string, value, unit, confidence,
        evidence text and box) and every OCR line with its box, for drawing.
        """
        names = tuple(dict.fromkeys(EntityName(e).value for e in entities))
        has_file = image is not None and bool(image.filename or image.size)
        url = image_url.strip()
        if has_file == bool(url):
            raise ApiError(422, "invalid_request", "send exactly one of `image` (a file) or `image_url`")
        if has_file:
            assert image is not None
            data = await _read_upload(image, settings.max_upload_bytes)
        else:
            data = await fetch_image(url, settings.fetch_policy, settings.resolver)
        await run_in_threadpool(check_image, data)
        return await pool.read(data, names, group_id.strip() or None)

    return app


def uvicorn_options(settings: ServiceSettings) -> dict[str, Any]:
    """The uvicorn options that put ``settings`` in force (header timeout, connection limit, proxy trust).

    For ``uvicorn.run(app, host=..., port=..., **uvicorn_options(settings))`` or ``uvicorn.Config``.
    """
    from specread.service.protocol import guarded_protocol

    trusted = list(settings.forwarded_allow_ips)
    return {
        "http": guarded_protocol(settings.header_timeout),
        "ws": "none",
        "limit_concurrency": settings.max_connections,
        # uvicorn trusts X-Forwarded-* from 127.0.0.1 by default (and $FORWARDED_ALLOW_IPS): only when asked here
        "proxy_headers": bool(trusted),
        "forwarded_allow_ips": trusted or None,
        "server_header": False,
        "timeout_graceful_shutdown": 15,
    }


def serve(settings: ServiceSettings, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Run the service with uvicorn until interrupted (what ``specread serve`` calls)."""
    import uvicorn

    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level, **uvicorn_options(settings))
