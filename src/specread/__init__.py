"""specread: read product specifications off product images, offline on a CPU.

The public API, in the style of scikit-learn and docTR: plain settings in,
a reader out, typed results back.

Example:
    >>> import specread
    >>> config = specread.ReaderConfig(ocr=specread.preset("fast"), cache_dir=None)
    >>> config.ocr.backend
    'openvino'
    >>> reader = specread.build_reader(config)                      # doctest: +SKIP
    >>> reader.read("label.jpg", ["item_weight"]).predictions["item_weight"].text  # doctest: +SKIP
    '500.0 gram'

Names that pull in the OCR stack (:func:`build_reader`, :class:`Reader`) are
loaded on first use, so ``import specread`` stays cheap for the CLI.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from specread.settings import PRESETS, OcrSettings, ReaderConfig, VlmSettings, preset
from specread.types import Prediction, ReadResult
from specread.version import __version__

if TYPE_CHECKING:
    from specread.readers import Reader, available_readers, build_reader

_LAZY = {"Reader": "specread.readers", "build_reader": "specread.readers", "available_readers": "specread.readers"}

__all__ = [
    "PRESETS",
    "OcrSettings",
    "Prediction",
    "ReadResult",
    "Reader",
    "ReaderConfig",
    "VlmSettings",
    "__version__",
    "available_readers",
    "build_reader",
    "preset",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'specread' has no attribute {name!r}")
