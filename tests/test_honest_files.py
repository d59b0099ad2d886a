"""Issue 18, point 5: honest files (io/dataset.py, io/files.py).

A header naming a column twice is refused (tools disagree on which one counts); the final
output and its job record keep the mode a plain create gives, and an output path that is a
symbolic link is written through: the link stays, the file it names gets the final rows.
"""

from __future__ import annotations

import csv
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import TinyDataset, make_reader, write_csv
from specread.batch.local import predict_csv
from specread.errors import InputFormatError
from specread.io.dataset import read_gold, read_labels, read_predictions, read_rows
from specread.io.files import atomic_write
from specread.io.output import job_path


@pytest.mark.parametrize(
    ("header", "read"),
    [
        (["index", "image_link", "group_id", "entity_name", "entity_name"], read_rows),
        (["index", "image_link", "image_link", "group_id", "entity_name", "entity_value"], read_labels),
        (["index", "prediction", "index"], read_predictions),
        (["index", "entity_name", "entity_value", "entity_value"], read_gold),
    ],
)
def test_a_column_named_twice_is_refused(tmp_path: Path, header: list[str], read) -> None:
    path = write_csv(tmp_path / "in.csv", header, [["x"] * len(header)])
    with pytest.raises(InputFormatError) as err:
        read(path)
    twice = next(c for c in header if header.count(c) > 1)
    assert f"duplicate column name(s) {twice!r}" in str(err.value)
    assert "line 1" in str(err.value)


def test_empty_column_names_are_not_duplicates(tmp_path: Path) -> None:
    # Spreadsheets add trailing commas; those columns are never read.
    header = ["index", "image_link", "group_id", "entity_name", "", ""]
    path = write_csv(tmp_path / "in.csv", header, [["0", "a.png", "1", "width", "", ""]])
    assert [r.index for r in read_rows(path)] == ["0"]


@pytest.fixture
def umask_027() -> Iterator[int]:
    """A umask other than the usual 022, so the test tells a plain create from a copied default."""
    old = os.umask(0o027)
    try:
        yield 0o666 & ~0o027
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_output_and_its_job_record_have_the_mode_of_a_plain_create(
    tmp_dataset: TinyDataset, tmp_path: Path, umask_027: int
) -> None:
    out = tmp_path / "out.csv"
    predict_csv(tmp_dataset.input_csv, tmp_dataset.images, out, reader=make_reader(tmp_dataset.engine))
    assert _mode(out) == umask_027
    assert _mode(job_path(out)) == umask_027


def test_a_rewrite_keeps_the_files_own_mode(tmp_path: Path, umask_027: int) -> None:
    path = tmp_path / "kept.txt"
    path.write_text("old")
    path.chmod(0o604)
    with atomic_write(path) as fh:
        fh.write("new")
    assert path.read_text() == "new" and _mode(path) == 0o604
    with atomic_write(tmp_path / "new.txt") as fh:
        fh.write("x")
    assert _mode(tmp_path / "new.txt") == umask_027


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


@pytest.mark.parametrize("overwrite", [False, True])
def test_an_output_that_is_a_link_is_written_through(tmp_dataset: TinyDataset, tmp_path: Path, overwrite: bool) -> None:
    plain = tmp_path / "plain.csv"
    predict_csv(tmp_dataset.input_csv, tmp_dataset.images, plain, reader=make_reader(tmp_dataset.engine))
    target = tmp_path / "elsewhere" / "real.csv"
    target.parent.mkdir()
    if overwrite:
        target.write_text("index,prediction\nstale,1 kg\n")
    link = tmp_path / "out.csv"
    link.symlink_to(target)

    predict_csv(
        tmp_dataset.input_csv, tmp_dataset.images, link, reader=make_reader(tmp_dataset.engine), overwrite=overwrite
    )

    assert link.is_symlink() and link.resolve() == target
    assert _rows(target) == _rows(plain)  # the final rows, in input order, not the append log
    assert not list(target.parent.glob(".*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_files_specread_fills_replace_a_planted_link_instead_of_writing_through(tmp_path: Path) -> None:
    # A link in a downloads folder or the cache must not send a write outside it.
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    planted = tmp_path / "folder" / "x.jpg"
    planted.parent.mkdir()
    planted.symlink_to(outside)
    with atomic_write(planted) as fh:
        fh.write("downloaded")
    assert outside.read_text() == "precious"
    assert not planted.is_symlink() and planted.read_text() == "downloaded"
