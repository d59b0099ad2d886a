"""Training data, grouped cross-validation and fitting for the candidate ranker.

Labelled rows are ``(OCR page, entity, group_id, gold answer)``. Every
candidate of a row is one training example, positive when it equals the gold
answer (numbers compared as numbers). Folds come from the one grouped splitter
(:class:`specread.rank.split.GroupedKFold`): no image and no product ``group_id``
lands in both the training and the test side. Whatever is measured, in training, in
cross-validation or in a benchmark, is :func:`evaluate`: the rows read as a reader
reads them, then scored.

Fitting here holds the examples in memory (fine for thousands of labelled
rows); for the full train set stream them to shards instead
(:func:`specread.rank.shards.write_shards`, :func:`specread.rank.stream.fit_shards`).
``fit_ranker(..., base=model)`` adapts an existing ranker to new labels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from specread.extract.candidates import find_mentions
from specread.extract.features import CAPACITY_FEATURES
from specread.extract.priors import Priors
from specread.metrics import Report, score_rows
from specread.rank.joint import family_of
from specread.rank.ranker import CandidateRanker
from specread.rank.select import DEFAULT_JOINT, Scorer, Selector
from specread.rank.shards import row_examples
from specread.rank.split import GroupedKFold, row_groups
from specread.settings import JointSettings
from specread.types import LabelledRow, OcrPage, Prediction

__all__ = [
    "CAPACITIES",
    "CAPACITY_MIN_IMAGES",
    "LabelledRow",
    "build_examples",
    "capacity_params",
    "cross_read",
    "cross_validate",
    "evaluate",
    "fit_ranker",
    "grouped_folds",
    "load_labelled_rows",
    "read_rows",
    "score_answers",
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


def build_examples(
    rows: Sequence[LabelledRow], priors: Priors, cross_roles: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Feature matrix, labels, query id and weight for every candidate of every row.

    A row's own query id is its position in ``rows``.

    With ``cross_roles`` > 0 a row also teaches its family's other roles
    (:func:`specread.rank.joint.family_of`): a depth labelled 210.82 cm says that 210.82 cm is
    probably not the width. Each other role gets a query of its candidates, all negative, where
    those equal to the label weigh ``cross_roles`` (how often two roles' labels differ) and the
    rest weigh 0 (unknown; they only set the query's rule margin).
    """
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    qs: list[np.ndarray] = []
    ws: list[np.ndarray] = []
    mentions_cache: dict[str, list] = {}
    extra = len(rows)  # the other roles' queries are numbered after the rows'
    for qid, row in enumerate(rows):
        mentions = mentions_cache.get(row.key)
        if mentions is None:
            mentions = mentions_cache[row.key] = find_mentions(row.page)
        X, hits = row_examples(row, mentions, priors)
        if not len(hits):
            continue
        queries = [(qid, X, hits.astype(np.float32), np.ones(len(hits), np.float32))]
        if cross_roles > 0 and hits.any():
            for other in family_of(row.entity):
                if other != row.entity:
                    Xo, same = row_examples(replace(row, entity=other), mentions, priors)
                    queries.append((extra, Xo, np.zeros(len(same), np.float32), same * np.float32(cross_roles)))
                    extra += 1
        for q, Xq, yq, wq in queries:
            xs.append(Xq)
            ys.append(yq)
            ws.append(wq.astype(np.float32))
            qs.append(np.full(len(yq), q, dtype=np.int64))
    if not xs:
        return np.zeros((0, 0), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64), np.zeros(0, np.float32)
    return np.vstack(xs), np.concatenate(ys), np.concatenate(qs), np.concatenate(ws)


def grouped_folds(rows: Sequence[LabelledRow], k: int = 5, seed: int = 0) -> list[int]:
    """Fold number per row (:meth:`GroupedKFold.folds`): rows sharing an image or a group_id share a fold."""
    return GroupedKFold(k, seed).folds(row_groups(rows))


