"""The review page and its API (``specread review``): a person corrects the least certain answers.

Built on the service's own guarded app (:func:`specread.service.app.guarded_app`: body limits and
timeouts, HEAD, security headers and the page's CSP, JSON errors), with the review's routes:

* ``GET /``: the review page (``static/review.html``; it shares the service page's style);
* ``GET /healthz``: ``{"status": "ok", "reviewed", "total"}``;
* ``GET /v1/review/state``: progress and the next row to review;
* ``GET /v1/review/rows/{index}``: one row: its answer and confidence, its page's OCR lines, its
  candidates as numbered choices, its decision;
* ``POST /v1/review/rows/{index}/decision``: ``{"decision": "accept"|"pick"|"typed"|"absent",
  "candidate"?, "value"?}``, written to the labels file before the answer;
* ``DELETE /v1/review/rows/{index}/decision``, ``POST /v1/review/undo``: take a decision back
  (that row's, or the latest);
* ``GET /v1/review/check?entity=...&text=...``: whether a typed answer fits the entity's units (the
  page asks while the reviewer types);
* ``GET /v1/review/image?name=...``: an image of the images folder, and nothing else: absolute
  names, ``..``, backslashes, NULs and links that lead out are refused (403 ``path_not_allowed``), a
  name that is no image file (missing, a link loop, too long for the file system) is 404
  ``image_not_found``, files over the upload limit 413, and the bytes must sniff as an image the
  service accepts (415/422).

Errors keep the service's shape, ``{"error": {"code", "message"}}``: ``unknown_row`` (404),
``bad_value`` (422, a typed value or choice that cannot answer the row), ``path_not_allowed``
(403), ``image_not_found`` (404). With an output path, the corrected predictions are rewritten
after every decision and when the server stops.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image
from starlette.concurrency import run_in_threadpool

from specread.errors import (
    ApiError,
    ImageLoadError,
    ImageTooLargeError,
    PathNotAllowedError,
    ReviewValueError,
    UnknownRowError,
)
from specread.io.images import read_image_bytes
from specread.review.answers import check_typed
from specread.review.session import ReviewSession
from specread.service.app import guarded_app
from specread.service.guards import check_image, error_response
from specread.service.models import DecisionRequest
from specread.settings import ServiceSettings

__all__ = ["add_review_routes", "create_review_app"]

_STATIC = Path(str(files("specread.service") / "static"))


def create_review_app(
    session: ReviewSession, settings: ServiceSettings | None = None, output: Path | None = None
) -> FastAPI:
    """The review server's app for ``session``; with ``output``, the corrected predictions are kept written there.

    Args:
        session: the review (queue, labels file, reader).
        settings: body limits and timeouts (the service's); only the guards are used, no OCR pool starts.
        output: where to write the corrected predictions (``--write-output``), or None.
    """
    settings = settings or ServiceSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if output is not None:
            await run_in_threadpool(session.write_output, output)
        try:
            yield
        finally:
            if output is not None:
                await run_in_threadpool(session.write_output, output)

    app = guarded_app(settings, "Review and correct specread's answers, least confident first.", lifespan)
    app.state.review = session
    add_review_routes(app, session, settings, output)
    return app


def _image_response(session: ReviewSession, name: str, limit: int) -> Response:
    """An image of the images folder, refused unless it is a readable image file inside it and under ``limit``."""
    try:
        path = session.image_path(name)
    except PathNotAllowedError as exc:
        raise ApiError(403, "path_not_allowed", str(exc)) from None
    except ImageLoadError as exc:
        raise ApiError(404, "image_not_found", str(exc)) from None
    try:  # the one image read (a regular file, capped, under a deadline): nothing else can be served
        data = read_image_bytes(path, max_bytes=limit)
    except ImageTooLargeError:
        raise ApiError(413, "image_too_large", f"the image is larger than the limit of {limit} bytes") from None
    except ImageLoadError as exc:
        raise ApiError(404, "image_not_found", str(exc)) from None
    fmt, _, _ = check_image(data)
    return Response(data, media_type=Image.MIME.get(fmt, "application/octet-stream"))


def add_review_routes(
    app: FastAPI, session: ReviewSession, settings: ServiceSettings, output: Path | None = None
) -> None:
    """Mount the review page and add the review API (and its error answers) to ``app``."""
    app.mount("/static", StaticFiles(directory=_STATIC), name="static")
    _add_error_answers(app)
    _add_view_routes(app, session)
    _add_decision_routes(app, session, output)
    _add_lookup_routes(app, session, settings)


def _add_error_answers(app: FastAPI) -> None:
    """A review error becomes the service's JSON error answer instead of a 500."""

    @app.exception_handler(UnknownRowError)
    async def _unknown_row(request: Request, exc: UnknownRowError) -> JSONResponse:
        return error_response(404, "unknown_row", str(exc))

    @app.exception_handler(ReviewValueError)
    async def _bad_value(request: Request, exc: ReviewValueError) -> JSONResponse:
        return error_response(422, "bad_value", str(exc))


def _add_view_routes(app: FastAPI, session: ReviewSession) -> None:
    """The routes that only read: the page, liveness, progress and one row."""

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(_STATIC / "review.html", media_type="text/html")

    @app.get("/healthz", tags=["service"])
    async def healthz() -> dict:
        """Liveness, and how far the review is."""
        state = session.state()
        return {"status": "ok", "reviewed": state["reviewed"], "total": state["total"]}

    @app.get("/v1/review/state", tags=["review"])
    async def state() -> dict:
        """``{"total", "reviewed", "next"}``: progress, and the first row still to review (null when done)."""
        return session.state()

    @app.get("/v1/review/rows/{index}", tags=["review"])
    async def row(index: str) -> dict:
        """One row: answer, confidence, OCR lines, candidate choices, decision, and its neighbours in the queue."""
        return await run_in_threadpool(session.view, index)


def _add_decision_routes(app: FastAPI, session: ReviewSession, output: Path | None) -> None:
    """The routes that change decisions; each answers with the progress after the change."""

    def written(result: dict[str, Any]) -> dict[str, Any]:
        """``result`` with the progress after a change; the corrected output rewritten first."""
        if output is not None:
            session.write_output(output)
        return result | {"state": session.state()}

    @app.post("/v1/review/rows/{index}/decision", tags=["review"])
    async def decide(index: str, body: DecisionRequest) -> dict:
        """Record a decision (written to the labels file before this answers); ``next`` is the row to show next."""

        def run() -> dict[str, Any]:
            made = session.decide(index, body.decision.value, body.candidate, body.value)
            return written({"decision": made.to_dict(), "next": session.next_unreviewed(after=index)})

        return await run_in_threadpool(run)

    @app.delete("/v1/review/rows/{index}/decision", tags=["review"])
    async def undo_row(index: str) -> dict:
        """Take back row ``index``'s decision (``undone`` is null when it had none)."""

        def run() -> dict[str, Any]:
            gone = session.undo(index)
            return written({"undone": None if gone is None else gone.to_dict()})

        return await run_in_threadpool(run)

    @app.post("/v1/review/undo", tags=["review"])
    async def undo_last() -> dict:
        """Take back the latest decision (``undone`` is null when there is none)."""

        def run() -> dict[str, Any]:
            gone = session.undo()
            return written({"undone": None if gone is None else gone.to_dict()})

        return await run_in_threadpool(run)


def _add_lookup_routes(app: FastAPI, session: ReviewSession, settings: ServiceSettings) -> None:
    """The helpers the page calls while a row is open: checking a typed value, fetching its image."""

    @app.get("/v1/review/check", tags=["review"])
    async def check(
        entity: Annotated[str, Query(max_length=64)], text: Annotated[str, Query(max_length=100)] = ""
    ) -> dict:
        """Whether ``text`` answers ``entity``: ``{"ok", "answer"}`` (challenge form) or ``{"ok", "message"}``."""
        try:
            return {"ok": True, "answer": check_typed(entity, text).text, "message": ""}
        except ReviewValueError as exc:
            return {"ok": False, "answer": "", "message": exc.reason}

    @app.get("/v1/review/image", tags=["review"])
    async def image(name: Annotated[str, Query(max_length=1024)]) -> Response:
        """An image of the images folder (``--images``), and no other file."""
        return await run_in_threadpool(_image_response, session, name, settings.max_upload_bytes)
