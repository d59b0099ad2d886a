"""The one place specread touches RapidOCR's internals (3.10, pinned).

RapidOCR loads each stage lazily through a private loader and then keeps it in a
public attribute (``text_det``, ``text_rec``, ``text_cls``); specread replaces those
stages' ``session`` objects, sets the detector's side per call, cuts the
recogniser's character list and swaps the detector's pre-processing. Everything
that depends on those names is here, behind small functions, so a RapidOCR upgrade
is checked in one module: ``tests/test_ocr_engine.py`` and ``tests/test_presets.py``
fail if the names move. RapidOCR's documented ``params`` keys are not internals and
stay with the adapter (:mod:`specread.ocr.rapid`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "BUNDLED",
    "Detected",
    "LineModel",
    "assemble",
    "bundled_model",
    "characters",
    "classify",
    "det_preprocess_class",
    "detect",
    "keep_characters",
    "line_model",
    "openvino_params",
    "set_det_side",
    "stage",
    "use_det_table",
    "wrap_session",
]

_STAGES = {
    "Det": ("_load_det_model", "text_det"),
    "Rec": ("_load_rec_model", "text_rec"),
    "Cls": ("_load_cls_model", "text_cls"),
}

BUNDLED = {
    "Det": "PP-OCRv6_det_small.onnx",
    "Rec": "PP-OCRv6_rec_small.onnx",
    "Cls": "ch_ppocr_mobile_v2.0_cls_mobile.onnx",
}
"""The model files the rapidocr wheel ships (the ones onnxruntime would load by default)."""


def stage(ocr: object, name: str) -> Any:
    """RapidOCR's detector, recogniser or classifier object (``Det``, ``Rec`` or ``Cls``), loaded if it was not."""
    loader, attribute = _STAGES[name]
    loaded = getattr(ocr, attribute)
    return loaded if loaded is not None else getattr(ocr, loader)()


def wrap_session(ocr: object, name: str, wrap: Callable[[Any], Any]) -> None:
    """Replace stage ``name``'s inference session by ``wrap(session)`` (a new session, or one around the old)."""
    model = stage(ocr, name)
    model.session = wrap(model.session)


def set_det_side(ocr: object, side: int) -> None:
    """Give the text detector images of at most ``side`` pixels from the next call on."""
    stage(ocr, "Det").limit_side_len = side


def characters(ocr: object) -> list[str]:
    """The recogniser's character list, class 0 (the CTC blank) first."""
    return list(stage(ocr, "Rec").postprocess_op.character)


def keep_characters(ocr: object, choose: Callable[[list[str]], list[int]]) -> list[int]:
    """Decode the recogniser's output as the classes ``choose(characters)`` keeps, in that order; returns them.

    The model's output layer must be cut to the same classes
    (:func:`specread.ocr.openvino.keep_output_classes`), or lines decode as the wrong characters.
    """
    decode = stage(ocr, "Rec").postprocess_op
    keep = choose(decode.character)
    decode.character = [decode.character[i] for i in keep]
    decode.dict = {char: i for i, char in enumerate(decode.character)}
    return keep


def use_det_table(ocr: object) -> None:
    """Make the detector pre-process through :func:`det_preprocess_class` (same numbers, ~4x cheaper)."""
    det, table = stage(ocr, "Det"), det_preprocess_class()
    det.get_preprocess = lambda: table(det.limit_side_len, det.limit_type, det.mean, det.std)


@dataclass
class Detected:
    """One picture after detection: what :func:`assemble` needs to make RapidOCR's result once its lines are read."""

    shape: tuple[int, ...]
    """The shape of the picture RapidOCR was given (BGR): the pictures themselves are not kept."""
    det: Any
    """RapidOCR's detection result (boxes in the detector's frame)."""
    crops: list[np.ndarray]
    """One crop per box, as cut (before the angle classifier)."""
    record: dict[str, Any]
    """RapidOCR's record of the resizing and padding done, to map boxes back."""


