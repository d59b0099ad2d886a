"""The RapidOCR adapter: an RGB array in, an :class:`OcrPage` out, read as :class:`OcrSettings` say.

RapidOCR 3.10 on onnxruntime, whose wheel ships the PP-OCRv6 detection and recognition
models, so it runs with no network. The detector input is capped (``det_side``) because
detection cost grows with the square of the side while product labels stay legible at
~960 px; recognition still sees crops from the full-resolution image. One inference
thread per engine: parallelism comes from worker processes, which scale better than
intra-op threads on small CPUs.

The same models run on OpenVINO instead with ``backend="openvino"``
(:mod:`specread.ocr.openvino`), ``precision="int8"`` swaps in the packaged INT8 models
(:mod:`specread.ocr.int8`), and ``device="cuda"`` (or ``"auto"`` on a machine with
onnxruntime's CUDA provider) runs the float models on a GPU (:mod:`specread.ocr.devices`).
What this adapter changes inside RapidOCR goes through :mod:`specread.ocr.internals`.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import logging
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from specread.ocr import internals, openvino
from specread.ocr.cache import page_key
from specread.ocr.devices import DEVICES, resolve_device
from specread.ocr.int8 import INT8_MODELS, int8_model, int8_models_digest
from specread.ocr.layout import detect_segments
from specread.ocr.lines import LineReader, lines_per_call
from specread.settings import OcrSettings
from specread.types import OcrPage, OcrToken

__all__ = [
    "BACKENDS",
    "CHARSETS",
    "MIN_SIDE",
    "PRECISIONS",
    "REC_PADDINGS",
    "RapidOcrEngine",
    "RecBatches",
    "check_settings",
]

BACKENDS = ("onnxruntime", "openvino")
CHARSETS = ("all", "latin")
PRECISIONS = ("f32", "bf16", "int8")
REC_PADDINGS = ("line", "batch")


def check_settings(settings: OcrSettings) -> None:
    """Refuse settings RapidOCR cannot read with, before any model is loaded.

    Raises:
        ValueError: an option outside its valid range or list, or two that do not go together.
    """
    s = settings
    if s.det_side < 32 or s.max_side < s.det_side:
        raise ValueError("det_side must be >= 32 and max_side >= det_side")
    if s.backend not in BACKENDS:
        raise ValueError(f"unknown OCR backend {s.backend!r}; choose one of: {', '.join(BACKENDS)}")
    if s.precision not in PRECISIONS:
        raise ValueError(f"unknown precision {s.precision!r}; choose one of: {', '.join(PRECISIONS)}")
    if s.precision != "f32" and s.backend != "openvino":
        raise ValueError("precision other than f32 needs backend='openvino'")
    if s.charset not in CHARSETS:
        raise ValueError(f"unknown charset {s.charset!r}; choose one of: {', '.join(CHARSETS)}")
    if s.precision == "int8" and s.charset != "latin":
        raise ValueError("precision='int8' needs charset='latin' (the INT8 recogniser has the Latin classes only)")
    if s.charset != "all" and s.backend != "openvino":
        raise ValueError("charset other than 'all' needs backend='openvino'")
    if s.det_pad < 0:
        raise ValueError("det_pad must be >= 0")
    if s.det_pad > 1 and s.rec_padding != "line":
        raise ValueError("det_pad needs rec_padding='line' (pictures are read together only then)")
    if s.rec_padding not in REC_PADDINGS:
        raise ValueError(f"unknown rec_padding {s.rec_padding!r}; choose one of: {', '.join(REC_PADDINGS)}")
    if s.rec_batch < 1 or s.rec_width_step < 1 or s.batch_images < 1:
        raise ValueError("rec_batch, rec_width_step and batch_images must be >= 1")
    if s.rec_max_columns < 0 or s.kernel_cache < 0:
        raise ValueError("rec_max_columns and kernel_cache must be >= 0")
    if s.device not in DEVICES:
        raise ValueError(f"unknown OCR device {s.device!r}; choose one of: {', '.join(DEVICES)}")


class RapidOcrEngine:
    """RapidOCR (PP-OCRv6 small det/rec, bundled) with a capped detector side.

    Every value comes from ``settings`` (the defaults are ``settings.toml``'s ``[ocr]``);
    what some of them do here:

    - ``precision``: ``"bf16"`` lets OpenVINO compute in bfloat16 where the CPU supports
      it natively (AMX/AVX512-BF16), elsewhere it stays f32; ``"int8"`` needs OpenVINO and
      ``charset="latin"`` (the INT8 recogniser carries the Latin classes only).
    - ``rec_width_step``: pads each recogniser batch's width up to a multiple of this (blank
      padding, as RapidOCR pads within a batch): fewer distinct input shapes, so OpenVINO
      reuses its compiled kernels instead of re-planning.
    - ``rec_max_columns``: splits a recogniser batch so that lines x padded width stays under
      this (0: no limit). The recogniser's output holds a score for each of its 18,710
      characters per 8 pixels of width, ~150 MB for 6 long lines, and the runtime keeps
      buffers of the largest size it met: the cap keeps a worker's memory flat over a long run.
    - ``charset="latin"`` (OpenVINO only): the output layer keeps the ~1,150 Latin, Greek,
      symbol, letterlike, CJK-unit and full-width characters, which halves recognition cost;
      a line is then read with the best character of those.
    - ``kernel_cache``: every new recogniser width is a new shape, so an unbounded cache
      grows with the run (~10 MB per image measured); results do not depend on it.
    - ``device``: on a GPU the float models run on onnxruntime's CUDA provider and the
      CPU-only options (``backend``, ``precision``, ``charset``, ``kernel_cache``) do not
      apply; the page settings (detector side...) do.

    Raises:
        ValueError: a setting :func:`check_settings` refuses.
    """

    name = "rapidocr"

    def __init__(self, settings: OcrSettings) -> None:
        check_settings(settings)
        self.settings = settings
        self._device: str | None = None
        self._ocr: Any = None
        self._lines: LineReader | None = None
        self._base: RapidOcrEngine | None = None

    @property
    def max_side(self) -> int:
        """Pictures larger than this are reduced first (and decoded no larger)."""
        return self.settings.max_side

    def at_det_side(self, det_side: int) -> RapidOcrEngine:
        """This engine with its text detector at another side, sharing the loaded models.

        A second, finer pass over the images where the first found too little costs no
        second copy of the models (about 200 MB per worker with OpenVINO). Same process
        only: the two take turns on one detector.
        """
        if not 32 <= det_side <= self.max_side:
            raise ValueError(f"det_side must be between 32 and max_side ({self.max_side}); got {det_side}")
        view = copy.copy(self)
        view.settings = dataclasses.replace(self.settings, det_side=det_side)
        view._base = self._base or self
        return view

    def fingerprint(self) -> str:
        """A string that changes whenever this engine would read differently (the OCR cache key)."""
        return page_key("rapidocr3.10-v6s", self, int8_models_digest)

    def resolved_device(self) -> str:
        """``"cpu"`` or ``"cuda"``: where this engine reads (``device`` resolved once, then kept).

        Raises:
            DeviceUnavailableError: ``device="cuda"`` without onnxruntime's CUDA provider.
        """
        if self._base is not None:
            return self._base.resolved_device()
        if self._device is None:
            self._device = resolve_device(self.settings.device)
        return self._device

    def effective_precision(self) -> str:
        """The precision inference really runs at on this machine (bf16 needs CPU support)."""
        if self.settings.precision == "int8":
            return "int8"
        if self.settings.precision == "bf16" and "BF16" in openvino.openvino_capabilities():
            return "bf16"
        return "f32"

    def load(self) -> Any:
        """The RapidOCR pipeline this engine (and its :meth:`at_det_side` views) reads with, loaded on first use."""
        if self._base is not None:
            return self._base.load()
        if self._ocr is None:
            from rapidocr import RapidOCR

            # "text detection result is empty" is a normal outcome for a product photo, not a warning.
            logging.getLogger("RapidOCR").setLevel(logging.ERROR)
            s = self.settings
            cpu_openvino = s.backend == "openvino" and self.resolved_device() == "cpu"
            ocr = RapidOCR(params=self._params(cpu_openvino))
            if cpu_openvino:
                self._use_openvino_sessions(ocr)
            internals.use_det_table(ocr)
            if s.rec_padding == "line":
                self._lines = LineReader(internals.line_model(ocr), s.rec_batch, s.rec_width_step, s.rec_max_columns)
            elif s.rec_width_step > 1 or s.rec_max_columns:
                internals.wrap_session(ocr, "Rec", lambda rec: RecBatches(rec, s.rec_width_step, s.rec_max_columns))
            self._ocr = ocr
        return self._ocr

    def _params(self, cpu_openvino: bool) -> dict[str, object]:
        """RapidOCR's ``params`` (its documented configuration) for these settings."""
        s = self.settings
        params: dict[str, object] = {
            "Global.log_level": "error",
            "Global.use_cls": s.use_cls,
            "Global.text_score": s.min_score,
            "Global.max_side_len": s.max_side,
            "Det.limit_type": "max",
            "Det.limit_side_len": s.det_side,
            "Rec.rec_batch_num": s.rec_batch,
            "EngineConfig.onnxruntime.intra_op_num_threads": s.threads,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
        }
        if s.rec_padding == "line":  # the crops of several pictures share classifier calls too
            params["Cls.cls_batch_num"] = s.rec_batch
        if self.resolved_device() == "cuda":
            params["EngineConfig.onnxruntime.use_cuda"] = True
        elif cpu_openvino:
            params |= internals.openvino_params(s.threads)
        return params

    def _use_openvino_sessions(self, ocr: Any) -> None:
        """Replace RapidOCR's OpenVINO sessions, which take no precision or cache settings, with ours."""
        s = self.settings
        keep = internals.keep_characters(ocr, openvino.latin_classes) if s.charset == "latin" else None
        for name in ("Det", "Rec", "Cls") if s.use_cls else ("Det", "Rec"):
            int8 = s.precision == "int8" and name in INT8_MODELS
            session = openvino.OpenVinoSession(
                int8_model(name) if int8 else internals.bundled_model(name),
                s.threads,
                self.effective_precision(),
                s.kernel_cache,
                keep_classes=keep if name == "Rec" else None,
            )
            internals.wrap_session(ocr, name, lambda _theirs, ours=session: ours)

    def __call__(self, image: np.ndarray) -> OcrPage:
        return self.read_many([image])[0]

    def read_many(self, images: Iterable[np.ndarray]) -> list[OcrPage]:
        """One page per RGB array; with ``rec_padding="line"`` their text lines share recogniser calls.

        Each line is read at its own padded width (:mod:`specread.ocr.lines`), so a page is the
        same whether its picture is read alone or with others: batching is a matter of speed.
        The arrays are taken one at a time (``images`` may be a generator that decodes them) and
        only their text crops are kept until the lines are read.
        """
        import cv2

        given = iter(images)
        first = next(given, None)  # decoded before the models load: a bad image fails fast
        if first is None:
            return []
        images = itertools.chain([first], given)
        ocr = self.load()
        internals.set_det_side(ocr, self.settings.det_side)  # views of one engine take turns (at_det_side)
        frames: list[_Frame] = []

        def pictures() -> Iterator[np.ndarray | None]:
            for image in images:
                picture = _upright_rgb(image, self.max_side)
                frames.append(
                    _Frame(image.shape[:2], picture.shape[:2], detect_segments(picture) if picture.size else ())
                )
                # RapidOCR expects BGR like OpenCV (cvtColor: the same bytes as a reversed copy, 10x faster).
                yield cv2.cvtColor(_pad_to_min_side(picture), cv2.COLOR_RGB2BGR) if picture.size else None

        lines = (self._base or self)._lines  # the loaded models' (a view shares its base's)
        if lines is None:  # rec_padding "batch": RapidOCR's own call, picture by picture
            results: list[Any] = [None if bgr is None else ocr(bgr) for bgr in pictures()]
        else:
            results = self._read_lines(ocr, lines, pictures())
        return [frame.page(result) for frame, result in zip(frames, results, strict=True)]

    def _read_lines(self, ocr: Any, lines: LineReader, pictures: Iterable[np.ndarray | None]) -> list[Any]:
        """RapidOCR's result per picture, the lines of all of them classified and recognised together."""
        found = internals.detect(ocr, pictures, self.settings.det_pad)
        crops = [crop for f in found if f is not None for crop in f.crops]
        if self.settings.use_cls:
            crops = internals.classify(ocr, crops)
        read = lines(crops)
        results, start = [], 0
        for f in found:
            if f is None:
                results.append(None)
                continue
            results.append(internals.assemble(ocr, f, read[start : start + len(f.crops)]))
            start += len(f.crops)
        return results


