"""What the benchmarks share: real-dev's labelled rows, parallel jobs, the command line, summaries, subprocesses.

The scripts import these public helpers and never each other's private names, so a helper is
changed in one place and a script can be read on its own (as docTR's ``references/*/utils.py``).
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from specread.metrics import normalize_answer
from specread.settings import ReaderConfig, preset

__all__ = [
    "DEFAULT_DATA",
    "DIMS",
    "STATE",
    "Finished",
    "RunWatch",
    "bench_cli",
    "candidate_recall",
    "child_env",
    "cpu_s",
    "descendants",
    "free_port",
    "kill_group",
    "load_dev_rows",
    "mb",
    "mean_sd",
    "over_repeats",
    "parallel_map",
    "proc_field",
    "run_measured",
    "save_k_plot",
    "score_summary",
    "specread_command",
    "worker_pids",
]

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real-dev"
"""The real challenge dev set (``labels.csv``, ``images/``), next to the checkout."""

DIMS = ("width", "height", "depth")

STATE: dict = {}
"""What :func:`parallel_map` hands its jobs: set before the workers fork, so it is not pickled per job."""


def load_dev_rows(
    data: Path, cache_dir: str | None, preset_name: str = "accurate", retry_side: int = 0, workers: int = 2
) -> tuple[list, Callable | None]:
    """Real-dev labelled rows with their OCR pages (read through the cache, warmed first).

    Returns ``(rows, retry)``: :class:`LabelledRow` list (unreadable images skipped) and, with
    ``retry_side``, a row -> finer second page function for :func:`cross_validate` (else None).
    """
    from specread.batch.warm import warm_cache
    from specread.errors import ImageLoadError
    from specread.io.dataset import image_name
    from specread.pipeline import build_pages
    from specread.rank.train import load_labelled_rows

    config = ReaderConfig(
        scorer="rules", cache_dir=cache_dir or "default", ocr=preset(preset_name), retry_side=retry_side
    )
    with open(data / "labels.csv", newline="", encoding="utf-8") as fh:
        paths = [data / "images" / image_name(r["image_file"]) for r in csv.DictReader(fh)]
    warm_cache(paths, config, workers)
    pages, finer = build_pages(config)

    def page_or_none(read, path: Path):
        try:
            return read(path)
        except ImageLoadError:
            return None

    rows = load_labelled_rows(data / "labels.csv", data / "images", lambda p: page_or_none(pages, p))
    retry = (lambda row: page_or_none(finer, data / "images" / row.key)) if finer else None
    return rows, retry


def candidate_recall(rows) -> dict:
    """Per entity, the share of rows whose label is among the candidates: no selector can beat it.

    Rows answered by the group prior (nothing read) can still be right, so accuracy may exceed
    it by a little.
    """
    from specread.extract.candidates import find_mentions
    from specread.extract.features import page_candidates
    from specread.extract.priors import load_priors

    priors = load_priors()
    hits: dict[str, list[bool]] = {}
    for r in rows:
        gold = normalize_answer(r.gold)
        cands = page_candidates(r.page, find_mentions(r.page), r.entity, priors, r.group_id or None)
        found = any(normalize_answer(f"{c.quantity.value} {c.quantity.unit}") == gold for c in cands)
        hits.setdefault(r.entity, []).append(gold is not None and found)
    return {e: {"rows": len(h), "label_among_candidates": round(sum(h) / len(h), 4)} for e, h in sorted(hits.items())}


def mean_sd(values: Sequence[float]) -> dict:
    """``{"mean", "sd"}`` of ``values``, rounded to 4 places as every benchmark reports them."""
    return {"mean": round(float(np.mean(values)), 4), "sd": round(float(np.std(values)), 4)}


def over_repeats(reports: list[dict]) -> dict:
    """Mean and spread of the scores over fold splits (one split of ~1k rows moves dims by +-3 pts)."""
    series = {
        "f1": [r["f1"] for r in reports],
        "weighted_f1": [r["weighted_f1"] for r in reports],
        **{e: [r["per_entity"][e]["accuracy"] for r in reports] for e in reports[0]["per_entity"]},
    }
    return {k: mean_sd(v) for k, v in series.items()}


def score_summary(scores: list[dict]) -> dict:
    """Mean and sd of each score (``f1``, ``weighted_f1``, ``per_entity_f1``) over runs."""
    return {
        "f1": mean_sd([s["f1"] for s in scores]),
        "weighted_f1": mean_sd([s["weighted_f1"] for s in scores]),
        "per_entity_f1": {  # over the runs whose part holds the entity (a small part can lack a rare one)
            e: mean_sd([s["per_entity_f1"][e] for s in scores if e in s["per_entity_f1"]])
            for e in sorted({e for s in scores for e in s["per_entity_f1"]})
        },
    }


def parallel_map(fn: Callable, jobs: Sequence, workers: int, **state: object) -> list:
    """``[fn(job) for job in jobs]`` over ``workers`` forked processes; ``state`` is read by ``fn`` from ``STATE``."""
    STATE.clear()
    STATE.update(state)
    if workers <= 1 or len(jobs) <= 1:
        return [fn(j) for j in jobs]
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        return pool.map(fn, jobs, chunksize=1)


def bench_cli(doc: str, add_arguments: Callable, run: Callable, plot: Callable) -> None:
    """The shared command line of the real-dev training benchmarks: parse, ``run``, print and write JSON, ``plot``.

    ``run(args)`` returns ``(result, extra)``; ``plot(result, extra, path)`` draws the PNG.
    """
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="real-dev folder (labels.csv, images/)")
    parser.add_argument("--cache-dir", default=None, help="OCR cache (accurate preset); cold OCR without it")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out-json", type=Path, default=None)
    parser.add_argument("--out-png", type=Path, default=None)
    add_arguments(parser)
    args = parser.parse_args()
    args.data = args.data.resolve()
    if not (args.data / "labels.csv").exists():
        parser.error(f"no labels.csv under {args.data}")
    result, extra = run(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out_json:
        args.out_json.write_text(text + "\n")
    if args.out_png:
        plot(result, extra, args.out_png)
        print(f"plot: {args.out_png}", file=sys.stderr)


def save_k_plot(fig: object, axes: Sequence, ks: Sequence[int], path: Path) -> None:
    """Label every panel's x axis with the k values alone, add the legends, and write the figure to ``path``."""
    import matplotlib.pyplot as plt

    for axis in axes:
        axis.minorticks_off()
        axis.set_xticks(ks, [str(k) for k in ks])
        axis.legend(fontsize=8)
    fig.tight_layout()  # type: ignore[attr-defined]
    fig.savefig(path, dpi=120)  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[arg-type]


