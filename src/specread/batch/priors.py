"""The priors a model is trained with: the one rule of ``specread train``'s two fits.

By default a user's labels are added to the broad priors (the packaged model's, counted from
257k labels, or a ``--base`` model's): tried as a new user would, a model trained on real-dev with
the labels' own priors alone scored 1 point of test-weighted F1 below the packaged model on the
same held-out images (0.774 against 0.784). ``--priors none`` keeps the labels alone, and
``--priors FILE`` takes a table or labels CSV as it is. Measured on held-out images, the labels are
counted without them, on the in-memory and the streaming path alike.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from specread.data import PACKAGED_MODEL
from specread.extract.priors import Priors, image_links, load_priors
from specread.io.dataset import read_labels
from specread.rank.model import Model, file_sha256

__all__ = ["PRIORS_NONE", "TrainingPriors", "load_training_priors", "training_priors"]

PRIORS_NONE = "none"
"""``specread train --priors none``: the labels' own counts alone, not added to the broad priors."""


def load_training_priors(path: str | Path, exclude_links: frozenset[str] = frozenset()) -> tuple[Priors, dict]:
    """Priors from a ``priors.json`` (``specread priors``, a model folder's) or counted from a labels CSV.

    Returns:
        The priors, and what they were built from (the manifest's ``priors_from``).

    Raises:
        InputFormatError: a CSV that is not a labels CSV.
        ValueError: a JSON file that is not a priors table.
    """
    source = Path(path)
    if source.suffix.lower() == ".json":
        try:
            priors = Priors.from_dict(json.loads(source.read_text(encoding="utf-8")))
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ValueError(f"{source}: not a priors table written by `specread priors` ({exc})") from None
        return priors, {"file": source.name, "sha256": file_sha256(source), "rows": priors.n_rows}
    priors = Priors.build(source, exclude_links)
    record = {"labels": source.name, "sha256": file_sha256(source), "rows": priors.n_rows}
    return priors, record | ({"excluded_image_links": len(exclude_links)} if exclude_links else {})


@dataclass(frozen=True)
class TrainingPriors:
    """The one priors rule of both fits: what a model is fitted and measured with.

    ``given`` (``--priors FILE``) serves as it is. Otherwise the labels are counted and added to
    ``broad`` (the packaged priors, or a ``--base`` model's; None with ``--priors none``: the
    labels alone). Measured on held-out images, the labels are counted without those images, so
    the hold-out figures see no count of the rows they score.
    """

    labels_csv: Path
    links: dict[str, frozenset[str]]  # image key -> its image links (the labels' own rows)
    given: tuple[Priors, dict] | None = None
    broad: tuple[Priors, dict] | None = None

    def for_holdout(self, held: set[str]) -> Priors:
        """The priors a model measured on the images ``held`` (image keys) is fitted and read with."""
        if self.given:
            return self.given[0]
        return self._count(frozenset(link for key in held for link in self.links.get(key, ())))[0]

    def full(self) -> tuple[Priors, dict]:
        """The saved model's priors, and what they were built from (the manifest's ``priors_from``)."""
        return self.given or self._count(frozenset())

    def describe(self) -> str:
        """How the hold-out figures' priors were made (the manifest's ``metrics.priors``)."""
        if self.given:
            return "as given (--priors)"
        if self.broad is None:
            return "counted from the labels, without the held-out images"
        return f"{self.broad[1]['model']} priors plus the labels' own counts, without the held-out images"

    def _count(self, exclude: frozenset[str]) -> tuple[Priors, dict]:
        table, record = load_training_priors(self.labels_csv, exclude)
        if self.broad is None:
            return table, record
        return self.broad[0].combined(table), {**record, "added_to": self.broad[1]}


def training_priors(
    labels_csv: str | Path, priors: str | Path | None, priors_exclude: Sequence[str | Path], base: Model | None
) -> TrainingPriors:
    """The :class:`TrainingPriors` of ``specread train``'s options (files checked before any OCR).

    ``priors`` None: the labels added to the base model's priors, or to the packaged ones;
    :data:`PRIORS_NONE`: the labels alone; a path: that table or labels CSV as it is.
    """
    links: dict[str, set[str]] = {}
    for label in read_labels(labels_csv):
        links.setdefault(label.image, set()).add(label.image_link)
    frozen = {key: frozenset(v) for key, v in links.items()}
    if priors is not None and str(priors) != PRIORS_NONE:
        return TrainingPriors(Path(labels_csv), frozen, given=load_training_priors(priors, image_links(priors_exclude)))
    broad = None
    if priors is None and base is not None:
        broad = (base.priors, {"model": str(base.path), "rows": base.priors.n_rows})
    elif priors is None:
        packaged = PACKAGED_MODEL / "priors.json"
        broad = (load_priors(), {"model": "packaged", "sha256": file_sha256(packaged), "rows": load_priors().n_rows})
    return TrainingPriors(Path(labels_csv), frozen, broad=broad)