@dataclasses.dataclass(frozen=True)
class _Frame:
    """What a page needs of its picture once read: its sizes, as given and as read, and its line segments."""

    original: tuple[int, ...]
    read: tuple[int, ...]
    segments: tuple[Any, ...]

    def page(self, result: Any) -> OcrPage:
        """The page from RapidOCR's result on the picture as read (boxes made relative to it)."""
        height, width = self.original
        tokens: list[OcrToken] = []
        if result is not None and result.txts:
            h, w = self.read
            for text, score, box in zip(result.txts, result.scores, result.boxes, strict=False):
                quad = tuple((float(x) / w, float(y) / h) for x, y in np.asarray(box).tolist())
                tokens.append(OcrToken(text=str(text), score=float(score), quad=quad))  # type: ignore[arg-type]
        return OcrPage(tokens=tuple(tokens), width=width, height=height, segments=self.segments)


def _upright_rgb(image: np.ndarray, max_side: int) -> np.ndarray:
    """A three-channel picture no larger than ``max_side`` (grayscale and RGBA arrays accepted)."""
    if image.ndim == 2:  # grayscale array
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.shape[2] != 3:  # RGBA or a single channel
        image = np.repeat(image[:, :, :1], 3, axis=2) if image.shape[2] == 1 else image[:, :, :3]
    height, width = image.shape[:2]
    scale = min(1.0, max_side / max(height, width, 1))
    if scale < 1.0:
        import cv2

        # A thin strip (2 x 100000) must keep at least one pixel across, or cv2.resize fails.
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return image


