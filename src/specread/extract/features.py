"""Candidates -> numeric features, shared by the rule scorer and the learned ranker.

Features describe what a person reading the label would look at: how big the
text is, where it sits, which words are next to it, whether it belongs to a
dimension group or a range, how often it repeats, and how plausible its unit
and magnitude are for the entity (priors from the training labels).
NumPy appears only at the boundary with :mod:`specread.rank`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from functools import cache

import numpy as np

from specread.extract.candidates import Mention, candidates_for, neighbour_table
from specread.rank.priors import Priors
from specread.types import Candidate, OcrPage
from specread.units.registry import ENTITIES, get_registry

__all__ = ["FEATURE_NAMES", "page_candidates", "to_matrix"]

FEATURE_NAMES: tuple[str, ...] = (
    "entity_id",
    "rel_height",
    "abs_height",
    "height_rank",
    "cx",
    "cy",
    "bw",
    "bh",
    "vertical",
    "ocr_score",
    "joined",
    "kw_self",
    "kw_near",
    "kw_other",
    "repeats",
    "in_group",
    "group_size",
    "group_pos",
    "letter_match",
    "letter_other",
    "is_range",
    "range_high",
    "is_max",
    "is_min",
    "value_rank",
    "n_cands",
    "n_distinct",
    "unit_logp",
    "value_logp",
    "log_value",
    "in_parens",
    "first_in_text",
    "text_len",
    "digits_share",
    "is_integer",
    "n_tokens",
    "same_unit_share",
)


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


def page_candidates(
    page: OcrPage, mentions: Sequence[Mention], entity: str, priors: Priors, group: str | None = None
) -> list[Candidate]:
    """Candidates for ``entity`` with their ``features`` filled in (see :data:`FEATURE_NAMES`)."""
    cands = candidates_for(entity, mentions)
    if not cands:
        return []
    registry = get_registry()
    spec = registry.entity(entity)
    tokens = page.tokens
    max_h = max((t.height for t in tokens), default=1e-6) or 1e-6
    table = neighbour_table(page)
    near_text: dict[int, str] = {}
    for c in cands:
        if c.token_index not in near_text:
            idx = [j for j in range(len(tokens)) if c.token_index in table[j]]
            near_text[c.token_index] = " ".join(tokens[j].text for j in idx)
    keys = Counter((round(c.quantity.value, 6), c.quantity.unit) for c in cands)
    base = [_base_value(c) for c in cands]
    heights = [tokens[c.token_index].height for c in cands]
    order_h = {i: r for r, i in enumerate(sorted(range(len(cands)), key=lambda i: -heights[i]))}
    order_v = {i: r for r, i in enumerate(sorted(range(len(cands)), key=lambda i: -base[i]))}
    units = Counter(c.quantity.unit for c in cands)
    first_start: dict[int, int] = {}
    for c in cands:
        first_start[c.token_index] = min(first_start.get(c.token_index, 1 << 30), c.quantity.start)
    rivals = _rivals(entity)
    eid = ENTITIES.index(entity)
    n = len(cands)
    out: list[Candidate] = []
    for i, c in enumerate(cands):
        q = c.quantity
        tok = tokens[c.token_index]
        x0, y0, x1, y1 = c.box
        near = near_text[c.token_index]
        text = c.text
        before = normalize_before(text, q.start)
        f = {
            "entity_id": float(eid),
            "rel_height": heights[i] / max_h,
            "abs_height": heights[i],
            "height_rank": order_h[i] / max(1, n - 1),
            "cx": (x0 + x1) / 2,
            "cy": (y0 + y1) / 2,
            "bw": x1 - x0,
            "bh": y1 - y0,
            "vertical": float(tok.vertical),
            "ocr_score": c.score,
            "joined": float(text != tok.text),
            "kw_self": float(_has_kw(entity, text)),
            "kw_near": float(_has_kw(entity, near)),
            "kw_other": float(any(_has_kw(r, text) for r in rivals)),
            "repeats": float(keys[(round(q.value, 6), q.unit)]),
            "in_group": float(q.group >= 0),
            "group_size": float(q.group_size),
            "group_pos": float(q.group_pos),
            "letter_match": float(bool(q.letter) and q.letter in spec.letters),
            "letter_other": float(bool(q.letter) and q.letter not in spec.letters),
            "is_range": float(q.is_range),
            "range_high": float(q.is_range and q.group_pos > 0),
            "is_max": float(base[i] >= max(base)),
            "is_min": float(base[i] <= min(base)),
            "value_rank": order_v[i] / max(1, n - 1),
            "n_cands": float(n),
            "n_distinct": float(len(keys)),
            "unit_logp": priors.unit_logp(entity, q.unit, group),
            "value_logp": priors.value_logp(entity, q.unit, q.value),
            "log_value": math.log10(base[i]) if base[i] > 0 else -10.0,
            "in_parens": float(before.endswith("(") or before.endswith("/")),
            "first_in_text": float(q.start == first_start[c.token_index]),
            "text_len": float(len(text)),
            "digits_share": sum(ch.isdigit() for ch in text) / max(1, len(text)),
            "is_integer": float(q.value == int(q.value)),
            "n_tokens": float(len(tokens)),
            "same_unit_share": units[q.unit] / n,
        }
        out.append(Candidate(c.entity, q, c.token_index, c.text, c.box, c.score, f))
    return out


def normalize_before(text: str, start: int) -> str:
    """The non-space text just before a mention (to spot ``(`` or ``/`` alternatives)."""
    from specread.parse.numbers import normalize_text

    return normalize_text(text)[:start].rstrip()


def to_matrix(cands: Sequence[Candidate]) -> np.ndarray:
    """Feature matrix in :data:`FEATURE_NAMES` order (float32, shape (n, n_features))."""
    if not cands:
        return np.zeros((0, len(FEATURE_NAMES)), dtype=np.float32)
    return np.array([[c.features[k] for k in FEATURE_NAMES] for c in cands], dtype=np.float32)
