"""io/check.py: the official sanity rules plus unit validity and index coverage."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import write_csv
from specread.io.check import check_output

ROWS = [
    ("0", "https://x.invalid/a.jpg", "1", "item_weight"),
    ("1", "https://x.invalid/a.jpg", "1", "voltage"),
    ("2", "https://x.invalid/b.jpg", "1", "item_volume"),
    ("3", "https://x.invalid/c.jpg", "1", "width"),
]
GOOD = [("0", "500.0 gram"), ("1", "230 volt"), ("2", "12.0 fluid ounce"), ("3", "")]


def _make_input(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "input.csv", ["index", "image_link", "group_id", "entity_name"], ROWS)


def _make_output(
    tmp_path: Path, rows: list[tuple[str, str]], header: tuple[str, ...] = ("index", "prediction")
) -> Path:
    return write_csv(tmp_path / "output.csv", header, rows)


def test_valid_output_passes(tmp_path: Path) -> None:
    report = check_output(_make_output(tmp_path, GOOD), _make_input(tmp_path))
    assert report.ok, report.problems
    assert (report.rows, report.empty) == (4, 1)


def test_extra_columns_are_allowed(tmp_path: Path) -> None:
    rows = [(i, p, "0.5") for i, p in GOOD]
    report = check_output(_make_output(tmp_path, rows, ("index", "prediction", "confidence")), _make_input(tmp_path))
    assert report.ok, report.problems


@pytest.mark.parametrize(
    ("rows", "problem"),
    [
        (GOOD[:3], "1 input index(es) have no output row"),
        ([*GOOD, ("2", "1.0 litre")], "appear more than once"),
        ([*GOOD, ("9", "")], "index '9' is not in the input"),
        ([("0", "500.0 volt"), *GOOD[1:]], "unit 'volt' is not allowed for item_weight"),
        ([("0", "500.0 grams"), *GOOD[1:]], "unit 'grams' is not allowed for item_weight"),
        ([("0", "2.2e2 gram"), *GOOD[1:]], "'2.2e2 gram' does not match"),
        ([GOOD[0], ("1", "[1, 2] volt"), *GOOD[2:]], "'[1, 2] volt' does not match"),
        ([("0", "500.0"), *GOOD[1:]], "'500.0' does not match"),
        ([("0", "gram"), *GOOD[1:]], "'gram' does not match"),
        ([("0", "1,5 gram"), *GOOD[1:]], "'1,5 gram' does not match"),
    ],
)
def test_problems_are_reported(tmp_path: Path, rows: list[tuple[str, str]], problem: str) -> None:
    report = check_output(_make_output(tmp_path, rows), _make_input(tmp_path))
    assert not report.ok
    assert any(problem in p for p in report.problems), report.problems


def test_bad_rows_are_counted_per_entity(tmp_path: Path) -> None:
    rows = [("0", "2.2e2 gram"), ("1", "5 watt"), ("2", "1.0 litre"), ("3", "")]
    report = check_output(_make_output(tmp_path, rows), _make_input(tmp_path))
    assert report.bad_by_entity == {"item_weight": 1, "voltage": 1}
    assert [p.split(":")[0] for p in report.problems] == ["line 2", "line 3"]


def test_missing_columns(tmp_path: Path) -> None:
    report = check_output(_make_output(tmp_path, GOOD, ("index", "value")), _make_input(tmp_path))
    assert not report.ok
    assert "index,prediction" in report.problems[0]


def test_problem_list_is_capped(tmp_path: Path) -> None:
    rows = [("0", "x gram")] + [(str(n), "") for n in range(100, 130)]
    report = check_output(_make_output(tmp_path, rows), _make_input(tmp_path), max_listed=5)
    assert len(report.problems) == 6
    assert report.problems[-1].startswith("... and ")
