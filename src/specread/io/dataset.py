"""Challenge CSVs: reading input rows, labels, gold labels and predictions; writing output.

Every CSV specread reads goes through :class:`CsvTable`: UTF-8 with or without
a byte order mark, required columns checked before any row is used, and a file
that cannot be read as such a CSV (another encoding, a binary file, a row with
the wrong number of fields) stops with an :class:`InputFormatError` that names
the file and the line, never a raw ``UnicodeDecodeError``.

Inputs are validated before any work starts (required columns, known
entities, unique indices) so a long run never dies halfway on a bad row.
The output writer appends one row per finished index and flushes, so a run
that is killed can resume; :func:`finalize_output` rewrites the file in input
order once every index is present.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from specread.errors import (
    InputFormatError,
    InputNotFoundError,
    JobMismatchError,
    MissingColumnsError,
    UnknownEntityError,
)
from specread.io.files import atomic_write, drop_torn_line
from specread.units.registry import get_registry

__all__ = [
    "INPUT_COLUMNS",
    "LABEL_COLUMNS",
    "CsvTable",
    "Label",
    "OutputWriter",
    "Row",
    "failures_path",
    "finalize_output",
    "image_name",
    "iter_labels",
    "iter_unique_images",
    "job_path",
    "output_columns",
    "output_row",
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


def output_columns(with_confidence: bool = False) -> list[str]:
    """An output CSV's header: ``index,prediction`` and, if asked, ``confidence``."""
    return ["index", "prediction", *(["confidence"] if with_confidence else [])]


def output_row(index: str, prediction: str, confidence: float | None, with_confidence: bool) -> list[str]:
    """One output CSV row under :func:`output_columns`: the confidence to 4 decimals, "" when unknown."""
    if not with_confidence:
        return [index, prediction]
    return [index, prediction, "" if confidence is None else f"{confidence:.4f}"]


class OutputWriter:
    """Append-only ``index,prediction[,confidence]`` writer that survives being killed.

    Opening an existing file keeps its rows (resume) and reports which indices
    are already done (in ``done``, unless ``keep_done`` is off: a runner that holds
    its rows compactly reads the file itself, :class:`specread.io.rowtable.Answers`);
    a torn last line from a kill is dropped first.
    """

    def __init__(
        self,
        path: str | Path,
        with_confidence: bool = False,
        job: dict | None = None,
        overwrite: bool = False,
        keep_done: bool = True,
    ) -> None:
        self.path = Path(path)
        self.columns = output_columns(with_confidence)
        self.keep_done = keep_done
        self.done: dict[str, str] = {}
        if overwrite:
            for stale in (job_path(self.path), failures_path(self.path)):
                stale.unlink(missing_ok=True)
            if not self.path.is_symlink():
                self.path.unlink(missing_ok=True)
            elif self.path.exists():  # a link stays: the file it names starts again
                os.truncate(self.path, 0)
        if job is not None:
            self._claim(job)
        if self.path.exists() and self.path.stat().st_size > 0:
            drop_torn_line(self.path, self._owns)
        if self.path.exists() and self.path.stat().st_size > 0:
            if keep_done:
                self.done = read_predictions(self.path)
            else:  # the header must still be an output's
                CsvTable(self.path, ("index", "prediction")).close()
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "w", newline="", encoding="utf-8") as fh:
                csv.writer(fh).writerow(self.columns)
        self._fh = open(self.path, "a", newline="", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._csv = csv.writer(self._fh)

    def _claim(self, job: dict) -> None:
        """Resume only the job that wrote this output; record the job when the output is new.

        Raises:
            JobMismatchError: the output exists but was written for other input rows,
                settings, model, columns or specread version, or by no recorded job at all.
        """
        record = job_path(self.path)
        job = json.loads(json.dumps(job, sort_keys=True, default=str))  # as it reads back from disk
        if self.path.exists() and self.path.stat().st_size > 0:
            try:
                earlier = json.loads(record.read_text(encoding="utf-8"))
            except FileNotFoundError:
                raise JobMismatchError(
                    str(self.path), f"already exists and was not written by this job (no {record.name})"
                ) from None
            except (OSError, ValueError) as exc:
                raise JobMismatchError(str(self.path), f"has an unreadable job record {record.name} ({exc})") from None
            changed = [label for key, label in _JOB_FIELDS.items() if earlier.get(key) != job.get(key)]
            if changed:
                raise JobMismatchError(
                    str(self.path), f"was written by another job (different {', '.join(changed)}); it is not resumed"
                )
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(record, encoding="utf-8") as fh:
            json.dump(job, fh, indent=2, sort_keys=True)

    @staticmethod
    def _owns(first: str, whole: bool) -> bool:
        """Whether a file whose first line is ``first`` is an output (see :func:`drop_torn_line`)."""
        if not whole:  # killed while writing the header line: start the file again
            return ",".join(output_columns(with_confidence=True)).startswith(first.strip())
        header = next(csv.reader([first]))
        # Not an output (e.g. the input CSV given as --output by mistake): read_predictions refuses it.
        return "index" in header and "prediction" in header

    def write(self, index: str, prediction: str, confidence: float | None = None) -> None:
        self._csv.writerow(output_row(index, prediction, confidence, len(self.columns) == 3))
        if self.keep_done:
            self.done[index] = prediction

    def write_same(self, indices: Iterable[str], tail: Sequence[str]) -> None:
        """Rows that share one answer: each index, then ``tail`` (the columns after the index, as output_row makes)."""
        if self.keep_done:
            indices = list(indices)
            self.done.update((index, tail[0]) for index in indices)
        self._csv.writerows([index, *tail] for index in indices)

    def flush(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if not self._fh.closed:
            self.flush()
            self._fh.close()

    def __enter__(self) -> OutputWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def finalize_output(path: str | Path, order: Iterable[str]) -> None:
    """Rewrite an output file atomically in input order, one row per index (last write wins).

    An output path that is a symbolic link keeps it: the file it names gets the final rows.
    """
    p = Path(path)
    with open(p, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        latest = {r[0]: r for r in reader if r}
    with atomic_write(p, newline="", encoding="utf-8", through_link=True) as out:
        w = csv.writer(out)
        w.writerow(header)
        for index in order:
            w.writerow(latest.get(index, [index, "", *([""] * (len(header) - 2))]))


def rows_digest(rows: Iterable[Row]) -> str:
    """A digest of the input rows themselves (not the file's bytes: a BOM or line endings do not matter)."""
    h = hashlib.sha256()
    for r in rows:
        h.update("\x1f".join((r.index, r.image_link, r.group_id, r.entity_name)).encode() + b"\n")
    return h.hexdigest()


def job_path(output: str | Path) -> Path:
    """``out.csv`` -> ``out.job.json``: what the output belongs to (input, settings, version)."""
    p = Path(output)
    return p.with_name(f"{p.stem}.job.json")


def failures_path(output: str | Path) -> Path:
    """``out.csv`` -> ``out.failures.csv``: the images a run could not read, and their rows."""
    p = Path(output)
    return p.with_name(f"{p.stem}.failures.csv")


_JOB_FIELDS = {
    "input": "input rows",
    "settings": "reader settings",
    "model": "model",
    "columns": "columns",
    "specread": "specread version",
}


def iter_unique_images(rows: Iterable[Row]) -> Iterator[tuple[str, list[Row]]]:
    """Rows grouped by image link, in first-appearance order (one OCR pass per image)."""
    groups: dict[str, list[Row]] = {}
    for r in rows:
        groups.setdefault(r.image_link, []).append(r)
    yield from groups.items()