MIN_SIDE = 32
"""Pictures thinner than this are padded with white up to it before OCR.

RapidOCR scales any picture whose short side is under 30 px up until it is 30
(``Global.min_side_len``), whatever that does to the long side: a 1 x 2000 strip
becomes 30 x 60000, which its letterbox padding then grows to 7500 x 60000
(2.8 GB for one blank strip). White padding reads the same and costs nothing.
"""


def _pad_to_min_side(image: np.ndarray) -> np.ndarray:
    height, width = image.shape[:2]
    if min(height, width) >= MIN_SIDE:
        return image
    padded = np.full((max(height, MIN_SIDE), max(width, MIN_SIDE), 3), 255, np.uint8)
    padded[:height, :width] = image
    return padded


class RecBatches:
    """Wraps a recogniser session: pads an ``(N, C, H, W)`` batch's width and splits wide batches.

    Zero padding in W is what RapidOCR itself adds to the shorter lines of a
    batch; lines are independent, so a split batch reads the same.

    Args:
        session: the recogniser session wrapped.
        width_step: pad the width to a multiple of this (``rec_width_step``; 1: no padding).
        max_columns: most lines x padded width per call (``rec_max_columns``; 0: no limit).
    """

    def __init__(self, session: object, width_step: int, max_columns: int) -> None:
        self.session = session
        self.width_step = width_step
        self.max_columns = max_columns

    def __getattr__(self, name: str) -> object:
        return getattr(self.session, name)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        extra = -batch.shape[-1] % self.width_step
        if extra:
            batch = np.pad(batch, ((0, 0), (0, 0), (0, 0), (0, extra)))
        per_call = lines_per_call(batch.shape[-1], len(batch), self.max_columns)
        if per_call >= len(batch):
            return self.session(batch)  # type: ignore[operator]
        parts = [self.session(batch[i : i + per_call]) for i in range(0, len(batch), per_call)]  # type: ignore[operator]
        return np.concatenate(parts)
