"""Label cleaning: each documented rule, its counts, image checks, the CSV and the CLI."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from PIL import Image

from conftest import CliInvoke, write_csv
from specread.labels.clean import RULES, clean_csv, clean_rows, clean_value
from specread.units.registry import get_registry

HEADER = ["image_link", "group_id", "entity_name", "entity_value"]


def _make_row(value: str, entity: str = "item_weight", link: str = "https://x.invalid/a.jpg") -> dict[str, str]:
    return {"image_link": link, "group_id": "1", "entity_name": entity, "entity_value": value}


@pytest.mark.parametrize(
    ("entity", "value", "expected", "rule"),
    [
        ("item_weight", "500.0 gram", "500.0 gram", None),
        ("item_weight", "1400 milligram", "1400.0 milligram", None),
        ("voltage", "[100.0, 240.0] volt", "240.0 volt", "list_value"),
        ("maximum_weight_recommendation", "10 kilogram to 15 kilogram", "15.0 kilogram", "range_value"),
        ("item_weight", "0 kilogram to 2kilogram", "2.0 kilogram", "range_value"),
        ("item_volume", "10.0 ounce", "10.0 fluid ounce", "unit_coerced"),
        ("wattage", "3.0 horsepower", "2.2371 kilowatt", "unit_converted"),
        ("item_weight", "1.0 carat", "0.2 gram", "unit_converted"),
        ("item_weight", "2 grams", "2.0 gram", "unit_alias"),
        ("wattage", "1.5 kilowatt hour", "", "unit_blanked"),
        ("item_weight", "10.8 fluid ounce", "", "unit_blanked"),
        ("maximum_weight_recommendation", "2 person", "", "unit_blanked"),
        ("item_weight", "2.2223333344444455e+20 gram", None, "malformed"),
        ("item_weight", "0.0 gram", None, "malformed"),
        ("item_weight", "heavy", None, "malformed"),
        ("item_weight", "5 kilogram to 7 pound", None, "malformed"),
    ],
)
def test_clean_value_rules(entity: str, value: str, expected: str | None, rule: str | None) -> None:
    new, rules = clean_value(entity, value)
    assert new == expected
    assert (rules[0] if rules else None) == rule
    if new:
        assert new.split(" ", 1)[1] in get_registry().allowed(entity)


def test_conversion_uses_the_registry_and_is_exact() -> None:
    new, _ = clean_value("wattage", "10 horsepower")
    value, unit = new.split(" ", 1)
    assert float(value) == pytest.approx(get_registry().convert(10, "horsepower", unit), rel=1e-6)


@pytest.mark.parametrize(("policy", "expected"), [("max", "240.0"), ("min", "100.0"), ("first", "100.0")])
def test_list_policies(policy: str, expected: str) -> None:
    assert clean_value("voltage", "[100.0, 240.0] volt", policy)[0] == f"{expected} volt"
    assert clean_value("voltage", "[100.0, 240.0] volt", "drop")[0] is None


def test_no_entity_allows_the_extra_cleaning_units() -> None:
    registry = get_registry()
    for extra in ("horsepower", "carat"):
        assert extra in registry.units
        assert all(extra not in spec.units for spec in registry.entities.values())


def test_clean_rows_counts_every_rule_once_per_row() -> None:
    rows = [
        _make_row("500.0 gram"),
        _make_row("500.0 gram"),  # duplicate
        _make_row("600.0 gram"),  # conflict: same image and entity
        _make_row("[1.0, 2.0] kilogram", link="b"),
        _make_row("3.0 horsepower", "wattage", link="b"),
        _make_row("1 kilowatt hour", "wattage", link="c"),
        _make_row("nonsense", link="c"),
        _make_row("5 kilogram", "colour", link="d"),
    ]
    out, report = clean_rows(rows)
    counts = report.to_dict()["rules"]
    assert counts["duplicate"] == 1 and counts["conflict"] == 1
    assert counts["list_value"] == 1 and counts["unit_converted"] == 1 and counts["unit_blanked"] == 1
    assert counts["malformed"] == 1 and counts["unknown_entity"] == 1
    assert report.counts["kept"] == 1
    assert report.rows_in == 8 and report.rows_out == len(out) == 4
    assert [r["entity_value"] for r in out] == ["500.0 gram", "2.0 kilogram", "2.2371 kilowatt", ""]
    assert set(counts) == set(RULES)


def test_missing_and_undecodable_images_are_dropped(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (20, 10), "white").save(images / "ok.png")
    (images / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    rows = [
        _make_row("1.0 gram", link="https://x.invalid/i/ok.png"),
        _make_row("1.0 gram", link="https://x.invalid/i/broken.jpg"),
        _make_row("1.0 gram", link="https://x.invalid/i/gone.jpg"),
    ]
    out, report = clean_rows(rows, images)
    assert [r["image_link"] for r in out] == ["https://x.invalid/i/ok.png"]
    assert report.counts["bad_image"] == 1 and report.counts["missing_image"] == 1


def test_clean_csv_keeps_columns_and_order(tmp_path: Path) -> None:
    src = write_csv(
        tmp_path / "train.csv",
        HEADER,
        [
            ("a", "1", "voltage", "[100.0, 240.0] volt"),
            ("b", "2", "item_weight", "0.0 gram"),
            ("c", "3", "depth", "4 inch"),
        ],
    )
    report = clean_csv(src, tmp_path / "out" / "clean.csv")
    with open(tmp_path / "out" / "clean.csv", newline="") as fh:
        got = list(csv.reader(fh))
    assert got == [HEADER, ["a", "1", "voltage", "240.0 volt"], ["c", "3", "depth", "4.0 inch"]]
    assert report.rows_out == 2


def test_cli_clean_prints_counts_per_rule(tmp_path: Path, cli: CliInvoke) -> None:
    src = write_csv(tmp_path / "train.csv", HEADER, [("a", "1", "wattage", "2 horsepower"), ("b", "1", "width", "x")])
    result = cli("clean", src, "--output", tmp_path / "clean.csv")
    assert result.exit_code == 0, result.output
    assert "unit_converted" in result.output and "malformed" in result.output
    json_result = cli("clean", src, "--output", tmp_path / "clean2.csv", "--json")
    assert '"unit_converted": 1' in json_result.output
    bad = cli("clean", src, "--output", tmp_path / "c3.csv", "--list-policy", "median")
    assert bad.exit_code == 2 and "list policy" in bad.output
