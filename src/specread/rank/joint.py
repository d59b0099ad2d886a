"""Whole-image reading: the printed sizes of one image get their roles jointly.

A product image asked for width, height and depth prints two or three sizes;
scored one entity at a time, the most striking size wins every role and the
three answers come back equal. Here the entities that share a unit dimension
form one *family* (width/height/depth; item weight/maximum weight
recommendation), and the reader picks one assignment of candidates to all of
the family's roles at once, asked or not, so that a box's height stops being
chosen as its depth even when only the depth is asked.

The score of an assignment is a sum of log-terms:

* each role's share of its candidate (the scorer's probabilities, normalised
  within the role), or :attr:`~specread.settings.JointSettings.none_logp` for a role left "not
  printed" (allowed only for roles nobody asked, or that have no candidate);
* for each pair of assigned roles, the labels' log-odds of their relation
  (smaller, equal, larger: :meth:`Priors.relation_logodds`, counted from the
  training labels, e.g. a depth is rarely smaller than a width) times
  :attr:`~specread.settings.JointSettings.pair_weight`;
* :attr:`~specread.settings.JointSettings.mention_cost` when two roles take one printed size (the
  same mention, or its twin in another unit on the same line: ``25.4 cm / 10 in``), and
  :attr:`~specread.settings.JointSettings.value_cost` when they take one size printed twice;
  both are waived for roles whose labels usually share a value (:data:`SHARED`: an item weight
  and its maximum weight recommendation are equal on 79% of the images labelled with both).

Every assignment of each role's top candidates is enumerated (a family has at
most three roles, so a few hundred), turned into a distribution by a softmax,
and each role's confidence is the probability mass of its chosen answer: the
margin over the next assignment, in probability form. The settings
(:class:`~specread.settings.JointSettings`, ``[joint]`` in ``settings.toml``) are
chosen by grouped cross-validation on real-dev (``benchmarks/whole_image.py``).
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np

from specread.extract.priors import RELATIONS, Priors, relation
from specread.settings import JointSettings
from specread.types import Candidate
from specread.units.registry import ENTITIES, get_registry

__all__ = ["RoleChoice", "assign", "families", "family_of"]


@cache
def family_of(entity: str) -> tuple[str, ...]:
    """The entities that share ``entity``'s unit dimension, in :data:`ENTITIES` order (itself included).

    Raises:
        UnknownEntityError: an entity outside the registry's.
    """
    registry = get_registry()
    dimension = registry.entity(entity).dimension
    return tuple(e for e in ENTITIES if registry.entity(e).dimension == dimension)


def families(entities: Sequence[str]) -> list[tuple[str, ...]]:
    """The families of the asked entities, each once, in the order they are first asked."""
    out: list[tuple[str, ...]] = []
    for e in entities:
        fam = family_of(e)
        if fam not in out:
            out.append(fam)
    return out


_DEFAULT = JointSettings()

SHARED = 0.5
"""Share of images labelled with both roles that give them one value, from which sharing costs nothing."""


@dataclass(frozen=True, slots=True)
class RoleChoice:
    """One role's part of the best assignment: a candidate index (None: not printed) and its confidence."""

    index: int | None
    confidence: float


def _answer(c: Candidate) -> tuple[float, str]:
    return (round(c.quantity.value, 6), c.quantity.unit)


