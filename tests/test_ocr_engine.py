"""The OCR engine: its whole protocol, built from settings alone, one contact with RapidOCR's internals, odd shapes."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import FakeEngine, rapid_engine
from specread.ocr.engine import OcrEngine, build_engine
from specread.ocr.internals import stage
from specread.ocr.rapid import MIN_SIDE, RapidOcrEngine
from specread.pipeline import PageSource, build_pages
from specread.settings import PRESETS, ReaderConfig, preset
from specread.types import OcrPage

ROOT = Path(__file__).resolve().parents[1]

RAPIDOCR_INTERNALS = {
    "text_det",
    "text_rec",
    "text_cls",
    "_load_det_model",
    "_load_rec_model",
    "_load_cls_model",
    "postprocess_op",
    "limit_side_len",
    "get_preprocess",
    "preprocess_img",
    "detect_and_crop",
    "build_final_output",
    "rec_image_shape",
    "resize_norm_img",
}
"""Attributes of RapidOCR's objects that are not its documented interface (its ``params`` keys are)."""


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_builds_an_engine_with_the_whole_protocol(name: str) -> None:
    settings = preset(name)
    engine = build_engine(settings)
    finer = engine.at_det_side(1280)

    assert isinstance(engine, RapidOcrEngine) and engine.settings is settings
    assert isinstance(engine, OcrEngine) and isinstance(finer, OcrEngine)
    assert engine.max_side == finer.max_side == settings.max_side
    assert finer.settings == dataclasses.replace(settings, det_side=1280)
    assert engine.settings.det_side == settings.det_side  # the view leaves the first pass alone


def test_engines_take_settings_and_keep_no_defaults_of_their_own() -> None:
    (parameter,) = inspect.signature(RapidOcrEngine).parameters.values()

    assert parameter.name == "settings" and parameter.default is inspect.Parameter.empty


def test_an_unknown_engine_name_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown OCR engine 'tesseract'; choose one of: rapidocr"):
        build_engine(dataclasses.replace(preset("fast"), engine="tesseract"))


def test_a_second_pass_comes_from_the_protocol(tmp_path: Path) -> None:
    engine = FakeEngine()

    first, finer = build_pages(ReaderConfig(cache_dir=str(tmp_path), retry_side=1280), engine=engine)

    assert first.engine is engine and finer is not None
    assert isinstance(finer.engine, OcrEngine) and finer.engine.fingerprint() == "fake-det1280-v1"
    assert finer.cache is not None and finer.cache.root == tmp_path / "fake-det1280-v1"


class _Sizing(FakeEngine):
    """A fake engine that reads at most ``max_side`` pixels and keeps the shapes it was given."""

    def __init__(self, max_side: int | None) -> None:
        super().__init__()
        self.max_side = max_side  # type: ignore[assignment]
        self.shapes: list[tuple[int, ...]] = []

    def __call__(self, image: np.ndarray) -> OcrPage:
        self.shapes.append(image.shape[:2])
        return super().__call__(image)


def test_pictures_are_decoded_no_larger_than_the_engine_reads() -> None:
    """A picture at least twice the engine's ``max_side`` is reduced while decoded, never below it."""
    buf = io.BytesIO()
    Image.new("RGB", (200, 100), "white").save(buf, "PNG")
    limited, unlimited = _Sizing(64), _Sizing(None)

    PageSource(limited)(buf.getvalue())
    PageSource(unlimited)(buf.getvalue())

    (shape,) = limited.shapes
    assert 64 <= max(shape) < 200
    assert unlimited.shapes == [(100, 200)]


def test_only_internals_touches_rapidocr_internals() -> None:
    """Every attribute of RapidOCR's objects outside its documented ``params`` is reached in one module."""
    files = [*(ROOT / "src" / "specread").rglob("*.py"), *(ROOT / "benchmarks").glob("*.py")]
    files += (ROOT / "scripts").glob("*.py")
    touching = {
        path.relative_to(ROOT).as_posix()
        for path in files
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Attribute) and node.attr in RAPIDOCR_INTERNALS
    }

    assert touching == {"src/specread/ocr/internals.py"}


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
