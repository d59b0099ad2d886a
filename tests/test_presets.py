"""The OCR presets and the engine settings they use: valid, fingerprinted, and reading the same text."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import rapid_engine
from specread.ocr import openvino
from specread.ocr.internals import det_preprocess_class
from specread.ocr.openvino import keep_output_classes, latin_classes
from specread.ocr.rapid import RapidOcrEngine, RecBatches
from specread.readers import build_reader
from specread.settings import PRESETS, ReaderConfig, preset
from specread.synth import LabelSpec, render_label

# Options that change what the engine reads, with another valid value each.
READING_OPTIONS: dict[str, object] = {
    "det_side": 736,
    "max_side": 1600,
    "use_cls": False,
    "min_score": 0.6,
    "backend": "openvino",
    "rec_batch": 8,
    "rec_width_step": 32,
    "rec_max_columns": 3840,
}


def test_presets_build_engines_with_distinct_fingerprints() -> None:
    engines = {name: RapidOcrEngine(preset(name)) for name in PRESETS}

    assert {"accurate", "fast"} <= engines.keys()
    assert len({e.fingerprint() for e in engines.values()}) == len(engines)
    assert engines["fast"].settings.backend == "openvino"


@pytest.mark.parametrize("option", sorted(READING_OPTIONS))
def test_fingerprint_reflects_every_reading_option(option: str) -> None:
    base = rapid_engine()
    changed = rapid_engine(**{option: READING_OPTIONS[option]})

    assert changed.fingerprint() != base.fingerprint()


def test_fingerprint_names_the_precision_that_really_runs() -> None:
    import openvino as ov

    cpu_has_bf16 = "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    expected = "bf16" if cpu_has_bf16 else "f32"
    f32 = rapid_engine(backend="openvino")
    bf16 = rapid_engine(backend="openvino", precision="bf16")

    assert f32.effective_precision() == "f32" and f32.fingerprint().endswith("-ov-f32")
    assert bf16.effective_precision() == expected
    assert bf16.fingerprint().endswith(f"-ov-{expected}")


@pytest.mark.parametrize(
    ("capabilities", "expected"),
    [(("BF16", "FP32", "INT8"), "bf16"), (("FP32", "INT8"), "f32")],
    ids=["bf16-cpu", "f32-only-cpu"],
)
def test_bf16_runs_only_where_the_cpu_has_it(
    monkeypatch: pytest.MonkeyPatch, capabilities: tuple[str, ...], expected: str
) -> None:
    monkeypatch.setattr(openvino, "openvino_capabilities", lambda: capabilities)

    bf16 = rapid_engine(backend="openvino", precision="bf16")

    assert bf16.effective_precision() == expected
    assert bf16.fingerprint().endswith(f"-ov-{expected}")
    assert rapid_engine(backend="openvino").effective_precision() == "f32"  # f32 asked: f32 on any CPU


def test_latin_charset_is_fingerprinted_and_needs_openvino() -> None:
    full = rapid_engine(backend="openvino")
    latin = rapid_engine(backend="openvino", charset="latin")

    assert latin.fingerprint() != full.fingerprint()
    with pytest.raises(ValueError, match="openvino"):
        rapid_engine(charset="latin")
    with pytest.raises(ValueError, match="charset"):
        rapid_engine(backend="openvino", charset="cyrillic")


def test_latin_classes_keep_blank_latin_units_and_space() -> None:
    chars = ["blank", "a", "中", "μ", "㎏", "½", "Ж", "℮", "克", "Ｇ", "″", " "]

    keep = latin_classes(chars)

    assert [chars[i] for i in keep] == ["blank", "a", "μ", "㎏", "½", "℮", "Ｇ", "″", " "]


def _make_head_model(weights: np.ndarray, bias: np.ndarray):  # -> openvino.Model
    """``softmax(x @ weights + bias)`` over the last axis: the shape of a recogniser's output layer."""
    import openvino as ov
    from openvino import opset13 as ops

    x = ops.parameter([2, 5, weights.shape[0]], np.float32, name="x")
    logits = ops.add(ops.matmul(x, ops.constant(weights), False, False), ops.constant(bias))
    return ov.Model([ops.softmax(logits, -1)], [x], "head")


