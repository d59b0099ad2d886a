"""Priors learned from the challenge's known training labels (no images needed).

They answer three questions the image alone cannot:

* how likely is this unit for this entity and product group (``unit_logp``);
* how plausible is this magnitude for this entity and unit (``value_logp``,
  a smoothed histogram of log10 values);
* what to answer when the image gives nothing (``fallback``): under the
  challenge's F1 a blank costs as much as a wrong guess, so the most common
  answer for the entity within the product group is the best blind guess;
* how large an entity usually is within a product group (``size_lift``): a floor mat's
  depth runs to metres, a phone case's to centimetres; the printed size that fits the group
  is more likely the label;
* how two entities of one dimension labelled on the same image compare
  (``relation_logodds``): a depth is rarely smaller than a width, and an item
  weight usually equals the maximum weight recommendation. The whole-image
  reader (:mod:`specread.rank.joint`) weighs its assignments with it.

``specread priors TRAIN.csv`` builds a priors file; ``specread train`` puts one in every model
folder (:mod:`specread.rank.model`), the packaged one in ``specread/data/model/priors.json``.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from specread.answer import Answer
from specread.data import PACKAGED_MODEL
from specread.io.dataset import iter_labels
from specread.units.registry import get_registry

__all__ = [
    "RELATIONS",
    "Priors",
    "build_priors_file",
    "image_links",
    "load_priors",
    "log_bin",
    "parse_label",
    "relation",
]

BIN_WIDTH = 0.25
BIN_MIN = -4.0
N_BINS = int((8.0 - BIN_MIN) / BIN_WIDTH)
MIN_GROUP_ROWS = 5
RELATIONS = ("lt", "eq", "gt")
"""How one entity's size compares with another's on the same image: smaller, equal, larger."""
SIZE_PRIOR_ROWS = 30
"""Weight, in labels, of the entity's size histogram in a product group's smoothed one."""
SAME_SIZE_TOLERANCE = 0.03
"""Two sizes within 3% are one size (``3.1 in / 8 cm`` are 1.6% apart after rounding)."""


def parse_label(text: str) -> tuple[float, str] | None:
    """``"500.0 gram"`` -> ``(500.0, "gram")``; None for lists, ranges, malformed labels,
    non-finite values and units outside the registry."""
    answer = Answer.try_parse(text)
    if answer is None or not answer.finite or answer.unit not in get_registry().units:
        return None
    return answer.value, answer.unit


def log_bin(value: float) -> int:
    """The histogram bin of a positive size: :data:`BIN_WIDTH` decades from :data:`BIN_MIN`, clipped to the ends."""
    if value <= 0:
        return 0
    return min(N_BINS - 1, max(0, int((math.log10(value) - BIN_MIN) / BIN_WIDTH)))


def _near(hist: list[int], b: int) -> float:
    """Bin ``b``'s count with half of each neighbour's: a size a little off a bin edge counts nearly as much."""
    return hist[b] + 0.5 * (hist[b - 1] if b > 0 else 0) + 0.5 * (hist[b + 1] if b + 1 < N_BINS else 0)


def _bin_share(hist: list[int], b: int) -> float:
    """The smoothed share of a histogram's labels around bin ``b`` (:func:`_near`, never 0)."""
    return (_near(hist, b) + 0.1) / (sum(hist) * 2 + 0.1 * N_BINS)


def relation(a: float, b: float) -> str:
    """How size ``a`` compares with ``b`` (both in one unit): an entry of :data:`RELATIONS`."""
    if math.isclose(a, b, rel_tol=SAME_SIZE_TOLERANCE):
        return "eq"
    return "lt" if a < b else "gt"


def _pair_counts(sizes: dict[str, dict[str, float]]) -> dict[str, list[int]]:
    """``"a|b" -> [lt, eq, gt]`` over images labelled with both ``a`` and ``b``, entities of one dimension."""
    registry = get_registry()
    order = {e: i for i, e in enumerate(registry.entities)}
    counts: dict[str, list[int]] = {}
    for by_entity in sizes.values():
        names = sorted(by_entity, key=order.__getitem__)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                if registry.entity(a).dimension != registry.entity(b).dimension:
                    continue
                row = counts.setdefault(f"{a}|{b}", [0] * len(RELATIONS))
                row[RELATIONS.index(relation(by_entity[a], by_entity[b]))] += 1
    return counts


