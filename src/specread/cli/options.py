"""Options several commands share, their defaults read from :mod:`specread.settings`.

Each option is an ``Annotated`` type (name, flags, help); a command declares
``preset: PresetOpt = DEFAULT_PRESET``. Defaults are never retyped here: they
come from the settings tree, so ``settings.toml`` changes them everywhere.
:class:`ReaderOptions` holds a command's reader options, typed, and turns them into one
:class:`~specread.settings.ReaderConfig`, checked before any work starts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from specread.hardware import default_workers
from specread.ocr.devices import DEVICES
from specread.rank.model import MODEL_ENV
from specread.settings import PRESETS, OcrSettings, ReaderConfig, VlmSettings
from specread.settings import preset as ocr_preset

__all__ = [
    "DEFAULT_PRESET",
    "DEFAULT_READER",
    "DEFAULT_VLM",
    "DEFAULT_WORKERS",
    "RUNNERS",
    "WORKERS_ENV",
    "CacheDirOpt",
    "DeviceOpt",
    "ImagesOpt",
    "JsonOpt",
    "MinConfidenceOpt",
    "MinPrecisionOpt",
    "ModelOpt",
    "NoCacheOpt",
    "PresetOpt",
    "PromptTemplateOpt",
    "ReaderOpt",
    "ReaderOptions",
    "RetrySideOpt",
    "ScorerOpt",
    "SeedOpt",
    "VerboseOpt",
    "VlmBatchSizeOpt",
    "VlmModelOpt",
    "VlmThresholdOpt",
    "WorkersOpt",
    "check_choice",
    "ocr_settings",
]

DEFAULT_READER = ReaderConfig()
DEFAULT_VLM = DEFAULT_READER.vlm
DEFAULT_PRESET = PRESETS[0]
DEFAULT_WORKERS = default_workers()
"""One worker process per core this process may use (affinity, cgroup quota), fewer if memory is short."""
RUNNERS = ("local", "ray")
"""Where ``predict`` runs: a local process pool, or Ray."""

ImagesOpt = Annotated[
    Path, typer.Option("--images", help="Folder of the images, named by the file name of image_link.")
]
WORKERS_ENV = "SPECREAD_WORKERS"
WorkersOpt = Annotated[
    int,
    typer.Option(
        "--workers",
        "-w",
        min=1,
        envvar=WORKERS_ENV,
        show_envvar=True,
        help="Worker processes reading images (default: the cores this process may use, fewer if memory is short).",
    ),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed (the same seed gives the same result).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")]

# -- the reader (ReaderConfig) --------------------------------------------------------------
ScorerOpt = Annotated[str, typer.Option("--scorer", help="Candidate selection: ranker (learned) or rules.")]
PresetOpt = Annotated[str, typer.Option("--preset", help=f"OCR speed/accuracy preset: {', '.join(PRESETS)}.")]
RetrySideOpt = Annotated[
    int,
    typer.Option(
        "--retry-side",
        min=0,
        help="OCR an image again with the detector at this side when an entity finds no value (0: off).",
    ),
]
DeviceOpt = Annotated[
    str,
    typer.Option(
        "--device", help=f"Where OCR runs: {', '.join(DEVICES)} (auto: CUDA when onnxruntime-gpu has it, else CPU)."
    ),
]
CacheDirOpt = Annotated[
    str | None,
    typer.Option("--cache-dir", help="OCR cache folder (default: $SPECREAD_CACHE or the user cache folder)."),
]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Do not read or write the OCR cache.")]
ReaderOpt = Annotated[str, typer.Option("--reader", help="ocr, vlm or hybrid (OCR first, VLM when unsure).")]
ModelOpt = Annotated[
    str,
    typer.Option(
        "--model",
        envvar=MODEL_ENV,
        show_envvar=True,
        help="Model folder written by `specread train` (ranker and priors; default: the packaged model).",
    ),
]

MinPrecisionOpt = Annotated[
    float,
    typer.Option(
        "--min-precision",
        min=0.0,
        max=0.999,
        help="Answer only where the model's held-out precision reached this, per entity (e.g. 0.95); "
        "other rows are left blank, and an entity that never reached it entirely (0: answer every row).",
    ),
]
MinConfidenceOpt = Annotated[
    float,
    typer.Option(
        "--min-confidence",
        min=0.0,
        max=0.999,
        help="Answer only rows at this confidence or above, whatever the entity (0: answer every row).",
    ),
]

# -- the VLM reader (VlmSettings) -----------------------------------------------------------
VlmModelOpt = Annotated[str, typer.Option("--vlm-model", help="VLM weights folder or id (vlm/hybrid).")]
VlmThresholdOpt = Annotated[
    float, typer.Option("--vlm-threshold", help="hybrid: rows under this OCR confidence go to the VLM.")
]
VlmBatchSizeOpt = Annotated[int, typer.Option("--vlm-batch-size", min=1, help="Prompts per VLM generate call.")]
PromptTemplateOpt = Annotated[
    Path | None, typer.Option("--prompt-template", help="VLM prompt template file ({entity}, {units}, {hints}).")
]


def check_choice(name: str, value: str, valid: Collection[str]) -> None:
    """Refuse ``value`` outside ``valid``, listing the valid names.

    Raises:
        ValueError: an unknown name (the CLI reports it as a usage error, exit 2).
    """
    if value not in valid:
        raise ValueError(f"unknown {name} {value!r}; choose one of: {', '.join(sorted(valid))}")


def ocr_settings(
    preset: str = DEFAULT_PRESET, device: str = DEFAULT_READER.ocr.device, check_device: bool = True
) -> OcrSettings:
    """The OCR settings of ``--preset`` on ``--device``; with ``check_device`` the device is checked
    now, so ``--device cuda`` without a GPU fails before any image is read.

    Raises:
        ValueError: an unknown preset, or device (with ``check_device``): a usage error, exit 2.
        DeviceUnavailableError: ``device="cuda"`` without onnxruntime's CUDA provider (exit 2).
    """
    settings = dataclasses.replace(ocr_preset(preset), device=device)
    if check_device:
        from specread.ocr.devices import resolve_device

        resolve_device(device)
    return settings


@dataclass(frozen=True)
class ReaderOptions:
    """A command's reader options, typed: :meth:`config` turns them into one checked :class:`ReaderConfig`.

    A command passes the options it declares by name (``ReaderOptions(preset=preset, ...)``);
    the others keep the settings tree's defaults. ``cache_dir`` wins over ``default_cache`` (the
    command's default: the user cache folder, or none for the service); ``no_cache`` turns the
    cache off.
    """

    preset: str = DEFAULT_PRESET
    device: str = DEFAULT_READER.ocr.device
    retry_side: int = DEFAULT_READER.retry_side
    cache_dir: str | None = None
    no_cache: bool = False
    default_cache: str | None = DEFAULT_READER.cache_dir
    scorer: str = DEFAULT_READER.scorer
    reader: str = DEFAULT_READER.reader
    model: str = DEFAULT_READER.model
    min_precision: float = DEFAULT_READER.min_precision
    min_confidence: float = DEFAULT_READER.min_confidence
    vlm_model: str = DEFAULT_VLM.model
    vlm_threshold: float = DEFAULT_VLM.threshold
    vlm_batch_size: int = DEFAULT_VLM.batch_size
    prompt_template: Path | None = None

    def config(self) -> ReaderConfig:
        """The :class:`ReaderConfig` these options describe: the one place the CLI builds one.

        Names are checked here, before a command reads any file, so a typo costs nothing; so is
        the model folder (``model``, from ``--model`` or ``$SPECREAD_MODEL``): one trained on
        pages read otherwise is refused here.

        Raises:
            ValueError: an unknown scorer, preset, device or reader, a VLM reader without ``vlm_model``, or
                settings the tree refuses (``retry_side`` out of range...): a usage error, exit 2.
            ModelMismatchError: a model folder that is missing, garbled or trained otherwise, or one
                without a calibration under ``min_precision`` (exit 2).
            DeviceUnavailableError: ``device="cuda"`` without onnxruntime's CUDA provider (exit 2).
        """
        from specread.pipeline import SCORERS, answer_thresholds, reader_model
        from specread.readers import available_readers

        check_choice("scorer", self.scorer, SCORERS)
        check_choice("reader", self.reader, available_readers())
        if self.reader != "ocr" and not self.vlm_model:
            raise ValueError(f"--reader {self.reader} needs --vlm-model PATH_OR_ID")
        config = ReaderConfig(
            reader=self.reader,
            scorer=self.scorer,
            # the VLM alone reads no OCR page, so it needs no OCR device
            ocr=ocr_settings(self.preset, self.device, check_device=self.reader != "vlm"),
            retry_side=self.retry_side,
            cache_dir=None if self.no_cache else (self.cache_dir or self.default_cache),
            model=self.model,
            min_precision=self.min_precision,
            min_confidence=self.min_confidence,
            vlm=VlmSettings(
                model=self.vlm_model,
                threshold=self.vlm_threshold,
                batch_size=self.vlm_batch_size,
                prompt_template=str(self.prompt_template or DEFAULT_VLM.prompt_template),
            ),
        )
        if self.reader != "vlm":
            answer_thresholds(config, reader_model(config))
        return config
