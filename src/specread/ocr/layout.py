"""Straight line segments on the image: the arrows and dimension lines of product drawings.

A number printed beside a vertical dimension line is usually a height, one
under a horizontal line a width. OpenCV (already a dependency of RapidOCR)
finds the segments with a probabilistic Hough transform on Canny edges; they
are stored with the OCR page so the cache keeps them too.
"""

from __future__ import annotations

import math

import numpy as np

from specread.types import Box

__all__ = ["SEGMENTS_VERSION", "detect_segments"]

SEGMENTS_VERSION = 1
"""Bump when detection changes: it is part of the OCR cache fingerprint."""

_WORK_SIDE = 800
_MAX_SEGMENTS = 200


def detect_segments(image: np.ndarray) -> tuple[Box, ...]:
    """Long straight segments as relative ``(x0, y0, x1, y1)`` (endpoints, not sorted by axis).

    Segments at least 6% of the image side are kept, at any angle: widths and
    heights are drawn along the axes, depths often along a diagonal. Text
    strokes are shorter than that.
    """
    import cv2

    h, w = image.shape[:2]
    scale = min(1.0, _WORK_SIDE / max(h, w))
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    if scale < 1.0:
        gray = cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    gh, gw = gray.shape[:2]
    edges = cv2.Canny(gray, 60, 180)
    min_len = 0.06 * max(gh, gw)
    found = cv2.HoughLinesP(edges, 1, math.pi / 180, threshold=40, minLineLength=min_len, maxLineGap=4)
    if found is None:
        return ()
    out: list[tuple[float, float, float, float, float]] = []
    for x0, y0, x1, y1 in np.asarray(found).reshape(-1, 4).tolist():
        length = math.hypot(x1 - x0, y1 - y0)
        out.append((length, x0 / gw, y0 / gh, x1 / gw, y1 / gh))
    out.sort(reverse=True)
    return tuple((round(a, 4), round(b, 4), round(c, 4), round(d, 4)) for _, a, b, c, d in out[:_MAX_SEGMENTS])
