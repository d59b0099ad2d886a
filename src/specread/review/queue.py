"""The review queue: which rows a person sees, and in which order.

A row to review is an input row (``index,image_link,group_id,entity_name``) with the answer
``specread predict`` wrote for it and that answer's confidence. By default rows come in order of
expected gain: those where a candidate was read and specread is unsure first, least confident
first (a reviewer fixes them with one key), and rows where nothing was read last (a reviewer can
only type from memory there). The confidence comes from the predictions CSV (``specread predict
--confidence``); without that column the caller fills it in by reading the page again
(:func:`with_confidence`), as it fills in whether anything was read (:func:`with_readable`).
:func:`below_target` keeps only the rows a precision target would leave blank.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from specread.errors import InputFormatError
from specread.io.dataset import CsvTable, image_name, read_rows

__all__ = ["ORDERS", "ReviewRow", "below_target", "order_rows", "read_review_rows", "with_confidence", "with_readable"]

ORDERS = ("gain", "confidence", "input")
"""Queue orders: expected gain (rows with a candidate, least confident first, then rows with
nothing read), ascending confidence, or the input file's order."""


@dataclass(frozen=True, slots=True)
class ReviewRow:
    """One row to review: what was asked, the answer being reviewed and how sure specread was of it.

    ``confidence`` is None until known (a predictions CSV without the column); ``readable``
    (a candidate was read for the entity) is None until the page is read again.
    """

    index: str
    image_link: str
    group_id: str
    entity_name: str
    prediction: str
    confidence: float | None = None
    readable: bool | None = None

    @property
    def image(self) -> str:
        """The image's file name in the images folder (as ``specread predict`` looks it up)."""
        return image_name(self.image_link)


def _confidence(table: CsvTable, text: str) -> float | None:
    if not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        raise table.error(f"confidence {text!r} is not a number") from None
    if not math.isfinite(value):
        raise table.error(f"confidence {text!r} is not a finite number")
    return value


def read_review_rows(input_csv: str | Path, predictions_csv: str | Path) -> list[ReviewRow]:
    """The input rows joined with their predictions, in input order.

    Raises:
        InputFormatError: either file unreadable; a prediction for an index the input does not
            have, or an input index without a prediction (the predictions belong to another input,
            or the run did not finish: ``specread check`` says which).
    """
    rows = read_rows(input_csv)
    answers: dict[str, tuple[str, float | None]] = {}
    with CsvTable(predictions_csv, ("index", "prediction")) as table:
        has_confidence = "confidence" in table.header
        for _, record in table:
            confidence = _confidence(table, record["confidence"]) if has_confidence else None
            answers[record["index"].strip()] = (record["prediction"].strip(), confidence)
    known = {r.index for r in rows}
    stray = [i for i in answers if i not in known]
    missing = [r.index for r in rows if r.index not in answers]
    if stray or missing:
        problems = [f"{len(stray)} index(es) not in {input_csv}, e.g. {stray[:3]}" if stray else ""]
        problems.append(f"{len(missing)} input index(es) without a prediction, e.g. {missing[:3]}" if missing else "")
        reason = "; ".join(p for p in problems if p)
        raise InputFormatError(str(predictions_csv), f"does not answer {input_csv} row for row: {reason}")
    return [
        ReviewRow(r.index, r.image_link, r.group_id, r.entity_name, *answers[r.index])
        for r in rows  # (prediction, confidence)
    ]


def with_confidence(rows: Sequence[ReviewRow], confidence: Callable[[ReviewRow], float]) -> list[ReviewRow]:
    """``rows`` with every missing confidence filled in by ``confidence(row)`` (a re-read of the page)."""
    return [r if r.confidence is not None else replace(r, confidence=confidence(r)) for r in rows]


def with_readable(rows: Sequence[ReviewRow], readable: Callable[[ReviewRow], bool]) -> list[ReviewRow]:
    """``rows`` with every unknown ``readable`` filled in by ``readable(row)`` (a re-read of the page)."""
    return [r if r.readable is not None else replace(r, readable=readable(r)) for r in rows]


def below_target(rows: Sequence[ReviewRow], needs: Callable[[str], float]) -> list[ReviewRow]:
    """The rows a precision target leaves to people: blank answers, and answers under their entity's threshold.

    ``needs(entity)`` is the confidence an answer needs (:meth:`specread.rank.select.Selector.needs`);
    a row of unknown confidence is kept.
    """
    return [r for r in rows if not r.prediction or r.confidence is None or r.confidence < needs(r.entity_name)]


def order_rows(rows: Sequence[ReviewRow], order: str = "confidence") -> list[ReviewRow]:
    """The queue, ties in input order.

    ``"gain"``: rows where a candidate was read first (unknown counts as read), least confident
    first, then rows with nothing read; ``"confidence"``: ascending confidence, unknown last;
    ``"input"``: the input's order.

    Raises:
        ValueError: an order outside :data:`ORDERS`.
    """
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r}; choose one of: {', '.join(ORDERS)}")
    if order == "input":
        return list(rows)
    position = {id(r): n for n, r in enumerate(rows)}
    unread = (lambda r: r.readable is False) if order == "gain" else (lambda r: False)
    return sorted(rows, key=lambda r: (unread(r), r.confidence is None, r.confidence or 0.0, position[id(r)]))
