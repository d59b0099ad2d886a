"""Benchmark specread on the real challenge dev set; prints JSON.

Default: run ``predict`` end to end (OCR included) on ``../shared/data/real-dev`` and report
raw F1, test-weighted F1, accuracy, per-entity scores, images/s and peak RSS.
``--cv K``: grouped K-fold cross-validation of the selectors on cached OCR pages
(rules, ranker without layout features, ranker with layout features).

The shipped ranker is trained on real-dev itself, so its end-to-end score there is
in-sample (reported as such); the cross-validated figures are the honest ones.

    python -m benchmarks.real_dev --workers 2                 # end to end, cold OCR cache
    python -m benchmarks.real_dev --cv 5 --cache-dir ~/.cache/specread/ocr
    python -m benchmarks.real_dev --cv 5 --repeats 8   # mean and sd over 8 fold splits
    python -m benchmarks.real_dev --cv 5 --repeats 8 --systems ranker_layout --plot rc.png

With ``--cv`` each system also reports ``precision_targets`` (``--min-precision`` 0.90 / 0.95 /
0.98 judged out of sample: precision reached and coverage per entity, mean over the fold splits)
and ``risk_coverage`` (the first split), both on confidences calibrated by cross-fitting
(``targets.py``).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import resource
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from benchmarks.common import DEFAULT_DATA, DIMS, candidate_recall, load_dev_rows, over_repeats
from specread.extract.features import CAPACITY_FEATURES, LAYOUT_FEATURES
from specread.metrics import normalize_answer, score_rows
from specread.settings import ReaderConfig, preset


def _input_csv(data: Path, out: Path, limit: int | None) -> tuple[Path, dict[str, str], dict[str, str]]:
    """Write real-dev labels as a challenge input CSV (with index); return gold maps."""
    with open(data / "labels.csv", newline="", encoding="utf-8") as fh:
        records = list(csv.DictReader(fh))
    if limit:
        records = records[:limit]
    path = out / "input.csv"
    gold, entities = {}, {}
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["index", "image_link", "group_id", "entity_name"])
        for i, r in enumerate(records):
            w.writerow([i, r["image_link"], r["group_id"], r["entity_name"]])
            gold[str(i)], entities[str(i)] = r["entity_value"], r["entity_name"]
    return path, gold, entities


def end_to_end(args: argparse.Namespace) -> dict:
    from specread.batch.local import predict_csv
    from specread.io.dataset import read_predictions

    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        input_csv, gold, entities = _input_csv(args.data, tmpdir, args.limit)
        cache = args.cache_dir or str(tmpdir / "cache")
        config = ReaderConfig(scorer=args.scorer, cache_dir=cache, ocr=preset(args.preset), retry_side=args.retry_side)
        start = time.perf_counter()
        stats = predict_csv(input_csv, args.data / "images", tmpdir / "out.csv", config, workers=args.workers)
        elapsed = time.perf_counter() - start
        preds = read_predictions(tmpdir / "out.csv")
    report = score_rows(preds, gold, entities).to_dict()
    rss_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    rss_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "mode": "end_to_end",
        "scorer": args.scorer,
        "in_sample": args.scorer == "ranker",
        "preset": args.preset,
        "retry_side": args.retry_side,
        "workers": args.workers,
        "warm_cache": args.cache_dir is not None,
        "rows": stats.rows,
        "images": stats.images,
        "unreadable_images": stats.failed_images,
        "f1": report["f1"],
        "weighted_f1": report["weighted_f1"],
        "accuracy": report["accuracy"],
        "per_entity": {
            e: {"f1": s["f1"], "accuracy": s["accuracy"], "rows": s["rows"]} for e, s in report["per_entity"].items()
        },
        "seconds": round(elapsed, 1),
        "images_per_s": round(stats.images / elapsed, 3),
        "peak_rss_mb_worker": round(rss_children, 1),
        "peak_rss_mb_main": round(rss_self, 1),
    }


def _dims_breakdown(rows, preds) -> dict:
    """Where dimension answers go wrong: right, twin unit, another candidate, nothing readable."""
    from specread.extract.candidates import find_mentions
    from specread.extract.features import page_candidates
    from specread.extract.priors import load_priors

    priors = load_priors()
    out: dict[str, Counter] = {e: Counter() for e in DIMS}
    for i, r in enumerate(rows):
        if r.entity not in DIMS:
            continue
        pred, gold = normalize_answer(preds[str(i)]), normalize_answer(r.gold)
        cands = page_candidates(r.page, find_mentions(r.page), r.entity, priors, r.group_id or None)
        keys = {normalize_answer(f"{c.quantity.value} {c.quantity.unit}") for c in cands}
        if pred == gold:
            out[r.entity]["correct"] += 1
        elif gold not in keys:
            out[r.entity]["answer_not_read"] += 1
        elif pred is not None and pred[1] != gold[1] and _same_length(pred, gold):
            out[r.entity]["same_length_other_unit"] += 1
        else:
            out[r.entity]["other_candidate_chosen"] += 1
    return {e: dict(c) for e, c in out.items()}


def _same_length(a: tuple[float, str], b: tuple[float, str]) -> bool:
    from specread.units.registry import get_registry

    reg = get_registry()
    try:
        return math.isclose(reg.convert(a[0], a[1], b[1]), b[0], rel_tol=0.03)
    except (KeyError, ValueError):
        return False


def _calibration(confs: dict[str, str], correct: dict[str, bool], bins: int = 5) -> dict:
    edges = np.linspace(0, 1, bins + 1)
    table, ece, n = [], 0.0, len(confs)
    for lo, hi in itertools.pairwise(edges):
        keys = [k for k, c in confs.items() if lo <= c < hi or (hi == 1 and c == 1)]
        if not keys:
            continue
        mean_c = float(np.mean([confs[k] for k in keys]))
        acc = float(np.mean([correct[k] for k in keys]))
        ece += len(keys) / n * abs(mean_c - acc)
        table.append(
            {"bin": f"{lo:.1f}-{hi:.1f}", "rows": len(keys), "confidence": round(mean_c, 3), "accuracy": round(acc, 3)}
        )
    return {"ece": round(ece, 4), "bins": table}


def _mean_targets(runs: list[dict]) -> dict:
    """Precision reached and coverage per target and entity, averaged over fold splits (None where nothing answered)."""
    out: dict = {}
    for target, per in runs[0].items():
        out[target] = {}
        for name, first in per.items():
            cells = [run[target][name] for run in runs]
            precisions = [c["precision"] for c in cells if c["precision"] is not None]
            out[target][name] = {
                "rows": first["rows"],
                "coverage": round(float(np.mean([c["coverage"] for c in cells])), 4),
                "precision": round(float(np.mean(precisions)), 4) if precisions else None,
                "withheld_in": sum(bool(c.get("withheld")) for c in cells),
            }
    return out


def cross_validation(args: argparse.Namespace) -> dict:
    from benchmarks.targets import cross_fitted, precision_at_targets
    from specread.extract.priors import load_priors
    from specread.metrics import plot_risk_coverage, risk_coverage
    from specread.rank.rules import RuleScorer
    from specread.rank.train import cross_read, fit_ranker, grouped_folds

    rows, retry = load_dev_rows(args.data, args.cache_dir, args.preset, args.retry_side, args.workers)
    priors = load_priors()
    gold = {str(i): r.gold for i, r in enumerate(rows)}
    entities = {str(i): r.entity for i, r in enumerate(rows)}
    systems = {
        "rules": lambda train: RuleScorer(),
        "ranker_no_layout": lambda train: fit_ranker(train, priors, ignore_features=LAYOUT_FEATURES),
        "ranker_no_capacity": lambda train: fit_ranker(train, priors, ignore_features=CAPACITY_FEATURES),
        "ranker_layout": lambda train: fit_ranker(train, priors),
    }
    if args.systems:
        unknown = set(args.systems) - set(systems)
        if unknown:
            raise SystemExit(f"unknown system(s) {sorted(unknown)}; choose from {sorted(systems)}")
        systems = {name: make for name, make in systems.items() if name in args.systems}
    result: dict = {
        "mode": "cross_validation",
        "retry_side": args.retry_side,
        "folds": args.cv,
        "repeats": args.repeats,
        "rows": len(rows),
        "candidate_recall": candidate_recall(rows),
        "systems": {},
    }
    for name, make in systems.items():
        runs, targets = [], []
        for repeat in range(args.repeats):
            seed = args.seed + repeat
            answers = [
                a[r.entity] for r, a in zip(rows, cross_read(rows, priors, make, args.cv, seed, retry), strict=True)
            ]
            preds = {str(i): a.text for i, a in enumerate(answers)}
            confs = {str(i): a.confidence for i, a in enumerate(answers)}
            runs.append((preds, confs, score_rows(preds, gold, entities).to_dict()))
            folds = grouped_folds(rows, args.cv, seed)
            targets.append(precision_at_targets(rows, answers, folds))
            if repeat == 0:  # risk-coverage on confidences calibrated out of sample (cross-fitted)
                calibrated = {str(i): c for i, c in enumerate(cross_fitted(rows, answers, folds)[0])}
                coverage = risk_coverage(preds, calibrated, gold, entities)
                if args.plot:
                    plot_risk_coverage(preds, calibrated, gold, entities, str(args.plot.with_suffix(f".{name}.png")))
        preds, confs, rep = runs[0]
        correct = {k: normalize_answer(preds[k]) == normalize_answer(gold[k]) for k in preds}
        result["systems"][name] = {
            "f1": rep["f1"],
            "weighted_f1": rep["weighted_f1"],
            "accuracy": rep["accuracy"],
            "per_entity_accuracy": {e: s["accuracy"] for e, s in rep["per_entity"].items()},
            "dims_breakdown": _dims_breakdown(rows, preds),
            "calibration": _calibration(confs, correct),
            "precision_targets": _mean_targets(targets),
            "risk_coverage": coverage,
        }
        if args.repeats > 1:
            result["systems"][name]["over_repeats"] = over_repeats([r for _, _, r in runs])
        print(f"{name}: f1 {rep['f1']:.4f} weighted {rep['weighted_f1']:.4f}", file=sys.stderr)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="real-dev folder (labels.csv, images/)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--scorer", default="ranker", choices=["ranker", "rules"])
    parser.add_argument("--preset", default="accurate")
    parser.add_argument("--cache-dir", default=None, help="OCR cache (default: a fresh temp dir, i.e. cold OCR)")
    parser.add_argument("--retry-side", type=int, default=0, help="second OCR pass for unanswered entities")
    parser.add_argument("--limit", type=int, default=None, help="only the first N rows")
    parser.add_argument("--cv", type=int, default=0, help="K-fold grouped cross-validation of the selectors")
    parser.add_argument("--seed", type=int, default=0, help="fold split seed (the first one, with --repeats)")
    parser.add_argument("--repeats", type=int, default=1, help="CV over this many fold splits; adds mean and sd")
    parser.add_argument("--plot", type=Path, default=None, help="with --cv: risk-coverage PNGs (PLOT.<system>.png)")
    parser.add_argument(
        "--systems", type=lambda text: text.split(","), default=None, help="comma-separated selectors to cross-validate"
    )
    args = parser.parse_args()
    args.data = args.data.resolve()
    if not (args.data / "labels.csv").exists():
        parser.error(f"no labels.csv under {args.data}")
    result = cross_validation(args) if args.cv else end_to_end(args)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
