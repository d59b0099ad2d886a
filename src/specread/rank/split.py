"""The one grouped splitter: training, cross-validation, the streaming hold-out and the benchmarks use it.

Labelled rows of one image, or of one product ``group_id``, are near copies of each other: a
fold that holds one of them on each side measures memory, not reading. :class:`GroupedKFold`
follows scikit-learn's ``GroupKFold`` (``split(X, y, groups)`` yields train and test
positions), with two differences that the data needs: a row has two keys (its image and its
product group, either may link it to others) rather than one group label, and the order of
equally large components is seeded, so repeated CV draws other folds.

Components are linked through shared keys (union-find), assigned biggest first, each to the
fold that holds the fewest rows so far: folds come out near equal in size.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

import numpy as np

__all__ = ["GroupedKFold", "linked_components", "row_groups"]


def linked_components(keys: Sequence[tuple[str, str]]) -> list[list[int]]:
    """Positions linked through a shared first or second key (empty keys link nothing).

    Components come in order of their first position, each listing its positions in order:
    rows sharing an image or a product group end up in one component (union-find).
    """
    parent = list(range(len(keys)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[tuple[int, str], int] = {}
    for i, pair in enumerate(keys):
        for side, key in enumerate(pair):
            if key == "":
                continue
            j = first.setdefault((side, key), i)
            parent[find(i)] = find(j)
    comps: dict[int, list[int]] = {}
    for i in range(len(keys)):
        comps.setdefault(find(i), []).append(i)
    return list(comps.values())


def row_groups(rows: Sequence[object]) -> list[tuple[str, str]]:
    """The ``groups`` of labelled rows for :meth:`GroupedKFold.split`: each row's ``(key, group_id)``."""
    return [(r.key, r.group_id) for r in rows]  # type: ignore[attr-defined]


class GroupedKFold:
    """K folds in which no image key and no product group is on two sides.

    Args:
        n_splits: number of folds (at least 2).
        seed: orders components of equal size (deterministic for a seed).
    """

    def __init__(self, n_splits: int = 5, seed: int = 0) -> None:
        if n_splits < 2:
            raise ValueError(f"n_splits must be at least 2; got {n_splits}")
        self.n_splits = n_splits
        self.seed = seed

    def get_n_splits(self, X: object = None, y: object = None, groups: object = None) -> int:
        return self.n_splits

    def folds(self, groups: Sequence[tuple[str, str]]) -> list[int]:
        """The fold of each row; ``groups`` holds a ``(image key, group_id)`` pair per row."""
        comps = linked_components(groups)
        order = sorted(comps, key=len, reverse=True)
        random.Random(self.seed).shuffle(order)
        order.sort(key=len, reverse=True)  # stable: big components first, ties in seeded order
        sizes = [0] * self.n_splits
        fold = [0] * len(groups)
        for members in order:
            f = min(range(self.n_splits), key=lambda j: (sizes[j], j))
            sizes[f] += len(members)
            for i in members:
                fold[i] = f
        return fold

    def split(
        self, X: object = None, y: object = None, groups: Sequence[tuple[str, str]] = ()
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Train and test positions of each fold in turn (``X`` and ``y`` are not read, as in scikit-learn)."""
        fold = np.asarray(self.folds(groups), dtype=np.int64)
        for f in range(self.n_splits):
            yield np.flatnonzero(fold != f), np.flatnonzero(fold == f)

    def holdout(self, groups: Sequence[tuple[str, str]]) -> tuple[np.ndarray, np.ndarray]:
        """The first fold's train and test positions: the hold-out ``specread train`` measures a model on."""
        return next(self.split(groups=groups))
