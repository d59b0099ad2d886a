"""Candidates -> numeric features, shared by the rule scorer and the learned ranker.

Features describe what a person reading the label would look at: how big the
text is, where it sits, which words are next to it, whether it belongs to a
dimension group or a range, how often it repeats, and how plausible its unit
and magnitude are for the entity (priors from the training labels).
NumPy appears only at the boundary with :mod:`specread.rank`.

Each feature is a function registered with ``@_feature(name)`` in
:data:`FEATURE_TABLE`, in the order the functions stand in this file, followed by
the capacity features of :mod:`specread.extract.capacity`. A
function computes its feature for all candidates of one (page, entity) at once,
one value per candidate (a column), from the facts in
:class:`~specread.extract.facts.Batch`; a small
family computed together (the lines beside a box, a twin in another unit)
registers several names and returns one column per name. :data:`FEATURE_NAMES`
is the table's names in order: the columns of :func:`to_matrix`, which the
shipped ranker was trained on. Renaming, moving or adding a feature means
retraining the ranker (``specread train``); ``tests/test_features_table.py`` pins the
names and the entity order the ranker reads as ``entity_id``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

from specread.extract.candidates import Mention, candidates_for, neighbour_table, quantity_key
from specread.extract.capacity import CAPACITY_TABLE
from specread.extract.facts import (
    Batch,
    Column,
    Feature,
    FeatureTable,
    has_kw,
    line_features,
    pixel_aspect,
    ranks,
    rival_entities,
    twins_of,
)
from specread.extract.priors import Priors
from specread.parse.numbers import normalize_text
from specread.types import Candidate, OcrPage
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

# Which line orientation and placement each dimension entity is drawn with:
# (its own line feature, the rival line feature, sign for vertical text, sign for side placement).
_ROLES: dict[str, tuple[tuple[str, ...], tuple[str, ...], float, float]] = {
    "width": (("near_h",), ("near_v",), -1.0, -1.0),
    "height": (("near_v",), ("near_h",), 1.0, 1.0),
    "depth": (("near_d", "near_h"), ("near_v",), -1.0, 0.0),
}


# -- the table, in FEATURE_NAMES order ---------------------------------------------

_TABLE = FeatureTable()
_feature = _TABLE.feature


@_feature("entity_id")
def _entity_id(b: Batch) -> Column:
    """The entity asked for, as its position in ENTITIES: trees split on it to learn per-entity corrections."""
    return b.each(float(ENTITIES.index(b.entity)))


@_feature("rel_height")
def _rel_height(b: Batch) -> Column:
    """Text height relative to the tallest line on the page: the answer is often printed big."""
    tallest = max((t.height for t in b.page.tokens), default=MIN_TEXT_HEIGHT) or MIN_TEXT_HEIGHT
    return [h / tallest for h in b.heights]


@_feature("abs_height")
def _abs_height(b: Batch) -> Column:
    """Text height relative to the image."""
    return b.heights


@_feature("height_rank")
def _height_rank(b: Batch) -> Column:
    """0 for the tallest text among the candidates, 1 for the smallest."""
    return ranks([-h for h in b.heights])


@_feature("cx", "cy", "bw", "bh")
def _box(b: Batch) -> tuple[Column, ...]:
    """Centre and size of the evidence box (both boxes when the mention was joined)."""
    return b.cxs, b.cys, [c.box[2] - c.box[0] for c in b.cands], [c.box[3] - c.box[1] for c in b.cands]


@_feature("vertical")
def _vertical(b: Batch) -> Column:
    """The OCR line runs top to bottom (rotated text, typical for heights)."""
    return [float(t.vertical) for t in b.tokens]


@_feature("ocr_score")
def _ocr_score(b: Batch) -> Column:
    return [c.score for c in b.cands]


@_feature("joined")
def _joined(b: Batch) -> Column:
    """The mention was read across two OCR boxes (``500`` | ``ml``)."""
    return [float(c.text != t.text) for c, t in zip(b.cands, b.tokens, strict=True)]


@_feature("kw_self")
def _kw_self(b: Batch) -> Column:
    """A keyword of the entity in the mention's own text (``Net Wt 500 g``)."""
    return [float(has_kw(b.entity, c.text)) for c in b.cands]


@_feature("kw_near")
def _kw_near(b: Batch) -> Column:
    """A keyword of the entity on the lines the mention continues: those whose right or lower neighbour it is."""
    tokens = b.page.tokens
    table = neighbour_table(b.page)

    def near(t: int) -> float:
        return float(has_kw(b.entity, " ".join(tokens[j].text for j in range(len(tokens)) if t in table[j])))

    return b.per_token(near)


