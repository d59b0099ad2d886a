"""The EDA report: one self-contained HTML file with every section, from the library and the CLI."""

from __future__ import annotations

import base64
import csv
import re
from pathlib import Path

from conftest import CliInvoke
from specread.labels.eda import build_report
from specread.synth import make_dataset


def _make_labels(root: Path) -> tuple[Path, Path]:
    """Generated labels with images, plus the anomalies clean acts on and one row without an image."""
    make_dataset(root, n_images=6, seed=3, n_values=2)
    with open(root / "gold.csv", newline="") as fh:
        rows = [[r["image_link"], r["group_id"], r["entity_name"], r["entity_value"]] for r in csv.DictReader(fh)]
    link = rows[0][0]
    rows += [
        [link, "7", "voltage", "[100.0, 240.0] volt"],
        [link, "7", "wattage", "3.0 horsepower"],
        [link, "7", "item_volume", "12.0 ounce"],
        ["https://example.invalid/images/missing.jpg", "7", "depth", "4.0 inch"],
    ]
    labels = root / "labels.csv"
    with open(labels, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image_link", "group_id", "entity_name", "entity_value"])
        w.writerows(rows)
    return labels, root / "images"


def test_report_is_self_contained_with_every_section(tmp_path: Path) -> None:
    labels, images = _make_labels(tmp_path)
    page = build_report(labels, images, title="t")
    for heading in (
        "Entity mix",
        "Units per entity",
        "Value distributions",
        "group_id coverage",
        "Images",
        "Anomalies",
    ):
        assert f"<h2>{heading}" in page
    pngs = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(pngs) == 6
    assert all(base64.b64decode(p).startswith(b"\x89PNG") for p in pngs)
    assert not re.search(r'(src|href)="(https?:|file:|/)', page)  # nothing loaded from elsewhere
    assert "<td>list_value</td><td>1</td>" in page
    assert "<td>unit_converted</td><td>1</td>" in page
    assert "<td>missing_image</td><td>1</td>" in page
    assert "[100.0, 240.0] volt" in page and "240.0 volt" in page


def test_report_without_images_says_so(tmp_path: Path) -> None:
    labels, _ = _make_labels(tmp_path)
    page = build_report(labels)
    assert "Not inspected (no --images)" in page
    assert "<td>missing_image</td><td>0</td>" in page


def test_cli_eda_writes_the_file(tmp_path: Path, cli: CliInvoke) -> None:
    labels, images = _make_labels(tmp_path)
    out = tmp_path / "report" / "eda.html"
    result = cli("eda", labels, "--images", images, "--output", out)
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8").startswith("<!doctype html>")
    missing = cli("eda", tmp_path / "nope.csv", "--output", out)
    assert missing.exit_code == 2
