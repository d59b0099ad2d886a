"""Ranking: choose one candidate per entity.

``select`` (the stage every reader shares: candidates -> one prediction, and the
fallback when nothing is read), ``rules`` (the hand-weighted baseline),
``ranker`` (LightGBM boosted from the rules) and ``train`` (data, grouped
cross-validation, fitting). The label priors they use live one stage down, in
:mod:`specread.extract.priors`, because the features need them too.
"""

__all__: list[str] = []
