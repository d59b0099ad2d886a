"""The baseline a new user writes in ten minutes: plain RapidOCR, its text joined, one regex.

Issue 22 asks the README's speed table to compare specread with this baseline *measured in the
same run* (``python -m benchmarks.throughput --engines local,plain``), so that the comparison is
paired on one machine and one sample. It is kept as an honest first attempt, nothing tuned:

* ``RapidOCR()`` with its default configuration (onnxruntime, its own thread count, detector side,
  angle classifier and score threshold); only its log level is lowered, so that an image without
  text is not a warning on stderr. No specread engine, settings, cache or ranker.
* the image's path handed to RapidOCR as is (it decodes the file itself);
* the recognised lines joined, and the first ``<number> <unit>`` whose unit the row's entity allows.

The unit words and the allowed units come from specread's own table (``units.toml`` through
:func:`specread.units.get_registry`), the numbers from :func:`specread.parse.parse_number` and the
answer's spelling from :func:`specread.units.format_prediction`: the baseline loses on reading and
choosing, not on a smaller unit table or a differently written answer.

A pool of worker processes, one RapidOCR each, built in the pool's initializer, one image per task,
like the specread runs of ``throughput.py``: process start and model load are in the wall time.

Usage (on its own; ``throughput.py`` times and scores it)::

    python -m benchmarks.plain_ocr INPUT_CSV IMAGES_DIR OUT_CSV --workers 2
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from functools import cache
from pathlib import Path
from typing import Any

from specread.errors import UnknownUnitError
from specread.io.dataset import image_name, iter_unique_images, read_rows
from specread.io.files import atomic_write
from specread.parse import parse_number
from specread.units import format_prediction, get_registry

__all__ = ["PRESET", "extract", "fingerprint", "quantity_regex", "run_plain"]

PRESET = "plain-rapidocr"
"""The name its row carries in ``throughput.py``'s JSON, in the place of a preset."""

PARAMS: dict[str, object] = {"Global.log_level": "error"}
"""Everything this baseline says to RapidOCR: the rest is RapidOCR's default configuration."""

_ENGINE: list[Any] = []
"""The worker's RapidOCR, built once by :func:`_start_worker` (a list: no ``global`` statement)."""


@cache
def quantity_regex() -> re.Pattern[str]:
    """``<number> <unit>``: digits with ``.``/``,`` separators, then any spelling in the unit table.

    The number must not continue one already begun (``2.5`` is not read as ``5``); the unit must end
    at a word edge (``5 mmHg`` is no millimetre). Spellings come from the registry's alternation,
    longest first, so ``500 mg`` is milligrams and not metres.
    """
    units = get_registry().alias_pattern
    return re.compile(rf"(?<![\d.,])(?P<number>\d+(?:[.,]\d+)*)\s*(?P<unit>{units})(?![A-Za-z])")


def extract(text: str, entity: str) -> str:
    """The first ``<number> <unit>`` in ``text`` whose unit ``entity`` allows, written as the challenge wants.

    A match whose unit the entity does not allow (``12 V`` for ``item_weight``), or whose number
    cannot be read (``1,500.000,5``), is skipped and the search goes on; ``""`` when none is left.
    """
    registry = get_registry()
    allowed = registry.allowed(entity)
    for match in quantity_regex().finditer(text):
        try:
            unit = registry.lookup(match["unit"]).name
            value = parse_number(match["number"])
        except (UnknownUnitError, ValueError):
            continue
        if unit in allowed:
            return format_prediction(value, unit)
    return ""


def fingerprint() -> str:
    """What produced the baseline's answers: the RapidOCR release and the configuration it was given."""
    from importlib.metadata import version

    return f"rapidocr-{version('rapidocr')} defaults {json.dumps(PARAMS, sort_keys=True)}"


def _rapidocr() -> Any:
    from rapidocr import RapidOCR

    return RapidOCR(params=dict(PARAMS))


def _start_worker(make_engine: Callable[[], Any]) -> None:
    """Pool initializer: the worker's one engine, loaded before its first image."""
    _ENGINE[:] = [make_engine()]


def _read_image(path: str, entities: tuple[str, ...]) -> tuple[str, ...] | None:
    """One task: OCR one image and answer each of its entities; None when RapidOCR could not read it.

    The extraction runs here, in the worker, so that all the baseline's work is the workers' CPU
    time, as for specread's runs.
    """
    try:
        result = _ENGINE[0](path)
    except Exception:  # a missing, empty or undecodable file: a first attempt skips the image
        return None
    text = "\n".join(result.txts or ())
    return tuple(extract(text, entity) for entity in entities)


def run_plain(
    input_csv: str | Path,
    images_dir: str | Path,
    out_csv: str | Path,
    workers: int,
    *,
    progress: Callable[[int, int], None] | None = None,
    make_engine: Callable[[], Any] = _rapidocr,
) -> dict:
    """Answer every row of ``input_csv`` with the baseline and write ``index,prediction`` to ``out_csv``.

    Args:
        input_csv: the challenge's input (``index,image_link,group_id,entity_name``).
        images_dir: where the images are, named as the official downloader names them.
        out_csv: the predictions (replaced whole, once all rows are answered).
        workers: worker processes, each with its own engine.
        progress: called with ``(images done, images)`` after each image.
        make_engine: builds a worker's engine (a picklable callable); RapidOCR's defaults unless a
            test gives a fake.

    Returns:
        ``{"images", "rows", "failed_images"}``; rows of a failed image are answered ``""``.
    """
    table = read_rows(input_csv)
    images = list(iter_unique_images(table))
    answers: dict[str, str] = {}
    failed = 0
    with ProcessPoolExecutor(max_workers=max(1, workers), initializer=_start_worker, initargs=(make_engine,)) as pool:
        tasks = {
            pool.submit(_read_image, str(Path(images_dir, image_name(link))), tuple(r.entity_name for r in rows)): rows
            for link, rows in images
        }
        for done, task in enumerate(as_completed(tasks), 1):
            group, predictions = tasks[task], task.result()
            failed += predictions is None
            for row, prediction in zip(group, predictions or [""] * len(group), strict=True):
                answers[row.index] = prediction
            if progress:
                progress(done, len(images))
    with atomic_write(out_csv, newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["index", "prediction"])
        writer.writerows((r.index, answers[r.index]) for r in table)
    return {"images": len(images), "rows": len(table), "failed_images": failed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input_csv", type=Path)
    parser.add_argument("images_dir", type=Path)
    parser.add_argument("out_csv", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    print(json.dumps(run_plain(args.input_csv, args.images_dir, args.out_csv, args.workers)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
