"""No loss: a `specread predict` killed with SIGKILL and started again equals an uninterrupted run.

Also: an output that cannot be written (not a directory, disk full) stops the run
with exit code 2 and one clear line, never a traceback.
"""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import CliInvoke
from specread.synth import make_dataset

N_IMAGES = 30


def _predict_cmd(input_csv: Path, images: Path, output: Path, cache: Path) -> list[str]:
    return [
        sys.executable,
        "-c",
        "from specread.cli import app; app()",
        "predict",
        str(input_csv),
        "--images",
        str(images),
        "--output",
        str(output),
        "--workers",
        "2",
        "--preset",
        "fast",
        "--cache-dir",
        str(cache),
    ]


def _data_rows(path: Path) -> int:
    try:
        return max(0, path.read_bytes().count(b"\n") - 1)
    except FileNotFoundError:
        return 0


def _read(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


@pytest.mark.slow
def test_sigkill_midway_then_rerun_equals_uninterrupted_run(tmp_path: Path) -> None:
    input_csv = make_dataset(tmp_path / "data", n_images=N_IMAGES, seed=3, n_values=2)
    images = tmp_path / "data" / "images"
    n_rows = len(_read(input_csv)) - 1
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    reference = tmp_path / "reference.csv"
    done = subprocess.run(
        _predict_cmd(input_csv, images, reference, tmp_path / "cache-ref"), env=env, capture_output=True, timeout=300
    )
    assert done.returncode == 0, done.stderr.decode()

    killed_out = tmp_path / "killed.csv"
    cmd = _predict_cmd(input_csv, images, killed_out, tmp_path / "cache-killed")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while _data_rows(killed_out) < 6 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)  # the runner only: its workers are orphaned, as after an OOM kill
        proc.wait(timeout=30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # then tidy up the orphaned workers
    written = _data_rows(killed_out)
    assert proc.returncode == -signal.SIGKILL
    assert 6 <= written < n_rows, f"kill landed after {written} of {n_rows} rows"

    rerun = subprocess.run(cmd, env=env, capture_output=True, timeout=300)

    assert rerun.returncode == 0, rerun.stderr.decode()
    assert "rows resumed" in rerun.stderr.decode()
    final = _read(killed_out)
    indices = [r[0] for r in final[1:]]
    assert indices == [str(i) for i in range(n_rows)]  # every index once, in input order
    assert final == _read(reference)
    assert sum(1 for r in final[1:] if r[1]) >= n_rows // 2  # the comparison is not between two empty files


def test_output_under_a_file_fails_cleanly(tmp_dataset, fake_rapidocr, cli: CliInvoke, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")

    result = cli("predict", tmp_dataset.input_csv, "--images", tmp_dataset.images, "-o", blocker / "out.csv")

    assert result.exit_code == 2
    assert "error:" in result.output and "not-a-dir" in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def _unwritable_folder(tmp_path: Path) -> Path:
    """A folder this process cannot create files in: permission bits, or sysfs for root (who ignores them)."""
    if os.geteuid() != 0:
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o500)
        return folder
    if Path("/sys").is_dir():
        return Path("/sys")  # sysfs refuses new files even to root
    pytest.skip("running as root without sysfs: no unwritable folder to test with")


def test_output_in_read_only_folder_fails_cleanly(tmp_dataset, fake_rapidocr, cli: CliInvoke, tmp_path: Path) -> None:
    folder = _unwritable_folder(tmp_path)
    try:
        result = cli("predict", tmp_dataset.input_csv, "--images", tmp_dataset.images, "-o", folder / "out.csv")
    finally:
        if folder.is_relative_to(tmp_path):
            folder.chmod(0o700)

    assert result.exit_code == 2
    assert "Permission denied" in result.output and "Traceback" not in result.output
    assert not (folder / "out.csv").exists()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_disk_full_fails_cleanly(tmp_dataset, fake_rapidocr, cli: CliInvoke) -> None:
    result = cli("predict", tmp_dataset.input_csv, "--images", tmp_dataset.images, "-o", "/dev/full")

    assert result.exit_code == 2
    assert "No space left on device" in result.output
    assert "Traceback" not in result.output
