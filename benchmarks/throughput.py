"""Throughput, accuracy and memory of each OCR preset and runner on a labelled real-image set.

Prints one JSON document: for every (preset, engine) pair, images per second
(wall clock and per CPU second), raw and test-weighted F1, peak and final RSS
per worker, and a projection of the time the official test set's ~91k unique
images would take; for every preset, where one worker's CPU time goes (decode,
detect, classify, recognise, the rest of OCR, select: ``--profile`` images read
in one process with each model timed); and the machine (CPU model, the features
that decide OCR speed: AMX, AVX512-BF16, VNNI; the cores this process may use).

Each pair runs in its own child process, so CPU time and peak RSS of its
workers (``getrusage(RUSAGE_CHILDREN)`` once the pool has been reaped) belong
to that pair only. The OCR cache is off: every image is really read.

Usage:
    python -m benchmarks.throughput --sample 144 --seed 4 --presets fast,accurate --engines local
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
import threading
import time
from collections import defaultdict
from pathlib import Path

__all__ = ["choose_default", "main"]

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


def _rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _worker_pids(engine: str) -> list[int]:
    """Pool workers (children of this process) or Ray reader actors (found by command line)."""
    me, pids = os.getpid(), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if engine == "local":
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
                if ppid == me:
                    pids.append(int(entry))
            else:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    if b"ImageBatchReader" in fh.read():
                        pids.append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return pids


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process (for Ray actors, which are not our children)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def _run_one(args: argparse.Namespace) -> dict:
    """One (preset, engine) pair in this process: time, score and watch the workers' memory."""
    from specread.io.dataset import read_gold, read_predictions
    from specread.metrics import score_rows
    from specread.ocr.rapid import RapidOcrEngine
    from specread.settings import ReaderConfig, preset

    config = ReaderConfig(scorer=args.scorer, ocr=preset(args.preset), cache_dir=None, retry_side=args.retry_side)
    folder = Path(args.work)
    input_csv, gold_csv = folder / "input.csv", folder / "gold.csv"
    out = folder / f"out-{args.preset}-{args.engine}.csv"
    out.unlink(missing_ok=True)
    samples: list[tuple[int, float]] = []  # (images done, largest worker RSS in MB)
    peak_seen: dict[int, float] = {}
    lock = threading.Lock()
    state = {"done": 0, "total": 0}

    cpu_seen: dict[int, float] = {}  # Ray actors: last CPU reading (they may exit before we look at the end)

    def look() -> None:
        pids = _worker_pids(args.engine)
        rss = {pid: r for pid in pids if (r := _rss_mb(pid)) is not None}
        with lock:
            for pid, r in rss.items():
                peak_seen[pid] = max(peak_seen.get(pid, 0.0), r)
                if args.engine == "ray":
                    cpu_seen[pid] = max(cpu_seen.get(pid, 0.0), _cpu_s(pid))
            if rss:
                samples.append((state["done"], max(rss.values())))

    def watch(stop: threading.Event) -> None:
        while not stop.wait(0.25):
            look()

    def progress(done: int, total: int) -> None:
        state["done"], state["total"] = done, total

    stop = threading.Event()
    watcher = threading.Thread(target=watch, args=(stop,), daemon=True)
    before_self = resource.getrusage(resource.RUSAGE_SELF)
    before_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    startup = 0.0
    actor_cpu = 0.0
    if args.engine == "ray":
        import ray

        from specread.batch.ray_runner import predict_csv_ray

        start = time.perf_counter()
        ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False, configure_logging=False)
        startup = time.perf_counter() - start  # the cluster, not the work: reported apart
        watcher.start()
        start = time.perf_counter()
        try:
            stats = predict_csv_ray(input_csv, args.images, out, config, progress=progress, actors=args.workers)
            wall = time.perf_counter() - start
            look()  # a last reading of the actors still alive
            actor_cpu = sum(cpu_seen.values())
        finally:
            stop.set()
            ray.shutdown()
    else:
        from specread.batch.local import predict_csv

        watcher.start()
        start = time.perf_counter()
        stats = predict_csv(input_csv, args.images, out, config, workers=args.workers, progress=progress)
        wall = time.perf_counter() - start
        stop.set()
    watcher.join()
    after_self, after_children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_self = (after_self.ru_utime + after_self.ru_stime) - (before_self.ru_utime + before_self.ru_stime)
    cpu_children = (after_children.ru_utime + after_children.ru_stime) - (
        before_children.ru_utime + before_children.ru_stime
    )
    values, entities = read_gold(gold_csv)
    report = score_rows(read_predictions(out), values, entities).to_dict()
    n = max(1, stats.images)
    cpu = cpu_self + cpu_children + actor_cpu
    first = [r for d, r in samples if d <= max(1, n // 5)]
    last = [r for d, r in samples if d >= n - max(1, n // 5)]
    engine = RapidOcrEngine(preset(args.preset))
    result = {
        "preset": args.preset,
        "engine": args.engine,
        "fingerprint": engine.fingerprint(),
        "workers": args.workers,
        "retry_side": args.retry_side,
        "images": stats.images,
        "rows": stats.rows,
        "failed_images": stats.failed_images,
        "wall_s": round(wall, 2),
        "startup_s": round(startup, 2),
        "images_per_s": round(stats.images / wall, 3),
        "cpu_s_per_image": round(cpu / n, 4),
        "images_per_s_by_cpu": round(args.workers * n / cpu, 3) if cpu else None,
        "f1": report["f1"],
        "weighted_f1": report["weighted_f1"],
        "peak_rss_mb_per_worker": round(max(peak_seen.values(), default=0.0), 1),
        "rss_mb_first_fifth": round(max(first), 1) if first else None,
        "rss_mb_last_fifth": round(max(last), 1) if last else None,
    }
    if args.engine == "ray":  # the actors' CPU: the driver only streams results
        result["cpu_s_per_image"] = round(actor_cpu / n, 4)
        result["images_per_s_by_cpu"] = round(args.workers * n / actor_cpu, 3) if actor_cpu else None
    if args.engine == "local":
        # ru_maxrss of reaped children: the largest worker's peak (KiB on Linux), exact even between samples.
        result["peak_rss_mb_per_worker"] = round(
            max(after_children.ru_maxrss / 1024, result["peak_rss_mb_per_worker"]), 1
        )
        result["cpu_s_per_image"] = round(cpu_children / n, 4) if args.workers > 1 else round(cpu / n, 4)
        result["images_per_s_by_cpu"] = round(args.workers * n / (cpu_children if args.workers > 1 else cpu), 3)
    return result


def _profile_one(args: argparse.Namespace) -> dict:
    """CPU seconds per image of each stage, one reader in this process, the first ``args.profile`` images.

    The first image is read once before timing (first-call set-up of the runtimes), then each image:
    decode (:func:`~specread.io.images.load_image`), the engine call (the models timed one by one by
    :class:`benchmarks.stage_clock.StageClock`; ``ocr_other`` is the rest: pre/post-processing, layout),
    and selection (:meth:`~specread.rank.select.Selector.select`, the first pass only).
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
    totals: dict[str, float] = defaultdict(float)
    done = 0
    for i, (link, image_rows) in enumerate(list(by_link.items())[: args.profile + 1]):
        path = Path(args.images) / link.rsplit("/", 1)[-1]
        entities = sorted({r["entity_name"] for r in image_rows})
        start = time.process_time()
        try:
            image, _ = load_image(path, max_side=engine.max_side)  # type: ignore[union-attr]
        except ImageLoadError:
            continue
        decoded = time.process_time()
        models = sum(clock.seconds.values())
        page = engine(image)  # type: ignore[misc]
        read = time.process_time()
        reader.selector.select(page, entities, image_rows[0]["group_id"])
        selected = time.process_time()
        if i == 0:  # warm-up
            clock.reset()
            continue
        done += 1
        totals["decode"] += decoded - start
        totals["ocr_other"] += (read - decoded) - (sum(clock.seconds.values()) - models)
        totals["select"] += selected - read
    totals["detect"], totals["classify"], totals["recognise"] = (clock.seconds[s] for s in ("Det", "Cls", "Rec"))
    total = sum(totals.values())
    order = ("decode", "detect", "classify", "recognise", "ocr_other", "select")
    return {
        "preset": args.preset,
        "images": done,
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with labels.csv and images/")
    parser.add_argument("--sample", type=int, help="a seeded random sample of N images")
    parser.add_argument("--limit", type=int, help="the first N images")
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--uniform", action="store_true", help="sample images uniformly, not per entity")
    parser.add_argument("--presets", default="fast,accurate,int8")
    parser.add_argument("--engines", default="local", help="local and/or ray, comma-separated")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: the usable cores)")
    parser.add_argument("--scorer", default="rules")
    parser.add_argument("--retry-side", type=int, default=0, help="second OCR pass at this detector side (0: off)")
    parser.add_argument("--output", type=Path, help="also write the JSON here")
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
        for engine in [] if args.profile_only else args.engines.split(","):
            for preset in presets:
                sizes = ["--workers", str(args.workers), "--retry-side", str(args.retry_side)]
                jobs.append((runs, ["--one", preset, engine, *sizes]))
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
    base = next((r for r in runs if r["preset"] == "accurate" and r["engine"] == "local"), runs[0] if runs else None)
    for r in runs if base else ():
        r["weighted_f1_delta_vs_accurate"] = round(r["weighted_f1"] - base["weighted_f1"], 4)
        r["f1_delta_vs_accurate"] = round(r["f1"] - base["f1"], 4)
        r["projection_91k_unique_images"] = _projection(r, cores)
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
    text = json.dumps(doc, indent=2)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
