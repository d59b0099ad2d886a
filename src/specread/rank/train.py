"""Training data, grouped cross-validation and fitting for the candidate ranker.

Labelled rows are ``(OCR page, entity, group_id, gold answer)``. Every
candidate of a row is one training example, positive when it equals the gold
answer (numbers compared as numbers). Folds are grouped so that no image and
no product ``group_id`` lands in both the training and the test side: rows
are linked through shared images and groups, and each connected component
goes to one fold.

Everything here holds the examples in memory (fine for thousands of labelled
rows); for the full train set stream them to shards instead
(:func:`specread.rank.shards.write_shards`, :meth:`CandidateRanker.fit_shards`).
``fit_ranker(..., base=model)`` adapts an existing ranker to new labels.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from specread.extract.candidates import find_mentions
from specread.extract.features import CAPACITY_FEATURES
from specread.extract.priors import Priors
from specread.rank.ranker import CandidateRanker
from specread.rank.select import Scorer, Selector
from specread.rank.shards import linked_components, row_examples
from specread.types import LabelledRow, OcrPage

__all__ = [
    "CAPACITIES",
    "CAPACITY_MIN_IMAGES",
    "LabelledRow",
    "build_examples",
    "capacity_params",
    "fit_ranker",
    "grouped_folds",
    "load_labelled_rows",
]

CAPACITY_MIN_IMAGES = 5_000
"""Training images from which the ranker learns the capacity features with larger trees.

``benchmarks/learning_curve.py`` on real-dev (grouped CV, 85 to 853 training images): the
capacity features with 15-leaf trees score like today's settings at 853 images (test-weighted
F1 0.764 against 0.770, sd ~0.006) but gain more per doubling (+1.28 points against +1.06);
the fitted curves cross near 2,400 images. Twice that, so a small set keeps the settings it
was measured with; the crossing is an extrapolation, weak evidence (see docs/benchmarks.md).
"""

LARGE_SET_PARAMS: dict[str, object] = {"num_leaves": 15, "min_child_samples": 40}
"""Tree settings for a training set of :data:`CAPACITY_MIN_IMAGES` images or more."""


CAPACITIES = ("auto", "small", "large")
"""``specread train --capacity``: by the number of training images, or either size forced."""


def capacity_params(n_images: int, capacity: str = "auto") -> dict[str, object]:
    """The ranker settings a training set of ``n_images`` labelled images supports.

    Below :data:`CAPACITY_MIN_IMAGES` the capacity features
    (:data:`~specread.extract.features.CAPACITY_FEATURES`) are ignored and the trees stay
    small (7 leaves); from it they are learned, with :data:`LARGE_SET_PARAMS`.
    ``capacity`` ``"small"`` or ``"large"`` forces one of the two whatever the size.

    Raises:
        ValueError: an unknown ``capacity``.
    """
    if capacity not in CAPACITIES:
        raise ValueError(f"unknown capacity {capacity!r}; choose one of: {', '.join(CAPACITIES)}")
    if capacity == "small" or (capacity == "auto" and n_images < CAPACITY_MIN_IMAGES):
        return {"ignore_features": CAPACITY_FEATURES}
    return {"ignore_features": (), **LARGE_SET_PARAMS}


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
        X, hits = row_examples(row, mentions, priors)
        if not len(hits):
            continue
        xs.append(X)
        ys.append(hits.astype(np.float32))
        qs.append(np.full(len(hits), qid, dtype=np.int64))
    if not xs:
        return np.zeros((0, 0), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
    return np.vstack(xs), np.concatenate(ys), np.concatenate(qs)


def grouped_folds(rows: Sequence[LabelledRow], k: int = 5, seed: int = 0) -> list[int]:
    """Fold number per row; rows sharing an image or a group_id always share a fold."""
    comps = linked_components([(r.key, r.group_id) for r in rows])
    order = sorted(comps, key=len, reverse=True)
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


def fit_ranker(
    rows: Sequence[LabelledRow],
    priors: Priors,
    seed: int = 0,
    base: CandidateRanker | None = None,
    **params: object,
) -> CandidateRanker:
    """Fit a :class:`CandidateRanker` on labelled rows (deterministic for a given seed).

    With ``base`` (a fitted ranker, e.g. the packaged one) the new model continues
    from it: its trees stay and ``n_estimators`` new ones adapt them to ``rows``
    (a few hundred of a user's own labels are enough to move it). The base's
    ``rule_weight`` and ``ignore_features`` are kept; the other hyperparameters
    are this call's. Without a base, the settings not given in ``params`` are those the
    number of training images supports (:func:`capacity_params`).
    """
    X, y, q = build_examples(rows, priors)
    if base is not None:
        params = {"rule_weight": base.rule_weight, "ignore_features": base.ignore_features, **params}
    else:
        params = {**capacity_params(len({r.key for r in rows})), **params}
    return CandidateRanker(seed=seed, **params).fit(X, y, q, base=base)  # type: ignore[arg-type]


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
