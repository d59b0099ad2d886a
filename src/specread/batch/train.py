"""Training runner: labelled images -> OCR pass (parallel, cached, resumable) -> a model folder.

What ``specread train`` runs. It sits with the runners because it drives the
OCR reader over a labelled CSV the way ``predict`` drives it over an input CSV;
the fitting itself is :func:`specread.rank.train.fit_ranker`, and the folder
(ranker, priors, manifest) is :mod:`specread.rank.model`'s.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from specread.batch.ray_runner import warm_cache_ray
from specread.batch.warm import warm_cache
from specread.errors import ImageLoadError
from specread.extract.priors import Priors, image_links
from specread.io.dataset import read_labels
from specread.metrics import normalize_answer, score_rows
from specread.pipeline import build_pages
from specread.rank.calibrate import Calibration
from specread.rank.model import Model, check_model, file_sha256, labels_fingerprint, ocr_card, save_model
from specread.rank.ranker import CandidateRanker
from specread.rank.select import Selector
from specread.rank.shards import grouped_split, write_shards
from specread.rank.train import capacity_params, fit_ranker, grouped_folds, load_labelled_rows
from specread.settings import OcrSettings, ReaderConfig
from specread.types import LabelledRow, OcrPage, Prediction

__all__ = [
    "ADAPT_ROUNDS",
    "EARLY_STOPPING_ROUNDS",
    "holdout_metrics",
    "load_training_priors",
    "train_from_shards",
    "train_ranker",
]

EARLY_STOPPING_ROUNDS = 50
"""Streaming training stops when the held-out log-loss has not improved for this many rounds."""

ADAPT_ROUNDS = 100
"""New trees when adapting a base model. benchmarks/adapt.py on real-dev: 600 new trees (the
from-scratch default) over-fit 25-100 rows and lost 1-3 points of test-weighted F1; 100 roughly
held the base's figures (-1.6 to +0.8 points)."""

log = logging.getLogger("specread")


def load_training_priors(path: str | Path, exclude_links: frozenset[str] = frozenset()) -> tuple[Priors, dict]:
    """Priors from a ``priors.json`` (``specread priors``, a model folder's) or counted from a labels CSV.

    Returns:
        The priors, and what they were built from (the manifest's ``priors_from``).

    Raises:
        InputFormatError: a CSV that is not a labels CSV.
        ValueError: a JSON file that is not a priors table.
    """
    source = Path(path)
    if source.suffix.lower() == ".json":
        try:
            priors = Priors.from_dict(json.loads(source.read_text(encoding="utf-8")))
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ValueError(f"{source}: not a priors table written by `specread priors` ({exc})") from None
        return priors, {"file": source.name, "sha256": file_sha256(source), "rows": priors.n_rows}
    priors = Priors.build(source, exclude_links)
    record = {"labels": source.name, "sha256": file_sha256(source), "rows": priors.n_rows}
    return priors, record | ({"excluded_image_links": len(exclude_links)} if exclude_links else {})


