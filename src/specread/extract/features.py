"""Candidates -> numeric features, shared by the rule scorer and the learned ranker.

Features describe what a person reading the label would look at: how big the
text is, where it sits, which words are next to it, whether it belongs to a
dimension group or a range, how often it repeats, and how plausible its unit
and magnitude are for the entity (priors from the training labels).
NumPy appears only at the boundary with :mod:`specread.rank`.

Each feature is a function registered with ``@_feature(name)`` in
:data:`FEATURE_TABLE`, in the order the functions stand in this file. A
function computes its feature for all candidates of one (page, entity) at once,
one value per candidate (a column), from the facts in :class:`_Batch`; a small
family computed together (the lines beside a box, a twin in another unit)
registers several names and returns one column per name. :data:`FEATURE_NAMES`
is the table's names in order: the columns of :func:`to_matrix`, which the
shipped ranker was trained on. Renaming, moving or adding a feature means
retraining the ranker (``specread train``); ``tests/test_features_table.py`` pins the
names and the entity order the ranker reads as ``entity_id``.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache

import numpy as np

from specread.extract.candidates import Mention, candidates_for, neighbour_table, quantity_key
from specread.extract.priors import Priors
from specread.parse.numbers import normalize_text
from specread.types import Box, Candidate, OcrPage
from specread.units.registry import ENTITIES, get_registry

__all__ = [
    "CAPACITY_FEATURES",
    "CATEGORICAL_FEATURES",
    "FEATURE_NAMES",
    "FEATURE_TABLE",
    "LAYOUT_FEATURES",
    "Feature",
    "page_candidates",
    "to_matrix",
]

MIN_TEXT_HEIGHT = 1e-6
"""Stands in for the tallest text height of a page without text or with only flat boxes (``rel_height``: no 0 / 0)."""
SAME_SIZE_DECIMALS = 3
"""Sizes in the base unit equal to this many decimals are one size printed twice (``n_same_value``)."""
LOG_VALUE_OF_ZERO = -10.0
"""``log_value`` of a zero value: far below the log10 of any real product's size."""
VERTICAL_ASPECT = 1.3
"""A text box at least this much taller than wide (in pixels) holds text printed top to bottom."""
MIN_VERTICAL_CHARS = 2
"""Shorter text says nothing about direction: one character is about as tall as wide either way."""
PAGE_CENTRE = 0.5
"""The middle of the page in relative coordinates (``mid_y``, ``role_edge``)."""

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

# Which line orientation and placement each dimension entity is drawn with:
# (its own line feature, the rival line feature, sign for vertical text, sign for side placement).
_ROLES: dict[str, tuple[tuple[str, ...], tuple[str, ...], float, float]] = {
    "width": (("near_h",), ("near_v",), -1.0, -1.0),
    "height": (("near_v",), ("near_h",), 1.0, 1.0),
    "depth": (("near_d", "near_h"), ("near_v",), -1.0, 0.0),
}

Column = Sequence[float]
"""One feature's values, one per candidate, in candidate order."""


@cache
def _keyword_regex(entity: str) -> re.Pattern[str] | None:
    words = get_registry().entity(entity).keywords
    if not words:
        return None
    alts = "|".join(re.escape(w).replace(r"\ ", r"\s*") for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<![a-z])(?:{alts})(?![a-z])", re.I)


@cache
def _rivals(entity: str) -> tuple[str, ...]:
    """Entities of the same dimension whose keywords argue against this one."""
    registry = get_registry()
    dim = registry.entity(entity).dimension
    return tuple(e for e in ENTITIES if e != entity and registry.entity(e).dimension == dim)


def _has_kw(entity: str, text: str) -> bool:
    rx = _keyword_regex(entity)
    return bool(rx and rx.search(text))


def _base_value(c: Candidate) -> float:
    return c.quantity.value * get_registry().unit(c.quantity.unit).factor


