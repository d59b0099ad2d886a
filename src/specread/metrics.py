"""The challenge's F1, with per-entity breakdown and test-mix re-weighting.

Exact match of (value, unit), values compared as numbers so ``500 gram``
equals ``500.0 gram``. Per row:

* prediction and truth non-empty and equal: TP;
* both non-empty and different: FP;
* prediction non-empty, truth empty: FP;
* prediction empty, truth non-empty: FN;
* both empty: TN (ignored by F1).

F1 = 2TP / (2TP + FP + FN). "Accuracy" below is TP / rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import accumulate

from specread.answer import Answer
from specread.errors import AnswerFormatError

__all__ = [
    "COVERAGES",
    "PRECISION_TARGETS",
    "RELIABILITY_BANDS",
    "TEST_MIX",
    "Score",
    "evaluate",
    "normalize_answer",
    "reliability",
    "risk_coverage",
    "score_rows",
]

TEST_MIX: dict[str, int] = {
    "height": 32282,
    "depth": 28146,
    "width": 26931,
    "item_weight": 22032,
    "maximum_weight_recommendation": 7028,
    "voltage": 5488,
    "wattage": 5447,
    "item_volume": 3833,
}
"""Rows per entity in the official test set, for re-weighting dev results."""


def normalize_answer(text: str | None) -> tuple[float, str] | None:
    """``"500.0 gram"`` -> ``(500.0, "gram")`` (:attr:`Answer.key`); None for an empty answer.

    A non-empty answer that does not parse (a list, a range, garbage) becomes
    ``(nan, text)`` so it never equals anything, as in the official metric.
    """
    try:
        answer = Answer.parse(text)
    except AnswerFormatError as exc:
        return (float("nan"), exc.text)
    return None if answer is None else answer.key


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def add(self, pred: str | None, gold: str | None) -> None:
        p, g = normalize_answer(pred), normalize_answer(gold)
        if p is None and g is None:
            self.tn += 1
        elif p is None:
            self.fn += 1
        elif g is None or p != g:
            self.fp += 1
        else:
            self.tp += 1

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        denom = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / denom if denom else 0.0

    @property
    def accuracy(self) -> float:
        return self.tp / self.n if self.n else 0.0

    def to_dict(self) -> dict[str, float | int]:
        return {
            "rows": self.n,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "f1": round(self.f1, 4),
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "accuracy": round(self.accuracy, 4),
        }


@dataclass
class Report:
    overall: Score
    per_entity: dict[str, Score] = field(default_factory=dict)

    @property
    def weighted_f1(self) -> float:
        """F1 with each entity's TP/FP/FN rates scaled to its share of the official test set."""
        tp = fp = fn = 0.0
        for entity, weight in TEST_MIX.items():
            s = self.per_entity.get(entity)
            if s is None or s.n == 0:
                continue
            tp += weight * s.tp / s.n
            fp += weight * s.fp / s.n
            fn += weight * s.fn / s.n
        denom = 2 * tp + fp + fn
        return 2 * tp / denom if denom else 0.0

    def to_dict(self) -> dict:
        return {
            **self.overall.to_dict(),
            "weighted_f1": round(self.weighted_f1, 4),
            "per_entity": {e: s.to_dict() for e, s in sorted(self.per_entity.items())},
        }


def score_rows(preds: Mapping[str, str], gold: Mapping[str, str], entities: Mapping[str, str]) -> Report:
    """Score predictions against gold labels (indices missing from ``preds`` count as empty)."""
    overall = Score()
    per: dict[str, Score] = {}
    for index, truth in gold.items():
        pred = preds.get(index, "")
        overall.add(pred, truth)
        per.setdefault(entities.get(index, "?"), Score()).add(pred, truth)
    return Report(overall, per)


evaluate = score_rows

RELIABILITY_BANDS = 5
"""Confidence bands of a reliability table: 0-0.2, 0.2-0.4, ... 0.8-1.0."""


