"""Whole-image reading on real-dev, shaped like the official test; prints JSON.

The official test asks several entities of one image for more than half of its rows (26k of
its 91k images ask for two or three of width/height/depth). Here every real-dev image with a
dimension label is asked for all three dimensions at once, and the labelled row is scored;
the same images asked for the labelled entity alone are the comparison. Grouped, repeated
cross-validation as in ``real_dev.py --cv``: no image and no ``group_id`` on both sides, the
ranker fitted on the other folds, means and spread over ``--repeats`` fold splits.

Reported, for the whole-image selector (``joint``) and for entities read one at a time
(``independent``, the selector before whole-image reading):

* ``dimensions``: accuracy of the dimension rows asked alone and asked with all three, and the
  collision rate (images whose three answers repeat a value);
* ``multi_labelled``: the few real-dev images labelled with two dimensions, asked for exactly
  those, each row scored (the test's situation, but only a handful of images);
* the usual CV figures: F1, test-weighted F1 and accuracy per entity (rows asked alone);
* ``reliability``: accuracy per confidence band, per entity, with confidences calibrated by
  cross-fitting (each fold's map fitted on the other folds' out-of-fold answers), and the
  accuracy of the dimension rows in the top confidence quintile;
* ``sample_test``: on the official sample test (its images and rows), how many images asking
  for two or more dimensions get a repeated value (packaged model).

    python -m benchmarks.whole_image --cv 5 --repeats 8
    python -m benchmarks.whole_image --cv 5 --repeats 2 --preset fast --retry-side 1280
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from benchmarks.common import DEFAULT_DATA, DIMS, load_dev_rows
from benchmarks.targets import cross_fitted
from specread.extract.priors import load_priors
from specread.metrics import normalize_answer, reliability, score_rows
from specread.rank.select import DEFAULT_JOINT
from specread.rank.train import cross_read, fit_ranker, grouped_folds
from specread.types import LabelledRow, Prediction

SAMPLE_TEST = DEFAULT_DATA.parent / "sample-test"


def _key(p: Prediction) -> tuple[float, str] | None:
    return normalize_answer(p.text)


def _collides(answers: dict[str, Prediction]) -> bool:
    keys = [_key(answers[e]) for e in DIMS if e in answers and _key(answers[e]) is not None]
    return len(set(keys)) < len(keys)


def _top_quintile(rows: Sequence[LabelledRow], answers: list[dict[str, Prediction]], confs: list[float]) -> float:
    dims = [
        (confs[i], normalize_answer(answers[i][r.entity].text) == normalize_answer(r.gold))
        for i, r in enumerate(rows)
        if r.entity in DIMS
    ]
    dims.sort(key=lambda t: -t[0])
    top = dims[: max(1, len(dims) // 5)]
    return float(np.mean([right for _, right in top]))


def _multi_labelled(rows: Sequence[LabelledRow], answers: list[dict[str, Prediction]]) -> dict:
    by_image: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        if r.entity in DIMS:
            by_image[r.key].append(i)
    hits = [
        normalize_answer(answers[i][rows[i].entity].text) == normalize_answer(rows[i].gold)
        for idx in by_image.values()
        if len(idx) > 1
        for i in idx
    ]
    return {"rows": len(hits), "accuracy": round(float(np.mean(hits)), 4) if hits else None}


def _one_split(rows: list[LabelledRow], make: Callable, args: argparse.Namespace, seed: int, joint, retry) -> dict:
    """One fold split: rows asked alone, dimension images asked for all three, multi-labelled images as labelled."""
    priors = load_priors()
    alone = cross_read(rows, priors, make, args.cv, seed, retry, joint=joint)
    three = cross_read(
        rows, priors, make, args.cv, seed, retry, ask=lambda r: DIMS if r.entity in DIMS else [r.entity], joint=joint
    )
    labelled: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        if r.entity in DIMS:
            labelled[r.key].append(r.entity)
    as_labelled = cross_read(
        rows, priors, make, args.cv, seed, retry, ask=lambda r: labelled.get(r.key) or [r.entity], joint=joint
    )
    gold = {str(i): r.gold for i, r in enumerate(rows)}
    entities = {str(i): r.entity for i, r in enumerate(rows)}
    report = score_rows(
        {str(i): a[r.entity].text for i, (r, a) in enumerate(zip(rows, alone, strict=True))}, gold, entities
    ).to_dict()
    dims = [i for i, r in enumerate(rows) if r.entity in DIMS]

    def dim_accuracy(answers: list[dict[str, Prediction]]) -> float:
        return float(
            np.mean([normalize_answer(answers[i][rows[i].entity].text) == normalize_answer(rows[i].gold) for i in dims])
        )

    folds = grouped_folds(rows, args.cv, seed)
    confs, _ = cross_fitted(rows, [a[r.entity] for r, a in zip(rows, alone, strict=True)], folds)
    images = {rows[i].key: three[i] for i in dims}
    return {
        "report": report,
        "alone": dim_accuracy(alone),
        "all_three": dim_accuracy(three),
        "collision_all_three": float(np.mean([_collides(a) for a in images.values()])),
        "multi_labelled": _multi_labelled(rows, as_labelled),
        "top_quintile": _top_quintile(rows, alone, confs),
        "reliability": reliability(
            {str(i): a[r.entity].text for i, (r, a) in enumerate(zip(rows, alone, strict=True))},
            {str(i): c for i, c in enumerate(confs)},
            gold,
            entities,
        ),
    }


def _mean(values: Sequence[float]) -> dict:
    return {"mean": round(float(np.mean(values)), 4), "sd": round(float(np.std(values)), 4)}


def sample_test_collisions(args: argparse.Namespace, joint) -> dict:
    """On the official sample test: images asking for 2+ dimensions, and how many answers repeat a value."""
    from specread.pipeline import build_ocr_reader
    from specread.settings import ReaderConfig, preset

    folder = args.sample_test
    csv_path = next(folder.glob("*.csv"), None)
    if csv_path is None or not (folder / "images").is_dir():
        return {"skipped": f"no sample test under {folder}"}
    asked: dict[str, list[str]] = defaultdict(list)
    groups: dict[str, str] = {}
    with open(csv_path, newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            name = r["image_link"].rsplit("/", 1)[-1]
            asked[name].append(r["entity_name"])
            groups[name] = r["group_id"]
    config = ReaderConfig(cache_dir=args.cache_dir or "default", ocr=preset(args.preset), retry_side=args.retry_side)
    reader = build_ocr_reader(config)
    reader.selector.joint = joint
    multi = collided = 0
    for name, entities in sorted(asked.items()):
        dims = [e for e in entities if e in DIMS]
        path = folder / "images" / name
        if len(dims) < 2 or not path.exists():
            continue
        multi += 1
        collided += _collides(reader.read(path, entities, groups[name]).predictions)
    return {"multi_dimension_images": multi, "with_a_repeated_value": collided}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--sample-test", type=Path, default=SAMPLE_TEST)
    parser.add_argument("--cv", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--retry-side", type=int, default=1280)
    parser.add_argument("--cache-dir", default=None, help="OCR cache (default: the user cache)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    rows, retry = load_dev_rows(args.data.resolve(), args.cache_dir, args.preset, args.retry_side, args.workers)
    priors = load_priors()
    fitted: dict[tuple[int, ...], object] = {}

    def make(train: Sequence[LabelledRow]):
        """One ranker per training side: the asks and both selectors of a fold split share it."""
        key = tuple(id(r) for r in train)
        if key not in fitted:
            fitted[key] = fit_ranker(train, priors)
        return fitted[key]

    result: dict = {"rows": len(rows), "dimension_rows": sum(r.entity in DIMS for r in rows), "systems": {}}
    for name, joint in (("independent", None), ("joint", DEFAULT_JOINT)):
        splits = [_one_split(rows, make, args, args.seed + k, joint, retry) for k in range(args.repeats)]
        first = splits[0]
        result["systems"][name] = {
            "dimensions": {
                "alone": _mean([s["alone"] for s in splits]),
                "all_three": _mean([s["all_three"] for s in splits]),
                "collision_all_three": _mean([s["collision_all_three"] for s in splits]),
            },
            "multi_labelled": {
                "rows": first["multi_labelled"]["rows"],
                "accuracy": _mean([s["multi_labelled"]["accuracy"] for s in splits if s["multi_labelled"]["rows"]]),
            },
            "f1": _mean([s["report"]["f1"] for s in splits]),
            "weighted_f1": _mean([s["report"]["weighted_f1"] for s in splits]),
            "per_entity_accuracy": {
                e: _mean([s["report"]["per_entity"][e]["accuracy"] for s in splits])
                for e in first["report"]["per_entity"]
            },
            "dimension_top_quintile_accuracy": _mean([s["top_quintile"] for s in splits]),
            "reliability": first["reliability"],
            "sample_test": sample_test_collisions(args, joint),
        }
        print(f"{name}: {json.dumps(result['systems'][name]['dimensions'])}", file=sys.stderr)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
