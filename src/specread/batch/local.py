"""Local runner: a CSV of rows -> an output CSV, one OCR pass per unique image.

Work is split by unique image across worker processes (each builds its reader
once). Results are appended to the output as they complete, so an
interrupted run resumes where it stopped; at the end the file is rewritten
in input order with exactly one row per input index. Memory stays flat however
many rows there are: the input is held compactly (:class:`~specread.io.rowtable.RowTable`),
a worker is sent an image and the few ``(group_id, entity)`` keys asked of it,
never its rows, and in-flight work is bounded. Workers die with the run
(:mod:`specread.batch.pool`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from specread.affects import Affects, settings_affecting
from specread.batch.failures import Failure, FailureLog, failure_from
from specread.batch.pool import results_as_done
from specread.batch.warm import ocr_into_cache, warm_cache
from specread.errors import MissingImagesError, unreadable_image
from specread.hardware import run_summary
from specread.io.dataset import Row, image_name, rows_digest
from specread.io.output import OutputWriter, failures_path, output_columns
from specread.io.rowtable import Answers, RowTable
from specread.pipeline import reader_model
from specread.readers import Reader, build_reader
from specread.settings import ReaderConfig
from specread.types import ReadResult
from specread.version import __version__

__all__ = [
    "Run",
    "RunStats",
    "check_images_present",
    "job_record",
    "ocr_into_cache",
    "open_run",
    "plan_run",
    "predict_csv",
    "read_image_rows",
    "read_images_batch",
    "warm_cache",
]
# ocr_into_cache and warm_cache live in specread.batch.warm; they are named here for earlier callers.

log = logging.getLogger("specread")

RowResult = tuple[str, str, float]
"""(index, prediction, confidence)."""

ImageResult = tuple[list[RowResult], Failure | None]
"""One image's row results, and its failure if it could not be read (its rows then hold the fallback answer)."""


@dataclass
class RunStats:
    """What a run did: rows, images read, rows resumed, and the images that failed, by kind."""

    rows: int = 0
    images: int = 0
    skipped_rows: int = 0
    failed_images: int = 0
    warnings: list[str] = field(default_factory=list)
    failures_by_kind: dict[str, int] = field(default_factory=dict)
    failures_file: Path | None = None
    answered: dict[str, list[float]] = field(default_factory=dict)
    """entity -> [rows written this run, rows answered, sum of the answered rows' confidence]."""

    def count(self, entity: str, rows: int, answered: bool, confidence: float | None) -> None:
        """Count ``rows`` written for ``entity``, answered or left blank (under a precision target)."""
        tally = self.answered.setdefault(entity, [0, 0, 0.0])
        tally[0] += rows
        if answered:
            tally[1] += rows
            tally[2] += rows * (confidence or 0.0)

    def record(self, failure: Failure) -> None:
        self.failed_images += 1
        self.warnings.append(failure.reason)
        self.failures_by_kind[failure.kind] = self.failures_by_kind.get(failure.kind, 0) + 1


_READER: Reader | None = None


def _init_worker(config: ReaderConfig) -> None:
    global _READER
    # One onnxruntime/BLAS thread per process: processes give the parallelism.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _READER = build_reader(config)


def _fallback(reader: Reader | None, rows: Sequence[Row]) -> list[RowResult]:
    """The answer for rows whose image could not be read: the reader's blind guess (priors), else empty."""
    out: list[RowResult] = []
    for r in rows:
        try:
            pred = reader.blind_guess(r.entity_name, r.group_id or None) if reader is not None else None
        except Exception:  # the fallback itself must never fail a row
            pred = None
        out.append((r.index, pred.text, pred.confidence) if pred is not None else (r.index, "", 0.0))
    return out


def _failed(
    reader: Reader | None, rows: Sequence[Row], exc: BaseException | None = None, kind: str = ""
) -> ImageResult:
    """The fallback rows and the :class:`Failure` for an image that raised ``exc`` (or failed for ``kind``)."""
    link = rows[0].image_link if rows else ""
    indices = tuple(r.index for r in rows)
    if exc is not None:
        failure = failure_from(link, exc, indices)
    else:
        failure = Failure(link, kind, f"{link or 'row(s) ' + ', '.join(indices)}: {kind}", indices)
    return _fallback(reader, rows), failure


