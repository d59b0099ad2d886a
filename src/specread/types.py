"""Typed values that cross stage boundaries.

Every stage of the pipeline hands frozen dataclasses to the next one, so a
reader can follow the data flow without guessing dictionary keys:

``OcrToken`` (ocr) -> ``Quantity`` (parse) -> ``Candidate`` (extract)
-> ``Prediction`` (rank / pipeline).

Geometry: boxes are relative ``(x0, y0, x1, y1)`` in 0..1 of the image. Pixels
become relative coordinates in :mod:`specread.ocr` and nowhere else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from specread.answer import Answer
from specread.errors import PageFormatError

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
    def from_dict(cls, data: Any) -> OcrToken:
        """The token of :meth:`to_dict` (see :meth:`OcrPage.from_dict`).

        Raises:
            PageFormatError: anything but a text, a score in 0..1 and four corner points.
        """
        data = _fields(data, "token", ("text", "score", "quad"))
        text = data["text"]
        if not isinstance(text, str) or len(text) > MAX_TOKEN_TEXT:
            raise PageFormatError(f"a token's text is not a string of at most {MAX_TOKEN_TEXT} characters")
        points = _items(data["quad"], "a token's quad", 4, exact=True)
        quad = tuple(_coords(p, "a quad's point", 2) for p in points)
        return cls(text=text, score=_number(data["score"], "a token's score", 0.0, 1.0), quad=quad)  # type: ignore[arg-type]


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
    def from_dict(cls, data: Any) -> OcrPage:
        """The page of :meth:`to_dict`, checked: it comes back from a file anything may have written.

        A page read from the OCR cache is trusted as if the engine had just read it, so every value
        is checked to be what the engine gives: a positive, bounded width and height; at most
        :data:`MAX_PAGE_TOKENS` tokens of text, a score in 0..1 and four points; segments of four
        coordinates; every number finite, every coordinate within a thousand image sides. Nothing nests
        deeper than that schema.

        Raises:
            PageFormatError: the only error bad data gives (never ``KeyError``, ``IndexError``...).
        """
        data = _fields(data, "page", ("width", "height", "tokens"))
        width, height = (_side(data[k], k) for k in ("width", "height"))
        tokens = tuple(OcrToken.from_dict(t) for t in _items(data["tokens"], "tokens", MAX_PAGE_TOKENS))
        segments = _items(data.get("segments", []), "segments", MAX_PAGE_SEGMENTS)
        return cls(
            tokens=tokens,
            width=width,
            height=height,
            segments=tuple(_coords(seg, "a segment", 4) for seg in segments),  # type: ignore[misc]
        )


MAX_PAGE_SIDE = 1 << 28
"""Largest width or height a page may state: above any picture Pillow decodes (its pixel limit)."""

MAX_PAGE_TOKENS = 100_000
"""Most tokens a page may hold (a dense catalogue page has a few hundred)."""

MAX_PAGE_SEGMENTS = 10_000
"""Most line segments a page may hold (:mod:`specread.ocr.layout` keeps 200)."""

MAX_TOKEN_TEXT = 10_000
"""Longest token text (one detected line of print)."""

_COORD_RANGE = (-1000.0, 1000.0)
"""Relative coordinates a point may have. Boxes overhang the image's edges, and a thin strip is padded
for the detector (:func:`specread.ocr.rapid._pad_to_min_side`) to many times its own side; a thousand
sides away is no picture's."""


def _fields(data: Any, what: str, required: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise PageFormatError(f"a {what} is not an object")
    missing = [k for k in required if k not in data]
    if missing:
        raise PageFormatError(f"a {what} lacks {', '.join(missing)}")
    return data


def _items(value: Any, what: str, limit: int, exact: bool = False) -> Sequence[Any]:
    if not isinstance(value, list | tuple):
        raise PageFormatError(f"{what} is not a list")
    if len(value) > limit or (exact and len(value) != limit):
        raise PageFormatError(f"{what} has {len(value)} items ({'exactly' if exact else 'at most'} {limit})")
    return value


def _number(value: Any, what: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PageFormatError(f"{what} is not a number")
    try:
        number = float(value)
    except OverflowError:  # an int of hundreds of digits
        raise PageFormatError(f"{what} is out of range") from None
    if not low <= number <= high:  # NaN fails both comparisons
        raise PageFormatError(f"{what} is out of range {low:g}..{high:g}")
    return number


def _coords(value: Any, what: str, count: int) -> tuple[float, ...]:
    return tuple(_number(v, what, *_COORD_RANGE) for v in _items(value, what, count, exact=True))


def _side(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PAGE_SIDE:
        raise PageFormatError(f"the page's {what} is not a whole number in 1..{MAX_PAGE_SIDE}")
    return value


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

    @property
    def answer(self) -> Answer:
        """The answer this candidate gives: candidates printing the same size in the same unit give one answer."""
        return Answer(self.quantity.value, self.quantity.unit)


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
