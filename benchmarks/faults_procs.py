"""Process fault scenarios (issue 18, point 7): parents killed, SIGTERM, orphaned workers, millions of rows.

Every scenario runs the real ``specread`` CLI or server as a subprocess in its own session (see
``hostile.py``), with a timeout, and kills its process group at the end.

* ``predict_killed``: ``specread predict --workers 2`` on generated labels whose rows are
  repeated over two product groups and scattered through the file; its parent (only the parent)
  gets SIGKILL, SIGTERM or SIGINT before the first image (once the job record is written), mid-run
  (a third of the rows written) or during the final rewrite (once every row is in the append
  log). SIGTERM must exit 143 and SIGINT 130, saying how to resume. Then the same command is run
  again: its output must equal a fault-free run's (``wrong_answers``: rows whose answer differs;
  ``rows_lost``: input indices missing or repeated).
* ``train_killed``: ``specread train --workers 2`` killed during its OCR pass; the rerun's ranker
  must equal a fault-free run's.
* ``service_killed``: ``specread serve --workers 2`` killed with SIGKILL or SIGTERM once warm; a
  restarted server must read an image as before.
* ``many_rows``: an input of 2,000,000 rows (``--quick``: 200,000) on one generated image, against a
  1,000-row baseline: peak RSS (``VmHWM``, sampled from ``/proc`` for the parent and each worker) within
  1.5x of the baseline's, for the parent and for the largest process; every row answered as its
  ``(group_id, entity)`` is in the baseline.

``orphans``: processes of the killed tree (recorded just before the signal) still alive 5 s after the
parent ended.

Usage:
    python -m benchmarks.faults_procs [--quick] [--work DIR]
"""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

import httpx

from benchmarks.common import TreePeak, child_env, fault_row, faults_main, free_port, kill_group, specread_command

__all__ = ["main", "run_faults"]

ORPHAN_GRACE = 5.0
"""Seconds a worker may outlive its killed parent before it counts as an orphan."""

MEMORY_RATIO = 1.5
"""Peak RSS of the large input over the 1k-row baseline's, at most."""


