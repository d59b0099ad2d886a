"""Challenge CSVs: reading input rows, labels, gold labels and predictions; writing output.

Every CSV specread reads goes through :class:`CsvTable`: UTF-8 with or without
a byte order mark, required columns checked before any row is used, and a file
that cannot be read as such a CSV (another encoding, a binary file, a row with
the wrong number of fields) stops with an :class:`InputFormatError` that names
the file and the line, never a raw ``UnicodeDecodeError``.

Inputs are validated before any work starts (required columns, known
entities, unique indices) so a long run never dies halfway on a bad row.
Writing outputs (resumable, then put in input order) is :mod:`specread.io.output`'s.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from specread.errors import (
    InputFormatError,
    InputNotFoundError,
    MissingColumnsError,
    UnknownEntityError,
)
from specread.units.registry import get_registry

__all__ = [
    "INPUT_COLUMNS",
    "LABEL_COLUMNS",
    "CsvTable",
    "Label",
    "Row",
    "image_name",
    "iter_labels",
    "iter_unique_images",
    "read_gold",
    "read_labels",
    "read_predictions",
    "read_rows",
    "rows_digest",
]

INPUT_COLUMNS = ("image_link", "entity_name")
"""Columns an input CSV must have (``index`` and ``group_id`` are optional)."""

LABEL_COLUMNS = ("image_link", "entity_name", "entity_value")
"""Columns a label CSV must have (``index``, ``group_id`` and ``image_file`` are optional)."""

_NOT_TEXT = re.compile("[\x00\udc80-\udcff]")
"""A NUL, or a byte that is not UTF-8 (decoded with ``surrogateescape``)."""


@dataclass(frozen=True, slots=True)
class Row:
    """One input row: which entity to read off which image."""

    index: str
    image_link: str
    group_id: str
    entity_name: str


@dataclass(frozen=True, slots=True)
class Label:
    """One labelled row: an input row and its answer (``""`` when the label is empty).

    ``index`` is the row number (from 0) when the CSV has no ``index`` column (train.csv);
    ``image_file`` is the image's path when the CSV names it (real-dev's labels), else ``""``;
    ``line`` is the row's line in the file, for error messages.
    """

    index: str
    image_link: str
    group_id: str
    entity_name: str
    entity_value: str
    image_file: str = ""
    line: int = field(default=0, compare=False)

    @property
    def image(self) -> str:
        """The image's file name in an images folder (:func:`image_name` of ``image_file`` or ``image_link``)."""
        return image_name(self.image_file or self.image_link)


def image_name(link: str) -> str:
    """File name the official downloader gives an image link (the URL path's last part)."""
    path = urlparse(link).path if "://" in link else link
    return PurePosixPath(path).name


class CsvTable:
    """A CSV opened for reading: ``header``, then ``(line, record)`` for each row.

    The one way specread opens a label, input or output CSV. The file must be
    UTF-8 (a byte order mark is dropped); blank lines are skipped; each record
    maps every header column to its field.

    Use it as a context manager (or call :meth:`close`)::

        with CsvTable(path, required=("index", "prediction")) as table:
            for line, record in table:
                ...

    Raises:
        InputNotFoundError: the file does not exist (also a ``FileNotFoundError``).
        MissingColumnsError: a column of ``required`` is not in the header (also a ``KeyError``).
        InputFormatError: bytes that are not UTF-8 or a NUL (a binary or UTF-16 file), a column
            name twice in the header (tools differ on which one counts), a row with more or fewer
            fields than the header, or a CSV syntax error; the message names the line.
    """

    def __init__(self, path: str | Path, required: Sequence[str] = ()) -> None:
        self.path = Path(path)
        try:
            self._fh = open(self.path, newline="", encoding="utf-8-sig", errors="surrogateescape")  # noqa: SIM115
        except FileNotFoundError:
            raise InputNotFoundError(str(self.path)) from None
        self._reader = csv.reader(self._fh)
        self.line = 0
        """Line of the row read last (its first line, for a quoted field over several lines)."""
        try:
            self.header: list[str] = self._next_row(header=True) or []
            named = [c for c in self.header if c]  # empty names (trailing commas) are never read
            twice = sorted({c for c in named if named.count(c) > 1})
            if twice:
                # csv.DictReader keeps the last column of a name, pandas (the official tools) the first.
                raise self.error(
                    f"duplicate column name(s) {', '.join(map(repr, twice))} in the header: "
                    "which of them holds the values is ambiguous; rename or remove the extra column(s)"
                )
            missing = [c for c in required if c not in self.header]
            if missing:
                raise MissingColumnsError(
                    str(self.path),
                    f"missing required column(s) {', '.join(missing)} (need {','.join(required)}); found {self.header}",
                )
        except BaseException:
            self.close()
            raise

    def error(self, reason: str, line: int | None = None) -> InputFormatError:
        """An :class:`InputFormatError` for this file, at ``line`` (default: the row read last)."""
        return InputFormatError(str(self.path), f"line {self.line if line is None else line}: {reason}")

    def _next_row(self, header: bool = False) -> list[str] | None:
        """The next non-blank row, checked to be text; None at the end of the file."""
        while True:
            start = self._reader.line_num + 1
            try:
                row = next(self._reader)
            except StopIteration:
                return None
            except csv.Error as exc:
                raise self.error(f"not a readable CSV row ({exc})", start) from None
            if row:
                self.line = start
                if _NOT_TEXT.search("".join(row)):
                    raise self.error(self._not_text(row, header))
                return row

    def _not_text(self, row: list[str], header: bool) -> str:
        for n, value in enumerate(row):
            bad = _NOT_TEXT.search(value)
            if bad is None:
                continue
            where = "in the header" if header else f"in column {self.header[n] if n < len(self.header) else n + 1}"
            if bad.group() == "\x00":
                return f"a NUL byte {where}: a binary file (or UTF-16 text), not a UTF-8 CSV"
            byte = ord(bad.group()) - 0xDC00
            return f"not UTF-8 text (byte 0x{byte:02x} {where}): save the file as UTF-8, or check that it is a CSV"
        raise AssertionError("no bad character in the row")  # pragma: no cover

    def __iter__(self) -> Iterator[tuple[int, dict[str, str]]]:
        width = len(self.header)
        while (row := self._next_row()) is not None:
            if len(row) != width:
                raise self.error(f"{len(row)} field(s) where the header has {width} (an unquoted comma?)")
            yield self.line, dict(zip(self.header, row, strict=True))

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> CsvTable:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _field(record: dict[str, str], column: str) -> str:
    return record.get(column, "").strip()


