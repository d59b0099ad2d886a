"""OCR page -> candidates per entity.

Each OCR line is parsed on its own; then each line is joined with its right
neighbour on the same text row (and the line just below it), so a number and
its unit split across boxes (``500`` | ``ml``) or a dimension group broken in
two still parse. A quantity becomes a candidate for every entity whose allowed
units (after the entity's coercions, e.g. ``oz`` -> ``fluid ounce`` for
volumes) include its unit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache

from specread.parse.quantities import parse_quantities, with_unit
from specread.types import Box, Candidate, OcrPage, OcrToken, Quantity
from specread.units.registry import get_registry

__all__ = ["Mention", "candidates_for", "find_mentions", "neighbour_table", "neighbours", "quantity_key"]

# How OCR boxes pair up (:func:`neighbours`); distances are in heights of the box being continued.
SAME_ROW = 0.6
"""Two boxes share a text row when their vertical centres are less than this many line heights apart."""
OVERLAP = 0.3
"""A neighbour may start this many line heights before the box ends: OCR boxes are loose and overlap a little."""
MAX_GAP_RIGHT = 2.5
"""Widest gap to a box on the right that still continues the phrase (``500`` | ``ml``); wider is another phrase."""
MAX_GAP_BELOW = 1.2
"""Widest gap to the line below that still continues the phrase: about one line of leading."""
MIN_LINE_HEIGHT = 1e-6
"""Stands in for the height of a flat (zero-height) box, so the distances above stay positive."""
PAGES_CACHED = 16
"""Pages whose :func:`neighbour_table` is kept: a page is asked about for each of its entities in a row."""
VALUE_DECIMALS = 6
"""Values equal to this many decimals are the same mention (float noise from unit conversion must not split them)."""


class Mention:
    """A quantity with the OCR line(s) it came from (shared by every entity)."""

    __slots__ = ("box", "joined", "quantity", "score", "text", "token_index")

    def __init__(self, quantity: Quantity, token_index: int, text: str, box: Box, score: float, joined: bool) -> None:
        self.quantity = quantity
        self.token_index = token_index
        self.text = text
        self.box = box
        self.score = score
        self.joined = joined


def _union(a: Box, b: Box) -> Box:
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def neighbours(tokens: Sequence[OcrToken], i: int) -> tuple[int | None, int | None]:
    """Index of the nearest token to the right on the same row, and of the one just below."""
    t = tokens[i]
    x0, y0, x1, y1 = t.box
    h = max(y1 - y0, MIN_LINE_HEIGHT)
    cy = (y0 + y1) / 2
    right: tuple[float, int] | None = None
    below: tuple[float, int] | None = None
    for j, u in enumerate(tokens):
        if j == i:
            continue
        ux0, uy0, ux1, uy1 = u.box
        ucy = (uy0 + uy1) / 2
        if abs(ucy - cy) < SAME_ROW * h and ux0 >= x1 - OVERLAP * h:
            gap = ux0 - x1
            if gap < MAX_GAP_RIGHT * h and (right is None or gap < right[0]):
                right = (gap, j)
        elif uy0 >= y1 - OVERLAP * h and min(x1, ux1) - max(x0, ux0) > 0:
            gap = uy0 - y1
            if gap < MAX_GAP_BELOW * h and (below is None or gap < below[0]):
                below = (gap, j)
    return (right[1] if right else None, below[1] if below else None)


@lru_cache(maxsize=PAGES_CACHED)
def neighbour_table(page: OcrPage) -> tuple[tuple[int | None, int | None], ...]:
    """:func:`neighbours` for every token of a page, computed once per page."""
    return tuple(neighbours(page.tokens, i) for i in range(len(page.tokens)))


def quantity_key(q: Quantity) -> tuple[float, str]:
    """What makes two quantities the same printed value: the value (to :data:`VALUE_DECIMALS`) and the unit."""
    return (round(q.value, VALUE_DECIMALS), q.unit)


def find_mentions(page: OcrPage) -> list[Mention]:
    """Every value-with-unit mention on the page, including ones split across two lines."""
    tokens = page.tokens
    out: list[Mention] = []
    singles: list[list[Quantity]] = [parse_quantities(t.text) for t in tokens]
    for i, (t, qs) in enumerate(zip(tokens, singles, strict=True)):
        out.extend(Mention(q, i, t.text, t.box, t.score, False) for q in qs)
    table = neighbour_table(page)
    for i, t in enumerate(tokens):
        for j in table[i]:
            if j is None:
                continue
            u = tokens[j]
            seen = {quantity_key(q) for q in singles[i]} | {quantity_key(q) for q in singles[j]}
            text = f"{t.text} {u.text}"
            for q in parse_quantities(text):
                if quantity_key(q) not in seen:
                    out.append(Mention(q, i, text, _union(t.box, u.box), min(t.score, u.score), True))
    return out


def candidates_for(entity: str, mentions: Iterable[Mention]) -> list[Candidate]:
    """The mentions that can answer ``entity``, with units coerced for it."""
    registry = get_registry()
    out: list[Candidate] = []
    for m in mentions:
        unit = registry.for_entity(entity, m.quantity.unit)
        if unit is None:
            continue
        q = m.quantity if unit == m.quantity.unit else with_unit(m.quantity, unit)
        out.append(Candidate(entity, q, m.token_index, m.text, m.box, m.score))
    return out
