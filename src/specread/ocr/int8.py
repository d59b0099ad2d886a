"""Where the packaged INT8 models are, and the digest that keys the pages read with them.

``precision="int8"`` swaps in INT8 copies of the detector and recogniser (made by
``scripts/quantize_ocr.py``, post-training quantization calibrated on real product photos),
which every x86 CPU runs in integer arithmetic, natively with VNNI or AMX: no bfloat16
hardware needed. A regenerated model reads differently, so its digest is part of the
OCR cache key.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

__all__ = ["INT8_MODELS", "int8_model", "int8_models_digest"]

INT8_MODELS = {"Det": "det_int8.xml", "Rec": "rec_int8_latin.xml"}
"""The INT8 models ``scripts/quantize_ocr.py`` writes into ``specread/data/ocr/`` (OpenVINO IR).

The angle classifier (3 % of the time) stays float. The recogniser's output layer is
already cut to :func:`specread.ocr.openvino.latin_classes`, which is why ``int8`` needs
``charset="latin"``.
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
