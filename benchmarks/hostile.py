"""Run the hostile-input corpus (``hostile_corpus.py``) against ``specread predict`` and ``specread serve``.

Prints one JSON document: cases tried, handled, crashed, rows lost, peak RSS and
connections the server left open after its timeouts.

* **CLI.** Every image case is written into a temporary images folder, with a
  CSV of 1-3 rows per image (several entities) plus rows whose image is missing,
  is a directory, is a symlink loop or has no link. ``specread predict
  --workers N --no-cache`` runs once over all of it as a subprocess (with a
  timeout). A case is handled when its rows are in the output (exactly once) and
  the image was refused (a warning) or read as its ``expect`` says. When the run
  crashes, the cases whose rows are missing are run again, one process at a time
  in input order (``--workers 1``), to name the case that crashes (``crashed``)
  and the ones lost with it (``rows_lost_collateral``). Peak RSS is the
  largest ``VmHWM`` of the predict process tree, sampled from ``/proc``
  (``common.TreePeak``). Each memory-heavy image is also read alone in a fresh process
  through the real reader (``build_reader(...).read(path, ["item_weight"])``),
  next to a plain label for the baseline (``memory``).
* **Service.** ``specread serve --workers 1 --header-timeout T --body-timeout T
  --max-connections 50`` (options the installed CLI lacks are left out and listed
  in ``server_options_missing``) on a free loopback port. Every image is uploaded,
  every URL sent as ``image_url``, every multipart case posted, and the raw cases
  (slow clients, stalled bodies, oversized or ambiguous headers) are driven over
  sockets. Handled: a JSON error (4xx) or a 200 JSON read, as the case expects;
  never a 5xx or a dropped connection; for slow clients, the server closes the
  connection within its timeout + 3 s. A URL whose target the service's own fetch
  code would connect to off loopback (checked in this process with every socket
  connect blocked) is not sent and counts as unhandled: this benchmark never lets
  the service open a connection outside the machine. The server's peak RSS
  (``VmHWM`` of it and its pool workers) is sampled from ``/proc`` during the run.

* **Faults.** The environment faults of ``faults_files.py`` (odd entries in the images folder,
  the OCR cache on a full, read-only or corrupted folder, output links and modes, duplicate
  headers), ``faults_procs.py`` (parents killed or terminated mid-run, millions of rows) and
  ``faults_service.py`` (one client's idle sockets, abandoned requests, many large uploads, odd
  review names), each judged against a fault-free run: ``hung`` (had to be killed),
  ``wrong_answers``, ``orphans`` (processes left alive) and rows lost (``--skip-faults``: none).

Every socket and request has a timeout and the whole run has a budget, so it
stops by itself (about 2-4 minutes on 2 cores without the faults; ``--quick``: a few minutes).

Usage:
    python -m benchmarks.hostile [--quick] [--workers 2] [--out report.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

from benchmarks.common import fault_row
from benchmarks.hostile_cli import run_cli, run_memory
from benchmarks.hostile_corpus import build_corpus
from benchmarks.hostile_service import run_service

__all__ = ["main"]

# -- main -------------------------------------------------------------------------------------------------------------
_NUMERIC_OPTIONS: list[tuple[str, type, float, str]] = [
    ("--workers", int, 2, "specread predict worker processes"),
    ("--serve-workers", int, 1, "specread serve OCR workers"),
    ("--header-timeout", float, 2.0, "server header timeout, seconds"),
    ("--body-timeout", float, 4.0, "server body timeout, seconds"),
    ("--max-connections", int, 50, "server connection limit"),
    ("--request-timeout", float, 60.0, "client timeout per request, seconds"),
    ("--cli-timeout", float, 240.0, "timeout of the predict run, seconds"),
    ("--budget", float, 540.0, "seconds after which the run stops sending new cases"),
]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag, kind, default, text in _NUMERIC_OPTIONS:
        parser.add_argument(flag, type=kind, default=default, help=f"{text} (default {default})")
    parser.add_argument("--quick", action="store_true", help="a small subset of every kind (under a minute)")
    parser.add_argument("--skip-cli", action="store_true", help="service only")
    parser.add_argument("--skip-service", action="store_true", help="CLI and memory only")
    parser.add_argument(
        "--skip-faults", action="store_true", help="no fault scenarios (faults_files, faults_procs, faults_service)"
    )
    parser.add_argument("--out", type=Path, help="also write the JSON report here")
    args = parser.parse_args(argv)

    started = time.monotonic()
    deadline = started + args.budget
    corpus = build_corpus(quick=args.quick)
    images = [c for c in corpus if c.kind == "image"]
    report: dict = {"corpus": dict(Counter(c.kind for c in corpus))}
    with tempfile.TemporaryDirectory(prefix="specread-hostile-") as tmp:
        work = Path(tmp)
        if not args.skip_cli:
            report["cli"] = run_cli(images, work, args.workers, args.cli_timeout, deadline)
            heavy = [c for c in images if c.heavy or c.expect == "read"]
            report["memory"], report["memory_detail"] = run_memory(heavy, work, timeout=120)
        if not args.skip_service:
            report["service"] = run_service(corpus, work, args, deadline)
        if not args.skip_faults:
            report["faults"] = run_fault_families(work / "faults", args.quick)
    report["summary"] = _summary(report)
    report["wall_s"] = round(time.monotonic() - started, 1)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return report


FAULT_AREAS = ("faults_files", "faults_procs", "faults_service")
"""The fault-scenario modules (environment faults: odd files, a failing cache, killed parents, starving clients)."""

MAIN_PROCESS_FAMILIES = frozenset({"upload_memory"})
"""Fault families whose peak RSS is the service's main process, not a worker's."""


def run_fault_families(work: Path, quick: bool) -> dict:
    """Every fault scenario of :data:`FAULT_AREAS`, each module's ``run_faults``, and their totals."""
    import importlib

    scenarios: list[dict] = []
    for name in FAULT_AREAS:
        module = importlib.import_module(f"benchmarks.{name}")
        try:
            scenarios.extend(module.run_faults(work / name, quick=quick))
        except Exception as exc:  # a scenario runner that breaks is a finding, not a reason to lose the report
            scenarios.append(fault_row(name, "runner", detail=f"{type(exc).__name__}: {exc}"))
    # The upload-memory scenarios measure the server's main process (the 1.5 GB bound of issue 18),
    # not a worker: they are reported apart from the worker peak.
    main = [s["peak_rss_mb"] for s in scenarios if s.get("peak_rss_mb") and s["family"] in MAIN_PROCESS_FAMILIES]
    peaks = [s["peak_rss_mb"] for s in scenarios if s.get("peak_rss_mb") and s["family"] not in MAIN_PROCESS_FAMILIES]
    return {
        "cases": len(scenarios),
        "handled": sum(bool(s["handled"]) for s in scenarios),
        "hung": sum(bool(s["hung"]) for s in scenarios),
        "wrong_answers": sum(int(s["wrong_answers"]) for s in scenarios),
        "orphans": sum(int(s["orphans"]) for s in scenarios),
        "rows_lost": sum(int(s["rows_lost"]) for s in scenarios),
        "peak_rss_mb": max(peaks, default=0.0),
        "peak_rss_mb_server_main": max(main, default=0.0),
        "unhandled": [f"{s['family']}/{s['case']}: {s['detail']}" for s in scenarios if not s["handled"]],
        "scenarios": scenarios,
    }


def _summary(report: dict) -> dict:
    parts = [report[k] for k in ("cli", "service") if k in report]
    service = report.get("service", {})
    faults = report.get("faults", {})
    peaks = [report.get("cli", {}).get("peak_rss_mb", 0), *report.get("memory", {}).values()]
    peaks.append(service.get("peak_rss_mb", {}).get("max_worker", 0))
    peaks.append(faults.get("peak_rss_mb", 0))
    return {
        "cases": sum(p["cases"] for p in parts) + faults.get("cases", 0),
        "handled": sum(p["handled"] for p in parts) + faults.get("handled", 0),
        "crashed": sum(p["crashed"] for p in parts),
        "hung": faults.get("hung", 0),
        "wrong_answers": faults.get("wrong_answers", 0),
        "orphans": faults.get("orphans", 0),
        "rows_lost": report.get("cli", {}).get("rows_lost", 0) + faults.get("rows_lost", 0),
        "connections_left_open": service.get("connections_left_open", 0),
        "peak_rss_mb_max_worker": max(peaks),
        "peak_rss_mb_server_main": faults.get("peak_rss_mb_server_main", 0.0),
    }


if __name__ == "__main__":
    main()
