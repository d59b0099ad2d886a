"""Throughput, accuracy and memory of each OCR preset and runner on a labelled real-image set.

Prints one JSON document: for every (preset, engine) pair, images per second
(wall clock and per CPU second), raw and test-weighted F1, peak and final RSS
per worker, and a projection of the time the official test set's ~91k unique
images would take; for every preset, where one worker's CPU time goes (decode,
detect, classify, recognise, the rest of OCR, select: ``--profile`` images read
in one process with each model timed); and the machine (CPU model, the features
that decide OCR speed: AMX, AVX512-BF16, VNNI; the cores this process may use).

``--engines plain`` adds the baseline a new user would write (:mod:`benchmarks.plain_ocr`: RapidOCR
with its defaults and a regex), once, as preset ``plain-rapidocr``, timed, watched and scored as
the presets are; each run then says how many times the baseline's speed it reads
(``images_per_s_vs_plain``) and its F1 points above it (``weighted_f1_delta_vs_plain``).

Each pair runs in its own child process, so CPU time and peak RSS of its
workers (``getrusage(RUSAGE_CHILDREN)`` once the pool has been reaped) belong
to that pair only. The OCR cache is off: every image is really read.

Usage:
    python -m benchmarks.throughput --sample 144 --seed 4 --presets fast,accurate --engines local
    python -m benchmarks.throughput --sample 120 --presets fast --engines local,plain   # against plain RapidOCR
    python -m benchmarks.throughput                       # every image of real-dev (run on a quiet machine)
    python -m benchmarks.throughput --presets fast,int8 --profile 60 --profile-only   # where the time goes

On a shared machine compare ``cpu_s_per_image``: wall time depends on what
else is running, CPU time much less.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from benchmarks.common import RunWatch
from benchmarks.plain_ocr import PRESET as PLAIN

__all__ = ["ENGINES", "choose_default", "main", "planned_runs"]

ENGINES = ("local", "ray", "plain")
"""Runners: specread's process pool, its Ray runner, and the plain-RapidOCR baseline (:mod:`benchmarks.plain_ocr`)."""

DEFAULT_DATA = Path("/work/shared/data/real-dev")
TEST_UNIQUE_IMAGES = 91_000
"""Unique images behind the official test set's 131,187 rows."""