# -- subprocesses: the hostile and fault benchmarks ------------------------------------------------------------------
def specread_command() -> list[str]:
    """The ``specread`` console script next to this Python, or the same entry point through ``-c``."""
    script = Path(sys.executable).with_name("specread")
    return [str(script)] if script.exists() else [sys.executable, "-c", "from specread.cli import app; app()"]


def child_env() -> dict[str, str]:
    """Child environment: plain, very wide log lines (one warning per line, parseable)."""
    return {**os.environ, "COLUMNS": "10000", "NO_COLOR": "1", "TERM": "dumb", "PYTHONUNBUFFERED": "1"}


def mb(kb: float) -> float:
    return round(kb / 1024, 1)


@dataclass
class Finished:
    """A subprocess that ran to its end or was killed at its timeout."""

    returncode: int
    timed_out: bool
    peak_rss_mb: float
    wall_s: float
    stdout: str
    stderr: str

    @property
    def failed(self) -> bool:
        return self.timed_out or self.returncode != 0 or "Traceback" in self.stderr

    def why(self) -> str:
        """One line: timeout, signal or the last line of the error output."""
        if self.timed_out:
            return f"timed out after {self.wall_s:.0f} s"
        if self.returncode < 0:
            return f"killed by signal {signal.Signals(-self.returncode).name}"
        lines = [ln.strip(" │|") for ln in self.stderr.strip().splitlines() if ln.strip(" │|╰─╯")]
        return f"exit {self.returncode}: {lines[-1][:300] if lines else '(no output)'}"


