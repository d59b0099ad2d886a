"""specread as an HTTP service (``specread serve``; needs the ``serve`` extra).

* :mod:`specread.service.app`: :func:`create_app` and :func:`serve`, which wire the parts below;
* :mod:`specread.service.pool`: the OCR pool (:class:`OcrPool`);
* :mod:`specread.service.guards`: image sniffing (:func:`check_image`), upload limits and the guard middleware;
* :mod:`specread.service.routes`: the routes and the exception handlers;
* :mod:`specread.service.fetch`: the guarded URL fetcher (:func:`fetch_image`);
* :mod:`specread.service.protocol`: the hardened uvicorn protocol (header timeout, connection limit,
  JSON protocol errors);
* :mod:`specread.service.worker`: what runs in the OCR pool.

The settings (:class:`ServiceSettings`, :class:`FetchPolicy`) are in :mod:`specread.settings`,
the errors (:class:`ApiError`, the :class:`~specread.errors.FetchError` family) in
:mod:`specread.errors`. The names below are imported on first use: nothing web-related is
imported with the package, so pool workers that import :mod:`specread.service.worker` stay light.

Example:
    >>> from specread.service import ServiceSettings, create_app
    >>> app = create_app(ServiceSettings(workers=2))   # then: uvicorn.run(app)
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from specread.errors import ApiError
    from specread.service.app import create_app, serve, uvicorn_options
    from specread.service.fetch import fetch_image
    from specread.service.guards import check_image
    from specread.service.pool import OcrPool
    from specread.settings import FetchPolicy, ServiceSettings

__all__ = [
    "ApiError",
    "FetchPolicy",
    "OcrPool",
    "ServiceSettings",
    "check_image",
    "create_app",
    "fetch_image",
    "serve",
    "uvicorn_options",
]

_HOMES = {
    "ApiError": "specread.errors",
    "FetchPolicy": "specread.settings",
    "OcrPool": "specread.service.pool",
    "ServiceSettings": "specread.settings",
    "check_image": "specread.service.guards",
    "create_app": "specread.service.app",
    "fetch_image": "specread.service.fetch",
    "serve": "specread.service.app",
    "uvicorn_options": "specread.service.app",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