def reliability(
    preds: Mapping[str, str],
    confidences: Mapping[str, float],
    gold: Mapping[str, str],
    entities: Mapping[str, str],
    bands: int = RELIABILITY_BANDS,
) -> dict[str, list[dict[str, float | int | str]]]:
    """Accuracy per confidence band, per entity and over all rows (``"all"``): does 0.8 mean 80%?

    Only answered rows with a confidence count (a blank is neither right nor wrong here).
    Each band lists ``band`` ("0.8-1.0"), ``rows``, mean ``confidence`` and ``accuracy``;
    empty bands are left out.
    """
    groups: dict[str, list[list[tuple[float, bool]]]] = {}
    for index, truth in gold.items():
        pred, conf = preds.get(index, ""), confidences.get(index)
        answer = normalize_answer(pred)
        if answer is None or conf is None:
            continue
        band = min(bands - 1, max(0, int(conf * bands)))
        right = answer == normalize_answer(truth)
        for key in (entities.get(index, "?"), "all"):
            groups.setdefault(key, [[] for _ in range(bands)])[band].append((conf, right))
    out: dict[str, list[dict[str, float | int | str]]] = {}
    for key, per_band in sorted(groups.items()):
        out[key] = [
            {
                "band": f"{b / bands:.1f}-{(b + 1) / bands:.1f}",
                "rows": len(items),
                "confidence": round(sum(c for c, _ in items) / len(items), 3),
                "accuracy": round(sum(r for _, r in items) / len(items), 3),
            }
            for b, items in enumerate(per_band)
            if items
        ]
    return out


def entity_counts(entities: Mapping[str, str]) -> Counter[str]:
    return Counter(entities.values())


COVERAGES = tuple(round(0.1 * k, 1) for k in range(1, 11))
"""Coverages (shares of the rows answered, most confident first) a risk-coverage report lists."""

PRECISION_TARGETS = (0.90, 0.95, 0.99)
"""Precisions whose reachable coverage a risk-coverage report lists."""


def _ranked(
    preds: Mapping[str, str], confidences: Mapping[str, float], gold: Mapping[str, str], keys: list[str]
) -> list[bool]:
    """Whether each answered row is right, most confident first (rows without answer or confidence left out)."""
    answered = [k for k in keys if normalize_answer(preds.get(k, "")) is not None and k in confidences]
    answered.sort(key=lambda k: -confidences[k])
    return [normalize_answer(preds[k]) == normalize_answer(gold[k]) for k in answered]


def risk_coverage(
    preds: Mapping[str, str],
    confidences: Mapping[str, float],
    gold: Mapping[str, str],
    entities: Mapping[str, str],
) -> dict[str, dict]:
    """What answering only the most confident rows gives, per entity and over all rows (``"all"``).

    Coverage is the share of an entity's rows answered, most confident first; precision the share
    of those answers that are right. Per key: ``rows``, ``curve`` (precision at each of
    :data:`COVERAGES` reachable with the answers there are) and ``coverage_at`` (the largest
    coverage whose precision is at least each of :data:`PRECISION_TARGETS`; 0 when none is).
    """
    by_entity: dict[str, list[str]] = {"all": list(gold)}
    for k in gold:
        by_entity.setdefault(entities.get(k, "?"), []).append(k)
    out: dict[str, dict] = {}
    for name, keys in sorted(by_entity.items()):
        right = _ranked(preds, confidences, gold, keys)
        hits = list(accumulate(right))
        curve = []
        for cov in COVERAGES:
            n = round(cov * len(keys))
            if 0 < n <= len(right):
                curve.append({"coverage": cov, "precision": round(hits[n - 1] / n, 4)})
        reach = {}
        for target in PRECISION_TARGETS:
            ok = [i + 1 for i, h in enumerate(hits) if h / (i + 1) >= target]
            reach[str(target)] = round(max(ok) / len(keys), 4) if ok else 0.0
        out[name] = {"rows": len(keys), "answered": len(right), "curve": curve, "coverage_at": reach}
    return out


def plot_risk_coverage(
    preds: Mapping[str, str],
    confidences: Mapping[str, float],
    gold: Mapping[str, str],
    entities: Mapping[str, str],
    path: str,
) -> None:
    """Write a risk-coverage plot (precision against coverage, one line per entity) as a PNG.

    Raises:
        ImportError: matplotlib is missing (the ``eda`` extra).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_entity: dict[str, list[str]] = {}
    for k in gold:
        by_entity.setdefault(entities.get(k, "?"), []).append(k)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, keys in [*sorted(by_entity.items()), ("all", list(gold))]:
        right = _ranked(preds, confidences, gold, keys)
        if not right:
            continue
        n = range(1, len(right) + 1)
        cum = [h / i for h, i in zip(accumulate(right), n, strict=True)]
        ax.plot([i / len(keys) for i in n], cum, label=f"{name} ({len(keys)})", lw=2.5 if name == "all" else 1.2)
    ax.set_xlabel("coverage (share of rows answered, most confident first)")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
