"""Text lines read each at its own width: the call plan, and pages that do not depend on their company."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from conftest import rapid_engine
from specread.ocr.internals import LineModel
from specread.ocr.lines import LineReader, line_width
from specread.pipeline import build_ocr_reader
from specread.settings import ReaderConfig
from specread.synth import random_spec, render_label

HEIGHT, MIN_WIDTH = 48, 320


@given(st.integers(1, 400), st.integers(1, 5000), st.sampled_from([1, 8, 64]))
def test_line_width_covers_the_resized_line_on_the_step(h: int, w: int, step: int) -> None:
    width = line_width((h, w, 3), HEIGHT, MIN_WIDTH, step)
    resized = -(-HEIGHT * w // h)
    assert width >= max(resized, MIN_WIDTH)
    assert width == MIN_WIDTH or (width % step == 0 and width - resized < step)


def _fake_model(log: list[tuple[int, ...]]) -> LineModel:
    """A recogniser whose reading of a line depends on that line's pixels and its width only."""

    def normalise(crop: np.ndarray, width: int) -> np.ndarray:
        out = np.zeros((3, HEIGHT, width), np.float32)
        out[:, :, : min(width, crop.shape[1])] = crop[0, : min(width, crop.shape[1]), 0]
        return out

    def session(batch: np.ndarray) -> np.ndarray:
        log.append(batch.shape)
        return batch[:, :1, :1, :].sum(axis=-1)  # (N, 1, 1): one "score" per line

    def decode(scores: np.ndarray) -> list[tuple[str, float]]:
        return [(f"{float(s):.1f}", 1.0) for s in scores[:, 0, 0]]

    return LineModel(HEIGHT, MIN_WIDTH, normalise, session, decode)


@given(st.lists(st.integers(1, 3000), min_size=1, max_size=40), st.integers(1, 16), st.sampled_from([0, 1920, 3840]))
def test_every_line_is_read_once_with_lines_of_its_width_within_the_limits(
    widths: list[int], batch: int, max_columns: int
) -> None:
    reader = LineReader(_fake_model([]), batch, 64, max_columns)
    crops = [np.ones((HEIGHT, w, 3), np.uint8) for w in widths]
    plan = reader.calls(crops)
    assert sorted(i for _, indices in plan for i in indices) == list(range(len(crops)))
    for width, indices in plan:
        assert {line_width(crops[i].shape, HEIGHT, MIN_WIDTH, 64) for i in indices} == {width}
        assert len(indices) <= batch
        assert len(indices) == 1 or not max_columns or len(indices) * width <= max_columns


def test_lines_read_together_read_as_they_do_alone() -> None:
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 255, (HEIGHT, int(w), 3), dtype=np.uint8) for w in rng.integers(20, 1500, 30)]
    calls: list[tuple[int, ...]] = []
    together = LineReader(_fake_model(calls), 12, 64, 3840)(crops)
    alone = [LineReader(_fake_model([]), 12, 64, 3840)([crop])[0] for crop in crops]
    assert together == alone
    assert len(calls) < len(crops)  # they did share calls


def test_reader_refuses_impossible_limits() -> None:
    with pytest.raises(ValueError, match="batch and width_step"):
        LineReader(_fake_model([]), 0, 64, 0)


@pytest.mark.slow
@pytest.mark.parametrize("det_pad", [0, 320])
def test_rapidocr_pages_read_together_equal_pages_read_alone(det_pad: int) -> None:
    """The real models, batching images (and, padded, their detector inputs): each page as when read alone."""
    rng = random.Random(3)
    sizes = [(640, 480), (640, 480), (600, 420), (800, 300)]  # two alike: one detector call with det_pad 0 too
    images = [np.asarray(render_label(random_spec(rng, n_values=3), size, seed=i)) for i, size in enumerate(sizes)]
    images.append(np.full((40, 40, 3), 255, np.uint8))  # no text: a page with no tokens among the others
    engine = rapid_engine("fast", det_pad=det_pad)
    assert engine.settings.rec_padding == "line"
    together = engine.read_many(images)
    alone = [engine(image) for image in images]
    assert together == alone
    assert sum(len(page.tokens) for page in together) >= 8
    assert together[-1].tokens == ()


@pytest.mark.slow
def test_a_reader_answers_a_batch_as_it_answers_each_image(tmp_path: Path) -> None:
    """read_many (pages and second passes read together) gives what read gives image by image."""
    rng = random.Random(5)
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"label{i}.png")
        render_label(random_spec(rng, n_values=2), seed=i).save(paths[-1])
    blank = tmp_path / "blank.png"  # nothing read: its entities go to the second pass
    Image.new("RGB", (300, 200), "white").save(blank)
    reader = build_ocr_reader(ReaderConfig(cache_dir=None, retry_side=1280))
    items = [(p, ["item_weight", "width", "height"], None) for p in [*paths, blank]]
    items.append((paths[0], ["voltage"], "g1"))  # the same image asked again, in another group

    together = reader.read_many(items)
    alone = [reader.read(image, entities, group) for image, entities, group in items]
    assert [r.predictions for r in together] == [r.predictions for r in alone]
    assert [r.candidates for r in together] == [r.candidates for r in alone]
