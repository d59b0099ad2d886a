"""Challenge output CSVs: writing them so a killed run can resume, and putting them in input order.

The output writer appends one row per finished index and flushes, so a run that is killed can
resume; the job record beside the output (:func:`job_path`) says which input, settings, model and
version wrote it, so a resume never mixes two jobs' answers. :func:`finalize_output` rewrites the
file in input order once every index is present. Reading CSVs (inputs, labels, predictions) is
:mod:`specread.io.dataset`'s.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from specread.errors import JobMismatchError
from specread.io.dataset import CsvTable, read_predictions
from specread.io.files import atomic_write, drop_torn_line

__all__ = ["OutputWriter", "failures_path", "finalize_output", "job_path", "output_columns", "output_row"]


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
