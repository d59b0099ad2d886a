"""A reviewer's answers: a typed value checked against the entity's units, and the candidates to pick from.

Typed text goes through specread's own parsers, never a copied unit list: first
:class:`specread.answer.Answer` (``12.5 centimetre``, the challenge's form), then, for what a
person types quicker (``12.5cm``, ``12,5 cm``, ``1/2 in``), :func:`specread.parse.quantities.parse_quantities`,
which knows every spelling in ``units.toml``. Either way the unit must be one the entity allows
(after its coercions, e.g. item_volume ``ounce`` -> ``fluid ounce``), as ``specread check`` demands.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from specread.answer import Answer
from specread.errors import ReviewValueError, UnknownUnitError
from specread.parse.quantities import parse_quantities
from specread.rank.select import Scorer
from specread.types import Box, Candidate
from specread.units.registry import get_registry

__all__ = ["Choice", "check_typed", "choices"]

_STARTS_WITH_NUMBER = re.compile(r"[-+]?(\d|[.,]\d)")


def _allowed_unit(text: str, entity: str, unit: str) -> str:
    """The entity's unit for a parsed canonical ``unit``, or a :class:`ReviewValueError` that lists the allowed ones."""
    registry = get_registry()
    found = registry.for_entity(entity, unit)
    if found is None:
        allowed = ", ".join(registry.allowed(entity))
        raise ReviewValueError(text, entity, f"{unit} is not a unit of {entity}; use one of: {allowed}")
    return found


def check_typed(entity: str, text: str) -> Answer:
    """The answer a reviewer typed for ``entity``, in the challenge's form (``Answer.text``).

    Raises:
        UnknownEntityError: ``entity`` is not one of the eight.
        ReviewValueError: empty, not starting with a number, no unit or an unknown one, more than
            one value, a value that is not above zero, or a unit ``entity`` does not allow.
    """
    registry = get_registry()
    allowed = ", ".join(registry.allowed(entity))
    text = " ".join(text.split())
    if not text:
        raise ReviewValueError(text, entity, f"type a number and a unit ({allowed})")
    if not _STARTS_WITH_NUMBER.match(text):
        raise ReviewValueError(text, entity, "not a number: start with the value, e.g. 12.5 cm")
    answer = Answer.try_parse(text)
    if answer is not None and answer.finite:
        try:
            unit = registry.lookup(answer.unit).name
        except UnknownUnitError:
            answer = None
        else:
            answer = Answer(answer.value, _allowed_unit(text, entity, unit))
    if answer is None:
        found = parse_quantities(text)
        whole = [q for q in found if q.start == 0 and q.end == len(text) and not q.is_range]
        if len(found) > 1:
            raise ReviewValueError(text, entity, "one value only")
        if not whole:
            bare = re.fullmatch(r"[-+]?[\d.,]+", text)
            reason = f"add a unit ({allowed})" if bare else f"not a value with a known unit ({allowed})"
            raise ReviewValueError(text, entity, reason)
        answer = Answer(whole[0].value, _allowed_unit(text, entity, whole[0].unit))
    if not (math.isfinite(answer.value) and answer.value > 0):
        raise ReviewValueError(text, entity, "the value must be a number above zero")
    return answer


@dataclass(frozen=True, slots=True)
class Choice:
    """One distinct answer among a row's candidates, with the best confidence any of its mentions got.

    ``n`` is its number on the page (key 1-9), from the most to the least confident.
    """

    n: int
    answer: str
    value: float
    unit: str
    confidence: float
    text: str
    box: Box

    def to_dict(self) -> dict:
        return {
            "n": self.n,
            "answer": self.answer,
            "value": self.value,
            "unit": self.unit,
            "confidence": round(self.confidence, 4),
            "text": self.text,
            "box": list(self.box),
        }


def choices(entity: str, candidates: Sequence[Candidate], scorer: Scorer) -> list[Choice]:
    """The distinct answers among ``candidates`` (one entity's), most confident first.

    The confidence of each is the scorer's belief in it (for the ranker, the probability
    that it is the label), so a reviewer sees how close the runner-up came; the row's own
    confidence is the winner's margin over the runner-up (:func:`specread.rank.select.answer_margin`).
    """
    if not candidates:
        return []
    scores = scorer.score(entity, candidates)
    best: dict[str, tuple[float, Candidate]] = {}
    for i, cand in enumerate(candidates):
        text = cand.answer.text
        confidence = scorer.confidence(scores, i)
        if text not in best or confidence > best[text][0]:
            best[text] = (confidence, cand)
    ranked = sorted(best.items(), key=lambda item: -item[1][0])
    return [
        Choice(n, text, c.quantity.value, c.quantity.unit, confidence, c.text, c.box)
        for n, (text, (confidence, c)) in enumerate(ranked, start=1)
    ]
