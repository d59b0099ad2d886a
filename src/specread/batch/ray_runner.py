"""Ray runner: the local runner's work spread over a Ray cluster with Ray Data.

One dataset item per unique image (its path and the keys asked about it: one
per ``group_id`` and entity, as the local runner sends its workers) flows
through ``map_batches`` into a pool of actors; each actor builds its reader
once in ``__init__`` (models loaded once per actor, not per batch) and answers
with one record per key. The driver writes each key's answer to its rows in
the same append-only :class:`specread.io.output.OutputWriter` as the local
runner (:meth:`specread.batch.local.Run.record`), so a run killed at any point
resumes with the indices it already has, and the final rewrite leaves exactly
one row per input index in input order. Predictions equal the local runner's: both call
:func:`specread.batch.local.read_images_batch` on a reader built from the same
:class:`specread.settings.ReaderConfig`.

Images are read by path on the actors, so on a multi-node cluster the images
folder must be on storage every node mounts at the same path.

Example:
    >>> from specread.batch.ray_runner import predict_csv_ray
    >>> predict_csv_ray("test.csv", "images", "out.csv", address="auto")  # doctest: +SKIP
    RunStats(rows=131187, images=90666, ...)
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from specread.batch.failures import Failure
from specread.batch.local import ImageResult, Run, RunStats, batch_images, open_run, read_images_batch
from specread.batch.warm import ocr_into_cache
from specread.io.dataset import Row
from specread.io.rowtable import RowTable
from specread.settings import ReaderConfig

__all__ = ["ImageBatchReader", "PageWarmer", "predict_csv_ray", "warm_cache_ray"]

log = logging.getLogger("specread")


class ImageBatchReader:
    """Ray Data actor: builds the reader once, then reads batches of unique images.

    Args:
        config: the reader configuration (the same for every actor).
    """

    def __init__(self, config: ReaderConfig) -> None:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        from specread.readers import build_reader

        self.reader = build_reader(config)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        out: dict[str, list] = {key: [] for key in ("index", "prediction", "confidence", "image", "kind", "reason")}
        jobs = [
            (Path(path) if path else None, [Row(*fields) for fields in json.loads(str(packed))])
            for path, packed in zip(batch["path"], batch["rows"], strict=True)
        ]
        # The batch's images read together (their text lines share recogniser calls), as a local worker reads them.
        for image, (results, failure) in zip(batch["image"], read_images_batch(self.reader, jobs), strict=True):
            for index, prediction, confidence in results:
                out["index"].append(index)
                out["prediction"].append(prediction)
                out["confidence"].append(float(confidence))
                out["image"].append(str(image))
                out["kind"].append(failure.kind if failure else "")
                out["reason"].append(failure.reason if failure else "")
        return out


def _pack(rows: list[Row]) -> str:
    """An image's keys (``Row`` objects) as one JSON string column (Arrow-friendly, any characters)."""
    return json.dumps([[r.index, r.image_link, r.group_id, r.entity_name] for r in rows])


def predict_csv_ray(
    input_csv: str | Path | RowTable,
    images_dir: str | Path,
    output_csv: str | Path,
    config: ReaderConfig | None = None,
    address: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    *,
    actors: int | None = None,
    batch_size: int | None = None,
    with_confidence: bool = False,
    overwrite: bool = False,
    allow_missing: bool = False,
) -> RunStats:
    """Predict every row of ``input_csv`` into ``output_csv`` on Ray (resumable).

    Args:
        input_csv: challenge-format rows (validated before any work starts), or their table.
        images_dir: folder of images named by the file name of ``image_link`` (visible to every node).
        output_csv: ``index,prediction[,confidence]``; existing rows are kept (resume).
        config: reader configuration, shipped to every actor.
        address: Ray cluster address (``"auto"``, ``"ray://host:10001"``); ``None`` joins the
            already initialised Ray, or starts a local one.
        progress: called with ``(images_done, images_total)`` as results arrive.
        actors: reader actors (one CPU each); default: the cluster's CPU count.
        batch_size: images per actor call (default: the OCR's ``batch_images``, read together).
        with_confidence: add a ``confidence`` column.
        overwrite: discard an existing output (and its job record and failures) first.
        allow_missing: go on when most images are missing.

    Returns:
        Counts of rows, images, resumed rows and failed images (as the local runner).

    Raises:
        ImportError: Ray is not installed (``pip install 'specread[ray]'``).
        FileNotFoundError: the images folder does not exist.
    """
    config = config or ReaderConfig()
    with open_run(input_csv, images_dir, output_csv, config, with_confidence, overwrite, allow_missing) as run:
        if run.groups:
            _run(run, config, address, progress, actors, batch_size or batch_images(config))
    return run.stats


