"""metrics.py: the challenge F1 on hand-computed examples."""

from __future__ import annotations

import math

import pytest

from specread.metrics import TEST_MIX, Score, normalize_answer, score_rows


@pytest.mark.parametrize(
    ("pred", "gold", "outcome"),
    [
        ("500.0 gram", "500.0 gram", "tp"),
        ("500 gram", "500.0 gram", "tp"),  # numbers compare as numbers
        ("500.00 gram", "500 gram", "tp"),
        ("  500  gram ", "500.0 gram", "tp"),
        ("12.0 fluid ounce", "12 fluid  ounce", "tp"),
        ("500.0 gram", "0.5 kilogram", "fp"),  # same mass, different unit: not a match
        ("500.0 gram", "501.0 gram", "fp"),
        ("500.0 gram", "500.0 ounce", "fp"),
        ("500.0 gram", "", "fp"),  # answered where the truth is empty
        ("", "500.0 gram", "fn"),
        (None, "500.0 gram", "fn"),
        ("", "", "tn"),
        (None, None, "tn"),
        ("[1, 2] volt", "[1, 2] volt", "fp"),  # a list never matches, not even itself
        ("[100.0, 240.0] volt", "[100.0, 240.0] volt", "fp"),
        ("100.0 volt", "[100.0, 240.0] volt", "fp"),
        ("garbage", "garbage", "fp"),
    ],
)
def test_row_outcomes(pred: str | None, gold: str | None, outcome: str) -> None:
    s = Score()
    s.add(pred, gold)
    assert {"tp": s.tp, "fp": s.fp, "fn": s.fn, "tn": s.tn} == {k: int(k == outcome) for k in ("tp", "fp", "fn", "tn")}


def test_normalize_answer() -> None:
    assert normalize_answer("500 gram") == (500.0, "gram")
    assert normalize_answer("500.0 gram") == normalize_answer("500 gram")
    assert normalize_answer("1.5 fluid   ounce") == (1.5, "fluid ounce")
    assert normalize_answer("") is None
    assert normalize_answer("   ") is None
    assert normalize_answer(None) is None
    value, text = normalize_answer("[1, 2] volt")  # type: ignore[misc]
    assert math.isnan(value) and text == "[1, 2] volt"


def test_f1_precision_recall_by_hand() -> None:
    s = Score()
    for pred, gold in [
        ("1.0 gram", "1.0 gram"),  # tp
        ("2.0 gram", "2 gram"),  # tp
        ("3.0 gram", "4.0 gram"),  # fp
        ("5.0 gram", ""),  # fp
        ("", "6.0 gram"),  # fn
        ("", ""),  # tn
    ]:
        s.add(pred, gold)
    assert (s.tp, s.fp, s.fn, s.tn, s.n) == (2, 2, 1, 1, 6)
    assert s.f1 == pytest.approx(2 * 2 / (2 * 2 + 2 + 1))  # 4/7
    assert s.precision == pytest.approx(2 / 4)
    assert s.recall == pytest.approx(2 / 3)
    assert s.accuracy == pytest.approx(2 / 6)
    d = s.to_dict()
    assert d["rows"] == 6 and d["tp"] == 2 and d["f1"] == round(4 / 7, 4)


def test_empty_score_is_zero_not_an_error() -> None:
    s = Score()
    assert (s.f1, s.precision, s.recall, s.accuracy) == (0.0, 0.0, 0.0, 0.0)
    s.add("", "")
    assert s.f1 == 0.0 and s.tn == 1


def test_score_rows_missing_predictions_count_as_empty() -> None:
    gold = {"0": "1.0 gram", "1": "2.0 volt", "2": ""}
    entities = {"0": "item_weight", "1": "voltage", "2": "voltage"}
    report = score_rows({"0": "1 gram", "99": "5.0 gram"}, gold, entities)
    assert (report.overall.tp, report.overall.fp, report.overall.fn, report.overall.tn) == (1, 0, 1, 1)
    assert report.per_entity["voltage"].fn == 1 and report.per_entity["voltage"].tn == 1
    assert report.per_entity["item_weight"].tp == 1


def test_weighted_f1_two_entities_by_hand() -> None:
    # item_weight: 4 rows, TP=2 FP=1 FN=1; voltage: 2 rows, TP=1 TN=1.
    gold = {
        "0": "1.0 gram",
        "1": "2.0 gram",
        "2": "3.0 gram",
        "3": "4.0 gram",
        "4": "5.0 volt",
        "5": "",
    }
    preds = {"0": "1.0 gram", "1": "2.0 gram", "2": "30.0 gram", "3": "", "4": "5.0 volt", "5": ""}
    entities = {"0": "item_weight", "1": "item_weight", "2": "item_weight", "3": "item_weight"}
    entities |= {"4": "voltage", "5": "voltage"}
    report = score_rows(preds, gold, entities)

    assert report.overall.f1 == pytest.approx(6 / 8)  # TP=3 FP=1 FN=1
    assert TEST_MIX["item_weight"] == 22032 and TEST_MIX["voltage"] == 5488
    # Rates scaled to the official test mix:
    tp = 22032 * 2 / 4 + 5488 * 1 / 2  # 13760
    fp = 22032 * 1 / 4  # 5508
    fn = 22032 * 1 / 4  # 5508
    expected = 2 * tp / (2 * tp + fp + fn)
    assert expected == pytest.approx(27520 / 38536)
    assert report.weighted_f1 == pytest.approx(expected)

    d = report.to_dict()
    assert d["weighted_f1"] == round(expected, 4)
    assert d["f1"] == 0.75
    assert set(d["per_entity"]) == {"item_weight", "voltage"}
    assert d["per_entity"]["voltage"]["f1"] == 1.0
    assert d["per_entity"]["item_weight"]["f1"] == round(4 / 6, 4)


def test_weighted_f1_of_one_entity_equals_its_f1() -> None:
    gold = {"0": "1.0 watt", "1": "2.0 watt", "2": "3.0 watt"}
    preds = {"0": "1.0 watt", "1": "", "2": "4.0 watt"}
    report = score_rows(preds, gold, dict.fromkeys(gold, "wattage"))
    assert report.weighted_f1 == pytest.approx(report.overall.f1)


def test_test_mix_covers_every_entity() -> None:
    from specread.units import ENTITIES

    assert set(TEST_MIX) == set(ENTITIES)
    assert all(n > 0 for n in TEST_MIX.values())
