"""What each setting affects: tagged once on its field, read by every key that must change with it.

Three keys decide whether earlier work still holds when a setting changes: the OCR cache key
(:func:`specread.ocr.cache.page_key`: are these stored pages the ones a fresh read gives?), the
model check (:func:`specread.rank.model.check_model`: were its pages read the way this run reads?)
and the resume key (:func:`specread.batch.local.job_record`: did this output come from this job?).
Each used to list its own fields, and the lists disagreed (the resume key counted OCR threads).
Now every field of the settings tree carries one :class:`Affects` tag in its ``dataclasses.field``
metadata (:func:`setting`; a field holding a sub-tree carries :data:`SUBTREE`), and the keys select
fields by tag (:func:`fields_affecting`, :func:`settings_affecting`): a new field joins the right
keys by being tagged, and a field with no tag fails the tests (``tests/test_affects.py``).

Example:
    >>> from specread.affects import Affects, fields_affecting
    >>> from specread.settings import OcrSettings
    >>> fields_affecting(OcrSettings, Affects.PAGE)
    ('engine', 'det_side', 'max_side', 'use_cls', 'min_score')
"""

from __future__ import annotations

import dataclasses
from enum import StrEnum
from typing import Any

__all__ = [
    "AFFECTS",
    "ANSWER",
    "KERNELS",
    "PAGE",
    "SPEED",
    "SUBTREE",
    "Affects",
    "fields_affecting",
    "setting",
    "settings_affecting",
]

AFFECTS = "affects"
"""The metadata key of a field's :class:`Affects` tag."""

SUBTREE: dict[str, Any] = {"subtree": True}
"""The metadata of a field holding settings of its own (tagged field by field): ``field(..., metadata=SUBTREE)``."""


class Affects(StrEnum):
    """What changing one setting changes, from most to least.

    ``PAGE`` and ``KERNELS`` both change pages, so both key the OCR cache; only ``PAGE`` keys the
    model check, because a ranker learns from what a page says, and kernels, precision or batching
    do not change that (``settings.toml`` measures ``fast`` against ``accurate``).
    """

    PAGE = "page"
    """What the OCR reads (text, boxes, lines): the cache, the model check and the resume key."""
    KERNELS = "kernels"
    """How the same models compute (backend, precision, batching): the same text is meant, but
    the page's numbers may differ slightly. The cache and the resume key, not the model check."""
    ANSWER = "answer"
    """What is answered from the same pages (scorer, second pass, thresholds, model): the resume key."""
    SPEED = "speed"
    """Only how a run goes (threads, device, parallelism, limits, where the cache lives): no key."""


PAGE, KERNELS, ANSWER, SPEED = Affects.PAGE, Affects.KERNELS, Affects.ANSWER, Affects.SPEED


def setting(affects: Affects, default: Any) -> Any:
    """A dataclass field with ``default``, tagged with what it affects."""
    return dataclasses.field(default=default, metadata={AFFECTS: Affects(affects)})


def fields_affecting(settings: Any, *kinds: Affects) -> tuple[str, ...]:
    """Names of the fields of a settings class (or object) tagged with one of ``kinds``, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(settings) if f.metadata.get(AFFECTS) in kinds)


def settings_affecting(settings: Any, *kinds: Affects) -> dict[str, Any]:
    """The values of a settings object's fields tagged with one of ``kinds``, sub-trees as nested dicts.

    A sub-tree with no such field, or none at all (``None``), is left out.

    Raises:
        TypeError: a field that is neither tagged nor a sub-tree (every field says what it affects).
    """
    out: dict[str, Any] = {}
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if f.metadata.get("subtree"):
            inner = {} if value is None else settings_affecting(value, *kinds)
            if inner:
                out[f.name] = inner
        elif AFFECTS not in f.metadata:
            raise TypeError(f"{type(settings).__name__}.{f.name} does not say what it affects (specread.affects)")
        elif f.metadata[AFFECTS] in kinds:
            out[f.name] = value
    return out
