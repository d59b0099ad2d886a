"""Training runner: labelled images -> OCR pass (parallel, cached, resumable) -> a model folder.

What ``specread train`` runs. It sits with the runners because it drives the
OCR reader over a labelled CSV the way ``predict`` drives it over an input CSV;
the fitting itself is :func:`specread.rank.train.fit_ranker`, and the folder
(ranker, priors, manifest) is :mod:`specread.rank.model`'s. :func:`train_ranker`'s steps:

1. The images are read by ``workers`` OCR processes into the OCR cache (the slow part, in
   parallel). Pages are cached one by one as they are read, so a run killed here is started
   again with the same command and reads only the images not yet cached.
2. The training rows take their pages from the cache; an image that cannot be read drops its
   rows with a warning.
3. Priors (:func:`training_priors`): the labels of ``labels_csv`` added to the packaged priors
   (a ``base``'s priors with ``base``), or alone (``priors="none"``), or the ``priors.json`` or
   labels CSV ``priors`` names (counted without the images of the ``priors_exclude`` CSVs).
4. Validation (:func:`holdout_metrics`): grouped ``holdout``-fold cross-validation; one fold's
   figures go into the manifest, and every fold's out-of-fold answers calibrate the
   confidence (``calibration.json``; skipped with ``holdout`` 0). The streaming fit holds out
   the same fold with the same priors rule (:func:`train_from_shards`).
5. The ranker is fitted on all rows (:func:`~specread.rank.train.fit_ranker`) and the folder
   written (:func:`~specread.rank.model.save_model`): ranker, priors, and a manifest with the
   OCR settings, data fingerprints, parameters and the validation figures.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from specread.batch.priors import TrainingPriors, training_priors
from specread.batch.ray_runner import warm_cache_ray
from specread.batch.warm import warm_cache
from specread.errors import ImageLoadError
from specread.extract.priors import Priors
from specread.io.dataset import read_labels
from specread.metrics import normalize_answer
from specread.pipeline import build_pages
from specread.rank.calibrate import Calibration
from specread.rank.model import Model, check_model, labels_fingerprint, ocr_card, save_model
from specread.rank.ranker import CandidateRanker
from specread.rank.select import Selector
from specread.rank.shards import ShardSet, write_shards
from specread.rank.split import GroupedKFold, row_groups
from specread.rank.stream import ShardSplit, fit_shards
from specread.rank.train import capacity_params, fit_ranker, load_labelled_rows, read_rows, score_answers
from specread.settings import OcrSettings, ReaderConfig
from specread.types import LabelledRow, OcrPage, Prediction

__all__ = [
    "ADAPT_ROUNDS",
    "holdout_metrics",
    "train_from_shards",
    "train_ranker",
]

ADAPT_ROUNDS = 100
"""New trees when adapting a base model. benchmarks/adapt.py on real-dev: 600 new trees (the
from-scratch default) over-fit 25-100 rows and lost 1-3 points of test-weighted F1; 100 roughly
held the base's figures (-1.6 to +0.8 points)."""

log = logging.getLogger("specread")


def _calibration(answered: Sequence[tuple[LabelledRow, Prediction]]) -> Calibration:
    """Confidence -> accuracy per entity, from held-out answers the ranker gave (not fallbacks)."""
    read = [(row, answer) for row, answer in answered if answer.source == "ranker"]
    return Calibration.fit(
        [row.entity for row, _ in read],
        [answer.confidence for _, answer in read],
        [normalize_answer(answer.text) == normalize_answer(row.gold) for row, answer in read],
    )


