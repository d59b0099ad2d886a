"""The reader: image -> OCR page (cached) -> candidates -> one prediction per entity.

:class:`SpecReader` receives ready stage objects (engine, cache, scorer,
priors); :func:`build_reader` is the one factory that makes them from a plain
:class:`ReaderConfig`, which is picklable so worker processes and Ray actors
can build identical readers.

Example:
    >>> from specread.pipeline import build_reader, ReaderConfig
    >>> reader = build_reader(ReaderConfig(cache_dir=None))   # doctest: +SKIP
    >>> reader.read("label.png", ["item_weight"])["item_weight"].text   # doctest: +SKIP
    '500.0 gram'
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from specread.extract.candidates import find_mentions
from specread.extract.features import page_candidates
from specread.io.images import decode_image, image_digest, read_image_bytes
from specread.ocr.cache import OcrCache, default_cache_dir
from specread.ocr.engine import OcrEngine, build_engine
from specread.rank.priors import Priors, load_priors
from specread.types import Candidate, OcrPage, Prediction
from specread.units.registry import get_registry

__all__ = ["READERS", "SCORERS", "PageSource", "ReadResult", "ReaderConfig", "Scorer", "SpecReader", "build_reader"]


class Scorer(Protocol):
    """Scores the candidates of one entity; the highest score wins."""

    name: str

    def score(self, entity: str, cands: Sequence[Candidate]) -> list[float]: ...

    def confidence(self, scores: Sequence[float], best: int) -> float: ...


@dataclass(frozen=True)
class ReaderConfig:
    """Everything needed to build a reader, as plain data.

    Attributes:
        scorer: ``"ranker"`` (learned, default when its model ships) or ``"rules"``.
        engine: OCR engine name (see :data:`specread.ocr.engine.ENGINES`).
        engine_options: keyword options for the engine (``det_side``, ``max_side``...).
        cache_dir: OCR cache folder; ``None`` disables the cache; ``"default"`` uses
            ``$SPECREAD_CACHE`` or the user cache folder.
        use_priors_fallback: answer from training-label priors when nothing is read.
        reader: ``"ocr"`` (this module), ``"vlm"`` or ``"hybrid"`` (see :mod:`specread.vlm`).
        vlm_options: options for the VLM reader (``model``, ``threshold``, ``batch_size``...).
        retry_side: when an asked entity gets no candidate from the page, OCR the image
            again with the text detector at this side (small print that the first pass
            missed) and answer that entity from the second page; 0 never does.
    """

    scorer: str = "ranker"
    engine: str = "rapidocr"
    engine_options: dict = field(default_factory=dict)
    cache_dir: str | None = "default"
    use_priors_fallback: bool = True
    reader: str = "ocr"
    vlm_options: dict = field(default_factory=dict)
    retry_side: int = 0

    def __post_init__(self) -> None:
        if not self.retry_side:
            return
        first = int(self.engine_options.get("det_side", 0))
        largest = int(self.engine_options.get("max_side", self.retry_side))
        if not first < self.retry_side <= largest:
            raise ValueError(
                f"retry_side must be 0 (off) or a detector side above the first pass's ({first or 'default'}) "
                f"and at most max_side ({largest}); got {self.retry_side}"
            )


READERS = ("ocr", "vlm", "hybrid")


@dataclass(frozen=True)
class ReadResult:
    """Predictions for one image plus the OCR page they came from."""

    page: OcrPage
    predictions: dict[str, Prediction]
    candidates: dict[str, list[Candidate]]

    def to_dict(self) -> dict:
        return {
            "width": self.page.width,
            "height": self.page.height,
            "tokens": [t.to_dict() | {"box": list(t.box)} for t in self.page.tokens],
            "predictions": {e: p.to_dict() for e, p in self.predictions.items()},
        }


class PageSource:
    """OCR of an image path, bytes or RGB array, through a content-keyed cache.

    Args:
        engine: OCR engine, called once per unique image content.
        cache: page cache keyed by content digest (for this engine's fingerprint).
    """

    def __init__(self, engine: OcrEngine | None, cache: OcrCache | None = None) -> None:
        self.engine = engine
        self.cache = cache

    def __call__(self, image: str | Path | bytes | np.ndarray) -> OcrPage:
        if isinstance(image, np.ndarray):
            arr, digest = image, None
        else:
            # Key the cache on the raw bytes and decode only on a miss: cached re-runs skip decoding.
            data = bytes(image) if isinstance(image, bytes | bytearray) else read_image_bytes(image)
            digest = image_digest(data)
            if self.cache is not None:
                page = self.cache.get(digest)
                if page is not None:
                    return page
            name = "<bytes>" if isinstance(image, bytes | bytearray) else str(image)
            # Decode no more pixels than the engine will look at (bounded memory on huge pictures).
            arr = decode_image(data, name, max_side=getattr(self.engine, "max_side", None))
        if self.engine is None:
            raise RuntimeError("this reader has no OCR engine; pass OCR pages to read_page() instead")
        page = self.engine(arr)
        if digest and self.cache is not None:
            self.cache.put(digest, page)
        return page


class SpecReader:
    """Reads entity values off product images.

    Args:
        engine: OCR engine (called once per unique image content).
        scorer: candidate scorer.
        priors: training-label priors (features and blind guesses).
        cache: OCR page cache.
        use_priors_fallback: when no candidate exists, answer the prior's guess.
        retry: a finer OCR pass, used only for entities the first page gives no
            candidate (see :attr:`ReaderConfig.retry_side`).
    """

    def __init__(
        self,
        engine: OcrEngine | None,
        scorer: Scorer,
        priors: Priors,
        cache: OcrCache | None = None,
        use_priors_fallback: bool = True,
        retry: PageSource | None = None,
    ) -> None:
        self.engine = engine
        self.scorer = scorer
        self.priors = priors
        self.cache = cache
        self.use_priors_fallback = use_priors_fallback
        self.retry = retry

    # -- OCR -------------------------------------------------------------------
    def ocr(self, image: str | Path | bytes | np.ndarray) -> OcrPage:
        """OCR an image path, bytes or RGB array, through the cache when the content is known."""
        return PageSource(self.engine, self.cache)(image)

    # -- selection -------------------------------------------------------------
    def read_page(
        self,
        page: OcrPage,
        entities: Sequence[str],
        group_id: str | None = None,
        retry: Callable[[], OcrPage | None] | None = None,
    ) -> tuple[dict[str, Prediction], dict[str, list[Candidate]]]:
        """Choose one prediction per entity from an OCR page.

        ``retry`` returns a second, finer page of the same image; it is called only when
        some entity has no candidate on ``page``, and answers only those entities.
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
                more, more_cands = self.read_page(finer, missing, group_id)
                for e in missing:
                    if more_cands[e]:
                        preds[e], all_cands[e] = more[e], more_cands[e]
        return preds, all_cands

    def blind_guess(self, entity: str, group_id: str | None = None) -> Prediction:
        """The prior's answer when the image gives none (or an empty prediction if disabled)."""
        guess = self.priors.fallback(entity, group_id) if self.use_priors_fallback else None
        if guess is None:
            return Prediction(entity)
        return Prediction(entity, guess[0], guess[1], confidence=0.05, source="prior")

    def read(
        self, image: str | Path | bytes | np.ndarray, entities: Sequence[str], group_id: str | None = None
    ) -> ReadResult:
        """OCR one image and predict every requested entity (entity names are checked first)."""
        registry = get_registry()
        for e in entities:
            registry.entity(e)  # an unknown entity fails before any OCR is spent
        page = self.ocr(image)
        retry = self.retry
        preds, cands = self.read_page(page, entities, group_id, (lambda: retry(image)) if retry else None)
        return ReadResult(page, preds, cands)


def _rules_scorer() -> Scorer:
    from specread.rank.rules import RuleScorer

    return RuleScorer()


def _ranker_scorer() -> Scorer:
    from specread.rank.ranker import load_default_ranker

    return load_default_ranker()


SCORERS = {"rules": _rules_scorer, "ranker": _ranker_scorer}


def build_reader(config: ReaderConfig | None = None, engine: OcrEngine | None = None) -> SpecReader:
    """Build a :class:`SpecReader` from plain config.

    Raises:
        ValueError: unknown scorer or engine name (the message lists valid ones).
    """
    config = config or ReaderConfig()
    if config.reader not in READERS:
        raise ValueError(f"unknown reader {config.reader!r}; choose one of: {', '.join(READERS)}")
    if config.reader != "ocr":
        from specread.vlm.reader import build_vlm_reader

        return build_vlm_reader(config)  # type: ignore[return-value]
    if config.scorer not in SCORERS:
        raise ValueError(f"unknown scorer {config.scorer!r}; choose one of: {', '.join(sorted(SCORERS))}")
    if engine is None:
        engine = build_engine(config.engine, **config.engine_options)
    root = None
    if config.cache_dir is not None:
        root = default_cache_dir() if config.cache_dir == "default" else Path(config.cache_dir)
    retry = None
    if config.retry_side:
        at_side = getattr(engine, "at_det_side", None)
        if at_side is None:
            raise ValueError(f"OCR engine {config.engine!r} cannot run a second pass at another detector side")
        finer = at_side(config.retry_side)
        retry = PageSource(finer, OcrCache(root, finer.fingerprint()) if root else None)
    return SpecReader(
        engine=engine,
        scorer=SCORERS[config.scorer](),
        priors=load_priors(),
        cache=OcrCache(root, engine.fingerprint()) if root else None,
        use_priors_fallback=config.use_priors_fallback,
        retry=retry,
    )
