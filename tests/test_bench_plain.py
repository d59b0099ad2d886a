"""The plain-RapidOCR baseline of ``benchmarks/plain_ocr.py`` (issue 22, point 4), without OCR.

The regex extractor is a pure function of the page text, so it is checked on hand-written text;
the pool is checked with a fake engine that "reads" a text file, so no model is loaded.
"""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks.plain_ocr import PRESET, extract, run_plain
from benchmarks.throughput import planned_runs
from specread.units import format_prediction, get_registry


def test_the_first_allowed_quantity_is_the_answer_in_the_challenge_format() -> None:
    assert extract("Net Wt. 500g", "item_weight") == "500.0 gram"
    assert extract("NET WT 1,5 kg (3.3 lb)", "item_weight") == "1.5 kilogram"


def test_a_unit_the_entity_does_not_allow_is_skipped() -> None:
    text = "Input 12V DC\nNet weight 500 g\n40 W"

    assert extract(text, "item_weight") == "500.0 gram"
    assert extract(text, "voltage") == "12.0 volt"
    assert extract(text, "wattage") == "40.0 watt"
    assert extract(text, "item_volume") == ""


def test_a_number_without_a_known_unit_or_inside_a_word_is_no_answer() -> None:
    assert extract("Model 500 pieces", "item_weight") == ""
    assert extract("5 mmHg", "width") == ""  # "mm" must end at a word edge


_ENTITY_ALIASES = [
    (entity, alias, unit)
    for entity in sorted(get_registry().entities)
    for unit in get_registry().allowed(entity)
    for alias in (unit, *get_registry().unit(unit).aliases, *get_registry().unit(unit).exact)
]


@given(
    st.sampled_from(_ENTITY_ALIASES),
    st.integers(min_value=0, max_value=99_999),
    st.one_of(st.none(), st.integers(min_value=0, max_value=99)),
)
def test_any_spelling_of_an_allowed_unit_is_read_as_that_unit(case: tuple[str, str, str], whole: int, cents) -> None:
    entity, alias, unit = case
    number = str(whole) if cents is None else f"{whole}.{cents:02d}"

    assert extract(f"Size: {number} {alias}", entity) == format_prediction(float(number), unit)


class TextFileOcr:
    """A stand-in for RapidOCR: the "recognised lines" of an image are the lines of the file at its path."""

    def __call__(self, path: str) -> SimpleNamespace:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        return SimpleNamespace(txts=tuple(lines) or None)  # RapidOCR gives None for a page without text


def test_run_plain_answers_every_row_through_the_pool(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    (images / "a.jpg").write_text("Net Wt. 500g\n12 V", encoding="utf-8")
    (images / "b.jpg").write_text("", encoding="utf-8")  # no text found: read, but nothing to answer
    input_csv, out_csv = tmp_path / "input.csv", tmp_path / "out.csv"
    with open(input_csv, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(
            [
                ["index", "image_link", "group_id", "entity_name"],
                ["7", "https://x/images/I/a.jpg", "1", "item_weight"],
                ["3", "https://x/images/I/b.jpg", "1", "width"],
                ["5", "https://x/images/I/gone.jpg", "1", "voltage"],  # no such file: a failed image
                ["9", "https://x/images/I/a.jpg", "1", "voltage"],
            ]
        )

    counts = run_plain(input_csv, images, out_csv, workers=2, make_engine=TextFileOcr)

    with open(out_csv, newline="", encoding="utf-8") as fh:
        written = [tuple(r) for r in csv.reader(fh)]
    assert written == [("index", "prediction"), ("7", "500.0 gram"), ("3", ""), ("5", ""), ("9", "12.0 volt")]
    assert counts == {"images": 3, "rows": 4, "failed_images": 1}


def test_the_baseline_runs_once_whatever_the_presets() -> None:
    runs = planned_runs(["local", "plain"], ["fast", "accurate"])

    assert runs == [("fast", "local"), ("accurate", "local"), (PRESET, "plain")]
    with pytest.raises(ValueError, match="unknown engines"):
        planned_runs(["local", "vanilla"], ["fast"])