def read_rows(path: str | Path) -> list[Row]:
    """Read and validate an input CSV (``index,image_link,group_id,entity_name``).

    ``index`` may be absent (train.csv has none): the 0-based row number is used.

    Raises:
        InputFormatError: missing columns, duplicate indices, an empty file or one that is not a UTF-8 CSV.
        UnknownEntityError: an entity name outside the challenge's eight.
    """
    registry = get_registry()
    rows: list[Row] = []
    seen: set[str] = set()
    with CsvTable(path, INPUT_COLUMNS) as table:
        has_index = "index" in table.header
        for n, (_, rec) in enumerate(table):
            index = _field(rec, "index") if has_index else str(n)
            if not index:
                raise table.error("empty index")
            if index in seen:
                raise table.error(f"duplicate index {index!r}")
            seen.add(index)
            entity = _field(rec, "entity_name")
            if entity not in registry.entities:
                raise table.error(str(UnknownEntityError(entity, sorted(registry.entities))))
            rows.append(Row(index, _field(rec, "image_link"), _field(rec, "group_id"), entity))
    return rows


def iter_labels(path: str | Path) -> Iterator[Label]:
    """The rows of a label CSV (``[index,]image_link,group_id,entity_name,entity_value[,image_file]``), stripped.

    Entity names are not checked: each caller decides what an unknown entity means.

    Raises:
        InputFormatError: missing columns, or a file that is not a UTF-8 CSV.
    """
    with CsvTable(path, LABEL_COLUMNS) as table:
        has_index = "index" in table.header
        for n, (line, rec) in enumerate(table):
            yield Label(
                index=_field(rec, "index") if has_index else str(n),
                image_link=_field(rec, "image_link"),
                group_id=_field(rec, "group_id"),
                entity_name=_field(rec, "entity_name"),
                entity_value=_field(rec, "entity_value"),
                image_file=_field(rec, "image_file"),
                line=line,
            )


def read_labels(path: str | Path) -> list[Label]:
    """Every row of a label CSV (see :func:`iter_labels`)."""
    return list(iter_labels(path))


def read_predictions(path: str | Path) -> dict[str, str]:
    """``index -> prediction`` from an output CSV (later rows win, as after a resume)."""
    with CsvTable(path, ("index", "prediction")) as table:
        return {_field(r, "index"): _field(r, "prediction") for _, r in table}


def read_confidences(path: str | Path) -> dict[str, float] | None:
    """``index -> confidence`` from an output CSV written with ``--confidence``; None without that column.

    A blank or unparsable confidence (a row answered by no reader) is left out.
    """
    with CsvTable(path, ("index", "prediction")) as table:
        if "confidence" not in table.header:
            return None
        out: dict[str, float] = {}
        for _, r in table:
            try:
                out[_field(r, "index")] = float(_field(r, "confidence"))
            except ValueError:
                continue
        return out


def read_gold(path: str | Path) -> tuple[dict[str, str], dict[str, str]]:
    """Gold labels: ``(index -> entity_value, index -> entity_name)``.

    Accepts a CSV with ``index`` or without one (row number, as :func:`read_rows`).
    """
    values: dict[str, str] = {}
    entities: dict[str, str] = {}
    with CsvTable(path, ("entity_name", "entity_value")) as table:
        has_index = "index" in table.header
        for n, (_, r) in enumerate(table):
            index = _field(r, "index") if has_index else str(n)
            values[index] = _field(r, "entity_value")
            entities[index] = _field(r, "entity_name")
    return values, entities


def rows_digest(rows: Iterable[Row]) -> str:
    """A digest of the input rows themselves (not the file's bytes: a BOM or line endings do not matter)."""
    h = hashlib.sha256()
    for r in rows:
        h.update("\x1f".join((r.index, r.image_link, r.group_id, r.entity_name)).encode() + b"\n")
    return h.hexdigest()


def iter_unique_images(rows: Iterable[Row]) -> Iterator[tuple[str, list[Row]]]:
    """Rows grouped by image link, in first-appearance order (one OCR pass per image)."""
    groups: dict[str, list[Row]] = {}
    for r in rows:
        groups.setdefault(r.image_link, []).append(r)
    yield from groups.items()
