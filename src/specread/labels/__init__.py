"""Training labels: cleaning rules (:mod:`specread.labels.clean`) and the EDA report (:mod:`specread.labels.eda`)."""

__all__: list[str] = []