def _by_group(rows: Sequence[Row]) -> dict[str, list[Row]]:
    """An image's rows by ``group_id``: the priors depend on it, so each group is read on its own."""
    groups: dict[str, list[Row]] = {}
    for r in rows:
        groups.setdefault(r.group_id, []).append(r)
    return groups


def _answers(rows: Sequence[Row], result: ReadResult) -> list[RowResult]:
    return [
        (r.index, result.predictions[r.entity_name].text, result.predictions[r.entity_name].confidence) for r in rows
    ]


def read_image_rows(reader: Reader, path: Path | None, rows: Sequence[Row]) -> ImageResult:
    """Predict every row of one image; whatever fails gives the fallback answer and a :class:`Failure`.

    Rows are grouped by ``group_id`` (priors depend on it); the OCR page is
    cached by content, so several groups on one image still cost one OCR pass.
    Any exception, from decoding to selection, is this image's and never the run's.
    """
    if path is None:
        return _failed(reader, rows, kind="no image link")
    out: list[RowResult] = []
    try:
        for group, group_rows in _by_group(rows).items():
            result = reader.read(path, sorted({r.entity_name for r in group_rows}), group or None)
            out.extend(_answers(group_rows, result))
    except Exception as exc:  # one image's failure, anywhere in the pipeline, must not end the run
        return _failed(reader, rows, exc)
    return out, None


def read_images_batch(reader: Reader, jobs: Sequence[tuple[Path | None, Sequence[Row]]]) -> list[ImageResult]:
    """Several images in one ``read_many`` call (OCR pools their text lines; a VLM batches prompts).

    If anything fails for the batch, it falls back to one image at a time, so a bad file
    still costs only its own rows (fallback answer, with a :class:`Failure`). A reader that
    gains nothing from batches (``batch_images`` 1) reads the images one at a time.
    """
    if reader.batch_images <= 1:
        return [read_image_rows(reader, path, rows) for path, rows in jobs]
    items: list[tuple[Path, list[str], str | None]] = []
    owners: list[tuple[int, list[Row]]] = []
    out: list[ImageResult] = [([], None) for _ in jobs]
    for j, (path, rows) in enumerate(jobs):
        if path is None:
            out[j] = _failed(reader, rows, kind="no image link")
            continue
        for group, group_rows in _by_group(rows).items():
            items.append((path, sorted({r.entity_name for r in group_rows}), group or None))
            owners.append((j, group_rows))
    try:
        results = reader.read_many(items)
    except Exception as exc:  # find the image at fault by reading them one at a time
        named = unreadable_image(exc)  # one the batch could not read fails now, unread again
        return [
            _failed(reader, rows, exc) if named and str(path) == named else read_image_rows(reader, path, rows)
            for path, rows in jobs
        ]
    for (j, group_rows), result in zip(owners, results, strict=True):
        out[j][0].extend(_answers(group_rows, result))
    return out


def job_record(rows: Iterable[Row] | RowTable, config: ReaderConfig, with_confidence: bool) -> dict:
    """What an output belongs to: the input rows, the settings that change answers, the model, columns and version.

    The settings are those tagged page, kernels or answer (:mod:`specread.affects`); those tagged
    speed (OCR threads, the device, the cache folder...) are left out, so a run resumed with more
    threads or on another device is the same job. The model is its folder's digest, so a model
    retrained in the same folder is another job; loading it here also refuses a missing or
    mismatched model before any work (a VLM-only reader uses none).

    Raises:
        ModelMismatchError: the model folder is missing, garbled or trained on other OCR settings.
    """
    return {
        "input": rows.digest if isinstance(rows, RowTable) else rows_digest(rows),
        "settings": settings_affecting(config, Affects.PAGE, Affects.KERNELS, Affects.ANSWER),
        "model": "" if config.reader == "vlm" else reader_model(config).digest,
        "columns": output_columns(with_confidence),
        "specread": __version__,
    }


Groups = list[tuple[str, list[Row]]]
"""Unique images to read: each link and its keys (one ``Row`` per ``group_id`` and entity, see RowTable)."""


