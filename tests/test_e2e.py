"""End to end with the real OCR engine on generated labels with known values (slow)."""

from __future__ import annotations

from pathlib import Path

import pytest

from specread.batch.local import predict_csv
from specread.io.check import check_output
from specread.io.dataset import read_gold, read_predictions, read_rows
from specread.metrics import score_rows
from specread.readers import build_reader
from specread.settings import ReaderConfig
from specread.synth import LabelSpec, make_dataset, render_label

pytestmark = pytest.mark.slow


def test_predict_and_score_generated_labels(tmp_path: Path) -> None:
    input_csv = make_dataset(tmp_path / "data", n_images=16, seed=3, n_values=2)
    out = tmp_path / "predictions.csv"
    stats = predict_csv(input_csv, tmp_path / "data" / "images", out, ReaderConfig(cache_dir=str(tmp_path / "cache")))
    rows = read_rows(input_csv)
    assert stats.rows == len(rows) and stats.images == 16 and stats.failed_images == 0

    report = check_output(out, input_csv)
    assert report.ok, report.problems
    assert report.rows == len(rows)

    gold, entities = read_gold(tmp_path / "data" / "gold.csv")
    score = score_rows(read_predictions(out), gold, entities)
    assert score.overall.f1 >= 0.85, score.to_dict()


def test_read_one_label_with_evidence(tmp_path: Path) -> None:
    spec = LabelSpec(
        lines=("Net Wt. 340 g", "Input 230V", "Made in EU"),
        answers={"item_weight": (340.0, "gram"), "voltage": (230.0, "volt")},
    )
    path = tmp_path / "label.png"
    render_label(spec, seed=1).save(path)
    reader = build_reader(ReaderConfig(cache_dir=None))
    result = reader.read(path, ["item_weight", "voltage"])
    assert any("340" in t.text for t in result.page.tokens)
    for entity, (value, unit) in spec.answers.items():
        pred = result.predictions[entity]
        assert (pred.value, pred.unit) == (value, unit), result.to_dict()
        assert pred.evidence is not None and str(int(value)) in pred.evidence.text
        x0, y0, x1, y1 = pred.evidence.box
        assert 0.0 <= x0 < x1 <= 1.0 and 0.0 <= y0 < y1 <= 1.0