def fit_ranker(
    rows: Sequence[LabelledRow],
    priors: Priors,
    seed: int = 0,
    base: CandidateRanker | None = None,
    cross_roles: float = 0.0,
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
    X, y, q, w = build_examples(rows, priors, cross_roles)
    if base is not None:
        params = {"rule_weight": base.rule_weight, "ignore_features": base.ignore_features, **params}
    else:
        params = {**capacity_params(len({r.key for r in rows})), **params}
    weight = None if cross_roles <= 0 else w
    return CandidateRanker(seed=seed, **params).fit(X, y, q, base=base, sample_weight=weight)  # type: ignore[arg-type]


def read_rows(
    selector: Selector,
    rows: Iterable[LabelledRow],
    retry: Callable[[LabelledRow], OcrPage | None] | None = None,
    ask: Callable[[LabelledRow], Sequence[str]] | None = None,
) -> Iterator[tuple[LabelledRow, dict[str, Prediction]]]:
    """Each row with its answers as a reader gives them: ``selector`` reads the row's page for ``ask(row)``.

    ``ask`` defaults to the row's own entity (the whole-image benchmark asks every dimension at
    once); ``retry`` gives a row's finer second OCR page, read when the first has no candidate.
    Rows are read one at a time, so a stream of rows keeps memory flat.
    """
    for row in rows:
        again = (lambda row=row: retry(row)) if retry else None
        entities = list(ask(row)) if ask else [row.entity]
        yield row, selector.select(row.page, entities, row.group_id or None, again).predictions


def score_answers(answered: Iterable[tuple[LabelledRow, Prediction]]) -> Report:
    """Each row's answer to its own entity scored against its gold answer, as the challenge scores it."""
    preds: dict[str, str] = {}
    gold: dict[str, str] = {}
    entities: dict[str, str] = {}
    for i, (row, answer) in enumerate(answered):
        preds[str(i)], gold[str(i)], entities[str(i)] = answer.text, row.gold, row.entity
    return score_rows(preds, gold, entities)


def evaluate(
    selector: Selector, rows: Iterable[LabelledRow], retry: Callable[[LabelledRow], OcrPage | None] | None = None
) -> Report:
    """The :class:`~specread.metrics.Report` of ``selector`` reading each row for its own entity.

    What training, cross-validation and the benchmarks all measure: answers as a reader gives
    them (:func:`read_rows`), fallbacks included, scored by :func:`score_answers`.
    """
    return score_answers((row, read[row.entity]) for row, read in read_rows(selector, rows, retry))


def cross_read(
    rows: Sequence[LabelledRow],
    priors: Priors,
    make_scorer: Callable[[Sequence[LabelledRow]], Scorer],
    k: int = 5,
    seed: int = 0,
    retry: Callable[[LabelledRow], OcrPage | None] | None = None,
    ask: Callable[[LabelledRow], Sequence[str]] | None = None,
    joint: JointSettings | None = DEFAULT_JOINT,
) -> list[dict[str, Prediction]]:
    """Out-of-fold answers for every row: ``make_scorer`` is fitted on the other grouped folds.

    Each row's image is asked for ``ask(row)`` and read as :func:`read_rows` reads it.

    Returns:
        Per row (in order), entity -> prediction for every asked entity.
    """
    out: list[dict[str, Prediction]] = [{} for _ in rows]
    for train, test in GroupedKFold(k, seed).split(groups=row_groups(rows)):
        selector = Selector(make_scorer([rows[i] for i in train]), priors, joint=joint)
        for i, (_, answers) in zip(test, read_rows(selector, [rows[i] for i in test], retry, ask), strict=True):
            out[i] = answers
    return out


def cross_validate(
    rows: Sequence[LabelledRow],
    priors: Priors,
    make_scorer: Callable[[Sequence[LabelledRow]], Scorer],
    k: int = 5,
    seed: int = 0,
    retry: Callable[[LabelledRow], OcrPage | None] | None = None,
) -> tuple[dict[str, str], dict[str, float]]:
    """Out-of-fold predictions for every row (:func:`cross_read`, each row asked for its own entity).

    Returns:
        ``(index -> prediction text, index -> confidence)`` keyed by row position.
    """
    answers = cross_read(rows, priors, make_scorer, k, seed, retry)
    preds = {str(i): a[r.entity].text for i, (r, a) in enumerate(zip(rows, answers, strict=True))}
    confs = {str(i): a[r.entity].confidence for i, (r, a) in enumerate(zip(rows, answers, strict=True))}
    return preds, confs
