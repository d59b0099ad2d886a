"""Ranking: choose one candidate per entity (rules or a learned ranker), with priors for blind guesses."""

from specread.rank.priors import Priors, load_priors
from specread.rank.rules import RuleScorer

__all__ = ["Priors", "RuleScorer", "load_priors"]
