"""One review: the queue, the labels file and the reader that shows each row's page and candidates.

:class:`ReviewSession` is what the review page talks to (through :mod:`specread.service.review`),
with no HTTP in it, so every rule is tested directly: which row comes next, what each decision
writes, what an undo takes back, which image files may be opened.

Reopening a review (the same command again) continues where it stopped: rows already in the
labels file count as reviewed and the queue starts at the first row without a decision.
"""

from __future__ import annotations

import csv
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from specread.errors import (
    ImageLoadError,
    InputFormatError,
    PathNotAllowedError,
    ReviewValueError,
    UnknownRowError,
)
from specread.io.files import atomic_write
from specread.io.output import output_columns, output_row
from specread.rank.select import Selector
from specread.review.answers import Choice, check_typed, choices
from specread.review.queue import ReviewRow, order_rows
from specread.review.store import Decision, DecisionStore, now
from specread.types import ImageInput, OcrPage, ReadResult
from specread.units.registry import get_registry

__all__ = ["PageReader", "ReviewSession", "image_under"]

REVIEWED_CONFIDENCE = 1.0
"""The confidence a corrected output gives a reviewed row: a person decided it."""


class PageReader(Protocol):
    """What a review needs of a reader: read a page, and its selector to score candidates (the OCR reader is one)."""

    @property
    def selector(self) -> Selector: ...

    def read(self, image: ImageInput, entities: Sequence[str], group_id: str | None = None) -> ReadResult: ...


def image_under(folder: str | Path, name: str) -> Path:
    """The file ``name`` inside ``folder``, refused if it would reach anywhere else.

    Refused: an empty name, an absolute path (``/etc/x``, ``C:\\x``), a backslash, ``..`` or ``.``
    parts, a NUL, and any path (or link) that resolves outside ``folder``. A name the file system
    cannot resolve (a link loop, a name too long) is no such image, never an OS error.

    Raises:
        PathNotAllowedError: the name reaches outside ``folder``.
        ImageLoadError: no such file inside ``folder``.
    """
    root = Path(folder).resolve()
    parts = PurePosixPath(name).parts
    unsafe = (
        not name
        or "\x00" in name
        or "\\" in name
        or PurePosixPath(name).is_absolute()
        or (len(name) > 1 and name[1] == ":")
        or any(p in ("..", ".") for p in parts)
    )
    if unsafe:
        raise PathNotAllowedError(name, str(folder))
    try:  # a link loop, a name too long for the file system, a folder we may not enter: no such image
        path = (root / name).resolve()
        if path.is_relative_to(root) and path.is_file():
            return path
    except (OSError, RuntimeError) as exc:  # RuntimeError: resolve() on a link loop (Python < 3.13)
        raise ImageLoadError(name, f"no such image in {folder} ({_why(exc)})") from None
    if not path.is_relative_to(root):
        raise PathNotAllowedError(name, str(folder))
    raise ImageLoadError(name, f"no such image in {folder}")


def _why(exc: BaseException) -> str:
    """An OS error's reason without the (possibly very long) path it names."""
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else "a symbolic link loop"


