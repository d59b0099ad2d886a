"""VLM and hybrid readers with scripted backends: prompts, parsing, thresholds, hints and the runner."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from PIL import Image

from conftest import FakeEngine, TinyDataset, build_tiny_dataset, make_reader
from specread.batch.local import predict_csv
from specread.errors import ImageLoadError, UnknownEntityError
from specread.io.dataset import read_gold, read_predictions
from specread.metrics import score_rows
from specread.readers import build_reader
from specread.settings import ReaderConfig, VlmSettings
from specread.units.registry import get_registry
from specread.vlm.base import Generation, TrainableVlmBackend, VlmBackend
from specread.vlm.prompt import PromptTemplate
from specread.vlm.reader import HybridReader, VlmReader, build_vlm_reader, template_for


class _ScriptedBackend:
    """Answers by entity name found in the prompt; records every call."""

    def __init__(self, answers: dict[str, str], confidence: float = 0.9) -> None:
        self.answers = answers
        self.confidence = confidence
        self.calls: list[tuple[int, list[str]]] = []

    def generate(self, images: Sequence[Image.Image], prompts: Sequence[str], max_new_tokens: int = 24):
        assert len(images) == len(prompts)
        assert all(isinstance(im, Image.Image) for im in images)
        self.calls.append((len(prompts), list(prompts)))
        out = []
        for p in prompts:
            entity = next(e for e in sorted(self.answers, key=len, reverse=True) if e.replace("_", " ") in p)
            out.append(Generation(self.answers[entity], self.confidence))
        return out


def _make_image(path: Path) -> Path:
    Image.new("RGB", (40, 30), (250, 240, 230)).save(path)
    return path


def test_a_generate_method_is_all_a_reader_backend_needs() -> None:
    """The scripted stand-in is a ``VlmBackend`` (the reader's type) but cannot be fine-tuned."""
    backend = _ScriptedBackend({"depth": "4 inch"})
    assert isinstance(backend, VlmBackend) and not isinstance(backend, TrainableVlmBackend)
    assert not isinstance(object(), VlmBackend)


def test_vlm_reader_parses_answers_into_valid_predictions(tmp_path: Path) -> None:
    backend = _ScriptedBackend(
        {"item_weight": "500 grams", "voltage": "blank", "wattage": "12 volt", "item_volume": "16 oz"}
    )
    reader = VlmReader(backend, batch_size=3)
    result = reader.read(_make_image(tmp_path / "a.png"), ["item_weight", "voltage", "wattage", "item_volume"])
    preds = result.predictions
    assert preds["item_weight"].text == "500.0 gram"
    assert preds["item_volume"].text == "16.0 fluid ounce"
    assert preds["voltage"].text == "" and preds["wattage"].text == ""  # blank and a unit wattage cannot have
    assert all(p.source == "vlm" for p in preds.values())
    assert [n for n, _ in backend.calls] == [3, 1]  # batched by batch_size
    assert (result.page.width, result.page.height) == (40, 30)
    for entity, pred in preds.items():
        if pred.unit:
            assert pred.unit in get_registry().allowed(entity)


def test_vlm_reader_batches_across_images_and_accepts_every_input_kind(tmp_path: Path) -> None:
    import numpy as np

    backend = _ScriptedBackend({"depth": "4 inch", "width": "25 cm"})
    reader = VlmReader(backend, batch_size=8)
    path = _make_image(tmp_path / "a.png")
    items = [(path, ["depth"]), (path.read_bytes(), ["width", "depth"]), (np.zeros((8, 9, 3), np.uint8), ["width"])]
    results = reader.read_many(items)
    assert [n for n, _ in backend.calls] == [4]
    assert results[1].predictions["width"].text == "25.0 centimetre"
    assert results[2].page.width == 9


def test_vlm_reader_errors() -> None:
    reader = VlmReader(_ScriptedBackend({}))
    with pytest.raises(ImageLoadError):
        reader.read("/nonexistent/image.png", ["depth"])
    with pytest.raises(UnknownEntityError):
        reader.read(Image.new("RGB", (4, 4)), ["colour"])
    with pytest.raises(ValueError):
        VlmReader(_ScriptedBackend({}), batch_size=0)


def test_hybrid_keeps_sure_ocr_answers_and_asks_the_vlm_with_hints(tmp_path: Path) -> None:
    engine = FakeEngine()
    image = Image.new("RGB", (64, 48), (240, 240, 240))
    image.save(tmp_path / "p.png")
    engine.register(image, ["Net Wt 500 g", "Input 230V 50Hz", "Output 12V 24V"])
    ocr = make_reader(engine)
    first = ocr.read(tmp_path / "p.png", ["item_weight", "voltage"])
    sure, unsure = first.predictions["item_weight"].confidence, first.predictions["voltage"].confidence
    threshold = (sure + unsure) / 2
    assert unsure < threshold < sure, "the fake page must give one sure and one unsure entity"
    backend = _ScriptedBackend({"voltage": "230 volt", "item_weight": "1 kilogram"})
    hybrid = HybridReader(ocr, VlmReader(backend), threshold=threshold)
    result = hybrid.read(tmp_path / "p.png", ["item_weight", "voltage"])
    assert result.predictions["item_weight"] == first.predictions["item_weight"]  # sure: OCR kept
    assert result.predictions["voltage"].text == "230.0 volt" and result.predictions["voltage"].source == "vlm"
    (n, prompts) = backend.calls[0]
    assert n == 1 and "OCR suggests:" in prompts[0] and "volt" in prompts[0].split("suggests:")[1]
    assert engine.calls == 2  # one OCR pass by this test, one by the hybrid reader


def test_hybrid_keeps_ocr_when_the_vlm_says_blank(tmp_path: Path) -> None:
    engine = FakeEngine()
    image = Image.new("RGB", (64, 48), (200, 240, 240))
    engine.register(image, ["Output 12V 24V"])
    ocr = make_reader(engine)
    hybrid = HybridReader(ocr, VlmReader(_ScriptedBackend({"voltage": "blank"})), threshold=1.01, hints=False)
    result = hybrid.read(image, ["voltage"])
    assert result.predictions["voltage"].source != "vlm" and result.predictions["voltage"].text


def test_vlm_reader_runs_under_the_local_runner_unchanged(tmp_path: Path) -> None:
    ds: TinyDataset = build_tiny_dataset(tmp_path / "d", FakeEngine())
    gold, entities = read_gold(ds.gold_csv)
    truth = {e: g for (_, _, e, g) in ds.rows if g}  # one answer per entity in this dataset
    reader = VlmReader(_ScriptedBackend({e: (v or "blank") for e, v in truth.items()} | {"item_weight": "500 g"}))
    stats = predict_csv(ds.input_csv, ds.images, tmp_path / "out.csv", reader=reader)
    assert stats.rows == len(ds.rows) and stats.failed_images == 0
    preds = read_predictions(tmp_path / "out.csv")
    assert score_rows(preds, gold, entities).overall.tp == sum(1 for g in gold.values() if g)


def test_build_vlm_reader_needs_a_model() -> None:
    with pytest.raises(ValueError, match="needs a model"):
        build_vlm_reader(ReaderConfig(reader="vlm"))
    with pytest.raises(ValueError, match="needs a model"):
        build_reader(ReaderConfig(reader="hybrid", vlm=VlmSettings(threshold=0.3)))


def test_template_for_prefers_option_then_model_card(tmp_path: Path) -> None:
    (tmp_path / "specread_vlm.json").write_text('{"template": "Read {entity}."}', encoding="utf-8")
    assert template_for(tmp_path, VlmSettings()).render("depth") == "Read depth."
    custom = tmp_path / "t.txt"
    custom.write_text("What {entity}?", encoding="utf-8")
    assert template_for(tmp_path, VlmSettings(prompt_template=str(custom))).render("depth") == "What depth?"
    assert template_for(tmp_path / "elsewhere", VlmSettings()) == PromptTemplate()
