"""specread's data files: ``settings.toml`` and the packaged model folder ``model/``."""

from importlib.resources import files

__all__ = ["PACKAGED_MODEL"]

PACKAGED_MODEL = files(__name__) / "model"
"""The model folder shipped in the package (ranker, priors, ``model.json``); see :mod:`specread.rank.model`."""
