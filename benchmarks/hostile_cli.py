"""The CLI half of the hostile benchmark (:mod:`benchmarks.hostile`): the corpus through ``specread predict``.

Every image case is written into a temporary images folder, with a CSV of 1-3 rows per image
(several entities) plus rows whose image is missing, is a directory, is a symlink loop or has no
link; see :func:`run_cli` for how a case is judged and :func:`run_memory` for the per-image peak RSS.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from benchmarks.common import (
    Finished,
    child_env,
    run_measured,
    specread_command,
)
from benchmarks.hostile_corpus import Case

__all__ = ["run_cli", "run_memory"]

ENTITY_SETS = [
    ("item_weight",),
    ("width", "height"),
    ("voltage", "wattage", "item_volume"),
]
_MEMORY_SNIPPET = """
import json, sys
from specread.errors import ImageLoadError
try:
    from specread.readers import build_reader
    from specread.settings import ReaderConfig
except ImportError:  # before the readers and settings modules
    from specread.pipeline import ReaderConfig, build_reader
reader = build_reader(ReaderConfig(cache_dir=None))
try:
    result = reader.read(sys.argv[1], ["item_weight"])
    out = {"outcome": "read", "detail": result.predictions["item_weight"].text}
except ImageLoadError as exc:
    out = {"outcome": "refused", "detail": str(exc)[-200:]}
print(json.dumps(out))
"""


# -- CLI --------------------------------------------------------------------------------------------------------------
@dataclass
class CliCase:
    """One image (or missing/odd path) of the CLI run and its rows."""

    name: str
    link: str
    expect: str
    marker: str  # text of its warning in predict's log when the image is refused
    indices: list[str] = field(default_factory=list)
    entities: tuple[str, ...] = ()
    group_id: str = ""
    outcome: str = ""


def _cli_cases(cases: list[Case], images: Path) -> list[CliCase]:
    """Write the image cases (and odd paths) into ``images``; one :class:`CliCase` each."""
    out = []
    for case in cases:
        (images / case.filename).write_bytes(case.data)
        out.append(CliCase(case.name, case.filename, case.expect, f"/{case.filename}: "))
    (images / "cli_directory.jpg").mkdir()
    (images / "cli_symlink_loop.jpg").symlink_to("cli_symlink_loop.jpg")
    out += [CliCase(f"cli_missing_{i}", f"cli_missing_{i}.jpg", "refuse", f"/cli_missing_{i}.jpg: ") for i in (1, 2, 3)]
    out += [
        CliCase("cli_directory", "cli_directory.jpg", "refuse", "/cli_directory.jpg: "),
        CliCase("cli_symlink_loop", "cli_symlink_loop.jpg", "refuse", "/cli_symlink_loop.jpg: "),
        CliCase("cli_empty_link", "", "refuse", "no image link"),
    ]
    index = 100_000
    for n, case in enumerate(out):
        case.entities = ENTITY_SETS[n % len(ENTITY_SETS)]
        case.indices = [str(i) for i in range(index, index + len(case.entities))]
        case.group_id = str(n % 5)
        index += len(case.entities)
    return out


def _write_csv(path: Path, cases: list[CliCase]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["index", "image_link", "group_id", "entity_name"])
        for case in cases:
            for index, entity in zip(case.indices, case.entities, strict=True):
                writer.writerow([index, case.link, case.group_id, entity])


def _output_indices(path: Path) -> Counter[str]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return Counter(row.get("index", "") for row in csv.DictReader(fh))
    except (OSError, csv.Error):
        return Counter()


def _failure_kinds(output: Path) -> dict[str, str] | None:
    """index -> failure kind from predict's ``<output>.failures.csv``; None when the file is not there."""
    try:
        with open(output.with_name(f"{output.stem}.failures.csv"), newline="", encoding="utf-8") as fh:
            return {i: rec.get("kind") or "?" for rec in csv.DictReader(fh) for i in (rec.get("indices") or "").split()}
    except (OSError, csv.Error):
        return None


@lru_cache(maxsize=1)
def _predict_help() -> str:
    return subprocess.run(
        [*specread_command(), "predict", "--help"], capture_output=True, text=True, env=child_env(), timeout=60
    ).stdout


@dataclass
class PredictRun:
    finished: Finished
    seen: Counter[str]
    failures: dict[str, str] | None


def _predict(work: Path, name: str, cases: list[CliCase], workers: int, timeout: float, alone: bool) -> PredictRun:
    csv_path, out_path = work / f"{name}.csv", work / f"{name}-out.csv"
    _write_csv(csv_path, cases)
    cmd = [*specread_command(), "predict", str(csv_path), "--images", str(work / "images"), "--output", str(out_path)]
    cmd += ["--workers", str(workers), "--no-cache"]
    if alone and "--allow-missing" in _predict_help():  # a rerun of the lost cases may be mostly missing files
        cmd.append("--allow-missing")
    finished = run_measured(cmd, timeout)
    return PredictRun(finished, _output_indices(out_path), _failure_kinds(out_path))


def _cli_outcome(case: CliCase, run: PredictRun) -> tuple[str, str, str]:
    """(outcome, failure kind or "", why it is unhandled or "") of a case whose rows are all in the output."""
    if any(run.seen[i] > 1 for i in case.indices):
        return "duplicated", "rows_duplicated", "an index appears more than once in the output"
    if run.failures is not None:  # the failures file names each image's failure kind
        kind = next((run.failures[i] for i in case.indices if i in run.failures), "")
    else:  # an older specread: its log names every unreadable image
        kind = "refused" if case.marker in run.finished.stderr else ""
    if kind == "worker died":
        return f"refused: {kind}", "worker_died", "a worker process died reading it (the run went on)"
    if kind.endswith(" while reading"):
        return f"refused: {kind}", "unexpected_error", f"an unexpected error: {kind}"
    if case.expect == "refuse" and not kind:
        return "read", "decoded_must_refuse", "read a file that must be refused"
    if case.expect == "read" and kind:
        return f"refused: {kind}", "refused_readable", "refused a plain label"
    return (f"refused: {kind}" if kind else "read"), "", ""