def holdout_metrics(
    rows: Sequence[LabelledRow],
    priors_for: Callable[[set[str]], Priors],
    folds: int = 5,
    seed: int = 0,
    **fit_params: Any,
) -> tuple[dict[str, Any], Calibration | None]:
    """Grouped cross-validation of the ranker: the hold-out figures and the confidence calibration.

    Folds are :class:`~specread.rank.split.GroupedKFold`'s: no image and no ``group_id`` on both
    sides. For each fold the ranker is fitted on the others and the fold's rows are read as a
    reader would (the whole-image selector). ``priors_for(held-out image keys)`` gives the priors
    to fit and select with, so priors counted from the same labels can leave the held-out images
    out. The figures are fold 0's; the calibration (:class:`~specread.rank.calibrate.Calibration`)
    is fitted on every fold's out-of-fold answers, so it maps confidence to accuracy on images
    the ranker had not seen.

    Returns:
        ``method`` and the held-out report (:meth:`specread.metrics.Report.to_dict`: F1,
        test-weighted F1, per entity), or ``method`` and why it was ``skipped``; and the
        calibration (None when skipped).
    """
    if folds < 2:
        return _no_holdout(folds), None
    splits = list(GroupedKFold(folds, seed).split(groups=row_groups(rows)))
    kept, held = splits[0]
    method = (
        f"grouped hold-out: 1 of {folds} folds ({len(held)} rows, no image or group_id shared with the "
        f"{len(kept)} rows fitted on); the saved ranker is refitted on all rows; the confidence "
        f"calibration is fitted on the out-of-fold answers of all {folds} folds"
    )
    if not len(held) or not len(kept):
        return {"method": method, "skipped": _ALL_LINKED}, None
    answers: dict[int, Prediction] = {}
    for f, (train, test) in enumerate(splits):
        if not len(test) or not len(train):
            continue
        priors = priors_for({rows[i].key for i in test})
        try:
            ranker = fit_ranker([rows[i] for i in train], priors, seed=seed, **fit_params)
        except ValueError as exc:  # e.g. no candidate of the fitted side equals its label
            if f == 0:
                return {"method": method, "skipped": f"the other folds cannot be fitted: {exc}"}, None
            continue
        for i, (row, read) in zip(test, read_rows(Selector(ranker, priors), [rows[i] for i in test]), strict=True):
            answers[int(i)] = read[row.entity]
    report = score_answers((rows[i], answers[i]) for i in held).to_dict()
    return {"method": method, **report}, _calibration([(rows[i], a) for i, a in answers.items()])


def _no_holdout(folds: int) -> dict[str, Any]:
    return {"method": "none", "skipped": f"no hold-out asked (--holdout {folds})"}


_ALL_LINKED = "every row is linked to every other through images or group_ids"


def train_ranker(
    labels_csv: str | Path,
    images_dir: str | Path,
    output: str | Path,
    *,
    ocr: OcrSettings | None = None,
    priors: str | Path | None = None,
    priors_exclude: Sequence[str | Path] = (),
    holdout: int = 5,
    cache_dir: str | None = "default",
    workers: int = 1,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    base: Model | None = None,
    rounds: int | None = None,
    capacity: str = "auto",
    streaming: bool = False,
    runner: str = "local",
    address: str | None = None,
) -> tuple[Model, int]:
    """Train a model folder on labelled images: what ``specread train`` runs.

    The steps are the module's (:mod:`specread.batch.train`).

    The labels (and ``priors``) are checked and ``output`` made before any OCR, so a bad CSV or an
    unwritable path fails at once, not after hours of OCR. The OCR pass reads pages only
    (first pass, no model folder), whatever ``$SPECREAD_MODEL`` or the default second pass say.

    Args:
        labels_csv: ``image_link,group_id,entity_name,entity_value[,image_file]``.
        images_dir: the images, named by the file name of ``image_file`` or ``image_link``.
        output: the model folder to write (created; a model already there is replaced).
        ocr: how pages are read (default: the first preset, ``fast``); predicting with the model
            needs the same page settings (:data:`specread.rank.model.PAGE_SETTINGS`).
        priors: a ``priors.json`` or labels CSV for the priors, or ``"none"`` for the labels' own
            counts alone (default: the labels' counts added to the packaged or ``base`` priors).
        priors_exclude: CSVs whose ``image_link`` rows a ``priors`` labels CSV is counted without
            (evaluation sets that are also in the training labels).
        holdout: hold out 1/``holdout`` of the rows to measure the model (0: no validation).
        cache_dir: the OCR cache; ``"default"`` is ``$SPECREAD_CACHE`` or the user cache folder
            (None is refused: the pages pass through the cache).
        workers, progress: OCR processes; called with ``(images read, images)`` during OCR.
        seed: the ranker's and the folds' seed (training is deterministic for a seed).
        base: a model to start from (``specread train --base``): its trees stay and ``rounds``
            new ones adapt them to these labels; the labels add to its priors unless ``priors`` is given.
            It must read pages like ``ocr`` (:func:`~specread.rank.model.check_model`).
        rounds: boosting rounds to fit (default: the ranker's 600 from scratch,
            :data:`ADAPT_ROUNDS` from a base).
        capacity: the ranker's size from scratch (:func:`~specread.rank.train.capacity_params`):
            ``"auto"`` by the number of labelled images, or ``"small"`` / ``"large"``. A base
            keeps its own.
        streaming: never hold the pages or the features of all rows: rows are read from the OCR
            cache one at a time into feature shards on disk (``OUTPUT/shards``, resumable,
            removed at the end) and LightGBM is fitted shard by shard (:func:`train_from_shards`).
            For label sets of tens of thousands of rows and more.
        runner: ``"local"`` (``workers`` processes) or ``"ray"`` for the OCR pass (a Ray cluster
            at ``address``; the images and the OCR cache must be on storage every node mounts).

    Returns:
        The model written, and how many labelled rows it learned from.

    Raises:
        InputFormatError: the labels CSV is missing, lacks a column or is not a UTF-8 CSV.
        ValueError: no ``cache_dir``, a ``priors`` file that is not a priors table, no row to learn from.
        OSError: ``output`` cannot be made or written.
    """
    images = Path(images_dir)
    labels = read_labels(labels_csv)
    ocr = ocr or OcrSettings()
    if base is not None:
        check_model(base, ocr)
    rule = training_priors(labels_csv, priors, priors_exclude, base)
    params = _fit_params(len({label.image for label in labels}), base, capacity, rounds)
    Path(output).mkdir(parents=True, exist_ok=True)
    config = ReaderConfig(ocr=ocr, cache_dir=cache_dir, retry_side=0)  # the pages a model learns from
    page = _ocr_pass([images / label.image for label in labels], config, workers, runner, address, progress)
    card: dict[str, Any] = {"ocr": ocr_card(ocr)} | _base_card(base)
    if streaming:
        return train_from_shards(labels_csv, images, page, rule, output, card, holdout, seed, workers, **params)
    return _train_in_memory(labels_csv, images, page, rule, output, card, holdout, seed, **params)


