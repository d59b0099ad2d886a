"""The service's routes and its exception handlers: every error is JSON, no traceback reaches a client.

* ``GET /``: the web page (and ``/static``);
* ``GET /healthz``: liveness and readiness, answered on the event loop;
* ``GET /v1/entities``: the entities read and their units;
* ``POST /v1/read``: one image, uploaded or fetched from a URL, read in the OCR pool; a request
  whose client disconnects while it waits for a worker is dropped from the queue.
"""

from __future__ import annotations

import logging
from importlib.resources import files
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from specread.errors import ApiError, FetchError, ImageLoadError, UnknownEntityError
from specread.service.fetch import fetch_image
from specread.service.guards import check_image, error_response, http_error_response, read_upload
from specread.service.limits import ClientGoneError, Reservation, until_disconnected
from specread.service.models import EntitiesResponse, EntityInfo, EntityName, ErrorBody, HealthResponse, ReadResponse
from specread.service.pool import OcrPool
from specread.settings import ServiceSettings
from specread.units.registry import get_registry

__all__ = ["add_error_handlers", "add_routes"]

log = logging.getLogger("specread.service")

_STATIC = Path(str(files("specread.service") / "static"))
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
"""The error answers ``POST /v1/read`` documents in the OpenAPI schema."""


def add_error_handlers(app: FastAPI) -> None:
    """Answer every error, an unexpected one included, with ``{"error": {"code", "message", "details"?}}``."""
    registry = get_registry()

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, headers=exc.headers)

    @app.exception_handler(FetchError)
    async def _fetch_error(request: Request, exc: FetchError) -> JSONResponse:
        return error_response(exc.status, exc.code, str(exc))

    @app.exception_handler(ImageLoadError)
    async def _image_error(request: Request, exc: ImageLoadError) -> JSONResponse:
        return error_response(422, "bad_image", f"the image cannot be decoded: {exc.reason}")

    @app.exception_handler(UnknownEntityError)
    async def _entity_error(request: Request, exc: UnknownEntityError) -> JSONResponse:
        return error_response(422, "unknown_entity", str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        for e in exc.errors():
            if e.get("type") == "enum" and "entities" in e.get("loc", ()):
                err = UnknownEntityError(str(e.get("input")), sorted(registry.entities))
                return error_response(422, "unknown_entity", str(err), details)
        message = "; ".join(f"{'.'.join(d['loc'])}: {d['msg']}" for d in details)
        return error_response(422, "invalid_request", message, details)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return http_error_response(exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "unexpected server error; the details are in the server log")


def add_routes(app: FastAPI, settings: ServiceSettings, pool: OcrPool) -> None:
    """Mount the web page and add the API routes, which read images in ``pool`` under ``settings``."""
    registry = get_registry()
    app.mount("/static", StaticFiles(directory=_STATIC), name="static")

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
        request: Request,
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
            data = await read_upload(image, settings.max_upload_bytes)
        else:
            share: Reservation | None = getattr(request.state, "byte_share", None)
            data = await fetch_image(url, settings.fetch_policy, settings.resolver, share.take if share else None)
        await run_in_threadpool(check_image, data)
        try:
            return await until_disconnected(request.receive, pool.read(data, names, group_id.strip() or None))
        except ClientGoneError:
            log.info("the client of a queued request disconnected; the request was dropped")
            raise ApiError(499, "client_closed_request", "the client disconnected before the answer") from None
