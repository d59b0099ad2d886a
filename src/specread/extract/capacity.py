"""Capacity features: catalogue conventions a small training set cannot pin down, learnable with many labels.

They stand last in :data:`specread.extract.features.FEATURE_TABLE` (its columns are the shipped
ranker's, in order): which unit, which of two printed units, and how far to trust a product group.
"""

from __future__ import annotations

import math

from specread.extract.facts import Batch, Column, FeatureTable, ranks, twins_of
from specread.units.registry import get_registry

__all__ = ["CAPACITY_TABLE"]

CAPACITY_TABLE = FeatureTable()
"""The capacity features, in column order (after the main table's)."""
_feature = CAPACITY_TABLE.feature


@_feature("unit_id")
def _unit_id(b: Batch) -> Column:
    """The unit as its position in the entity's allowed units (categorical, like ``entity_id``).

    With ``entity_id`` it lets trees learn per-entity unit conventions beyond the smoothed prior,
    e.g. that a label keeps the centimetres of ``25.4 cm / 10 in`` on one kind of product.
    """
    allowed = get_registry().allowed(b.entity)
    return [float(allowed.index(c.quantity.unit)) for c in b.cands]


@_feature("twin_unit_gap")
def _twin_unit_gap(b: Batch) -> Column:
    """How much likelier this unit is than its twin's for the entity and product group (0 without a twin).

    Which of two printed units the label keeps is a convention of the catalogue, per group:
    the prior's judgement between exactly the two printed units, not each unit's alone.
    """
    logp = {u: b.priors.unit_logp(b.entity, u, b.group) for u in {c.quantity.unit for c in b.cands}}
    return [
        logp[c.quantity.unit] - max(logp[b.cands[j].quantity.unit] for j in twins) if twins else 0.0
        for c, twins in zip(b.cands, twins_of(b), strict=True)
    ]


@_feature("group_rows", "group_unit_share")
def _group_counts(b: Batch) -> tuple[Column, ...]:
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
def _unit_value_rank(b: Batch) -> Column:
    """0 for the largest size among the candidates in the same unit, 1 for the smallest.

    On a drawing the width, height and depth are usually printed in one unit, and which of
    them is which follows conventions (the longest side is the width) that vary by product.
    """
    by_unit: dict[str, list[int]] = {}
    for i, c in enumerate(b.cands):
        by_unit.setdefault(c.quantity.unit, []).append(i)
    out = [0.0] * b.n
    for members in by_unit.values():
        for i, r in zip(members, ranks([-b.base[i] for i in members]), strict=True):
            out[i] = r
    return out
