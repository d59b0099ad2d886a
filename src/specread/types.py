"""Typed values that cross stage boundaries.

Every stage of the pipeline hands frozen dataclasses to the next one, so a
reader can follow the data flow without guessing dictionary keys:

``OcrToken`` (ocr) -> ``Quantity`` (parse) -> ``Candidate`` (extract)
-> ``Prediction`` (rank / pipeline).

Geometry: boxes are relative ``(x0, y0, x1, y1)`` in 0..1 of the image. Pixels
become relative coordinates in :mod:`specread.ocr` and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from specread.answer import Answer

__all__ = [
    "Box",
    "Candidate",
    "ImageInput",
    "LabelledRow",
    "OcrPage",
    "OcrToken",
    "Prediction",
    "Quad",
    "Quantity",
    "ReadResult",
]

Box = tuple[float, float, float, float]
"""Axis-aligned box ``(x0, y0, x1, y1)`` relative to the image size (0..1)."""

ImageInput = str | Path | bytes | np.ndarray
"""What a reader reads: a file path, encoded image bytes, or an RGB ``uint8`` array (H, W, 3)."""

Quad = tuple[tuple[float, float], tuple[float, float], tuple[float, float], tuple[float, float]]
"""Four corner points (clockwise from top-left), relative to the image size."""


@dataclass(frozen=True, slots=True)
class OcrToken:
    """One text line found by the OCR engine."""

    text: str
    score: float
    quad: Quad

    @property
    def box(self) -> Box:
        xs = [p[0] for p in self.quad]
        ys = [p[1] for p in self.quad]
        return (min(xs), min(ys), max(xs), max(ys))

    @property
    def height(self) -> float:
        """Relative text height: the shorter side of the quad (works for rotated lines)."""
        (x0, y0), (x1, y1), (x2, y2), _ = self.quad
        side_a = ((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5
        side_b = ((x2 - x1) ** 2 + (y2 - y1) ** 2) ** 0.5
        return min(side_a, side_b)

    @property
    def vertical(self) -> bool:
        """True when the line runs top-to-bottom (rotated text, typical for heights)."""
        (x0, y0), (x1, y1), (x2, y2), _ = self.quad
        run_x, run_y = abs(x1 - x0), abs(y1 - y0)
        side_b = ((x2 - x1) ** 2 + (y2 - y1) ** 2) ** 0.5
        return run_y > run_x and ((run_x**2 + run_y**2) ** 0.5) > side_b

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "score": self.score, "quad": [list(p) for p in self.quad]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OcrToken:
        quad = tuple(tuple(float(c) for c in p) for p in data["quad"])
        return cls(text=str(data["text"]), score=float(data["score"]), quad=quad)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class OcrPage:
    """Everything the OCR engine read off one image.

    ``segments`` are straight line segments (relative ``(x0, y0, x1, y1)``)
    found on the image: the dimension lines and arrows that tell a width from
    a height (see :mod:`specread.ocr.layout`).
    """

    tokens: tuple[OcrToken, ...]
    width: int
    height: int
    segments: tuple[Box, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "height": self.height,
            "tokens": [t.to_dict() for t in self.tokens],
            "segments": [list(s) for s in self.segments],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OcrPage:
        return cls(
            tokens=tuple(OcrToken.from_dict(t) for t in data["tokens"]),
            width=int(data["width"]),
            height=int(data["height"]),
            segments=tuple(tuple(float(v) for v in s) for s in data.get("segments", ())),  # type: ignore[misc]
        )


@dataclass(frozen=True, slots=True)
class Quantity:
    """A number with a canonical unit, as parsed from text.

    ``start``/``end`` are character offsets of the mention in the parsed text;
    ``group`` / ``group_pos`` / ``group_size`` describe membership in a
    dimension group such as ``25 x 15 x 8 cm`` (``group`` is -1 when alone);
    ``letter`` is a dimension letter printed with the value (``W``, ``H``...).
    """

    value: float
    unit: str
    raw: str
    start: int = 0
    end: int = 0
    group: int = -1
    group_pos: int = 0
    group_size: int = 1
    letter: str = ""
    is_range: bool = False


@dataclass(frozen=True, slots=True)
class Candidate:
    """A quantity that could answer an entity, with where and how it was read."""

    entity: str
    quantity: Quantity
    token_index: int
    text: str
    box: Box
    score: float
    features: dict[str, float] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True, slots=True)
class Prediction:
    """The answer for one (image, entity): empty ``value`` means "no answer"."""

    entity: str
    value: float | None = None
    unit: str = ""
    confidence: float = 0.0
    source: str = ""
    evidence: Candidate | None = None

    @property
    def text(self) -> str:
        """The challenge format, ``"<number> <unit>"`` or ``""`` (see :class:`specread.answer.Answer`)."""
        if self.value is None or not self.unit:
            return ""
        return Answer(self.value, self.unit).text

    def to_dict(self) -> dict[str, Any]:
        """One entity's part of the ``specread read --json`` / ``POST /v1/read`` document (a stable contract)."""
        out: dict[str, Any] = {
            "entity": self.entity,
            "prediction": self.text,
            "value": self.value,
            "unit": self.unit or None,
            "confidence": round(self.confidence, 4),
            "source": self.source,
            "evidence": None,
        }
        if self.evidence is not None:
            ev = self.evidence
            out["evidence"] = {"text": ev.text, "box": list(ev.box), "score": ev.score, "raw": ev.quantity.raw}
        return out


@dataclass(frozen=True)
class ReadResult:
    """What a reader answers for one image: one prediction per asked entity, and the page they came from.

    Attributes:
        page: the OCR page (empty for a VLM-only reader).
        predictions: entity -> prediction, one per asked entity.
        candidates: entity -> every candidate that was weighed (empty for a VLM-only reader).
    """

    page: OcrPage
    predictions: dict[str, Prediction]
    candidates: dict[str, list[Candidate]]

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of ``specread read --json`` and the service's ``POST /v1/read``."""
        return {
            "width": self.page.width,
            "height": self.page.height,
            "tokens": [t.to_dict() | {"box": list(t.box)} for t in self.page.tokens],
            "predictions": {e: p.to_dict() for e, p in self.predictions.items()},
        }


@dataclass(frozen=True)
class LabelledRow:
    """One labelled (image, entity) with its OCR page already read: what training and evaluation consume."""

    key: str  # image identity (file name or digest)
    page: OcrPage
    entity: str
    group_id: str
    gold: str
