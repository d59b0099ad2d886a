"""The labels file a review writes: one row per reviewed index, safe to kill at any moment.

Columns are train.csv's (``index,image_link,group_id,entity_name,entity_value``), so the file
trains as it is (``specread train REVIEWED.csv``: the label reader ignores the extra columns),
plus what the person decided (``decision``), the answer before the review (``previous``) and
when (``decided_at``, UTC). A "not on the image" decision is an empty ``entity_value``: the
challenge's empty label, which training reads as "no candidate of this page is the answer".

**Crash safety.** A new decision is appended and the file flushed and fsynced before the
decision is acknowledged, so a power cut loses at most the decision being written. Changing or
undoing a decision rewrites the file atomically (:func:`specread.io.files.atomic_write`): the
old file or the new one, never half. A torn last line (a kill in the middle of an append) is
dropped when the file is opened again, so that row is simply reviewed again.

The file keeps exactly one row per index, in the order of the latest decisions: its last row
is the decision an undo takes back.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import astuple, dataclass
from datetime import UTC, datetime
from pathlib import Path

from specread.errors import InputFormatError
from specread.io.dataset import CsvTable
from specread.io.files import append_row, atomic_write, drop_torn_line

__all__ = ["DECISIONS", "REVIEW_COLUMNS", "Decision", "DecisionStore", "now"]

REVIEW_COLUMNS = (
    "index",
    "image_link",
    "group_id",
    "entity_name",
    "entity_value",
    "decision",
    "previous",
    "decided_at",
)
"""The labels file's header: train.csv's columns, then the review's own."""

DECISIONS = ("accept", "pick", "typed", "absent")
"""What a reviewer can decide: keep the answer, pick another candidate, type one, or "not on the image"."""


def now() -> str:
    """The time a decision is recorded at: UTC, to the second, ISO 8601."""
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True)
class Decision:
    """One reviewed row, as the labels file holds it (fields in :data:`REVIEW_COLUMNS` order)."""

    index: str
    image_link: str
    group_id: str
    entity_name: str
    entity_value: str
    decision: str
    previous: str
    decided_at: str

    def __post_init__(self) -> None:
        if self.decision not in DECISIONS:
            raise ValueError(f"unknown decision {self.decision!r}; choose one of: {', '.join(DECISIONS)}")

    def to_dict(self) -> dict[str, str]:
        return dict(zip(REVIEW_COLUMNS, astuple(self), strict=True))


def _owns(first: str, whole: bool) -> bool:
    """Whether a file whose first line is ``first`` is a labels file this store wrote (a torn one is cut)."""
    header = ",".join(REVIEW_COLUMNS)
    return first == header if whole else header.startswith(first)


class DecisionStore:
    """The labels file of one review: read on opening, then kept on disk decision by decision.

    Args:
        path: the labels CSV; created (with its header) when missing.

    Raises:
        InputFormatError: an existing file that is not a review labels file (another header,
            an unknown decision): it is never overwritten.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._rows: dict[str, Decision] = {}
        if self.path.exists() and self.path.stat().st_size > 0:
            drop_torn_line(self.path, _owns)
        if self.path.exists() and self.path.stat().st_size > 0:
            self._rows = self._read()
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._rewrite()

    # -- reading -------------------------------------------------------------------------------------------------
    def _read(self) -> dict[str, Decision]:
        rows: dict[str, Decision] = {}
        with CsvTable(self.path, REVIEW_COLUMNS) as table:
            if tuple(table.header) != REVIEW_COLUMNS:
                raise InputFormatError(
                    str(self.path), f"is not a review labels file (header {table.header}; expected {REVIEW_COLUMNS})"
                )
            for _, record in table:
                try:
                    decision = Decision(*(record[c] for c in REVIEW_COLUMNS))
                except ValueError as exc:
                    raise table.error(str(exc)) from None
                rows.pop(decision.index, None)  # (never twice in a file this store wrote; the last one wins)
                rows[decision.index] = decision
        return rows

    @property
    def decisions(self) -> Mapping[str, Decision]:
        """index -> its decision, oldest first."""
        return self._rows

    def last(self) -> Decision | None:
        """The most recent decision (what an undo takes back), or None before the first."""
        return next(reversed(self._rows.values()), None)

    # -- writing -------------------------------------------------------------------------------------------------
    def record(self, decision: Decision) -> None:
        """Keep ``decision`` on disk before returning: appended (fsynced), or the file rewritten if it replaces one."""
        if decision.index in self._rows:
            del self._rows[decision.index]
            self._rows[decision.index] = decision
            self._rewrite()
            return
        append_row(self.path, astuple(decision))
        self._rows[decision.index] = decision

    def remove(self, index: str) -> Decision | None:
        """Take back ``index``'s decision (the file is rewritten without it); None when it has none."""
        gone = self._rows.pop(index, None)
        if gone is not None:
            self._rewrite()
        return gone

    def _rewrite(self) -> None:
        with atomic_write(self.path, newline="", encoding="utf-8", fsync=True) as fh:
            out = csv.writer(fh)
            out.writerow(REVIEW_COLUMNS)
            out.writerows(astuple(d) for d in self._rows.values())
