"""The files area's fault scenarios (``benchmarks/faults_files.py``, issue 18 point 7), one per family, for real.

Each runs the real ``specread predict`` (the OCR engine included) as a subprocess, so the
test is slow; the whole set runs with ``python -m benchmarks.faults_files``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from benchmarks import faults_files as faults

KEYS = {"family", "case", "handled", "hung", "wrong_answers", "orphans", "rows_lost", "peak_rss_mb", "detail"}


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory):
    return faults.Bench(tmp_path_factory.mktemp("faults"), timeout=120.0)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("scenario", "case"),
    [
        ("image_case", "fifo_jpg"),
        ("image_case", "sparse_5gb"),
        ("cache_case", "cache_under_a_file"),
        ("cache_case", "deep_nesting"),
        ("output_case", "symlink_output"),
        ("header_case", "duplicate_entity_name"),
    ],
)
def test_a_scenario_of_each_family_is_handled(bench, scenario: str, case: str) -> None:
    result = getattr(faults, scenario)(bench, case)
    assert set(result) == KEYS
    assert result["handled"], result
    assert (result["hung"], result["wrong_answers"], result["orphans"], result["rows_lost"]) == (False, 0, 0, 0)
    assert result["peak_rss_mb"] is not None and result["peak_rss_mb"] < 1024


def test_what_outlives_a_run_in_its_group_is_counted_as_orphans(tmp_path: Path) -> None:
    # A parent that leaves a child behind in its process group.
    ran = faults.run([sys.executable, "-c", "import subprocess; subprocess.Popen(['sleep', '30'])"], timeout=30)
    assert ran.returncode == 0 and not ran.hung
    assert ran.orphans == 1
    clean = faults.run([sys.executable, "-c", "pass"], timeout=30)
    assert clean.orphans == 0


def test_a_run_past_its_timeout_is_hung_and_killed() -> None:
    ran = faults.run(["sleep", "30"], timeout=0.5)
    assert ran.hung and ran.returncode != 0
