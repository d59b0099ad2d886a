"""Training data, grouped cross-validation and fitting for the candidate ranker.

Labelled rows are ``(OCR page, entity, group_id, gold answer)``. Every
candidate of a row is one training example, positive when it equals the gold
answer (numbers compared as numbers). Folds are grouped so that no image and
no product ``group_id`` lands in both the training and the test side: rows
are linked through shared images and groups, and each connected component
goes to one fold.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from specread.answer import Answer
from specread.extract.candidates import find_mentions
from specread.extract.features import page_candidates, to_matrix
from specread.metrics import normalize_answer
from specread.rank.priors import Priors
from specread.rank.ranker import CandidateRanker
from specread.rank.select import Scorer, Selector
from specread.types import OcrPage

__all__ = ["LabelledRow", "build_examples", "fit_ranker", "grouped_folds", "load_labelled_rows"]


@dataclass(frozen=True)
class LabelledRow:
    """One labelled (image, entity) with the OCR page already read."""

    key: str  # image identity (file name or digest)
    page: OcrPage
    entity: str
    group_id: str
    gold: str


def load_labelled_rows(
    labels_csv: str | Path,
    images_dir: str | Path,
    ocr: Callable[[Path], OcrPage | None],
    progress: Callable[[int, int], None] | None = None,
) -> list[LabelledRow]:
    """Read a labels CSV (``image_link,group_id,entity_name,entity_value[,image_file]``) and OCR its images.

    ``ocr`` returns None for an unreadable image; such rows are skipped.

    Raises:
        InputFormatError: missing columns, or a file that is not a UTF-8 CSV.
    """
    from specread.io.dataset import read_labels

    labels = read_labels(labels_csv)
    pages: dict[str, OcrPage | None] = {}
    out: list[LabelledRow] = []
    for n, label in enumerate(labels):
        name = label.image
        if name not in pages:
            pages[name] = ocr(Path(images_dir) / name)
        page = pages[name]
        if page is not None:
            out.append(LabelledRow(name, page, label.entity_name, label.group_id, label.entity_value))
        if progress:
            progress(n + 1, len(labels))
    return out


def _matches(value: float, unit: str, gold: str) -> bool:
    return normalize_answer(Answer(value, unit).text) == normalize_answer(gold)


def build_examples(rows: Sequence[LabelledRow], priors: Priors) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Feature matrix, labels and row id (query) for every candidate of every row."""
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    qs: list[np.ndarray] = []
    mentions_cache: dict[str, list] = {}
    for qid, row in enumerate(rows):
        mentions = mentions_cache.get(row.key)
        if mentions is None:
            mentions = mentions_cache[row.key] = find_mentions(row.page)
        cands = page_candidates(row.page, mentions, row.entity, priors, row.group_id or None)
        if not cands:
            continue
        xs.append(to_matrix(cands))
        ys.append(np.array([_matches(c.quantity.value, c.quantity.unit, row.gold) for c in cands], dtype=np.float32))
        qs.append(np.full(len(cands), qid, dtype=np.int64))
    if not xs:
        return np.zeros((0, 0), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
    return np.vstack(xs), np.concatenate(ys), np.concatenate(qs)


def grouped_folds(rows: Sequence[LabelledRow], k: int = 5, seed: int = 0) -> list[int]:
    """Fold number per row; rows sharing an image or a group_id always share a fold."""
    parent = list(range(len(rows)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[tuple[str, str], int] = {}
    for i, r in enumerate(rows):
        for key in (("img", r.key), ("grp", r.group_id)):
            if key[1] == "":
                continue
            j = first.setdefault(key, i)
            parent[find(i)] = find(j)
    comps: dict[int, list[int]] = {}
    for i in range(len(rows)):
        comps.setdefault(find(i), []).append(i)
    order = sorted(comps.values(), key=len, reverse=True)
    random.Random(seed).shuffle(order)
    order.sort(key=len, reverse=True)  # stable: big components first, ties in seeded order
    sizes = [0] * k
    fold = [0] * len(rows)
    for members in order:
        f = min(range(k), key=lambda j: (sizes[j], j))
        sizes[f] += len(members)
        for i in members:
            fold[i] = f
    return fold


def fit_ranker(rows: Sequence[LabelledRow], priors: Priors, seed: int = 0, **params: object) -> CandidateRanker:
    """Fit a :class:`CandidateRanker` on labelled rows (deterministic for a given seed)."""
    X, y, q = build_examples(rows, priors)
    return CandidateRanker(seed=seed, **params).fit(X, y, q)  # type: ignore[arg-type]


def cross_validate(
    rows: Sequence[LabelledRow],
    priors: Priors,
    make_scorer: Callable[[Sequence[LabelledRow]], Scorer],
    k: int = 5,
    seed: int = 0,
    retry: Callable[[LabelledRow], OcrPage | None] | None = None,
) -> tuple[dict[str, str], dict[str, float]]:
    """Out-of-fold predictions for every row: ``make_scorer`` is fitted on the other folds.

    ``retry`` gives a row's finer second OCR page, read as :meth:`Selector.select` does
    when the first page has no candidate for the row's entity.

    Returns:
        ``(index -> prediction text, index -> confidence)`` keyed by row position.
    """
    folds = grouped_folds(rows, k, seed)
    preds: dict[str, str] = {}
    confs: dict[str, float] = {}
    for f in range(k):
        scorer = make_scorer([r for r, g in zip(rows, folds, strict=True) if g != f])
        selector = Selector(scorer, priors)
        for i, (row, g) in enumerate(zip(rows, folds, strict=True)):
            if g != f:
                continue
            again = (lambda row=row: retry(row)) if retry else None
            pred = selector.select(row.page, [row.entity], row.group_id or None, again).predictions[row.entity]
            preds[str(i)] = pred.text
            confs[str(i)] = pred.confidence
    return preds, confs


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
    import logging

    # These build readers, which import this package: imported here, not at the top.
    from specread.batch.local import warm_cache
    from specread.errors import ImageLoadError
    from specread.io.dataset import read_labels
    from specread.pipeline import build_ocr_reader
    from specread.rank.priors import load_priors
    from specread.settings import ReaderConfig

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
            logging.getLogger("specread").warning("%s (row skipped)", exc)
            return None

    rows = load_labelled_rows(labels_csv, images, ocr)
    model = fit_ranker(rows, load_priors(), seed=seed)
    model.save(output)
    return model, len(rows)
