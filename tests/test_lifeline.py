"""Workers die with their parent; SIGTERM stops predict and train as Ctrl-C does (exit 143 / 130, resumable).

``specread`` runs as a real subprocess with :mod:`slow_engine` standing in for RapidOCR (through a
``sitecustomize`` on ``PYTHONPATH``, so forked and spawned workers use it too): each image takes a
fixed time, long enough to signal a run mid-way.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

import httpx
import pytest

from benchmarks.faults_procs import orphans, tree
from slow_engine import site_dir
from specread.synth import make_dataset

pytestmark = pytest.mark.slow  # about 50 s of subprocess runs (no real OCR)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    site = site_dir(tmp_path / "site")
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "SPECREAD_TEST_OCR_DELAY": "0.4", "COLUMNS": "400", "NO_COLOR": "1"}


def _specread(*args: str | Path) -> list[str]:
    return [sys.executable, "-c", "from specread.cli import app; app()", *map(str, args)]


def _predict(data: Path, out: Path) -> list[str]:
    return _specread(
        "predict", data / "input.csv", "--images", data / "images", "-o", out, "--workers", "2", "--no-cache"
    )


def _rows(path: Path) -> list[list[str]]:
    with suppress(FileNotFoundError), open(path, newline="") as fh:
        return list(csv.reader(fh))[1:]
    return []


def _start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as fh:
        return subprocess.Popen(cmd, env=env, stdout=fh, stderr=fh, start_new_session=True)


def _wait_until(condition, proc: subprocess.Popen, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, "the run ended before the moment to signal it"
        assert time.monotonic() < deadline, "timed out waiting for the moment to signal the run"
        time.sleep(0.02)


def _workers(proc: subprocess.Popen, count: int) -> list[int]:
    _wait_until(lambda: len(tree(proc.pid)) >= count, proc)
    return tree(proc.pid)


def _stop(proc: subprocess.Popen) -> None:
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    make_dataset(tmp_path / "data", n_images=16, seed=5)
    return tmp_path / "data"


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_predict_parent_signalled_mid_run_leaves_no_worker_and_resumes(
    data: Path, env: dict[str, str], tmp_path: Path, sig: signal.Signals
) -> None:
    reference = tmp_path / "reference.csv"
    assert subprocess.run(_predict(data, reference), env=env, capture_output=True, timeout=120).returncode == 0
    out = tmp_path / "out.csv"
    proc = _start(_predict(data, out), env, tmp_path / "run.log")
    try:
        _wait_until(lambda: len(_rows(out)) >= 2, proc)
        workers = _workers(proc, 2)
        proc.send_signal(sig)  # the parent only, as `kill PID` or the OOM killer would
        code = proc.wait(timeout=30)
        assert orphans(workers) == 0, "a worker outlived its parent"
    finally:
        _stop(proc)
    said = " ".join((tmp_path / "run.log").read_text().split())
    if sig == signal.SIGKILL:
        assert code == -signal.SIGKILL
    else:
        assert code == {signal.SIGTERM: 143, signal.SIGINT: 130}[sig]
        assert "interrupted" in said and "run the same command again to resume" in said
        assert "Traceback" not in said
    assert 2 <= len(_rows(out)) < len(_rows(reference))

    rerun = subprocess.run(_predict(data, out), env=env, capture_output=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr.decode()
    assert "rows resumed" in rerun.stderr.decode()
    assert _rows(out) == _rows(reference)


def test_train_ocr_pass_killed_leaves_no_worker(data: Path, env: dict[str, str], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cmd = _specread("train", data / "gold.csv", "--images", data / "images", "-o", tmp_path / "model")
    cmd += ["--workers", "2", "--cache-dir", str(cache), "--holdout", "0", "--rounds", "5"]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        proc = _start(cmd, env, tmp_path / f"train-{sig.name}.log")
        try:
            workers = _workers(proc, 2)
            time.sleep(0.5)  # inside the OCR pass: 16 images of 0.4 s on 2 workers
            proc.send_signal(sig)
            code = proc.wait(timeout=30)
            assert orphans(workers) == 0, "an OCR worker outlived its parent"
        finally:
            _stop(proc)
        assert code == (143 if sig == signal.SIGTERM else -signal.SIGKILL)
    said = " ".join((tmp_path / "train-SIGTERM.log").read_text().split())
    assert "run the same command again to resume" in said and "Traceback" not in said


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_killed_service_leaves_no_worker(env: dict[str, str], tmp_path: Path) -> None:
    pytest.importorskip("uvicorn")
    port = _free_port()
    cmd = _specread("serve", "--port", str(port), "--workers", "2", "--log-level", "warning")
    proc = _start(cmd, env, tmp_path / "serve.log")
    try:

        def healthy() -> bool:
            with suppress(httpx.HTTPError, ValueError):
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json().get("status") == "ok"
            return False

        _wait_until(healthy, proc, timeout=120)
        workers = _workers(proc, 2)  # warm spawned workers (and multiprocessing's resource tracker)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert orphans(workers) == 0, "a service worker outlived the service"
    finally:
        _stop(proc)