def _run(
    run: Run,
    config: ReaderConfig,
    address: str | None,
    progress: Callable[[int, int], None] | None,
    actors: int | None,
    batch_size: int,
) -> None:
    with _ray_session(address) as ray:
        items = []
        for link, keys in run.groups:
            path = run.path_of(link)
            items.append({"image": link, "path": str(path) if path else "", "rows": _pack(keys)})
        ds = _actor_map(ray, items, ImageBatchReader, config, batch_size, actors)
        seen: set[str] = set()
        total = len(items)
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            by_image: dict[str, ImageResult] = {}  # an image's keys come back in one actor batch
            for key, pred, conf, image, kind, reason in zip(
                *(batch[column] for column in ("index", "prediction", "confidence", "image", "kind", "reason")),
                strict=True,
            ):
                answers, failure = by_image.setdefault(str(image), ([], None))
                answers.append((str(key), str(pred), float(conf)))
                if kind:
                    keys = (*failure.indices, str(key)) if failure else (str(key),)
                    by_image[str(image)] = (answers, Failure(str(image), str(kind), str(reason), keys))
            for image, (answers, failure) in by_image.items():
                run.record(answers, failure)
                seen.add(image)
            if progress:
                progress(len(seen), total)


@contextmanager
def _ray_session(address: str | None) -> Iterator[Any]:
    """The ``ray`` module, joined to ``address`` (or the running Ray, or a local one started and stopped here)."""
    try:
        import ray
    except ImportError as exc:
        raise ImportError("--runner ray needs Ray: pip install 'specread[ray]'") from exc
    started = False
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        started = True
    # Our progress callback reports progress: keep Ray Data's per-run notes quiet.
    for name in ("execution.streaming_executor", "progress.logging_progress"):
        logging.getLogger(f"ray.data._internal.{name}").setLevel(logging.WARNING)
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def _actor_map(
    ray: Any, items: list[dict], actor: type, config: ReaderConfig, batch_size: int, actors: int | None
) -> Any:
    """``items`` through a pool of ``actor``s (one CPU each, as many as the cluster's CPUs or ``actors``)."""
    pool = actors or max(1, int(ray.cluster_resources().get("CPU", 1)))
    pool = max(1, min(pool, len(items)))
    ds = ray.data.from_items(items, override_num_blocks=max(1, min(len(items), pool * 8)))
    return ds.map_batches(
        actor,
        fn_constructor_kwargs={"config": config},
        batch_size=batch_size,
        compute=ray.data.ActorPoolStrategy(size=pool),
        num_cpus=1,
    )


class PageWarmer:
    """Ray Data actor: OCRs images into the (shared) OCR cache; answers a warning per unreadable image."""

    def __init__(self, config: ReaderConfig) -> None:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        from specread.pipeline import build_pages

        self.pages = build_pages(config)[0]

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        paths = [str(p) for p in batch["path"]]
        return {"path": paths, "warning": ocr_into_cache(self.pages, [Path(p) for p in paths])}


def warm_cache_ray(
    paths: Sequence[Path],
    config: ReaderConfig,
    address: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    actors: int | None = None,
) -> list[str]:
    """:func:`specread.batch.local.warm_cache` on a Ray cluster: every image OCRed once into the cache.

    The cache folder (``config.cache_dir``) and the images must be on storage every node mounts
    at the same path, like the images for :func:`predict_csv_ray`.

    Returns:
        The warnings for images that could not be read.
    """
    if config.cache_dir is None:
        raise ValueError("warming the cache needs a cache_dir")
    unique = [{"path": str(p)} for p in dict.fromkeys(paths)]
    warnings: list[str] = []
    if not unique:
        return warnings
    with _ray_session(address) as ray:
        ds = _actor_map(ray, unique, PageWarmer, config, 4, actors)
        done = 0
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            warnings.extend(str(w) for w in batch["warning"] if w)
            done += len(batch["path"])
            if progress:
                progress(done, len(unique))
    return warnings