class _Batch:
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
        self.base = [_base_value(c) for c in cands]
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
    compute: Callable[[_Batch], Column | tuple[Column, ...]]
    single: str = field(init=False)
    """The name of a single feature, ``""`` for a family."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "single", self.names[0] if len(self.names) == 1 else "")


_TABLE: list[Feature] = []


def _feature(*names: str) -> Callable[[Callable], Callable]:
    """Register the decorated function as the next entry of the table, filling ``names``."""

    def register(compute: Callable) -> Callable:
        taken = {name for feature in _TABLE for name in feature.names}.intersection(names)
        if taken:
            raise ValueError(f"feature {sorted(taken)} registered twice")
        _TABLE.append(Feature(names, compute))
        return compute

    return register


def _ranks(keys: Sequence[float]) -> list[float]:
    """Each candidate's rank by ascending key (ties keep candidate order), scaled to 0..1."""
    n = len(keys)
    ranks = [0.0] * n
    for r, i in enumerate(sorted(range(n), key=keys.__getitem__)):
        ranks[i] = r / max(1, n - 1)
    return ranks


# -- the table, in FEATURE_NAMES order ---------------------------------------------


@_feature("entity_id")
def _entity_id(b: _Batch) -> Column:
    """The entity asked for, as its position in ENTITIES: trees split on it to learn per-entity corrections."""
    return b.each(float(ENTITIES.index(b.entity)))


@_feature("rel_height")
def _rel_height(b: _Batch) -> Column:
    """Text height relative to the tallest line on the page: the answer is often printed big."""
    tallest = max((t.height for t in b.page.tokens), default=MIN_TEXT_HEIGHT) or MIN_TEXT_HEIGHT
    return [h / tallest for h in b.heights]


@_feature("abs_height")
def _abs_height(b: _Batch) -> Column:
    """Text height relative to the image."""
    return b.heights


@_feature("height_rank")
def _height_rank(b: _Batch) -> Column:
    """0 for the tallest text among the candidates, 1 for the smallest."""
    return _ranks([-h for h in b.heights])


@_feature("cx", "cy", "bw", "bh")
def _box(b: _Batch) -> tuple[Column, ...]:
    """Centre and size of the evidence box (both boxes when the mention was joined)."""
    return b.cxs, b.cys, [c.box[2] - c.box[0] for c in b.cands], [c.box[3] - c.box[1] for c in b.cands]


@_feature("vertical")
def _vertical(b: _Batch) -> Column:
    """The OCR line runs top to bottom (rotated text, typical for heights)."""
    return [float(t.vertical) for t in b.tokens]


@_feature("ocr_score")
def _ocr_score(b: _Batch) -> Column:
    return [c.score for c in b.cands]


@_feature("joined")
def _joined(b: _Batch) -> Column:
    """The mention was read across two OCR boxes (``500`` | ``ml``)."""
    return [float(c.text != t.text) for c, t in zip(b.cands, b.tokens, strict=True)]


@_feature("kw_self")
def _kw_self(b: _Batch) -> Column:
    """A keyword of the entity in the mention's own text (``Net Wt 500 g``)."""
    return [float(_has_kw(b.entity, c.text)) for c in b.cands]


@_feature("kw_near")
def _kw_near(b: _Batch) -> Column:
    """A keyword of the entity on the lines the mention continues: those whose right or lower neighbour it is."""
    tokens = b.page.tokens
    table = neighbour_table(b.page)

    def near(t: int) -> float:
        return float(_has_kw(b.entity, " ".join(tokens[j].text for j in range(len(tokens)) if t in table[j])))

    return b.per_token(near)


@_feature("kw_other")
def _kw_other(b: _Batch) -> Column:
    """A keyword of another entity of the same dimension (``Max load`` against ``item_weight``)."""
    rivals = _rivals(b.entity)
    return [float(any(_has_kw(r, c.text) for r in rivals)) for c in b.cands]


@_feature("repeats")
def _repeats(b: _Batch) -> Column:
    """How often the same value and unit is printed on the page."""
    return [float(b.keys[quantity_key(c.quantity)]) for c in b.cands]


@_feature("in_group", "group_size", "group_pos")
def _group(b: _Batch) -> tuple[Column, ...]:
    """Membership in a dimension group such as ``25 x 15 x 8 cm``."""
    qs = [c.quantity for c in b.cands]
    return [float(q.group >= 0) for q in qs], [float(q.group_size) for q in qs], [float(q.group_pos) for q in qs]


@_feature("letter_match", "letter_other")
def _letter(b: _Batch) -> tuple[Column, ...]:
    """A dimension letter printed with the value (``10"W``) that names this entity, or another one."""
    letters = get_registry().entity(b.entity).letters
    qs = [c.quantity for c in b.cands]
    match = [float(bool(q.letter) and q.letter in letters) for q in qs]
    other = [float(bool(q.letter) and q.letter not in letters) for q in qs]
    return match, other