def _select_images(labels: Path, sample: int | None, limit: int | None, seed: int, stratified: bool) -> list[dict]:
    """Label rows of the chosen images; ``stratified`` draws about as many images per entity."""
    with open(labels, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    links = list(dict.fromkeys(r["image_link"] for r in rows))
    if sample is not None and sample < len(links):
        rng = random.Random(seed)
        if stratified:
            by_entity: dict[str, list[str]] = defaultdict(list)
            for r in rows:
                by_entity[r["entity_name"]].append(r["image_link"])
            per = max(1, sample // len(by_entity))
            picked: set[str] = set()
            for entity in sorted(by_entity):
                pool = sorted(set(by_entity[entity]) - picked)
                picked |= set(rng.sample(pool, min(per, len(pool))))
            links = [link for link in links if link in picked]
        else:
            links = rng.sample(links, sample)
    if limit is not None:
        links = links[:limit]
    keep = set(links)
    return [r for r in rows if r["image_link"] in keep]


def _write_inputs(rows: list[dict], folder: Path) -> tuple[Path, Path]:
    input_csv, gold_csv = folder / "input.csv", folder / "gold.csv"
    with open(input_csv, "w", newline="") as fi, open(gold_csv, "w", newline="") as fg:
        wi, wg = csv.writer(fi), csv.writer(fg)
        wi.writerow(["index", "image_link", "group_id", "entity_name"])
        wg.writerow(["index", "entity_name", "entity_value"])
        for i, r in enumerate(rows):
            wi.writerow([i, r["image_link"], r["group_id"], r["entity_name"]])
            wg.writerow([i, r["entity_name"], r["entity_value"]])
    return input_csv, gold_csv


def _timed(args: argparse.Namespace, input_csv: Path, out: Path, watch: RunWatch) -> tuple[dict, float, float]:
    """Run the pair's engine over ``input_csv``: ``(images/rows/failed_images, wall s, Ray start-up s)``."""
    if args.engine == "plain":
        from benchmarks.plain_ocr import run_plain

        watch.start()
        start = time.perf_counter()
        counts = run_plain(input_csv, args.images, out, args.workers, progress=watch.progress)
        return counts, time.perf_counter() - start, 0.0
    from specread.settings import ReaderConfig, preset

    config = ReaderConfig(scorer=args.scorer, ocr=preset(args.preset), cache_dir=None, retry_side=args.retry_side)
    startup = 0.0
    if args.engine == "ray":
        import ray

        from specread.batch.ray_runner import predict_csv_ray

        start = time.perf_counter()
        ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False, configure_logging=False)
        startup = time.perf_counter() - start  # the cluster, not the work: reported apart
        watch.start()
        start = time.perf_counter()
        try:
            stats = predict_csv_ray(input_csv, args.images, out, config, progress=watch.progress, actors=args.workers)
            wall = time.perf_counter() - start
            watch.look()  # a last reading of the actors still alive
        finally:
            watch.stop()
            ray.shutdown()
    else:
        from specread.batch.local import predict_csv

        watch.start()
        start = time.perf_counter()
        stats = predict_csv(input_csv, args.images, out, config, workers=args.workers, progress=watch.progress)
        wall = time.perf_counter() - start
    return {"images": stats.images, "rows": stats.rows, "failed_images": stats.failed_images}, wall, startup


def _cpu_between(before: resource.struct_rusage, after: resource.struct_rusage) -> float:
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def _run_one(args: argparse.Namespace) -> dict:
    """One (preset, engine) pair in this process: time, score and watch the workers' memory.

    ``engine`` "plain" is :mod:`benchmarks.plain_ocr`'s baseline (its preset :data:`PLAIN`), timed,
    watched and scored the same way as a specread run with the local pool.
    """
    from benchmarks.plain_ocr import fingerprint
    from specread.io.dataset import read_gold, read_predictions
    from specread.metrics import score_rows
    from specread.ocr.rapid import RapidOcrEngine
    from specread.settings import preset

    folder = Path(args.work)
    out = folder / f"out-{args.preset}-{args.engine}.csv"
    out.unlink(missing_ok=True)
    watch = RunWatch(args.engine)
    before_self = resource.getrusage(resource.RUSAGE_SELF)
    before_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        counts, wall, startup = _timed(args, folder / "input.csv", out, watch)
    finally:
        watch.stop()
    after_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_self = _cpu_between(before_self, resource.getrusage(resource.RUSAGE_SELF))
    cpu_children = _cpu_between(before_children, after_children)
    values, entities = read_gold(folder / "gold.csv")
    report = score_rows(read_predictions(out), values, entities).to_dict()
    n = max(1, counts["images"])
    actor_cpu = sum(watch.cpu_seen.values())
    # Ray: the actors' CPU (the driver only streams results); a pool of 2+: its reaped workers' CPU.
    cpu = actor_cpu if args.engine == "ray" else cpu_children if args.workers > 1 else cpu_self + cpu_children
    plain = args.engine == "plain"
    result = {
        "preset": args.preset,
        "engine": args.engine,
        "fingerprint": fingerprint() if plain else RapidOcrEngine(preset(args.preset)).fingerprint(),
        "workers": args.workers,
        "retry_side": 0 if plain else args.retry_side,
        **counts,
        "wall_s": round(wall, 2),
        "startup_s": round(startup, 2),
        "images_per_s": round(counts["images"] / wall, 3),
        "cpu_s_per_image": round(cpu / n, 4),
        "images_per_s_by_cpu": round(args.workers * n / cpu, 3) if cpu else None,
        "f1": report["f1"],
        "weighted_f1": report["weighted_f1"],
        **watch.rss_window(n),
    }
    if args.engine != "ray":
        # ru_maxrss of reaped children: the largest worker's peak (KiB on Linux), exact even between samples.
        peak = max(after_children.ru_maxrss / 1024, result["peak_rss_mb_per_worker"])
        result["peak_rss_mb_per_worker"] = round(peak, 1)
    return result


def _profile_one(args: argparse.Namespace) -> dict:
    """CPU seconds per image of each stage, one reader in this process, the first ``args.profile`` images.

    Images are read as a worker reads them: ``batch_images`` at a time (one engine ``read_many``
    call, their text lines sharing recogniser calls). The first batch is read once before timing
    (first-call set-up of the runtimes), then each batch: decode
    (:func:`~specread.io.images.load_image`), the engine call (the models timed one by one by
    :class:`benchmarks.stage_clock.StageClock`; ``ocr_other`` is the rest: pre/post-processing,
    layout), and selection (:meth:`~specread.rank.select.Selector.select`, the first pass only).
    """
    from benchmarks.stage_clock import StageClock
    from specread.errors import ImageLoadError
    from specread.io.images import load_image
    from specread.pipeline import build_ocr_reader
    from specread.settings import ReaderConfig, preset

    with open(Path(args.work) / "input.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    by_link: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_link[r["image_link"]].append(r)
    reader = build_ocr_reader(ReaderConfig(scorer=args.scorer, ocr=preset(args.preset), cache_dir=None))
    engine = reader.pages.engine
    clock = StageClock.attach(engine)  # type: ignore[arg-type]
    size = engine.settings.batch_images  # type: ignore[union-attr]
    groups = list(by_link.items())[: args.profile + size]
    totals: dict[str, float] = defaultdict(float)
    done = 0
    for first in range(0, len(groups), size):
        start = time.process_time()
        batch = []
        for link, image_rows in groups[first : first + size]:
            try:
                image, _ = load_image(Path(args.images) / link.rsplit("/", 1)[-1], max_side=engine.max_side)  # type: ignore[union-attr]
            except ImageLoadError:
                continue
            batch.append((image, sorted({r["entity_name"] for r in image_rows}), image_rows[0]["group_id"]))
        decoded = time.process_time()
        models = sum(clock.seconds.values())
        pages = engine.read_many([image for image, _, _ in batch])  # type: ignore[union-attr]
        read = time.process_time()
        for page, (_, entities, group) in zip(pages, batch, strict=True):
            reader.selector.select(page, entities, group)
        selected = time.process_time()
        if first == 0:  # warm-up
            clock.reset()
            continue
        done += len(batch)
        totals["decode"] += decoded - start
        totals["ocr_other"] += (read - decoded) - (sum(clock.seconds.values()) - models)
        totals["select"] += selected - read
    totals["detect"], totals["classify"], totals["recognise"] = (clock.seconds[s] for s in ("Det", "Cls", "Rec"))
    total = sum(totals.values())
    order = ("decode", "detect", "classify", "recognise", "ocr_other", "select")
    return {
        "preset": args.preset,
        "images": done,
        "batch_images": size,
        "cpu_s_per_image": round(total / max(1, done), 4),
        "stage_cpu_s_per_image": {k: round(totals[k] / max(1, done), 4) for k in order},
        "stage_share": {k: round(totals[k] / total, 3) if total else None for k in order},
    }


def choose_default(
    candidates: list[dict], tolerance: float = 0.005, min_images_per_s: float = 5.0, cores: int = 2
) -> dict:
    """The default reading settings from measured candidates (the rule of issue 13).

    Each candidate: ``preset``, ``retry_side`` (0: no second pass), ``cpu_s_per_image`` (one worker)
    and ``weighted_f1`` (cross-validated, test-weighted). The preset is the fastest first pass
    within ``tolerance`` of the best first pass's test-weighted F1; the second pass is on when that
    preset with it still reads ``min_images_per_s`` on ``cores`` cores (CPU-bound: cores / CPU s)
    and scores at least as well without it.

    Raises:
        ValueError: no candidate without a second pass.
    """
    first = [c for c in candidates if not c.get("retry_side")]
    if not first:
        raise ValueError("choose_default needs candidates without a second pass (retry_side 0)")
    best = max(c["weighted_f1"] for c in first)
    near = [c for c in first if c["weighted_f1"] >= best - tolerance - 1e-12]
    chosen = min(near, key=lambda c: (c["cpu_s_per_image"], -c["weighted_f1"]))
    retry = [
        c
        for c in candidates
        if c["preset"] == chosen["preset"]
        and c.get("retry_side")
        and cores / c["cpu_s_per_image"] >= min_images_per_s
        and c["weighted_f1"] >= chosen["weighted_f1"]
    ]
    second = max(retry, key=lambda c: c["weighted_f1"]) if retry else None
    return {
        "preset": chosen["preset"],
        "retry_side": second["retry_side"] if second else 0,
        "weighted_f1": (second or chosen)["weighted_f1"],
        "cpu_s_per_image": (second or chosen)["cpu_s_per_image"],
        "best_first_pass_weighted_f1": best,
    }


def _projection(run: dict, cores: int) -> dict:
    rate_wall = run["images_per_s"]
    rate_cpu = cores / run["cpu_s_per_image"] if run["cpu_s_per_image"] else None
    return {
        "hours_at_measured_rate": round(TEST_UNIQUE_IMAGES / rate_wall / 3600, 2) if rate_wall else None,
        f"hours_on_{cores}_idle_cores": round(TEST_UNIQUE_IMAGES / rate_cpu / 3600, 2) if rate_cpu else None,
        "core_hours": round(TEST_UNIQUE_IMAGES * run["cpu_s_per_image"] / 3600, 2),
    }


def planned_runs(engines: list[str], presets: list[str]) -> list[tuple[str, str]]:
    """``(preset, engine)`` of each timed run: every preset on each specread engine, the baseline once.

    Raises:
        ValueError: an engine outside :data:`ENGINES`.
    """
    unknown = sorted(set(engines) - set(ENGINES))
    if unknown:
        raise ValueError(f"unknown engines {unknown}; choose among {', '.join(ENGINES)}")
    return [(name, engine) for engine in engines for name in ([PLAIN] if engine == "plain" else presets)]


def _engines(text: str) -> list[str]:
    """``--engines``: comma-separated names of :data:`ENGINES`, refused at parse time rather than mid-run."""
    engines = text.split(",")
    try:
        planned_runs(engines, [])
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return engines


def _compare(runs: list[dict], cores: int) -> None:
    """Add to each run its scores against the accurate preset, its speed against the baseline, the 91k projection."""
    base = next((r for r in runs if r["preset"] == "accurate" and r["engine"] == "local"), runs[0] if runs else None)
    plain = next((r for r in runs if r["engine"] == "plain"), None)
    for r in runs if base else ():
        r["weighted_f1_delta_vs_accurate"] = round(r["weighted_f1"] - base["weighted_f1"], 4)
        r["f1_delta_vs_accurate"] = round(r["f1"] - base["f1"], 4)
        if plain and r is not plain:  # how many times the baseline's speed, and F1 points above it
            r["images_per_s_vs_plain"] = round(r["images_per_s"] / plain["images_per_s"], 2)
            r["weighted_f1_delta_vs_plain"] = round(r["weighted_f1"] - plain["weighted_f1"], 4)
        r["projection_91k_unique_images"] = _projection(r, cores)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with labels.csv and images/")
    parser.add_argument("--sample", type=int, help="a seeded random sample of N images")
    parser.add_argument("--limit", type=int, help="the first N images")
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--uniform", action="store_true", help="sample images uniformly, not per entity")
    parser.add_argument("--presets", default="fast,accurate,int8")
    parser.add_argument("--engines", type=_engines, default="local", help=f"comma-separated, of {', '.join(ENGINES)}")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: the usable cores)")
    parser.add_argument("--scorer", default="rules")
    parser.add_argument("--retry-side", type=int, default=0, help="second OCR pass at this detector side (0: off)")
    parser.add_argument("--output", type=Path, help="also write the JSON here")
    parser.add_argument("--plot", type=Path, help="also draw images/s against test-weighted F1 per run (PNG)")
    parser.add_argument("--profile", type=int, default=40, help="images read in one process per preset (0: none)")
    parser.add_argument("--profile-only", action="store_true", help="only the stage profile, no timed runs")
    parser.add_argument("--one", nargs=2, metavar=("PRESET", "ENGINE"), help=argparse.SUPPRESS)
    parser.add_argument("--profile-one", metavar="PRESET", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--images", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        args.preset, args.engine = args.one
        print(json.dumps(_run_one(args)))
        return 0
    if args.profile_one:
        args.preset = args.profile_one
        print(json.dumps(_profile_one(args)))
        return 0

    from specread.hardware import cpu_info, usable_cpus

    rows = _select_images(args.data / "labels.csv", args.sample, args.limit, args.seed, not args.uniform)
    cores = usable_cpus()
    args.workers = args.workers or cores
    presets = args.presets.split(",")
    runs: list[dict] = []
    profiles: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="specread-bench-") as tmp:
        _write_inputs(rows, Path(tmp))
        common = ["--work", tmp, "--images", str(args.data / "images"), "--scorer", args.scorer]
        jobs = [(profiles, ["--profile-one", p, "--profile", str(args.profile)]) for p in presets if args.profile]
        sizes = ["--workers", str(args.workers), "--retry-side", str(args.retry_side)]
        for name, engine in [] if args.profile_only else planned_runs(args.engines, presets):
            jobs.append((runs, ["--one", name, engine, *sizes]))
        for into, options in jobs:
            done = subprocess.run(
                [sys.executable, "-m", "benchmarks.throughput", *options, *common],
                capture_output=True,
                text=True,
                cwd=Path(__file__).resolve().parents[1],  # the repository root: `benchmarks` is a package there
                env={**os.environ, "OMP_NUM_THREADS": "1"},
            )
            if done.returncode != 0:
                print(done.stderr, file=sys.stderr)
                return done.returncode
            into.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(into[-1]), file=sys.stderr)
    _compare(runs, cores)
    doc = {
        "data": str(args.data),
        "images": len({r["image_link"] for r in rows}),
        "rows": len(rows),
        "sample": args.sample,
        "limit": args.limit,
        "seed": args.seed,
        "stratified": not args.uniform and args.sample is not None,
        "cpu": cpu_info().to_dict(),
        "cpu_count": cores,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "runs": runs,
        "stage_profile": profiles,
    }
    _write(doc, args.output, args.plot)
    return 0


def _write(doc: dict, output: Path | None, plot: Path | None) -> None:
    """Print the JSON document; also write it to ``output`` and draw ``plot``, where given."""
    text = json.dumps(doc, indent=2)
    print(text)
    if output:
        output.write_text(text + "\n")
    if plot and doc["runs"]:
        from benchmarks.throughput_plot import plot_runs

        plot_runs(doc["runs"], doc["cpu"].get("model") or "this CPU", plot)


if __name__ == "__main__":
    sys.exit(main())
