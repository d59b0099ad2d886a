"""The challenge's answer, ``"<number> <unit>"``: one type that parses and writes it.

Every module that reads or writes an answer goes through :class:`Answer`: the
metric, the priors, the VLM's training targets, the label cleaner and report,
and :attr:`specread.types.Prediction.text`. Nothing here knows which units
exist; callers that need a registry unit check ``answer.unit`` themselves.

Grammar of :meth:`Answer.parse`, after stripping the text:

* the number is everything before the first space, read by ``float()``
  (so ``500``, ``500.0``, ``-2``, ``1e3`` and ``inf`` are numbers);
* the unit is the rest, runs of whitespace folded to one space, and must be
  words of ASCII letters (``gram``, ``fluid ounce``).

Lists (``[100.0, 240.0] volt``), ranges (``10 to 15 kilogram``), a number
without a unit and other text are not answers. Written answers never use an
exponent: ``format_number(1e-05) == "0.00001"``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

from specread.errors import AnswerFormatError

__all__ = ["OFFICIAL_FORMAT", "Answer", "format_number", "format_prediction"]

OFFICIAL_FORMAT = re.compile(r"^-?\d+(\.\d+)?\s+[a-zA-Z\s]+$")
"""The challenge's sanity pattern for a non-empty prediction."""

_UNIT = re.compile(r"[A-Za-z]+(?: [A-Za-z]+)*")

KEY_DIGITS = 9
"""Decimals the metric compares values at (``500`` equals ``500.0``; float noise does not count)."""


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
    """``(500, "gram")`` -> ``"500.0 gram"``."""
    return f"{format_number(value)} {unit}"


@dataclass(frozen=True, slots=True)
class Answer:
    """One answer: a number and a unit (``Answer(500.0, "gram")`` is ``"500.0 gram"``)."""

    value: float
    unit: str

    @classmethod
    def parse(cls, text: str | None) -> Answer | None:
        """``"500 gram"`` -> ``Answer(500.0, "gram")``; None for an empty or blank text.

        Raises:
            AnswerFormatError: a non-empty text that is not ``<number> <unit>`` (see the module docstring).
        """
        text = (text or "").strip()
        if not text:
            return None
        head, _, rest = text.partition(" ")
        unit = " ".join(rest.split())
        try:
            value = float(head)
        except ValueError:
            raise AnswerFormatError(text, "the number is not a number") from None
        if not _UNIT.fullmatch(unit):
            raise AnswerFormatError(text, "no unit after the number" if not unit else f"{unit!r} is not a unit")
        return cls(value, unit)

    @classmethod
    def try_parse(cls, text: str | None) -> Answer | None:
        """As :meth:`parse`, but None for a malformed text too."""
        try:
            return cls.parse(text)
        except AnswerFormatError:
            return None

    @property
    def finite(self) -> bool:
        return math.isfinite(self.value)

    @property
    def text(self) -> str:
        """The canonical spelling, as specread writes answers (``"500.0 gram"``).

        Raises:
            ValueError: the value is not finite (no answer can say ``inf``).
        """
        return format_prediction(self.value, self.unit)

    @property
    def key(self) -> tuple[float, str]:
        """What the metric compares: the value rounded to :data:`KEY_DIGITS` decimals, and the unit."""
        return (round(self.value, KEY_DIGITS), self.unit)

    def __str__(self) -> str:
        return self.text

    def __iter__(self) -> Iterator[float | str]:
        """``value, unit = answer``."""
        yield self.value
        yield self.unit
