"""specread's settings: one typed, frozen tree, its defaults and presets read from one data file.

``specread/data/settings.toml`` holds every default and named preset; the
dataclasses below read their defaults from it, so a default is written once.
The tree is plain, picklable data: worker processes and Ray actors build
identical readers from it, and an output's job record stores it.

* :class:`OcrSettings`: the OCR engine (detector side, backend, precision...);
  :func:`preset` gives a named one (``accurate``, ``fast``).
* :class:`VlmSettings`: the optional VLM reader.
* :class:`ReaderConfig`: which reader, which scorer, the second pass, the
  priors fallback and the OCR cache, with an :class:`OcrSettings` and a
  :class:`VlmSettings` inside.

Example:
    >>> from specread.settings import ReaderConfig, preset
    >>> config = ReaderConfig(ocr=preset("fast"), retry_side=1600)
    >>> config.ocr.backend, config.ocr.det_side
    ('openvino', 960)
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any

__all__ = ["PRESETS", "OcrSettings", "ReaderConfig", "VlmSettings", "preset"]

_FILE: dict[str, Any] = tomllib.loads((files("specread.data") / "settings.toml").read_text(encoding="utf-8"))
_OCR, _READER, _VLM = _FILE["ocr"], _FILE["reader"], _FILE["vlm"]


@dataclass(frozen=True)
class OcrSettings:
    """How the OCR engine reads (see :class:`specread.ocr.engine.RapidOcrEngine`, which checks the values).

    Attributes:
        engine: engine name (:data:`specread.ocr.engine.ENGINES`).
        det_side: longest side given to the text detector, in pixels.
        max_side: pictures are reduced to this before OCR (and decoded no larger).
        threads: intra-op inference threads per engine.
        use_cls: run the 180-degree orientation classifier.
        min_score: drop lines the recogniser is less sure of.
        backend: ``"onnxruntime"`` or ``"openvino"``.
        precision: ``"f32"``, or ``"bf16"`` (OpenVINO, where the CPU has it).
        rec_batch: text lines per recogniser call.
        rec_width_step: pad recogniser batch widths to a multiple of this.
        rec_max_columns: cap on lines x padded width per recogniser call (0: none).
        charset: ``"all"`` or ``"latin"`` (OpenVINO only).
        kernel_cache: compiled input shapes OpenVINO keeps.
    """

    engine: str = _OCR["engine"]
    det_side: int = _OCR["det_side"]
    max_side: int = _OCR["max_side"]
    threads: int = _OCR["threads"]
    use_cls: bool = _OCR["use_cls"]
    min_score: float = _OCR["min_score"]
    backend: str = _OCR["backend"]
    precision: str = _OCR["precision"]
    rec_batch: int = _OCR["rec_batch"]
    rec_width_step: int = _OCR["rec_width_step"]
    rec_max_columns: int = _OCR["rec_max_columns"]
    charset: str = _OCR["charset"]
    kernel_cache: int = _OCR["kernel_cache"]

    def engine_options(self) -> dict[str, Any]:
        """The engine's keyword arguments (everything but its name)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "engine"}


PRESETS: tuple[str, ...] = tuple(_FILE["presets"])
"""Names of the OCR presets in ``settings.toml``; the first is the default."""


def preset(name: str) -> OcrSettings:
    """The named OCR preset: the ``[ocr]`` defaults with the preset's values over them.

    Raises:
        ValueError: an unknown name (the message lists the valid ones).
    """
    if name not in _FILE["presets"]:
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return OcrSettings(**_FILE["presets"][name])


@dataclass(frozen=True)
class VlmSettings:
    """The VLM reader (``reader="vlm"`` or ``"hybrid"``; the ``vlm`` extra).

    Attributes:
        model: a model folder or hub id ("" for none).
        threshold: hybrid: rows whose OCR confidence is under this go to the VLM.
        batch_size: prompts per ``generate`` call.
        batch_images: images per ``read_many`` call in the batch runner.
        max_new_tokens: answer length cap.
        hints: hybrid: put the OCR candidates in the prompt.
        max_hints: at most this many candidates per entity.
        prompt_template: a template file ({entity}, {units}, {hints}); "" for the model's or the default.
        device: ``"cuda"``, ``"cpu"``...; "" lets the backend choose.
        dtype: torch dtype name; "" lets the backend choose.
        trust_remote_code: allow the model's own code (hub models that need it).
        revision: model revision; "" for the default.
    """

    model: str = _VLM["model"]
    threshold: float = _VLM["threshold"]
    batch_size: int = _VLM["batch_size"]
    batch_images: int = _VLM["batch_images"]
    max_new_tokens: int = _VLM["max_new_tokens"]
    hints: bool = _VLM["hints"]
    max_hints: int = _VLM["max_hints"]
    prompt_template: str = _VLM["prompt_template"]
    device: str = _VLM["device"]
    dtype: str = _VLM["dtype"]
    trust_remote_code: bool = _VLM["trust_remote_code"]
    revision: str = _VLM["revision"]

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.batch_images < 1 or self.max_new_tokens < 1:
            raise ValueError("batch_size, batch_images and max_new_tokens must be at least 1")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be between 0 and 1; got {self.threshold}")


@dataclass(frozen=True)
class ReaderConfig:
    """Everything needed to build a reader, as plain data.

    Attributes:
        reader: ``"ocr"``, or ``"vlm"`` / ``"hybrid"`` (see :mod:`specread.vlm`).
        scorer: ``"ranker"`` (learned) or ``"rules"``.
        ocr: the OCR engine's settings.
        retry_side: when an asked entity gets no candidate from the page, OCR the image
            again with the text detector at this side and answer that entity from the
            second page; 0 never does.
        use_priors_fallback: answer from training-label priors when nothing is read.
        cache_dir: OCR cache folder; ``None`` disables the cache; ``"default"`` uses
            ``$SPECREAD_CACHE`` or the user cache folder.
        vlm: the VLM reader's settings.

    Raises:
        ValueError: a second-pass side not above the first pass's or above ``max_side``.
    """

    reader: str = _READER["reader"]
    scorer: str = _READER["scorer"]
    ocr: OcrSettings = field(default_factory=OcrSettings)
    retry_side: int = _READER["retry_side"]
    use_priors_fallback: bool = _READER["use_priors_fallback"]
    cache_dir: str | None = _READER["cache_dir"]
    vlm: VlmSettings = field(default_factory=VlmSettings)

    def __post_init__(self) -> None:
        if self.retry_side and not self.ocr.det_side < self.retry_side <= self.ocr.max_side:
            raise ValueError(
                f"retry_side must be 0 (off) or a detector side above the first pass's ({self.ocr.det_side}) "
                f"and at most max_side ({self.ocr.max_side}); got {self.retry_side}"
            )
