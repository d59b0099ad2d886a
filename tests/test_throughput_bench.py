"""The default-settings rule of ``benchmarks/throughput.py`` (issue 13), and the presets that follow it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import throughput
from specread.settings import PRESETS, OcrSettings, ReaderConfig, preset


def _make(name: str, cpu: float, f1: float, retry: int = 0) -> dict:
    return {"preset": name, "retry_side": retry, "cpu_s_per_image": cpu, "weighted_f1": f1}


def test_fastest_within_half_a_point_of_the_best() -> None:
    candidates = [_make("accurate", 0.68, 0.770), _make("fast", 0.37, 0.768), _make("int8", 0.33, 0.7651)]

    chosen = throughput.choose_default(candidates)

    assert chosen["preset"] == "int8" and chosen["retry_side"] == 0


def test_a_faster_setting_more_than_half_a_point_below_is_not_chosen() -> None:
    candidates = [_make("accurate", 0.68, 0.770), _make("fast", 0.37, 0.768), _make("int8", 0.33, 0.7640)]

    assert throughput.choose_default(candidates)["preset"] == "fast"


def test_the_second_pass_is_on_only_within_the_budget() -> None:
    base = [_make("accurate", 0.68, 0.770), _make("int8", 0.33, 0.768)]

    within = throughput.choose_default([*base, _make("int8", 0.39, 0.776, retry=1600)])
    over = throughput.choose_default([*base, _make("int8", 0.41, 0.776, retry=1600)])  # 2 / 0.41 < 5 images/s
    worse = throughput.choose_default([*base, _make("int8", 0.39, 0.760, retry=1600)])

    assert (within["preset"], within["retry_side"], within["weighted_f1"]) == ("int8", 1600, 0.776)
    assert over["retry_side"] == 0 and worse["retry_side"] == 0


def test_choice_needs_a_first_pass_candidate() -> None:
    with pytest.raises(ValueError, match="without a second pass"):
        throughput.choose_default([_make("int8", 0.39, 0.776, retry=1600)])


def test_the_default_preset_is_the_ocr_defaults() -> None:
    """The CLI's default (the first preset) and the Python default (``[ocr]``) are one setting."""
    assert preset(PRESETS[0]) == OcrSettings() == ReaderConfig().ocr
    assert {"accurate", "fast", "int8"} <= set(PRESETS)


def test_gpu_script_stops_before_any_image_without_cuda(tmp_path: Path) -> None:
    """benchmarks/gpu.sh gives no CPU figure for a GPU one: without CUDA it stops, saying why."""
    from specread.ocr.devices import CUDA_PROVIDER, available_providers

    if CUDA_PROVIDER in available_providers():
        pytest.skip("this machine has CUDA: the script would measure it")
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.sh"
    env = {**os.environ, "PYTHON": sys.executable, "DATA": str(tmp_path / "no-such-data")}
    done = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=120)

    assert done.returncode != 0
    assert "gpu.sh" in done.stderr and "cuda" in done.stderr and "specread[gpu]" in done.stderr
    assert not done.stdout  # no JSON: nothing was measured