# -- processes --------------------------------------------------------------------------------------------------------
def _children() -> dict[int, list[int]]:
    """Parent pid -> child pids, from ``/proc``."""
    out: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with suppress(OSError, IndexError, ValueError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                out.setdefault(ppid, []).append(int(entry.name))
    return out


def tree(pid: int) -> list[int]:
    """``pid``'s descendants."""
    kids, found, todo = _children(), [], [pid]
    while todo:
        for child in kids.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    """Running, and not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def orphans(pids: list[int], grace: float = ORPHAN_GRACE) -> int:
    """How many of ``pids`` are still alive ``grace`` seconds from now (returns as soon as none is)."""
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.05)
    return sum(_alive(p) for p in pids)


class Watched:
    """A subprocess in its own session whose tree's peak RSS (``VmHWM``) is sampled until it ends."""

    def __init__(self, cmd: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        with open(log, "ab") as fh:
            self.proc = subprocess.Popen(cmd, stdout=fh, stderr=fh, env=env or child_env(), start_new_session=True)
        self.started = time.monotonic()
        self._peak = TreePeak(self.proc.pid)
        self.peaks = self._peak.peaks

    def wait(self, timeout: float) -> tuple[int | None, bool]:
        """The exit status (None if killed at the timeout) and whether it timed out; the tree is then killed."""
        try:
            code: int | None = self.proc.wait(timeout=max(0.1, timeout - (time.monotonic() - self.started)))
            hung = False
        except subprocess.TimeoutExpired:
            code, hung = None, True
        self._peak.stop()
        kill_group(self.proc.pid)
        with suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        return code, hung

    @property
    def wall_s(self) -> float:
        return round(time.monotonic() - self.started, 1)

    def parent_mb(self) -> float:
        return round(self.peaks.get(self.proc.pid, 0) / 1024, 1)

    def largest_mb(self) -> float:
        return round(max(self.peaks.values(), default=0) / 1024, 1)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _wait_for(condition: Callable[[], bool], proc: subprocess.Popen, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if condition():
            return True
        time.sleep(0.01)
    return False


# -- inputs -----------------------------------------------------------------------------------------------------------
def _labels(root: Path, images: int, copies: int) -> tuple[Path, Path, Path]:
    """Generated labels (``synth.make_dataset``): the images, an input of their rows over two product groups, repeated
    ``copies`` times in rounds (an image's rows scattered through the file), and the labels CSV (for train)."""
    from specread.synth import make_dataset

    make_dataset(root, n_images=images, seed=7)
    with open(root / "input.csv", newline="") as fh:
        base = list(csv.reader(fh))[1:]
    scattered = root / "scattered.csv"
    with open(scattered, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["index", "image_link", "group_id", "entity_name"])
        n = 0
        for _ in range(copies):
            for group in ("1", "2"):
                for _, link, _, entity in base:
                    w.writerow([n, link, group, entity])
                    n += 1
    return root / "images", scattered, root / "gold.csv"


def _read_output(path: Path) -> list[list[str]]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return list(csv.reader(fh))[1:]
    except OSError:
        return []


def _compare(output: Path, reference: list[list[str]]) -> tuple[int, int]:
    """``(wrong answers, rows lost)`` of an output against a fault-free one (same input)."""
    got = _read_output(output)
    if [r[0] for r in got] != [r[0] for r in reference]:
        lost = len({r[0] for r in reference} - {r[0] for r in got}) + max(0, len(got) - len({r[0] for r in got}))
        return 0, max(lost, 1)
    return sum(a != b for a, b in zip(got, reference, strict=True)), 0


def _data_rows(path: Path) -> int:
    try:
        return max(0, path.read_bytes().count(b"\n") - 1)
    except OSError:
        return 0


# -- predict ----------------------------------------------------------------------------------------------------------
def _predict_cmd(input_csv: Path, images: Path, out: Path) -> list[str]:
    cmd = [*specread_command(), "predict", str(input_csv), "--images", str(images), "-o", str(out), "--workers", "2"]
    # A cache beside the output: a rerun finds what its killed run cached, as it would; the user's cache is left alone.
    return [*cmd, "--cache-dir", str(out.parent / f"{out.stem}.cache")]


def _moment(name: str, out: Path, total: int) -> Callable[[], bool]:
    """When to send the signal: ``start`` (job claimed, no row yet), ``mid`` (a third written), ``rewrite``."""
    if name == "start":
        return lambda: out.with_name(f"{out.stem}.job.json").exists()
    if name == "mid":
        return lambda: _data_rows(out) >= max(1, total // 3)
    # every row in the append log, or the rewrite's temporary file (io.files.atomic_path: .out.csv.XXXX.tmp) there
    return lambda: _data_rows(out) >= total or any(out.parent.glob(f".{out.name}.*.tmp"))


def _predict_killed(
    work: Path,
    images: Path,
    input_csv: Path,
    reference: list[list[str]],
    moment: str,
    sig: signal.Signals,
    timeout: float,
) -> dict:
    case = f"{sig.name.lower()}_{moment}"
    folder = work / f"predict_{case}"
    folder.mkdir()
    out = folder / "out.csv"
    run = Watched(_predict_cmd(input_csv, images, out), folder / "run.log")
    landed = _wait_for(_moment(moment, out, len(reference)), run.proc, timeout)
    written = _data_rows(out)
    kids = tree(run.proc.pid)
    with suppress(ProcessLookupError):
        run.proc.send_signal(sig)
    code, hung = run.wait(timeout)
    left = orphans(kids)
    expect = {signal.SIGKILL: -9, signal.SIGTERM: 143, signal.SIGINT: 130}[sig]
    said = sig == signal.SIGKILL or "run the same command again to resume" in " ".join(run.output().split())
    rerun = Watched(_predict_cmd(input_csv, images, out), folder / "rerun.log")
    rerun_code, rerun_hung = rerun.wait(timeout)
    wrong, lost = _compare(out, reference)
    exited = code == expect or (code == 0 and moment == "rewrite")  # the rewrite may finish before the signal lands
    handled = exited and said and not hung and not rerun_hung and rerun_code == 0 and not left and not wrong + lost
    detail = (
        f"signal {'at' if landed else 'after the wait for'} {moment} ({written} of {len(reference)} rows written); "
        f"exit {code} (want {expect}), {len(kids)} worker(s), rerun exit {rerun_code}"
    )
    return fault_row(
        "predict_killed",
        case,
        handled=handled,
        hung=hung or rerun_hung,
        wrong_answers=wrong,
        orphans=left,
        rows_lost=lost,
        peak_rss_mb=max(run.largest_mb(), rerun.largest_mb()),
        detail=detail,
    )


# -- train ------------------------------------------------------------------------------------------------------------
def _train_cmd(labels: Path, images: Path, out: Path, cache: Path) -> list[str]:
    cmd = [*specread_command(), "train", str(labels), "--images", str(images), "-o", str(out), "--workers", "2"]
    return [*cmd, "--cache-dir", str(cache), "--holdout", "0", "--rounds", "20"]


def _train_killed(
    work: Path, images: Path, labels: Path, reference: bytes, sig: signal.Signals, timeout: float
) -> dict:
    case = f"{sig.name.lower()}_ocr_pass"
    folder = work / f"train_{case}"
    folder.mkdir()
    cache, model = folder / "cache", folder / "model"
    run = Watched(_train_cmd(labels, images, model, cache), folder / "run.log")
    landed = _wait_for(lambda: cache.is_dir() and any(p.is_file() for p in cache.rglob("*")), run.proc, timeout)
    kids = tree(run.proc.pid)
    with suppress(ProcessLookupError):
        run.proc.send_signal(sig)
    code, hung = run.wait(timeout)
    left = orphans(kids)
    expect = -9 if sig == signal.SIGKILL else 143
    rerun = Watched(_train_cmd(labels, images, model, cache), folder / "rerun.log")
    rerun_code, rerun_hung = rerun.wait(timeout)
    ranker = model / "ranker.txt"
    wrong = 0 if ranker.is_file() and ranker.read_bytes() == reference else 1
    handled = code == expect and rerun_code == 0 and not hung and not rerun_hung and not left and not wrong
    detail = f"signal {'during' if landed else 'after the wait for'} the OCR pass; exit {code} (want {expect}), "
    detail += f"{len(kids)} worker(s), rerun exit {rerun_code}, ranker {'equal' if not wrong else 'differs'}"
    return fault_row(
        "train_killed",
        case,
        handled=handled,
        hung=hung or rerun_hung,
        wrong_answers=wrong,
        orphans=left,
        peak_rss_mb=run.largest_mb(),
        detail=detail,
    )


# -- service ----------------------------------------------------------------------------------------------------------
def _serve(folder: Path, port: int, timeout: float) -> Watched | None:
    cmd = [
        *specread_command(),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "2",
        "--log-level",
        "warning",
    ]
    server = Watched(cmd, folder / "serve.log")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.proc.poll() is None:
        with suppress(httpx.HTTPError, ValueError):
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json().get("status") == "ok":
                return server
        time.sleep(0.2)
    server.wait(1)
    return None


def _read_one(port: int, image: Path) -> str:
    with open(image, "rb") as fh:
        files = {"image": (image.name, fh, "image/png")}
        reply = httpx.post(
            f"http://127.0.0.1:{port}/v1/read", files=files, data={"entities": "item_weight"}, timeout=60
        )
    return reply.text if reply.status_code != 200 else json.dumps(reply.json().get("predictions"), sort_keys=True)


def _service_killed(work: Path, image: Path, sig: signal.Signals, timeout: float) -> dict:
    case = f"{sig.name.lower()}_server"
    folder = work / f"service_{case}"
    folder.mkdir()
    port = free_port()
    server = _serve(folder, port, timeout)
    if server is None:
        return fault_row("service_killed", case, detail="the server did not start")
    before = _read_one(port, image)
    kids = tree(server.proc.pid)
    server.proc.send_signal(sig)
    code, hung = server.wait(timeout)
    left = orphans(kids)
    again = _serve(folder, port, timeout)
    after = _read_one(port, image) if again else "(not restarted)"
    if again:
        again.proc.send_signal(signal.SIGTERM)
        again.wait(30)
    wrong = int(after != before)
    handled = not hung and not left and not wrong and again is not None
    detail = f"exit {code}, {len(kids)} child process(es) before the signal; restarted server answers "
    detail += "the same" if not wrong else f"differently: {after[:120]}"
    return fault_row(
        "service_killed",
        case,
        handled=handled,
        hung=hung,
        wrong_answers=wrong,
        orphans=left,
        peak_rss_mb=server.largest_mb(),
        detail=detail,
    )


# -- many rows --------------------------------------------------------------------------------------------------------
def _one_image_input(path: Path, link: str, rows: int) -> None:
    """``rows`` rows on one image: the eight entities over ten product groups, in turn."""
    from specread.units.registry import get_registry

    entities = sorted(get_registry().entities)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["index", "image_link", "group_id", "entity_name"])
        w.writerows([n, link, str(n // len(entities) % 10), entities[n % len(entities)]] for n in range(rows))


def _rows_run(folder: Path, images: Path, link: str, rows: int, timeout: float) -> tuple[Watched, int | None, bool]:
    folder.mkdir(exist_ok=True)
    input_csv = folder / f"in_{rows}.csv"
    _one_image_input(input_csv, link, rows)
    run = Watched(_predict_cmd(input_csv, images, folder / f"out_{rows}.csv"), folder / f"run_{rows}.log")
    code, hung = run.wait(timeout)
    return run, code, hung


def _answers_by_key(output: Path) -> dict[tuple[str, str], str]:
    from specread.units.registry import get_registry

    entities = sorted(get_registry().entities)
    return {
        (str(int(r[0]) // len(entities) % 10), entities[int(r[0]) % len(entities)]): r[1] for r in _read_output(output)
    }


def _many_rows(work: Path, images: Path, rows: int, timeout: float) -> dict:
    case = f"rows_{rows // 1000}k_one_image"
    folder = work / f"rows_{rows}"
    folder.mkdir()
    link = f"https://example.invalid/images/{sorted(p.name for p in images.iterdir())[0]}"
    _rows_run(folder / "warm", images, link, 1000, timeout)  # first run on a cold machine: not the baseline
    base, base_code, _ = _rows_run(folder, images, link, 1000, timeout)
    big, code, hung = _rows_run(folder, images, link, rows, timeout * 4)
    expected = _answers_by_key(folder / "out_1000.csv")
    got = _read_output(folder / f"out_{rows}.csv")
    lost = rows - len(got) if [r[0] for r in got] == [str(n) for n in range(len(got))] else rows
    key = _answers_by_key(folder / f"out_{rows}.csv")
    wrong = sum(key.get(k) != v for k, v in expected.items()) if not lost else 0
    parent_ratio = big.parent_mb() / max(base.parent_mb(), 1)
    largest_ratio = big.largest_mb() / max(base.largest_mb(), 1)
    ok = base_code == 0 and code == 0 and not hung and not lost and not wrong
    handled = ok and parent_ratio <= MEMORY_RATIO and largest_ratio <= MEMORY_RATIO
    detail = (
        f"peak RSS parent {big.parent_mb()} MB vs {base.parent_mb()} MB at 1k rows (x{parent_ratio:.2f}), largest "
        f"process {big.largest_mb()} MB vs {base.largest_mb()} MB (x{largest_ratio:.2f}); wall {big.wall_s} s vs "
        f"{base.wall_s} s; exit {code}"
    )
    return fault_row(
        "many_rows",
        case,
        handled=handled,
        hung=hung,
        wrong_answers=wrong,
        rows_lost=lost,
        peak_rss_mb=big.largest_mb(),
        detail=detail,
    )


# -- all --------------------------------------------------------------------------------------------------------------
def run_faults(work: Path, *, quick: bool = False, timeout: float = 60.0) -> list[dict]:
    """Run every scenario of this area under ``work`` (a scratch folder); one dict per scenario."""
    work.mkdir(parents=True, exist_ok=True)
    images, input_csv, labels = _labels(work / "data", images=8 if quick else 12, copies=2000 if quick else 5000)
    results: list[dict] = []
    reference_out = work / "reference.csv"
    ref = Watched(_predict_cmd(input_csv, images, reference_out), work / "reference.log")
    code, _ = ref.wait(timeout * 2)
    reference = _read_output(reference_out)
    if code != 0:
        return [fault_row("predict_killed", "reference", detail=f"the fault-free run failed (exit {code})")]
    moments = [("mid", signal.SIGKILL), ("mid", signal.SIGTERM)]
    if not quick:
        moments = [(m, s) for m in ("start", "mid", "rewrite") for s in (signal.SIGKILL, signal.SIGTERM)]
        moments.append(("mid", signal.SIGINT))
    for moment, sig in moments:
        results.append(_predict_killed(work, images, input_csv, reference, moment, sig, timeout))

    model = work / "train_reference"
    Watched(_train_cmd(labels, images, model, work / "train_cache"), work / "train_reference.log").wait(timeout * 2)
    ranker = (model / "ranker.txt").read_bytes() if (model / "ranker.txt").is_file() else b""
    for sig in (signal.SIGKILL,) if quick else (signal.SIGKILL, signal.SIGTERM):
        results.append(_train_killed(work, images, labels, ranker, sig, timeout))

    image = sorted(images.iterdir())[0]
    for sig in (signal.SIGKILL,) if quick else (signal.SIGKILL, signal.SIGTERM):
        results.append(_service_killed(work, image, sig, timeout))

    results.append(_many_rows(work, images, 200_000 if quick else 2_000_000, timeout))
    return results


def main(argv: list[str] | None = None) -> list[dict]:
    """Run this module's scenarios and print them as JSON (see :func:`benchmarks.common.faults_main`)."""
    return faults_main(run_faults, __doc__ or "", argv)


if __name__ == "__main__":
    main()
