"""pipeline.py: the reader's stage wiring and its checks at the edges."""

from __future__ import annotations

import pytest

from specread.errors import UnknownEntityError
from specread.pipeline import ReaderConfig, SpecReader, build_reader
from specread.rank.priors import load_priors
from specread.rank.rules import RuleScorer
from specread.types import OcrPage


def test_unknown_entity_fails_before_any_image_work() -> None:
    reader = SpecReader(None, RuleScorer(), load_priors())
    # Bytes that are no image: an OCR-first reader would raise ImageLoadError instead.
    with pytest.raises(UnknownEntityError, match="colour"):
        reader.read(b"not an image", ["colour"])


def test_empty_page_answers_from_priors_or_blank() -> None:
    page = OcrPage((), 100, 100)
    with_priors = SpecReader(None, RuleScorer(), load_priors())
    pred = with_priors.read_page(page, ["item_weight"])[0]["item_weight"]
    assert pred.source == "prior" and pred.text.endswith(" gram") and pred.confidence < 0.1
    blank = SpecReader(None, RuleScorer(), load_priors(), use_priors_fallback=False)
    assert blank.read_page(page, ["item_weight"])[0]["item_weight"].text == ""


def test_build_reader_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="ranker"):
        build_reader(ReaderConfig(scorer="magic", cache_dir=None))
    with pytest.raises(ValueError, match="hybrid"):
        build_reader(ReaderConfig(reader="oracle", cache_dir=None))


def test_default_reader_uses_the_shipped_ranker() -> None:
    reader = build_reader(ReaderConfig(cache_dir=None))
    assert reader.scorer.name == "ranker"
