"""Local runner: a CSV of rows -> an output CSV, one OCR pass per unique image.

Work is split by unique image across worker processes (each builds its reader
once). Results are appended to the output as they complete, so an
interrupted run resumes where it stopped; at the end the file is rewritten
in input order with exactly one row per input index. In-flight work is
bounded, so memory stays flat however many rows there are.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from specread.errors import ImageLoadError
from specread.io.dataset import OutputWriter, Row, finalize_output, image_name, iter_unique_images, read_rows
from specread.pipeline import ReaderConfig, SpecReader, build_reader

__all__ = ["RunStats", "plan_run", "predict_csv", "read_image_rows", "read_images_batch", "warm_cache"]

log = logging.getLogger("specread")

RowResult = tuple[str, str, float]
"""(index, prediction, confidence)."""


@dataclass
class RunStats:
    rows: int = 0
    images: int = 0
    skipped_rows: int = 0
    failed_images: int = 0
    warnings: list[str] | None = None


_READER: SpecReader | None = None


def _init_worker(config: ReaderConfig) -> None:
    global _READER
    # One onnxruntime/BLAS thread per process: processes give the parallelism.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _READER = build_reader(config)


def read_image_rows(reader: SpecReader, path: Path | None, rows: Sequence[Row]) -> tuple[list[RowResult], str]:
    """Predict every row of one image; a bad image gives empty predictions and a warning.

    Rows are grouped by ``group_id`` (priors depend on it); the OCR page is
    cached by content, so several groups on one image still cost one OCR pass.
    """
    if path is None:
        return [(r.index, "", 0.0) for r in rows], "no image link"
    out: list[RowResult] = []
    by_group: dict[str, list[Row]] = {}
    for r in rows:
        by_group.setdefault(r.group_id, []).append(r)
    try:
        for group, group_rows in by_group.items():
            entities = sorted({r.entity_name for r in group_rows})
            preds = reader.read(path, entities, group or None).predictions
            out.extend((r.index, preds[r.entity_name].text, preds[r.entity_name].confidence) for r in group_rows)
    except ImageLoadError as exc:
        return [(r.index, "", 0.0) for r in rows], str(exc)
    return out, ""


def read_images_batch(
    reader: object, jobs: Sequence[tuple[Path | None, Sequence[Row]]]
) -> list[tuple[list[RowResult], str]]:
    """Batched variant for readers with ``read_many`` (VLM, hybrid): one generation batch spans images.

    If any image of the batch cannot be read, the batch falls back to one image at a
    time, so a bad file still costs only its own rows (empty, with a warning).
    """
    items: list[tuple[Path, list[str], str | None]] = []
    owners: list[tuple[int, list[Row]]] = []
    out: list[tuple[list[RowResult], str]] = [([], "") for _ in jobs]
    for j, (path, rows) in enumerate(jobs):
        if path is None:
            out[j] = ([(r.index, "", 0.0) for r in rows], "no image link")
            continue
        by_group: dict[str, list[Row]] = {}
        for r in rows:
            by_group.setdefault(r.group_id, []).append(r)
        for group, group_rows in by_group.items():
            items.append((path, sorted({r.entity_name for r in group_rows}), group or None))
            owners.append((j, group_rows))
    try:
        results = reader.read_many(items)  # type: ignore[attr-defined]
    except ImageLoadError:
        return [read_image_rows(reader, path, rows) for path, rows in jobs]  # type: ignore[arg-type]
    for (j, group_rows), result in zip(owners, results, strict=True):
        preds = result.predictions
        out[j][0].extend((r.index, preds[r.entity_name].text, preds[r.entity_name].confidence) for r in group_rows)
    return out


def plan_run(rows: Sequence[Row], writer: OutputWriter) -> tuple[list[tuple[str, list[Row]]], RunStats]:
    """What is left to do after a resume: the unfinished rows grouped by unique image, and the run's counters.

    Shared by every runner, so the local and Ray runners resume the same way.
    """
    todo = [r for r in rows if r.index not in writer.done]
    groups = list(iter_unique_images(todo))
    stats = RunStats(rows=len(rows), images=len(groups), skipped_rows=len(rows) - len(todo), warnings=[])
    return groups, stats


def _work(path: Path | None, rows: Sequence[Row]) -> tuple[list[RowResult], str]:
    assert _READER is not None, "worker not initialised"
    return read_image_rows(_READER, path, rows)


def _resolve(images_dir: Path, link: str) -> Path | None:
    name = image_name(link)
    return images_dir / name if name else None


def predict_csv(
    input_csv: str | Path,
    images_dir: str | Path,
    output_csv: str | Path,
    config: ReaderConfig | None = None,
    workers: int = 1,
    with_confidence: bool = False,
    progress: Callable[[int, int], None] | None = None,
    reader: SpecReader | None = None,
) -> RunStats:
    """Predict every row of ``input_csv`` into ``output_csv`` (resumable).

    Args:
        input_csv: challenge-format rows (validated before any work starts).
        images_dir: folder holding the images, named by the file name of ``image_link``.
        output_csv: ``index,prediction[,confidence]``; existing rows are kept (resume).
        config: reader configuration (picklable; each worker builds its own reader).
        workers: worker processes; 1 runs in this process.
        with_confidence: add a ``confidence`` column.
        progress: called with ``(images_done, images_total)`` after each image.
        reader: an already built reader for in-process runs (``workers == 1``).

    Returns:
        Counts of rows, images, resumed rows and unreadable images.
    """
    rows = read_rows(input_csv)
    images = Path(images_dir)
    if not images.is_dir():
        raise FileNotFoundError(f"images folder not found: {images}")
    config = config or ReaderConfig()
    if config.reader != "ocr" and workers > 1:
        log.warning("--reader %s runs in one process (the VLM holds the GPU): ignoring --workers", config.reader)
        workers = 1
    with OutputWriter(output_csv, with_confidence=with_confidence) as writer:
        groups, stats = plan_run(rows, writer)
        total = len(groups)

        def record(results: list[RowResult], warning: str) -> None:
            if warning:
                stats.failed_images += 1
                stats.warnings.append(warning)  # type: ignore[union-attr]
                log.warning("%s (predicting empty)", warning)
            for index, pred, conf in results:
                writer.write(index, pred, conf)
            writer.flush()

        done = 0
        if workers <= 1:
            local = reader or build_reader(config)
            if hasattr(local, "read_many"):
                size = int(config.vlm_options.get("batch_images", 8))
                for start in range(0, total, size):
                    chunk = [(_resolve(images, link), rs) for link, rs in groups[start : start + size]]
                    for results, warning in read_images_batch(local, chunk):
                        record(results, warning)
                    done += len(chunk)
                    if progress:
                        progress(done, total)
            else:
                for link, image_rows in groups:
                    record(*read_image_rows(local, _resolve(images, link), image_rows))
                    done += 1
                    if progress:
                        progress(done, total)
        else:
            for results, warning in _pool_map(config, workers, [(_resolve(images, link), rs) for link, rs in groups]):
                record(results, warning)
                done += 1
                if progress:
                    progress(done, total)
    finalize_output(output_csv, [r.index for r in rows])
    return stats


def _pool_map(
    config: ReaderConfig, workers: int, jobs: list[tuple[Path | None, list[Row]]]
) -> Iterator[tuple[list[RowResult], str]]:
    """Run jobs on a process pool with bounded in-flight work, yielding results as they finish."""
    limit = workers * 4
    it = iter(jobs)
    with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(config,)) as pool:
        pending: set[Future] = set()
        for job in it:
            pending.add(pool.submit(_work, *job))
            if len(pending) >= limit:
                break
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                yield fut.result()
                nxt = next(it, None)
                if nxt is not None:
                    pending.add(pool.submit(_work, *nxt))


def _ocr_only(path: Path) -> str:
    assert _READER is not None, "worker not initialised"
    try:
        _READER.ocr(path)
    except ImageLoadError as exc:
        return str(exc)
    return ""


def warm_cache(
    paths: Sequence[Path],
    config: ReaderConfig,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> list[str]:
    """OCR every image into the cache (in parallel), so later passes read pages for free.

    Returns:
        The warnings for images that could not be read.
    """
    if config.cache_dir is None:
        raise ValueError("warming the cache needs a cache_dir")
    warnings: list[str] = []
    unique = list(dict.fromkeys(paths))
    with ProcessPoolExecutor(max_workers=max(1, workers), initializer=_init_worker, initargs=(config,)) as pool:
        for done, warning in enumerate(pool.map(_ocr_only, unique, chunksize=4), start=1):
            if warning:
                warnings.append(warning)
            if progress:
                progress(done, len(unique))
    return warnings