@_feature("kw_other")
def _kw_other(b: Batch) -> Column:
    """A keyword of another entity of the same dimension (``Max load`` against ``item_weight``)."""
    rivals = rival_entities(b.entity)
    return [float(any(has_kw(r, c.text) for r in rivals)) for c in b.cands]


@_feature("repeats")
def _repeats(b: Batch) -> Column:
    """How often the same value and unit is printed on the page."""
    return [float(b.keys[quantity_key(c.quantity)]) for c in b.cands]


@_feature("in_group", "group_size", "group_pos")
def _group(b: Batch) -> tuple[Column, ...]:
    """Membership in a dimension group such as ``25 x 15 x 8 cm``."""
    qs = [c.quantity for c in b.cands]
    return [float(q.group >= 0) for q in qs], [float(q.group_size) for q in qs], [float(q.group_pos) for q in qs]


@_feature("letter_match", "letter_other")
def _letter(b: Batch) -> tuple[Column, ...]:
    """A dimension letter printed with the value (``10"W``) that names this entity, or another one."""
    letters = get_registry().entity(b.entity).letters
    qs = [c.quantity for c in b.cands]
    match = [float(bool(q.letter) and q.letter in letters) for q in qs]
    other = [float(bool(q.letter) and q.letter not in letters) for q in qs]
    return match, other


@_feature("is_range", "range_high")
def _range(b: Batch) -> tuple[Column, ...]:
    """Part of a range (``100-240V``), and its upper end."""
    qs = [c.quantity for c in b.cands]
    return [float(q.is_range) for q in qs], [float(q.is_range and q.group_pos > 0) for q in qs]


@_feature("is_max", "is_min")
def _extreme_value(b: Batch) -> tuple[Column, ...]:
    """The largest and the smallest size among the candidates."""
    top, bottom = max(b.base), min(b.base)
    return [float(v >= top) for v in b.base], [float(v <= bottom) for v in b.base]


@_feature("value_rank")
def _value_rank(b: Batch) -> Column:
    """0 for the largest size among the candidates, 1 for the smallest."""
    return ranks([-v for v in b.base])


@_feature("n_cands")
def _n_cands(b: Batch) -> Column:
    return b.each(float(b.n))


@_feature("n_distinct")
def _n_distinct(b: Batch) -> Column:
    """How many different values (value and unit) the candidates hold."""
    return b.each(float(len(b.keys)))


@_feature("unit_logp")
def _unit_logp(b: Batch) -> Column:
    """Prior log-probability of the unit for the entity (and product group, when known)."""
    return [b.priors.unit_logp(b.entity, c.quantity.unit, b.group) for c in b.cands]


@_feature("value_logp")
def _value_logp(b: Batch) -> Column:
    """Prior log-probability of the value's magnitude for the entity and unit."""
    return [b.priors.value_logp(b.entity, c.quantity.unit, c.quantity.value) for c in b.cands]


@_feature("group_size_lift")
def _group_size_lift(b: Batch) -> Column:
    """How much likelier the size is in the product group than for the entity at large (0: group unknown)."""
    return [b.priors.size_lift(b.entity, b.group, v) for v in b.base]


@_feature("log_value")
def _log_value(b: Batch) -> Column:
    """log10 of the size in the base unit."""
    return [math.log10(v) if v > 0 else LOG_VALUE_OF_ZERO for v in b.base]


@_feature("in_parens")
def _in_parens(b: Batch) -> Column:
    """Printed after ``(`` or ``/``: an alternative to the value before it (``500 g (17.6 oz)``)."""
    normalized = {text: normalize_text(text) for text in {c.text for c in b.cands}}
    out = []
    for c in b.cands:
        before = normalized[c.text][: c.quantity.start].rstrip()  # the non-space text before the mention
        out.append(float(before.endswith("(") or before.endswith("/")))
    return out


@_feature("first_in_text")
def _first_in_text(b: Batch) -> Column:
    """The first mention read from its OCR line."""
    first: dict[int, int] = {}
    for c in b.cands:
        first[c.token_index] = min(first.get(c.token_index, c.quantity.start), c.quantity.start)
    return [float(c.quantity.start == first[c.token_index]) for c in b.cands]


@_feature("text_len")
def _text_len(b: Batch) -> Column:
    return [float(len(c.text)) for c in b.cands]


@_feature("digits_share")
def _digits_share(b: Batch) -> Column:
    """Share of digits in the text: a spec line is mostly numbers, a sentence is not."""
    return [sum(ch.isdigit() for ch in c.text) / max(1, len(c.text)) for c in b.cands]


@_feature("is_integer")
def _is_integer(b: Batch) -> Column:
    return [float(c.quantity.value == int(c.quantity.value)) for c in b.cands]


