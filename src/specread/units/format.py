"""Writing values in the challenge's output format."""

from __future__ import annotations

import math
import re
from decimal import Decimal

__all__ = ["OFFICIAL_FORMAT", "format_number", "format_prediction"]

OFFICIAL_FORMAT = re.compile(r"^-?\d+(\.\d+)?\s+[a-zA-Z\s]+$")
"""The challenge's sanity pattern for a non-empty prediction."""


def format_number(value: float, digits: int = 6) -> str:
    """Plain decimal, never exponent, at most ``digits`` significant decimals after rounding.

    ``500`` -> ``"500.0"`` (the labels' float style), ``0.000001`` -> ``"0.000001"``.
    """
    if not math.isfinite(value):
        raise ValueError(f"cannot format non-finite value {value!r}")
    rounded = round(value, digits) if abs(value) >= 1e-3 else float(f"{value:.{digits}g}")
    text = format(Decimal(repr(rounded)), "f")
    if "." not in text:
        text += ".0"
    text = text.rstrip("0")
    if text.endswith("."):
        text += "0"
    if text in ("-0.0",):
        text = "0.0"
    return text


def format_prediction(value: float, unit: str) -> str:
    return f"{format_number(value)} {unit}"