def detect(ocr: Any, images: Iterable[np.ndarray | None], pad: int = 1) -> list[Detected | None]:
    """Detect and crop the text lines of BGR pictures as ``ocr(image)`` would (None: no text found, or no picture).

    RapidOCR's own call runs detection, the angle classifier and recognition on one
    picture; split into :func:`detect`, :func:`classify` and :func:`assemble`, the lines of
    several pictures can go to the models together (:mod:`specread.ocr.lines`), and so can
    the pictures themselves: each is resized for the detector as RapidOCR resizes it, then
    padded (zeros, in the normalised space) up to a multiple of ``pad`` in height and width,
    and inputs of one shape share a call, as a GPU wants. Each output map is cut back to its
    picture before boxes are drawn. With ``pad`` 0 or 1 nothing is padded, each picture has its
    own detector call and a page is RapidOCR's own; with more, a picture reads the same alone
    or with others, not quite as unpadded (the detector sees its edges differently).

    Unpadded, the pictures are taken from ``images`` one at a time and only their crops are
    kept, so a worker holds one picture at once however many it reads together.
    """
    model = stage(ocr, "Det")
    if pad <= 1:
        return [
            None if image is None else _found(ocr, model, image, *_detector_input(ocr, model, image))
            for image in images
        ]
    held = [None if image is None else (image, *_detector_input(ocr, model, image)) for image in images]
    maps = _padded_maps(model.session, [None if h is None else h[3] for h in held], pad)
    return [
        None if h is None else _found(ocr, model, h[0], h[1], h[2], None, m) for h, m in zip(held, maps, strict=True)
    ]


def _detector_input(ocr: Any, model: Any, image: np.ndarray) -> tuple[np.ndarray, dict[str, Any], np.ndarray | None]:
    """A BGR picture as RapidOCR gives it to its detector: the picture resized and padded, its record, the input."""
    from rapidocr.utils.process_img import apply_vertical_padding

    picture, record = ocr.preprocess_img(image)
    if ocr.cfg.Global.use_vertical_padding:
        picture, record = apply_vertical_padding(picture, record, ocr.width_height_ratio, ocr.min_height)
    else:
        record["padding_1"] = {"top": 0, "left": 0}
    return picture, record, model.get_preprocess()(picture)


def _found(
    ocr: Any,
    model: Any,
    image: np.ndarray,
    picture: np.ndarray,
    record: dict[str, Any],
    tensor: np.ndarray | None,
    out: np.ndarray | None = None,
) -> Detected | None:
    """The boxes and crops of one picture from the detector's map (``out``, else the detector run on ``tensor``)."""
    from rapidocr.ch_ppocr_det.utils import TextDetOutput

    if out is None and tensor is not None:
        out = model.session(tensor)
    boxes, scores = model.postprocess_op(out, picture.shape[:2]) if out is not None else ([], [])
    if len(boxes) < 1:
        return None
    det = TextDetOutput(None, model.sorted_boxes(boxes), scores)  # the picture is not kept
    return Detected(shape=image.shape, det=det, crops=ocr.crop_text_regions(picture, det.boxes), record=record)


