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

__all__ = ["FEATURE_NAMES", "LAYOUT_FEATURES", "page_candidates", "to_matrix"]

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
    "text_vertical",
    "edge_x",
    "edge_y",
    "mid_y",
    "x_rank",
    "y_rank",
    "is_left",
    "is_right",
    "is_top",
    "is_bottom",
    "has_twin",
    "twin_first",
    "value_share",
    "n_same_value",
    "near_h",
    "near_v",
    "near_d",
    "role_line",
    "rival_line",
    "role_vertical",
    "role_edge",
)

LAYOUT_FEATURES: tuple[str, ...] = (
    "near_h", "near_v", "near_d", "role_line", "rival_line", "role_vertical", "role_edge", "text_vertical",
    "edge_x", "edge_y", "mid_y", "x_rank", "y_rank", "is_left", "is_right", "is_top", "is_bottom", "cx", "cy",
)  # fmt: skip
"""Where a value sits and which lines run beside it (used to measure what layout adds)."""


# Which line orientation and placement each dimension entity is drawn with:
# (its own line feature, the rival line feature, sign for vertical text, sign for side placement).
_ROLES: dict[str, tuple[tuple[str, ...], tuple[str, ...], float, float]] = {
    "width": (("near_h",), ("near_v",), -1.0, -1.0),
    "height": (("near_v",), ("near_h",), 1.0, 1.0),
    "depth": (("near_d", "near_h"), ("near_v",), -1.0, 0.0),
}


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
    cxs = [(c.box[0] + c.box[2]) / 2 for c in cands]
    cys = [(c.box[1] + c.box[3]) / 2 for c in cands]
    rank_x = {i: r for r, i in enumerate(sorted(range(len(cands)), key=lambda i: cxs[i]))}
    rank_y = {i: r for r, i in enumerate(sorted(range(len(cands)), key=lambda i: cys[i]))}
    per_token: dict[int, list[int]] = {}
    for i, c in enumerate(cands):
        per_token.setdefault(c.token_index, []).append(i)
    same_value = Counter(round(b, 3) for b in base)
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
            "text_vertical": float(_pixel_aspect(tok.box, page) > 1.3 and len(tok.text.strip()) > 1),
            "edge_x": min(cxs[i], 1 - cxs[i]),
            "edge_y": min(cys[i], 1 - cys[i]),
            "mid_y": abs(cys[i] - 0.5),
            "x_rank": rank_x[i] / max(1, n - 1),
            "y_rank": rank_y[i] / max(1, n - 1),
            "is_left": float(cxs[i] <= min(cxs)),
            "is_right": float(cxs[i] >= max(cxs)),
            "is_top": float(cys[i] <= min(cys)),
            "is_bottom": float(cys[i] >= max(cys)),
            **_twin(i, cands, per_token.get(c.token_index, [])),
            "value_share": base[i] / max(base) if max(base) > 0 else 0.0,
            "n_same_value": float(same_value[round(base[i], 3)]),
            **_line_features(tok.box, page),
        }
        f.update(_role_features(entity, f))
        out.append(Candidate(c.entity, q, c.token_index, c.text, c.box, c.score, f))
    return out


def _pixel_aspect(box: tuple[float, float, float, float], page: OcrPage) -> float:
    """Height over width of a box in pixels (> 1 for text printed top-to-bottom)."""
    w = (box[2] - box[0]) * page.width
    h = (box[3] - box[1]) * page.height
    return h / w if w > 0 else 0.0


def _line_features(box: tuple[float, float, float, float], page: OcrPage) -> dict[str, float]:
    """Longest horizontal, vertical and diagonal segment running beside a text box.

    A horizontal line passing under or over the text (within a few text
    heights) marks a width; a vertical one beside it a height; a slanted one a
    depth. Lengths are relative to the image side they run along.
    """
    W, H = page.width, page.height
    x0, y0, x1, y1 = box[0] * W, box[1] * H, box[2] * W, box[3] * H
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    th = max(2.0, min(x1 - x0, y1 - y0))
    near = {"near_h": 0.0, "near_v": 0.0, "near_d": 0.0}
    for sx0, sy0, sx1, sy1 in page.segments:
        ax, ay, bx, by = sx0 * W, sy0 * H, sx1 * W, sy1 * H
        dx, dy = bx - ax, by - ay
        length = math.hypot(dx, dy)
        if length == 0:
            continue
        angle = abs(math.degrees(math.atan2(dy, dx))) % 180
        if angle < 8 or angle > 172:
            lo, hi = min(ax, bx), max(ax, bx)
            if lo - th <= cx <= hi + th and abs((ay + by) / 2 - cy) <= 2.5 * th:
                near["near_h"] = max(near["near_h"], length / W)
        elif 82 < angle < 98:
            lo, hi = min(ay, by), max(ay, by)
            gap = max(0.0, x0 - (ax + bx) / 2, (ax + bx) / 2 - x1)
            if lo - th <= cy <= hi + th and gap <= 2.5 * th:
                near["near_v"] = max(near["near_v"], length / H)
        elif 15 < angle < 75 or 105 < angle < 165:
            t = max(0.0, min(1.0, ((cx - ax) * dx + (cy - ay) * dy) / (length * length)))
            dist = math.hypot(ax + t * dx - cx, ay + t * dy - cy)
            if dist <= 3 * th:
                near["near_d"] = max(near["near_d"], length / max(W, H))
    return near


def _role_features(entity: str, f: dict[str, float]) -> dict[str, float]:
    """Layout cues expressed relative to the entity, so width, height and depth share what they learn."""
    role = _ROLES.get(entity)
    if role is None:
        return {"role_line": 0.0, "rival_line": 0.0, "role_vertical": 0.0, "role_edge": 0.0}
    own, rival, vertical_sign, edge_sign = role
    return {
        "role_line": max(f[k] for k in own),
        "rival_line": max(f[k] for k in rival),
        "role_vertical": vertical_sign * f["text_vertical"],
        "role_edge": edge_sign * (0.5 - f["edge_x"]),
    }


def _twin(i: int, cands: Sequence[Candidate], same_token: Sequence[int]) -> dict[str, float]:
    """Is this value printed beside an equivalent in another unit ("25.4 cm / 10 in"), and is it the first?"""
    me = cands[i].quantity
    others = [cands[j].quantity for j in same_token if j != i and cands[j].quantity.unit != me.unit]
    if not others:
        return {"has_twin": 0.0, "twin_first": 0.0}
    return {"has_twin": 1.0, "twin_first": float(all(me.start < o.start for o in others))}


def normalize_before(text: str, start: int) -> str:
    """The non-space text just before a mention (to spot ``(`` or ``/`` alternatives)."""
    from specread.parse.numbers import normalize_text

    return normalize_text(text)[:start].rstrip()


def to_matrix(cands: Sequence[Candidate]) -> np.ndarray:
    """Feature matrix in :data:`FEATURE_NAMES` order (float32, shape (n, n_features))."""
    if not cands:
        return np.zeros((0, len(FEATURE_NAMES)), dtype=np.float32)
    return np.array([[c.features[k] for k in FEATURE_NAMES] for c in cands], dtype=np.float32)
