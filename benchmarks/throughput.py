"""Throughput, accuracy and memory of each OCR preset and runner on a labelled real-image set.

Prints one JSON document: for every (preset, engine) pair, images per second
(wall clock and per CPU second), raw and test-weighted F1, peak and final RSS
per worker, and a projection of the time the official test set's ~91k unique
images would take.

Each pair runs in its own child process, so CPU time and peak RSS of its
workers (``getrusage(RUSAGE_CHILDREN)`` once the pool has been reaped) belong
to that pair only. The OCR cache is off: every image is really read.

Usage:
    python benchmarks/throughput.py --sample 144 --seed 4 --presets accurate,fast --engines local
    python benchmarks/throughput.py                       # every image of real-dev (run on a quiet machine)

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

__all__ = ["main"]

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
    from specread.ocr.engine import RapidOcrEngine
    from specread.settings import ReaderConfig, preset

    config = ReaderConfig(scorer=args.scorer, ocr=preset(args.preset), cache_dir=None)
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
    engine = RapidOcrEngine(**preset(args.preset).engine_options())
    result = {
        "preset": args.preset,
        "engine": args.engine,
        "fingerprint": engine.fingerprint(),
        "workers": args.workers,
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
    parser.add_argument("--presets", default="accurate,fast")
    parser.add_argument("--engines", default="local", help="local and/or ray, comma-separated")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--scorer", default="rules")
    parser.add_argument("--output", type=Path, help="also write the JSON here")
    parser.add_argument("--one", nargs=2, metavar=("PRESET", "ENGINE"), help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--images", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.one:
        args.preset, args.engine = args.one
        print(json.dumps(_run_one(args)))
        return 0

    rows = _select_images(args.data / "labels.csv", args.sample, args.limit, args.seed, not args.uniform)
    cores = os.cpu_count() or 1
    runs = []
    with tempfile.TemporaryDirectory(prefix="specread-bench-") as tmp:
        _write_inputs(rows, Path(tmp))
        for engine in args.engines.split(","):
            for preset in args.presets.split(","):
                cmd = [sys.executable, __file__, "--one", preset, engine, "--work", tmp]
                cmd += ["--images", str(args.data / "images"), "--workers", str(args.workers), "--scorer", args.scorer]
                done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
                if done.returncode != 0:
                    print(done.stderr, file=sys.stderr)
                    return done.returncode
                runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
                print(json.dumps(runs[-1]), file=sys.stderr)
    base = next((r for r in runs if r["preset"] == "accurate" and r["engine"] == "local"), runs[0])
    for r in runs:
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
        "cpu_count": cores,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "runs": runs,
    }
    text = json.dumps(doc, indent=2)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
