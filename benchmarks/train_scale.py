"""Training at the full train set's scale: time and peak memory against the number of labelled rows.

Each size runs in a fresh subprocess: synthetic labelled OCR pages
(:func:`specread.synth.synth_pages`, no images, no OCR) stream through the real
feature code into shards (:func:`specread.rank.shards.write_shards`), a grouped
validation part is held out (by image and ``group_id``), and the ranker is
fitted from the shards with early stopping (:meth:`CandidateRanker.fit_shards`).
The child reports its stage times (wall and CPU, the latter robust on a busy
machine), its peak RSS (``ru_maxrss``, and that of its
feature workers), the peak of each stage, and the validation metrics per
entity; the parent adds how time and memory grew against the rows::

    .venv/bin/python -m benchmarks.train_scale                      # 26,000 and 263,000 labelled rows
    .venv/bin/python -m benchmarks.train_scale --sizes 2000,8000    # a quick look

Prints one JSON document. 263,000 rows take several minutes on two cores.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MB = 1024.0


def _peak_kb() -> int | None:
    """This process's peak RSS since the last :func:`_reset_peak` (Linux), None where unknown."""
    try:
        return int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))  # type: ignore[union-attr]
    except (OSError, AttributeError):
        return None


def _reset_peak() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children (the feature workers): robust on a busy machine."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _mb(kb: float | None) -> float | None:
    return None if kb is None else round(kb / MB, 1)


