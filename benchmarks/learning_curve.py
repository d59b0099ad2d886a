"""Learning curve of the candidate ranker on real-dev: what are more labelled training images worth?

Grouped K-fold cross-validation (no image and no group_id on both sides), repeated over
several fold splits; in every fold the training side is subsampled by image (all rows of a
sampled image kept) at each fraction, the ranker fitted on it and the held-out fold predicted.
Out-of-fold predictions of one (fraction, repeat) are scored as a whole: F1, test-weighted F1
(entities re-weighted to the official test mix), per-entity F1 and accuracy; mean and sd over
repeats. Subsamples are nested (10 % is a prefix of 25 %, ... of one seeded image order per
repeat and fold), so the curve's steps are not drowned by resampling noise.

A saturating curve ``F1(n) = a - b * n**-c`` (n = training images) is fitted to the mean
test-weighted F1 and projected to 10k and 100k images. Its uncertainty is a bootstrap that
resamples the repeats and the evaluated images (paired across fractions) and refits; the
interval covers sampling noise only, not the choice of curve, so a projection 10-100x beyond
the data is weak evidence. An approximate ceiling (every row whose label is among the
candidates answered right) bounds what any selector can reach on this OCR.

    python -m benchmarks.learning_curve --cache-dir /tmp/bench/ocr --repeats 4 \\
        --out-json /tmp/bench/learning_curve.json --out-png /tmp/bench/learning_curve.png
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks.common import STATE, bench_cli, candidate_recall, load_dev_rows, mean_sd, over_repeats, parallel_map
from specread.metrics import TEST_MIX, Report, Score, score_rows

TARGETS = (10_000, 100_000)
C_GRID = np.geomspace(0.01, 3.0, 600)
OUTCOMES = ("tp", "fp", "fn", "tn")
CAVEAT = (
    "The projections extrapolate 10-100x beyond the largest training set measured here; the interval "
    "covers sampling noise (repeats and evaluated images) under the assumed curve a - b*n^-c, not the "
    "choice of curve, nor the shift from real-dev to the train images. Read them as weak evidence of "
    "direction and rough size, not as a forecast."
)

# -- pure parts (tested in tests/test_learning_curve.py) ----------------------------------------------


def subsample_images(rows: Sequence, fraction: float, seed: int | Sequence[int]) -> list:
    """Rows of a seeded random ``fraction`` of the images (``row.key``); an image is kept whole or not at all.

    The image order depends only on ``seed`` and the set of images, so for one seed a smaller
    fraction's sample is contained in a larger one's. At least one image is kept.
    """
    keys = sorted({r.key for r in rows})
    order = np.random.default_rng(seed).permutation(len(keys))
    n = max(1, round(fraction * len(keys)))
    keep = {keys[i] for i in order[:n]}
    return [r for r in rows if r.key in keep]


def curve(n: np.ndarray | float, params: Sequence[float]) -> np.ndarray:
    a, b, c = params
    return a - b * np.power(np.asarray(n, dtype=float), -c)


def fit_curve(
    n: Sequence[float], y: Sequence[float], a_max: float = np.inf, c_grid: np.ndarray = C_GRID
) -> tuple[float, float, float]:
    """Least-squares ``(a, b, c)`` of ``y = a - b * n**-c`` with ``b >= 0`` and ``a <= a_max``.

    A grid over c; for each c, linear least squares for a and b, moved onto the constraint
    that binds when the free solution breaks one (a non-rising curve, an asymptote above what
    is reachable).
    """
    n, y = np.asarray(n, dtype=float), np.asarray(y, dtype=float)
    powers = np.power(n[None, :], -c_grid[:, None])  # (C, P)
    pm, ym = powers.mean(axis=1, keepdims=True), y.mean()
    dp = powers - pm
    b = -(dp * (y - ym)).sum(axis=1) / np.maximum((dp * dp).sum(axis=1), 1e-300)
    a = ym + b * pm[:, 0]
    capped = a > a_max  # asymptote pinned at a_max: b alone by least squares
    if capped.any():
        a[capped] = a_max
        b[capped] = ((a_max - y) * powers[capped]).sum(axis=1) / (powers[capped] ** 2).sum(axis=1)
    flat = b < 0  # a falling curve: the best flat line instead
    a[flat], b[flat] = min(ym, a_max), 0.0
    sse = ((a[:, None] - b[:, None] * powers - y) ** 2).sum(axis=1)
    best = int(np.argmin(sse))
    return float(a[best]), float(b[best]), float(c_grid[best])


def percentiles(values: np.ndarray, levels: Sequence[float] = (5, 16, 50, 84, 95)) -> dict[str, float]:
    return {f"p{lv:g}": round(float(np.percentile(values, lv)), 4) for lv in levels}


def project(
    n: Sequence[float], draws: np.ndarray, targets: Sequence[float], a_max: float = np.inf
) -> tuple[np.ndarray, dict]:
    """Refit the curve to every bootstrap draw (rows of ``draws``, one F1 per ``n``); percentiles at ``targets``.

    Returns ``(params per draw (D, 3), {target: {"p5": .., ...}})``.
    """
    params = np.array([fit_curve(n, d, a_max) for d in draws])
    at = {t: np.array([curve(t, p) for p in params]) for t in targets}
    return params, {t: percentiles(v) for t, v in at.items()}


def log_linear(n: Sequence[float], draws: np.ndarray, targets: Sequence[float], y_max: float = np.inf) -> dict:
    """The alternative reading ``F1 = alpha + beta * log2(n)`` (no saturation, capped at ``y_max``), per draw."""
    fits = np.array([np.polyfit(np.log2(n), d, 1) for d in draws])  # (D, 2): slope, intercept
    at = {t: np.minimum(y_max, fits[:, 0] * np.log2(t) + fits[:, 1]) for t in targets}
    return {"gain_per_doubling": percentiles(fits[:, 0]), "projection": {str(t): percentiles(v) for t, v in at.items()}}


def row_outcomes(preds: dict[str, str], gold: dict[str, str]) -> np.ndarray:
    """Per row (in ``gold``'s order) the index of its outcome in :data:`OUTCOMES`, as the metric counts it."""
    out = []
    for i, truth in gold.items():
        s = Score()
        s.add(preds.get(i, ""), truth)
        out.append(next(j for j, name in enumerate(OUTCOMES) if getattr(s, name)))
    return np.array(out, dtype=np.int64)


def weighted_f1_of_counts(counts: np.ndarray, entities: Sequence[str]) -> float:
    """Test-weighted F1 from per-entity outcome counts (shape (E, 4), columns as :data:`OUTCOMES`)."""
    per = {e: Score(*(float(x) for x in counts[j])) for j, e in enumerate(entities)}
    return Report(Score(), per).weighted_f1


def bootstrap_f1(
    outcomes: np.ndarray, entity_idx: np.ndarray, image_idx: np.ndarray, entities: Sequence[str], draws: int, seed: int
) -> np.ndarray:
    """Bootstrap of the mean test-weighted F1 per fraction, shape (draws, F).

    ``outcomes`` is (F, R, N): fraction, repeat, row. Each draw resamples the repeats and the
    evaluated images (rows of an image move together), the same for every fraction.
    """
    F, R, N = outcomes.shape
    E = len(entities)
    rng = np.random.default_rng(seed)
    n_img = int(image_idx.max()) + 1
    code = (entity_idx[None, None, :] * 4 + outcomes).reshape(F * R, N)
    onehot = np.zeros((F * R, E * 4, N), dtype=np.float32)
    onehot[np.arange(F * R)[:, None], code, np.arange(N)[None, :]] = 1.0
    out = np.empty((draws, F))
    for d in range(draws):
        w = rng.multinomial(n_img, np.full(n_img, 1.0 / n_img))[image_idx].astype(np.float32)
        counts = (onehot @ w).reshape(F, R, E, 4)
        reps = rng.integers(0, R, R)
        out[d] = [np.mean([weighted_f1_of_counts(counts[f, r], entities) for r in reps]) for f in range(F)]
    return out


def ceiling_weighted_f1(recall: dict) -> float:
    """Test-weighted F1 if every row whose label is among the candidates were answered right and the rest wrong."""
    total = sum(TEST_MIX[e] for e in recall if e in TEST_MIX)
    r = sum(TEST_MIX[e] * v["label_among_candidates"] for e, v in recall.items() if e in TEST_MIX) / total
    return 2 * r / (1 + r)


# -- parallel jobs ----------------------------------------------------------------------------------------


def _cv_job(job: tuple[int, float]) -> tuple[dict[str, str], list[int]]:
    """Out-of-fold predictions for one (repeat, fraction), and the training images per fold."""
    from specread.rank.train import cross_validate, fit_ranker

    repeat, fraction = job
    rows, priors, args = STATE["rows"], STATE["priors"], STATE["args"]
    fold = itertools.count()
    sizes: list[int] = []

    def make(train: Sequence) -> object:
        sample = subsample_images(train, fraction, (args.seed, repeat, next(fold)))
        sizes.append(len({r.key for r in sample}))
        return fit_ranker(sample, priors, **args.ranker)

    preds, _ = cross_validate(rows, priors, make, k=args.folds, seed=args.seed + repeat)
    return preds, sizes


# -- the benchmark ----------------------------------------------------------------------------------------


def _summary(reports: list[dict]) -> dict:
    out = over_repeats(reports)
    per_f1 = {e: [r["per_entity"][e]["f1"] for r in reports] for e in reports[0]["per_entity"]}
    return {
        "f1": out.pop("f1"),
        "weighted_f1": out.pop("weighted_f1"),
        "per_entity_accuracy": out,
        "per_entity_f1": {e: mean_sd(v) for e, v in per_f1.items()},
    }


def _fit_report(fit: tuple[float, float, float], n: np.ndarray, y: np.ndarray, ceiling: float, params, draws) -> dict:
    """The fitted curve, its error at the measured points, and where the bootstrap refits landed."""
    a, b, c = fit
    rising = params[:, 1] > 0
    return {
        "model": "weighted_f1(n) = a - b * n^-c, n = training images; b >= 0, a <= ceiling",
        "a": round(a, 4),
        "b": round(b, 4),
        "c": round(c, 4),
        "rmse": round(float(np.sqrt(np.mean((curve(n, (a, b, c)) - y) ** 2))), 4),
        "at_measured_max": round(float(curve(n[-1], (a, b, c))), 4),
        "bootstrap_draws": len(draws),
        "asymptote_capped_at_ceiling": a >= ceiling,
        "bootstrap_share": {
            "c_at_low_edge_log_linear": round(float(np.mean((params[:, 2] <= C_GRID[0]) & rising)), 3),
            "c_at_high_edge": round(float(np.mean((params[:, 2] >= C_GRID[-1]) & rising)), 3),
            "flat_b0": round(float(np.mean(~rising)), 3),
            "asymptote_at_ceiling": round(float(np.mean(params[:, 0] >= ceiling)), 3),
        },
        "bootstrap_sd_at_points": [round(float(s), 4) for s in draws.std(axis=0)],
    }


def run(args: argparse.Namespace) -> tuple[dict, dict]:
    """The JSON result, and what the plot needs."""
    from specread.extract.priors import load_priors
    from specread.rank.rules import RuleScorer
    from specread.rank.train import cross_validate

    start = time.perf_counter()
    rows, _ = load_dev_rows(args.data, args.cache_dir, workers=args.workers)
    priors = load_priors()
    gold = {str(i): r.gold for i, r in enumerate(rows)}
    entities = {str(i): r.entity for i, r in enumerate(rows)}
    rules_preds, _ = cross_validate(rows, priors, lambda train: RuleScorer(), k=args.folds, seed=args.seed)
    rules = score_rows(rules_preds, gold, entities).to_dict()
    ceiling = ceiling_weighted_f1(candidate_recall(rows))

    jobs = [(r, f) for f in args.fractions for r in range(args.repeats)]
    results = parallel_map(_cv_job, jobs, args.workers, rows=rows, priors=priors, args=args)
    by_job = dict(zip(jobs, results, strict=True))

    ent_names = sorted(set(entities.values()))
    entity_idx = np.array([ent_names.index(entities[i]) for i in gold])
    img_names = sorted({r.key for r in rows})
    image_idx = np.array([img_names.index(r.key) for r in rows])
    outcomes = np.array(
        [[row_outcomes(by_job[r, f][0], gold) for r in range(args.repeats)] for f in args.fractions]
        + [[row_outcomes(rules_preds, gold)] * args.repeats]  # the rules, paired in the bootstrap
    )

    points = []
    for f in args.fractions:
        reports = [score_rows(by_job[r, f][0], gold, entities).to_dict() for r in range(args.repeats)]
        sizes = [s for r in range(args.repeats) for s in by_job[r, f][1]]
        points.append({"fraction": f, "train_images": round(float(np.mean(sizes)), 1), **_summary(reports)})
        print(f"{f:.2f}: weighted f1 {points[-1]['weighted_f1']}", file=sys.stderr)

    n = np.array([p["train_images"] for p in points])
    y = np.array([p["weighted_f1"]["mean"] for p in points])
    a, b, c = fit_curve(n, y, ceiling)
    draws = bootstrap_f1(outcomes, entity_idx, image_idx, ent_names, args.draws, args.seed)
    draws, rules_draws = draws[:, :-1], draws[:, -1]
    params, pct = project(n, draws, TARGETS, ceiling)
    result = {
        "mode": "learning_curve",
        "rows": len(rows),
        "images": len(img_names),
        "folds": args.folds,
        "ranker": args.ranker,
        "repeats": args.repeats,
        "seed": args.seed,
        "rules": {
            "f1": rules["f1"],
            "weighted_f1": rules["weighted_f1"],
            "per_entity_f1": {e: v["f1"] for e, v in rules["per_entity"].items()},
        },
        "ceiling_weighted_f1": round(ceiling, 4),
        "points": points,
        "fit": _fit_report((a, b, c), n, y, ceiling, params, draws),
        "projection": {
            str(t): {"point": round(float(curve(t, (a, b, c))), 4), "x_measured": round(t / n[-1], 1), **pct[t]}
            for t in TARGETS
        },
        "alternative_log_linear": log_linear(n, draws, TARGETS, ceiling),
        "paired": {
            "gain_largest_vs_smallest_fraction": percentiles(draws[:, -1] - draws[:, 0]),
            "ranker_minus_rules": {
                str(f): percentiles(draws[:, i] - rules_draws) for i, f in enumerate(args.fractions)
            },
        },
        "intervals": (
            "p16-p84 is a 68% interval, p5-p95 a 90% interval (bootstrap percentiles); 'paired' differences "
            "share the evaluated images, so they are much tighter than the levels"
        ),
        "caveat": CAVEAT,
        "seconds": round(time.perf_counter() - start, 1),
    }
    return result, {"n": n, "draws": draws, "params": params, "fit": (a, b, c)}


def plot(result: dict, extra: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = result["points"]
    n = extra["n"]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 5))
    xs = np.geomspace(n[0] * 0.8, TARGETS[-1] * 1.2, 200)
    band = np.array([curve(xs, p) for p in extra["params"]])
    ax.fill_between(xs, *np.percentile(band, [5, 95], axis=0), alpha=0.15, color="C0", label="90% bootstrap band")
    ax.fill_between(xs, *np.percentile(band, [16, 84], axis=0), alpha=0.25, color="C0", label="68% bootstrap band")
    ax.plot(xs, curve(xs, extra["fit"]), color="C0", label="fit a - b n^-c")
    slope, icpt = np.polyfit(np.log2(n), [p["weighted_f1"]["mean"] for p in pts], 1)
    loglin = np.minimum(result["ceiling_weighted_f1"], icpt + slope * np.log2(xs))
    ax.plot(xs, loglin, color="C1", ls="-.", lw=1, label="alternative: log-linear")
    mean = [p["weighted_f1"]["mean"] for p in pts]
    ax.errorbar(n, mean, yerr=extra["draws"].std(axis=0), fmt="o", color="k", capsize=3, label="CV (bootstrap sd)")
    ax.axhline(result["rules"]["weighted_f1"], color="C3", ls="--", label="rules only")
    ax.axhline(result["ceiling_weighted_f1"], color="C2", ls=":", label="ceiling (label among candidates)")
    for t in TARGETS:
        ax.axvline(t, color="grey", lw=0.5)
    ax.set(
        xscale="log", xlabel="training images", ylabel="test-weighted F1", title="Ranker learning curve (real-dev CV)"
    )
    ax.legend(fontsize=8, loc="lower right")
    for e in pts[0]["per_entity_f1"]:
        mean, sd = ([p["per_entity_f1"][e][m] for p in pts] for m in ("mean", "sd"))
        ax2.errorbar(n, mean, yerr=sd, marker="o", capsize=2, label=e)
    ax2.set(xscale="log", xlabel="training images", ylabel="F1 (sd over repeats)", title="Per entity")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def fractions(text: str) -> list[float]:
    values = sorted(float(x) for x in text.split(","))
    if not values or any(not 0 < v <= 1 for v in values):
        raise argparse.ArgumentTypeError("fractions must be in (0, 1]")
    return values


def ranker_params(text: str) -> dict:
    """``--ranker`` JSON: ranker settings to learn with; a feature group's name stands for its features."""
    from specread.extract.features import CAPACITY_FEATURES, LAYOUT_FEATURES

    params = json.loads(text)
    groups = {"capacity": CAPACITY_FEATURES, "layout": LAYOUT_FEATURES}
    ignore = params.get("ignore_features", [])
    params["ignore_features"] = [f for name in ignore for f in groups.get(name, (name,))]
    return params


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=4, help="fold splits (and subsamples) per fraction")
    parser.add_argument("--fractions", type=fractions, default=fractions("0.1,0.25,0.5,0.75,1.0"))
    parser.add_argument("--draws", type=int, default=1000, help="bootstrap draws for the projection interval")
    parser.add_argument(
        "--ranker",
        type=ranker_params,
        default={},
        help="CandidateRanker settings as JSON, e.g. '{\"num_leaves\": 15}'; "
        '"ignore_features" may name a group: "capacity" or "layout"',
    )


def main() -> None:
    bench_cli(__doc__, _arguments, run, plot)


if __name__ == "__main__":
    main()
