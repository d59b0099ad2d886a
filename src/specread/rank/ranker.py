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
(binary objective), so the winner's probability is a usable confidence that
users can threshold to route rows to a person or a VLM.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np

from specread.errors import NotFittedError
from specread.extract.features import FEATURE_NAMES, to_matrix
from specread.rank.rules import RuleScorer
from specread.types import Candidate

__all__ = ["DESIGN_NAMES", "CandidateRanker", "load_default_ranker"]

DESIGN_NAMES: tuple[str, ...] = (*FEATURE_NAMES, "rule_score", "rule_margin")


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

    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray) -> CandidateRanker:
        """Fit on candidate rows.

        Args:
            X: features, shape (n, len(FEATURE_NAMES)).
            y: 1 where the candidate equals the label, else 0.
            groups: query id per row (one per image and entity): the rule
                margin is taken within each group.

        Raises:
            ValueError: shapes disagree or there is no positive row.
        """
        import lightgbm as lgb

        X = self._check(X)
        y = np.asarray(y, dtype=np.float32)
        groups = np.asarray(groups)
        if len(y) != len(X) or len(groups) != len(X):
            raise ValueError("X, y and groups must have the same length")
        if not y.any():
            raise ValueError("training data has no positive candidate")
        design, init = self._design(X, groups)
        params = {
            "objective": "binary",
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_child_samples": self.min_child_samples,
            "feature_fraction": self.feature_fraction,
            "lambda_l2": 1.0,
            "seed": self.seed,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": 1,
            "verbose": -1,
        }
        data = lgb.Dataset(
            design, label=y, init_score=init, feature_name=list(DESIGN_NAMES), categorical_feature=["entity_id"]
        )
        self.booster_ = lgb.train(params, data, num_boost_round=self.n_estimators)
        return self

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


@cache
def load_default_ranker() -> CandidateRanker:
    """The ranker shipped in the package (trained by ``specread train``)."""
    text = resources.files("specread.data").joinpath("ranker.txt").read_text(encoding="utf-8")
    return CandidateRanker.from_string(text)
