"""Confidence that means what it says: a raw score -> the share of such answers that were right.

A scorer's raw confidence (the ranker's probability, or the whole-image
assignment's probability mass for a dimension) ranks answers well but is not a
precision: the same 0.6 is right 90% of the time for a voltage and 60% for a
depth. :class:`Calibration` holds, per entity, a monotone map from raw
confidence to the accuracy measured on held-out rows (isotonic regression by
pool-adjacent-violators, on out-of-fold predictions of grouped CV), so a
threshold on calibrated confidence is a threshold on precision.

``specread train`` writes the map into the model folder (``calibration.json``);
a reader whose model folder has none reports the raw confidence.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["MIN_ROWS", "Calibration", "isotonic"]

MIN_ROWS = 20
"""Held-out rows an entity needs for a map of its own; an entity with fewer uses the pooled map."""

POOLED = "*"
"""The key of the map fitted on every entity's rows together."""


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


@dataclass(frozen=True)
class Calibration:
    """Per entity, raw confidence -> held-out accuracy (linear between knots, flat beyond them).

    Attributes:
        maps: entity (or :data:`POOLED`) -> (knots, values), both non-decreasing.
        rows: entity -> held-out rows its map was fitted on.
    """

    maps: Mapping[str, tuple[tuple[float, ...], tuple[float, ...]]]
    rows: Mapping[str, int]

    @classmethod
    def fit(cls, entities: Iterable[str], raw: Iterable[float], correct: Iterable[bool]) -> Calibration:
        """Fit from held-out answers: each row's entity, raw confidence and whether it was right."""
        ents = np.asarray(list(entities), dtype=object)
        x = np.asarray(list(raw), dtype=float)
        y = np.asarray(list(correct), dtype=float)
        maps: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {}
        rows: dict[str, int] = {}
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
        return cls(maps, rows)

    def __call__(self, entity: str, raw: float) -> float:
        """The calibrated confidence of a raw one (the raw value where nothing was fitted)."""
        table = self.maps.get(entity) or self.maps.get(POOLED)
        if table is None:
            return raw
        return float(np.interp(raw, table[0], table[1]))

    def to_dict(self) -> dict:
        return {
            "maps": {e: {"knots": list(k), "values": list(v)} for e, (k, v) in sorted(self.maps.items())},
            "rows": dict(sorted(self.rows.items())),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Calibration:
        maps = {e: (tuple(map(float, m["knots"])), tuple(map(float, m["values"]))) for e, m in data["maps"].items()}
        return cls(maps, {e: int(n) for e, n in data.get("rows", {}).items()})

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1, sort_keys=True) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
