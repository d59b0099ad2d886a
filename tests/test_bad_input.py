"""Bad input never crashes a run or loses a row; bad arguments stop it before any work starts."""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import CliInvoke, FakeEngine, TinyDataset, build_tiny_dataset, make_reader, write_csv
from specread.batch.local import predict_csv
from specread.errors import ImageLoadError, SpecreadError
from specread.io.images import decode_image, load_image

HEADER = ["index", "image_link", "group_id", "entity_name"]


def _encode(fmt: str, mode: str = "RGB", size: tuple[int, int] = (80, 60)) -> bytes:
    arr = np.random.default_rng(7).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    img = Image.fromarray(arr, "RGB").convert(mode)
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


BAD_FILES: dict[str, bytes | None] = {
    "missing.jpg": None,  # listed in the CSV, never written
    "empty.jpg": b"",
    "text.jpg": b"this is not an image, it is a text file\n",
    "corrupt.png": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
    "half.png": _encode("PNG")[: len(_encode("PNG")) // 2],
    "half.jpg": _encode("JPEG")[: len(_encode("JPEG")) // 2],
    "header.jpg": _encode("JPEG")[:40],
}


@pytest.mark.parametrize("name", [n for n, data in BAD_FILES.items() if data is not None])
def test_decode_image_raises_image_load_error(name: str) -> None:
    with pytest.raises(ImageLoadError) as info:
        decode_image(BAD_FILES[name], name)  # type: ignore[arg-type]
    assert isinstance(info.value, SpecreadError) and isinstance(info.value, OSError)
    assert name in str(info.value)


def test_load_image_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match="file not found"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ImageLoadError):
        load_image(tmp_path)  # a folder, not a file


def test_decompression_bomb_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(ImageLoadError, match="too large"):
        decode_image(_encode("PNG", size=(40, 40)))


@pytest.mark.parametrize(
    ("fmt", "mode"),
    [("PNG", "RGBA"), ("PNG", "P"), ("PNG", "L"), ("PNG", "LA"), ("GIF", "P"), ("WEBP", "RGB"), ("JPEG", "CMYK")],
)
def test_any_mode_decodes_to_rgb(fmt: str, mode: str) -> None:
    arr = decode_image(_encode(fmt, mode))
    assert arr.shape == (60, 80, 3) and arr.dtype == np.uint8


def test_transparent_pixels_become_white() -> None:
    img = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    assert (decode_image(buf.getvalue()) == 255).all()


def test_exif_rotation_is_applied() -> None:
    img = Image.fromarray(np.zeros((10, 30, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to view
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif)
    assert decode_image(buf.getvalue()).shape == (30, 10, 3)


@pytest.mark.parametrize("size", [(1, 1), (1, 7), (7, 1), (2, 3000)])
def test_degenerate_shapes_decode(size: tuple[int, int]) -> None:
    assert decode_image(_encode("PNG", size=size)).shape == (size[1], size[0], 3)


def _make_bad_dataset(root: Path, engine: FakeEngine) -> TinyDataset:
    """The tiny dataset plus one row per bad file (and a row with no image link)."""
    ds = build_tiny_dataset(root, engine)
    for name, data in BAD_FILES.items():
        if data is not None:
            (ds.images / name).write_bytes(data)
        ds.rows.append((str(len(ds.rows)), name, "item_weight", ""))
    rows = [(i, ds.link(name), "0", e) for i, name, e, _ in ds.rows]
    rows.append((str(len(rows)), "", "0", "voltage"))
    ds.rows.append((str(len(ds.rows)), "", "voltage", ""))
    write_csv(ds.input_csv, HEADER, rows)
    return ds


def test_bad_images_give_the_fallback_answer_and_grouped_warnings(
    tmp_path: Path, fake_engine: FakeEngine, caplog: pytest.LogCaptureFixture
) -> None:
    ds = _make_bad_dataset(tmp_path / "d", fake_engine)
    out = tmp_path / "out.csv"
    reader = make_reader(fake_engine, priors_fallback=True)
    with caplog.at_level(logging.WARNING, logger="specread"):
        stats = predict_csv(ds.input_csv, ds.images, out, reader=reader)

    with open(out, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))[1:]
    assert [r[0] for r in rows] == ds.indices  # every index once, in input order
    preds = dict(rows)
    n_bad = len(BAD_FILES) + 1
    for index, name, entity, _ in ds.rows[-n_bad:]:
        guess = reader.blind_guess(entity or "voltage", "0")
        assert guess.text and preds[index] == guess.text, name  # the reader's fallback, as for an image with no value
    assert preds["0"] == "500.0 gram"  # good images around them are still read
    assert stats.failed_images == n_bad and len(stats.warnings) == n_bad
    assert sum(stats.failures_by_kind.values()) == n_bad
    assert stats.failures_by_kind["file not found"] == 1 and stats.failures_by_kind["no image link"] == 1
    for name in BAD_FILES:
        assert any(name in w for w in stats.warnings), name

    # Every failure is in the failures file next to the output, with its rows.
    assert stats.failures_file == tmp_path / "out.failures.csv"
    with open(stats.failures_file, newline="", encoding="utf-8") as fh:
        listed = list(csv.DictReader(fh))
    assert len(listed) == n_bad
    assert {r["indices"] for r in listed} == {index for index, *_ in ds.rows[-n_bad:]}
    assert any(r["image_link"].endswith("half.jpg") and "truncated" in r["reason"] for r in listed)

    # Said once: the first five one by one, then one line that counts, then a summary by kind.
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(logged) == 5 + 2, logged
    assert "listed in" in logged[5] and "8 images could not be read" in logged[-1]
    assert "1 file not found" in logged[-1] and "1 no image link" in logged[-1]


def test_a_rerun_retries_the_failed_images_only(tmp_path: Path, fake_engine: FakeEngine) -> None:
    ds = _make_bad_dataset(tmp_path / "d", fake_engine)
    out = tmp_path / "out.csv"
    predict_csv(ds.input_csv, ds.images, out, reader=make_reader(fake_engine))
    calls = fake_engine.calls
    Image.new("RGB", (8, 8), "white").save(ds.images / "missing.jpg", "PNG")  # the user fetched one image

    stats = predict_csv(ds.input_csv, ds.images, out, reader=make_reader(fake_engine))

    assert fake_engine.calls == calls + 1  # only the image that is now there is read; good ones are not
    assert stats.images == len(BAD_FILES) + 1 and stats.failed_images == len(BAD_FILES)
    with open(tmp_path / "out.failures.csv", newline="", encoding="utf-8") as fh:
        assert not any(r["image_link"].endswith("missing.jpg") for r in csv.DictReader(fh))


def test_a_failure_anywhere_in_the_pipeline_is_the_images_alone(
    tmp_path: Path, fake_engine: FakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from specread.rank.select import Selector

    ds = build_tiny_dataset(tmp_path / "d", fake_engine)
    bad_link = ds.link("img_001.png")
    real_select = Selector._select

    def select(self, page, entities, group_id=None):  # type: ignore[no-untyped-def]
        if any(t.text == "Input 230V" for t in page.tokens):  # img_001's first line (conftest.TINY_SPECS)
            raise ZeroDivisionError("a bug in selection")
        return real_select(self, page, entities, group_id)

    monkeypatch.setattr(Selector, "_select", select)
    out = tmp_path / "out.csv"
    stats = predict_csv(ds.input_csv, ds.images, out, reader=make_reader(fake_engine))

    assert stats.failed_images == 1 and stats.failures_by_kind == {"ZeroDivisionError while reading": 1}
    assert bad_link in stats.warnings[0] and "a bug in selection" in stats.warnings[0]
    with open(out, newline="", encoding="utf-8") as fh:
        assert [r["index"] for r in csv.DictReader(fh)] == ds.indices


def test_reader_raises_image_load_error_not_something_else(fake_engine: FakeEngine, tmp_path: Path) -> None:
    reader = make_reader(fake_engine)
    for name, data in BAD_FILES.items():
        path = tmp_path / name
        if data is not None:
            path.write_bytes(data)
        with pytest.raises(ImageLoadError):
            reader.read(path, ["item_weight"])
    assert fake_engine.calls == 0


def test_cli_predict_survives_bad_images(cli: CliInvoke, tmp_path: Path, fake_rapidocr: FakeEngine) -> None:
    ds = _make_bad_dataset(tmp_path / "d", fake_rapidocr)
    out = tmp_path / "out.csv"
    result = cli("predict", ds.input_csv, "--images", ds.images, "-o", out)
    assert result.exit_code == 0, result.output
    assert f"{len(BAD_FILES) + 1} unreadable images" in result.output
    assert "1 file not found" in " ".join(result.output.split())
    assert "Traceback" not in result.output
    with open(out, newline="", encoding="utf-8") as fh:
        assert [r["index"] for r in csv.DictReader(fh)] == ds.indices


@pytest.mark.parametrize(
    ("header", "row", "message"),
    [
        (HEADER, ("0", "https://example.invalid/images/img_000.png", "0", "colour"), "unknown entity 'colour'"),
        (HEADER, ("0", "https://example.invalid/images/img_000.png", "0", ""), "unknown entity ''"),
        (["index", "group_id", "entity_name"], ("0", "0", "item_weight"), "missing required column(s) image_link"),
        (["index", "image_link", "group_id"], ("0", "x.png", "0"), "missing required column(s) entity_name"),
    ],
)
def test_cli_predict_stops_on_bad_csv_before_any_work(
    cli: CliInvoke, tmp_dataset: TinyDataset, fake_rapidocr: FakeEngine, tmp_path: Path, header: list[str],
    row: tuple[str, ...], message: str,
) -> None:  # fmt: skip
    # The bad row comes last, after rows that would be read first.
    good = [(f"g{i}", tmp_dataset.link(name), "0", e) for i, name, e, _ in tmp_dataset.rows]
    bad = write_csv(tmp_path / "bad.csv", header, [*good, row] if header == HEADER else [row])
    out = tmp_path / "out.csv"
    result = cli("predict", bad, "--images", tmp_dataset.images, "-o", out)
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "error:" in text and message in text and str(bad) in text
    assert "Traceback" not in result.output
    assert not out.exists()
    assert fake_rapidocr.calls == 0


def test_cli_predict_missing_input_or_images(
    cli: CliInvoke, tmp_dataset: TinyDataset, fake_rapidocr: FakeEngine, tmp_path: Path
) -> None:
    out = tmp_path / "out.csv"
    result = cli("predict", tmp_path / "nope.csv", "--images", tmp_dataset.images, "-o", out)
    assert result.exit_code == 2
    assert "nope.csv: file not found" in result.output
    result = cli("predict", tmp_dataset.input_csv, "--images", tmp_path / "no-images", "-o", out)
    assert result.exit_code == 2
    assert "images folder not found" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()
    assert fake_rapidocr.calls == 0
