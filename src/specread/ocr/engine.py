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
``precision="int8"`` swaps in INT8 copies of the detector and recogniser
(packaged, made by ``scripts/quantize_ocr.py``), which every x86 CPU runs in
integer arithmetic, natively with VNNI or AMX: no bfloat16 hardware needed.
``device="cuda"`` (or ``"auto"`` on a machine with onnxruntime's CUDA provider)
runs the float models on a GPU instead (:mod:`specread.ocr.devices`).
"""

from __future__ import annotations

import copy
import logging
from functools import cache
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from specread.ocr.cache import page_key
from specread.ocr.devices import DEVICES, resolve_device
from specread.ocr.layout import detect_segments
from specread.types import OcrPage, OcrToken

__all__ = [
    "BACKENDS",
    "CHARSETS",
    "ENGINES",
    "INT8_MODELS",
    "PRECISIONS",
    "OcrEngine",
    "RapidOcrEngine",
    "StageClock",
    "build_engine",
    "int8_model",
    "int8_models_digest",
    "latin_classes",
]

BACKENDS = ("onnxruntime", "openvino")
CHARSETS = ("all", "latin")
PRECISIONS = ("f32", "bf16", "int8")


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
        precision: ``"f32"``; ``"bf16"`` to let OpenVINO compute in bfloat16 where
            the CPU supports it natively (AMX/AVX512-BF16), elsewhere it stays f32; or
            ``"int8"``: the packaged INT8 detector and recogniser (``scripts/quantize_ocr.py``,
            post-training quantization calibrated on real product photos), which every
            x86 CPU computes in integers (natively with VNNI or AMX); OpenVINO and
            ``charset="latin"`` only (the INT8 recogniser carries the Latin classes only).
        rec_batch: text lines per recogniser call.
        rec_width_step: pad each recogniser batch's width up to a multiple of this
            (blank padding, as RapidOCR pads within a batch): fewer distinct input
            shapes, so OpenVINO reuses its compiled kernels instead of re-planning.
        rec_max_columns: split a recogniser batch so that lines x padded width stays
            under this (0: no limit). The recogniser's output holds a score for each of
            its 18,710 characters per 8 pixels of width, ~150 MB for 6 long lines, and
            the runtime keeps buffers of the largest size it met: the cap keeps a
            worker's memory flat over a long run.
        charset: ``"all"`` (the recogniser's 18,710 characters, mostly Chinese) or
            ``"latin"`` (OpenVINO only): the output layer keeps the ~1,150 Latin, Greek,
            symbol, letterlike, CJK-unit and full-width characters, which halves
            recognition cost; a line is then read with the best character of those.
        kernel_cache: input shapes whose compiled kernels OpenVINO keeps. Every new
            recogniser width is a new shape, so an unbounded cache grows with the
            run (~10 MB per image measured); results do not depend on it.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"`` (:func:`specread.ocr.devices.resolve_device`).
            On a GPU the float models run on onnxruntime's CUDA provider and the
            CPU-only options (``backend``, ``precision``, ``charset``, ``kernel_cache``)
            do not apply; the page settings (detector side...) do.

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
        rec_max_columns: int = 0,
        charset: str = "all",
        kernel_cache: int = 64,
        device: str = "auto",
    ) -> None:
        if det_side < 32 or max_side < det_side:
            raise ValueError("det_side must be >= 32 and max_side >= det_side")
        if backend not in BACKENDS:
            raise ValueError(f"unknown OCR backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; choose one of: {', '.join(PRECISIONS)}")
        if precision != "f32" and backend != "openvino":
            raise ValueError("precision other than f32 needs backend='openvino'")
        if charset not in CHARSETS:
            raise ValueError(f"unknown charset {charset!r}; choose one of: {', '.join(CHARSETS)}")
        if precision == "int8" and charset != "latin":
            raise ValueError("precision='int8' needs charset='latin' (the INT8 recogniser has the Latin classes only)")
        if charset != "all" and backend != "openvino":
            raise ValueError("charset other than 'all' needs backend='openvino'")
        if rec_batch < 1 or rec_width_step < 1:
            raise ValueError("rec_batch and rec_width_step must be >= 1")
        if rec_max_columns < 0 or kernel_cache < 0:
            raise ValueError("rec_max_columns and kernel_cache must be >= 0")
        if device not in DEVICES:
            raise ValueError(f"unknown OCR device {device!r}; choose one of: {', '.join(DEVICES)}")
        self.det_side = det_side
        self.max_side = max_side
        self.threads = threads
        self.use_cls = use_cls
        self.min_score = min_score
        self.backend = backend
        self.precision = precision
        self.rec_batch = rec_batch
        self.rec_width_step = rec_width_step
        self.rec_max_columns = rec_max_columns
        self.charset = charset
        self.kernel_cache = kernel_cache
        self.device = device
        self._device: str | None = None
        self._ocr = None
        self._base: RapidOcrEngine | None = None

    def at_det_side(self, det_side: int) -> RapidOcrEngine:
        """This engine with its text detector at another side, sharing the loaded models.

        A second, finer pass over the images where the first found too little costs no
        second copy of the models (about 200 MB per worker with OpenVINO). Same process
        only: the two take turns on one detector.
        """
        if not 32 <= det_side <= self.max_side:
            raise ValueError(f"det_side must be between 32 and max_side ({self.max_side}); got {det_side}")
        view = copy.copy(self)
        view.det_side = det_side
        view._base = self._base or self
        return view

    def fingerprint(self) -> str:
        return page_key("rapidocr3.10-v6s", self, int8_models_digest)

    def resolved_device(self) -> str:
        """``"cpu"`` or ``"cuda"``: where this engine reads (``device`` resolved once, then kept).

        Raises:
            DeviceUnavailableError: ``device="cuda"`` without onnxruntime's CUDA provider.
        """
        if self._base is not None:
            return self._base.resolved_device()
        if self._device is None:
            self._device = resolve_device(self.device)
        return self._device

    def effective_precision(self) -> str:
        """The precision inference really runs at on this machine (bf16 needs CPU support)."""
        if self.precision == "int8":
            return "int8"
        if self.precision == "bf16" and "BF16" in _openvino_capabilities():
            return "bf16"
        return "f32"

    def _engine(self):
        if self._base is not None:
            return self._base._engine()
        if self._ocr is None:
            from rapidocr import RapidOCR

            # "text detection result is empty" is a normal outcome for a product photo, not a warning.
            logging.getLogger("RapidOCR").setLevel(logging.ERROR)
            params = {
                "Global.log_level": "error",
                "Global.use_cls": self.use_cls,
                "Global.text_score": self.min_score,
                "Global.max_side_len": self.max_side,
                "Det.limit_type": "max",
                "Det.limit_side_len": self.det_side,
                "Rec.rec_batch_num": self.rec_batch,
                "EngineConfig.onnxruntime.intra_op_num_threads": self.threads,
                "EngineConfig.onnxruntime.inter_op_num_threads": 1,
            }
            cpu_openvino = self.backend == "openvino" and self.resolved_device() == "cpu"
            if self.resolved_device() == "cuda":
                params["EngineConfig.onnxruntime.use_cuda"] = True
            elif cpu_openvino:
                params |= _openvino_params(self.threads)
            ocr = RapidOCR(params=params)
            if cpu_openvino:
                # RapidOCR's own OpenVINO sessions take no precision or cache settings
                # (and default to bf16 where the CPU has it): replace them with ours.
                stages = {"Det": _stage(ocr, "Det"), "Rec": _stage(ocr, "Rec")}
                if self.use_cls:
                    stages["Cls"] = _stage(ocr, "Cls")
                keep = None
                if self.charset == "latin":
                    decode = stages["Rec"].postprocess_op
                    keep = latin_classes(decode.character)
                    decode.character = [decode.character[i] for i in keep]
                    decode.dict = {char: i for i, char in enumerate(decode.character)}
                for stage, model in stages.items():
                    int8 = self.precision == "int8" and stage in INT8_MODELS
                    model.session = _OpenVinoSession(
                        int8_model(stage) if int8 else _bundled_model(stage),
                        self.threads,
                        self.effective_precision(),
                        self.kernel_cache,
                        keep_classes=keep if stage == "Rec" else None,
                    )
            det, table = _stage(ocr, "Det"), _det_preprocess_class()
            det.get_preprocess = lambda: table(det.limit_side_len, det.limit_type, det.mean, det.std)
            if self.rec_width_step > 1 or self.rec_max_columns:
                rec = _stage(ocr, "Rec")
                rec.session = _RecBatches(rec.session, self.rec_width_step, self.rec_max_columns)
            self._ocr = ocr
        return self._ocr

    def __call__(self, image: np.ndarray) -> OcrPage:
        if image.ndim == 2:  # grayscale array
            image = np.repeat(image[:, :, None], 3, axis=2)
        elif image.shape[2] != 3:  # RGBA or a single channel
            image = np.repeat(image[:, :, :1], 3, axis=2) if image.shape[2] == 1 else image[:, :, :3]
        height, width = image.shape[:2]
        if not height or not width:
            return OcrPage(tokens=(), width=width, height=height)
        scale = min(1.0, self.max_side / max(height, width))
        if scale < 1.0:
            import cv2

            # A thin strip (2 x 100000) must keep at least one pixel across, or cv2.resize fails.
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        ocr = self._engine()
        _stage(ocr, "Det").limit_side_len = self.det_side  # views of one engine take turns (at_det_side)
        h, w = image.shape[:2]
        # RapidOCR expects BGR like OpenCV.
        result = ocr(np.ascontiguousarray(_pad_to_min_side(image)[:, :, ::-1]))
        tokens: list[OcrToken] = []
        if result.txts:
            for text, score, box in zip(result.txts, result.scores, result.boxes, strict=False):
                quad = tuple((float(x) / w, float(y) / h) for x, y in np.asarray(box).tolist())
                tokens.append(OcrToken(text=str(text), score=float(score), quad=quad))  # type: ignore[arg-type]
        return OcrPage(tokens=tuple(tokens), width=width, height=height, segments=detect_segments(image))


_STAGES = {
    "Det": ("_load_det_model", "text_det"),
    "Rec": ("_load_rec_model", "text_rec"),
    "Cls": ("_load_cls_model", "text_cls"),
}


def _stage(ocr: object, stage: str) -> Any:
    """RapidOCR's loaded detector, recogniser or classifier object.

    The one place specread touches RapidOCR's internals: 3.10 (pinned) loads each
    stage lazily through a private loader and then keeps it in a public attribute
    (``text_det``, ``text_rec``, ``text_cls``), whose ``session`` and parameters
    specread replaces or sets. ``tests/test_presets.py`` fails if that changes.
    """
    loader, attribute = _STAGES[stage]
    loaded = getattr(ocr, attribute)
    return loaded if loaded is not None else getattr(ocr, loader)()


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


_BUNDLED = {
    "Det": "PP-OCRv6_det_small.onnx",
    "Rec": "PP-OCRv6_rec_small.onnx",
    "Cls": "ch_ppocr_mobile_v2.0_cls_mobile.onnx",
}
"""The model files the rapidocr wheel ships (the ones onnxruntime would load by default)."""


def _bundled_model(stage: str) -> Path:
    import rapidocr

    return Path(rapidocr.__file__).parent / "models" / _BUNDLED[stage]


INT8_MODELS = {"Det": "det_int8.xml", "Rec": "rec_int8_latin.xml"}
"""The INT8 models ``scripts/quantize_ocr.py`` writes into ``specread/data/ocr/`` (OpenVINO IR).

The angle classifier (3 % of the time) stays float. The recogniser's output layer is
already cut to :func:`latin_classes`, which is why ``int8`` needs ``charset="latin"``.
"""


def int8_model(stage: str) -> Path:
    """The packaged INT8 model file of a stage (``Det`` or ``Rec``).

    Raises:
        FileNotFoundError: the package was built without them (run ``scripts/quantize_ocr.py``).
    """
    from importlib.resources import files

    path = Path(str(files("specread.data") / "ocr" / INT8_MODELS[stage]))
    if not path.is_file():
        raise FileNotFoundError(f"no INT8 model at {path}: run scripts/quantize_ocr.py")
    return path


@cache
def int8_models_digest() -> str:
    """sha256 over the packaged INT8 model files: part of the cache key of pages read with them."""
    import hashlib

    digest = hashlib.sha256()
    for stage in sorted(INT8_MODELS):
        xml = int8_model(stage)
        digest.update(xml.read_bytes())
        digest.update(xml.with_suffix(".bin").read_bytes())
    return digest.hexdigest()


def _openvino_params(threads: int) -> dict[str, object]:
    """RapidOCR settings that load the bundled ONNX files straight into OpenVINO (no onnxruntime copy)."""
    from rapidocr import EngineType

    params: dict[str, object] = {
        "EngineConfig.openvino.inference_num_threads": threads,
        "EngineConfig.openvino.enable_cpu_pinning": False,  # see _OpenVinoSession
    }
    for stage in _BUNDLED:
        params[f"{stage}.engine_type"] = EngineType.OPENVINO
        params[f"{stage}.model_path"] = str(_bundled_model(stage))
    return params


@cache
def _openvino_capabilities() -> tuple[str, ...]:
    import openvino as ov

    return tuple(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


class _OpenVinoSession:
    """Callable like RapidOCR's session: one float32 batch in, the first output out."""

    def __init__(
        self,
        model_path: str | Path,
        threads: int,
        precision: str,
        kernel_cache: int = 0,
        keep_classes: list[int] | None = None,
    ) -> None:
        try:
            import openvino as ov
        except ImportError as exc:  # pragma: no cover - openvino is a dependency
            raise ImportError("backend='openvino' needs the openvino package: pip install openvino") from exc
        config = {
            "INFERENCE_NUM_THREADS": threads,
            "NUM_STREAMS": 1,
            "PERFORMANCE_HINT": "LATENCY",
            # An INT8 model's integer layers run in integers whatever this says; its few float
            # layers stay f32, so its pages are the same on every CPU.
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
            "CPU_RUNTIME_CACHE_CAPACITY": kernel_cache,
            # Pinning puts every worker process's thread on the same cores: two workers ran at
            # ~60% of a core each with it, at a full core each without it.
            "ENABLE_CPU_PINNING": False,
        }
        core = ov.Core()
        model = core.read_model(str(model_path))
        if keep_classes is not None:
            _keep_output_classes(model, keep_classes)
        self._request = core.compile_model(model, "CPU", config).create_infer_request()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self._request.infer([batch])
        # The output tensor is reused by the next call: hand out a copy.
        return np.array(self._request.get_output_tensor().data, copy=True)


def latin_classes(characters: list[str]) -> list[int]:
    """Indices of the recogniser classes a product label in a Latin script can need.

    Kept: the CTC blank (0), Latin (Basic, Latin-1, Extended-A/B), Greek (``μ``),
    general punctuation (primes, quotes), super/subscripts, letterlike symbols
    (``℮``, ``ℓ``), number forms (``½``), math operators, CJK unit squares
    (``㎏``, ``㎖``), full-width forms, and the trailing space.
    """
    ranges = ((0x20, 0x250), (0x370, 0x400), (0x2000, 0x2300), (0x3300, 0x3400), (0xFF00, 0xFFF0))
    keep = [0]
    for i, char in enumerate(characters[1:], start=1):
        if len(char) == 1 and any(lo <= ord(char) < hi for lo, hi in ranges):
            keep.append(i)
    return keep


def _keep_output_classes(model: object, keep: list[int]) -> None:
    """Cut an OpenVINO model's last-axis classes (weights and bias of its output layer) to ``keep``."""
    from openvino import opset13 as ops

    classes = model.output(0).get_partial_shape()[-1].get_length()  # type: ignore[attr-defined]
    if classes == len(keep):  # already cut (the INT8 recogniser is saved that way)
        return
    index = np.asarray(keep)
    cut = 0
    for op in model.get_ordered_ops():  # type: ignore[attr-defined]
        if op.get_type_name() != "Constant":
            continue
        shape = list(op.get_output_shape(0))
        if not shape or shape[-1] != classes:
            continue
        sliced = ops.constant(np.ascontiguousarray(op.get_data()[..., index]))
        for target in list(op.output(0).get_target_inputs()):
            target.replace_source_output(sliced.output(0))
        cut += 1
    if not cut:
        raise ValueError(f"no output-layer constant with {classes} classes found")
    model.validate_nodes_and_infer_types()  # type: ignore[attr-defined]


@cache
def _det_preprocess_class() -> type:
    """RapidOCR's detector pre-processing with its normalisation as a lookup table (same bits, ~4x cheaper).

    RapidOCR normalises the detector's input in float64 (``(x / 255 - mean) / std`` over the
    whole picture), then transposes it to CHW and copies it: 9.3 ms per real-dev image, ~3 %
    of a ``fast`` worker's time. A uint8 pixel has 256 values per channel, so the same float64
    formula over those 256 values, rounded to float32 as RapidOCR rounds it, is a table;
    indexing it per channel writes the CHW batch directly (2.4 ms). The detector sees identical numbers, so pages
    (and the cache fingerprint) do not change; ``tests/test_presets.py`` checks the bits.
    """
    from rapidocr.ch_ppocr_det.utils import DetPreProcess

    class DetPreProcessTable(DetPreProcess):
        def __call__(self, img: np.ndarray) -> np.ndarray | None:
            resized = self.resize(img)
            if resized is None:
                return None
            values = np.arange(256, dtype=np.float32)[:, None] * self.scale  # float32, as RapidOCR scales
            table = ((values - self.mean) / self.std).astype(np.float32)  # float64 arithmetic, then float32
            height, width = resized.shape[:2]
            out = np.empty((1, 3, height, width), np.float32)
            for channel in range(3):
                np.take(table[:, channel], resized[:, :, channel], out=out[0, channel])
            return out

    return DetPreProcessTable


class _RecBatches:
    """Wraps a recogniser session: pads an ``(N, C, H, W)`` batch's width and splits wide batches.

    Zero padding in W is what RapidOCR itself adds to the shorter lines of a
    batch; lines are independent, so a split batch reads the same.
    """

    def __init__(self, session: object, width_step: int = 1, max_columns: int = 0) -> None:
        self.session = session
        self.width_step = width_step
        self.max_columns = max_columns

    def __getattr__(self, name: str) -> object:
        return getattr(self.session, name)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        extra = -batch.shape[-1] % self.width_step
        if extra:
            batch = np.pad(batch, ((0, 0), (0, 0), (0, 0), (0, extra)))
        per_call = max(1, self.max_columns // batch.shape[-1]) if self.max_columns else len(batch)
        if per_call >= len(batch):
            return self.session(batch)  # type: ignore[operator]
        parts = [self.session(batch[i : i + per_call]) for i in range(0, len(batch), per_call)]  # type: ignore[operator]
        return np.concatenate(parts)


class StageClock:
    """CPU seconds spent in each model of a :class:`RapidOcrEngine` (``Det``, ``Cls``, ``Rec``).

    For profiling (``benchmarks/throughput.py``): :meth:`attach` wraps the loaded
    sessions so every call adds its process CPU time to :attr:`seconds`. Process
    time, not wall time: on a shared machine it is the comparable figure, and it
    counts the runtime's own threads. One engine per process while attached.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {"Det": 0.0, "Cls": 0.0, "Rec": 0.0}

    def reset(self) -> None:
        """Back to zero (in place: the attached sessions hold this dict)."""
        for stage in self.seconds:
            self.seconds[stage] = 0.0

    @classmethod
    def attach(cls, engine: RapidOcrEngine) -> StageClock:
        """Load ``engine``'s models and start timing them."""
        clock = cls()
        ocr = engine._engine()
        for stage in ("Det", "Cls", "Rec") if engine.use_cls else ("Det", "Rec"):
            model = _stage(ocr, stage)
            model.session = _Timed(model.session, clock.seconds, stage)
        return clock


class _Timed:
    """A session wrapper that adds each call's process CPU time to ``seconds[stage]``."""

    def __init__(self, session: object, seconds: dict[str, float], stage: str) -> None:
        self.session, self.seconds, self.stage = session, seconds, stage

    def __getattr__(self, name: str) -> object:
        return getattr(self.session, name)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        import time

        start = time.process_time()
        try:
            return self.session(batch)  # type: ignore[operator]
        finally:
            self.seconds[self.stage] += time.process_time() - start


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
