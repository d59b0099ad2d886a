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
  ``ru_maxrss`` of the predict process tree (the largest process), from
  ``os.wait4``. Each memory-heavy image is also read alone in a fresh process
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
    python benchmarks/hostile.py [--quick] [--workers 2] [--out report.json]
"""

from __future__ import annotations

import argparse
import csv
import ipaddress
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import httpx

from hostile_corpus import Case, build_corpus, multipart_body

__all__ = ["main"]

SLACK = 3.0
"""Seconds a slow client's connection may stay open past the server timeout that should end it."""

ENTITY_SETS = [
    ("item_weight",),
    ("width", "height"),
    ("voltage", "wattage", "item_volume"),
]
_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".gif": "image/gif", ".webp": "image/webp"}
_SERVER_OPTIONS = ("--header-timeout", "--body-timeout", "--max-connections")
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


def _specread() -> list[str]:
    """The ``specread`` console script next to this Python, or the same entry point through ``-c``."""
    script = Path(sys.executable).with_name("specread")
    return [str(script)] if script.exists() else [sys.executable, "-c", "from specread.cli import app; app()"]


def _env() -> dict[str, str]:
    """Child environment: plain, very wide log lines (one warning per line, parseable)."""
    return {**os.environ, "COLUMNS": "10000", "NO_COLOR": "1", "TERM": "dumb", "PYTHONUNBUFFERED": "1"}


def _mb(kb: float) -> float:
    return round(kb / 1024, 1)


# -- measured subprocesses --------------------------------------------------------------------------------------------
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


