"""What the feature functions of :mod:`specread.extract.features` read: one (page, entity)'s facts.

:class:`Batch` holds the candidates of one (page, entity) and the facts several features share,
computed once; :class:`FeatureTable` is how a module registers its features in column order. The
keyword, rank, twin and line geometry helpers are here because more than one feature family reads
them (the capacity features in :mod:`specread.extract.capacity` as well as the main table).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache

from specread.extract.candidates import quantity_key
from specread.extract.priors import Priors
from specread.types import Box, Candidate, OcrPage
from specread.units.registry import ENTITIES, get_registry

__all__ = [
    "Batch",
    "Column",
    "Feature",
    "FeatureTable",
    "base_value",
    "has_kw",
    "keyword_regex",
    "line_features",
    "pixel_aspect",
    "ranks",
    "rival_entities",
    "twins_of",
]


# Which lines run beside a text box (``near_h``, ``near_v``, ``near_d``); distances are in text heights.
MIN_TEXT_PX = 2.0
"""Floor, in pixels, of the text height the reaches below are measured in, so a flat box still has a reach."""
AXIS_TOLERANCE_DEG = 8
"""A segment within this many degrees of horizontal (vertical) is a horizontal (vertical) dimension line."""
SLANT_DEG = (15, 75)
"""A segment this many degrees off horizontal, either way, is a slanted depth line; nearer an axis, no line at all."""
LINE_REACH = 2.5
"""A horizontal line this many text heights above or below the text, or a vertical one this far beside it, labels it."""
SLANT_REACH = 3
"""A slanted line passing within this many text heights of the text's centre labels it."""

Column = Sequence[float]
"""One feature's values, one per candidate, in candidate order."""


@cache
def keyword_regex(entity: str) -> re.Pattern[str] | None:
    words = get_registry().entity(entity).keywords
    if not words:
        return None
    alts = "|".join(re.escape(w).replace(r"\ ", r"\s*") for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<![a-z])(?:{alts})(?![a-z])", re.I)


@cache
def rival_entities(entity: str) -> tuple[str, ...]:
    """Entities of the same dimension whose keywords argue against this one."""
    registry = get_registry()
    dim = registry.entity(entity).dimension
    return tuple(e for e in ENTITIES if e != entity and registry.entity(e).dimension == dim)


def has_kw(entity: str, text: str) -> bool:
    rx = keyword_regex(entity)
    return bool(rx and rx.search(text))


def base_value(c: Candidate) -> float:
    return c.quantity.value * get_registry().unit(c.quantity.unit).factor


class Batch:
    """The candidates of one (page, entity) and the facts several features read, computed once.

    ``columns`` holds the features computed so far, by name, so a feature may
    build on one that stands before it in the table.
    """

    __slots__ = (
        "base",
        "cands",
        "columns",
        "cxs",
        "cys",
        "entity",
        "group",
        "heights",
        "keys",
        "n",
        "page",
        "priors",
        "tokens",
    )

    def __init__(self, page: OcrPage, cands: Sequence[Candidate], entity: str, priors: Priors, group: str | None):
        self.page = page
        self.cands = cands
        self.entity = entity
        self.priors = priors
        self.group = group
        self.n = len(cands)
        self.tokens = [page.tokens[c.token_index] for c in cands]
        """The OCR line each candidate was read from (its first line when joined)."""
        self.heights = [t.height for t in self.tokens]
        self.base = [base_value(c) for c in cands]
        """Values in the dimension's base unit, comparable across units."""
        self.cxs = [(c.box[0] + c.box[2]) / 2 for c in cands]
        self.cys = [(c.box[1] + c.box[3]) / 2 for c in cands]
        self.keys = Counter(quantity_key(c.quantity) for c in cands)
        """How often each printed value (value and unit) occurs."""
        self.columns: dict[str, Column] = {}

    def per_token(self, fact: Callable[[int], float | tuple[float, ...]]) -> list:
        """``fact(token_index)`` for each candidate, computed once per OCR line."""
        seen: dict[int, float | tuple[float, ...]] = {}
        out = []
        for c in self.cands:
            t = c.token_index
            if t not in seen:
                seen[t] = fact(t)
            out.append(seen[t])
        return out

    def each(self, value: float) -> list[float]:
        """The same value for every candidate."""
        return [value] * self.n