def holdout_metrics(
    rows: Sequence[LabelledRow],
    priors_for: Callable[[set[str]], Priors],
    folds: int = 5,
    seed: int = 0,
    **fit_params: Any,
) -> tuple[dict[str, Any], Calibration | None]:
    """Grouped cross-validation of the ranker: the hold-out figures and the confidence calibration.

    Folds are :func:`~specread.rank.train.grouped_folds`: no image and no ``group_id`` on both
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
        return {"method": "none", "skipped": f"no hold-out asked (--holdout {folds})"}, None
    fold = grouped_folds(rows, folds, seed)
    held = [r for r, f in zip(rows, fold, strict=True) if f == 0]
    kept = [r for r, f in zip(rows, fold, strict=True) if f != 0]
    method = (
        f"grouped hold-out: 1 of {folds} folds ({len(held)} rows, no image or group_id shared with the "
        f"{len(kept)} rows fitted on); the saved ranker is refitted on all rows; the confidence "
        f"calibration is fitted on the out-of-fold answers of all {folds} folds"
    )
    if not held or not kept:
        return {"method": method, "skipped": "every row is linked to every other through images or group_ids"}, None
    answers: dict[int, Prediction] = {}
    for f in range(folds):
        test = [i for i, g in enumerate(fold) if g == f]
        train = [r for r, g in zip(rows, fold, strict=True) if g != f]
        if not test or not train:
            continue
        priors = priors_for({rows[i].key for i in test})
        try:
            ranker = fit_ranker(train, priors, seed=seed, **fit_params)
        except ValueError as exc:  # e.g. no candidate of the fitted side equals its label
            if f == 0:
                return {"method": method, "skipped": f"the other folds cannot be fitted: {exc}"}, None
            continue
        selector = Selector(ranker, priors)
        for i in test:
            r = rows[i]
            answers[i] = selector.select(r.page, [r.entity], r.group_id or None).predictions[r.entity]
    first = [i for i, g in enumerate(fold) if g == 0]
    gold = {str(i): rows[i].gold for i in first}
    entities = {str(i): rows[i].entity for i in first}
    report = score_rows({str(i): answers[i].text for i in first}, gold, entities).to_dict()
    read = [i for i, p in answers.items() if p.source == "ranker"]
    calibration = Calibration.fit(
        [rows[i].entity for i in read],
        [answers[i].confidence for i in read],
        [normalize_answer(answers[i].text) == normalize_answer(rows[i].gold) for i in read],
    )
    return {"method": method, **report}, calibration


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

    1. The images are read by ``workers`` OCR processes into the OCR cache (the slow part, in
       parallel). Pages are cached one by one as they are read, so a run killed here is started
       again with the same command and reads only the images not yet cached.
    2. The training rows take their pages from the cache; an image that cannot be read drops its
       rows with a warning.
    3. Priors: counted from ``labels_csv`` itself, unless ``priors`` names a ``priors.json`` or
       another labels CSV (counted without the images of the ``priors_exclude`` CSVs).
    4. Validation (:func:`holdout_metrics`): grouped ``holdout``-fold cross-validation; one fold's
       figures go into the manifest, and every fold's out-of-fold answers calibrate the
       confidence (``calibration.json``; skipped with ``holdout`` 0).
    5. The ranker is fitted on all rows (:func:`~specread.rank.train.fit_ranker`) and the folder
       written (:func:`~specread.rank.model.save_model`): ranker, priors, and a manifest with the
       OCR settings, data fingerprints, parameters and the validation figures.

    The labels (and ``priors``) are checked and ``output`` made before any OCR, so a bad CSV or an
    unwritable path fails at once, not after hours of OCR. The OCR pass reads pages only
    (first pass, no model folder), whatever ``$SPECREAD_MODEL`` or the default second pass say.

    Args:
        labels_csv: ``image_link,group_id,entity_name,entity_value[,image_file]``.
        images_dir: the images, named by the file name of ``image_file`` or ``image_link``.
        output: the model folder to write (created; a model already there is replaced).
        ocr: how pages are read (default: the first preset, ``fast``); predicting with the model
            needs the same page settings (:data:`specread.rank.model.PAGE_SETTINGS`).
        priors: a ``priors.json`` or labels CSV for the priors (default: ``labels_csv``).
        priors_exclude: CSVs whose ``image_link`` rows a ``priors`` labels CSV is counted without
            (evaluation sets that are also in the training labels).
        holdout: hold out 1/``holdout`` of the rows to measure the model (0: no validation).
        cache_dir: the OCR cache; ``"default"`` is ``$SPECREAD_CACHE`` or the user cache folder
            (None is refused: the pages pass through the cache).
        workers: OCR processes.
        seed: the ranker's and the folds' seed (training is deterministic for a seed).
        progress: called with ``(images read, images)`` during OCR.
        base: a model to start from (``specread train --base``): its trees stay and ``rounds``
            new ones adapt them to these labels; its priors serve unless ``priors`` is given.
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
    given = load_training_priors(priors, image_links(priors_exclude)) if priors else None
    if given is None and base is not None:
        given = (base.priors, {"model": str(base.path), "rows": base.priors.n_rows})
    params: dict[str, Any] = {"base": base.ranker if base is not None else None}
    if base is None:
        params |= capacity_params(len({label.image for label in labels}), capacity)
    if rounds is not None or base is not None:
        params["n_estimators"] = rounds if rounds is not None else ADAPT_ROUNDS
    Path(output).mkdir(parents=True, exist_ok=True)
    config = ReaderConfig(ocr=ocr, cache_dir=cache_dir, retry_side=0)  # the pages a model learns from
    paths = [images / label.image for label in labels]
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

    if streaming:
        table, priors_from = given or load_training_priors(labels_csv)
        card = {"ocr": ocr_card(ocr), "priors_from": priors_from}
        if base is not None:
            card["base"] = {"path": str(base.path), "digest": base.digest}
        return train_from_shards(labels_csv, images, page, table, output, card, holdout, seed, workers, **params)
    rows = load_labelled_rows(labels_csv, images, page)
    if not rows:
        raise ValueError(f"no labelled row of {labels_csv} has a readable image in {images}: nothing to learn from")
    links: dict[str, set[str]] = {}
    for label in labels:
        links.setdefault(label.image, set()).add(label.image_link)

    def priors_for(held: set[str]) -> Priors:
        if given:
            return given[0]
        return load_training_priors(labels_csv, frozenset(link for key in held for link in links[key]))[0]

    metrics, calibration = holdout_metrics(rows, priors_for, holdout, seed, **params)
    metrics["priors"] = "as given (--priors)" if given else "counted from the labels, without the held-out images"
    table, priors_from = given or load_training_priors(labels_csv)
    card = {
        "ocr": ocr_card(ocr),
        "data": {**labels_fingerprint(labels_csv), "rows_used": len(rows)},
        "metrics": metrics,
        "priors_from": priors_from,
        **({"base": {"path": str(base.path), "digest": base.digest}} if base is not None else {}),
    }
    model = save_model(output, fit_ranker(rows, table, seed=seed, **params), table, card, calibration)
    return model, len(rows)


def train_from_shards(
    labels_csv: str | Path,
    images: Path,
    page: Callable[[Path], OcrPage | None],
    priors: Priors,
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
    (``benchmarks/train_scale.py``: 263k rows, 1.05M candidates in 510 MB). Validation holds
    out a grouped 1/``holdout`` of the rows (no image or ``group_id`` on both sides), stops
    early on it and reports it per entity; the saved ranker is then fitted on all rows. The
    priors are counted from every row, the held-out ones included, so the held-out figures are
    slightly optimistic on small sets (pass ``--priors`` from other labels to avoid it).
    """
    base = params.pop("base", None)

    def rows() -> Iterator[LabelledRow]:
        for label in read_labels(labels_csv):
            picture = page(images / label.image)
            if picture is not None:
                yield LabelledRow(label.image, picture, label.entity_name, label.group_id, label.entity_value)

    shard_dir = Path(output) / "shards"
    shards = write_shards(rows(), priors, shard_dir, workers=workers)
    if not shards.n_rows:
        raise ValueError(f"no labelled row of {labels_csv} has a readable image in {images}: nothing to learn from")
    metrics: dict[str, Any] = {"method": "none", "skipped": f"no hold-out asked (--holdout {holdout})"}
    if holdout >= 2:
        split = grouped_split(shards, 1 / holdout, seed)
        checked = CandidateRanker(seed=seed, **params).fit_shards(
            shards, valid=split, early_stopping_rounds=EARLY_STOPPING_ROUNDS, base=base
        )
        report = checked.report_
        metrics = {
            "method": f"grouped hold-out of 1/{holdout} of the rows (no image or group_id on both sides), early "
            f"stopping after {EARLY_STOPPING_ROUNDS} rounds without gain; the saved ranker is refitted on all rows",
            **report.get("valid", {}),
            **{k: report[k] for k in ("rounds", "best_round", "valid_logloss") if k in report},
            "priors": "counted from all rows, the held-out ones included",
        }
    ranker = CandidateRanker(seed=seed, **params).fit_shards(shards, base=base)
    card = {
        **card,
        "data": {**labels_fingerprint(labels_csv), "rows_used": shards.n_rows, "candidates": shards.n_candidates},
        "metrics": metrics,
    }
    model = save_model(output, ranker, priors, card)
    shutil.rmtree(shard_dir, ignore_errors=True)
    return model, shards.n_rows
