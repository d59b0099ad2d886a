"""The HTTP service: ``POST /v1/read``, ``GET /healthz``, OpenAPI docs and a web page at ``/``.

Thin on purpose: it checks input, hands the image to the OCR pool and returns
:meth:`specread.types.ReadResult.to_dict`. What it adds is what a public
endpoint needs and a CLI does not:

* **OCR off the event loop.** Reading an image is CPU-bound, so it runs in a
  pool (processes by default, ``--workers`` of them, each holding one reader
  built by :func:`specread.readers.build_reader`); the event loop only
  parses requests, so ``/healthz`` answers at once under load. A full pool
  queues requests up to ``max_pending``, then answers 503; a queued request
  whose client disconnects leaves the queue. A worker that
  dies (out of memory...) breaks a process pool; it is replaced and the
  request gets a 503 instead of every later request failing.
* **Hostile input.** The request body is counted while it is received and
  refused with 413 past the limit (a ``Content-Length`` over it is refused
  before reading anything). Images are sniffed before they reach a worker:
  only common raster formats are opened (never EPS or other formats that
  run external programs), and the pixel count is checked against Pillow's
  ``MAX_IMAGE_PIXELS`` (the decompression-bomb limit) from the header,
  before anything is decoded. URLs go through :mod:`specread.service.fetch`.
* **Bounded memory.** Request bodies and images are counted against
  ``max_queued_bytes`` from the first byte received (uploads being read, their
  copies, queued images); past it a request is answered 503 with ``Retry-After``
  (:mod:`specread.service.limits`).
* **No client starves the others.** A client address has at most
  ``max_client_requests`` requests in flight and (under :func:`serve`)
  ``max_client_connections`` connections carrying requests; the global
  ``max_connections`` counts requests being served, never idle sockets;
  ``/healthz`` is answered whatever the limits.
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

The parts: :class:`specread.settings.ServiceSettings` (defaults in ``settings.toml``,
``[service]`` and ``[fetch]``), :mod:`specread.service.pool` (the OCR pool),
:mod:`specread.service.guards` (sniffing, upload limits, the guard middleware),
:mod:`specread.service.routes` (routes and error handlers); this module wires them.

Example:
    >>> from specread.service import ServiceSettings, create_app
    >>> app = create_app(ServiceSettings(workers=2))   # then: uvicorn.run(app)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool

from specread.service.guards import FORM_SLACK, ClientLimitMiddleware, GuardMiddleware
from specread.service.limits import ByteBudget
from specread.service.pool import OcrPool
from specread.service.routes import add_error_handlers, add_routes
from specread.settings import ServiceSettings
from specread.version import __version__

__all__ = ["create_app", "guarded_app", "serve", "uvicorn_options"]


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """Build the FastAPI app; the OCR pool starts (and warms) with the app's lifespan.

    Args:
        settings: service configuration; defaults to :class:`ServiceSettings()`.

    Returns:
        An ASGI app for uvicorn (or any ASGI server).
    """
    settings = settings or ServiceSettings()
    pool = OcrPool(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.warmup:
            await pool.warm()
        try:
            yield
        finally:
            await run_in_threadpool(pool.close)

    description = "Read product specifications (weight, volume, voltage, wattage, dimensions) off product images."
    app = guarded_app(settings, description, lifespan, pool.budget)
    app.state.pool = pool
    add_routes(app, settings, pool)
    return app


def guarded_app(
    settings: ServiceSettings, description: str, lifespan: Any = None, budget: ByteBudget | None = None
) -> FastAPI:
    """The app every specread server starts from: API docs served locally, the guard and client-limit middleware,
    JSON errors.

    :func:`create_app` adds the read API to it, :func:`specread.service.review.create_review_app` the review.
    ``budget`` is the byte budget request bodies are taken from (a new one of ``max_queued_bytes`` if None).
    """
    app = FastAPIOffline(
        title="specread",
        version=__version__,
        description=f'{description} Every error answers `{{"error": {{"code", "message"}}}}`.',
        lifespan=lifespan,
        static_url="/static-docs",
    )
    app.state.settings = settings
    app.state.budget = budget or ByteBudget(settings.max_queued_bytes)
    app.add_middleware(ClientLimitMiddleware, limit=settings.max_client_requests)  # inside the guard: added first
    app.add_middleware(
        GuardMiddleware,
        max_body=settings.max_upload_bytes + FORM_SLACK,
        max_upload=settings.max_upload_bytes,
        body_timeout=settings.body_timeout,
        body_idle_timeout=settings.body_idle_timeout,
        budget=app.state.budget,
    )
    add_error_handlers(app)
    return app


def uvicorn_options(settings: ServiceSettings) -> dict[str, Any]:
    """The uvicorn options that put ``settings`` in force (header timeout, connection limits, proxy trust).

    For ``uvicorn.run(app, host=..., port=..., **uvicorn_options(settings))`` or ``uvicorn.Config``.
    """
    from specread.service.protocol import guarded_protocol

    trusted = list(settings.forwarded_allow_ips)
    return {
        "http": guarded_protocol(settings.header_timeout, settings.max_client_connections, settings.trusted_proxy),
        "ws": "none",
        "limit_concurrency": settings.max_connections,
        # uvicorn trusts X-Forwarded-* from 127.0.0.1 by default (and $FORWARDED_ALLOW_IPS): only when asked here
        "proxy_headers": bool(trusted),
        "forwarded_allow_ips": trusted or None,
        "server_header": False,
        "timeout_graceful_shutdown": 15,
    }


def serve(
    settings: ServiceSettings,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "info",
    app: FastAPI | None = None,
) -> None:
    """Run the service (or another app built on :func:`guarded_app`, such as the review) with uvicorn until interrupted.

    What ``specread serve`` and ``specread review`` call.
    """
    import uvicorn

    app = app or create_app(settings)
    uvicorn.run(app, host=host, port=port, log_level=log_level, **uvicorn_options(settings))
