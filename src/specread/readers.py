"""Readers by name: the :class:`Reader` protocol every reader implements, and the one factory.

specread's own OCR reader is ``"ocr"``. Other readers plug in through the
``specread.readers`` entry-point group (the ``vlm`` extra registers ``"vlm"``
and ``"hybrid"`` in ``pyproject.toml``), so this module never imports them and
they import it freely: dependencies point one way. A third-party package can
register its own reader the same way.

Example:
    >>> from specread.readers import available_readers, build_reader
    >>> from specread.settings import ReaderConfig
    >>> sorted(available_readers())
    ['hybrid', 'ocr', 'vlm']
    >>> reader = build_reader(ReaderConfig(cache_dir=None))   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from typing import Protocol, runtime_checkable

from specread.ocr.engine import OcrEngine
from specread.pipeline import build_ocr_reader
from specread.rank.model import Model
from specread.settings import ReaderConfig
from specread.types import ImageInput, Prediction, ReadResult

__all__ = ["ENTRY_POINT_GROUP", "Reader", "ReaderFactory", "available_readers", "build_reader"]

ENTRY_POINT_GROUP = "specread.readers"


@runtime_checkable
class Reader(Protocol):
    """Reads entity values off product images; what the runners, the service and the CLI use."""

    batch_images: int
    """Images the batch runner hands to one :meth:`read_many` call (1: no gain from batching)."""

    def read(self, image: ImageInput, entities: Sequence[str], group_id: str | None = None) -> ReadResult:
        """One prediction per entity of one image."""
        ...

    def read_many(self, items: Sequence[tuple[ImageInput, Sequence[str], str | None]]) -> list[ReadResult]:
        """:meth:`read` for several ``(image, entities, group_id)`` at once, in order."""
        ...

    def blind_guess(self, entity: str, group_id: str | None = None) -> Prediction:
        """The fallback answer for an entity when the image gives none (or cannot be read)."""
        ...


ReaderFactory = Callable[[ReaderConfig], Reader]


def available_readers() -> dict[str, Callable[[], ReaderFactory]]:
    """Reader name -> a loader of its factory: ``"ocr"`` and every registered entry point."""
    found: dict[str, Callable[[], ReaderFactory]] = {"ocr": lambda: build_ocr_reader}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep.load)
    return found


def build_reader(
    config: ReaderConfig | None = None, engine: OcrEngine | None = None, model: Model | None = None
) -> Reader:
    """Build the reader ``config.reader`` names.

    Args:
        config: the reader's settings (defaults: the OCR reader with the ranker).
        engine: an OCR engine to use instead of the configured one (the OCR reader only; tests).
        model: the model folder, already loaded and checked by :func:`specread.pipeline.reader_model`
            (the OCR reader only; loaded from ``config`` otherwise).

    Raises:
        ValueError: an unknown reader, scorer or engine name (the message lists valid ones).
        ImportError: a registered reader whose extra is not installed (``pip install 'specread[vlm]'``).
    """
    config = config or ReaderConfig()
    if config.reader == "ocr":
        return build_ocr_reader(config, engine, model)
    readers = available_readers()
    if config.reader not in readers:
        raise ValueError(f"unknown reader {config.reader!r}; choose one of: {', '.join(sorted(readers))}")
    if engine is not None or model is not None:
        raise ValueError(f"an OCR engine or model can only be given to the 'ocr' reader, not {config.reader!r}")
    return readers[config.reader]()(config)
