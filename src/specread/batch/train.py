"""Training runner: labelled images -> OCR pass (parallel, cached) -> a fitted ranker on disk.

What ``specread train`` runs. It sits with the runners because it drives the
OCR reader over a labelled CSV the way ``predict`` drives it over an input CSV;
the fitting itself is :func:`specread.rank.train.fit_ranker`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from specread.batch.local import warm_cache
from specread.errors import ImageLoadError
from specread.extract.priors import load_priors
from specread.io.dataset import read_labels
from specread.pipeline import build_ocr_reader
from specread.rank.ranker import CandidateRanker
from specread.rank.train import fit_ranker, load_labelled_rows
from specread.settings import ReaderConfig
from specread.types import OcrPage

__all__ = ["train_ranker"]

log = logging.getLogger("specread")


def train_ranker(
    labels_csv: str | Path,
    images_dir: str | Path,
    output: str | Path,
    *,
    cache_dir: str | None = "default",
    workers: int = 1,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[CandidateRanker, int]:
    """Train the candidate ranker on labelled images and save it to ``output``: what ``specread train`` runs.

    The images are read by ``workers`` OCR processes into the OCR cache first (the slow part,
    in parallel), then the training rows take their pages from it; an image that cannot be
    read drops its rows with a warning. The labels are checked and ``output``'s folder made
    before any OCR, so a bad CSV or an unwritable path fails at once, not after hours of OCR.
    The OCR reader uses the rules scorer: training needs only its pages, and the ranker being
    trained may not exist yet.

    Args:
        labels_csv: ``image_link,group_id,entity_name,entity_value[,image_file]``.
        images_dir: the images, named by the file name of ``image_file`` or ``image_link``.
        output: where the model is written (its folder is created).
        cache_dir: the OCR cache; ``"default"`` is ``$SPECREAD_CACHE`` or the user cache folder
            (None is refused: the pages pass through the cache).
        workers: OCR processes.
        seed: the ranker's seed (training is deterministic for a seed).
        progress: called with ``(images read, images)`` during OCR.

    Returns:
        The fitted ranker, and how many labelled rows it learned from.

    Raises:
        InputFormatError: the labels CSV is missing, lacks a column or is not a UTF-8 CSV.
        ValueError: no ``cache_dir``.
        OSError: ``output``'s folder cannot be made or written.
    """
    images = Path(images_dir)
    labels = read_labels(labels_csv)
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    config = ReaderConfig(scorer="rules", cache_dir=cache_dir)
    warm_cache([images / label.image for label in labels], config, workers, progress=progress)
    reader = build_ocr_reader(config)

    def ocr(path: Path) -> OcrPage | None:
        try:
            return reader.ocr(path)
        except ImageLoadError as exc:
            log.warning("%s (row skipped)", exc)
            return None

    rows = load_labelled_rows(labels_csv, images, ocr)
    model = fit_ranker(rows, load_priors(), seed=seed)
    model.save(output)
    return model, len(rows)