def kill_group(pgid: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


class TreePeak:
    """The largest peak RSS (``VmHWM``) of a process and its descendants, sampled from ``/proc`` until stopped.

    Not ``ru_maxrss`` from ``os.wait4``: Linux carries the forking process's high-water mark into
    every child across fork and exec, so a child of a 1.2 GB test process reports 1.2 GB however
    little it uses. ``VmHWM`` belongs to the process's own memory.
    """

    def __init__(self, pid: int, every: float = 0.05) -> None:
        self.pid = pid
        self.peaks: dict[int, int] = {}
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while True:
            for pid in [self.pid, *descendants(self.pid)]:
                field = proc_field(pid, "VmHWM").split()  # "123456 kB"; empty once the process is gone
                if field and field[0].isdigit():
                    self.peaks[pid] = max(self.peaks.get(pid, 0), int(field[0]))
            if self._stop.wait(self._every):
                return

    def stop(self) -> float:
        """Stop sampling; the largest process's peak in MB."""
        self._stop.set()
        self._thread.join(timeout=2)
        return mb(max(self.peaks.values(), default=0))


def run_measured(cmd: list[str], timeout: float) -> Finished:
    """Run ``cmd`` in its own session; its peak RSS is its tree's largest ``VmHWM`` (:class:`TreePeak`)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=child_env(), start_new_session=True)
        peak = TreePeak(proc.pid)
        timed_out = False
        while True:
            pid, status, _ = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - start > timeout:
                timed_out = True
                kill_group(proc.pid)
                pid, status, _ = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
        peak_mb = peak.stop()
        kill_group(proc.pid)  # pool workers orphaned by a crash
        wall = time.monotonic() - start
        out.seek(0)
        err.seek(0)
        return Finished(
            proc.returncode,
            timed_out,
            peak_mb,
            round(wall, 1),
            out.read().decode("utf-8", "replace"),
            err.read().decode("utf-8", "replace"),
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def descendants(pid: int) -> list[int]:
    """Every descendant of ``pid`` (from ``/proc/PID/task/*/children``)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with suppress(OSError):
            for child in map(int, task.read_text().split()):
                out += [child, *descendants(child)]
    return out


def proc_field(pid: int, name: str) -> str:
    with suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return line.split(":", 1)[1].strip()
    return ""


# -- a timed run's workers: throughput -------------------------------------------------------------------------------
def _rss_mb(pid: int) -> float | None:
    field = proc_field(pid, "VmRSS").split()  # "123456 kB"; empty once the process is gone
    return int(field[0]) / 1024 if field and field[0].isdigit() else None


def worker_pids(engine: str) -> list[int]:
    """Pool workers (children of this process) or Ray reader actors (found by command line)."""
    me, pids = os.getpid(), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if engine != "ray":
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


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process (for Ray actors, which are not our children)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


class RunWatch:
    """The workers' RSS (and Ray actors' CPU, as they may exit before the end) read every 0.25 s during a run."""

    def __init__(self, engine: str) -> None:
        self.engine = engine
        self.samples: list[tuple[int, float]] = []  # (images done, largest worker RSS in MB)
        self.peak_seen: dict[int, float] = {}
        self.cpu_seen: dict[int, float] = {}
        self.done = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def look(self) -> None:
        rss = {pid: r for pid in worker_pids(self.engine) if (r := _rss_mb(pid)) is not None}
        with self._lock:
            for pid, r in rss.items():
                self.peak_seen[pid] = max(self.peak_seen.get(pid, 0.0), r)
                if self.engine == "ray":
                    self.cpu_seen[pid] = max(self.cpu_seen.get(pid, 0.0), cpu_s(pid))
            if rss:
                self.samples.append((self.done, max(rss.values())))

    def _watch(self) -> None:
        while not self._stop.wait(0.25):
            self.look()

    def progress(self, done: int, total: int) -> None:
        self.done = done

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling (again is a no-op; so is before :meth:`start`)."""
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join()

    def rss_window(self, n: int) -> dict:
        """Peak worker RSS over the run and in its first and last fifth (a leak shows as a rise)."""
        first = [r for d, r in self.samples if d <= max(1, n // 5)]
        last = [r for d, r in self.samples if d >= n - max(1, n // 5)]
        return {
            "peak_rss_mb_per_worker": round(max(self.peak_seen.values(), default=0.0), 1),
            "rss_mb_first_fifth": round(max(first), 1) if first else None,
            "rss_mb_last_fifth": round(max(last), 1) if last else None,
        }


def faults_main(run_faults: Callable[..., list[dict]], doc: str, argv: Sequence[str] | None = None) -> list[dict]:
    """The command line of a ``faults_*`` module: ``[--quick] [--timeout S] [--work DIR]``, JSON printed.

    ``run_faults(work, quick=, timeout=)`` runs the scenarios; without ``--work`` they run in a
    temporary folder that is removed afterwards.
    """
    parser = argparse.ArgumentParser(description=doc.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="one or two scenarios per family")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds one specread run or step may take")
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one, removed)")
    args = parser.parse_args(argv)
    if args.work:
        results = run_faults(args.work, quick=args.quick, timeout=args.timeout)
    else:
        with tempfile.TemporaryDirectory(prefix="specread-faults-") as tmp:
            results = run_faults(Path(tmp), quick=args.quick, timeout=args.timeout)
    print(json.dumps(results, indent=2))
    return results


def fault_row(family: str, case: str, handled: bool = False, detail: str = "", **fields: object) -> dict:
    """One fault scenario's result in the shape every ``faults_*`` module reports (``hostile.py`` sums them).

    ``fields`` overrides the defaults: ``hung`` False, ``wrong_answers``, ``orphans`` and ``rows_lost``
    0, ``peak_rss_mb`` None.
    """
    row: dict = {"family": family, "case": case, "handled": bool(handled), "hung": False, "wrong_answers": 0}
    row |= {"orphans": 0, "rows_lost": 0, "peak_rss_mb": None, "detail": detail}
    row.update(fields)
    return row