def plan_run(table: RowTable, answers: Answers, retry: Iterable[str] = ()) -> tuple[Groups, RunStats, np.ndarray]:
    """What is left to do after a resume: the unique images with unfinished keys, the counters, and the rows to write.

    An image with any row still to do is read again for *all* its keys: the entities of one
    image are answered together (:mod:`specread.rank.joint`), so a run killed between two of
    an image's rows resumes with the answers an unbroken run gives; only the rows still to do
    are written. Rows in ``retry`` (those of images an earlier run of this job could not read)
    are done again. Shared by every runner, so the local and Ray runners resume the same way.
    """
    todo = ~answers.done()
    again = table.positions(sorted(retry))
    todo[again[again >= 0]] = True
    wanted = table.key_mask(todo)
    groups = [
        (link, [table.keys[k] for k in keys]) for link, keys in table.images.items() if any(wanted[k] for k in keys)
    ]
    stats = RunStats(rows=table.n, images=len(groups), skipped_rows=table.n - int(todo.sum()))
    return groups, stats, todo


def check_images_present(rows: Iterable[Row], images_dir: Path) -> None:
    """Stop before any OCR, and before any output is written, when most images are not in the folder.

    A user who has not downloaded the images yet would otherwise get one failure per
    image and an output of fallback answers.

    Raises:
        MissingImagesError: more than half of the input's linked images are missing.
    """
    named = [name for name in dict.fromkeys(image_name(r.image_link) for r in rows) if name]
    missing = [name for name in named if not (images_dir / name).is_file()]
    if named and len(missing) * 2 > len(named):
        raise MissingImagesError(str(images_dir), len(missing), len(named), missing[0])


Job = tuple[tuple[Path | None, Sequence[Row]], ...]
"""A worker's job: images (path, keys) read together (:attr:`ReaderConfig.ocr` ``batch_images`` of them)."""


def batch_images(config: ReaderConfig) -> int:
    """Images a worker reads together: the OCR reader pools their text lines; the other readers read one at a time."""
    return config.ocr.batch_images if config.reader == "ocr" else 1


def _work(*job: tuple[Path | None, Sequence[Row]]) -> list[ImageResult]:
    assert _READER is not None, "worker not initialised"
    return read_images_batch(_READER, job)


def _one_by_one(job: Job) -> list[Job]:
    """A job split into one job per image: how images in flight when a worker died are read again."""
    return [(image,) for image in job]


def predict_csv(
    input_csv: str | Path | RowTable,
    images_dir: str | Path,
    output_csv: str | Path,
    config: ReaderConfig | None = None,
    workers: int = 1,
    with_confidence: bool = False,
    progress: Callable[[int, int], None] | None = None,
    reader: Reader | None = None,
    *,
    overwrite: bool = False,
    allow_missing: bool = False,
    announce: Callable[[str], None] | None = None,
) -> RunStats:
    """Predict every row of ``input_csv`` into ``output_csv`` (resumable).

    Args:
        input_csv: challenge-format rows (validated before any work starts), or their table.
        images_dir: folder holding the images, named by the file name of ``image_link``.
        output_csv: ``index,prediction[,confidence]``; an output of the same job (input rows,
            settings, version: ``<output>.job.json``) is resumed, any other is refused.
        config: reader configuration (picklable; each worker builds its own reader).
        workers: worker processes; 1 runs in this process.
        with_confidence: add a ``confidence`` column.
        progress: called with ``(images_done, images_total)`` after each image.
        reader: an already built reader for in-process runs (``workers == 1``).
        overwrite: discard an existing output (and its job record and failures) first.
        allow_missing: go on when most images are missing (their rows get the fallback answer).
        announce: called with :func:`run_summary` once the run is checked and opened, before any
            image is read (the CLI prints it; it is also logged at INFO).

    Returns:
        Counts of rows, images, resumed rows and failed images (by kind; each is listed in
        ``<output>.failures.csv``).

    Raises:
        JobMismatchError: the output belongs to another job.
        MissingImagesError: most images are not in ``images_dir`` (before any OCR).
    """
    config = config or ReaderConfig()
    if config.reader != "ocr" and workers > 1:
        log.warning("--reader %s runs in one process (the VLM holds the GPU): ignoring --workers", config.reader)
        workers = 1
    with open_run(input_csv, images_dir, output_csv, config, with_confidence, overwrite, allow_missing) as run:
        summary = run_summary(config, workers)
        log.info("%s", summary)
        if announce:
            announce(summary)
        groups, total, done = run.groups, len(run.groups), 0
        local = (reader or build_reader(config)) if workers <= 1 else None
        size = local.batch_images if local is not None else batch_images(config)
        jobs = [
            tuple((run.path_of(link), rows) for link, rows in groups[start : start + size])
            for start in range(0, total, size)
        ]
        results: Iterable[list[ImageResult]] = (
            (read_images_batch(local, job) for job in jobs)
            if local is not None
            else results_as_done(workers, _init_worker, (config,), _work, jobs, _died, _raised, _one_by_one)
        )
        for chunk in results:
            for result in chunk:
                run.record(*result)
            done += len(chunk)
            if progress:
                progress(done, total)
    return run.stats