def _add(a: Any, b: Any) -> Any:
    """Two count tables of one shape added: nested dicts key by key, lists of bins element by element."""
    if isinstance(a, dict):
        return {k: _add(a[k], b[k]) if k in a and k in b else (a[k] if k in a else b[k]) for k in {**a, **b}}
    if isinstance(a, list):
        return [x + y for x, y in zip(a, b, strict=True)]
    return a + b


@dataclass
class Priors:
    """Counts derived from training labels; see module docstring."""

    unit_counts: dict[str, dict[str, int]]
    group_unit_counts: dict[str, dict[str, dict[str, int]]]
    value_hist: dict[str, dict[str, list[int]]]
    entity_mode: dict[str, tuple[float, str]]
    group_mode: dict[str, dict[str, tuple[float, str, int]]]
    n_rows: int = 0
    pair_relations: dict[str, list[int]] = field(default_factory=dict)
    size_hist: dict[str, list[int]] = field(default_factory=dict)
    """entity -> counts of log10 bins of the labelled size in the dimension's base unit."""
    group_size_hist: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    """entity -> product group -> the same bins, for groups with :data:`MIN_GROUP_ROWS` labels."""

    @classmethod
    def build(cls, path: str | Path, exclude_links: set[str] | frozenset[str] = frozenset()) -> Priors:
        """Count a training-label CSV; rows whose ``image_link`` is in ``exclude_links`` are skipped.

        Excluding the evaluation images keeps benchmarks honest: the dev rows are
        also in the known training labels.
        """
        registry = get_registry()
        units: dict[str, Counter[str]] = defaultdict(Counter)
        group_units: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
        hist: dict[str, dict[str, list[int]]] = defaultdict(dict)
        answers: dict[str, Counter[tuple[float, str]]] = defaultdict(Counter)
        group_answers: dict[str, dict[str, Counter[tuple[float, str]]]] = defaultdict(lambda: defaultdict(Counter))
        sizes: dict[str, dict[str, float]] = defaultdict(dict)  # image -> entity -> size in base unit
        size_hist: dict[str, list[int]] = {}
        group_size_hist: dict[str, dict[str, list[int]]] = defaultdict(dict)
        n = 0
        for label in iter_labels(path):
            entity = label.entity_name
            parsed = parse_label(label.entity_value)
            if label.image_link in exclude_links or parsed is None or entity not in registry.entities:
                continue
            value, unit = parsed
            if unit not in registry.allowed(entity):
                continue
            n += 1
            group = label.group_id
            units[entity][unit] += 1
            group_units[entity][group][unit] += 1
            hist[entity].setdefault(unit, [0] * N_BINS)[log_bin(value)] += 1
            answers[entity][(value, unit)] += 1
            group_answers[entity][group][(value, unit)] += 1
            base = registry.to_base(value, unit)
            sizes[label.image_link].setdefault(entity, base)
            size_hist.setdefault(entity, [0] * N_BINS)[log_bin(base)] += 1
            group_size_hist[entity].setdefault(group, [0] * N_BINS)[log_bin(base)] += 1
        group_mode: dict[str, dict[str, tuple[float, str, int]]] = {}
        for entity, groups in group_answers.items():
            group_mode[entity] = {}
            for group, counter in groups.items():
                (value, unit), count = counter.most_common(1)[0]
                if sum(counter.values()) >= MIN_GROUP_ROWS:
                    group_mode[entity][group] = (value, unit, count)
        return cls(
            unit_counts={e: dict(c) for e, c in units.items()},
            group_unit_counts={
                e: {g: dict(c) for g, c in gs.items() if sum(c.values()) >= MIN_GROUP_ROWS}
                for e, gs in group_units.items()
            },
            value_hist={e: dict(h) for e, h in hist.items()},
            entity_mode={e: c.most_common(1)[0][0] for e, c in answers.items()},
            group_mode=group_mode,
            n_rows=n,
            pair_relations=_pair_counts({k: v for k, v in sizes.items() if len(v) > 1}),
            size_hist=size_hist,
            group_size_hist={
                e: {g: h for g, h in gs.items() if sum(h) >= MIN_GROUP_ROWS} for e, gs in group_size_hist.items()
            },
        )

    def combined(self, more: Priors) -> Priors:
        """These priors with ``more``'s labels added: what ``specread train`` learns from by default.

        A user's few hundred labels alone are thin priors (a model trained on real-dev with its own
        priors scored 1 point of test-weighted F1 below the packaged one, whose priors came from
        257k labels), so they are added to the broad table rather than replacing it. Counts add;
        a product group's blind guess is the side's with more rows behind it (the user's own groups
        win where they have the rows); an entity's is the broad table's, which no small set
        outweighs, unless it lacks the entity. A group under :data:`MIN_GROUP_ROWS` on both sides
        stays unknown, as the counts kept no trace of it.
        """
        group_mode = {e: dict(gs) for e, gs in self.group_mode.items()}
        for entity, groups in more.group_mode.items():
            mine = group_mode.setdefault(entity, {})
            for group, mode in groups.items():
                if group not in mine or mode[2] > mine[group][2]:
                    mine[group] = mode
        return Priors(
            unit_counts=_add(self.unit_counts, more.unit_counts),
            group_unit_counts=_add(self.group_unit_counts, more.group_unit_counts),
            value_hist=_add(self.value_hist, more.value_hist),
            entity_mode={**more.entity_mode, **self.entity_mode},
            group_mode=group_mode,
            n_rows=self.n_rows + more.n_rows,
            pair_relations=_add(self.pair_relations, more.pair_relations),
            size_hist=_add(self.size_hist, more.size_hist),
            group_size_hist=_add(self.group_size_hist, more.group_size_hist),
        )

    # -- persistence -----------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "n_rows": self.n_rows,
            "unit_counts": self.unit_counts,
            "group_unit_counts": self.group_unit_counts,
            "value_hist": self.value_hist,
            "entity_mode": {e: [v, u] for e, (v, u) in self.entity_mode.items()},
            "group_mode": {e: {g: list(t) for g, t in gs.items()} for e, gs in self.group_mode.items()},
            "pair_relations": self.pair_relations,
            "size_hist": self.size_hist,
            "group_size_hist": self.group_size_hist,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Priors:
        return cls(
            unit_counts=data["unit_counts"],
            group_unit_counts=data["group_unit_counts"],
            value_hist=data["value_hist"],
            entity_mode={e: (float(v), u) for e, (v, u) in data["entity_mode"].items()},
            group_mode={
                e: {g: (float(t[0]), t[1], int(t[2])) for g, t in gs.items()} for e, gs in data["group_mode"].items()
            },
            n_rows=int(data.get("n_rows", 0)),
            pair_relations={k: [int(n) for n in v] for k, v in data.get("pair_relations", {}).items()},
            size_hist={e: [int(n) for n in h] for e, h in data.get("size_hist", {}).items()},
            group_size_hist={
                e: {g: [int(n) for n in h] for g, h in gs.items()} for e, gs in data.get("group_size_hist", {}).items()
            },
        )

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True))

    # -- queries ---------------------------------------------------------------
    def unit_logp(self, entity: str, unit: str, group: str | None = None) -> float:
        """Smoothed log P(unit | entity[, group])."""
        allowed = get_registry().allowed(entity)
        counts = self.unit_counts.get(entity, {})
        if group is not None and group in self.group_unit_counts.get(entity, {}):
            g = self.group_unit_counts[entity][group]
            counts = {u: g.get(u, 0) * 4 + counts.get(u, 0) / max(1, sum(counts.values())) * 10 for u in allowed}
        total = sum(counts.get(u, 0) for u in allowed) + len(allowed)
        return math.log((counts.get(unit, 0) + 1) / total)

    def group_units(self, entity: str, group: str | None) -> dict[str, int]:
        """The training labels' unit counts for ``entity`` in product ``group`` (empty when unknown)."""
        if group is None:
            return {}
        return self.group_unit_counts.get(entity, {}).get(group, {})

    def value_logp(self, entity: str, unit: str, value: float) -> float:
        """Smoothed log P(log10-bin of value | entity, unit)."""
        hist = self.value_hist.get(entity, {}).get(unit)
        if not hist:
            return math.log(1 / N_BINS)
        return math.log(_bin_share(hist, log_bin(value)))

    def size_lift(self, entity: str, group: str | None, base: float) -> float:
        """log P(size bin | entity, group) / P(size bin | entity), sizes in the base unit; 0 for an unknown group.

        Both are smoothed over the neighbouring bins (as :meth:`value_logp`); the group's
        histogram is shrunk toward the entity's with the weight of :data:`SIZE_PRIOR_ROWS` labels,
        so a group of a few labels moves a candidate little.
        """
        hist = self.group_size_hist.get(entity, {}).get(group) if group is not None else None
        overall = self.size_hist.get(entity)
        if not hist or not overall:
            return 0.0
        b = log_bin(base)
        p_all = _bin_share(overall, b)
        p_group = (_near(hist, b) + SIZE_PRIOR_ROWS * 2 * p_all) / (sum(hist) * 2 + SIZE_PRIOR_ROWS * 2)
        return math.log(p_group / p_all)

    def fallback(self, entity: str, group: str | None = None) -> tuple[float, str] | None:
        """Best blind guess for an entity (group mode when the group is known well enough)."""
        if group is not None and group in self.group_mode.get(entity, {}):
            value, unit, _ = self.group_mode[entity][group]
            return value, unit
        return self.entity_mode.get(entity)

    def relation_share(self, a: str, b: str, rel: str) -> float:
        """P(rel | entities a and b labelled on one image): how a's size compares with b's (:data:`RELATIONS`).

        Laplace-smoothed, so a relation the labels never show is unlikely, never impossible; the
        uniform 1/3 for a pair never labelled together.
        """
        i = RELATIONS.index(rel)
        row = self.pair_relations.get(f"{a}|{b}")
        if row is None:
            row = self.pair_relations.get(f"{b}|{a}")
            i = len(RELATIONS) - 1 - i
        if row is None:
            return 1 / len(RELATIONS)
        return (row[i] + 1) / (sum(row) + len(RELATIONS))

    def relation_logodds(self, a: str, b: str, rel: str) -> float:
        """log :meth:`relation_share` against the uniform 1/3 (0 for a pair never labelled together)."""
        return math.log(self.relation_share(a, b, rel) * len(RELATIONS))

    def describe(self, entity: str, group: str | None = None) -> str:
        guess = self.fallback(entity, group)
        return "" if guess is None else Answer(*guess).text


