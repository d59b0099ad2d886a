"""benchmarks/faults_procs.py for real: one scenario of each family, with the real OCR engine, is handled."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from benchmarks import faults_procs as fp

pytestmark = pytest.mark.slow

TIMEOUT = 120.0


def _assert_handled(result: dict) -> None:
    assert set(result) >= {"family", "case", "handled", "hung", "wrong_answers", "orphans", "rows_lost", "peak_rss_mb"}
    assert result["handled"], result
    assert (result["hung"], result["wrong_answers"], result["orphans"], result["rows_lost"]) == (False, 0, 0, 0), result


def test_one_scenario_of_each_family(tmp_path: Path) -> None:
    images, input_csv, labels = fp._labels(tmp_path / "data", images=6, copies=500)
    reference_out = tmp_path / "reference.csv"
    code, _ = fp.Watched(fp._predict_cmd(input_csv, images, reference_out), tmp_path / "ref.log").wait(TIMEOUT)
    assert code == 0
    reference = fp._read_output(reference_out)
    _assert_handled(fp._predict_killed(tmp_path, images, input_csv, reference, "mid", signal.SIGTERM, TIMEOUT))

    model = tmp_path / "train_reference"
    fp.Watched(fp._train_cmd(labels, images, model, tmp_path / "cache"), tmp_path / "train.log").wait(TIMEOUT)
    ranker = (model / "ranker.txt").read_bytes()
    _assert_handled(fp._train_killed(tmp_path, images, labels, ranker, signal.SIGKILL, TIMEOUT))

    _assert_handled(fp._service_killed(tmp_path, sorted(images.iterdir())[0], signal.SIGKILL, TIMEOUT))

    many = fp._many_rows(tmp_path, images, 100_000, TIMEOUT)
    _assert_handled(many)
    assert many["peak_rss_mb"] < 1024