def _kill_group(pgid: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def run_measured(cmd: list[str], timeout: float) -> Finished:
    """Run ``cmd`` in its own session; its peak RSS is the ``ru_maxrss`` of its tree from ``os.wait4``."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=_env(), start_new_session=True)
        timed_out = False
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - start > timeout:
                timed_out = True
                _kill_group(proc.pid)
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
        _kill_group(proc.pid)  # pool workers orphaned by a crash
        wall = time.monotonic() - start
        out.seek(0)
        err.seek(0)
        return Finished(
            proc.returncode,
            timed_out,
            _mb(usage.ru_maxrss),
            round(wall, 1),
            out.read().decode("utf-8", "replace"),
            err.read().decode("utf-8", "replace"),
        )


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
        [*_specread(), "predict", "--help"], capture_output=True, text=True, env=_env(), timeout=60
    ).stdout


@dataclass
class PredictRun:
    finished: Finished
    seen: Counter[str]
    failures: dict[str, str] | None


def _predict(work: Path, name: str, cases: list[CliCase], workers: int, timeout: float, alone: bool) -> PredictRun:
    csv_path, out_path = work / f"{name}.csv", work / f"{name}-out.csv"
    _write_csv(csv_path, cases)
    cmd = [*_specread(), "predict", str(csv_path), "--images", str(work / "images"), "--output", str(out_path)]
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


# -- the server -------------------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (from ``/proc/PID/task/*/children``)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with suppress(OSError):
            for child in map(int, task.read_text().split()):
                out += [child, *_children(child)]
    return out


def _proc_field(pid: int, name: str) -> str:
    with suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return line.split(":", 1)[1].strip()
    return ""


class Server:
    """``specread serve`` as a subprocess on a free loopback port, with a ``VmHWM`` sampler thread."""

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.log_path = work / "serve.log"
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.missing: list[str] = []
        self.peak_kb: dict[int, int] = {}
        self.roles: dict[int, str] = {}
        self.restarts = 0
        self._probed = False
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)

    def _command(self) -> list[str]:
        a = self.args
        cmd = [*_specread(), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        cmd += ["--workers", str(a.serve_workers)]
        cmd += ["--no-cache", "--log-level", "warning"]
        wanted = {
            "--header-timeout": a.header_timeout,
            "--body-timeout": a.body_timeout,
            "--max-connections": a.max_connections,
        }
        for option, value in wanted.items():
            if option not in self.missing:
                cmd += [option, str(value)]
        return cmd

    def _probe_options(self) -> None:
        help_text = subprocess.run(
            [*_specread(), "serve", "--help"], capture_output=True, text=True, env=_env(), timeout=60
        ).stdout
        self.missing = [o for o in _SERVER_OPTIONS if o not in help_text]

    def start(self) -> None:
        """Start (or restart) the server and wait for ``/healthz`` to say ok (120 s at most)."""
        if not self._probed:
            self._probe_options()
            self._probed = True
        log = open(self.log_path, "a")  # noqa: SIM115 - the server's stdout/stderr for its lifetime
        self.proc = subprocess.Popen(self._command(), stdout=log, stderr=log, env=_env(), start_new_session=True)
        log.close()
        started = time.monotonic()
        while time.monotonic() - started < 120:
            with suppress(httpx.HTTPError, ValueError):
                if httpx.get(f"{self.base}/healthz", timeout=2).json().get("status") == "ok":
                    if not self._sampler.is_alive():
                        self._sampler.start()
                    return
            if self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                if "No such option" in tail and len(self.missing) < len(_SERVER_OPTIONS):
                    self.missing = list(_SERVER_OPTIONS)  # could not tell which: run without all of them
                    self.proc = None
                    return self.start()
                raise RuntimeError(f"server exited with {self.proc.returncode}: {tail}")
            time.sleep(0.2)
        raise RuntimeError("server did not become healthy within 120 s")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def restart(self) -> None:
        self.stop()
        self.restarts += 1
        self.start()

    def stop(self) -> None:
        if self.proc is None:
            return
        with suppress(ProcessLookupError):
            self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        _kill_group(self.proc.pid)
        self.proc = None

    def close(self) -> None:
        self._stop.set()
        self.stop()
        if self._sampler.is_alive():
            self._sampler.join(5)

    def _sample(self) -> None:
        while not self._stop.wait(0.25):
            proc = self.proc
            if proc is None:
                continue
            for pid in [proc.pid, *_children(proc.pid)]:
                hwm = _proc_field(pid, "VmHWM")
                if hwm:
                    self.peak_kb[pid] = max(self.peak_kb.get(pid, 0), int(hwm.split()[0]))
                if pid not in self.roles:
                    with suppress(OSError):
                        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                        self.roles[pid] = (
                            "server"
                            if pid == proc.pid
                            else "resource_tracker"
                            if b"resource_tracker" in cmdline
                            else "worker"
                        )

    def peak_rss_mb(self) -> dict:
        servers = [kb for pid, kb in self.peak_kb.items() if self.roles.get(pid) == "server"]
        workers = sorted((kb for pid, kb in self.peak_kb.items() if self.roles.get(pid) == "worker"), reverse=True)
        return {
            "server": _mb(max(servers, default=0)),
            "workers": [_mb(kb) for kb in workers],
            "max_worker": _mb(max(workers, default=0)),
        }

    def log_errors(self) -> tuple[int, list[str]]:
        """Tracebacks in the server log and their distinct final lines (the exceptions)."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        lines = text.splitlines()
        finals: list[str] = []
        for n, line in enumerate(lines):
            if line.startswith("Traceback"):  # the exception is the first unindented line after the frames
                finals.append(next((ln[:200] for ln in lines[n + 1 :] if ln and not ln[0].isspace()), "?"))
        return len(finals), sorted(set(finals))


# -- SSRF guard: never let the service connect off loopback -----------------------------------------------------------
def _is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def _literal_targets(url: str) -> list[str] | None:
    """Where ``url`` points without any DNS lookup: [] for no connection, None when it is not a literal."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return []
    if parts.scheme.lower() not in ("http", "https") or not host:
        return []
    if host == "localhost":
        return ["127.0.0.1", "::1"]
    with suppress(ValueError):
        return [str(ipaddress.ip_address(host))]
    if re.fullmatch(r"[0-9a-fx.]+", host):
        with suppress(OSError):
            return [socket.inet_ntoa(socket.inet_aton(host))]
    return None


@contextmanager
def _connections_blocked(attempts: list[str]) -> Iterator[None]:
    """Every ``socket.connect`` in this process records its address and fails instead of connecting."""
    real = socket.socket.connect

    def blocked(self: socket.socket, address: object) -> None:
        attempts.append(str(address[0] if isinstance(address, tuple) else address))
        raise ConnectionRefusedError("connection blocked by benchmarks/hostile.py")

    socket.socket.connect = blocked  # type: ignore[method-assign]
    try:
        yield
    finally:
        socket.socket.connect = real  # type: ignore[method-assign]


def off_loopback_target(url: str) -> str | None:
    """The non-loopback address the service would connect to for ``url``, or None when it is safe to send.

    Runs the service's own ``fetch_image`` in this process with every connection
    blocked; where that cannot run, judges by the URL's literal host. Hosts that
    are neither ``localhost`` nor an IP literal or numeric form are never sent.
    """
    literal = _literal_targets(url)
    if literal is None:
        return "a host name that would need DNS"
    try:
        import anyio

        from specread.service.fetch import FetchError, FetchPolicy, fetch_image
    except ImportError:
        return next((a for a in literal if not _is_loopback(a)), None)
    attempts: list[str] = []
    with _connections_blocked(attempts):
        try:
            anyio.run(fetch_image, url, FetchPolicy(timeout=5.0, connect_timeout=2.0))
        except FetchError:
            pass  # refused, or failed at the blocked connect (recorded)
        except Exception:
            attempts += literal  # the check itself failed: judge by the literal host
    return next((a for a in attempts if not _is_loopback(a)), None)


# -- service cases ----------------------------------------------------------------------------------------------------
def _form_for(case: Case) -> tuple[bytes, dict[str, str]]:
    """The request body and headers that send ``case`` to ``POST /v1/read``."""
    boundary = "hostileRunner0Boundary"
    entities = [("entities", e.encode(), None, None) for e in ("item_weight", "width")]
    if case.kind == "image":
        part = ("image", case.data, case.filename, _MIME.get(case.suffix, "application/octet-stream"))
    elif case.kind == "url":
        part = ("image_url", case.data, None, None)
    else:
        return case.data, dict(case.headers)
    body = multipart_body([*entities, ("group_id", b"1", None, None), part], boundary)
    return body, {"content-type": f"multipart/form-data; boundary={boundary}"}


def _judge_http(case: Case, status: int | None, text: str) -> tuple[bool, bool]:
    """(handled, crashed) for an answer to an HTTP case."""
    if status is None:
        return False, True
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    error = isinstance(doc, dict) and isinstance(doc.get("error"), dict) and {"code", "message"} <= set(doc["error"])
    read = status == 200 and isinstance(doc, dict) and "predictions" in doc
    json_4xx = 400 <= status < 500 and error
    if status >= 500:
        return False, not (case.kind == "url" and status in (502, 504))  # a URL fetch that tried to connect
    if case.expect == "read":
        return read, False
    if case.expect in ("refuse", "error"):
        return json_4xx, False
    return read or json_4xx, False


def _http_case(client: httpx.Client, case: Case) -> dict:
    body, headers = _form_for(case)
    started = time.monotonic()
    try:
        resp = client.post("/v1/read", content=body, headers=headers)
        status, text = resp.status_code, resp.text
    except httpx.HTTPError as exc:
        status, text = None, f"no answer: {type(exc).__name__}: {exc}"[:300]
    handled, crashed = _judge_http(case, status, text)
    elapsed = time.monotonic() - started
    if handled and elapsed > case.info.get("max_seconds", float("inf")):
        handled, text = False, f"answered after {elapsed:.1f} s (limit {case.info['max_seconds']:g} s): {text}"
    code = ""
    with suppress(ValueError, AttributeError, TypeError):
        code = json.loads(text)["error"]["code"] if status and status >= 400 else ""
    return {
        "case": case.name,
        "status": status,
        "body": text[:300],
        "handled": handled,
        "crashed": crashed,
        "outcome": f"{status} {code}".strip() if status else text[:80],
        "elapsed_s": round(elapsed, 2),
    }


def _status_of(received: bytes) -> int | None:
    match = re.match(rb"HTTP/1\.[01] (\d{3})", received)
    return int(match.group(1)) if match else None


def _pump(sockets: list[socket.socket], deadline: float, feed: Callable[[], bool] | None = None) -> dict:
    """Read from ``sockets`` until each is closed or ``deadline``; ``feed`` sends a byte a second while True."""
    received = {s: b"" for s in sockets}
    closed: dict[socket.socket, str] = {}
    next_feed = time.monotonic()
    while len(closed) < len(sockets) and (now := time.monotonic()) < deadline:
        if feed is not None and now >= next_feed:
            if not feed():
                feed = None
            next_feed += 1.0
        wait = min(deadline, next_feed if feed else deadline) - now
        ready, _, _ = select.select([s for s in sockets if s not in closed], [], [], max(0.0, wait))
        for s in ready:
            try:
                chunk = s.recv(65536)
            except OSError as exc:
                closed[s] = type(exc).__name__
                continue
            if chunk:
                received[s] += chunk
            else:
                closed[s] = "eof"
    return {"received": received, "closed": closed}


def _raw_case(port: int, case: Case, limit: float) -> dict:
    """Drive one raw-socket case; the server must close (or answer) within ``limit`` + :data:`SLACK`."""
    count = int(case.info.get("connections", 1))
    started = time.monotonic()
    sockets: list[socket.socket] = []
    refused = 0
    for _ in range(count):
        try:
            sockets.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        except OSError:
            refused += 1  # the server would not even accept it: not left open
    if not sockets:
        return _raw_result(case, None, b"", {}, None, count, refused, started)
    sock = sockets[0]
    sock.settimeout(limit + SLACK)
    send_error = ""
    try:
        if case.mode in ("stall", "send"):
            try:
                sock.sendall(case.data)
            except (BrokenPipeError, ConnectionResetError) as exc:
                send_error = type(exc).__name__
            except TimeoutError:
                send_error = "send timed out"
        pending = bytearray(case.data if case.mode == "trickle" else b"")

        def feed() -> bool:
            try:
                sock.send(bytes(pending[:1]))
            except OSError:
                return False
            del pending[:1]
            return bool(pending)

        ref = time.monotonic() if case.mode == "stall" else started
        result = _pump(sockets, ref + limit + SLACK, feed if pending else None)
    finally:
        for s in sockets:
            s.close()
    closed = result["closed"]
    if send_error and send_error != "send timed out" and sock not in closed:
        closed[sock] = send_error
    return _raw_result(case, sock, result["received"][sock], closed, send_error, count, refused, started)


def _raw_result(
    case: Case,
    sock: socket.socket | None,
    received: bytes,
    closed: dict,
    send_error: str | None,
    count: int,
    refused: int,
    started: float,
) -> dict:
    """Judge a raw-socket case from what came back and which sockets the server closed."""
    status = _status_of(received)
    ended = len(closed) + refused
    left_open = count - ended
    first_closed = sock is None or sock in closed
    if case.expect == "reject":
        handled = (status is not None and 400 <= status < 500) or (status is None and first_closed)
        left_open = 0 if status is not None or first_closed else 1
    else:
        handled = left_open == 0
    first = received.split(b"\r\n", 1)[0].decode("latin-1")[:80]
    how = f"{ended}/{count} closed" if count > 1 else (closed.get(sock) or "refused" if first_closed else "still open")
    return {
        "case": case.name,
        "status": status,
        "body": f"{how} after {time.monotonic() - started:.1f} s; answer: {first or '(none)'}",
        "handled": handled,
        "crashed": status is not None and status >= 500 and status != 503,
        "left_open": left_open,
        "outcome": f"{status or '-'} {how}",
    }


def run_service(cases: list[Case], work: Path, args: argparse.Namespace, deadline: float) -> dict:
    """Every case against a live ``specread serve``."""
    server = Server(args, work)
    results: list[dict] = []
    deaths: list[dict] = []
    skipped = []
    try:
        server.start()
    except RuntimeError as exc:
        server.close()
        return {
            "cases": len(cases),
            "handled": 0,
            "crashed": 0,
            "connections_left_open": 0,
            "peak_rss_mb": server.peak_rss_mb(),
            "unhandled": [],
            "error": f"the server did not start: {exc}"[:2000],
        }
    try:
        http = [c for c in cases if not c.mode]
        raw = [c for c in cases if c.mode and c.mode != "idle"]
        idle = [c for c in cases if c.mode == "idle"]
        limits = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(base_url=server.base, timeout=args.request_timeout, limits=limits) as client:
            silent = 0
            for case in http:
                if time.monotonic() > deadline:
                    skipped.append(case.name)
                    continue
                if case.kind == "url" and (target := off_loopback_target(case.data.decode())):
                    results.append(_not_sent(case, target))
                    continue
                result = _http_case(client, case)
                results.append(result)
                silent = silent + 1 if result["status"] is None else 0
                if not server.alive():
                    deaths.append(
                        {"after_case": case.name, "returncode": server.proc.returncode if server.proc else None}
                    )
                    server.restart()
                elif silent >= 2:  # the pool hangs: start afresh so the rest of the corpus still runs
                    deaths.append({"after_case": case.name, "returncode": None, "why": "two requests unanswered"})
                    server.restart()
                    silent = 0
            timeouts = {"header": args.header_timeout, "body": args.body_timeout}
            for group in (raw, idle):
                if group and time.monotonic() < deadline:
                    with ThreadPoolExecutor(len(group)) as pool:
                        results += pool.map(lambda c: _raw_case(server.port, c, timeouts[c.timeout]), group)
                else:
                    skipped += [c.name for c in group]
            healthz_ok = False
            with suppress(httpx.HTTPError, ValueError):
                healthz_ok = client.get("/healthz", timeout=5).json().get("status") == "ok"
            control = next((c for c in cases if c.expect == "read"), None)
            control_after = _http_case(client, control)["outcome"] if control else None
        time.sleep(0.5)  # one more RSS sample
    finally:
        server.close()
    tracebacks, errors = server.log_errors()
    unhandled = [{k: r[k] for k in ("case", "status", "body")} for r in results if not r["handled"]]
    return {
        "cases": len(cases),
        "handled": sum(r["handled"] for r in results),
        "crashed": sum(r["crashed"] for r in results),
        "connections_left_open": sum(r.get("left_open", 0) for r in results),
        "peak_rss_mb": server.peak_rss_mb(),
        "unhandled": unhandled,
        "server_options_missing": server.missing,
        "server_deaths": deaths,
        "server_restarts": server.restarts,
        "server_log_tracebacks": tracebacks,
        "server_log_errors": errors,
        "healthz_after": healthz_ok,
        "control_after": control_after,
        "skipped": skipped,
        "outcomes": {r["case"]: r["outcome"] for r in results},
    }


def _not_sent(case: Case, target: str) -> dict:
    why = f"not sent: the service's fetch code would connect to {target} (checked here with connections blocked)"
    return {"case": case.name, "status": None, "body": why, "handled": False, "crashed": False, "outcome": "not sent"}


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


def run_fault_families(work: Path, quick: bool) -> dict:
    """Every fault scenario of :data:`FAULT_AREAS`, each module's ``run_faults``, and their totals."""
    import importlib

    scenarios: list[dict] = []
    for name in FAULT_AREAS:
        module = importlib.import_module(name)
        try:
            scenarios.extend(module.run_faults(work / name, quick=quick))
        except Exception as exc:  # a scenario runner that breaks is a finding, not a reason to lose the report
            scenarios.append(
                {
                    "family": name,
                    "case": "runner",
                    "handled": False,
                    "hung": False,
                    "wrong_answers": 0,
                    "orphans": 0,
                    "rows_lost": 0,
                    "peak_rss_mb": None,
                    "detail": f"{type(exc).__name__}: {exc}",
                }
            )
    peaks = [s["peak_rss_mb"] for s in scenarios if s.get("peak_rss_mb")]
    return {
        "cases": len(scenarios),
        "handled": sum(bool(s["handled"]) for s in scenarios),
        "hung": sum(bool(s["hung"]) for s in scenarios),
        "wrong_answers": sum(int(s["wrong_answers"]) for s in scenarios),
        "orphans": sum(int(s["orphans"]) for s in scenarios),
        "rows_lost": sum(int(s["rows_lost"]) for s in scenarios),
        "peak_rss_mb": max(peaks, default=0.0),
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
    }


if __name__ == "__main__":
    main()
