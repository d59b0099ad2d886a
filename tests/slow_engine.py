"""A slow, deterministic stand-in for RapidOCR in *subprocesses* (``specread`` run as a real CLI or server).

:func:`install` replaces the ``rapidocr`` engine (:data:`specread.ocr.engine.ENGINES`) with
:class:`SlowEngine`: each image takes ``$SPECREAD_TEST_OCR_DELAY`` seconds (default 0.3) and reads as
``Net Wt <n> g``, ``n`` from its pixels, so runs are slow enough to be interrupted mid-way and their
answers can be compared. :func:`site_dir` writes a ``sitecustomize.py`` that installs it: put that folder
on ``PYTHONPATH`` and every Python the test starts, pool workers spawned by the service included, uses it.
Importing the module changes nothing, so the test process that writes the folder keeps its engines.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from specread.ocr import engine as engine_module
from specread.types import OcrPage, OcrToken

__all__ = ["SlowEngine", "install", "site_dir"]


class SlowEngine:
    """Sleeps, then reads one weight off the image, derived from its pixels (see the module's docstring)."""

    name = "slow-fake"
    max_side = None

    def __init__(self, _settings: object) -> None:
        self.delay = float(os.environ.get("SPECREAD_TEST_OCR_DELAY", "0.3"))

    def fingerprint(self) -> str:
        return "slow-fake-v1"

    def at_det_side(self, _side: int) -> SlowEngine:
        return self

    def __call__(self, image: np.ndarray) -> OcrPage:
        time.sleep(self.delay)
        grams = 10 + int(np.asarray(image, dtype=np.int64).sum()) % 900
        quad = ((0.1, 0.1), (0.6, 0.1), (0.6, 0.16), (0.1, 0.16))
        token = OcrToken(text=f"Net Wt {grams} g", score=0.95, quad=quad)
        return OcrPage(tokens=(token,), width=image.shape[1], height=image.shape[0])


def install() -> None:
    """Make ``rapidocr`` the slow stand-in in this process (what the ``sitecustomize.py`` runs)."""
    engine_module.ENGINES["rapidocr"] = SlowEngine  # type: ignore[assignment]


def site_dir(folder: Path) -> Path:
    """A folder whose ``sitecustomize.py`` installs the stand-in (put it first on ``PYTHONPATH``)."""
    folder.mkdir(parents=True, exist_ok=True)
    here = str(Path(__file__).resolve().parent)
    code = f"import sys\nsys.path.insert(0, {here!r})\nimport slow_engine\nslow_engine.install()\n"
    (folder / "sitecustomize.py").write_text(code)
    return folder
