"""Review and correct (issue 14), the logic: queue, labels file, typed answers, session, image paths.

The HTTP API is in ``test_review_api.py``, the browser in ``test_review_browser.py``, training on
the labels file in ``test_review_train.py``.
"""

from __future__ import annotations

import csv
import os
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import FakeEngine
from review_fixtures import REVIEW_SPECS, ReviewData, build_review_data
from specread.errors import (
    ImageLoadError,
    InputFormatError,
    PathNotAllowedError,
    ReviewValueError,
    UnknownEntityError,
    UnknownRowError,
)
from specread.io.check import check_output
from specread.io.dataset import read_labels
from specread.readers import build_reader
from specread.review import (
    REVIEW_COLUMNS,
    Decision,
    DecisionStore,
    ReviewSession,
    check_typed,
    order_rows,
    read_review_rows,
)
from specread.review.queue import with_confidence
from specread.review.session import image_under
from specread.settings import ReaderConfig


@pytest.fixture
def data(tmp_path: Path) -> ReviewData:
    return build_review_data(tmp_path / "data", FakeEngine().fingerprint())


def _reader(data: ReviewData):
    """The packaged ranker over the pre-filled cache; the fake engine is never called (the pages are cached)."""
    engine = FakeEngine()
    return build_reader(ReaderConfig(cache_dir=str(data.cache)), engine=engine), engine


def _session(data: ReviewData, labels: Path, order: str = "confidence") -> ReviewSession:
    rows = read_review_rows(data.input_csv, data.predictions_csv)
    return ReviewSession(rows, DecisionStore(labels), data.images, _reader(data)[0], order=order)


def _labels(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


# -- typed answers ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("entity", "text", "answer"),
    [
        ("width", "12.5 cm", "12.5 centimetre"),
        ("width", "12.5 centimetre", "12.5 centimetre"),
        ("width", " 12,5cm ", "12.5 centimetre"),
        ("width", "1/2 in", "0.5 inch"),
        ("voltage", "230V", "230.0 volt"),
        ("item_volume", "10 fl oz", "10.0 fluid ounce"),
        ("item_volume", "10 ounce", "10.0 fluid ounce"),  # the entity's coercion, from units.toml
    ],
)
def test_typed_answers_are_read_with_the_unit_table(entity: str, text: str, answer: str) -> None:
    assert check_typed(entity, text).text == answer