def run_cli(cases: list[Case], work: Path, workers: int, timeout: float, deadline: float) -> dict:
    """``specread predict`` over every image case; isolate crashing cases when the run fails."""
    images = work / "images"
    images.mkdir()
    plan = _cli_cases(cases, images)
    run = _predict(work, "all", plan, workers, timeout, alone=False)
    unhandled: list[dict] = []
    kinds: Counter[str] = Counter()
    crashed_cases: list[dict] = []
    missing = [c for c in plan if any(run.seen[i] == 0 for i in c.indices)]
    for case in plan:
        if case in missing:
            continue
        case.outcome, kind, why = _cli_outcome(case, run)
        if kind:
            kinds[kind] += 1
            if kind == "worker_died":
                crashed_cases.append({"case": case.name, "error": why})
            else:
                unhandled.append({"case": case.name, "why": why})
    isolation_runs = 0
    if run.finished.failed:  # before blaming a case: does the CLI read a plain label at all?
        plain = [c for c in plan if c.expect == "read"][:1] or plan[:1]
        probe = _predict(work, "probe", plain, 1, min(timeout, 120), alone=True).finished
        if probe.failed:
            crashed_cases.append({"case": "(the CLI itself)", "error": f"fails on a plain label: {probe.why()}"})
            kinds["cli_broken"] += 1
            isolation_runs = -1  # nothing to isolate: every case fails alike
    while missing and 0 <= isolation_runs < 12 and time.monotonic() < deadline:  # name the case that crashes
        isolation_runs += 1
        alone = _predict(work, f"iso{isolation_runs}", missing, 1, min(timeout, 30 + 5 * len(missing)), alone=True)
        lost = [c for c in missing if any(alone.seen[i] == 0 for i in c.indices)]
        for case in missing:
            if case not in lost:  # fine alone: judge it from the rerun too
                outcome, kind, why = _cli_outcome(case, alone)
                case.outcome = f"collateral; alone: {outcome}"
                kinds["rows_lost_collateral"] += 1
                unhandled.append({"case": case.name, "why": "rows lost when another case crashed the run"})
                if kind:
                    kinds[kind] += 1
                    unhandled.append({"case": case.name, "why": f"alone: {why}"})
        missing = lost
        if not missing:
            break
        culprit, done = missing.pop(0), alone.finished
        culprit.outcome = "timeout" if done.timed_out else "crashed"
        kinds[culprit.outcome] += 1
        crashed_cases.append({"case": culprit.name, "error": done.why() if done.failed else "rows missing, exit 0"})
    for case in missing:
        case.outcome = "lost"
        kinds["rows_lost_unattributed"] += 1
        if isolation_runs >= 0:
            unhandled.append({"case": case.name, "why": "rows lost; not isolated within the time budget"})
    if missing and isolation_runs < 0:
        unhandled.append({"case": f"({len(missing)} cases)", "why": "rows lost: the CLI fails before any case"})
    done = run.finished
    if done.failed and not crashed_cases:  # the run failed, yet no case fails alone (only under concurrency)
        crashed_cases.append({"case": "(the whole run)", "error": done.why()})
    bad = {u["case"] for u in unhandled} | {c["case"] for c in crashed_cases}
    all_indices = [i for c in plan for i in c.indices]
    return {
        "cases": len(plan),
        "handled": sum(c.name not in bad and c.outcome != "lost" for c in plan),
        "crashed": len(crashed_cases),
        "rows": len(all_indices),
        "rows_lost": sum(1 for i in all_indices if run.seen[i] == 0),
        "peak_rss_mb": done.peak_rss_mb,
        "failures_by_kind": dict(sorted(kinds.items())),
        "crashed_cases": crashed_cases,
        "run": {
            "exit_code": done.returncode,
            "timed_out": done.timed_out,
            "traceback": "Traceback" in done.stderr,
            "error": done.why() if done.failed else "",
            "wall_s": done.wall_s,
            "isolation_runs": max(0, isolation_runs),
        },
        "unhandled": unhandled,
        "outcomes": {c.name: c.outcome for c in plan},
    }


def run_memory(cases: list[Case], work: Path, timeout: float) -> tuple[dict, dict]:
    """Each memory-heavy image (and a plain label, the baseline) read alone in a fresh process."""
    peak, detail = {}, {}
    for case in cases:
        path = work / "images" / case.filename
        if not path.exists():
            path.write_bytes(case.data)
        done = run_measured([sys.executable, "-c", _MEMORY_SNIPPET, str(path)], timeout)
        try:
            result = json.loads(done.stdout.strip().splitlines()[-1]) if not done.failed else {}
        except (IndexError, json.JSONDecodeError):
            result = {}
        peak[case.name] = done.peak_rss_mb
        detail[case.name] = {
            "outcome": result.get("outcome") or ("timeout" if done.timed_out else "crashed"),
            "detail": result.get("detail", "") if result else done.why(),
            "wall_s": done.wall_s,
            **({"limit_s": case.info["max_seconds"]} if "max_seconds" in case.info else {}),
            **({"over_limit": True} if done.wall_s > case.info.get("max_seconds", float("inf")) else {}),
        }
    return peak, detail
