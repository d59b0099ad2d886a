"""Selection: an OCR page's candidates -> one :class:`Prediction` per asked entity.

The stage every reader and the cross-validation share: find the mentions on the
page, build each entity's candidates with their features, let the scorer pick
one, and answer the priors' guess (or nothing) when the page has no candidate.
A second, finer page of the same image may be given; it is read only when some
entity found nothing, and answers only those entities.

Entities that share a unit dimension are read as one family (:mod:`specread.rank.joint`):
width, height and depth get their roles jointly, asked or not, so one printed size does not
answer all three, and item weight is weighed against the maximum weight recommendation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from specread.extract.candidates import find_mentions
from specread.extract.features import page_candidates
from specread.extract.priors import Priors
from specread.rank.calibrate import Calibration
from specread.rank.joint import assign, families
from specread.settings import JointSettings
from specread.types import Candidate, OcrPage, Prediction, ReadResult
from specread.units.registry import get_registry

__all__ = ["BLIND_CONFIDENCE", "DEFAULT_JOINT", "WITHHELD", "Scorer", "Selector", "answer_margin"]

WITHHELD = "withheld"
"""The source of a prediction left blank because its confidence was under the precision target."""

DEFAULT_JOINT = JointSettings()
"""The whole-image assignment's costs a selector uses unless told otherwise."""

BLIND_CONFIDENCE = 0.05
"""Confidence of a prior's guess: nothing on the image supports it, so it is the first to review."""


class Scorer(Protocol):
    """Scores the candidates of one entity; the highest score wins."""

    name: str

    def score(self, entity: str, cands: Sequence[Candidate]) -> list[float]: ...

    def confidence(self, scores: Sequence[float], best: int) -> float: ...

    def shares(self, scores: Sequence[float]) -> list[float]:
        """Each candidate's share of the entity (non-negative, summing to 1): the joint reader's input."""
        ...


def answer_margin(scorer: Scorer, scores: Sequence[float], cands: Sequence[Candidate], best: int) -> float:
    """The raw confidence of ``cands[best]``'s answer: the scorer's belief in it less its belief in the strongest
    candidate that gives a *different* answer (0 at least).

    Why not the winner's belief alone: a label printed with its equivalent (``100 g (3.52 oz)``) gives
    two candidates the ranker both believes, and which one a catalogue labels is a convention the
    page does not settle; the winner's probability alone promised such answers as much as a weight
    printed once. The same size printed twice is one answer, not a rival. On real-dev (grouped CV,
    5 folds x 8 splits) it ranks right answers above wrong ones better for six of the eight entities
    (item weight AUROC 0.853 -> 0.861) and ``--min-precision 0.95`` answers 40.2% of rows instead
    of 38.8%; the answers chosen are the same.
    """
    mine = cands[best].answer.text
    rival = max((scorer.confidence(scores, i) for i, c in enumerate(cands) if c.answer.text != mine), default=0.0)
    return max(0.0, scorer.confidence(scores, best) - rival)