class ReviewSession:
    """A review in progress (thread-safe: the page's requests may overlap).

    Args:
        rows: the rows to review, in input order (:func:`specread.review.queue.read_review_rows`).
        store: the labels file.
        images: the images folder; no file outside it is ever opened.
        reader: reads a row's page and weighs its candidates; None shows no page (tests, or a
            review of answers alone).
        order: queue order (:data:`specread.review.queue.ORDERS`).
        cached_pages: rows whose page and choices are kept in memory (a row seen again is instant).
        queue: the rows to review, a part of ``rows`` (default: all); the corrected output holds
            every row of ``rows``, the sure answers left as they were.

    Raises:
        InputFormatError: the labels file holds a decision for an index of this input whose image or
            entity differs (the file belongs to another input).
    """

    def __init__(
        self,
        rows: Sequence[ReviewRow],
        store: DecisionStore,
        images: str | Path,
        reader: PageReader | None = None,
        order: str = "confidence",
        cached_pages: int = 64,
        queue: Sequence[ReviewRow] | None = None,
    ) -> None:
        self.rows = list(rows)
        reviewed = self.rows if queue is None else list(queue)
        self.queue = [r.index for r in order_rows(reviewed, order)]
        self.store = store
        self.images = Path(images)
        self.reader = reader
        self._by_index = {r.index: r for r in reviewed}
        self._position = {index: n for n, index in enumerate(self.queue)}
        self._lock = threading.Lock()  # the labels file
        self._read_lock = threading.Lock()  # the reader and its page cache: one page read at a time
        self._pages: OrderedDict[str, tuple[OcrPage | None, list[Choice], str]] = OrderedDict()
        self._cached_pages = cached_pages
        every = {r.index: r for r in self.rows}
        for index, decision in store.decisions.items():
            row = every.get(index)
            if row is not None and (row.image_link, row.entity_name) != (decision.image_link, decision.entity_name):
                raise InputFormatError(
                    str(store.path),
                    f"index {index} is {decision.entity_name} of {decision.image_link} there but {row.entity_name} "
                    f"of {row.image_link} in this input: the labels file belongs to another input",
                )

    # -- the queue -----------------------------------------------------------------------------------------------
    def row(self, index: str) -> ReviewRow:
        """The row ``index``.

        Raises:
            UnknownRowError: not in this review.
        """
        try:
            return self._by_index[index]
        except KeyError:
            raise UnknownRowError(index) from None

    def reviewed(self) -> int:
        """Rows of this review with a decision."""
        return sum(1 for index in self.store.decisions if index in self._by_index)

    def next_unreviewed(self, after: str | None = None) -> str | None:
        """The first undecided row after ``after`` in queue order (wrapping round); None when all are done."""
        decided = self.store.decisions
        start = self._position[after] + 1 if after in self._position else 0
        for n in range(len(self.queue)):
            index = self.queue[(start + n) % len(self.queue)]
            if index not in decided:
                return index
        return None

    def state(self) -> dict[str, Any]:
        """Progress, and where to continue: ``{"total", "reviewed", "next"}``."""
        with self._lock:
            return {"total": len(self.queue), "reviewed": self.reviewed(), "next": self.next_unreviewed()}

    # -- one row -------------------------------------------------------------------------------------------------
    def image_path(self, name: str) -> Path:
        """An image file of the images folder (see :func:`image_under`)."""
        return image_under(self.images, name)

    def _read(self, row: ReviewRow) -> tuple[OcrPage | None, list[Choice], str]:
        """The row's page and choices (cached), and why there are none (``""`` when read)."""
        with self._read_lock:
            return self._read_unlocked(row)

    def _read_unlocked(self, row: ReviewRow) -> tuple[OcrPage | None, list[Choice], str]:
        key = row.index
        if key in self._pages:
            self._pages.move_to_end(key)
            return self._pages[key]
        if self.reader is None:
            return None, [], "no reader: the page is not shown"
        try:
            result = self.reader.read(self.image_path(row.image), [row.entity_name], row.group_id or None)
        except (ImageLoadError, PathNotAllowedError) as exc:
            return None, [], str(exc)  # the reviewer can still type a value or mark it absent
        scorer = self.reader.selector.scorer
        found = (result.page, choices(row.entity_name, result.candidates[row.entity_name], scorer), "")
        self._pages[key] = found
        if len(self._pages) > self._cached_pages:
            self._pages.popitem(last=False)
        return found

    def answer_confidence(self, index: str) -> float:
        """The reader's confidence in row ``index``'s answer, read again: its choice's, or 0 when no candidate is it.

        For predictions written without a confidence column: an answer no candidate supports (a
        prior's guess, or nothing) is the first to review.
        """
        row = self.row(index)
        _, found, _ = self._read(row)
        return next((c.confidence for c in found if c.answer == row.prediction), 0.0)

    def readable(self, index: str) -> bool:
        """Whether any candidate was read for row ``index``'s entity (a reviewer can pick one with a key)."""
        _, found, _ = self._read(self.row(index))
        return bool(found)

    def view(self, index: str) -> dict[str, Any]:
        """Everything the page shows for row ``index``: the row, its page, its choices, its decision and neighbours.

        Raises:
            UnknownRowError: not in this review.
        """
        row = self.row(index)
        page, found, problem = self._read(row)
        position = self._position[index]
        decision = self.store.decisions.get(index)
        return {
            "index": row.index,
            "position": position + 1,
            "total": len(self.queue),
            "prev": self.queue[position - 1] if position > 0 else None,
            "next": self.queue[position + 1] if position + 1 < len(self.queue) else None,
            "image_link": row.image_link,
            "image": row.image if page is not None else None,
            "image_problem": problem,
            "group_id": row.group_id,
            "entity": row.entity_name,
            "units": list(get_registry().allowed(row.entity_name)),
            "prediction": row.prediction,
            "confidence": row.confidence,
            "page": None if page is None else {"width": page.width, "height": page.height},
            "tokens": [] if page is None else [t.to_dict() | {"box": list(t.box)} for t in page.tokens],
            "choices": [c.to_dict() | {"current": c.answer == row.prediction} for c in found],
            "decision": None if decision is None else decision.to_dict(),
        }

    # -- decisions -----------------------------------------------------------------------------------------------
    def decide(self, index: str, decision: str, candidate: int | None = None, value: str | None = None) -> Decision:
        """Record the reviewer's decision on row ``index`` (replacing an earlier one) and return it.

        ``accept`` keeps the answer, ``pick`` takes choice number ``candidate`` (1 = most confident),
        ``typed`` takes ``value`` (checked by :func:`check_typed`), ``absent`` says the value is not on
        the image (an empty label).

        Raises:
            UnknownRowError: not in this review.
            ReviewValueError: a typed value that cannot answer the row's entity, or no such choice.
            ValueError: an unknown decision.
        """
        row = self.row(index)
        if decision == "accept":
            answer = row.prediction
        elif decision == "pick":
            _, found, _ = self._read(row)
            if candidate is None or not 1 <= candidate <= len(found):
                raise ReviewValueError(
                    str(candidate), row.entity_name, f"no choice {candidate}; this row has {len(found)}"
                )
            answer = found[candidate - 1].answer
        elif decision == "typed":
            answer = check_typed(row.entity_name, value or "").text
        elif decision == "absent":
            answer = ""
        else:
            answer = ""  # Decision refuses the name below
        made = Decision(
            row.index, row.image_link, row.group_id, row.entity_name, answer, decision, row.prediction, now()
        )
        with self._lock:
            self.store.record(made)
        return made

    def undo(self, index: str | None = None) -> Decision | None:
        """Take back row ``index``'s decision, or the latest decision; None when there is none to take back.

        Raises:
            UnknownRowError: ``index`` given but not in this review.
        """
        with self._lock:
            if index is None:
                last = self.store.last()
                if last is None:
                    return None
                index = last.index
            self.row(index)
            return self.store.remove(index)

    # -- the corrected output ------------------------------------------------------------------------------------
    def write_output(self, path: str | Path, with_confidence: bool = True) -> int:
        """Write the predictions with every reviewed row's decision, in input order (atomically).

        Reviewed rows get confidence :data:`REVIEWED_CONFIDENCE`; the others keep theirs. The file
        passes ``specread check`` against the input whenever the predictions did.

        Returns:
            How many rows were corrected (a decision that differs from the prediction).
        """
        with self._lock:
            decided = dict(self.store.decisions)
        changed = 0
        with atomic_write(path, newline="", encoding="utf-8", fsync=True, through_link=True) as fh:
            out = csv.writer(fh)
            out.writerow(output_columns(with_confidence))
            for row in self.rows:
                made = decided.get(row.index)
                answer = row.prediction if made is None else made.entity_value
                changed += made is not None and answer != row.prediction
                confidence = row.confidence if made is None else REVIEWED_CONFIDENCE
                out.writerow(output_row(row.index, answer, confidence, with_confidence))
        return changed