@dataclass(frozen=True, slots=True)
class Feature:
    """One entry of :data:`FEATURE_TABLE`: the names it fills and the function computing them.

    ``compute`` returns the column of a single feature, or a tuple of columns,
    one per name in order, for a family.
    """

    names: tuple[str, ...]
    compute: Callable[[Batch], Column | tuple[Column, ...]]
    single: str = field(init=False)
    """The name of a single feature, ``""`` for a family."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "single", self.names[0] if len(self.names) == 1 else "")


class FeatureTable:
    """Features in the order they are registered with :meth:`feature`: one module's part of the table."""

    def __init__(self) -> None:
        self.entries: list[Feature] = []

    def feature(self, *names: str) -> Callable[[Callable], Callable]:
        """Register the decorated function as the next entry of the table, filling ``names``."""

        def register(compute: Callable) -> Callable:
            taken = {name for feature in self.entries for name in feature.names}.intersection(names)
            if taken:
                raise ValueError(f"feature {sorted(taken)} registered twice")
            self.entries.append(Feature(names, compute))
            return compute

        return register


def ranks(keys: Sequence[float]) -> list[float]:
    """Each candidate's rank by ascending key (ties keep candidate order), scaled to 0..1."""
    n = len(keys)
    ranks = [0.0] * n
    for r, i in enumerate(sorted(range(n), key=keys.__getitem__)):
        ranks[i] = r / max(1, n - 1)
    return ranks


def twins_of(b: Batch) -> list[list[int]]:
    """For each candidate, the candidates read from the same OCR line in another unit (its twins)."""
    same_token: dict[int, list[int]] = {}
    for i, c in enumerate(b.cands):
        same_token.setdefault(c.token_index, []).append(i)
    return [
        [j for j in same_token[c.token_index] if j != i and b.cands[j].quantity.unit != c.quantity.unit]
        for i, c in enumerate(b.cands)
    ]


def pixel_aspect(box: Box, page: OcrPage) -> float:
    """Height over width of a box in pixels (> 1 for text printed top-to-bottom)."""
    w = (box[2] - box[0]) * page.width
    h = (box[3] - box[1]) * page.height
    return h / w if w > 0 else 0.0


def line_features(box: Box, page: OcrPage) -> tuple[float, float, float]:
    """Longest horizontal, vertical and diagonal segment running beside a text box.

    A horizontal line passing under or over the text (within a few text
    heights) marks a width; a vertical one beside it a height; a slanted one a
    depth. Lengths are relative to the image side they run along.
    """
    W, H = page.width, page.height
    x0, y0, x1, y1 = box[0] * W, box[1] * H, box[2] * W, box[3] * H
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    th = max(MIN_TEXT_PX, min(x1 - x0, y1 - y0))
    near_h = near_v = near_d = 0.0
    for sx0, sy0, sx1, sy1 in page.segments:
        ax, ay, bx, by = sx0 * W, sy0 * H, sx1 * W, sy1 * H
        dx, dy = bx - ax, by - ay
        length = math.hypot(dx, dy)
        if length == 0:
            continue
        angle = abs(math.degrees(math.atan2(dy, dx))) % 180
        if angle < AXIS_TOLERANCE_DEG or angle > 180 - AXIS_TOLERANCE_DEG:
            lo, hi = min(ax, bx), max(ax, bx)
            if lo - th <= cx <= hi + th and abs((ay + by) / 2 - cy) <= LINE_REACH * th:
                near_h = max(near_h, length / W)
        elif 90 - AXIS_TOLERANCE_DEG < angle < 90 + AXIS_TOLERANCE_DEG:
            lo, hi = min(ay, by), max(ay, by)
            gap = max(0.0, x0 - (ax + bx) / 2, (ax + bx) / 2 - x1)
            if lo - th <= cy <= hi + th and gap <= LINE_REACH * th:
                near_v = max(near_v, length / H)
        elif SLANT_DEG[0] < angle < SLANT_DEG[1] or 180 - SLANT_DEG[1] < angle < 180 - SLANT_DEG[0]:
            t = max(0.0, min(1.0, ((cx - ax) * dx + (cy - ay) * dy) / (length * length)))
            dist = math.hypot(ax + t * dx - cx, ay + t * dy - cy)
            if dist <= SLANT_REACH * th:
                near_d = max(near_d, length / max(W, H))
    return near_h, near_v, near_d
