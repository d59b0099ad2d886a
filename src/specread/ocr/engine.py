"""What an OCR engine is (:class:`OcrEngine`), and the factory that builds one from settings.

An engine turns an RGB array into an :class:`OcrPage`. Each implementation lives in a
module of its own behind this protocol, as RapidOCR keeps one module per inference
backend: :mod:`specread.ocr.rapid` is the RapidOCR adapter, which runs on onnxruntime
or OpenVINO (:mod:`specread.ocr.openvino`), in float or INT8 (:mod:`specread.ocr.int8`),
on a CPU or a GPU (:mod:`specread.ocr.devices`). The reader only sees the protocol, so
a test's fake engine or another OCR library plugs in by name (:data:`ENGINES`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np

from specread.ocr.rapid import RapidOcrEngine
from specread.settings import OcrSettings
from specread.types import OcrPage

__all__ = ["ENGINES", "OcrEngine", "build_engine"]


@runtime_checkable
class OcrEngine(Protocol):
    """Anything that turns an RGB array into an :class:`OcrPage`, built from :class:`OcrSettings`."""

    name: str

    @property
    def max_side(self) -> int | None:
        """Longest side the engine looks at (larger pictures are decoded no larger); None: any."""
        ...

    def fingerprint(self) -> str:
        """A string that changes whenever the engine would read differently (cache key)."""
        ...

    def at_det_side(self, det_side: int) -> OcrEngine:
        """The engine of a second, finer pass: its text detector at ``det_side`` (``retry_side``).

        Raises:
            ValueError: a side this engine cannot read at.
        """
        ...

    def __call__(self, image: np.ndarray) -> OcrPage: ...


ENGINES: dict[str, Callable[[OcrSettings], OcrEngine]] = {"rapidocr": RapidOcrEngine}
"""Engine classes (or factories) by the name ``settings.engine`` gives."""


def build_engine(settings: OcrSettings) -> OcrEngine:
    """The engine ``settings.engine`` names, reading as ``settings`` say.

    Raises:
        ValueError: the name is not one of :data:`ENGINES`, or the engine refuses a setting.
    """
    try:
        make = ENGINES[settings.engine]
    except KeyError:
        raise ValueError(
            f"unknown OCR engine {settings.engine!r}; choose one of: {', '.join(sorted(ENGINES))}"
        ) from None
    return make(settings)
