"""The learned candidate ranker: LightGBM boosted from the rule score.

Built like a scikit-learn estimator: ``__init__`` only stores
hyperparameters, ``fit(X, y, groups)`` returns ``self``, learned state ends in
``_`` (``booster_``), and ``predict_proba`` raises :class:`NotFittedError`
before fit. Arrays in, arrays out. It also implements the pipeline's
``Scorer`` protocol, so a fitted ranker drops into :class:`SpecReader`.

Why boost from the rules: the labelled set is ~1k images and only ~110 of
them are dimension drawings, too few for trees to rediscover layout from
scratch. Boosting starts from the hand-written rule score (its margin to the
best candidate of the same image and entity, as LightGBM's ``init_score``)
and the trees learn corrections where the data supports them.

The output is the probability that a candidate is the labelled answer
(binary objective); the winner's margin over the next different answer
(:func:`specread.rank.select.answer_margin`) is the confidence users can
threshold to route rows to a person or a VLM.

The estimator holds arrays only: at the full train set's scale (millions of
candidate rows) :func:`specread.rank.stream.fit_shards` fits it from features
streamed to disk (:mod:`specread.rank.shards`), and what a fit scores on held-out
rows is :func:`specread.rank.train.evaluate`'s. ``base=``
continues a fitted ranker (fine-tuning on a user's own labels): the new trees
start from the rule margin plus the base's trees, and the adapted booster holds
both, so it predicts like any other.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from specread.errors import NotFittedError
from specread.extract.features import CATEGORICAL_FEATURES, FEATURE_NAMES, to_matrix
from specread.rank.rules import RuleScorer
from specread.types import Candidate

if TYPE_CHECKING:
    import lightgbm as lgb

__all__ = ["DESIGN_NAMES", "CandidateRanker"]

DESIGN_NAMES: tuple[str, ...] = (*FEATURE_NAMES, "rule_score", "rule_margin")


def _stacked(base: lgb.Booster, new: lgb.Booster) -> lgb.Booster:
    """One booster holding the base model's trees, then the new ones (LightGBM's own ``init_model`` merge).

    ``lgb.train(init_model=...)`` would start from the base trees' output alone and
    drop the rule margin; the new trees were fitted from margin + base output, so
    the two are merged afterwards with the same C call ``lgb.train`` uses.
    """
    import lightgbm as lgb
    from lightgbm.basic import _LIB, _safe_call

    merged = lgb.Booster(model_str=new.model_to_string(num_iteration=-1))
    _safe_call(_LIB.LGBM_BoosterMerge(merged._handle, base._handle))
    return lgb.Booster(model_str=merged.model_to_string(num_iteration=-1))


def _group_max(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    order = np.argsort(groups, kind="stable")
    g = groups[order]
    starts = np.r_[0, np.flatnonzero(g[1:] != g[:-1]) + 1]
    maxima = np.maximum.reduceat(values[order], starts)
    out = np.empty_like(values)
    out[order] = np.repeat(maxima, np.diff(np.r_[starts, len(g)]))
    return out


class CandidateRanker:
    """Gradient-boosted scorer of candidates, starting from the rule score.

    Args:
        n_estimators: boosting rounds.
        learning_rate: shrinkage per round.
        num_leaves: leaves per tree (small: the training set is ~1k images).
        min_child_samples: minimum rows per leaf (regularises rare layouts).
        feature_fraction: share of features sampled per tree.
        rule_weight: scale of the rule margin used as the starting score (0 = plain GBM).
        ignore_features: feature names the model must not see (zeroed for the
            rules and the trees alike); used to measure what a feature group adds.
        seed: fixes every source of randomness (deterministic training).
    """

    name = "ranker"

    def __init__(
        self,
        n_estimators: int = 600,
        learning_rate: float = 0.02,
        num_leaves: int = 7,
        min_child_samples: int = 20,
        feature_fraction: float = 0.8,
        rule_weight: float = 2.0,
        ignore_features: tuple[str, ...] | list[str] = (),
        seed: int = 0,
    ) -> None:
        unknown = set(ignore_features) - set(FEATURE_NAMES)
        if unknown:
            raise ValueError(f"unknown feature(s) to ignore: {sorted(unknown)}")
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.feature_fraction = feature_fraction
        self.rule_weight = rule_weight
        self.ignore_features = tuple(ignore_features)
        self.seed = seed

    def get_params(self) -> dict[str, object]:
        return {
            "n_estimators": self.n_estimators,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_child_samples": self.min_child_samples,
            "feature_fraction": self.feature_fraction,
            "rule_weight": self.rule_weight,
            "ignore_features": list(self.ignore_features),
            "seed": self.seed,
        }

    def _design(self, X: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.ignore_features:
            X = X.copy()
            X[:, [FEATURE_NAMES.index(f) for f in self.ignore_features]] = 0.0
        rules = RuleScorer().score_matrix(X)
        margin = rules - _group_max(rules, groups)
        design = np.column_stack([X, rules, margin]).astype(np.float32)
        return design, self.rule_weight * margin

    @staticmethod
    def _check(X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != len(FEATURE_NAMES):
            raise ValueError(f"X must have shape (n, {len(FEATURE_NAMES)}); got {X.shape}")
        return X

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        groups: np.ndarray,
        base: CandidateRanker | None = None,
        sample_weight: np.ndarray | None = None,
    ) -> CandidateRanker:
        """Fit on candidate rows.

        Args:
            X: features, shape (n, len(FEATURE_NAMES)).
            y: 1 where the candidate equals the label, else 0.
            groups: query id per row (one per image and entity): the rule
                margin is taken within each group.
            base: a fitted ranker to continue from (fine-tuning): its trees stay,
                and ``n_estimators`` new ones correct them on this data.
            sample_weight: each row's weight in the loss (1 by default); a row of weight 0
                still counts in its group's rule margin.

        Raises:
            ValueError: shapes disagree, there is no positive row, or ``base`` was
                fitted with another ``rule_weight`` or ``ignore_features``.
        """
        X = self._check(X)
        y = np.asarray(y, dtype=np.float32)
        groups = np.asarray(groups)
        if len(y) != len(X) or len(groups) != len(X):
            raise ValueError("X, y and groups must have the same length")
        if not y.any():
            raise ValueError("training data has no positive candidate")
        base_booster = self._base_booster(base)
        design, init = self._design(X, groups)
        data = self._dataset(design, y, self._start(design, init, base_booster), weight=sample_weight)
        self.booster_ = self._boost(data, base_booster=base_booster)
        return self

    # -- training helpers (shared with specread.rank.stream) -------------------------
    def _base_booster(self, base: CandidateRanker | None) -> lgb.Booster | None:
        """The booster of the model to continue from, checked against this one."""
        if base is None:
            return None
        booster = getattr(base, "booster_", None)
        if booster is None:
            raise NotFittedError()
        if (base.rule_weight, tuple(base.ignore_features)) != (self.rule_weight, self.ignore_features):
            raise ValueError(
                "a base model is continued with its own rule_weight and ignore_features: "
                f"it has {base.rule_weight} and {list(base.ignore_features)}"
            )
        if booster.num_feature() != len(DESIGN_NAMES):
            raise ValueError("the base model was trained on other features; it cannot be continued")
        return booster

    @staticmethod
    def _start(design: np.ndarray, init: np.ndarray, base_booster: lgb.Booster | None) -> np.ndarray:
        """The starting score of each row: the rule margin, plus the base model's trees when continuing."""
        if base_booster is None:
            return init
        return init + np.asarray(base_booster.predict(design, raw_score=True, num_threads=1), dtype=np.float64)

    @staticmethod
    def _dataset(
        data: np.ndarray | list,
        y: np.ndarray,
        init: np.ndarray,
        reference: lgb.Dataset | None = None,
        weight: np.ndarray | None = None,
    ) -> lgb.Dataset:
        import lightgbm as lgb

        return lgb.Dataset(
            data,
            label=y,
            weight=weight,
            init_score=init,
            feature_name=list(DESIGN_NAMES),
            categorical_feature=list(CATEGORICAL_FEATURES),
            reference=reference,
        )

    def _params(self, num_threads: int = 1) -> dict[str, object]:
        return {
            "objective": "binary",
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_child_samples": self.min_child_samples,
            "feature_fraction": self.feature_fraction,
            "lambda_l2": 1.0,
            "seed": self.seed,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": num_threads,
            "verbose": -1,
        }

    def _boost(
        self,
        train: lgb.Dataset,
        valid: lgb.Dataset | None = None,
        early_stopping_rounds: int | None = None,
        base_booster: lgb.Booster | None = None,
        num_threads: int = 1,
        evals: dict | None = None,
    ) -> lgb.Booster:
        """Boost ``n_estimators`` rounds on a Dataset; with a base, stack the new trees on the base's."""
        import lightgbm as lgb

        if base_booster is not None and self.n_estimators == 0:
            return lgb.Booster(model_str=base_booster.model_to_string(num_iteration=-1))
        params = self._params(num_threads)
        if valid is None:
            booster = lgb.train(params, train, num_boost_round=self.n_estimators)
        else:
            callbacks = [lgb.record_evaluation({} if evals is None else evals)]
            if early_stopping_rounds:
                callbacks.append(lgb.early_stopping(early_stopping_rounds, first_metric_only=True, verbose=False))
            params["metric"] = "binary_logloss"
            booster = lgb.train(
                params,
                train,
                num_boost_round=self.n_estimators,
                valid_sets=[valid],
                valid_names=["valid"],
                callbacks=callbacks,
            )
            booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration or -1))
        if base_booster is None:
            return booster
        return _stacked(base_booster, booster)

    def predict_proba(self, X: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
        """Probability that each candidate row is the answer, shape (n,).

        ``groups`` says which rows compete with each other (one image and
        entity); without it all rows are taken as one group.
        """
        booster = getattr(self, "booster_", None)
        if booster is None:
            raise NotFittedError()
        X = self._check(X)
        if len(X) == 0:
            return np.zeros(0, dtype=np.float64)
        groups = np.zeros(len(X), dtype=np.int64) if groups is None else np.asarray(groups)
        design, init = self._design(X, groups)
        raw = np.asarray(booster.predict(design, raw_score=True, num_threads=1), dtype=np.float64) + init
        return 1.0 / (1.0 + np.exp(-raw))

    # -- Scorer protocol -------------------------------------------------------
    def score(self, entity: str, cands: Sequence[Candidate]) -> list[float]:
        return self.predict_proba(to_matrix(cands)).tolist()

    def confidence(self, scores: Sequence[float], best: int) -> float:
        return float(scores[best]) if scores else 0.0

    def shares(self, scores: Sequence[float]) -> list[float]:
        """The probabilities normalised within the entity (each candidate's share of it)."""
        total = float(sum(scores))
        if not scores:
            return []
        if total <= 0:
            return [1.0 / len(scores)] * len(scores)
        return [float(s) / total for s in scores]

    # -- persistence -------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write the model as one JSON header line (params, features) plus LightGBM's text model."""
        booster = getattr(self, "booster_", None)
        if booster is None:
            raise NotFittedError()
        header = {"params": self.get_params(), "features": list(DESIGN_NAMES)}
        Path(path).write_text(json.dumps(header) + "\n" + booster.model_to_string())

    @classmethod
    def load(cls, path: str | Path) -> CandidateRanker:
        return cls.from_string(Path(path).read_text())

    @classmethod
    def from_string(cls, text: str) -> CandidateRanker:
        import lightgbm as lgb

        head, _, body = text.partition("\n")
        header = json.loads(head)
        if header["features"] != list(DESIGN_NAMES):
            raise ValueError("model was trained on other features; retrain it with `specread train`")
        model = cls(**header["params"])
        model.booster_ = lgb.Booster(model_str=body)
        return model

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        if "booster_" in state:
            state["booster_"] = state["booster_"].model_to_string()
        return state

    def __setstate__(self, state: dict) -> None:
        import lightgbm as lgb

        if isinstance(state.get("booster_"), str):
            state["booster_"] = lgb.Booster(model_str=state["booster_"])
        self.__dict__.update(state)
