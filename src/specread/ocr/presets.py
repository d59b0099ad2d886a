"""Named OCR settings: speed against accuracy, measured in ``benchmarks/throughput.py``.

Each preset is a dict of :class:`specread.ocr.engine.RapidOcrEngine` options.
``accurate`` is the default; faster presets trade detector resolution and
recognition work for throughput.
"""

from __future__ import annotations

__all__ = ["PRESETS"]

PRESETS: dict[str, dict[str, object]] = {
    "accurate": {"det_side": 960, "max_side": 2000},
}
