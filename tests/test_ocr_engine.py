"""The OCR engine's one contact with RapidOCR's internals, and the shapes it must survive."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import rapid_engine
from specread.ocr.internals import stage
from specread.ocr.rapid import MIN_SIDE


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_rapidocr_stages_are_where_the_engine_expects_them(backend: str) -> None:
    engine = rapid_engine(backend=backend)
    ocr = engine.load()
    for name, attribute in (("Det", "text_det"), ("Rec", "text_rec"), ("Cls", "text_cls")):
        loaded = stage(ocr, name)
        assert loaded is getattr(ocr, attribute) and loaded is not None
        assert hasattr(loaded, "session")
    assert stage(ocr, "Det").limit_side_len == engine.settings.det_side


@pytest.mark.slow
@pytest.mark.parametrize("shape", [(1, 1), (1, 2000), (2000, 1), (MIN_SIDE - 1, 900), (3, 3, 4), (40, 40)])
def test_degenerate_arrays_read_as_pages(shape: tuple[int, ...]) -> None:
    image = np.full(shape if len(shape) == 3 else (*shape, 3), 255, np.uint8)
    page = rapid_engine()(image)
    assert (page.height, page.width) == shape[:2] and page.tokens == ()