@pytest.mark.parametrize(
    ("entity", "text", "reason"),
    [
        ("width", "", "type a number and a unit"),
        ("width", "abc", "not a number"),
        ("width", "12", "add a unit (centimetre, foot, inch, metre, millimetre, yard)"),
        ("width", "12 furlongs", "not a value with a known unit"),
        ("width", "500 g", "gram is not a unit of width"),
        ("item_weight", "5 volt", "volt is not a unit of item_weight"),
        ("width", "12 cm 5 cm", "one value only"),
        ("width", "0 cm", "above zero"),
        ("width", "-3 cm", "above zero"),
    ],
)
def test_typed_answers_that_cannot_answer_the_entity_say_why(entity: str, text: str, reason: str) -> None:
    with pytest.raises(ReviewValueError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        check_typed(entity, text)


def test_typed_answer_for_an_unknown_entity_is_refused() -> None:
    with pytest.raises(UnknownEntityError):
        check_typed("colour", "12 cm")


# -- the queue -------------------------------------------------------------------------------------------------------
def test_queue_is_least_confident_first_or_input_order(data: ReviewData) -> None:
    rows = read_review_rows(data.input_csv, data.predictions_csv)
    assert [r.prediction for r in rows] == [spec[2] for spec in REVIEW_SPECS]
    assert [r.index for r in order_rows(rows, "confidence")] == ["3", "1", "2", "0"]
    assert [r.index for r in order_rows(rows, "input")] == ["0", "1", "2", "3"]
    with pytest.raises(ValueError, match="unknown order"):
        order_rows(rows, "random")


def test_without_a_confidence_column_the_confidence_is_read_again(tmp_path: Path) -> None:
    data = build_review_data(tmp_path, FakeEngine().fingerprint(), with_confidence=False)
    rows = read_review_rows(data.input_csv, data.predictions_csv)
    assert all(r.confidence is None for r in rows)
    session = ReviewSession(rows, DecisionStore(tmp_path / "l.csv"), data.images, _reader(data)[0])
    filled = with_confidence(rows, lambda r: session.answer_confidence(r.index))
    by_index = {r.index: r.confidence for r in filled}
    # each answer's own candidate's confidence: row 1's answer is the less likely of its page's two
    assert all(c is not None and 0.0 < c <= 1.0 for c in by_index.values())
    assert by_index["1"] < 0.5 < by_index["3"]
    assert session.view("1")["choices"][1]["confidence"] == pytest.approx(by_index["1"], abs=1e-4)
    rows[1] = replace(rows[1], prediction="9.0 gram")
    unsupported = ReviewSession(rows, DecisionStore(tmp_path / "m.csv"), data.images, _reader(data)[0])
    assert unsupported.answer_confidence("1") == 0.0  # no candidate is the answer: first in the queue


def test_predictions_of_another_input_are_refused(data: ReviewData, tmp_path: Path) -> None:
    short = tmp_path / "short.csv"
    short.write_text("index,prediction\n0,25.0 centimetre\n9,1.0 gram\n")
    with pytest.raises(InputFormatError, match=r"1 index\(es\) not in .*3 input index\(es\) without a prediction"):
        read_review_rows(data.input_csv, short)
    bad = tmp_path / "bad.csv"
    bad.write_text("index,prediction,confidence\n0,25.0 centimetre,high\n")
    with pytest.raises(InputFormatError, match="confidence 'high' is not a number"):
        read_review_rows(data.input_csv, bad)


# -- the labels file -------------------------------------------------------------------------------------------------
def _decision(index: str, value: str = "1.0 gram", kind: str = "typed") -> Decision:
    return Decision(
        index, f"https://x/{index}.png", "7", "item_weight", value, kind, "2.0 gram", "2026-01-01T00:00:00+00:00"
    )


def test_store_appends_replaces_and_removes_one_row_per_index(tmp_path: Path) -> None:
    path = tmp_path / "reviewed.csv"
    store = DecisionStore(path)
    assert path.read_text().splitlines() == [",".join(REVIEW_COLUMNS)]
    store.record(_decision("a"))
    store.record(_decision("b", "", "absent"))
    store.record(_decision("a", "3.0 gram"))  # a changed decision moves to the end: the next undo takes it
    rows = _labels(path)
    assert [(r["index"], r["entity_value"], r["decision"]) for r in rows] == [
        ("b", "", "absent"),
        ("a", "3.0 gram", "typed"),
    ]
    assert DecisionStore(path).last() == _decision("a", "3.0 gram")
    assert store.remove("a") == _decision("a", "3.0 gram") and store.remove("a") is None
    assert [r["index"] for r in _labels(path)] == ["b"]
    assert list(DecisionStore(path).decisions) == ["b"]
    with pytest.raises(ValueError, match="unknown decision"):
        _decision("c", kind="maybe")


def test_a_torn_last_line_is_dropped_on_reopening(tmp_path: Path) -> None:
    path = tmp_path / "reviewed.csv"
    store = DecisionStore(path)
    store.record(_decision("a"))
    store.record(_decision("b"))
    whole = path.read_bytes()
    path.write_bytes(whole[: whole.rindex(b"item_weight")])  # killed in the middle of appending b
    reopened = DecisionStore(path)
    assert list(reopened.decisions) == ["a"]
    reopened.record(_decision("c"))
    assert [r["index"] for r in _labels(path)] == ["a", "c"]
    path.write_bytes(b"index,image_li")  # killed while writing the header
    assert DecisionStore(path).decisions == {}
    assert path.read_text().splitlines() == [",".join(REVIEW_COLUMNS)]


def test_a_file_the_store_did_not_write_is_refused_and_left_alone(tmp_path: Path) -> None:
    other = tmp_path / "train.csv"
    other.write_bytes(b"image_link,group_id,entity_name,entity_value\nx,1,width,2 cm")  # no newline at the end
    with pytest.raises(InputFormatError, match="missing required column"):
        DecisionStore(other)
    assert other.read_bytes().endswith(b"2 cm")


# -- the session -----------------------------------------------------------------------------------------------------
def test_every_decision_writes_its_label_at_once(data: ReviewData, tmp_path: Path) -> None:
    labels = tmp_path / "reviewed.csv"
    session = _session(data, labels)
    assert session.state() == {"total": 4, "reviewed": 0, "next": "3"}
    view = session.view("1")
    assert [c["answer"] for c in view["choices"]] == ["500.0 gram", "250.0 gram"]  # the ranker prefers "Net Wt."
    assert [c["n"] for c in view["choices"]] == [1, 2]
    assert view["choices"][0]["confidence"] > view["choices"][1]["confidence"]
    assert [c["answer"] for c in view["choices"] if c["current"]] == ["250.0 gram"]
    assert [t["text"] for t in view["tokens"]] == ["Net Wt. 500 g", "Serving 250 g"]
    assert "kilogram" in view["units"] and "volt" not in view["units"]
    assert (view["position"], view["prev"], view["next"]) == (2, "3", "2")
    pick = 1

    session.decide("3", "accept")
    session.decide("1", "pick", candidate=pick)
    session.decide("2", "typed", value="110 V")
    session.decide("0", "absent")
    rows = {r["index"]: r for r in _labels(labels)}
    assert {i: (r["entity_value"], r["decision"], r["previous"]) for i, r in rows.items()} == {
        "3": ("2.0 litre", "accept", "2.0 litre"),
        "1": ("500.0 gram", "pick", "250.0 gram"),
        "2": ("110.0 volt", "typed", "230.0 volt"),
        "0": ("", "absent", "25.0 centimetre"),
    }
    assert rows["1"]["image_link"].endswith("label_1.png") and rows["1"]["group_id"] == "7"
    assert rows["1"]["decided_at"].endswith("+00:00")
    assert session.state() == {"total": 4, "reviewed": 4, "next": None}

    # the labels file is a labels CSV as training reads it, "not on the image" an empty label
    labels_read = {lab.index: lab for lab in read_labels(labels)}
    assert labels_read["0"].entity_value == "" and labels_read["2"].entity_value == "110.0 volt"
    assert labels_read["1"].image == "label_1.png"


def test_bad_decisions_are_refused_and_write_nothing(data: ReviewData, tmp_path: Path) -> None:
    labels = tmp_path / "reviewed.csv"
    session = _session(data, labels)
    with pytest.raises(UnknownRowError):
        session.decide("99", "accept")
    with pytest.raises(ReviewValueError, match="gram is not a unit of voltage"):
        session.decide("2", "typed", value="5 g")
    with pytest.raises(ReviewValueError, match="not a number"):
        session.decide("2", "typed", value="five volt")
    with pytest.raises(ReviewValueError, match="no choice 9"):
        session.decide("2", "pick", candidate=9)
    with pytest.raises(ValueError, match="unknown decision"):
        session.decide("2", "maybe")
    assert _labels(labels) == []


def test_undo_and_resume_after_a_restart(data: ReviewData, tmp_path: Path) -> None:
    labels = tmp_path / "reviewed.csv"
    session = _session(data, labels)
    session.decide("3", "accept")
    session.decide("1", "absent")
    assert session.undo().index == "1"  # the latest
    assert session.state()["next"] == "1"
    session.decide("1", "typed", value="450 g")
    assert session.undo("3").index == "3" and session.undo("3") is None
    with pytest.raises(UnknownRowError):
        session.undo("99")

    again = _session(data, labels)  # the same command started again
    assert again.state() == {"total": 4, "reviewed": 1, "next": "3"}
    assert again.next_unreviewed(after="3") == "2"
    assert again.view("1")["decision"]["entity_value"] == "450.0 gram"


def test_a_labels_file_of_another_input_is_refused(data: ReviewData, tmp_path: Path) -> None:
    labels = tmp_path / "reviewed.csv"
    DecisionStore(labels).record(_decision("1"))  # index 1 is item_weight of x/1.png there
    with pytest.raises(InputFormatError, match="belongs to another input"):
        _session(data, labels)


def test_corrected_output_passes_the_check(data: ReviewData, tmp_path: Path) -> None:
    session = _session(data, tmp_path / "reviewed.csv")
    session.decide("1", "typed", value="0.5 kg")
    session.decide("0", "absent")
    session.decide("2", "accept")
    out = tmp_path / "corrected.csv"
    assert session.write_output(out) == 2
    assert check_output(out, data.input_csv).ok
    rows = list(csv.reader(out.open()))
    assert rows == [
        ["index", "prediction", "confidence"],
        ["0", "", "1.0000"],
        ["1", "0.5 kilogram", "1.0000"],
        ["2", "230.0 volt", "1.0000"],
        ["3", "2.0 litre", "0.1000"],
    ]


def test_a_missing_image_still_lets_the_row_be_decided(data: ReviewData, tmp_path: Path) -> None:
    (data.images / "label_2.png").unlink()
    session = _session(data, tmp_path / "reviewed.csv")
    view = session.view("2")
    assert view["image"] is None and "no such image" in view["image_problem"] and view["choices"] == []
    assert session.decide("2", "typed", value="12 V").entity_value == "12.0 volt"


# -- image paths -----------------------------------------------------------------------------------------------------
def test_only_files_inside_the_images_folder_are_opened(tmp_path: Path) -> None:
    images = tmp_path / "images"
    (images / "sub").mkdir(parents=True)
    (images / "a.png").write_bytes(b"x")
    (images / "sub" / "b.png").write_bytes(b"x")
    secret = tmp_path / "secret.txt"
    secret.write_text("no")
    os.symlink(secret, images / "out.png")
    os.symlink(images / "a.png", images / "in.png")
    assert image_under(images, "a.png") == (images / "a.png").resolve()
    assert image_under(images, "sub/b.png") == (images / "sub" / "b.png").resolve()
    assert image_under(images, "in.png") == (images / "a.png").resolve()  # a link that stays inside
    for name in (
        "../secret.txt",
        "sub/../../secret.txt",
        str(secret),
        "/etc/passwd",
        "out.png",
        "..",
        "",
        "a\\b",
        "C:x",
    ):
        with pytest.raises(PathNotAllowedError):
            image_under(images, name)
    with pytest.raises(ImageLoadError):
        image_under(images, "missing.png")
    with pytest.raises(ImageLoadError):
        image_under(images, "sub")  # a folder is not an image file


def test_a_review_below_a_target_queues_only_those_rows_and_keeps_the_sure_answers(
    data: ReviewData, tmp_path: Path
) -> None:
    """``review --below``: the queue is the rows the target leaves to people; the output merges both kinds."""
    from specread.review.queue import below_target

    rows = read_review_rows(data.input_csv, data.predictions_csv)
    needs = {"width": 0.8, "item_weight": 0.8, "voltage": 0.8, "item_volume": 0.8}.__getitem__
    queue = below_target(rows, needs)
    assert [r.index for r in queue] == ["1", "2", "3"]  # row 0 (0.90) is sure
    session = ReviewSession(rows, DecisionStore(tmp_path / "l.csv"), data.images, _reader(data)[0], queue=queue)
    assert session.state()["total"] == 3 and session.next_unreviewed() == "3"
    with pytest.raises(UnknownRowError):
        session.view("0")  # not in this review
    session.decide("3", "typed", value="1.5 l")
    out = tmp_path / "merged.csv"
    session.write_output(out)
    assert [r[:2] for r in csv.reader(out.open())][1:] == [
        ["0", "25.0 centimetre"],  # sure: kept as predicted
        ["1", "250.0 gram"],
        ["2", "230.0 volt"],
        ["3", "1.5 litre"],  # reviewed
    ]


def test_gain_order_reads_whether_anything_was_read(data: ReviewData, tmp_path: Path) -> None:
    from specread.review.queue import with_readable

    rows = read_review_rows(data.input_csv, data.predictions_csv)
    session = ReviewSession(rows, DecisionStore(tmp_path / "l.csv"), data.images, _reader(data)[0])
    filled = with_readable(rows, lambda r: session.readable(r.index))
    assert all(r.readable for r in filled)  # every generated label prints its entity
    filled[3] = replace(filled[3], readable=False)
    assert [r.index for r in order_rows(filled, "gain")] == ["1", "2", "0", "3"]