def _train_in_memory(
    labels_csv: str | Path,
    images: Path,
    page: Callable[[Path], OcrPage | None],
    priors: TrainingPriors,
    output: str | Path,
    card: dict[str, Any],
    holdout: int,
    seed: int,
    **params: Any,
) -> tuple[Model, int]:
    """The in-memory half of :func:`train_ranker`: every row's page held, cross-validated, fitted."""
    rows = load_labelled_rows(labels_csv, images, page)
    if not rows:
        raise ValueError(f"no labelled row of {labels_csv} has a readable image in {images}: nothing to learn from")
    metrics, calibration = holdout_metrics(rows, priors.for_holdout, holdout, seed, **params)
    metrics["priors"] = priors.describe()
    table, priors_from = priors.full()
    card = {
        "ocr": card["ocr"],
        "data": {**labels_fingerprint(labels_csv), "rows_used": len(rows)},
        "metrics": metrics,
        "priors_from": priors_from,
        **{k: v for k, v in card.items() if k == "base"},
    }
    model = save_model(output, fit_ranker(rows, table, seed=seed, **params), table, card, calibration)
    return model, len(rows)


def _base_card(base: Model | None) -> dict[str, Any]:
    """The manifest's ``base`` entry: which model the trees were continued from."""
    return {} if base is None else {"base": {"path": str(base.path), "digest": base.digest}}


def _fit_params(n_images: int, base: Model | None, capacity: str, rounds: int | None) -> dict[str, Any]:
    """The ranker's settings: by the training images from scratch; a base's own, with new rounds."""
    params: dict[str, Any] = {"base": base.ranker if base is not None else None}
    if base is None:
        params |= capacity_params(n_images, capacity)
    if rounds is not None or base is not None:
        params["n_estimators"] = rounds if rounds is not None else ADAPT_ROUNDS
    return params


def _ocr_pass(
    paths: Sequence[Path],
    config: ReaderConfig,
    workers: int,
    runner: str,
    address: str | None,
    progress: Callable[[int, int], None] | None,
) -> Callable[[Path], OcrPage | None]:
    """Read every image into the OCR cache (in parallel), then give each page from it (None: unreadable)."""
    if runner == "ray":
        warm_cache_ray(paths, config, address, progress=progress)
    elif runner == "local":
        warm_cache(paths, config, workers, progress=progress)
    else:
        raise ValueError(f"unknown runner {runner!r}; choose one of: local, ray")
    pages = build_pages(config)[0]

    def page(path: Path) -> OcrPage | None:
        try:
            return pages(path)
        except ImageLoadError as exc:
            log.warning("%s (row skipped)", exc)
            return None

    return page


