"""Recognising text lines so that each reads the same in any company: one padded width per line.

RapidOCR pads the lines of one recogniser call to the widest of them (and to at least
320 pixels). The PP-OCRv6 recogniser averages over the width in its squeeze-excitation
blocks, so padding changes what a line reads: the same "50g" can come out differently
next to a long line. That ties a line's text to its neighbours, and it wastes columns:
a batch is as wide as its widest line.

:class:`LineReader` gives every line its own width instead: its resized width rounded
up to ``width_step`` (at least the model's 320), and puts only lines of the same width
in one call. A line's text then depends on the line alone, so the lines of many
pictures can be pooled into full, well-shaped calls (what a GPU needs, and on a CPU
~30 % fewer recogniser seconds per picture than RapidOCR's batches on real-dev) and
still read exactly as they would one picture at a time. ``tests/test_ocr_lines.py``
checks both.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from specread.ocr.internals import LineModel

__all__ = ["LineReader", "line_width", "lines_per_call"]


def line_width(crop_shape: tuple[int, ...], height: int, min_width: int, step: int) -> int:
    """The padded width a crop of ``crop_shape`` (H, W, ...) is recognised at.

    The crop is resized to ``height`` keeping its aspect (as RapidOCR resizes it), then padded
    to a multiple of ``step``, and to no less than ``min_width``.

    Example:
        >>> line_width((24, 40), 48, 320, 64), line_width((48, 700), 48, 320, 64)
        (320, 704)
    """
    h, w = crop_shape[:2]
    resized = math.ceil(height * w / max(h, 1))
    return max(min_width, -(-resized // step) * step)


def lines_per_call(width: int, most: int, max_columns: int) -> int:
    """Lines of padded ``width`` one recogniser call takes: ``most``, fewer where ``max_columns`` caps them (0: no cap).

    Never fewer than one: a line wider than the cap goes alone.

    Example:
        >>> lines_per_call(320, 12, 3840), lines_per_call(704, 12, 3840), lines_per_call(5000, 12, 3840)
        (12, 5, 1)
    """
    return min(most, max(1, max_columns // width)) if max_columns else most


class LineReader:
    """Reads text lines (crops) through a recogniser, each at its own padded width.

    Args:
        model: the recogniser, its pre-processing and decoding (:func:`specread.ocr.internals.line_model`).
        batch: most lines per recogniser call (``rec_batch``).
        width_step: pad widths to a multiple of this (``rec_width_step``).
        max_columns: most lines x width per call (``rec_max_columns``; 0: no limit). The
            recogniser's output grows with it, and the runtime keeps buffers of the largest
            call it met: the cap keeps a worker's memory flat.
    """

    def __init__(self, model: LineModel, batch: int, width_step: int, max_columns: int) -> None:
        if batch < 1 or width_step < 1 or max_columns < 0:
            raise ValueError("batch and width_step must be >= 1 and max_columns >= 0")
        self.model = model
        self.batch = batch
        self.width_step = width_step
        self.max_columns = max_columns

    def calls(self, crops: Sequence[np.ndarray]) -> list[tuple[int, list[int]]]:
        """How ``crops`` are read: ``(width, indices)`` per recogniser call, narrowest first.

        Lines of one width share calls in input order, at most ``batch`` of them and at most
        ``max_columns`` columns (a line wider than that goes alone).
        """
        by_width: dict[int, list[int]] = defaultdict(list)
        for i, crop in enumerate(crops):
            by_width[line_width(crop.shape, self.model.height, self.model.min_width, self.width_step)].append(i)
        plan = []
        for width in sorted(by_width):
            per_call = lines_per_call(width, self.batch, self.max_columns)
            indices = by_width[width]
            plan += [(width, indices[i : i + per_call]) for i in range(0, len(indices), per_call)]
        return plan

    def __call__(self, crops: Sequence[np.ndarray]) -> list[tuple[str, float]]:
        """``(text, score)`` for each crop, in order."""
        out: list[tuple[str, float]] = [("", 0.0)] * len(crops)
        for width, indices in self.calls(crops):
            batch = np.stack([self.model.normalise(crops[i], width) for i in indices]).astype(np.float32, copy=False)
            for i, line in zip(indices, self.model.decode(self.model.session(batch)), strict=True):
                out[i] = line
        return out