@_feature("is_range", "range_high")
def _range(b: _Batch) -> tuple[Column, ...]:
    """Part of a range (``100-240V``), and its upper end."""
    qs = [c.quantity for c in b.cands]
    return [float(q.is_range) for q in qs], [float(q.is_range and q.group_pos > 0) for q in qs]


@_feature("is_max", "is_min")
def _extreme_value(b: _Batch) -> tuple[Column, ...]:
    """The largest and the smallest size among the candidates."""
    top, bottom = max(b.base), min(b.base)
    return [float(v >= top) for v in b.base], [float(v <= bottom) for v in b.base]


@_feature("value_rank")
def _value_rank(b: _Batch) -> Column:
    """0 for the largest size among the candidates, 1 for the smallest."""
    return _ranks([-v for v in b.base])


@_feature("n_cands")
def _n_cands(b: _Batch) -> Column:
    return b.each(float(b.n))


@_feature("n_distinct")
def _n_distinct(b: _Batch) -> Column:
    """How many different values (value and unit) the candidates hold."""
    return b.each(float(len(b.keys)))


@_feature("unit_logp")
def _unit_logp(b: _Batch) -> Column:
    """Prior log-probability of the unit for the entity (and product group, when known)."""
    return [b.priors.unit_logp(b.entity, c.quantity.unit, b.group) for c in b.cands]


@_feature("value_logp")
def _value_logp(b: _Batch) -> Column:
    """Prior log-probability of the value's magnitude for the entity and unit."""
    return [b.priors.value_logp(b.entity, c.quantity.unit, c.quantity.value) for c in b.cands]


@_feature("log_value")
def _log_value(b: _Batch) -> Column:
    """log10 of the size in the base unit."""
    return [math.log10(v) if v > 0 else LOG_VALUE_OF_ZERO for v in b.base]


@_feature("in_parens")
def _in_parens(b: _Batch) -> Column:
    """Printed after ``(`` or ``/``: an alternative to the value before it (``500 g (17.6 oz)``)."""
    normalized = {text: normalize_text(text) for text in {c.text for c in b.cands}}
    out = []
    for c in b.cands:
        before = normalized[c.text][: c.quantity.start].rstrip()  # the non-space text before the mention
        out.append(float(before.endswith("(") or before.endswith("/")))
    return out


@_feature("first_in_text")
def _first_in_text(b: _Batch) -> Column:
    """The first mention read from its OCR line."""
    first: dict[int, int] = {}
    for c in b.cands:
        first[c.token_index] = min(first.get(c.token_index, c.quantity.start), c.quantity.start)
    return [float(c.quantity.start == first[c.token_index]) for c in b.cands]


@_feature("text_len")
def _text_len(b: _Batch) -> Column:
    return [float(len(c.text)) for c in b.cands]


@_feature("digits_share")
def _digits_share(b: _Batch) -> Column:
    """Share of digits in the text: a spec line is mostly numbers, a sentence is not."""
    return [sum(ch.isdigit() for ch in c.text) / max(1, len(c.text)) for c in b.cands]


@_feature("is_integer")
def _is_integer(b: _Batch) -> Column:
    return [float(c.quantity.value == int(c.quantity.value)) for c in b.cands]


@_feature("n_tokens")
def _n_tokens(b: _Batch) -> Column:
    """How many OCR lines the page has (how busy it is)."""
    return b.each(float(len(b.page.tokens)))


@_feature("same_unit_share")
def _same_unit_share(b: _Batch) -> Column:
    """Share of the candidates in the same unit."""
    units = Counter(c.quantity.unit for c in b.cands)
    return [units[c.quantity.unit] / b.n for c in b.cands]


@_feature("text_vertical")
def _text_vertical(b: _Batch) -> Column:
    """The OCR line's box is tall and narrow on the image: text printed top to bottom, however OCR turned it."""

    def tall(t: int) -> float:
        token = b.page.tokens[t]
        return float(
            _pixel_aspect(token.box, b.page) > VERTICAL_ASPECT and len(token.text.strip()) >= MIN_VERTICAL_CHARS
        )

    return b.per_token(tall)


@_feature("edge_x", "edge_y", "mid_y")
def _edges(b: _Batch) -> tuple[Column, ...]:
    """Distance to the nearest side and to the top or bottom of the image; distance from the middle row."""
    return [min(x, 1 - x) for x in b.cxs], [min(y, 1 - y) for y in b.cys], [abs(y - PAGE_CENTRE) for y in b.cys]


