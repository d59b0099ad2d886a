"""Ranking: choose one candidate per entity.

``priors`` (training-label statistics and blind guesses), ``rules`` (the
hand-weighted baseline), ``ranker`` (LightGBM boosted from the rules) and
``train`` (data, grouped cross-validation, fitting). Submodules are imported
directly, keeping ``extract`` -> ``rank.priors`` free of import cycles.
"""

__all__: list[str] = []
