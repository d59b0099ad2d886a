"""Answer only when sure: thresholds from the calibration table, withheld entities, the risk-coverage report."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from conftest import CliInvoke, write_csv
from specread.metrics import risk_coverage
from specread.pipeline import answer_thresholds
from specread.rank.calibrate import MIN_ANSWERED, SLACK, Calibration, precision_curve, wilson_lower
from specread.rank.model import load_model, save_model
from specread.rank.select import WITHHELD, Selector
from specread.review.queue import ReviewRow, below_target, order_rows
from specread.settings import ReaderConfig
from specread.types import OcrPage, OcrToken


def _held_out(entity: str, n: int, right_above: float) -> tuple[list[str], list[float], list[bool]]:
    """n answers with raw confidence spread over 0..1: right exactly when the confidence is above ``right_above``."""
    raw = np.linspace(0.0, 1.0, n).tolist()
    return [entity] * n, raw, [c > right_above for c in raw]


def test_precision_curve_of_a_known_ranking() -> None:
    curve = precision_curve(np.array([0.9, 0.8, 0.8, 0.3]), np.array([1, 1, 0, 0]))
    assert curve == [(0.9, 1.0, 0.25), (0.8, pytest.approx(2 / 3), 0.75), (0.3, 0.5, 1.0)]


def test_threshold_is_the_lowest_confidence_whose_held_out_answers_were_that_precise() -> None:
    ents, raw, right = _held_out("voltage", 200, right_above=0.5)
    cal = Calibration.fit(ents, raw, right)
    calibrated = np.array([cal("voltage", c) for c in raw])
    right_ = np.array(right)

    def precision_at(t: float) -> float:
        return float(right_[calibrated >= t].mean())

    def promised(t: float) -> bool:
        kept = right_[calibrated >= t]
        return kept.mean() >= 0.95 and wilson_lower(kept.sum(), len(kept)) >= 0.95 - SLACK

    t = cal.threshold("voltage", 0.95)
    assert t is not None and promised(t)
    assert not promised(calibrated[calibrated < t].max())  # one row more and the target is not held
    assert cal("voltage", 0.9) >= t > cal("voltage", 0.1)
    assert cal.threshold("voltage", 0.5) <= t  # a lower target keeps more rows


def test_a_promise_says_what_its_threshold_rests_on() -> None:
    ents, raw, right = _held_out("voltage", 200, right_above=0.5)
    cal = Calibration.fit(ents, raw, right)
    promise = cal.promise("voltage", 0.95)
    assert promise is not None and promise.threshold == cal.threshold("voltage", 0.95)
    calibrated = np.array([cal("voltage", c) for c in raw])
    kept = calibrated >= promise.threshold
    assert promise.answers == kept.sum() and promise.precision == pytest.approx(np.mean(np.array(right)[kept]))
    assert promise.lower == pytest.approx(wilson_lower(promise.precision * promise.answers, promise.answers))
    assert promise.precision >= 0.95 and promise.lower >= 0.95 - SLACK
    # The same ranking over a quarter of the answers: an equal precision promises less.
    few = Calibration.fit(*_held_out("voltage", 50, right_above=0.5)).promise("voltage", 0.95)
    assert few is not None and few.answers < promise.answers and few.lower < promise.lower
    assert cal.promise("voltage", 1.01) is None and cal.promise("depth", 0.5) is None


def test_a_target_no_confidence_reached_withholds_the_entity() -> None:
    ents, raw, right = _held_out("depth", 100, right_above=2.0)  # never right
    cal = Calibration.fit(ents, raw, right)
    assert cal.threshold("depth", 0.9) is None
    assert cal.thresholds(0.9, ["depth"]) == {"depth": math.inf}


def test_a_few_lucky_answers_promise_nothing() -> None:
    """15 held-out answers, all right: enough for 0.85 (lower bound 0.85), not for 0.95 (it must clear 0.90)."""
    ents, raw, right = _held_out("voltage", 15, right_above=-1.0)
    cal = Calibration.fit(ents, raw, right)
    assert cal.threshold("voltage", 0.95) is None
    assert cal.threshold("voltage", 0.85) is not None
    assert wilson_lower(15, 15) == pytest.approx(0.847, abs=0.002)


def test_a_threshold_needs_enough_held_out_answers() -> None:
    ents, raw, right = _held_out("wattage", MIN_ANSWERED + 20, right_above=0.97)  # only the top few are right
    assert Calibration.fit(ents, raw, right).threshold("wattage", 0.99) is None


def _voltage_page() -> OcrPage:
    def token(text: str, y: float) -> OcrToken:
        return OcrToken(text, 0.95, ((0.1, y), (0.6, y), (0.6, y + 0.05), (0.1, y + 0.05)))

    return OcrPage(tokens=(token("Input 12 V", 0.2), token("Output 5 V", 0.4)), width=800, height=800)


def test_the_selector_withholds_an_answer_under_its_entitys_threshold() -> None:
    model = load_model()
    sure = Selector(model.ranker, model.priors).select(_voltage_page(), ["voltage", "wattage"]).predictions
    assert sure["voltage"].value is not None
    gated = Selector(model.ranker, model.priors, min_confidence={"voltage": math.inf, "wattage": 0.99})
    out = gated.select(_voltage_page(), ["voltage", "wattage"]).predictions
    assert out["voltage"].text == "" and out["voltage"].source == WITHHELD
    assert out["voltage"].evidence == sure["voltage"].evidence  # kept for review
    assert out["voltage"].confidence == pytest.approx(sure["voltage"].confidence)
    assert out["wattage"].text == ""  # nothing read: the prior's guess (confidence 0.05) is withheld too


def test_answer_thresholds_come_from_the_model_folders_calibration(tmp_path: Path) -> None:
    packaged = load_model()
    bare = save_model(tmp_path / "bare", packaged.ranker, packaged.priors, {"ocr": packaged.card["ocr"]})
    assert answer_thresholds(ReaderConfig(cache_dir=None), bare) == 0.0
    assert answer_thresholds(ReaderConfig(cache_dir=None, min_confidence=0.7), bare) == 0.7
    with pytest.raises(Exception, match="no calibration"):
        answer_thresholds(ReaderConfig(cache_dir=None, min_precision=0.95), bare)
    cal = Calibration.fit(*_held_out("voltage", 200, right_above=0.5))
    calibrated = save_model(tmp_path / "cal", packaged.ranker, packaged.priors, {"ocr": packaged.card["ocr"]}, cal)
    needs = answer_thresholds(ReaderConfig(cache_dir=None, min_precision=0.95), calibrated)
    assert needs["voltage"] == cal.threshold("voltage", 0.95)
    assert needs["width"] == math.inf  # no held-out answer of its own: nothing to promise, withheld
    with pytest.raises(ValueError, match="not both"):
        ReaderConfig(cache_dir=None, min_precision=0.9, min_confidence=0.5)


def test_risk_coverage_of_a_hand_made_predictions_file() -> None:
    # Ten voltage rows, confidence falling; right, right, wrong, right... : precision 1.0 at 20%, 0.75 at 40%.
    right = [1, 1, 0, 1, 1, 0, 0, 1, 0, 0]
    gold = {str(i): "12.0 volt" for i in range(10)}
    preds = {str(i): "12.0 volt" if r else "5.0 volt" for i, r in enumerate(right)}
    confs = {str(i): 1.0 - i / 10 for i in range(10)}
    report = risk_coverage(preds, confs, gold, dict.fromkeys(gold, "voltage"))["voltage"]
    assert report["rows"] == 10 and report["answered"] == 10
    curve = {p["coverage"]: p["precision"] for p in report["curve"]}
    assert curve[0.2] == 1.0 and curve[0.4] == 0.75 and curve[0.5] == 0.8 and curve[1.0] == 0.5
    assert report["coverage_at"] == {"0.9": 0.2, "0.95": 0.2, "0.99": 0.2}


def test_evaluate_reports_and_plots_risk_coverage(cli: CliInvoke, tmp_path: Path) -> None:
    rows = [(i, "12.0 volt" if i % 3 else "5.0 volt", 1.0 - i / 12) for i in range(12)]
    preds = write_csv(tmp_path / "p.csv", ["index", "prediction", "confidence"], rows)
    gold = write_csv(
        tmp_path / "g.csv", ["index", "entity_name", "entity_value"], [(i, "voltage", "12.0 volt") for i in range(12)]
    )
    report = json.loads(cli("evaluate", preds, gold, "--json").stdout)
    assert report["risk_coverage"]["all"]["coverage_at"]["0.9"] == 0.0  # the most confident row is wrong
    png = tmp_path / "rc.png"
    result = cli("evaluate", preds, gold, "--plot", png)
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "at 0.95" in result.output
    plain = write_csv(tmp_path / "plain.csv", ["index", "prediction"], [(0, "12.0 volt")])
    refused = cli("evaluate", plain, gold, "--plot", png)
    assert refused.exit_code == 2 and "confidence column" in refused.output


def _row(index: str, prediction: str, confidence: float | None, readable: bool | None, entity: str = "voltage"):
    return ReviewRow(index, f"https://x/{index}.jpg", "1", entity, prediction, confidence, readable)


def test_review_below_a_target_takes_exactly_the_rows_it_leaves_blank() -> None:
    rows = [
        _row("0", "12.0 volt", 0.99, True),
        _row("1", "12.0 volt", 0.50, True),
        _row("2", "", 0.30, True),
        _row("3", "40.0 centimetre", 0.99, True, entity="depth"),
    ]
    needs = {"voltage": 0.9, "depth": math.inf}.__getitem__
    assert [r.index for r in below_target(rows, needs)] == ["1", "2", "3"]


def test_review_gain_order_puts_unsure_rows_with_a_candidate_first_and_unread_rows_last() -> None:
    rows = [
        _row("0", "", 0.05, False),
        _row("1", "12.0 volt", 0.9, True),
        _row("2", "12.0 volt", 0.2, True),
        _row("3", "", 0.0, False),
        _row("4", "12.0 volt", 0.5, None),
    ]
    assert [r.index for r in order_rows(rows, "gain")] == ["2", "4", "1", "3", "0"]
    assert [r.index for r in order_rows(rows, "confidence")] == ["3", "0", "2", "4", "1"]


def test_predict_with_a_precision_target_leaves_unsure_rows_blank_and_says_what_it_answered(
    cli: CliInvoke, tmp_dataset, fake_rapidocr, tmp_path: Path
) -> None:
    everything = tmp_path / "all.csv"
    base = ("predict", tmp_dataset.input_csv, "--images", tmp_dataset.images, "--confidence", "--no-cache")
    assert cli(*base, "-o", everything).exit_code == 0
    sure = tmp_path / "sure.csv"
    result = cli(*base, "-o", sure, "--min-precision", "0.95")
    assert result.exit_code == 0, result.output
    assert "answered at target 0.95:" in result.output
    summary = " ".join(result.output.split()).split("answered at target 0.95: ", 1)[1]  # rich wraps the line
    calibration = load_model().calibration
    for entity in {r[2] for r in tmp_dataset.rows}:  # each entity read says what its threshold rests on
        promise = calibration.promise(entity, 0.95)
        evidence = "(withheld: no threshold" if promise is None else f"(held out: {promise.precision:.2f} over"
        part = next(p for p in summary.split("; ") if p.startswith(f"{entity} "))
        assert evidence in part, part
    needs = calibration.thresholds(0.95, ["item_weight", "voltage", "item_volume", "wattage"])
    with open(everything, encoding="utf-8") as a, open(sure, encoding="utf-8") as b:
        for full, gated in zip(list(a)[1:], list(b)[1:], strict=True):
            index, prediction, confidence = full.rstrip("\n").split(",")
            entity = next(r[2] for r in tmp_dataset.rows if r[0] == index)
            kept = prediction and float(confidence) >= needs.get(entity, math.inf)
            assert gated.split(",")[1] == (prediction if kept else "")
    strict = cli(*base, "-o", tmp_path / "c.csv", "--min-confidence", "0.999")
    assert strict.exit_code == 0 and "answered at target 0.999" in strict.output
    both = cli(*base, "-o", tmp_path / "d.csv", "--min-confidence", "0.5", "--min-precision", "0.9")
    assert both.exit_code == 2 and "not both" in both.output