@dataclass
class Run:
    """One job's open output, what is left to do, and its failures (see :func:`open_run`).

    ``groups`` holds keys, not rows: a result names a key (its ``Row.index``) and is written
    to every row of that key still to do (``todo``).
    """

    table: RowTable
    images: Path
    groups: Groups
    stats: RunStats
    writer: OutputWriter
    failures: FailureLog
    answers: Answers
    todo: np.ndarray

    def path_of(self, link: str) -> Path | None:
        """Where an image link's file is in the images folder (None for an empty link)."""
        name = image_name(link)
        return self.images / name if name else None

    def _rows(self, key: str) -> np.ndarray:
        rows = self.table.rows_of(int(key))
        return rows[self.todo[rows]]

    def record(self, results: Sequence[RowResult], failure: Failure | None = None) -> None:
        """Write one image's answers, each to its key's rows (flushed, so a kill loses nothing); count its failure."""
        if failure is not None:
            self.fail(failure)
        for key, pred, conf in results:
            rows = self._rows(key)
            self.writer.write_same(self.table.indices(rows), self.answers.set(rows, pred, conf))
            self.todo[rows] = False
            self.stats.count(self.table.keys[int(key)].entity_name, len(rows), bool(pred), conf)
        self.writer.flush()

    def fail(self, failure: Failure) -> None:
        """Count and list a failure whose ``indices`` are keys: listed with the rows they stand for."""
        indices = tuple(index for key in failure.indices for index in self.table.indices(self._rows(key)))
        reason = failure.reason
        if not failure.image_link:
            shown = ", ".join(indices[:5]) + (f" and {len(indices) - 5} more" if len(indices) > 5 else "")
            reason = f"row(s) {shown}: {failure.kind}"
        failure = dataclasses.replace(failure, reason=reason, indices=indices)
        self.stats.record(failure)
        self.failures.add(failure)


@contextmanager
def open_run(
    input_csv: str | Path | RowTable,
    images_dir: str | Path,
    output_csv: str | Path,
    config: ReaderConfig,
    with_confidence: bool = False,
    overwrite: bool = False,
    allow_missing: bool = False,
) -> Iterator[Run]:
    """Everything every runner does around its reading: check, claim or resume the job, then finish it.

    Before any work: the input rows are validated (or given as their table), the images folder
    must exist and (unless ``allow_missing``) hold most of the images, and the output must belong
    to this job (:class:`~specread.io.output.OutputWriter`). After the runner's loop: the failures
    file is settled and the output rewritten in input order with one row per index, from the
    answers held in memory (:class:`~specread.io.rowtable.Answers`).

    Raises:
        InputFormatError, FileNotFoundError, MissingImagesError, JobMismatchError: before any work.
    """
    table = input_csv if isinstance(input_csv, RowTable) else RowTable.read(input_csv)
    images = Path(images_dir).resolve()
    if not images.is_dir():
        raise FileNotFoundError(f"images folder not found: {images}")
    if not allow_missing:
        check_images_present(table.keys, images)
    job = job_record(table, config, with_confidence)
    with OutputWriter(output_csv, with_confidence, job, overwrite, keep_done=False) as writer:
        answers = Answers(table, with_confidence)
        answers.load(writer.path)
        failures = FailureLog(failures_path(output_csv))
        groups, stats, todo = plan_run(table, answers, failures.retry)
        run = Run(table, images, groups, stats, writer, failures, answers, todo)
        yield run
        failures.close()
    answers.write_final(writer.path, writer.columns)
    stats.failures_file = failures.path if stats.failed_images else None


def _died(job: Job) -> list[ImageResult]:
    return [_failed(None, rows, kind="worker died") for _, rows in job]


def _raised(job: Job, exc: Exception) -> list[ImageResult]:
    """A job's own error (e.g. a result that cannot be sent back): its images' failure."""
    return [_failed(None, rows, exc) for _, rows in job]