def run_size(args: argparse.Namespace, rows: int, work: Path) -> dict:
    """Generate -> shards -> split -> fit for ``rows`` labelled rows (in this process)."""
    from specread.extract.priors import load_priors
    from specread.rank.ranker import CandidateRanker
    from specread.rank.select import Selector
    from specread.rank.shards import write_shards
    from specread.rank.stream import ShardSplit, fit_shards
    from specread.rank.train import evaluate
    from specread.synth import synth_pages

    priors = load_priors()
    out: dict = {"rows": rows}
    stages: dict[str, float] = {}
    cpu: dict[str, float] = {}
    peaks: dict[str, float | None] = {}

    _reset_peak()
    t, c = time.perf_counter(), _cpu_s()
    shards = write_shards(
        synth_pages(rows, seed=args.seed), priors, work, rows_per_shard=args.rows_per_shard, workers=args.workers
    )
    stages["generate_and_shards_s"] = time.perf_counter() - t
    cpu["generate_and_shards_s"] = _cpu_s() - c
    peaks["shards_peak_mb"] = _mb(_peak_kb())
    out |= {"candidate_rows": shards.n_candidates, "shards": len(shards)}
    out["shard_bytes_mb"] = round(sum(p.stat().st_size for p in work.glob("shard-*.npz")) / MB / MB, 1)

    _reset_peak()
    t, c = time.perf_counter(), _cpu_s()
    split = ShardSplit.holdout(shards, max(2, round(1 / args.valid_fraction)), seed=args.seed)
    stages["split_s"] = time.perf_counter() - t
    cpu["split_s"] = _cpu_s() - c

    t, c = time.perf_counter(), _cpu_s()
    model, report = fit_shards(
        CandidateRanker(n_estimators=args.n_estimators, seed=args.seed),
        shards,
        valid=split,
        early_stopping_rounds=args.early_stopping,
        num_threads=args.threads,
    )
    stages["fit_s"] = time.perf_counter() - t
    cpu["fit_s"] = _cpu_s() - c
    peaks["split_and_fit_peak_mb"] = _mb(_peak_kb())

    held = set(split.valid_rows.tolist())  # the held-out rows read as a reader reads them (specread train's figures)
    rows_held = (r for i, r in enumerate(synth_pages(rows, seed=args.seed)) if i in held)
    valid = evaluate(Selector(model, priors), rows_held).to_dict()
    rounds = report.get("rounds") or 1
    for d in (stages, cpu):
        d["fit_s_per_round"] = d["fit_s"] / rounds
        d["total_s"] = d["generate_and_shards_s"] + d["split_s"] + d["fit_s"]
    out["seconds"] = {k: round(v, 3) for k, v in stages.items()}
    out["cpu_seconds"] = {k: round(v, 3) for k, v in cpu.items()}
    out["peak_rss_mb"] = _mb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    out["workers_peak_rss_mb"] = _mb(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    out["stage_peaks"] = peaks
    out["training"] = report
    out["validation"] = valid
    return out


def _child_command(args: argparse.Namespace, rows: int, work: Path) -> list[str]:
    return [
        sys.executable,
        __file__,
        "--child",
        str(rows),
        "--work",
        str(work),
        "--workers",
        str(args.workers),
        "--threads",
        str(args.threads),
        "--rows-per-shard",
        str(args.rows_per_shard),
        "--valid-fraction",
        str(args.valid_fraction),
        "--early-stopping",
        str(args.early_stopping),
        "--n-estimators",
        str(args.n_estimators),
        "--seed",
        str(args.seed),
    ]


GROWTH: dict[str, tuple[str, ...]] = {
    "candidate_rows": ("candidate_rows",),
    "time_total": ("seconds", "total_s"),
    "time_shards": ("seconds", "generate_and_shards_s"),
    "time_fit": ("seconds", "fit_s"),
    "time_fit_per_round": ("seconds", "fit_s_per_round"),
    "cpu_total": ("cpu_seconds", "total_s"),
    "cpu_shards": ("cpu_seconds", "generate_and_shards_s"),
    "cpu_fit_per_round": ("cpu_seconds", "fit_s_per_round"),
    "peak_rss": ("peak_rss_mb",),
    "workers_peak_rss": ("workers_peak_rss_mb",),
    "shards_stage_peak": ("stage_peaks", "shards_peak_mb"),
    "fit_stage_peak": ("stage_peaks", "split_and_fit_peak_mb"),
}
"""Measures compared across sizes, by their path in a size's result."""


def _get(result: dict, path: tuple[str, ...]) -> float | None:
    for key in path:
        result = result.get(key) if isinstance(result, dict) else None  # type: ignore[assignment]
    return result  # type: ignore[return-value]


def _growth(results: list[dict]) -> dict:
    """How each measure grew from the smallest size to each larger one, next to how the rows grew."""
    first = results[0]
    out = {}
    for r in results[1:]:
        row = {"rows": round(r["rows"] / first["rows"], 2)}
        for name, path in GROWTH.items():
            a, b = _get(first, path), _get(r, path)
            row[name] = round(b / a, 2) if a and b else None
        out[f"{r['rows']}/{first['rows']}"] = row
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="26000,263000", help="labelled rows per run, comma-separated")
    parser.add_argument("--workers", type=int, default=2, help="feature processes")
    parser.add_argument("--threads", type=int, default=1, help="LightGBM threads (more only on an idle machine)")
    parser.add_argument("--rows-per-shard", type=int, default=4096)
    parser.add_argument("--valid-fraction", type=float, default=0.1)
    parser.add_argument("--early-stopping", type=int, default=50)
    parser.add_argument("--n-estimators", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=None, help="folder for the shards (default: a temporary one)")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child is not None:
        import lightgbm  # noqa: F401  (imported before the clock starts: its import is not training time)

        print(json.dumps(run_size(args, args.child, args.work)))
        return

    results = []
    for rows in sorted(int(s) for s in args.sizes.split(",")):
        work = Path(tempfile.mkdtemp(prefix=f"train_scale_{rows}_", dir=args.work))
        try:
            done = subprocess.run(_child_command(args, rows, work), capture_output=True, text=True, check=False)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        if done.returncode != 0:
            sys.exit(f"size {rows} failed:\n{done.stderr[-3000:]}")
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"{rows} rows: {results[-1]['seconds']['total_s']:.0f} s", file=sys.stderr)
    doc = {
        "machine": {"cpus": _cpus(), "python": sys.version.split()[0]},
        "settings": {k: v for k, v in vars(args).items() if k not in ("child", "work")},
        "results": results,
        "growth": _growth(results) if len(results) > 1 else {},
    }
    print(json.dumps(doc, indent=1))


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


if __name__ == "__main__":
    main()
