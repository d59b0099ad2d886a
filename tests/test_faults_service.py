"""The service's fault scenarios (``benchmarks/faults_service.py``) run for real, one or two per family.

Each starts the real ``specread serve`` (its OCR worker loads the models) or ``specread review``
as a subprocess, hence slow.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

KEYS = {"family", "case", "handled", "hung", "wrong_answers", "orphans", "rows_lost", "peak_rss_mb", "detail"}


def _faults():
    """``benchmarks.faults_service``, imported once FastAPI and uvicorn are known to be there."""
    return importlib.import_module("benchmarks.faults_service")


@pytest.mark.slow
def test_every_family_is_handled(tmp_path: Path) -> None:
    results = _faults().run_faults(tmp_path, quick=True, timeout=60)
    assert {r["family"] for r in results} == {"starvation", "abandoned", "upload_memory", "review_names"}
    for r in results:
        assert set(r) >= KEYS, r
        ok = r["handled"] and not r["hung"] and r["wrong_answers"] == 0 and r["orphans"] == 0
        assert ok, (r["case"], r["detail"], r["orphans"])
    upload = next(r for r in results if r["family"] == "upload_memory")
    assert 0 < upload["peak_rss_mb"] < 1500


def test_odd_review_names_cover_the_issue() -> None:
    names = _faults().ODD_NAMES
    assert len(names["1024_chars"]) == 1024 and "\x00" in names["nul_byte"] and ".." in names["dot_dot"]
    assert names["very_deep_path"].count("/") >= 1000
