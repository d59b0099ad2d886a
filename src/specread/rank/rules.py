"""Hand-weighted candidate scoring: the transparent baseline selector.

A weighted sum of the shared features (see :mod:`specread.extract.features`).
The weights encode what a person reading a label does: trust a value the
label names ("Net Wt", "W:"/"H:" letters), the biggest print, a plausible
unit and magnitude for the entity, and a value that repeats; distrust one
named for a rival entity ("Max load" when asked for the item's weight).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from specread.extract.features import FEATURE_NAMES, to_matrix
from specread.types import Candidate
from specread.units.registry import ENTITIES

__all__ = ["DEFAULT_WEIGHTS", "RuleScorer"]

DEFAULT_WEIGHTS: dict[str, float] = {
    "kw_self": 1.5,
    "kw_near": 0.8,
    "kw_other": -1.5,
    "letter_match": 3.0,
    "letter_other": -2.0,
    "rel_height": 1.5,
    "unit_logp": 0.4,
    "value_logp": 0.4,
    "in_parens": -0.4,
    "first_in_text": 0.2,
    "ocr_score": 0.5,
    "joined": -0.2,
    # Layout, expressed relative to the entity (zero for non-dimension entities).
    "role_line": 2.0,
    "rival_line": -1.5,
    "role_vertical": 0.8,
    "role_edge": 0.8,
}

# Entity-specific cues: widths are often printed under the product, depths are
# the longest slanted measure, a voltage range is labelled by its top end, and a
# volume printed twice ("16 FL OZ (473 mL)") is labelled with the one outside the
# brackets (all 15 such real-dev rows; item weights go either way, 34 vs 39).
ENTITY_WEIGHTS: dict[str, dict[str, float]] = {
    "width": {"cy": 0.6},
    "item_volume": {"in_parens": -1.0},
    "depth": {"is_max": 0.5},
    "voltage": {"range_high": 0.8},
    "wattage": {"is_max": 0.5},
    "maximum_weight_recommendation": {"is_max": 0.5},
}


class RuleScorer:
    """Scores candidates with fixed weights; higher is better.

    Args:
        weights: overrides for :data:`DEFAULT_WEIGHTS`.
    """

    name = "rules"

    def __init__(self, weights: dict[str, float] | None = None) -> None:
        self.weights = {**DEFAULT_WEIGHTS, **(weights or {})}

    def score_matrix(self, X: np.ndarray) -> np.ndarray:
        """Rule score of each row of a feature matrix (columns in :data:`FEATURE_NAMES` order)."""
        X = np.asarray(X, dtype=np.float64)
        if len(X) == 0:
            return np.zeros(0)
        col = {name: X[:, i] for i, name in enumerate(FEATURE_NAMES)}
        out = sum(w * col[k] for k, w in self.weights.items())
        out = out + 0.3 * np.log1p(np.maximum(col["repeats"] - 1.0, 0.0))
        entity_ids = col["entity_id"].astype(int)
        for entity, extra in ENTITY_WEIGHTS.items():
            mask = entity_ids == ENTITIES.index(entity)
            if mask.any():
                out = out + mask * sum(w * col[k] for k, w in extra.items())
        return np.asarray(out, dtype=np.float64)

    def score(self, entity: str, cands: Sequence[Candidate]) -> list[float]:
        return self.score_matrix(to_matrix(cands)).tolist()

    def confidence(self, scores: Sequence[float], best: int) -> float:
        """A softmax share of the winner: a rough, uncalibrated confidence."""
        return self.shares(scores)[best] if scores else 0.0

    def shares(self, scores: Sequence[float]) -> list[float]:
        """The softmax of the scores: each candidate's share of the entity."""
        if not scores:
            return []
        m = max(scores)
        exps = [math.exp(s - m) for s in scores]
        total = sum(exps)
        return [x / total for x in exps]
