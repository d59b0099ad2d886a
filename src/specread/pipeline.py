"""The OCR reader: image -> OCR page (cached) -> candidates -> one prediction per entity.

:class:`SpecReader` receives ready stages (its pages, its selector, a second pass);
:func:`build_pages` and :func:`build_selector` make them, and :func:`build_ocr_reader`
puts them together, from a plain
:class:`~specread.settings.ReaderConfig`, which is picklable so worker
processes and Ray actors can build identical readers. Readers of every kind
(this one, and the VLM ones the ``vlm`` extra registers) are built by name
through :func:`specread.readers.build_reader`.

Example:
    >>> from specread.pipeline import build_ocr_reader
    >>> from specread.settings import ReaderConfig
    >>> reader = build_ocr_reader(ReaderConfig(cache_dir=None))   # doctest: +SKIP
    >>> reader.read("label.png", ["item_weight"]).predictions["item_weight"].text   # doctest: +SKIP
    '500.0 gram'
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from specread.errors import ModelMismatchError
from specread.io.images import decode_image, image_digest, read_image_bytes
from specread.ocr.cache import OcrCache, default_cache_dir
from specread.ocr.engine import OcrEngine, build_engine
from specread.rank.model import Model, check_model, load_model
from specread.rank.select import Scorer, Selector
from specread.settings import ReaderConfig
from specread.types import ImageInput, OcrPage, Prediction, ReadResult
from specread.units.registry import get_registry

__all__ = [
    "SCORERS",
    "PageSource",
    "SpecReader",
    "answer_thresholds",
    "build_ocr_reader",
    "build_pages",
    "build_selector",
    "reader_model",
]


class PageSource:
    """OCR of an image path, bytes or RGB array, through a content-keyed cache.

    Args:
        engine: OCR engine, called once per unique image content.
        cache: page cache keyed by content digest (for this engine's fingerprint).
    """

    def __init__(self, engine: OcrEngine | None, cache: OcrCache | None = None) -> None:
        self.engine = engine
        self.cache = cache

    def __call__(self, image: ImageInput) -> OcrPage:
        return self.many([image])[0]

    def many(self, images: Sequence[ImageInput]) -> list[OcrPage]:
        """One page per image, in order: cached pages as they are, the others read in one engine call.

        An engine with ``read_many`` (RapidOCR's lines pooled across pictures) reads the misses
        together, decoding each as it takes it, so one decoded picture is held at a time; any
        other engine reads them one by one. An image that cannot be read raises, as
        :meth:`__call__` does (the batch runner then reads the batch one image at a time).
        """
        pages: list[OcrPage | None] = [None] * len(images)
        misses: list[tuple[int, np.ndarray | bytes, str | None, str]] = []  # (position, array or bytes, digest, name)
        for i, image in enumerate(images):
            if isinstance(image, np.ndarray):
                misses.append((i, image, None, "<array>"))
                continue
            # Key the cache on the raw bytes and decode only on a miss: cached re-runs skip decoding.
            data = bytes(image) if isinstance(image, bytes | bytearray) else read_image_bytes(image)
            digest = image_digest(data)
            pages[i] = self.cache.get(digest) if self.cache is not None else None
            if pages[i] is None:
                misses.append((i, data, digest, "<bytes>" if isinstance(image, bytes | bytearray) else str(image)))
        if misses and self.engine is None:
            raise RuntimeError("this reader has no OCR engine; give OCR pages to its selector (selector.select)")
        # Decode no more pixels than the engine will look at (bounded memory on huge pictures).
        max_side = None if self.engine is None else self.engine.max_side
        arrays = (
            item if isinstance(item, np.ndarray) else decode_image(item, name, max_side=max_side)
            for _, item, _, name in misses
        )
        read_many = getattr(self.engine, "read_many", None)
        fresh = read_many(arrays) if read_many is not None else [self.engine(array) for array in arrays]  # type: ignore[misc]
        for (i, _, digest, _), page in zip(misses, fresh, strict=True):
            pages[i] = page
            if digest and self.cache is not None:
                self.cache.put(digest, page)
        return pages  # type: ignore[return-value]


class SpecReader:
    """Reads entity values off product images with OCR (implements :class:`specread.readers.Reader`).

    Built from ready stages, as docTR's ``OCRPredictor(det_predictor, reco_predictor)`` is:
    :func:`build_ocr_reader` makes them from a :class:`~specread.settings.ReaderConfig`, and a
    test or a benchmark may hand in its own.

    Args:
        pages: the OCR stage: image -> page, through its cache.
        selector: the selection stage: page -> one prediction per entity (the scorer, priors,
            calibration and answer thresholds are its own; read them there).
        retry: a finer OCR pass, used only for entities the first page gives no
            candidate (see :attr:`ReaderConfig.retry_side`).
    """

    def __init__(self, pages: PageSource, selector: Selector, retry: PageSource | None = None) -> None:
        self.pages = pages
        self.selector = selector
        self.retry = retry

    @property
    def batch_images(self) -> int:
        """Images per :meth:`read_many` call in the batch runner: the engine's ``batch_images`` if it reads many."""
        engine = self.pages.engine
        settings = getattr(engine, "settings", None)
        return int(getattr(settings, "batch_images", 1)) if hasattr(engine, "read_many") else 1

    def read(self, image: ImageInput, entities: Sequence[str], group_id: str | None = None) -> ReadResult:
        """OCR one image and predict every requested entity (names are checked before any OCR)."""
        retry = self.retry
        return self.selector.select(
            lambda: self.pages(image), entities, group_id, (lambda: retry(image)) if retry else None
        )

    def read_many(self, items: Sequence[tuple[ImageInput, Sequence[str], str | None]]) -> list[ReadResult]:
        """:meth:`read` for each ``(image, entities, group_id)``, in order, the images' OCR in one call.

        Pages are the same as :meth:`read` gives (see :meth:`PageSource.many`); an image named
        by several items is read once. The second pass reads the images that need it (an asked
        entity with no candidate on the first page) in one call too, and each item is then
        answered as :meth:`read` answers it.
        """
        for _, entities, _ in items:  # names are checked before any OCR, as read() does
            self.selector.check(entities)
        pages = self._pages_of([image for image, _, _ in items], self.pages)
        results = [self.selector.select(pages[_identity(image)], entities, group) for image, entities, group in items]
        if self.retry is None:
            return results
        missing = self.selector.missing
        finer = self._pages_of(
            [image for (image, _, _), result in zip(items, results, strict=True) if missing(result)], self.retry
        )
        return [
            self.selector.second_pass(result, finer[_identity(image)], group) if missing(result) else result
            for (image, _, group), result in zip(items, results, strict=True)
        ]

    @staticmethod
    def _pages_of(images: Sequence[ImageInput], source: PageSource) -> dict[object, OcrPage]:
        """The page of each distinct image (by :func:`_identity`), read in one call of ``source``."""
        unique = list({_identity(image): image for image in images}.values())
        return dict(zip((_identity(image) for image in unique), source.many(unique), strict=True))

    def blind_guess(self, entity: str, group_id: str | None = None) -> Prediction:
        """The fallback answer when the image gives none: the prior's guess, or empty if disabled."""
        return self.selector.blind_guess(entity, group_id)


def _identity(image: ImageInput) -> object:
    """What makes two items the same image: a path's text, else the object itself."""
    return str(image) if isinstance(image, str | Path) else id(image)


def _rules_scorer(model: Model) -> Scorer:
    from specread.rank.rules import RuleScorer

    return RuleScorer()


def _ranker_scorer(model: Model) -> Scorer:
    return model.ranker


SCORERS: dict[str, Callable[[Model], Scorer]] = {"rules": _rules_scorer, "ranker": _ranker_scorer}
"""Scorer name -> the scorer a model folder gives."""


def reader_model(config: ReaderConfig) -> Model:
    """The model folder a reader built from ``config`` uses, checked against its OCR settings.

    ``config.model``, else ``$SPECREAD_MODEL``, else the packaged model. With the ranker, a model
    trained on pages read otherwise (another detector side...), on other features or another
    entity order is refused; with the rules only its priors are used, so only its files are checked.

    Raises:
        ModelMismatchError: a missing, garbled or mismatched model folder.
    """
    model = load_model(config.model or None)
    if config.scorer == "ranker":
        check_model(model, config.ocr)
    return model


def answer_thresholds(config: ReaderConfig, model: Model) -> dict[str, float] | float:
    """The confidence each entity's answer needs under ``config``'s precision target (0: none).

    ``min_confidence`` is one threshold for every entity; ``min_precision`` reads each entity's
    off the model folder's calibration (``inf`` for an entity that never reached the target on
    held-out answers: it is withheld, never answered under the target).

    Raises:
        ModelMismatchError: ``min_precision`` with a model folder that has no calibration.
    """
    if config.min_confidence:
        return config.min_confidence
    if not config.min_precision:
        return 0.0
    if model.calibration is None:
        raise ModelMismatchError(
            model.path,
            "has no calibration.json, so no precision target can be met: retrain it with `specread train` "
            "(--holdout 2 or more), or give --min-confidence",
        )
    return model.calibration.thresholds(config.min_precision, get_registry().entities)


def build_selector(config: ReaderConfig, model: Model) -> Selector:
    """The selection stage ``config`` describes, from a loaded model folder (:func:`reader_model`).

    Raises:
        ValueError: an unknown scorer name (the message lists valid ones).
        ModelMismatchError: ``min_precision`` with a model folder that has no calibration.
    """
    if config.scorer not in SCORERS:
        raise ValueError(f"unknown scorer {config.scorer!r}; choose one of: {', '.join(sorted(SCORERS))}")
    return Selector(
        SCORERS[config.scorer](model),
        model.priors,
        use_priors_fallback=config.use_priors_fallback,
        joint=config.joint,
        calibration=model.calibration if config.scorer == "ranker" else None,
        min_confidence=answer_thresholds(config, model),
    )


def build_ocr_reader(
    config: ReaderConfig | None = None, engine: OcrEngine | None = None, model: Model | None = None
) -> SpecReader:
    """Build a :class:`SpecReader` from plain config: its pages (:func:`build_pages`) and its selector.

    Args:
        config: the reader's settings (defaults: the OCR reader with the ranker).
        engine: an OCR engine to use instead of the configured one (tests).
        model: the model folder, when the caller has loaded it already (:func:`reader_model`,
            which is called otherwise); it is checked before any OCR model is loaded.

    Raises:
        ValueError: unknown scorer or engine name (the message lists valid ones).
        ModelMismatchError: a model folder this reader cannot use.
    """
    config = config or ReaderConfig()
    selector = build_selector(config, model or reader_model(config))
    pages, retry = build_pages(config, engine)
    return SpecReader(pages, selector, retry=retry)


def build_pages(config: ReaderConfig, engine: OcrEngine | None = None) -> tuple[PageSource, PageSource | None]:
    """The OCR side of a reader alone: its pages, and its second pass at ``config.retry_side`` (else None).

    A pass that only reads pages into the cache (the training OCR pass, a benchmark's warm-up)
    uses this, so it needs no model folder: training must run while the model it replaces was
    built for other features.

    Raises:
        ValueError: unknown engine name, or a setting (the second pass's side too) the engine refuses.
    """
    if engine is None:
        engine = build_engine(config.ocr)
    root = None
    if config.cache_dir is not None:
        root = default_cache_dir() if config.cache_dir == "default" else Path(config.cache_dir)
    retry = None
    if config.retry_side:
        finer = engine.at_det_side(config.retry_side)
        retry = PageSource(finer, OcrCache(root, finer.fingerprint()) if root else None)
    return PageSource(engine, OcrCache(root, engine.fingerprint()) if root else None), retry
