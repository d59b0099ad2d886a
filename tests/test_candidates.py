"""extract/: OCR pages -> mentions -> per-entity candidates and features (constructed pages, no OCR)."""

from __future__ import annotations

import pytest

from conftest import FakeEngine, make_page, make_reader, make_token
from specread.errors import UnknownEntityError
from specread.extract import candidates_for, find_mentions
from specread.extract.features import FEATURE_NAMES, page_candidates, to_matrix
from specread.extract.priors import load_priors
from specread.types import OcrPage


def _cands(page: OcrPage, entity: str) -> list:
    return page_candidates(page, find_mentions(page), entity, load_priors())


def _values(cands: list) -> list[tuple[float, str]]:
    return [(c.quantity.value, c.quantity.unit) for c in cands]


def test_number_and_unit_split_across_neighbouring_boxes() -> None:
    page = make_page([("500", "ml")])
    mentions = find_mentions(page)
    assert [(m.quantity.value, m.quantity.unit, m.joined) for m in mentions] == [(500.0, "millilitre", True)]
    (cand,) = candidates_for("item_volume", mentions)
    assert (cand.quantity.value, cand.quantity.unit) == (500.0, "millilitre")
    assert cand.text == "500 ml"
    assert cand.token_index == 0
    # The evidence box covers both boxes.
    assert cand.box[0] == page.tokens[0].box[0] and cand.box[2] == page.tokens[1].box[2]
    (featured,) = _cands(page, "item_volume")
    assert featured.features["joined"] == 1.0


def test_unit_on_the_line_below_joins() -> None:
    page = OcrPage(
        tokens=(make_token("1.5", 0.1, 0.1, width=0.1), make_token("kg", 0.1, 0.17, width=0.1)), width=100, height=100
    )
    assert _values(candidates_for("item_weight", find_mentions(page))) == [(1.5, "kilogram")]


def test_far_apart_boxes_do_not_join() -> None:
    # Same row, but the gap is many line heights: a price and an unrelated word, not "500 ml".
    page = OcrPage(
        tokens=(make_token("500", 0.05, 0.1, width=0.06), make_token("ml", 0.8, 0.1, width=0.04)), width=100, height=100
    )
    assert find_mentions(page) == []


def test_a_mention_is_not_repeated_by_joining() -> None:
    page = make_page([("16 oz", "Organic"), "Keep dry"])
    assert _values(candidates_for("item_weight", find_mentions(page))) == [(16.0, "ounce")]


def test_keyword_in_the_same_box_sets_kw_self() -> None:
    (cand,) = _cands(make_page(["Net Wt 16 oz"]), "item_weight")
    assert cand.features["kw_self"] == 1.0


def test_keyword_in_a_neighbouring_box_sets_kw_near() -> None:
    (cand,) = _cands(make_page([("Net Wt", "16 oz")]), "item_weight")
    assert cand.text == "16 oz"
    assert cand.features["kw_near"] == 1.0
    assert cand.features["kw_self"] == 0.0


def test_no_keyword_no_flags() -> None:
    (cand,) = _cands(make_page([("Organic", "16 oz")]), "item_weight")
    assert cand.features["kw_self"] == 0.0
    assert cand.features["kw_near"] == 0.0


def test_rival_keyword_sets_kw_other() -> None:
    (cand,) = _cands(make_page(["Max load 150 kg"]), "item_weight")
    assert cand.features["kw_other"] == 1.0
    (cand,) = _cands(make_page(["Max load 150 kg"]), "maximum_weight_recommendation")
    assert cand.features["kw_self"] == 1.0 and cand.features["kw_other"] == 0.0


def test_bare_oz_is_coerced_to_fluid_ounce_for_volume_only() -> None:
    mentions = find_mentions(make_page(["12 oz"]))
    assert _values(candidates_for("item_volume", mentions)) == [(12.0, "fluid ounce")]
    assert _values(candidates_for("item_weight", mentions)) == [(12.0, "ounce")]
    assert candidates_for("voltage", mentions) == []


def test_candidates_only_for_entities_allowing_the_unit() -> None:
    mentions = find_mentions(make_page(["Input 230V", "60 W", "25 cm"]))
    assert _values(candidates_for("voltage", mentions)) == [(230.0, "volt")]
    assert _values(candidates_for("wattage", mentions)) == [(60.0, "watt")]
    for entity in ("width", "height", "depth"):
        assert _values(candidates_for(entity, mentions)) == [(25.0, "centimetre")]
    assert candidates_for("item_weight", mentions) == []


def test_dimension_letters_reach_the_features() -> None:
    page = make_page(['10"W x 5"D x 3"H'])
    for entity, value in (("width", 10.0), ("depth", 5.0), ("height", 3.0)):
        cands = _cands(page, entity)
        matched = [c.quantity.value for c in cands if c.features["letter_match"] == 1.0]
        assert matched == [value]


def test_features_cover_every_feature_name() -> None:
    cands = _cands(make_page(["Net Wt 500 g (17.6 oz)", ("1", "kg")]), "item_weight")
    assert len(cands) == 3
    for c in cands:
        assert set(FEATURE_NAMES) <= set(c.features)
    assert to_matrix(cands).shape == (3, len(FEATURE_NAMES))
    assert to_matrix([]).shape == (0, len(FEATURE_NAMES))


def test_empty_page_has_no_candidates() -> None:
    page = OcrPage(tokens=(), width=10, height=10)
    assert find_mentions(page) == []
    assert _cands(page, "item_weight") == []


# -- selection on constructed pages --------------------------------------------------


def test_read_page_picks_the_value_its_keyword_names() -> None:
    reader = make_reader(FakeEngine())
    page = make_page(["Max load 150 kg", "Net Wt 500 g"])
    result = reader.selector.select(page, ["item_weight", "maximum_weight_recommendation"])
    preds, cands = result.predictions, result.candidates
    assert preds["item_weight"].text == "500.0 gram"
    assert preds["maximum_weight_recommendation"].text == "150.0 kilogram"
    assert preds["item_weight"].evidence is not None and preds["item_weight"].evidence.text == "Net Wt 500 g"
    assert 0.0 < preds["item_weight"].confidence <= 1.0
    assert len(cands["item_weight"]) == 2


def test_read_page_without_candidates() -> None:
    page = make_page(["Premium Quality"])
    preds = make_reader(FakeEngine(), priors_fallback=False).selector.select(page, ["voltage"]).predictions
    assert preds["voltage"].text == "" and preds["voltage"].value is None
    preds = make_reader(FakeEngine(), priors_fallback=True).selector.select(page, ["voltage"]).predictions
    assert preds["voltage"].source == "prior"
    assert preds["voltage"].text == load_priors().describe("voltage") != ""  # the prior's guess, not any unit


def test_read_page_rejects_unknown_entities() -> None:
    with pytest.raises(UnknownEntityError, match="colour"):
        make_reader(FakeEngine()).selector.select(make_page(["1 kg"]), ["item_weight", "colour"])