@cache
def load_priors() -> Priors:
    """The packaged model's priors (``specread/data/model/priors.json``, from the known training labels).

    A reader takes its priors from its model folder (:func:`specread.rank.model.load_model`);
    this is that folder's file for code that needs the packaged priors alone.
    """
    return Priors.from_dict(json.loads((PACKAGED_MODEL / "priors.json").read_text(encoding="utf-8")))


def build_priors_file(
    train_csv: str | Path, output: str | Path, exclude: tuple[str | Path, ...] | list[str | Path] = ()
) -> tuple[Priors, int]:
    """Count ``train_csv`` into priors, leaving out the images of the ``exclude`` CSVs, and save them to ``output``.

    What ``specread priors`` runs, and how the packaged model's ``priors.json`` is made. The dev and
    test rows are also in the known training labels: leaving their ``image_link`` out keeps a
    benchmark on them honest.

    Returns:
        The priors, and how many distinct image links were left out.

    Raises:
        InputFormatError: a CSV that is missing, lacks its columns or is not a UTF-8 CSV
            (nothing is written then).
    """
    links = image_links(exclude)
    priors = Priors.build(train_csv, links)
    priors.save(output)
    return priors, len(links)


def image_links(paths: Iterable[str | Path]) -> frozenset[str]:
    """Every ``image_link`` of the CSVs at ``paths`` (the images an evaluation set holds).

    Raises:
        InputFormatError: a CSV that is missing, has no ``image_link`` column or is not a UTF-8 CSV.
    """
    from specread.io.dataset import CsvTable

    links: set[str] = set()
    for path in paths:
        with CsvTable(path, ("image_link",)) as table:
            links.update(record["image_link"].strip() for _, record in table)
    return frozenset(links)
