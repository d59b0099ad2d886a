"""specread as an HTTP service (``specread serve``; needs the ``serve`` extra).

:mod:`specread.service.app` holds the FastAPI app, :mod:`specread.service.fetch`
the guarded URL fetcher, :mod:`specread.service.protocol` the hardened uvicorn
protocol (header timeout, connection limit, JSON protocol errors) and
:mod:`specread.service.worker` what runs in the OCR pool. Nothing web-related
is imported here, so pool workers that import :mod:`specread.service.worker`
stay light.
"""

from __future__ import annotations

__all__: list[str] = []
