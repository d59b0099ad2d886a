"""pipeline.py: the reader's stage wiring and its checks at the edges."""

from __future__ import annotations

import random

import numpy as np
import pytest

from conftest import FakeEngine, rapid_engine
from specread.errors import UnknownEntityError
from specread.extract.priors import load_priors
from specread.pipeline import PageSource, SpecReader
from specread.rank.rules import RuleScorer
from specread.rank.select import Selector
from specread.readers import build_reader
from specread.settings import ReaderConfig, preset
from specread.types import OcrPage


def _rules(engine: FakeEngine | None = None, retry: FakeEngine | None = None) -> SpecReader:
    """A rules reader built from its stages, as :func:`build_ocr_reader` builds one."""
    return SpecReader(PageSource(engine), Selector(RuleScorer(), load_priors()), retry=retry and PageSource(retry))


def test_unknown_entity_fails_before_any_image_work() -> None:
    engine = FakeEngine()
    reader = _rules(engine)
    # Bytes that are no image: an OCR-first reader would raise ImageLoadError instead.
    with pytest.raises(UnknownEntityError, match="colour"):
        reader.read(b"not an image", ["colour"])
    assert engine.calls == 0


def test_empty_page_answers_from_priors_or_blank() -> None:
    page = OcrPage((), 100, 100)
    pred = Selector(RuleScorer(), load_priors()).select(page, ["item_weight"]).predictions["item_weight"]
    assert pred.source == "prior" and pred.text.endswith(" gram") and pred.confidence < 0.1
    blank = Selector(RuleScorer(), load_priors(), use_priors_fallback=False)
    assert blank.select(page, ["item_weight"]).predictions["item_weight"].text == ""


def test_build_reader_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="ranker"):
        build_reader(ReaderConfig(scorer="magic", cache_dir=None))
    with pytest.raises(ValueError, match="hybrid"):
        build_reader(ReaderConfig(reader="oracle", cache_dir=None))


def test_default_reader_uses_the_shipped_ranker() -> None:
    reader = build_reader(ReaderConfig(cache_dir=None))
    assert reader.selector.scorer.name == "ranker"


IMAGE = np.zeros((8, 8, 3), dtype=np.uint8)


def _engine(*lines: str) -> FakeEngine:
    """An engine that reads IMAGE as ``lines``."""
    engine = FakeEngine()
    engine.register(IMAGE, lines)
    return engine


FIRST = ("Net Wt 500 g",)
FINER = ("Net Wt 500 g", "Input 12V DC")


def test_second_pass_answers_only_the_entities_the_first_page_missed() -> None:
    finer = _engine(*FINER)
    reader = _rules(_engine(*FIRST), retry=finer)
    preds = reader.read(IMAGE, ["item_weight", "voltage"]).predictions
    assert (preds["item_weight"].value, preds["item_weight"].unit) == (500, "gram")
    assert (preds["voltage"].value, preds["voltage"].unit, preds["voltage"].source) == (12, "volt", "rules")
    assert finer.calls == 1


def test_no_second_pass_when_every_entity_has_a_candidate() -> None:
    finer = _engine(*FINER)
    reader = _rules(_engine(*FIRST), retry=finer)
    reader.read(IMAGE, ["item_weight"])
    assert finer.calls == 0


def test_second_pass_that_reads_nothing_new_keeps_the_prior_answer() -> None:
    reader = _rules(_engine(*FIRST), retry=_engine(*FIRST))
    assert reader.read(IMAGE, ["wattage"]).predictions["wattage"].source == "prior"


@pytest.mark.slow
def test_retry_side_is_checked_and_shares_the_first_engine(tmp_path) -> None:
    accurate = preset("accurate")
    with pytest.raises(ValueError, match="retry_side"):
        build_reader(ReaderConfig(cache_dir=None, ocr=accurate, retry_side=800))
    with pytest.raises(ValueError, match="max_side"):
        build_reader(ReaderConfig(cache_dir=None, ocr=accurate, retry_side=4000))
    reader = build_reader(ReaderConfig(cache_dir=str(tmp_path), ocr=accurate, retry_side=1600))
    assert reader.retry is not None and reader.retry.engine.settings.det_side == 1600
    assert reader.retry.engine.load() is reader.pages.engine.load()  # one set of models
    assert reader.retry.cache.root != reader.pages.cache.root  # pages of each pass cached apart


@pytest.mark.slow
def test_finer_view_reads_like_a_separate_engine_and_leaves_the_first_alone() -> None:
    from specread.synth import random_spec, render_label

    image = np.asarray(render_label(random_spec(random.Random(5), n_values=3), size=(1800, 1350)).convert("RGB"))
    first = rapid_engine()
    before = first(image)
    view = first.at_det_side(1600)
    assert view(image) == rapid_engine(det_side=1600)(image)
    assert view.fingerprint() == rapid_engine(det_side=1600).fingerprint() != first.fingerprint()
    assert first(image) == before


def test_a_loaded_model_is_passed_along_not_loaded_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """build_reader uses the model folder it is handed: the reader's selector is that model's, nothing reloads it."""
    import specread.pipeline
    from specread.rank.model import load_model

    model = load_model()

    def refuse(config: ReaderConfig) -> None:
        raise AssertionError("the model folder was loaded again")

    monkeypatch.setattr(specread.pipeline, "reader_model", refuse)
    reader = build_reader(ReaderConfig(cache_dir=None), engine=_engine(*FIRST), model=model)
    assert reader.selector.scorer is model.ranker and reader.selector.priors is model.priors
    assert reader.read(IMAGE, ["item_weight"]).predictions["item_weight"].text == "500.0 gram"
    with pytest.raises(ValueError, match="only be given to the 'ocr' reader"):
        build_reader(ReaderConfig(reader="vlm", cache_dir=None), model=model)
