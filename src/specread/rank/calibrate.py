"""Confidence that means what it says: a raw score -> the share of such answers that were right.

A scorer's raw confidence (the ranker's margin over the next different
answer, times the whole-image assignment's probability mass for a dimension) ranks answers well but is not a
precision: the same 0.6 is right 90% of the time for a voltage and 60% for a
depth. :class:`Calibration` holds, per entity, a monotone map from raw
confidence to the accuracy measured on held-out rows (isotonic regression by
pool-adjacent-violators, on out-of-fold predictions of grouped CV), so a
threshold on calibrated confidence is a threshold on precision.

The same held-out answers give each entity's *precision curve*: for each
calibrated confidence t, the precision and coverage of the answers at t or
above. :meth:`Calibration.threshold` reads a precision target off it
(``specread predict --min-precision 0.95``): the lowest confidence whose
held-out answers were that precise, or None when no confidence was (the
entity is then withheld rather than answered under the target).

``specread train`` writes both into the model folder (``calibration.json``);
a reader whose model folder has none reports the raw confidence.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "MIN_ANSWERED",
    "MIN_ROWS",
    "SLACK",
    "Calibration",
    "Promise",
    "isotonic",
    "precision_curve",
    "wilson_lower",
]

MIN_ROWS = 50
"""Held-out rows an entity needs for a map of its own; an entity with fewer uses the pooled map.

An isotonic map fitted on a few dozen rows is a handful of steps, and entities calibrated by
different small maps no longer rank against each other by how sure the reader was (on real-dev's
~30 held-out rows per dimension, the top fifth of dimension answers fell from 75% to 60% right).
The pooled map keeps their raw order; each entity's precision curve is still its own."""

POOLED = "*"
"""The key of the map fitted on every entity's rows together."""

MIN_ANSWERED = 10
"""Held-out answers a threshold must keep: a precision measured on fewer is too noisy to promise."""

SLACK = 0.05
"""How far under its target a threshold's precision may be, at the lower bound of :data:`Z`.

Chosen on real-dev by grouped CV (4 fold splits, ``--min-precision`` 0.95): at 0.03 only item
weights were answered (coverage 38.2%, precision 0.947); at 0.05 wattage joins with a precision
of 0.942 on rows its threshold was not chosen on (coverage 39.2%, precision 0.947), and no
entity falls more than 3 points under the target at 0.90, 0.95 or 0.98."""

Z = 1.645
"""The one-sided 95% normal quantile of the Wilson lower bound a threshold's precision must clear."""


def wilson_lower(hits: float, n: float, z: float = Z) -> float:
    """The Wilson score lower bound of a proportion ``hits / n``: what ``n`` held-out rows can promise."""
    if n <= 0:
        return 0.0
    p = hits / n
    centre = p + z * z / (2 * n)
    margin = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - margin) / (1 + z * z / n)


TIE_BREAK = 0.01
"""Weight of the raw confidence in a calibrated one: isotonic regression pools long runs of answers into
one value (70% of real-dev's item weights share 0.945), and this keeps their raw order inside the run,
so a precision threshold can still cut it. It moves a confidence by at most 0.01."""

CURVE_POINTS = 250
"""Most points kept of a precision curve: enough that a threshold lands within a few rows of the best one."""


def precision_curve(confidence: np.ndarray, correct: np.ndarray) -> list[tuple[float, float, float]]:
    """``(threshold, precision, coverage)`` for answering only rows with confidence >= threshold.

    Thresholds are the distinct confidences, highest first; coverage is the share of the rows
    answered. Thinned to at most :data:`CURVE_POINTS` points, always keeping the last (all rows).
    """
    order = np.argsort(-confidence, kind="stable")
    c, y = confidence[order], correct[order].astype(float)
    if not len(c):
        return []
    hits = np.cumsum(y)
    n = np.arange(1, len(c) + 1)
    last = np.r_[np.flatnonzero(c[1:] != c[:-1]), len(c) - 1]  # last row of each distinct confidence
    points = [(float(c[i]), float(hits[i] / n[i]), float(n[i] / len(c))) for i in last]
    if len(points) > CURVE_POINTS:
        keep = np.unique(np.r_[np.linspace(0, len(points) - 1, CURVE_POINTS).astype(int), len(points) - 1])
        points = [points[i] for i in keep]
    return points  # unrounded: a rounded threshold can drop its own row, a rounded precision pass a target


