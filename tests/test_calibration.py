"""Confidence that means what it says: isotonic calibration, the model folder's map, reliability tables."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import CliInvoke, write_csv
from specread.metrics import reliability
from specread.rank.calibrate import MIN_ROWS, Calibration, isotonic
from specread.rank.model import CALIBRATION_FILE, load_model, save_model


@given(st.lists(st.tuples(st.floats(0, 1), st.booleans()), min_size=1, max_size=60))
def test_isotonic_fit_is_monotone_and_keeps_the_mean(pairs: list[tuple[float, bool]]) -> None:
    x = np.array([p[0] for p in pairs])
    y = np.array([p[1] for p in pairs], dtype=float)
    knots, values = isotonic(x, y)
    assert np.all(np.diff(knots) > 0) and np.all(np.diff(values) >= -1e-12)
    fitted = np.interp(x, knots, values)
    assert fitted.mean() == pytest.approx(y.mean())  # pooling keeps each block's mean


def test_isotonic_pools_violators() -> None:
    knots, values = isotonic(np.array([0.1, 0.2, 0.3, 0.4]), np.array([0, 1, 0, 1.0]))
    assert knots.tolist() == [0.1, 0.2, 0.3, 0.4]
    assert values.tolist() == [0.0, 0.5, 0.5, 1.0]


def _overconfident(n: int, seed: int = 0) -> tuple[list[str], list[float], list[bool]]:
    """Raw confidence c is right with probability c / 2 for depth, c for voltage."""
    rng = random.Random(seed)
    ents, raw, right = [], [], []
    for entity, scale in (("depth", 0.5), ("voltage", 1.0)):
        for _ in range(n):
            c = rng.random()
            ents.append(entity)
            raw.append(c)
            right.append(rng.random() < c * scale)
    return ents, raw, right


def test_calibration_maps_raw_confidence_to_each_entitys_accuracy() -> None:
    cal = Calibration.fit(*_overconfident(4000))
    assert cal("depth", 0.8) == pytest.approx(0.4, abs=0.08)
    assert cal("voltage", 0.8) == pytest.approx(0.8, abs=0.08)
    assert cal("width", 0.8) == pytest.approx(0.6, abs=0.08)  # no rows of its own: the pooled map
    assert cal.rows["depth"] == 4000


def test_an_entity_with_few_rows_uses_the_pooled_map() -> None:
    ents, raw, right = _overconfident(MIN_ROWS - 1)
    cal = Calibration.fit(ents, raw, right)
    assert "depth" not in cal.maps and "*" in cal.maps
    assert Calibration({}, {})("depth", 0.37) == 0.37  # nothing fitted: the raw value


def test_a_model_folder_keeps_its_calibration(tmp_path: Path) -> None:
    packaged = load_model()
    cal = Calibration.fit(*_overconfident(200))
    folder = save_model(tmp_path / "m", packaged.ranker, packaged.priors, {"ocr": packaged.card["ocr"]}, cal).path
    assert CALIBRATION_FILE in json.loads((Path(folder) / "model.json").read_text())["files"]
    again = load_model(folder)
    assert again.calibration is not None and again.calibration("depth", 0.8) == pytest.approx(cal("depth", 0.8))
    without = save_model(tmp_path / "m", packaged.ranker, packaged.priors, {"ocr": packaged.card["ocr"]})
    assert without.calibration is None and not (tmp_path / "m" / CALIBRATION_FILE).exists()


def test_reliability_bands_per_entity() -> None:
    preds = {"0": "1.0 volt", "1": "2.0 volt", "2": "3.0 volt", "3": "4.0 volt", "4": ""}
    gold = {"0": "1.0 volt", "1": "9.0 volt", "2": "3.0 volt", "3": "4.0 volt", "4": "5.0 volt"}
    confs = {"0": 0.9, "1": 0.85, "2": 0.95, "3": 0.1, "4": 0.5}
    entities = dict.fromkeys(gold, "voltage")
    table = reliability(preds, confs, gold, entities)
    assert table["voltage"] == table["all"]
    assert table["voltage"] == [
        {"band": "0.0-0.2", "rows": 1, "confidence": 0.1, "accuracy": 1.0},
        {"band": "0.8-1.0", "rows": 3, "confidence": 0.9, "accuracy": round(2 / 3, 3)},
    ]  # the blank row 4 is in no band


def test_evaluate_prints_a_reliability_table_when_predictions_carry_confidence(cli: CliInvoke, tmp_path: Path) -> None:
    preds = write_csv(
        tmp_path / "p.csv",
        ["index", "prediction", "confidence"],
        [(0, "1.0 volt", 0.9), (1, "2.0 volt", 0.3), (2, "500.0 gram", 0.95), (3, "", "")],
    )
    gold = write_csv(
        tmp_path / "g.csv",
        ["index", "entity_name", "entity_value"],
        [(0, "voltage", "1.0 volt"), (1, "voltage", "9.0 volt"), (2, "item_weight", "500.0 gram"), (3, "voltage", "")],
    )
    report = json.loads(cli("evaluate", preds, gold, "--json").stdout)
    assert report["reliability"]["voltage"] == [
        {"band": "0.2-0.4", "rows": 1, "confidence": 0.3, "accuracy": 0.0},
        {"band": "0.8-1.0", "rows": 1, "confidence": 0.9, "accuracy": 1.0},
    ]
    table = cli("evaluate", preds, gold)
    assert table.exit_code == 0 and "reliability" in table.output and "1.00 (1)" in table.output
    plain = write_csv(tmp_path / "plain.csv", ["index", "prediction"], [(0, "1.0 volt")])
    assert "reliability" not in json.loads(cli("evaluate", plain, gold, "--json").stdout)