def train_from_shards(
    labels_csv: str | Path,
    images: Path,
    page: Callable[[Path], OcrPage | None],
    priors: TrainingPriors,
    output: str | Path,
    card: dict[str, Any],
    holdout: int = 5,
    seed: int = 0,
    workers: int = 1,
    **params: Any,
) -> tuple[Model, int]:
    """The streaming half of :func:`train_ranker`: labels and cached pages -> shards -> a model folder.

    Memory stays flat in the number of rows: each row's page is read from the OCR cache when
    its features are computed and dropped after, and LightGBM reads the shards one at a time
    (``benchmarks/train_scale.py``: 263k rows, 1.05M candidates in 510 MB). Validation follows
    the in-memory rules: the first fold of the same grouped split is held out, the ranker is
    fitted on the others with priors counted without the held-out images (their features
    written again to ``OUTPUT/shards/holdout`` when the priors count the labels), and the
    held-out rows are read by a reader and scored (:func:`~specread.rank.train.evaluate`'s
    figures); their answers calibrate the confidence. The saved ranker is fitted on all rows.
    """
    base = params.pop("base", None)

    def rows() -> Iterator[LabelledRow]:
        for label in read_labels(labels_csv):
            picture = page(images / label.image)
            if picture is not None:
                yield LabelledRow(label.image, picture, label.entity_name, label.group_id, label.entity_value)

    table, priors_from = priors.full()
    shard_dir = Path(output) / "shards"
    shards = write_shards(rows(), table, shard_dir, workers=workers)
    if not shards.n_rows:
        raise ValueError(f"no labelled row of {labels_csv} has a readable image in {images}: nothing to learn from")
    metrics, calibration = _streamed_holdout(rows, shards, priors, holdout, seed, workers, base, params)
    ranker, _ = fit_shards(CandidateRanker(seed=seed, **params), shards, base=base)
    card = {
        "ocr": card["ocr"],
        "data": {**labels_fingerprint(labels_csv), "rows_used": shards.n_rows, "candidates": shards.n_candidates},
        "metrics": {**metrics, "priors": priors.describe()},
        "priors_from": priors_from,
        **{k: v for k, v in card.items() if k == "base"},
    }
    model = save_model(output, ranker, table, card, calibration)
    shutil.rmtree(shard_dir, ignore_errors=True)
    return model, shards.n_rows


def _streamed_holdout(
    rows: Callable[[], Iterator[LabelledRow]],
    shards: ShardSet,
    priors: TrainingPriors,
    holdout: int,
    seed: int,
    workers: int,
    base: CandidateRanker | None,
    params: dict[str, Any],
) -> tuple[dict[str, Any], Calibration | None]:
    """:func:`holdout_metrics`' figures of the first fold, fitted from shards and read row by row."""
    if holdout < 2:
        return _no_holdout(holdout), None
    split = ShardSplit.holdout(shards, holdout, seed)
    valid = set(split.valid_rows.tolist())
    method = (
        f"grouped hold-out: 1 of {holdout} folds ({len(valid)} rows, no image or group_id shared with the "
        f"{shards.n_rows - len(valid)} rows fitted on); the saved ranker is refitted on all rows; the "
        "confidence calibration is fitted on the held-out answers"
    )
    if not valid or len(valid) == shards.n_rows:
        return {"method": method, "skipped": _ALL_LINKED}, None
    held = {key for shard in shards.rows() for key, i in zip(shard.row_key, shard.row_id, strict=True) if i in valid}
    fold_priors = priors.for_holdout(held)
    fold_shards = shards  # priors as given: the features of every row are the fold's already
    if priors.given is None:
        fold_shards = write_shards(rows(), fold_priors, Path(shards.directory) / "holdout", workers=workers)
    try:
        ranker, _ = fit_shards(CandidateRanker(seed=seed, **params), fold_shards, split, base=base)
    except ValueError as exc:
        return {"method": method, "skipped": f"the other folds cannot be fitted: {exc}"}, None
    held_rows = (row for i, row in enumerate(rows()) if i in valid)
    answered = [
        (replace(row, page=None), read[row.entity])  # the page is not kept: memory stays flat
        for row, read in read_rows(Selector(ranker, fold_priors), held_rows)
    ]
    return {"method": method, **score_answers(answered).to_dict()}, _calibration(answered)