def isotonic(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pool-adjacent-violators: the non-decreasing step fit of ``y`` on ``x``, as (knots, values).

    Ties in ``x`` are pooled first, so each knot is one distinct raw score.
    """
    order = np.argsort(x, kind="stable")
    xs, ys = np.asarray(x, float)[order], np.asarray(y, float)[order]
    knots, first = np.unique(xs, return_index=True)
    sums = np.add.reduceat(ys, first)
    counts = np.diff(np.r_[first, len(xs)]).astype(float)
    # Blocks of (sum, count, last knot index); merge while the previous mean exceeds the next.
    blocks: list[list[float]] = []
    for i in range(len(knots)):
        blocks.append([sums[i], counts[i], i])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            s, c, last = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += c
            blocks[-1][2] = last
    values = np.empty(len(knots))
    start = 0
    for s, c, last in blocks:
        values[start : int(last) + 1] = s / c
        start = int(last) + 1
    return knots, values


@dataclass(frozen=True, slots=True)
class Promise:
    """What a precision threshold rests on: its held-out answers, their precision and its lower bound.

    Attributes:
        threshold: the calibrated confidence an answer needs.
        precision: the share of the held-out answers at or above it that were right.
        answers: how many held-out answers were at or above it.
        lower: the Wilson lower bound (:data:`Z`) of ``precision`` over ``answers``: a threshold
            resting on 16 answers promises less than one resting on 400 at the same precision.
    """

    threshold: float
    precision: float
    answers: int
    lower: float


@dataclass(frozen=True)
class Calibration:
    """Per entity, raw confidence -> held-out accuracy (linear between knots, flat beyond them).

    Attributes:
        maps: entity (or :data:`POOLED`) -> (knots, values), both non-decreasing.
        rows: entity -> held-out rows its map was fitted on.
        curves: entity (or :data:`POOLED`) -> its precision curve over calibrated confidence
            (:func:`precision_curve`), from the same held-out answers.
    """

    maps: Mapping[str, tuple[tuple[float, ...], tuple[float, ...]]]
    rows: Mapping[str, int]
    curves: Mapping[str, Sequence[tuple[float, float, float]]] = field(default_factory=dict)

    @classmethod
    def fit(cls, entities: Iterable[str], raw: Iterable[float], correct: Iterable[bool]) -> Calibration:
        """Fit from held-out answers: each row's entity, raw confidence and whether it was right."""
        ents = np.asarray(list(entities), dtype=object)
        x = np.asarray(list(raw), dtype=float)
        y = np.asarray(list(correct), dtype=float)
        maps: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {}
        rows: dict[str, int] = {}
        curves: dict[str, list[tuple[float, float, float]]] = {}
        if len(x):
            k, v = isotonic(x, y)
            maps[POOLED] = (tuple(k.tolist()), tuple(v.tolist()))
            rows[POOLED] = len(x)
        for entity in sorted(set(ents.tolist())):
            mask = ents == entity
            rows[entity] = int(mask.sum())
            if mask.sum() >= MIN_ROWS:
                k, v = isotonic(x[mask], y[mask])
                maps[entity] = (tuple(k.tolist()), tuple(v.tolist()))
        calibration = cls(maps, rows)
        calibrated = np.array([calibration(e, c) for e, c in zip(ents.tolist(), x.tolist(), strict=True)])
        if len(x):
            curves[POOLED] = precision_curve(calibrated, y)
        for entity in rows:
            mask = ents == entity
            if entity != POOLED and mask.sum() >= MIN_ANSWERED:
                curves[entity] = precision_curve(calibrated[mask], y[mask])
        return cls(maps, rows, curves)

    def __call__(self, entity: str, raw: float) -> float:
        """The calibrated confidence of a raw one (the raw value where nothing was fitted).

        Strictly increasing in ``raw`` (see :data:`TIE_BREAK`), so it ranks answers as the raw
        confidence does.
        """
        table = self.maps.get(entity) or self.maps.get(POOLED)
        if table is None:
            return raw
        return float((1 - TIE_BREAK) * np.interp(raw, table[0], table[1]) + TIE_BREAK * raw)

    def threshold(self, entity: str, target: float) -> float | None:
        """The lowest calibrated confidence at which the entity's held-out answers reached ``target`` precision.

        ``None`` when the entity is withheld; :meth:`promise` says what the threshold rests on.
        """
        promise = self.promise(entity, target)
        return None if promise is None else promise.threshold

    def promise(self, entity: str, target: float) -> Promise | None:
        """The held-out evidence behind the entity's threshold for ``target``, or None (withheld).

        A threshold must keep at least :data:`MIN_ANSWERED` held-out answers of the entity, their
        precision must reach ``target``, and its Wilson lower bound (:data:`Z`) must be within
        :data:`SLACK` of it: what a few dozen rows show by luck is not promised. None when no
        threshold does (or the entity had too few held-out answers to tell): the entity cannot be
        answered that precisely and is withheld. The lowest such threshold is chosen.
        """
        curve = self.curves.get(entity, ())
        answered = self.rows.get(entity, 0)
        best: Promise | None = None
        for t, p, cov in curve:
            n = cov * answered
            if n < MIN_ANSWERED or p < target:
                continue
            lower = wilson_lower(p * n, n)
            if lower >= target - SLACK and (best is None or t < best.threshold):
                best = Promise(t, p, round(n), lower)
        return best

    def thresholds(self, target: float, entities: Iterable[str]) -> dict[str, float]:
        """:meth:`threshold` for each entity, ``inf`` (withhold every answer) where it is None."""
        out = {}
        for entity in entities:
            t = self.threshold(entity, target)
            out[entity] = math.inf if t is None else t
        return out

    def to_dict(self) -> dict:
        return {
            "maps": {e: {"knots": list(k), "values": list(v)} for e, (k, v) in sorted(self.maps.items())},
            "rows": dict(sorted(self.rows.items())),
            "curves": {e: [list(p) for p in c] for e, c in sorted(self.curves.items())},
        }

    @classmethod
    def from_dict(cls, data: dict) -> Calibration:
        maps = {e: (tuple(map(float, m["knots"])), tuple(map(float, m["values"]))) for e, m in data["maps"].items()}
        curves = {e: [tuple(map(float, p)) for p in c] for e, c in data.get("curves", {}).items()}
        return cls(maps, {e: int(n) for e, n in data.get("rows", {}).items()}, curves)  # type: ignore[arg-type]

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1, sort_keys=True) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