def _padded_maps(
    session: Callable[[np.ndarray], np.ndarray], tensors: list[np.ndarray | None], pad: int
) -> list[np.ndarray | None]:
    """The detector's output map of each input (None for none), inputs padded to ``pad`` multiples sharing calls."""
    shapes: dict[tuple[int, int], list[int]] = {}
    for i, tensor in enumerate(tensors):
        if tensor is not None:
            h, w = tensor.shape[2:]
            shapes.setdefault((-(-h // pad) * pad, -(-w // pad) * pad), []).append(i)
    maps: list[np.ndarray | None] = [None] * len(tensors)
    for (height, width), members in shapes.items():
        batch = np.zeros((len(members), 3, height, width), np.float32)
        for row, i in enumerate(members):
            h, w = tensors[i].shape[2:]  # type: ignore[union-attr]
            batch[row, :, :h, :w] = tensors[i][0]  # type: ignore[index]
        out = session(batch)
        for row, i in enumerate(members):
            h, w = tensors[i].shape[2:]  # type: ignore[union-attr]
            maps[i] = out[row : row + 1, :, :h, :w]
    return maps


def classify(ocr: Any, crops: list[np.ndarray]) -> list[np.ndarray]:
    """The crops, each turned upright where RapidOCR's angle classifier says it is upside down.

    Each crop is classified alone (resized and padded to the classifier's fixed shape), so
    the crops of many pictures can share calls (``Cls.cls_batch_num`` of them).
    """
    return list(stage(ocr, "Cls")(crops).img_list) if crops else []


@dataclass(frozen=True)
class LineModel:
    """RapidOCR's recogniser, as :class:`specread.ocr.lines.LineReader` drives it."""

    height: int
    """Height every line is resized to (48)."""
    min_width: int
    """Width every line is padded to at least (320): the width the recogniser was trained at."""
    normalise: Callable[[np.ndarray, int], np.ndarray]
    """A crop resized to ``height`` and padded to the given width, as a CHW float32 array."""
    session: Callable[[np.ndarray], np.ndarray]
    """A batch of normalised lines in, per-column class scores out."""
    decode: Callable[[np.ndarray], list[tuple[str, float]]]
    """Class scores in, one (text, score) per line out (CTC)."""


def line_model(ocr: Any) -> LineModel:
    """The recogniser of ``ocr``, its pre-processing and CTC decoding, as a :class:`LineModel`."""
    rec = stage(ocr, "Rec")
    _, height, min_width = rec.rec_image_shape[:3]

    def normalise(crop: np.ndarray, width: int) -> np.ndarray:
        # RapidOCR pads to int(height * ratio); half a pixel over keeps float rounding off it.
        return rec.resize_norm_img(crop, (width + 0.5) / height)

    def decode(scores: np.ndarray) -> list[tuple[str, float]]:
        lines, _ = rec.postprocess_op(scores, False)
        return [(str(text), float(score)) for text, score in lines]

    return LineModel(height, min_width, normalise, lambda batch: rec.session(batch), decode)


def assemble(ocr: Any, found: Detected, lines: list[tuple[str, float]]) -> Any:
    """RapidOCR's result for one picture from its detection and the (text, score) of its lines.

    The same result ``ocr(image)`` builds: boxes mapped back to the picture, empty lines and
    lines under ``text_score`` dropped.
    """
    from rapidocr.ch_ppocr_cls.utils import TextClsOutput
    from rapidocr.ch_ppocr_rec.typings import TextRecOutput

    texts, scores = (tuple(x) for x in zip(*lines, strict=True)) if lines else ((), ())
    read = TextRecOutput(imgs=found.crops, txts=texts, scores=list(scores), word_results=tuple(None for _ in lines))
    # The classifier's output only adds its timing to the result: an empty one stands for it. The
    # result reads the original picture's shape only: a zero-stride stand-in of that shape costs nothing.
    picture = np.broadcast_to(np.zeros((), np.uint8), found.shape)
    return ocr.build_final_output(picture, found.det, TextClsOutput(), read, found.crops, found.record)


def bundled_model(name: str) -> Path:
    """The path of the model file the rapidocr wheel ships for stage ``name``."""
    import rapidocr

    return Path(rapidocr.__file__).parent / "models" / BUNDLED[name]


def openvino_params(threads: int) -> dict[str, object]:
    """RapidOCR settings that load the bundled ONNX files straight into OpenVINO (no onnxruntime copy)."""
    from rapidocr import EngineType

    params: dict[str, object] = {
        "EngineConfig.openvino.inference_num_threads": threads,
        "EngineConfig.openvino.enable_cpu_pinning": False,  # see specread.ocr.openvino.OpenVinoSession
    }
    for name in BUNDLED:
        params[f"{name}.engine_type"] = EngineType.OPENVINO
        params[f"{name}.model_path"] = str(bundled_model(name))
    return params


@cache
def det_preprocess_class() -> type:
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
