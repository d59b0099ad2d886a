"""The compact input table (io/rowtable.py): same validation and digest as read_rows, lookups, answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import write_csv
from specread.errors import InputFormatError
from specread.io.dataset import read_rows, rows_digest
from specread.io.rowtable import Answers, RowTable

HEADER = ["index", "image_link", "group_id", "entity_name"]


def _table(tmp_path: Path, indices: list[str]) -> RowTable:
    rows = [(i, f"https://example.invalid/{n % 3}.jpg", str(n % 2), "item_weight") for n, i in enumerate(indices)]
    return RowTable.read(write_csv(tmp_path / "in.csv", HEADER, rows))


@pytest.mark.parametrize(
    "indices",
    [["0", "1", "2", "10", "7"], ["a", "b-2", "é", "0"], ["1", "2", "007", "x,y"], ["5", "3", "-1", "4"]],
    ids=["numbers", "text", "numbers-then-text", "negative"],
)
def test_table_matches_read_rows(tmp_path: Path, indices: list[str]) -> None:
    table = _table(tmp_path, indices)
    rows = read_rows(tmp_path / "in.csv")
    assert table.n == len(rows)
    assert table.digest == rows_digest(rows)
    assert list(table.iter_indices()) == [r.index for r in rows]
    assert [table.find(r.index) for r in rows] == list(range(len(rows)))
    assert table.positions([rows[2].index, "absent", rows[0].index]).tolist() == [2, -1, 0]
    assert table.find("absent") == -1 and table.find("01") == -1
    for key in table.keys:  # every row is under the key of its image, group and entity
        for pos in table.rows_of(int(key.index)):
            row = rows[int(pos)]
            assert (row.image_link, row.group_id, row.entity_name) == (key.image_link, key.group_id, key.entity_name)
    assert sum(len(table.rows_of(k)) for k in range(len(table.keys))) == table.n


@given(st.lists(st.text(st.characters(codec="utf-8", exclude_characters="\x00\r\n"), min_size=1), max_size=30))
def test_lookup_finds_every_index(indices: list[str]) -> None:
    import tempfile

    indices = list(dict.fromkeys(i.strip() for i in indices if i.strip()))
    with tempfile.TemporaryDirectory() as tmp:
        table = _table(Path(tmp), indices)
    assert list(table.iter_indices()) == indices
    assert table.positions(indices).tolist() == list(range(len(indices)))


@pytest.mark.parametrize("indices", [["1", "2", "1"], ["a", "b", "a"], ["1", "a", "3", "1"]])
def test_duplicate_index_is_refused_on_its_line(tmp_path: Path, indices: list[str]) -> None:
    with pytest.raises(InputFormatError, match=rf"line {len(indices) + 1}: duplicate index '{indices[-1]}'"):
        _table(tmp_path, indices)


def test_keys_are_per_image_group_and_entity(tmp_path: Path) -> None:
    link = "https://example.invalid/one.jpg"
    rows = [(n, link, str(n % 2), ("width", "height")[n // 2 % 2]) for n in range(8)]
    table = RowTable.read(write_csv(tmp_path / "in.csv", HEADER, rows))
    assert len(table.keys) == 4 and list(table.images) == [link]
    assert sorted(table.rows_of(0).tolist()) == [0, 4]


def test_answers_load_the_log_last_write_wins_and_write_in_input_order(tmp_path: Path) -> None:
    table = _table(tmp_path, ["3", "1", "2"])
    log = write_csv(tmp_path / "out.csv", ["index", "prediction"], [("2", "1.0 gram"), ("9", "x"), ("2", "2.0 gram")])
    answers = Answers(table, with_confidence=False)
    answers.load(log)
    assert answers.done().tolist() == [False, False, True]
    answers.set(np.array([0]), "5.0 gram", 0.5)
    answers.write_final(tmp_path / "final.csv", ["index", "prediction"])
    assert (tmp_path / "final.csv").read_text().splitlines() == ["index,prediction", "3,5.0 gram", "1,", "2,2.0 gram"]
