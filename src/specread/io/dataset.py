"""Challenge CSVs: reading input rows, gold labels and predictions; writing output.

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
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from specread.errors import InputFormatError, JobMismatchError, UnknownEntityError
from specread.units.registry import get_registry

__all__ = [
    "OutputWriter",
    "Row",
    "failures_path",
    "finalize_output",
    "image_name",
    "iter_unique_images",
    "job_path",
    "read_gold",
    "read_predictions",
    "read_rows",
    "rows_digest",
]

INPUT_COLUMNS = ("image_link", "entity_name")


@dataclass(frozen=True, slots=True)
class Row:
    """One input row: which entity to read off which image."""

    index: str
    image_link: str
    group_id: str
    entity_name: str


def image_name(link: str) -> str:
    """File name the official downloader gives an image link (the URL path's last part)."""
    path = urlparse(link).path if "://" in link else link
    return PurePosixPath(path).name


def _reader(path: Path) -> tuple[csv.DictReader, object]:
    try:
        fh = open(path, newline="", encoding="utf-8-sig")  # noqa: SIM115 - closed by caller
    except FileNotFoundError:
        raise InputFormatError(str(path), "file not found") from None
    return csv.DictReader(fh), fh


def read_rows(path: str | Path) -> list[Row]:
    """Read and validate an input CSV (``index,image_link,group_id,entity_name``).

    ``index`` may be absent (train.csv has none): the 0-based row number is used.

    Raises:
        InputFormatError: missing columns, duplicate indices or an empty file.
        UnknownEntityError: an entity name outside the challenge's eight.
    """
    p = Path(path)
    reader, fh = _reader(p)
    registry = get_registry()
    try:
        header = reader.fieldnames or []
        missing = [c for c in INPUT_COLUMNS if c not in header]
        if missing:
            raise InputFormatError(str(p), f"missing required column(s) {', '.join(missing)}; found {header}")
        rows: list[Row] = []
        seen: set[str] = set()
        for n, rec in enumerate(reader):
            index = (rec.get("index") or "").strip() if "index" in header else str(n)
            if not index:
                raise InputFormatError(str(p), f"row {n + 2}: empty index")
            if index in seen:
                raise InputFormatError(str(p), f"row {n + 2}: duplicate index {index!r}")
            seen.add(index)
            entity = (rec.get("entity_name") or "").strip()
            if entity not in registry.entities:
                raise InputFormatError(str(p), f"row {n + 2}: {UnknownEntityError(entity, sorted(registry.entities))}")
            rows.append(Row(index, (rec.get("image_link") or "").strip(), (rec.get("group_id") or "").strip(), entity))
    finally:
        fh.close()  # type: ignore[attr-defined]
    return rows


def read_predictions(path: str | Path) -> dict[str, str]:
    """``index -> prediction`` from an output CSV (later rows win, as after a resume)."""
    p = Path(path)
    reader, fh = _reader(p)
    try:
        header = reader.fieldnames or []
        if "index" not in header or "prediction" not in header:
            raise InputFormatError(str(p), f"expected columns index,prediction; found {header}")
        return {(r["index"] or "").strip(): (r["prediction"] or "").strip() for r in reader}
    finally:
        fh.close()  # type: ignore[attr-defined]


def read_gold(path: str | Path) -> tuple[dict[str, str], dict[str, str]]:
    """Gold labels: ``(index -> entity_value, index -> entity_name)``.

    Accepts a CSV with ``index`` or without one (row number, as :func:`read_rows`).
    """
    p = Path(path)
    reader, fh = _reader(p)
    try:
        header = reader.fieldnames or []
        for col in ("entity_name", "entity_value"):
            if col not in header:
                raise InputFormatError(str(p), f"missing required column {col}; found {header}")
        values: dict[str, str] = {}
        entities: dict[str, str] = {}
        for n, r in enumerate(reader):
            index = (r.get("index") or "").strip() if "index" in header else str(n)
            values[index] = (r["entity_value"] or "").strip()
            entities[index] = (r["entity_name"] or "").strip()
        return values, entities
    finally:
        fh.close()  # type: ignore[attr-defined]


class OutputWriter:
    """Append-only ``index,prediction[,confidence]`` writer that survives being killed.

    Opening an existing file keeps its rows (resume) and reports which indices
    are already done; a torn last line from a kill is dropped first.
    """

    def __init__(
        self, path: str | Path, with_confidence: bool = False, job: dict | None = None, overwrite: bool = False
    ) -> None:
        self.path = Path(path)
        self.columns = ["index", "prediction", *(["confidence"] if with_confidence else [])]
        self.done: dict[str, str] = {}
        if overwrite:
            for stale in (self.path, job_path(self.path), failures_path(self.path)):
                stale.unlink(missing_ok=True)
        if job is not None:
            self._claim(job)
        if self.path.exists() and self.path.stat().st_size > 0:
            self._repair_tail()
        if self.path.exists() and self.path.stat().st_size > 0:
            self.done = read_predictions(self.path)
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
                settings, columns or specread version, or by no recorded job at all.
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
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(job, fh, indent=2, sort_keys=True)
        os.replace(tmp, record)

    def _repair_tail(self) -> None:
        """Drop a torn last line, but never cut a file this writer did not make."""
        data = self.path.read_bytes()
        if data.endswith(b"\n"):
            return
        text = data.decode("utf-8-sig", errors="replace")
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            # Killed while writing the header line: start the file again.
            if not "index,prediction,confidence".startswith(text.strip()):
                return  # not an output file: read_predictions refuses it below
        else:
            header = next(csv.reader([text.split("\n", 1)[0].rstrip("\r")]))
            if "index" not in header or "prediction" not in header:
                return  # e.g. the input CSV given as --output by mistake: leave its last row alone
        with open(self.path, "r+b") as fh:
            fh.truncate(cut)

    def write(self, index: str, prediction: str, confidence: float | None = None) -> None:
        row = [index, prediction]
        if len(self.columns) == 3:
            row.append("" if confidence is None else f"{confidence:.4f}")
        self._csv.writerow(row)
        self.done[index] = prediction

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
    """Rewrite an output file atomically in input order, one row per index (last write wins)."""
    p = Path(path)
    with open(p, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        latest = {r[0]: r for r in reader if r}
    fd, tmp = tempfile.mkstemp(dir=p.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as out:
            w = csv.writer(out)
            w.writerow(header)
            for index in order:
                w.writerow(latest.get(index, [index, "", *([""] * (len(header) - 2))]))
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
    "columns": "columns",
    "specread": "specread version",
}


def iter_unique_images(rows: Iterable[Row]) -> Iterator[tuple[str, list[Row]]]:
    """Rows grouped by image link, in first-appearance order (one OCR pass per image)."""
    groups: dict[str, list[Row]] = {}
    for r in rows:
        groups.setdefault(r.image_link, []).append(r)
    yield from groups.items()