@_feature("x_rank", "y_rank")
def _position_rank(b: _Batch) -> tuple[Column, ...]:
    """Rank from left to right and from top to bottom among the candidates (0..1)."""
    return _ranks(b.cxs), _ranks(b.cys)


@_feature("is_left", "is_right", "is_top", "is_bottom")
def _outermost(b: _Batch) -> tuple[Column, ...]:
    """The leftmost, rightmost, topmost and lowest candidate."""
    left, right, top, bottom = min(b.cxs), max(b.cxs), min(b.cys), max(b.cys)
    return (
        [float(x <= left) for x in b.cxs],
        [float(x >= right) for x in b.cxs],
        [float(y <= top) for y in b.cys],
        [float(y >= bottom) for y in b.cys],
    )


def _twins(b: _Batch) -> list[list[int]]:
    """For each candidate, the candidates read from the same OCR line in another unit (its twins)."""
    same_token: dict[int, list[int]] = {}
    for i, c in enumerate(b.cands):
        same_token.setdefault(c.token_index, []).append(i)
    return [
        [j for j in same_token[c.token_index] if j != i and b.cands[j].quantity.unit != c.quantity.unit]
        for i, c in enumerate(b.cands)
    ]


@_feature("has_twin", "twin_first")
def _twin(b: _Batch) -> tuple[Column, ...]:
    """Printed beside an equivalent in another unit (``25.4 cm / 10 in``), and the first of the two."""
    has, first = [], []
    for c, twins in zip(b.cands, _twins(b), strict=True):
        has.append(float(bool(twins)))
        first.append(float(bool(twins) and all(c.quantity.start < b.cands[j].quantity.start for j in twins)))
    return has, first


@_feature("value_share")
def _value_share(b: _Batch) -> Column:
    """Size relative to the largest candidate."""
    top = max(b.base)
    return [v / top for v in b.base] if top > 0 else b.each(0.0)


@_feature("n_same_value")
def _n_same_value(b: _Batch) -> Column:
    """How often the same size is printed, in any unit."""
    sizes = Counter(round(v, SAME_SIZE_DECIMALS) for v in b.base)
    return [float(sizes[round(v, SAME_SIZE_DECIMALS)]) for v in b.base]


@_feature("near_h", "near_v", "near_d")
def _near_lines(b: _Batch) -> tuple[Column, ...]:
    """Longest horizontal, vertical and slanted segment beside the text (see :func:`_line_features`)."""
    return tuple(zip(*b.per_token(lambda t: _line_features(b.page.tokens[t].box, b.page)), strict=True))


@_feature("role_line", "rival_line", "role_vertical", "role_edge")
def _role(b: _Batch) -> tuple[Column, ...]:
    """Layout cues expressed relative to the entity, so width, height and depth share what they learn."""
    role = _ROLES.get(b.entity)
    if role is None:
        return b.each(0.0), b.each(0.0), b.each(0.0), b.each(0.0)
    own, rival, vertical_sign, edge_sign = role
    f = b.columns
    return (
        [max(f[k][i] for k in own) for i in range(b.n)],
        [max(f[k][i] for k in rival) for i in range(b.n)],
        [vertical_sign * v for v in f["text_vertical"]],
        [edge_sign * (PAGE_CENTRE - e) for e in f["edge_x"]],
    )


# -- capacity: conventions a small training set cannot pin down, learnable with many labels ----------------


@_feature("unit_id")
def _unit_id(b: _Batch) -> Column:
    """The unit as its position in the entity's allowed units (categorical, like ``entity_id``).

    With ``entity_id`` it lets trees learn per-entity unit conventions beyond the smoothed prior,
    e.g. that a label keeps the centimetres of ``25.4 cm / 10 in`` on one kind of product.
    """
    allowed = get_registry().allowed(b.entity)
    return [float(allowed.index(c.quantity.unit)) for c in b.cands]


@_feature("twin_unit_gap")
def _twin_unit_gap(b: _Batch) -> Column:
    """How much likelier this unit is than its twin's for the entity and product group (0 without a twin).

    Which of two printed units the label keeps is a convention of the catalogue, per group:
    the prior's judgement between exactly the two printed units, not each unit's alone.
    """
    logp = {u: b.priors.unit_logp(b.entity, u, b.group) for u in {c.quantity.unit for c in b.cands}}
    return [
        logp[c.quantity.unit] - max(logp[b.cands[j].quantity.unit] for j in twins) if twins else 0.0
        for c, twins in zip(b.cands, _twins(b), strict=True)
    ]


