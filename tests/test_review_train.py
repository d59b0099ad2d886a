"""Review and correct (issue 14): the labels file a review writes trains a model as it is.

predict -> review (every decision type, a changed and an undone one) -> ``specread train
REVIEWED.csv --base packaged`` -> ``specread predict --model``, on generated images whose OCR
pages are in the cache (the fake engine stands in for RapidOCR and is never called).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from conftest import CliInvoke, FakeEngine
from review_fixtures import build_review_data
from specread.io.check import check_output
from specread.rank.model import load_model
from specread.readers import build_reader
from specread.review import DecisionStore, ReviewSession, read_review_rows
from specread.settings import ReaderConfig


def test_reviewed_labels_train_directly_and_the_model_predicts(
    tmp_path: Path, cli: CliInvoke, fake_rapidocr: FakeEngine
) -> None:
    data = build_review_data(tmp_path / "data", fake_rapidocr.fingerprint())
    cache = ["--cache-dir", data.cache]
    predicted = tmp_path / "predicted.csv"
    result = cli("predict", data.input_csv, "--images", data.images, "-o", predicted, "--confidence", *cache)
    assert result.exit_code == 0, result.output

    labels = tmp_path / "reviewed.csv"
    reader = build_reader(ReaderConfig(cache_dir=str(data.cache)), engine=fake_rapidocr)
    session = ReviewSession(read_review_rows(data.input_csv, predicted), DecisionStore(labels), data.images, reader)
    session.decide("0", "typed", value="10 in")  # the team's convention: the depth line, say
    session.decide("1", "pick", candidate=2)
    session.decide("1", "pick", candidate=1)  # changed: one row per index stays
    session.decide("3", "accept")
    session.decide("2", "typed", value="230 V")
    assert session.undo().entity_value == "230.0 volt"  # taken back: row 2 is to review again
    assert session.state()["next"] == "2"
    session.decide("2", "absent")
    with open(labels, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["index"], r["decision"], r["entity_value"]) for r in rows] == [
        ("0", "typed", "10.0 inch"),
        ("1", "pick", "500.0 gram"),
        ("3", "accept", "2.0 litre"),
        ("2", "absent", ""),
    ]

    model = tmp_path / "model"
    result = cli("train", labels, "--images", data.images, "--base", "packaged", "-o", model, *cache)
    assert result.exit_code == 0, result.output
    card = json.loads((model / "model.json").read_text())
    assert card["data"]["rows_used"] == 4  # the "not on the image" row is a training row too (no positive)
    assert card["base"]["path"].endswith("model")
    assert load_model(model).ranker.booster_.num_trees() >= load_model().ranker.booster_.num_trees()

    out = tmp_path / "out.csv"
    result = cli("predict", data.input_csv, "--images", data.images, "-o", out, "--model", model, *cache)
    assert result.exit_code == 0, result.output
    assert check_output(out, data.input_csv).ok
    assert fake_rapidocr.calls == 0  # every page came from the cache


@pytest.mark.parametrize("extra", [[], ["--holdout", "0"]])
def test_a_labels_file_with_only_absent_rows_is_refused_with_one_line(
    tmp_path: Path, cli: CliInvoke, fake_rapidocr: FakeEngine, extra: list[str]
) -> None:
    data = build_review_data(tmp_path / "data", fake_rapidocr.fingerprint())
    labels = tmp_path / "reviewed.csv"
    reader = build_reader(ReaderConfig(cache_dir=str(data.cache)), engine=fake_rapidocr)
    session = ReviewSession(
        read_review_rows(data.input_csv, data.predictions_csv), DecisionStore(labels), data.images, reader
    )
    for index in "0123":
        session.decide(index, "absent")
    result = cli(
        "train",
        labels,
        "--images",
        data.images,
        "--base",
        "packaged",
        "-o",
        tmp_path / "m",
        "--cache-dir",
        data.cache,
        *extra,
    )
    assert result.exit_code == 2, result.output  # nothing to learn: an error line, not a traceback
    assert result.output.startswith("error:") and "Traceback" not in result.output, result.output
    assert "no positive candidate" in result.output  # a reviewer can read why