@_feature("n_tokens")
def _n_tokens(b: Batch) -> Column:
    """How many OCR lines the page has (how busy it is)."""
    return b.each(float(len(b.page.tokens)))


@_feature("same_unit_share")
def _same_unit_share(b: Batch) -> Column:
    """Share of the candidates in the same unit."""
    units = Counter(c.quantity.unit for c in b.cands)
    return [units[c.quantity.unit] / b.n for c in b.cands]


@_feature("text_vertical")
def _text_vertical(b: Batch) -> Column:
    """The OCR line's box is tall and narrow on the image: text printed top to bottom, however OCR turned it."""

    def tall(t: int) -> float:
        token = b.page.tokens[t]
        return float(
            pixel_aspect(token.box, b.page) > VERTICAL_ASPECT and len(token.text.strip()) >= MIN_VERTICAL_CHARS
        )

    return b.per_token(tall)


@_feature("edge_x", "edge_y", "mid_y")
def _edges(b: Batch) -> tuple[Column, ...]:
    """Distance to the nearest side and to the top or bottom of the image; distance from the middle row."""
    return [min(x, 1 - x) for x in b.cxs], [min(y, 1 - y) for y in b.cys], [abs(y - PAGE_CENTRE) for y in b.cys]


@_feature("x_rank", "y_rank")
def _position_rank(b: Batch) -> tuple[Column, ...]:
    """Rank from left to right and from top to bottom among the candidates (0..1)."""
    return ranks(b.cxs), ranks(b.cys)


@_feature("is_left", "is_right", "is_top", "is_bottom")
def _outermost(b: Batch) -> tuple[Column, ...]:
    """The leftmost, rightmost, topmost and lowest candidate."""
    left, right, top, bottom = min(b.cxs), max(b.cxs), min(b.cys), max(b.cys)
    return (
        [float(x <= left) for x in b.cxs],
        [float(x >= right) for x in b.cxs],
        [float(y <= top) for y in b.cys],
        [float(y >= bottom) for y in b.cys],
    )


@_feature("has_twin", "twin_first")
def _twin(b: Batch) -> tuple[Column, ...]:
    """Printed beside an equivalent in another unit (``25.4 cm / 10 in``), and the first of the two."""
    has, first = [], []
    for c, twins in zip(b.cands, twins_of(b), strict=True):
        has.append(float(bool(twins)))
        first.append(float(bool(twins) and all(c.quantity.start < b.cands[j].quantity.start for j in twins)))
    return has, first


@_feature("value_share")
def _value_share(b: Batch) -> Column:
    """Size relative to the largest candidate."""
    top = max(b.base)
    return [v / top for v in b.base] if top > 0 else b.each(0.0)


@_feature("n_same_value")
def _n_same_value(b: Batch) -> Column:
    """How often the same size is printed, in any unit."""
    sizes = Counter(round(v, SAME_SIZE_DECIMALS) for v in b.base)
    return [float(sizes[round(v, SAME_SIZE_DECIMALS)]) for v in b.base]


@_feature("near_h", "near_v", "near_d")
def _near_lines(b: Batch) -> tuple[Column, ...]:
    """Longest horizontal, vertical and slanted segment beside the text (see :func:`line_features`)."""
    return tuple(zip(*b.per_token(lambda t: line_features(b.page.tokens[t].box, b.page)), strict=True))


@_feature("role_line", "rival_line", "role_vertical", "role_edge")
def _role(b: Batch) -> tuple[Column, ...]:
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


FEATURE_TABLE: tuple[Feature, ...] = (*_TABLE.entries, *CAPACITY_TABLE.entries)
"""Every feature, in column order (see the module docstring)."""

FEATURE_NAMES: tuple[str, ...] = tuple(name for feature in FEATURE_TABLE for name in feature.names)
"""Column order of :func:`to_matrix`: the features the rule scorer and the shipped ranker read."""
if len(set(FEATURE_NAMES)) != len(FEATURE_NAMES):  # each table checks its own names; this checks across them
    raise ValueError(
        f"feature names registered twice: {sorted(n for n in set(FEATURE_NAMES) if FEATURE_NAMES.count(n) > 1)}"
    )

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
    batch = Batch(page, cands, entity, priors, group)
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


def to_matrix(cands: Sequence[Candidate]) -> np.ndarray:
    """Feature matrix in :data:`FEATURE_NAMES` order (float32, shape (n, n_features))."""
    if not cands:
        return np.zeros((0, len(FEATURE_NAMES)), dtype=np.float32)
    return np.array([[c.features[k] for k in FEATURE_NAMES] for c in cands], dtype=np.float32)
