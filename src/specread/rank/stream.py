"""Fitting a :class:`~specread.rank.ranker.CandidateRanker` from feature shards, never holding them in memory.

The estimator itself knows arrays only (``fit``, ``predict_proba``, ``save``, ``load``); reading
shards is this module's job, as writing them is :mod:`specread.rank.shards`'. LightGBM builds its
(binned) Dataset shard by shard; the design columns (rule score, rule margin, starting score) are
computed per shard, which is exact because a labelled row never straddles two shards. Without a
validation part the booster equals :meth:`CandidateRanker.fit` on the same rows.

What a fit scores on held-out rows is :func:`specread.rank.train.evaluate`'s: a reader's answers,
not this module's business.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from specread.rank.ranker import CandidateRanker
from specread.rank.shards import Shard, ShardSet
from specread.rank.split import GroupedKFold

if TYPE_CHECKING:
    import lightgbm as lgb

__all__ = ["ShardSplit", "fit_shards"]


@dataclass(frozen=True, eq=False)
class ShardSplit:
    """Which labelled rows (``row_id``) are held out for validation."""

    valid_rows: np.ndarray
    n_splits: int
    seed: int

    @classmethod
    def holdout(cls, shards: ShardSet, n_splits: int = 5, seed: int = 0) -> ShardSplit:
        """The first fold of :class:`~specread.rank.split.GroupedKFold` over the shards' rows.

        The rows :meth:`GroupedKFold.holdout` holds out of the same labelled rows in memory
        (:func:`specread.batch.train.holdout_metrics`): the streaming and the in-memory fits are
        measured on one hold-out.
        """
        ids: list[np.ndarray] = []
        pairs: list[tuple[str, str]] = []
        for shard in shards.rows():
            ids.append(shard.row_id)
            pairs.extend(zip(shard.row_key.tolist(), shard.row_group_id.tolist(), strict=True))
        all_ids = np.concatenate(ids) if ids else np.zeros(0, np.int64)
        _, test = GroupedKFold(n_splits, seed).holdout(pairs)
        return cls(np.sort(all_ids[test]), n_splits, seed)

    def is_valid(self, ids: np.ndarray) -> np.ndarray:
        """Boolean mask: which of ``ids`` (row ids, or ``groups`` of candidate rows) are validation rows."""
        return np.isin(ids, self.valid_rows)

    def is_train(self, ids: np.ndarray) -> np.ndarray:
        return ~self.is_valid(ids)


def fit_shards(
    ranker: CandidateRanker,
    shards: ShardSet,
    valid: ShardSplit | None = None,
    early_stopping_rounds: int | None = None,
    base: CandidateRanker | None = None,
    num_threads: int = 1,
) -> tuple[CandidateRanker, dict[str, Any]]:
    """Fit ``ranker`` on the candidate rows of ``shards`` (the training side of ``valid`` when given).

    Args:
        ranker: the unfitted estimator whose hyperparameters are used; it is fitted in place.
        shards: written by :func:`specread.rank.shards.write_shards`.
        valid: rows held out of the fit (:meth:`ShardSplit.holdout`); their log-loss is recorded
            every round.
        early_stopping_rounds: stop when the validation log-loss has not improved for this many
            rounds, and keep the best round (needs ``valid``).
        base: a fitted ranker to continue from, as in :meth:`CandidateRanker.fit`.
        num_threads: LightGBM threads (results are deterministic for a given count).

    Returns:
        The fitted ranker, and the fit's log: ``train_candidates``, ``trees`` (``base_trees``),
        and with ``valid`` ``rounds``, ``best_round`` and ``valid_logloss``.

    Raises:
        ValueError: no positive candidate in the training part, early stopping without a
            validation part, or a ``base`` that does not fit (see :meth:`CandidateRanker.fit`).
    """
    if early_stopping_rounds and (valid is None or not len(valid.valid_rows)):
        raise ValueError("early stopping needs a validation part (valid=)")
    base_booster = ranker._base_booster(base)
    train_part = None if valid is None else (lambda s: valid.is_train(s.groups))
    y, init = _shard_targets(ranker, shards, train_part, base_booster)
    if not y.any():
        raise ValueError("training data has no positive candidate")

    def design(X: np.ndarray, groups: np.ndarray) -> np.ndarray:
        return ranker._design(X, groups)[0]

    train = ranker._dataset(shards.sequences(design, train_part), y, init)
    valid_set = None
    if valid is not None and len(valid.valid_rows):
        valid_part = lambda s: valid.is_valid(s.groups)  # noqa: E731
        vy, vinit = _shard_targets(ranker, shards, valid_part, base_booster)
        if len(vy):
            valid_set = ranker._dataset(shards.sequences(design, valid_part), vy, vinit, train)
    evals: dict = {}
    booster = ranker._boost(train, valid_set, early_stopping_rounds, base_booster, num_threads, evals)
    log: dict[str, Any] = {"train_candidates": len(y), "trees": booster.num_trees()}
    if base_booster is not None:
        log["base_trees"] = base_booster.num_trees()
    losses = evals.get("valid", {}).get("binary_logloss", [])
    if losses:
        best = int(np.argmin(losses)) if early_stopping_rounds else len(losses) - 1
        log |= {"rounds": len(losses), "best_round": best + 1, "valid_logloss": round(losses[best], 5)}
    ranker.booster_ = booster
    return ranker, log


def _shard_targets(
    ranker: CandidateRanker,
    shards: ShardSet,
    part: Callable[[Shard], np.ndarray] | None,
    base_booster: lgb.Booster | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Labels and starting scores of the selected rows of every shard (computed shard by shard)."""
    ys: list[np.ndarray] = []
    inits: list[np.ndarray] = []
    for shard in shards:
        keep = slice(None) if part is None else part(shard)
        design, init = ranker._design(shard.X[keep], shard.groups[keep])
        ys.append(shard.y[keep].astype(np.float32))
        inits.append(ranker._start(design, init, base_booster))
    if not ys:
        return np.zeros(0, np.float32), np.zeros(0, np.float64)
    return np.concatenate(ys), np.concatenate(inits)
