"""Selection: an OCR page's candidates -> one :class:`Prediction` per asked entity.

The stage every reader and the cross-validation share: find the mentions on the
page, build each entity's candidates with their features, let the scorer pick
one, and answer the priors' guess (or nothing) when the page has no candidate.
A second, finer page of the same image may be given; it is read only when some
entity found nothing, and answers only those entities.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from specread.extract.candidates import find_mentions
from specread.extract.features import page_candidates
from specread.extract.priors import Priors
from specread.types import Candidate, OcrPage, Prediction, ReadResult
from specread.units.registry import get_registry

__all__ = ["BLIND_CONFIDENCE", "Scorer", "Selector"]

BLIND_CONFIDENCE = 0.05
"""Confidence of a prior's guess: nothing on the image supports it, so it is the first to review."""


class Scorer(Protocol):
    """Scores the candidates of one entity; the highest score wins."""

    name: str

    def score(self, entity: str, cands: Sequence[Candidate]) -> list[float]: ...

    def confidence(self, scores: Sequence[float], best: int) -> float: ...


class Selector:
    """Picks one answer per entity from a page.

    Args:
        scorer: candidate scorer (rules or the learned ranker).
        priors: training-label priors (features and blind guesses).
        use_priors_fallback: when no candidate exists, answer the prior's guess.
    """

    def __init__(self, scorer: Scorer, priors: Priors, use_priors_fallback: bool = True) -> None:
        self.scorer = scorer
        self.priors = priors
        self.use_priors_fallback = use_priors_fallback

    def select(
        self,
        page: OcrPage,
        entities: Sequence[str],
        group_id: str | None = None,
        retry: Callable[[], OcrPage | None] | None = None,
    ) -> ReadResult:
        """One prediction per entity, and every entity's candidates, as a :class:`ReadResult` of ``page``.

        ``retry`` returns a second, finer page of the same image; it is called only when
        some entity has no candidate on ``page``, and answers only those entities.

        Raises:
            UnknownEntityError: an entity outside the registry's.
        """
        registry = get_registry()
        for e in entities:
            registry.entity(e)  # raises UnknownEntityError early
        mentions = find_mentions(page)
        preds: dict[str, Prediction] = {}
        all_cands: dict[str, list[Candidate]] = {}
        for entity in entities:
            cands = page_candidates(page, mentions, entity, self.priors, group_id)
            all_cands[entity] = cands
            if cands:
                scores = self.scorer.score(entity, cands)
                best = max(range(len(cands)), key=scores.__getitem__)
                win = cands[best]
                preds[entity] = Prediction(
                    entity,
                    win.quantity.value,
                    win.quantity.unit,
                    confidence=self.scorer.confidence(scores, best),
                    source=self.scorer.name,
                    evidence=win,
                )
            else:
                preds[entity] = self.blind_guess(entity, group_id)
        missing = [e for e in entities if not all_cands[e]]
        if missing and retry is not None:
            finer = retry()
            if finer is not None:
                more = self.select(finer, missing, group_id)
                for e in missing:
                    if more.candidates[e]:
                        preds[e], all_cands[e] = more.predictions[e], more.candidates[e]
        return ReadResult(page, preds, all_cands)

    def blind_guess(self, entity: str, group_id: str | None = None) -> Prediction:
        """The prior's answer when the image gives none (or an empty prediction if disabled)."""
        guess = self.priors.fallback(entity, group_id) if self.use_priors_fallback else None
        if guess is None:
            return Prediction(entity)
        return Prediction(entity, guess[0], guess[1], confidence=BLIND_CONFIDENCE, source="prior")