@_feature("group_rows", "group_unit_share")
def _group_counts(b: _Batch) -> tuple[Column, ...]:
    """How many training labels the product group has for the entity (log1p), and the unit's share of them.

    ``unit_logp`` blends the group's counts with the entity's at a fixed weight; these raw counts
    let trees learn how far to trust a group, which needs many groups seen at many sizes.
    The share is -1 for a group the priors do not know.
    """
    counts = b.priors.group_units(b.entity, b.group)
    total = sum(counts.values())
    share = [counts.get(c.quantity.unit, 0) / total if total else -1.0 for c in b.cands]
    return b.each(math.log1p(total)), share


@_feature("unit_value_rank")
def _unit_value_rank(b: _Batch) -> Column:
    """0 for the largest size among the candidates in the same unit, 1 for the smallest.

    On a drawing the width, height and depth are usually printed in one unit, and which of
    them is which follows conventions (the longest side is the width) that vary by product.
    """
    by_unit: dict[str, list[int]] = {}
    for i, c in enumerate(b.cands):
        by_unit.setdefault(c.quantity.unit, []).append(i)
    out = [0.0] * b.n
    for members in by_unit.values():
        for i, r in zip(members, _ranks([-b.base[i] for i in members]), strict=True):
            out[i] = r
    return out


FEATURE_TABLE: tuple[Feature, ...] = tuple(_TABLE)
"""Every feature, in column order (see the module docstring)."""

FEATURE_NAMES: tuple[str, ...] = tuple(name for feature in FEATURE_TABLE for name in feature.names)
"""Column order of :func:`to_matrix`: the features the rule scorer and the shipped ranker read."""

LAYOUT_FEATURES: tuple[str, ...] = (
    "near_h", "near_v", "near_d", "role_line", "rival_line", "role_vertical", "role_edge", "text_vertical",
    "edge_x", "edge_y", "mid_y", "x_rank", "y_rank", "is_left", "is_right", "is_top", "is_bottom", "cx", "cy",
)  # fmt: skip
"""Where a value sits and which lines run beside it (used to measure what layout adds)."""

CAPACITY_FEATURES: tuple[str, ...] = ("unit_id", "twin_unit_gap", "group_rows", "group_unit_share", "unit_value_rank")
"""Catalogue conventions (which unit, which number, per product group) that need many labels to learn."""

CATEGORICAL_FEATURES: tuple[str, ...] = ("entity_id", "unit_id")
"""Features that are codes, not quantities: the ranker splits them as categories."""


def page_candidates(
    page: OcrPage, mentions: Sequence[Mention], entity: str, priors: Priors, group: str | None = None
) -> list[Candidate]:
    """Candidates for ``entity`` with their ``features`` filled in (see :data:`FEATURE_NAMES`)."""
    cands = candidates_for(entity, mentions)
    if not cands:
        return []
    batch = _Batch(page, cands, entity, priors, group)
    columns = batch.columns
    for feature in FEATURE_TABLE:
        if feature.single:
            columns[feature.single] = feature.compute(batch)
        else:
            columns.update(zip(feature.names, feature.compute(batch), strict=True))
    # The table fills ``columns`` in FEATURE_NAMES order, each name once.
    rows = zip(*columns.values(), strict=True)
    return [
        Candidate(
            c.entity, c.quantity, c.token_index, c.text, c.box, c.score, dict(zip(FEATURE_NAMES, row, strict=True))
        )
        for c, row in zip(cands, rows, strict=True)
    ]


def _pixel_aspect(box: Box, page: OcrPage) -> float:
    """Height over width of a box in pixels (> 1 for text printed top-to-bottom)."""
    w = (box[2] - box[0]) * page.width
    h = (box[3] - box[1]) * page.height
    return h / w if w > 0 else 0.0


def _line_features(box: Box, page: OcrPage) -> tuple[float, float, float]:
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


def to_matrix(cands: Sequence[Candidate]) -> np.ndarray:
    """Feature matrix in :data:`FEATURE_NAMES` order (float32, shape (n, n_features))."""
    if not cands:
        return np.zeros((0, len(FEATURE_NAMES)), dtype=np.float32)
    return np.array([[c.features[k] for k in FEATURE_NAMES] for c in cands], dtype=np.float32)
