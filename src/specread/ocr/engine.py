"""OCR engines behind one small interface: image in, :class:`OcrPage` out.

The default engine is RapidOCR 3.10 on onnxruntime, whose wheel ships the
PP-OCRv6 detection and recognition models, so it runs with no network. The
detector input is capped (``det_side``) because detection cost grows with the
square of the side while product labels stay legible at ~960 px; recognition
still sees crops from the full-resolution image. One onnxruntime thread per
engine: parallelism comes from worker processes, which scale better than
intra-op threads on small CPUs.
"""

from __future__ import annotations

import logging
from typing import Protocol, runtime_checkable

import numpy as np

from specread.types import OcrPage, OcrToken

__all__ = ["ENGINES", "OcrEngine", "RapidOcrEngine", "build_engine"]


@runtime_checkable
class OcrEngine(Protocol):
    """Anything that turns an RGB array into an :class:`OcrPage`."""

    name: str

    def fingerprint(self) -> str:
        """A string that changes whenever the engine would read differently (cache key)."""
        ...

    def __call__(self, image: np.ndarray) -> OcrPage: ...


class RapidOcrEngine:
    """RapidOCR (PP-OCRv6 small det/rec, bundled) with a capped detector side.

    Args:
        det_side: longest side given to the text detector, in pixels.
        max_side: images larger than this are downscaled first (bounds memory
            and recognition time on huge scans).
        threads: onnxruntime intra-op threads.
        use_cls: run the 180-degree orientation classifier.
        min_score: drop lines the recogniser is less sure of.
    """

    name = "rapidocr"

    def __init__(
        self,
        det_side: int = 960,
        max_side: int = 2000,
        threads: int = 1,
        use_cls: bool = True,
        min_score: float = 0.5,
    ) -> None:
        if det_side < 32 or max_side < det_side:
            raise ValueError("det_side must be >= 32 and max_side >= det_side")
        self.det_side = det_side
        self.max_side = max_side
        self.threads = threads
        self.use_cls = use_cls
        self.min_score = min_score
        self._ocr = None

    def fingerprint(self) -> str:
        return f"rapidocr3.10-v6s-det{self.det_side}-max{self.max_side}-cls{int(self.use_cls)}-s{self.min_score}"

    def _engine(self):
        if self._ocr is None:
            from rapidocr import RapidOCR

            logging.getLogger("RapidOCR").setLevel(logging.WARNING)
            self._ocr = RapidOCR(
                params={
                    "Global.log_level": "warning",
                    "Global.use_cls": self.use_cls,
                    "Global.text_score": self.min_score,
                    "Global.max_side_len": self.max_side,
                    "Det.limit_type": "max",
                    "Det.limit_side_len": self.det_side,
                    "EngineConfig.onnxruntime.intra_op_num_threads": self.threads,
                    "EngineConfig.onnxruntime.inter_op_num_threads": 1,
                }
            )
        return self._ocr

    def __call__(self, image: np.ndarray) -> OcrPage:
        height, width = image.shape[:2]
        scale = min(1.0, self.max_side / max(height, width))
        if scale < 1.0:
            import cv2

            image = cv2.resize(image, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
        # RapidOCR expects BGR like OpenCV.
        result = self._engine()(np.ascontiguousarray(image[:, :, ::-1]))
        h, w = image.shape[:2]
        tokens: list[OcrToken] = []
        if result.txts:
            for text, score, box in zip(result.txts, result.scores, result.boxes, strict=False):
                quad = tuple((float(x) / w, float(y) / h) for x, y in np.asarray(box).tolist())
                tokens.append(OcrToken(text=str(text), score=float(score), quad=quad))  # type: ignore[arg-type]
        return OcrPage(tokens=tuple(tokens), width=width, height=height)


ENGINES = {"rapidocr": RapidOcrEngine}


def build_engine(name: str = "rapidocr", **options: object) -> OcrEngine:
    """Create an OCR engine by name.

    Raises:
        ValueError: the name is not one of :data:`ENGINES`.
    """
    try:
        cls = ENGINES[name]
    except KeyError:
        raise ValueError(f"unknown OCR engine {name!r}; choose one of: {', '.join(sorted(ENGINES))}") from None
    return cls(**options)  # type: ignore[arg-type]
