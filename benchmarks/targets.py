"""Honest confidence figures under cross-validation: calibrated out of sample, and precision targets.

Shared by ``real_dev.py --cv`` and ``whole_image.py``. Out-of-fold answers carry the raw
confidence of rankers that never saw their rows; each fold's rows are then calibrated, and
their precision-target thresholds chosen, by a :class:`~specread.rank.calibrate.Calibration`
fitted on the *other* folds' answers (cross-fitting), as ``specread train`` fits the model
folder's on its own held-out answers. So a threshold is always judged on rows it was not chosen on.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from specread.metrics import normalize_answer
from specread.rank.calibrate import Calibration
from specread.types import LabelledRow, Prediction

__all__ = ["TARGETS", "cross_fitted", "precision_at_targets"]

TARGETS = (0.90, 0.95, 0.98)
"""The precision targets measured (``--min-precision``)."""

NOT_READ = ("prior", "")
"""Sources of answers no candidate supports: calibration and thresholds leave them out."""


def _right(rows: Sequence[LabelledRow], answers: Sequence[Prediction]) -> list[bool]:
    return [normalize_answer(a.text) == normalize_answer(r.gold) for r, a in zip(rows, answers, strict=True)]


def _fit(rows: Sequence[LabelledRow], answers: Sequence[Prediction], right: Sequence[bool], keep) -> Calibration:
    idx = [i for i in range(len(rows)) if keep(i) and answers[i].source not in NOT_READ]
    return Calibration.fit([rows[i].entity for i in idx], [answers[i].confidence for i in idx], [right[i] for i in idx])


def cross_fitted(
    rows: Sequence[LabelledRow], answers: Sequence[Prediction], folds: Sequence[int]
) -> tuple[list[float], dict[int, Calibration]]:
    """Each row's calibrated confidence (0 for an answer nothing read), and the calibration of each fold.

    ``answers[i]`` is row i's out-of-fold answer (raw confidence); fold f's calibration is fitted
    on the other folds' answers.
    """
    right = _right(rows, answers)
    calibrations = {f: _fit(rows, answers, right, lambda i, f=f: folds[i] != f) for f in sorted(set(folds))}
    out = [
        0.0 if a.source in NOT_READ else calibrations[f](r.entity, a.confidence)
        for r, a, f in zip(rows, answers, folds, strict=True)
    ]
    return out, calibrations


def precision_at_targets(
    rows: Sequence[LabelledRow],
    answers: Sequence[Prediction],
    folds: Sequence[int],
    targets: Sequence[float] = TARGETS,
) -> dict[str, dict]:
    """What ``--min-precision T`` answers, judged out of sample: per target, precision reached and coverage.

    A row is answered when its calibrated confidence reaches its entity's threshold for T (the
    threshold chosen on the other folds); an entity whose threshold is unmeetable is withheld.

    Returns:
        ``{str(T): {"all": {...}, entity: {"rows", "answered", "coverage", "precision", "withheld"}}}``.
    """
    right = _right(rows, answers)
    confs, calibrations = cross_fitted(rows, answers, folds)
    entities = sorted({r.entity for r in rows})
    out: dict[str, dict] = {}
    for target in targets:
        needs = {f: cal.thresholds(target, entities) for f, cal in calibrations.items()}
        answered = [
            a.source not in NOT_READ and c >= needs[f][r.entity]
            for r, a, c, f in zip(rows, answers, confs, folds, strict=True)
        ]
        per: dict[str, dict] = {}
        for name in ["all", *entities]:
            idx = [i for i, r in enumerate(rows) if name in ("all", r.entity)]
            done = [i for i in idx if answered[i]]
            withheld = name != "all" and all(np.isinf(needs[f][name]) for f in needs)
            per[name] = {
                "rows": len(idx),
                "answered": len(done),
                "coverage": round(len(done) / len(idx), 4) if idx else 0.0,
                "precision": round(float(np.mean([right[i] for i in done])), 4) if done else None,
                **({"withheld": True} if withheld else {}),
            }
        out[str(target)] = per
    return out
