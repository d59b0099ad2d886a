"""The pure parts of ``benchmarks/learning_curve.py``: image subsampling, the curve fit, its projection."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pytest

from benchmarks import learning_curve as lc


@dataclass(frozen=True)
class Row:
    key: str
    entity: str


ROWS = [Row(f"img{i}.jpg", e) for i in range(40) for e in (("item_weight", "width") if i % 3 == 0 else ("depth",))]


def _images(rows) -> set[str]:
    return {r.key for r in rows}


def test_subsample_keeps_whole_images_and_the_share_asked() -> None:
    for fraction in (0.1, 0.25, 0.5, 1.0):
        sample = lc.subsample_images(ROWS, fraction, seed=(0, 1, 2))
        keys = _images(sample)
        assert len(keys) == round(fraction * 40)
        assert sample == [r for r in ROWS if r.key in keys]  # every row of a kept image, in order


def test_subsample_is_seeded_and_nested() -> None:
    a = lc.subsample_images(ROWS, 0.25, seed=(0, 1, 2))
    assert a == lc.subsample_images(ROWS, 0.25, seed=(0, 1, 2))
    assert _images(a) != _images(lc.subsample_images(ROWS, 0.25, seed=(0, 1, 3)))
    sizes = [_images(lc.subsample_images(ROWS, f, seed=7)) for f in (0.1, 0.25, 0.5, 0.75, 1.0)]
    assert all(small <= big for small, big in itertools.pairwise(sizes))
    assert len(lc.subsample_images(ROWS, 0.001, seed=7)) >= 1


@pytest.mark.parametrize("params", [(0.9, 0.8, 0.5), (0.85, 0.3, 0.2), (0.95, 2.0, 0.9)])
def test_fit_recovers_known_curve(params: tuple[float, float, float]) -> None:
    n = np.array([85.0, 213, 426, 640, 853])
    a, b, c = lc.fit_curve(n, lc.curve(n, params))
    assert (a, b, c) == pytest.approx(params, rel=0.03)


def test_fit_respects_ceiling_and_never_falls() -> None:
    n = np.array([100.0, 200, 400, 800])
    a, b, _ = lc.fit_curve(n, lc.curve(n, (0.95, 0.5, 0.3)), a_max=0.9)
    assert a == pytest.approx(0.9) and b > 0
    a, b, _ = lc.fit_curve(n, [0.8, 0.79, 0.78, 0.77])
    assert b == 0 and a == pytest.approx(0.785)


def test_projection_interval_widens_with_distance() -> None:
    rng = np.random.default_rng(0)
    n = np.array([85.0, 213, 426, 640, 853])
    draws = lc.curve(n, (0.9, 0.8, 0.4)) + rng.normal(0, 0.01, size=(300, len(n)))
    _, pct = lc.project(n, draws, [853, 10_000, 100_000])
    widths = [pct[t]["p95"] - pct[t]["p5"] for t in (853, 10_000, 100_000)]
    assert widths[0] < widths[1] < widths[2]
    assert all(pct[t]["p5"] <= pct[t]["p50"] <= pct[t]["p95"] for t in pct)


def test_bootstrap_f1_is_paired_and_matches_the_metric() -> None:
    from specread.metrics import score_rows

    gold = {"0": "1 gram", "1": "2 gram", "2": "3 cm", "3": "4 cm"}
    ents = {"0": "item_weight", "1": "item_weight", "2": "width", "3": "width"}
    preds = [{"0": "1 gram", "1": "5 gram", "2": "3 cm", "3": ""}, {"0": "1 gram", "1": "2 gram", "2": "3 cm", "3": ""}]
    outcomes = np.array([[lc.row_outcomes(p, gold)] for p in preds])  # (F=2, R=1, N=4)
    names = ["item_weight", "width"]
    entity_idx = np.array([names.index(ents[i]) for i in gold])
    counts = np.zeros((2, 4))
    np.add.at(counts, (entity_idx, outcomes[0, 0]), 1)
    assert lc.weighted_f1_of_counts(counts, names) == pytest.approx(score_rows(preds[0], gold, ents).weighted_f1)
    draws = lc.bootstrap_f1(outcomes, entity_idx, np.arange(4), names, draws=50, seed=1)
    assert draws.shape == (50, 2)
    assert np.all(draws[:, 1] >= draws[:, 0] - 1e-12)  # the better system wins on every paired draw


def test_log_linear_alternative_recovers_the_slope_and_caps() -> None:
    n = np.array([100.0, 200, 400, 800])
    draws = np.tile(0.7 + 0.01 * np.log2(n / 100), (20, 1))
    out = lc.log_linear(n, draws, [1600, 10**9], y_max=0.8)
    assert out["gain_per_doubling"]["p50"] == pytest.approx(0.01)
    assert out["projection"]["1600"]["p50"] == pytest.approx(0.74)
    assert out["projection"][str(10**9)]["p95"] == pytest.approx(0.8)