def assign(
    cands: Mapping[str, Sequence[Candidate]],
    shares: Mapping[str, Sequence[float]],
    asked: Collection[str],
    priors: Priors,
    params: JointSettings = _DEFAULT,
) -> dict[str, RoleChoice]:
    """The best assignment of candidates to a family's roles.

    Args:
        cands: role -> its candidates (every role of the family, asked or not).
        shares: role -> each candidate's share of the role (non-negative, summing to about 1).
        asked: the roles that must be answered when they have a candidate.
        priors: the training labels' priors (how two roles' sizes compare).
        params: the assignment's costs.

    Returns:
        role -> :class:`RoleChoice`, for every role of ``cands``.
    """
    roles = list(cands)
    options: list[list[int | None]] = []
    logs: list[np.ndarray] = []
    for r in roles:
        share = np.asarray(shares[r], dtype=np.float64) if cands[r] else np.zeros(0)
        logs.append(params.share_weight * np.log(np.maximum(share, 1e-12)))
        top = [int(i) for i in np.argsort(-share, kind="stable")[: params.top_k]]
        if r not in asked or not top:
            top.append(None)  # type: ignore[arg-type]
        options.append(top)  # type: ignore[arg-type]
    registry = get_registry()
    sizes = [[registry.to_base(c.quantity.value, c.quantity.unit) for c in cands[r]] for r in roles]
    pair_terms = _pair_terms(roles, cands, sizes, priors, params)
    combos = list(itertools.product(*options))
    scores = np.empty(len(combos))
    for n, combo in enumerate(combos):
        s = 0.0
        for k, i in enumerate(combo):
            s += params.none_logp if i is None else logs[k][i]
        for (k, m), table in pair_terms.items():
            i, j = combo[k], combo[m]
            if i is not None and j is not None:
                s += table[i][j]
        scores[n] = s
    probs = np.exp(scores - scores.max())
    probs /= probs.sum()
    best = combos[int(np.argmax(scores))]
    out: dict[str, RoleChoice] = {}
    for k, r in enumerate(roles):
        mass: dict[tuple[float, str] | None, float] = {}
        first: dict[tuple[float, str] | None, int | None] = {}
        for p, combo in zip(probs, combos, strict=True):
            i = combo[k]
            key = None if i is None else _answer(cands[r][i])
            mass[key] = mass.get(key, 0.0) + float(p)
            first.setdefault(key, i)
        if params.marginal:
            allowed = [key for key in mass if key is not None or r not in asked or not cands[r]]
            key = max(allowed, key=mass.__getitem__)
            out[r] = RoleChoice(first[key] if key is None else _first_best(cands[r], logs[k], key), mass[key])
        else:
            i = best[k]
            key = None if i is None else _answer(cands[r][i])
            out[r] = RoleChoice(i, mass[key])
    return out


def _first_best(cands: Sequence[Candidate], logs: np.ndarray, key: tuple[float, str]) -> int:
    """The best-scored candidate giving the answer ``key`` (its evidence)."""
    return max((i for i, c in enumerate(cands) if _answer(c) == key), key=lambda i: logs[i])


def _pair_terms(
    roles: Sequence[str],
    cands: Mapping[str, Sequence[Candidate]],
    sizes: Sequence[Sequence[float]],
    priors: Priors,
    params: JointSettings,
) -> dict[tuple[int, int], list[list[float]]]:
    """For each pair of roles, the log-term of every pair of their candidates."""
    out: dict[tuple[int, int], list[list[float]]] = {}
    for k, m in itertools.combinations(range(len(roles)), 2):
        a, b = roles[k], roles[m]
        odds = {rel: params.pair_weight * priors.relation_logodds(a, b, rel) for rel in RELATIONS}
        # Roles whose labels usually share one value (an item weight and its maximum weight
        # recommendation: 79% of the images labelled with both) pay nothing for sharing a size.
        shared = priors.relation_share(a, b, "eq") >= SHARED
        mention_cost, value_cost = (0.0, 0.0) if shared else (params.mention_cost, params.value_cost)
        table: list[list[float]] = []
        for ci, si in zip(cands[a], sizes[k], strict=True):
            row = []
            for cj, sj in zip(cands[b], sizes[m], strict=True):
                rel = relation(si, sj)
                term = odds[rel]
                if rel == "eq":
                    # One printed size (the same mention, or its twin in another unit on the same
                    # line) for two roles, or one size printed twice.
                    term -= mention_cost if ci.token_index == cj.token_index else value_cost
                row.append(term)
            table.append(row)
        out[(k, m)] = table
    return out
