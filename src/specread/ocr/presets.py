"""Named OCR settings: speed against accuracy, measured in ``benchmarks/throughput.py``.

Each preset is a dict of :class:`specread.ocr.engine.RapidOcrEngine` options.

* ``accurate`` (default): onnxruntime, detector side 960.
* ``fast``: the same models at the same detector side, run by OpenVINO, in
  bfloat16 where the CPU computes it natively (Intel AMX / AVX512-BF16, as on
  this project's machines) and in float32 elsewhere; the recogniser's output
  layer is cut to the ~1,150 Latin/symbol characters (of 18,710, mostly
  Chinese), and its batches are padded to 64-pixel widths and capped at 1,920
  columns, so a worker's memory stays flat (see ``RapidOcrEngine``).

Measured on two seeded, per-entity stratified samples of real-dev (328 images,
344 rows; CPU seconds per image, one inference thread, busy shared machine):
accurate 1.05-1.08; OpenVINO float32 0.56-0.66 with the same predictions as
accurate; OpenVINO bfloat16 0.32-0.37 (9 of 344 predictions changed,
test-weighted F1 +0.15 points); plus the Latin output layer 0.28-0.31 with
no prediction changed. Cheaper detection by resolution loses accuracy instead:
detector side 800 costs 2.6 points of test-weighted F1 and 640 about 9 points
of F1, because product photos carry small print.
"""

from __future__ import annotations

__all__ = ["PRESETS"]

PRESETS: dict[str, dict[str, object]] = {
    "accurate": {"det_side": 960, "max_side": 2000},
    "fast": {
        "det_side": 960,
        "max_side": 2000,
        "backend": "openvino",
        "precision": "bf16",
        "charset": "latin",
        "rec_width_step": 64,
        "rec_max_columns": 1920,
        "kernel_cache": 64,
    },
}
