"""io/dataset.py and the local runner: reading rows, writing output, resuming a killed run."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest
from PIL import Image

from conftest import FakeEngine, TinyDataset, build_tiny_dataset, make_reader, write_csv
from specread.batch.local import job_record, predict_csv
from specread.errors import InputFormatError, InputNotFoundError, MissingColumnsError
from specread.io.dataset import (
    CsvTable,
    Label,
    image_name,
    iter_unique_images,
    read_gold,
    read_labels,
    read_predictions,
    read_rows,
)
from specread.io.output import OutputWriter, finalize_output
from specread.metrics import score_rows
from specread.settings import ReaderConfig

HEADER = ["index", "image_link", "group_id", "entity_name"]


def _read_output(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


# -- input rows ---------------------------------------------------------------------


def test_read_rows(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "in.csv",
        HEADER,
        [(7, "https://x.invalid/images/a.jpg", "123", "item_weight"), (3, "https://x.invalid/b.jpg", "", " voltage ")],
    )
    rows = read_rows(path)
    assert [(r.index, r.image_link, r.group_id, r.entity_name) for r in rows] == [
        ("7", "https://x.invalid/images/a.jpg", "123", "item_weight"),
        ("3", "https://x.invalid/b.jpg", "", "voltage"),
    ]


def test_read_rows_without_index_uses_row_numbers(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "train.csv", ["image_link", "group_id", "entity_name", "entity_value"], [
        ("a.jpg", "1", "width", "10.0 centimetre"),
        ("b.jpg", "1", "height", "20.0 centimetre"),
    ])  # fmt: skip
    assert [r.index for r in read_rows(path)] == ["0", "1"]


def test_read_rows_accepts_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffindex,image_link,group_id,entity_name\r\n1,a.jpg,0,wattage\r\n".encode())
    assert read_rows(path)[0].index == "1"


@pytest.mark.parametrize(
    ("header", "rows", "message"),
    [
        (["index", "group_id", "entity_name"], [(0, "1", "width")], "image_link"),
        (["index", "image_link", "group_id"], [(0, "a.jpg", "1")], "entity_name"),
        (HEADER, [(0, "a.jpg", "1", "colour")], "unknown entity 'colour'"),
        (HEADER, [(0, "a.jpg", "1", "width"), (0, "b.jpg", "1", "height")], "duplicate index '0'"),
        (HEADER, [("", "a.jpg", "1", "width")], "empty index"),
    ],
)
def test_read_rows_rejects_bad_input(tmp_path: Path, header: list[str], rows: list[tuple], message: str) -> None:
    path = write_csv(tmp_path / "bad.csv", header, rows)
    with pytest.raises(InputFormatError) as info:
        read_rows(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_read_rows_empty_file_and_missing_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(InputFormatError, match="missing required column"):
        read_rows(empty)
    with pytest.raises(InputFormatError, match="file not found"):
        read_rows(tmp_path / "nope.csv")


def test_missing_file_and_columns_are_also_the_builtin_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        read_labels(tmp_path / "nope.csv")
    assert isinstance(info.value, InputNotFoundError) and info.value.filename == str(tmp_path / "nope.csv")
    bad = write_csv(tmp_path / "bad.csv", ["image_link", "entity_name"], [("a.jpg", "width")])
    with pytest.raises(KeyError) as missing:
        read_labels(bad)
    assert isinstance(missing.value, MissingColumnsError)
    assert str(missing.value).startswith(f"{bad}: missing required column(s) entity_value")


LABEL_HEADER = ["image_link", "group_id", "entity_name", "entity_value"]


def test_read_labels(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"  # train.csv: no index; a byte order mark and CRLF as Excel writes them
    path.write_bytes(
        "\ufeffimage_link,group_id,entity_name,entity_value,image_file\r\n"
        "https://x.invalid/I/a.jpg, 12 ,width,10.0 centimetre,images/a.jpg\r\n"
        "\r\n"
        'https://x.invalid/I/b.jpg,12,item_weight,"[1.0, 2.0] gram",\r\n'.encode()
    )
    labels = read_labels(path)
    assert labels == [
        Label("0", "https://x.invalid/I/a.jpg", "12", "width", "10.0 centimetre", "images/a.jpg"),
        Label("1", "https://x.invalid/I/b.jpg", "12", "item_weight", "[1.0, 2.0] gram"),
    ]
    assert [label.line for label in labels] == [2, 4]  # the blank line is skipped, not counted as a row
    assert [label.image for label in labels] == ["a.jpg", "b.jpg"]
    with_index = write_csv(tmp_path / "gold.csv", ["index", *LABEL_HEADER], [(7, "c.jpg", "", "voltage", "")])
    assert read_labels(with_index) == [Label("7", "c.jpg", "", "voltage", "")]


def _latin1_csv(path: Path) -> Path:
    path.write_bytes(
        b"index,image_link,group_id,entity_name,entity_value\n"
        b"0,a.jpg,1,width,10.0 centimetre\n"
        b"1,b.jpg,caf\xe9,width,12.0 centimetre\n"  # Latin-1 \xe9: not UTF-8
    )
    return path


@pytest.mark.parametrize("read", [read_rows, read_labels, read_gold])
def test_a_latin1_csv_is_refused_with_its_line(tmp_path: Path, read) -> None:
    path = _latin1_csv(tmp_path / "latin1.csv")
    with pytest.raises(InputFormatError) as info:
        read(path)
    message = str(info.value)
    assert message.startswith(f"{path}: line 3: not UTF-8 text (byte 0xe9 in column group_id)")
    assert "\n" not in message


def _binary_files(folder: Path) -> list[Path]:
    noise = folder / "noise.csv"
    noise.write_bytes(random.Random(0).randbytes(4096))
    png = folder / "image.csv"
    Image.new("RGB", (8, 8), (200, 10, 10)).save(png, format="PNG")
    utf16 = folder / "utf16.csv"
    utf16.write_bytes("index,image_link,group_id,entity_name\n0,a.jpg,1,width\n".encode("utf-16-le"))
    return [noise, png, utf16]


@pytest.mark.parametrize("read", [read_rows, read_labels, read_predictions])
def test_a_binary_file_is_refused_with_its_line(tmp_path: Path, read) -> None:
    noise, png, utf16 = _binary_files(tmp_path)
    for path in (noise, png, utf16):
        with pytest.raises(InputFormatError) as info:
            read(path)
        assert str(info.value).startswith(f"{path}: line "), str(info.value)
    with pytest.raises(InputFormatError, match=r"line 1: not UTF-8 text \(byte 0x89 in the header\)"):
        read(png)  # "\x89PNG"
    with pytest.raises(InputFormatError, match="line 1: a NUL byte in the header: a binary file"):
        read(utf16)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"index,prediction\n0,1.0 gram\n1,1,000 gram\n", "line 3: 3 field(s) where the header has 2"),
        (b"index,prediction\n0\n", "line 2: 1 field(s) where the header has 2"),
        (b'index,prediction\n0,"1.0\ngram"\n1,2.0 gram,x\n', "line 4: 3 field(s)"),  # a quoted field spans line 2-3
        (b"index,prediction\n0,x" + b"9" * 200_000 + b"\n", "line 2: not a readable CSV row (field larger than"),
        (b'index,prediction\n0,"1.0 gram\x00"\n', "line 2: a NUL byte in column prediction"),
    ],
)
def test_bad_rows_are_refused_with_their_line(tmp_path: Path, data: bytes, message: str) -> None:
    path = tmp_path / "out.csv"
    path.write_bytes(data)
    with pytest.raises(InputFormatError) as info:
        read_predictions(path)
    assert str(info.value).startswith(f"{path}: {message}"), str(info.value)


def test_csv_table_gives_lines_and_the_header(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(b'\xef\xbb\xbfa,b\n\n1,"x\ny"\n2,z\n')
    with CsvTable(path, required=("a",)) as table:
        assert table.header == ["a", "b"]
        assert list(table) == [(3, {"a": "1", "b": "x\ny"}), (5, {"a": "2", "b": "z"})]


@pytest.mark.parametrize(
    ("link", "name"),
    [
        ("https://m.media-amazon.com/images/I/71abc+XYZ.jpg", "71abc+XYZ.jpg"),
        ("https://example.invalid/a/b.png?width=100#frag", "b.png"),
        ("images/local.jpg", "local.jpg"),
        ("local.jpg", "local.jpg"),
        ("", ""),
    ],
)
def test_image_name(link: str, name: str) -> None:
    assert image_name(link) == name


def test_iter_unique_images_groups_in_first_appearance_order(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "in.csv", HEADER, [
        (0, "b.jpg", "1", "width"),
        (1, "a.jpg", "1", "width"),
        (2, "b.jpg", "1", "height"),
    ])  # fmt: skip
    groups = list(iter_unique_images(read_rows(path)))
    assert [(link, [r.index for r in rows]) for link, rows in groups] == [("b.jpg", ["0", "2"]), ("a.jpg", ["1"])]


def test_read_gold_and_predictions(tmp_path: Path) -> None:
    gold = write_csv(tmp_path / "gold.csv", ["index", "image_link", "group_id", "entity_name", "entity_value"], [
        (0, "a.jpg", "1", "width", "10.0 centimetre"),
        (1, "a.jpg", "1", "height", ""),
    ])  # fmt: skip
    values, entities = read_gold(gold)
    assert values == {"0": "10.0 centimetre", "1": ""}
    assert entities == {"0": "width", "1": "height"}

    preds = write_csv(tmp_path / "p.csv", ["index", "prediction"], [(0, "1.0 gram"), (1, ""), (0, "2.0 gram")])
    assert read_predictions(preds) == {"0": "2.0 gram", "1": ""}  # later rows win (resume)

    with pytest.raises(InputFormatError, match="entity_value"):
        read_gold(write_csv(tmp_path / "g2.csv", ["index", "entity_name"], [(0, "width")]))
    with pytest.raises(InputFormatError, match="index,prediction"):
        read_predictions(write_csv(tmp_path / "p2.csv", ["idx", "pred"], [(0, "")]))


# -- output writer ------------------------------------------------------------------


def test_output_writer_appends_and_resumes(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "out.csv"
    with OutputWriter(path) as w:
        assert w.done == {}
        w.write("0", "1.0 gram")
        w.write("1", "")
    assert _read_output(path) == [["index", "prediction"], ["0", "1.0 gram"], ["1", ""]]
    with OutputWriter(path) as w:
        assert w.done == {"0": "1.0 gram", "1": ""}
        w.write("2", "3.0 volt")
    assert _read_output(path)[-1] == ["2", "3.0 volt"]


def test_output_writer_confidence_column(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    with OutputWriter(path, with_confidence=True) as w:
        w.write("0", "1.0 gram", 0.123456)
        w.write("1", "", None)
    assert _read_output(path) == [["index", "prediction", "confidence"], ["0", "1.0 gram", "0.1235"], ["1", "", ""]]


def test_output_writer_repairs_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    path.write_bytes(b"index,prediction\r\n0,1.0 gram\r\n1,2.0 gr")
    with OutputWriter(path) as w:
        assert w.done == {"0": "1.0 gram"}
        w.write("1", "2.0 gram")
    assert _read_output(path) == [["index", "prediction"], ["0", "1.0 gram"], ["1", "2.0 gram"]]


@pytest.mark.parametrize("torn", [b"index,predi", b"index,prediction", b"\xef\xbb\xbfind"])
def test_output_writer_repairs_a_torn_header(tmp_path: Path, torn: bytes) -> None:
    path = tmp_path / "out.csv"
    path.write_bytes(torn)
    with OutputWriter(path) as w:
        assert w.done == {}
        w.write("0", "1.0 gram")
    assert _read_output(path) == [["index", "prediction"], ["0", "1.0 gram"]]


@pytest.mark.parametrize(
    "data",
    [
        b"index,image_link,group_id,entity_name\r\n0,a.jpg,1,width",  # the input CSV given as output
        b"some notes",
    ],
)
def test_output_writer_never_cuts_a_file_it_did_not_write(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "not-output.csv"
    path.write_bytes(data)
    with pytest.raises(InputFormatError, match="index,prediction"):
        OutputWriter(path)
    assert path.read_bytes() == data


def test_output_writer_on_an_empty_existing_file_writes_the_header(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    path.write_bytes(b"")
    with OutputWriter(path) as w:
        w.write("0", "")
    assert _read_output(path) == [["index", "prediction"], ["0", ""]]


def test_finalize_output_orders_and_dedupes(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "out.csv", ["index", "prediction"], [
        ("2", "3.0 volt"), ("0", "1.0 gram"), ("2", "4.0 volt"),
    ])  # fmt: skip
    finalize_output(path, ["0", "1", "2"])
    assert _read_output(path) == [["index", "prediction"], ["0", "1.0 gram"], ["1", ""], ["2", "4.0 volt"]]
    assert not list(tmp_path.glob("*.tmp"))


# -- the local runner ---------------------------------------------------------------


def test_predict_csv_with_a_fake_engine(tmp_dataset: TinyDataset, fake_engine: FakeEngine, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    seen: list[tuple[int, int]] = []
    stats = predict_csv(
        tmp_dataset.input_csv,
        tmp_dataset.images,
        out,
        reader=make_reader(fake_engine),
        progress=lambda done, total: seen.append((done, total)),
    )
    n_images = len({r[1] for r in tmp_dataset.rows})
    assert fake_engine.calls == n_images  # one OCR pass per unique image
    assert (stats.rows, stats.images, stats.skipped_rows, stats.failed_images) == (
        len(tmp_dataset.rows),
        n_images,
        0,
        0,
    )
    assert seen[-1] == (n_images, n_images)
    rows = _read_output(out)
    assert rows[0] == ["index", "prediction"]
    assert [r[0] for r in rows[1:]] == tmp_dataset.indices
    gold, entities = read_gold(tmp_dataset.gold_csv)
    assert score_rows(read_predictions(out), gold, entities).overall.f1 == 1.0


def test_predict_csv_with_confidence(tmp_dataset: TinyDataset, fake_engine: FakeEngine, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    predict_csv(tmp_dataset.input_csv, tmp_dataset.images, out, reader=make_reader(fake_engine), with_confidence=True)
    rows = _read_output(out)
    assert rows[0] == ["index", "prediction", "confidence"]
    for _, pred, conf in rows[1:]:
        assert (pred == "") == (float(conf or 0) == 0.0)
        assert 0.0 <= float(conf or 0) <= 1.0


def test_several_groups_on_one_image_cost_one_ocr_pass(fake_engine: FakeEngine, tmp_path: Path) -> None:
    specs = ((("Net Wt 500 g", "Width 20 cm"), (("item_weight", "500.0 gram"), ("width", "20.0 centimetre"))),)
    ds = build_tiny_dataset(tmp_path / "d", fake_engine, specs)
    # Put the two rows of the one image into different product groups.
    write_csv(ds.input_csv, HEADER, [("0", ds.link("img_000.png"), "g1", "item_weight"),
                                      ("1", ds.link("img_000.png"), "g2", "width")])  # fmt: skip
    out = tmp_path / "out.csv"
    predict_csv(ds.input_csv, ds.images, out, reader=make_reader(fake_engine, cache_dir=tmp_path / "cache"))
    assert fake_engine.calls == 1
    assert read_predictions(out) == {"0": "500.0 gram", "1": "20.0 centimetre"}


def test_resume_skips_done_rows_and_repairs_a_torn_line(
    tmp_dataset: TinyDataset, fake_engine: FakeEngine, tmp_path: Path
) -> None:
    # Rows 0 and 1 were written by an earlier (killed) run, in completion order, with values this
    # run would not produce: if they were recomputed the sentinels would change. Row 2 was torn.
    assert tmp_dataset.rows[1][1] == tmp_dataset.rows[2][1], "rows 1 and 2 share an image"
    out = tmp_path / "out.csv"
    OutputWriter(out, job=job_record(read_rows(tmp_dataset.input_csv), ReaderConfig(), False)).close()
    out.write_bytes(b"index,prediction\r\n1,61.0 watt\r\n0,999.0 gram\r\n2,23")
    stats = predict_csv(tmp_dataset.input_csv, tmp_dataset.images, out, reader=make_reader(fake_engine))

    n_images = len({r[1] for r in tmp_dataset.rows})
    assert fake_engine.calls == n_images - 1  # image 0 is done; image 1 is read again for the torn row only
    assert stats.skipped_rows == 2
    rows = _read_output(out)
    assert [r[0] for r in rows[1:]] == tmp_dataset.indices  # one row per index, in input order
    preds = dict(rows[1:])
    assert preds["0"] == "999.0 gram" and preds["1"] == "61.0 watt"
    assert preds["2"] == "230.0 volt"

    # A second run over a complete file does no OCR at all and changes nothing.
    before = out.read_bytes()
    calls = fake_engine.calls
    stats = predict_csv(tmp_dataset.input_csv, tmp_dataset.images, out, reader=make_reader(fake_engine))
    assert fake_engine.calls == calls and stats.skipped_rows == len(tmp_dataset.rows) and stats.images == 0
    assert out.read_bytes() == before


def test_predict_csv_validates_before_any_work(
    tmp_dataset: TinyDataset, fake_engine: FakeEngine, tmp_path: Path
) -> None:
    bad = write_csv(tmp_path / "bad.csv", HEADER, [("0", tmp_dataset.link("img_000.png"), "0", "colour")])
    out = tmp_path / "out.csv"
    with pytest.raises(InputFormatError, match="colour"):
        predict_csv(bad, tmp_dataset.images, out, reader=make_reader(fake_engine))
    with pytest.raises(FileNotFoundError, match="images folder"):
        predict_csv(tmp_dataset.input_csv, tmp_path / "no-images", out, reader=make_reader(fake_engine))
    assert not out.exists()
    assert fake_engine.calls == 0