class Selector:
    """Picks one answer per entity from a page.

    Args:
        scorer: candidate scorer (rules or the learned ranker).
        priors: training-label priors (features and blind guesses).
        use_priors_fallback: when no candidate exists, answer the prior's guess.
        joint: the whole-image assignment's settings; None (or ``enabled`` false) reads each entity on its own.
        calibration: raw confidence -> held-out accuracy per entity (the model folder's); without
            it a prediction carries the raw confidence.
        min_confidence: the confidence an answer needs, per entity or one for all (``inf``
            withholds an entity); an answer under it is withheld: an empty prediction with
            source ``"withheld"`` that keeps its confidence and evidence, for review.
    """

    def __init__(
        self,
        scorer: Scorer,
        priors: Priors,
        use_priors_fallback: bool = True,
        joint: JointSettings | None = DEFAULT_JOINT,
        calibration: Calibration | None = None,
        min_confidence: Mapping[str, float] | float = 0.0,
    ) -> None:
        self.scorer = scorer
        self.priors = priors
        self.use_priors_fallback = use_priors_fallback
        self.joint = joint if joint is not None and joint.enabled else None
        self.calibration = calibration
        self.min_confidence = min_confidence

    def needs(self, entity: str) -> float:
        """The confidence an answer for ``entity`` needs (0: every answer is given)."""
        if isinstance(self.min_confidence, Mapping):
            return self.min_confidence.get(entity, 0.0)
        return self.min_confidence

    def gate(self, pred: Prediction) -> Prediction:
        """``pred``, or the withheld (empty) prediction when its confidence is under :meth:`needs`."""
        if pred.value is None or pred.confidence >= self.needs(pred.entity):
            return pred
        return Prediction(pred.entity, confidence=pred.confidence, source=WITHHELD, evidence=pred.evidence)

    def select(
        self,
        page: OcrPage | Callable[[], OcrPage],
        entities: Sequence[str],
        group_id: str | None = None,
        retry: Callable[[], OcrPage | None] | None = None,
    ) -> ReadResult:
        """One prediction per entity, and every entity's candidates, as a :class:`ReadResult` of ``page``.

        ``page`` may be a function that reads it: it is called only once the entity names
        are checked (:meth:`check`), so a typo costs no OCR. ``retry``
        returns a second, finer page of the same image; it is called only when some entity
        has no candidate on ``page``, and answers only those entities.

        Raises:
            UnknownEntityError: an entity outside the registry's.
        """
        self.check(entities)
        result = self._select(page() if callable(page) else page, entities, group_id)
        if retry is not None and self.missing(result):
            finer = retry()
            if finer is not None:
                result = self.second_pass(result, finer, group_id)
        return result

    @staticmethod
    def check(entities: Sequence[str]) -> None:
        """Refuse an entity name outside the registry's, before any OCR.

        Raises:
            UnknownEntityError: the first unknown name.
        """
        registry = get_registry()
        for e in entities:
            registry.entity(e)

    @staticmethod
    def missing(result: ReadResult) -> list[str]:
        """The entities of ``result`` with no candidate on its page: what a second, finer page answers."""
        return [e for e, cands in result.candidates.items() if not cands]

    def second_pass(self, result: ReadResult, finer: OcrPage, group_id: str | None = None) -> ReadResult:
        """``result`` with each of its :meth:`missing` entities answered from ``finer`` where ``finer`` has candidates.

        Only those entities are read off the finer page; the others keep their first answers.
        """
        missing = self.missing(result)
        more = self._select(finer, missing, group_id)
        preds, cands = dict(result.predictions), dict(result.candidates)
        for e in missing:
            if more.candidates[e]:
                preds[e], cands[e] = more.predictions[e], more.candidates[e]
        return ReadResult(result.page, preds, cands)

    def _select(self, page: OcrPage, entities: Sequence[str], group_id: str | None) -> ReadResult:
        """The first-page answer of entity names already checked."""
        mentions = find_mentions(page)
        preds: dict[str, Prediction] = {}
        all_cands: dict[str, list[Candidate]] = {}
        for family in families(entities) if self.joint else [(e,) for e in entities]:
            roles = family if len(family) > 1 else tuple(e for e in family if e in entities)
            cands = {r: page_candidates(page, mentions, r, self.priors, group_id) for r in roles}
            for entity, pred in self._choose(cands, entities, group_id).items():
                preds[entity], all_cands[entity] = pred, cands[entity]
        return ReadResult(page, {e: preds[e] for e in entities}, {e: all_cands[e] for e in entities})

    def _choose(
        self, cands: dict[str, list[Candidate]], asked: Sequence[str], group_id: str | None
    ) -> dict[str, Prediction]:
        """The predictions of the asked roles among ``cands`` (one family's roles, or one entity)."""
        scores = {r: self.scorer.score(r, c) if c else [] for r, c in cands.items()}
        if len(cands) == 1 or self.joint is None:
            picks = {r: (max(range(len(s)), key=s.__getitem__), 1.0) for r, s in scores.items() if s}
        else:
            shares = {r: self.scorer.shares(s) for r, s in scores.items()}
            chosen = assign(cands, shares, asked, self.priors, self.joint)
            picks = {r: (ch.index, ch.confidence) for r, ch in chosen.items() if ch.index is not None}
        out: dict[str, Prediction] = {}
        for r in cands:
            if r not in asked:
                continue
            if r not in picks:
                out[r] = self.blind_guess(r, group_id)
                continue
            best, mass = picks[r]
            win = cands[r][best]
            # The scorer's margin for this answer, times the share of the image's assignments
            # that give the role this answer (1 when read alone): on real-dev the mass ranks
            # dimensions a little better (benchmarks/whole_image.py, top-quintile accuracy) and
            # leaves a single printed weight (mass 1) as it was.
            raw = answer_margin(self.scorer, scores[r], cands[r], best) * mass
            out[r] = self.gate(
                Prediction(
                    r,
                    win.quantity.value,
                    win.quantity.unit,
                    confidence=raw if self.calibration is None else self.calibration(r, raw),
                    source=self.scorer.name,
                    evidence=win,
                )
            )
        return out

    def blind_guess(self, entity: str, group_id: str | None = None) -> Prediction:
        """The prior's answer when the image gives none (or an empty prediction if disabled)."""
        guess = self.priors.fallback(entity, group_id) if self.use_priors_fallback else None
        if guess is None:
            return Prediction(entity)
        return self.gate(Prediction(entity, guess[0], guess[1], confidence=BLIND_CONFIDENCE, source="prior"))
