"""Review and correct: ``review`` serves a page where a person fixes the least certain answers."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from specread.cli.console import console, progress_bar
from specread.cli.options import (
    DEFAULT_PRESET,
    DEFAULT_READER,
    CacheDirOpt,
    ImagesOpt,
    ModelOpt,
    PresetOpt,
    ReaderOptions,
    check_choice,
)
from specread.settings import ServiceSettings

if TYPE_CHECKING:
    from specread.review.queue import ReviewRow
    from specread.review.session import ReviewSession

__all__ = ["review"]

DEFAULT_SERVICE = ServiceSettings()


def review(
    predictions: Annotated[
        Path, typer.Argument(help="Predictions CSV written by `specread predict` (index,prediction[,confidence]).")
    ],
    input_csv: Annotated[Path, typer.Option("--input", help="The input CSV the predictions answer.")],
    images: ImagesOpt,
    labels: Annotated[
        Path,
        typer.Option(
            "--labels",
            help="Labels CSV each decision is written to at once (train.csv columns + decision, previous, decided_at); "
            "reopening it continues the review.",
        ),
    ],
    order: Annotated[
        str,
        typer.Option(
            "--order",
            help="Queue order: gain (rows with a candidate, least confident first, then rows where nothing was "
            "read), confidence (least confident first) or input.",
        ),
    ] = "gain",
    below: Annotated[
        float,
        typer.Option(
            "--below",
            min=0.0,
            max=0.999,
            help="Review only the rows this precision target leaves blank (`predict --min-precision`): blank "
            "answers and answers under their entity's threshold (0: every row).",
        ),
    ] = 0.0,
    skip_unread: Annotated[
        bool, typer.Option("--skip-unread", help="Leave out rows where no candidate was read (nothing to pick).")
    ] = False,
    write_output: Annotated[
        Path | None,
        typer.Option(
            "--write-output", help="Keep the corrected predictions CSV written here (passes `specread check`)."
        ),
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on.")] = 8000,
    model: ModelOpt = DEFAULT_READER.model,
    preset: PresetOpt = DEFAULT_PRESET,
    cache_dir: CacheDirOpt = None,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn log level.")] = "warning",
) -> None:
    """Serve a page to review the predictions, least confident first; every decision is a label.

    Each row shows its image with every OCR box, the candidates for the entity (keys 1-9), and the
    answer: Enter accepts it, a number picks a candidate, a typed value replaces it, N marks it
    "not on the image", U undoes. Train on the labels file with `specread train LABELS --base packaged`.
    """
    from specread.readers import build_reader
    from specread.review.queue import ORDERS, below_target, read_review_rows
    from specread.review.session import ReviewSession
    from specread.review.store import DecisionStore

    check_choice("order", order, ORDERS)
    if not images.is_dir():
        raise ValueError(f"--images {images} is not a folder")
    config = ReaderOptions(preset=preset, model=model, cache_dir=cache_dir, min_precision=below).config()
    rows = read_review_rows(input_csv, predictions)
    store = DecisionStore(labels)
    reader = build_reader(config)
    session = ReviewSession(rows, store, images, reader, order=order)  # refuses a labels file of another input
    rows = _fill_in(session, rows, confidence=order != "input" or below > 0, readable=order == "gain" or skip_unread)
    queue = below_target(rows, reader.selector.needs) if below else rows
    if skip_unread:
        queue = [r for r in queue if r.readable]
    session = ReviewSession(rows, store, images, reader, order=order, queue=queue)
    from specread.service.app import serve
    from specread.service.review import create_review_app

    if host not in ("127.0.0.1", "localhost", "::1"):
        console.print(f"warning: --host {host} lets anyone who reaches it read these images and change the labels")
    state = session.state()
    console.print(
        f"reviewing {state['total']} rows ({state['reviewed']} already reviewed) at http://{host}:{port}/ ; "
        f"labels -> {labels}" + (f", corrected predictions -> {write_output}" if write_output else "")
    )
    app = create_review_app(session, DEFAULT_SERVICE, write_output)
    serve(DEFAULT_SERVICE, host=host, port=port, log_level=log_level, app=app)


def _fill_in(session: ReviewSession, rows: list[ReviewRow], confidence: bool, readable: bool) -> list[ReviewRow]:
    """Rows with what the queue needs filled in by reading each page again (through the OCR cache predict filled).

    ``confidence``: the answers' confidences a predictions CSV without the column lacks;
    ``readable``: whether a candidate was read for each row's entity.
    """
    from specread.review.queue import with_confidence, with_readable

    todo = [r for r in rows if (confidence and r.confidence is None) or (readable and r.readable is None)]
    if not todo:
        return rows
    seen = {r.index: n for n, r in enumerate(todo, start=1)}
    with progress_bar("reading pages", total=len(todo)) as tick:

        def answer_confidence(row: ReviewRow) -> float:
            tick(seen[row.index], len(todo))
            return session.answer_confidence(row.index)

        def readable_row(row: ReviewRow) -> bool:
            tick(seen[row.index], len(todo))
            return session.readable(row.index)  # the page was read for its confidence: cached

        if confidence:
            rows = with_confidence(rows, answer_confidence)
        if readable:
            rows = with_readable(rows, readable_row)
    return rows
