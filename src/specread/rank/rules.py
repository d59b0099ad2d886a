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

from specread.types import Candidate

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
}

# Dimension-specific layout cues: heights are often printed vertically beside
# the product, widths horizontally under it; depths are the rest.
ENTITY_WEIGHTS: dict[str, dict[str, float]] = {
    "height": {"vertical": 1.2, "cx_edge": 0.6},
    "width": {"vertical": -1.0, "cy_bottom": 0.6},
    "depth": {"vertical": -0.5},
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

    def score(self, entity: str, cands: Sequence[Candidate]) -> list[float]:
        out: list[float] = []
        extra = ENTITY_WEIGHTS.get(entity, {})
        for c in cands:
            f = c.features
            s = sum(w * f.get(k, 0.0) for k, w in self.weights.items())
            s += 0.3 * math.log1p(f.get("repeats", 1.0) - 1.0)
            derived = {
                **f,
                "cx_edge": abs(f.get("cx", 0.5) - 0.5) * 2,
                "cy_bottom": f.get("cy", 0.5),
            }
            s += sum(w * derived.get(k, 0.0) for k, w in extra.items())
            out.append(s)
        return out

    def confidence(self, scores: Sequence[float], best: int) -> float:
        """A softmax share of the winner: a rough, uncalibrated confidence."""
        if not scores:
            return 0.0
        m = max(scores)
        exps = [math.exp(s - m) for s in scores]
        return exps[best] / sum(exps)
