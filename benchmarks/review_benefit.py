"""What reviewing the least confident answers is worth, measured on real-dev (``specread review``'s loop).

Real-dev's images are split as :mod:`adapt` splits them (grouped: no image and no group_id in two
parts) into A (~50 %), B (~25 %) and C (~25 %). A ranker trained on A answers B, as ``specread
predict`` would answer a team's catalogue. A person then reviews k rows of B; here a review gives
the row its gold label (every decision right, "not on the image" included). Two ways to choose the
k rows:

* ``least_confident``: B's k rows of lowest confidence, the order ``specread review`` queues them in
  (ties in a seeded order);
* ``random``: k rows drawn at random (``--draws`` seeded draws per split), the reference.

For k = 0, 25, 50, 100, 200 two things are scored:

* **Part C**: the base adapted with the k reviewed rows (``fit_ranker(..., base=base)``, what
  ``specread train REVIEWED.csv --base ...`` does) answers C, a part neither saw: F1, test-weighted
  F1 and per-entity F1, and the paired difference to the base (k = 0) on the same C;
* **Part B after review**: B's answers with the k reviewed rows taking their gold labels, the file a
  team ships: F1 and test-weighted F1, and how many of the k reviewed rows were wrong before review.

Means and sd over ``--splits`` seeded splits (and the random draws).

    python -m benchmarks.review_benefit --cache-dir /tmp/bench/ocr \\
        --out-json /tmp/bench/review_benefit.json --out-png /tmp/bench/review_benefit.png
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks.adapt import evaluate, predict_rows, score_predictions, split_parts
from benchmarks.common import STATE, bench_cli, load_dev_rows, mean_sd, parallel_map, save_k_plot, score_summary
from benchmarks.learning_curve import OUTCOMES, row_outcomes

ARMS = ("least_confident", "random")
_CORRECT = {OUTCOMES.index("tp"), OUTCOMES.index("tn")}


def least_confident(confidences: dict[str, float], seed: int | Sequence[int]) -> list[int]:
    """Row positions by ascending confidence; equal confidences in a seeded random order."""
    keys = list(confidences)
    tie = np.random.default_rng(seed).permutation(len(keys))
    return [int(keys[i]) for i in sorted(range(len(keys)), key=lambda i: (confidences[keys[i]], tie[i]))]


def after_review(preds: dict[str, str], rows: Sequence, reviewed: Sequence[int]) -> dict[str, str]:
    """``preds`` with the reviewed rows answered by their gold labels (a person's review)."""
    out = dict(preds)
    for i in reviewed:
        out[str(i)] = rows[i].gold
    return out


def _arm(order: Sequence[int], k: int, job: dict) -> dict:
    """Part C after adapting with the first k rows of ``order``, part B after reviewing them."""
    from specread.rank.train import fit_ranker

    b, c, base, preds, wrong, seed = (job[n] for n in ("b", "c", "base", "preds", "wrong", "seed"))
    chosen = list(order[:k])
    part_c, untrainable = job["base_on_c"], False
    if k:
        try:
            adapted = fit_ranker([b[i] for i in chosen], STATE["priors"], seed=seed, base=base)
            part_c = evaluate(adapted, c, STATE["priors"])
        except ValueError:  # no reviewed row's label is among its candidates: nothing to learn, the base stays
            untrainable = True
    part_b = score_predictions(after_review(preds, b, chosen), b)
    fixed = int(sum(wrong[i] for i in chosen))
    return {"part_c": part_c, "part_b": part_b, "fixed": fixed, "untrainable": untrainable}


def _job(split: int) -> dict:
    """Every k and arm for one split."""
    from specread.rank.train import fit_ranker

    args, priors, rows = STATE["args"], STATE["priors"], STATE["rows"]
    _, b, c = parts = split_parts(rows, args.seed + split)
    base = fit_ranker(parts[0], priors, seed=0)
    preds, confidences = predict_rows(base, b, priors)
    outcomes = row_outcomes(preds, {str(i): r.gold for i, r in enumerate(b)})
    job = {
        "b": b,
        "c": c,
        "base": base,
        "preds": preds,
        "wrong": [int(o not in _CORRECT) for o in outcomes],
        "seed": 0,
        "base_on_c": evaluate(base, c, priors),
    }
    orders = {"least_confident": [least_confident(confidences, (args.seed, split))]}
    orders["random"] = [
        [int(i) for i in np.random.default_rng((args.seed, split, draw)).permutation(len(b))]
        for draw in range(args.draws)
    ]
    by_k = {k: {arm: [_arm(order, k, job) for order in orders[arm]] for arm in ARMS} for k in args.ks}
    return {"sizes": [len(p) for p in parts], "b_wrong": sum(job["wrong"]), "by_k": by_k}


def _arm_table(runs: list[tuple[int, dict]], base: list[dict]) -> dict:
    """Summary of one (k, arm) over its runs: part C (with the paired delta to k = 0) and part B after review."""
    part_c = [r["part_c"] for _, r in runs]
    delta = [r["part_c"]["weighted_f1"] - base[split]["weighted_f1"] for split, r in runs]
    return {
        "part_c": {**score_summary(part_c), "delta_weighted_f1_vs_k0": mean_sd(delta)},
        "part_b_after_review": {
            "f1": mean_sd([r["part_b"]["f1"] for _, r in runs]),
            "weighted_f1": mean_sd([r["part_b"]["weighted_f1"] for _, r in runs]),
        },
        "wrong_answers_reviewed": mean_sd([r["fixed"] for _, r in runs]),
        "untrainable": sum(r["untrainable"] for _, r in runs),
        "runs": len(runs),
    }


def run(args: argparse.Namespace) -> tuple[dict, None]:
    from specread.extract.priors import load_priors

    if args.ks[0] != 0:
        raise SystemExit("--ks must include 0 (the base, before any review)")
    start = time.perf_counter()
    rows, _ = load_dev_rows(args.data, args.cache_dir, workers=args.workers)
    splits = list(range(args.splits))
    results = parallel_map(_job, splits, args.workers, args=args, priors=load_priors(), rows=rows)
    base = [res["by_k"][0]["least_confident"][0]["part_c"] for res in results]
    table = {
        str(k): {
            arm: _arm_table(
                [(s, run) for s, res in zip(splits, results, strict=True) for run in res["by_k"][k][arm]], base
            )
            for arm in ARMS
        }
        for k in args.ks
    }
    return {
        "mode": "review_benefit",
        "rows": len(rows),
        "splits": args.splits,
        "random_draws_per_split": args.draws,
        "seed": args.seed,
        "ks": args.ks,
        "part_rows_abc": [res["sizes"] for res in results],
        "part_b_wrong_before_review": mean_sd([res["b_wrong"] for res in results]),
        "by_k": table,
        "note": (
            "A review gives the gold label (a perfect reviewer). part_c: the base adapted with the k reviewed "
            "rows, scored on C; delta_weighted_f1_vs_k0 is paired (same split). part_b_after_review: B's "
            "answers with the reviewed rows corrected. C holds ~270 rows, ~28 of them dimensions that carry "
            "two thirds of the test weight: part C's weighted F1 is noisy, read the paired delta."
        ),
        "seconds": round(time.perf_counter() - start, 1),
    }, None


def plot(result: dict, _extra: None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = [int(k) for k in result["by_k"]]
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    panels = (
        ("part_b_after_review", "weighted_f1", "test-weighted F1 of B after review (sd)", "What the team ships (B)"),
        ("part_b_after_review", "f1", "F1 of B after review (sd)", "What the team ships (B), plain F1"),
        ("part_c", "delta_weighted_f1_vs_k0", "paired Δ test-weighted F1 on C (± s.e.)", "Base adapted with them (C)"),
    )
    for ax, (part, metric, ylabel, title) in zip(axes, panels, strict=True):
        for i, arm in enumerate(ARMS):
            cells = [result["by_k"][str(k)][arm] for k in ks]
            mean = [c[part][metric]["mean"] for c in cells]
            spread = [c[part][metric]["sd"] / (np.sqrt(c["runs"]) if part == "part_c" else 1) for c in cells]
            label = arm.replace("_", " ")
            ax.errorbar(ks, mean, yerr=spread, marker="o", capsize=3, color=f"C{i}", label=label)
        if part == "part_c":
            ax.axhline(0, color="k", ls="--", lw=0.8)
        ax.set(xlabel="rows reviewed k (of ~270 in B)", ylabel=ylabel, title=title)
    save_k_plot(fig, axes, ks, path)


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ks", type=lambda t: sorted(int(x) for x in t.split(",")), default=[0, 25, 50, 100, 200])
    parser.add_argument("--splits", type=int, default=8, help="seeded A/B/C splits (repeats)")
    parser.add_argument("--draws", type=int, default=3, help="random draws of the k rows per split")


def main() -> None:
    bench_cli(__doc__, _arguments, run, plot)


if __name__ == "__main__":
    main()
