"""OCR engines behind one small interface: image in, :class:`OcrPage` out.

The default engine is RapidOCR 3.10 on onnxruntime, whose wheel ships the
PP-OCRv6 detection and recognition models, so it runs with no network. The
detector input is capped (``det_side``) because detection cost grows with the
square of the side while product labels stay legible at ~960 px; recognition
still sees crops from the full-resolution image. One inference thread per
engine: parallelism comes from worker processes, which scale better than
intra-op threads on small CPUs.

The same bundled ONNX models can run on OpenVINO instead of onnxruntime
(``backend="openvino"``): on x86 CPUs its convolution kernels make the
detector about three times cheaper at identical float32 precision, which is
what the ``fast`` preset builds on (``benchmarks/throughput.py`` measures it).
"""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from specread.ocr.layout import SEGMENTS_VERSION, detect_segments
from specread.types import OcrPage, OcrToken

__all__ = ["BACKENDS", "ENGINES", "PRECISIONS", "OcrEngine", "RapidOcrEngine", "build_engine"]

BACKENDS = ("onnxruntime", "openvino")
PRECISIONS = ("f32", "bf16")


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
        threads: inference intra-op threads.
        use_cls: run the 180-degree orientation classifier.
        min_score: drop lines the recogniser is less sure of.
        backend: ``"onnxruntime"`` or ``"openvino"`` (same models, faster kernels on x86).
        precision: ``"f32"``, or ``"bf16"`` to let OpenVINO compute in bfloat16 where
            the CPU supports it natively (AMX/AVX512-BF16); elsewhere it stays f32.
        rec_batch: text lines per recogniser call.
        rec_width_step: pad each recogniser batch's width up to a multiple of this
            (blank padding, as RapidOCR pads within a batch): fewer distinct input
            shapes, so OpenVINO reuses its compiled kernels instead of re-planning.

    Raises:
        ValueError: an option outside its valid range or list.
    """

    name = "rapidocr"

    def __init__(
        self,
        det_side: int = 960,
        max_side: int = 2000,
        threads: int = 1,
        use_cls: bool = True,
        min_score: float = 0.5,
        backend: str = "onnxruntime",
        precision: str = "f32",
        rec_batch: int = 6,
        rec_width_step: int = 1,
    ) -> None:
        if det_side < 32 or max_side < det_side:
            raise ValueError("det_side must be >= 32 and max_side >= det_side")
        if backend not in BACKENDS:
            raise ValueError(f"unknown OCR backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; choose one of: {', '.join(PRECISIONS)}")
        if precision != "f32" and backend != "openvino":
            raise ValueError("precision other than f32 needs backend='openvino'")
        if rec_batch < 1 or rec_width_step < 1:
            raise ValueError("rec_batch and rec_width_step must be >= 1")
        self.det_side = det_side
        self.max_side = max_side
        self.threads = threads
        self.use_cls = use_cls
        self.min_score = min_score
        self.backend = backend
        self.precision = precision
        self.rec_batch = rec_batch
        self.rec_width_step = rec_width_step
        self._ocr = None

    def fingerprint(self) -> str:
        base = f"rapidocr3.10-v6s-det{self.det_side}-max{self.max_side}-cls{int(self.use_cls)}-s{self.min_score}"
        base += f"-seg{SEGMENTS_VERSION}"  # pages carry line segments (specread.ocr.layout)
        if self.rec_batch != 6:
            base += f"-rb{self.rec_batch}"  # batch padding changes what the recogniser sees
        if self.rec_width_step != 1:
            base += f"-rw{self.rec_width_step}"
        if self.backend == "onnxruntime":
            return base
        # Kernels (and bf16 when the CPU has it) change the numbers slightly: a separate cache.
        return f"{base}-ov-{self.effective_precision()}"

    def effective_precision(self) -> str:
        """The precision inference really runs at on this machine (bf16 needs CPU support)."""
        if self.precision == "bf16" and "BF16" in _openvino_capabilities():
            return "bf16"
        return "f32"

    def _engine(self):
        if self._ocr is None:
            from rapidocr import RapidOCR

            logging.getLogger("RapidOCR").setLevel(logging.WARNING)
            ocr = RapidOCR(
                params={
                    "Global.log_level": "warning",
                    "Global.use_cls": self.use_cls,
                    "Global.text_score": self.min_score,
                    "Global.max_side_len": self.max_side,
                    "Det.limit_type": "max",
                    "Det.limit_side_len": self.det_side,
                    "Rec.rec_batch_num": self.rec_batch,
                    "EngineConfig.onnxruntime.intra_op_num_threads": self.threads,
                    "EngineConfig.onnxruntime.inter_op_num_threads": 1,
                }
            )
            if self.backend == "openvino":
                # RapidOCR loads the bundled models (and the recogniser's character list)
                # with onnxruntime; swap each session for an OpenVINO one on the same file.
                for model in (ocr._load_det_model(), ocr._load_rec_model(), *([ocr._load_cls_model()] * self.use_cls)):
                    path = model.session.session._model_path
                    model.session = _OpenVinoSession(path, self.threads, self.effective_precision())
            if self.rec_width_step > 1:
                rec = ocr._load_rec_model()
                rec.session = _PadWidth(rec.session, self.rec_width_step)
            self._ocr = ocr
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
        return OcrPage(tokens=tuple(tokens), width=width, height=height, segments=detect_segments(image))


@cache
def _openvino_capabilities() -> tuple[str, ...]:
    import openvino as ov

    return tuple(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


class _OpenVinoSession:
    """Callable like RapidOCR's session: one float32 batch in, the first output out."""

    def __init__(self, model_path: str | Path, threads: int, precision: str) -> None:
        try:
            import openvino as ov
        except ImportError as exc:  # pragma: no cover - openvino is a dependency
            raise ImportError("backend='openvino' needs the openvino package: pip install openvino") from exc
        config = {
            "INFERENCE_NUM_THREADS": threads,
            "NUM_STREAMS": 1,
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
        }
        self._request = ov.Core().compile_model(str(model_path), "CPU", config).create_infer_request()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self._request.infer([batch])
        # The output tensor is reused by the next call: hand out a copy.
        return np.array(self._request.get_output_tensor().data, copy=True)


class _PadWidth:
    """Wraps a recogniser session: pads an ``(N, C, H, W)`` batch with zeros to a multiple of ``step`` in W."""

    def __init__(self, session: object, step: int) -> None:
        self.session = session
        self.step = step

    def __getattr__(self, name: str) -> object:
        return getattr(self.session, name)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        extra = -batch.shape[-1] % self.step
        if extra:
            batch = np.pad(batch, ((0, 0), (0, 0), (0, 0), (0, extra)))
        return self.session(batch)  # type: ignore[operator]


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