def test_keep_output_classes_is_softmax_over_the_kept_logits() -> None:
    import openvino as ov

    rng = np.random.default_rng(0)
    weights, bias = rng.normal(size=(4, 7)).astype(np.float32), rng.normal(size=7).astype(np.float32)
    x = rng.normal(size=(2, 5, 4)).astype(np.float32)
    keep = [0, 2, 3, 6]
    model = _make_head_model(weights, bias)

    keep_output_classes(model, keep)
    got = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})([x])[0]

    logits = x @ weights[:, keep] + bias[keep]
    want = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    assert got.shape == (2, 5, 4)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_speed_only_options_keep_the_fingerprint() -> None:
    base = rapid_engine().fingerprint()

    assert rapid_engine(threads=2).fingerprint() == base
    assert rapid_engine(kernel_cache=0).fingerprint() == base


@pytest.mark.parametrize(
    "options",
    [
        {"backend": "tensorrt"},
        {"precision": "bf16"},  # bf16 needs OpenVINO
        {"backend": "openvino", "precision": "int4"},
        {"rec_batch": 0},
        {"rec_width_step": 0},
        {"rec_max_columns": -1},
        {"kernel_cache": -1},
        {"rec_padding": "widest"},
        {"batch_images": 0},
        {"det_pad": -1},
        {"det_pad": 320, "rec_padding": "batch"},
        {"det_side": 16},
        {"det_side": 1200, "max_side": 1000},
    ],
)
def test_invalid_options_are_refused(options: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        rapid_engine(**options)


@pytest.mark.parametrize("shape", [(700, 500, 3), (961, 40, 3), (64, 64, 3), (33, 2000, 3)])
@pytest.mark.parametrize(
    "norm", [(None, None), ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])], ids=["half", "imagenet"]
)
def test_detector_preprocessing_table_gives_rapidocr_bits(
    shape: tuple[int, int, int], norm: tuple[list[float] | None, list[float] | None]
) -> None:
    from rapidocr.ch_ppocr_det.utils import DetPreProcess

    image = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    theirs = DetPreProcess(960, "max", *norm)(image)
    ours = det_preprocess_class()(960, "max", *norm)(image)

    if theirs is None:
        assert ours is None
    else:
        assert ours.dtype == theirs.dtype == np.float32
        np.testing.assert_array_equal(ours, theirs)


class _RecordingSession:
    """Stands in for a recogniser session: one row of 'scores' per 8 pixels of width, per line."""

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []

    def get_character_list(self) -> list[str]:
        return ["a"]

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.shapes.append(batch.shape)
        cols = batch.shape[-1] // 8
        return batch[:, 0, 0, : cols * 8].reshape(len(batch), cols, 8).sum(axis=2, keepdims=True)


def _make_batch(n: int, width: int) -> np.ndarray:
    return np.random.default_rng(n * 1000 + width).random((n, 3, 48, width), dtype=np.float32)


def test_rec_batches_split_wide_batches_without_changing_results() -> None:
    batch = _make_batch(6, 960)
    plain, wrapped = _RecordingSession(), _RecordingSession()

    expected = plain(batch)
    got = RecBatches(wrapped, width_step=1, max_columns=1920)(batch)

    np.testing.assert_array_equal(got, expected)
    assert [s[0] for s in wrapped.shapes] == [2, 2, 2]
    assert RecBatches(wrapped, 1, 0).get_character_list() == ["a"]  # other attributes pass through


def test_rec_batches_pad_width_with_blanks() -> None:
    batch = _make_batch(3, 330)
    session = _RecordingSession()

    out = RecBatches(session, width_step=64, max_columns=0)(batch)

    assert session.shapes == [(3, 3, 48, 384)]
    np.testing.assert_array_equal(out[:, : 330 // 8], _RecordingSession()(batch)[:, : 330 // 8])
    assert not out[:, 384 // 8 - 1].any()  # the padded tail reads as nothing


@pytest.mark.slow
def test_fast_preset_reads_a_label_like_accurate() -> None:
    spec = LabelSpec(("Net Wt. 340 g", "Input 230V", "Organic"), {})
    image = np.asarray(render_label(spec, seed=5))
    entities = ["item_weight", "voltage"]

    read = {
        name: build_reader(ReaderConfig(ocr=preset(name), cache_dir=None)).read(image, entities)
        for name in ("accurate", "fast")
    }

    assert {e: p.text for e, p in read["fast"].predictions.items()} == {
        "item_weight": "340.0 gram",
        "voltage": "230.0 volt",
    }
    assert {e: p.text for e, p in read["accurate"].predictions.items()} == {
        e: p.text for e, p in read["fast"].predictions.items()
    }
