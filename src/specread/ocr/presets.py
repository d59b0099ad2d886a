"""Named OCR settings: speed against accuracy, measured in ``benchmarks/throughput.py``.

Each preset is a dict of :class:`specread.ocr.engine.RapidOcrEngine` options.

* ``accurate`` (default): onnxruntime, detector side 960.
* ``fast``: the same models and detector side on OpenVINO, in bfloat16 where the
  CPU computes it natively (Intel AMX / AVX512-BF16, as on this project's
  machines), else float32. Measured on a seeded 144-image stratified sample of
  real-dev (CPU seconds per image, one inference thread): accurate 1.08 s,
  fast 0.40 s with bf16 (0.70 s where only f32 runs), with the same F1.
  Shrinking the detector side instead (640) cost 9 points of F1: product
  photos carry small print, so resolution is kept and the kernels are made
  cheaper.
"""

from __future__ import annotations

__all__ = ["PRESETS"]

PRESETS: dict[str, dict[str, object]] = {
    "accurate": {"det_side": 960, "max_side": 2000},
    "fast": {"det_side": 960, "max_side": 2000, "backend": "openvino", "precision": "bf16"},
}
