"""No odd image may stop a run: degenerate shapes, any mode and format, huge pictures, dead workers, reused outputs."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from benchmarks.hostile_corpus import jpeg_scan_bomb, png_file
from conftest import CliInvoke, FakeEngine, TinyDataset, build_tiny_dataset, make_reader, write_csv
from specread.batch import local
from specread.batch.local import predict_csv
from specread.errors import JobMismatchError, MissingImagesError
from specread.io.check import OFFICIAL_FORMAT
from specread.io.images import decode_image
from specread.io.output import job_path
from specread.pipeline import SpecReader
from specread.readers import build_reader
from specread.settings import ReaderConfig
from specread.units.registry import get_registry

HEADER = ["index", "image_link", "group_id", "entity_name"]
ENTITIES = ("item_weight", "width", "voltage")


def _outputs(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


# -- decoding: never more pixels than the OCR uses ---------------------------------------------------------------


def _encode(img: Image.Image, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    return buf.getvalue()


def test_a_large_jpeg_is_decoded_at_a_reduced_scale() -> None:
    img = Image.new("L", (8200, 4100), 255)
    ImageDraw.Draw(img).rectangle((4000, 2000, 4200, 2100), fill=0)
    arr = decode_image(_encode(img, "JPEG", quality=70), max_side=2000)
    # DCT scaling by 4 keeps the longest side at or above max_side, and the picture itself.
    assert arr.shape == (1025, 2050, 3)
    assert arr[512, 1025].max() < 64 and arr[100, 100].min() > 200


@pytest.mark.parametrize("mode", ["P", "RGBA", "LA", "I;16", "L", "1"])
def test_band_wise_reduction_equals_reducing_the_whole_picture(mode: str) -> None:
    rng = np.random.default_rng(1)
    base = Image.fromarray(rng.integers(0, 256, (1300, 4100, 3), dtype=np.uint8))
    img = base.convert("RGBA") if mode in ("RGBA", "LA") else base
    if mode == "I;16":
        img = Image.fromarray(rng.integers(0, 65535, (1300, 4100), dtype=np.uint16))
    else:
        img = img.convert(mode)
    data = _encode(img, "PNG")
    whole = decode_image(data)  # no reduction
    reduced = decode_image(data, max_side=2000)  # factor 2, in bands of 256 output rows
    expected = np.asarray(Image.fromarray(whole).reduce(2))
    assert reduced.shape == expected.shape == (650, 2050, 3)
    assert np.array_equal(reduced, expected)


def test_small_pictures_are_decoded_exactly_as_before() -> None:
    img = Image.fromarray(np.random.default_rng(2).integers(0, 256, (900, 1900, 3), dtype=np.uint8))
    data = _encode(img, "PNG")
    assert np.array_equal(decode_image(data, max_side=2000), np.asarray(img))


def test_pictures_between_the_bomb_warning_and_error_limits_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow only warns up to twice this
    with pytest.raises(OSError, match="too large"):
        decode_image(_encode(Image.new("RGB", (40, 40)), "PNG"))


def test_a_jpeg_of_thousands_of_scans_is_refused_at_once() -> None:
    started = time.perf_counter()
    with pytest.raises(OSError, match="too many JPEG scans"):
        decode_image(jpeg_scan_bomb(9000, 9000, 3000), max_side=2000)
    assert time.perf_counter() - started < 1.0
    progressive = _encode(Image.new("RGB", (300, 200), "white"), "JPEG", progressive=True)
    assert decode_image(progressive).shape == (200, 300, 3)


# The process's own peak (VmHWM): ru_maxrss would carry over the pytest process's peak through
# fork and exec, so a test run late in a big suite would measure the suite, not the reader.
_MEASURE = """
import re, sys
from pathlib import Path
from specread.readers import build_reader
from specread.settings import ReaderConfig
reader = build_reader(ReaderConfig(cache_dir=None))
for path in sys.argv[1:]:
    reader.read(path, ["item_weight", "width"])
print(int(re.search(r"VmHWM:\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1)) // 1024)
"""


@pytest.mark.slow
def test_huge_cheap_pictures_keep_a_worker_under_1_gb(tmp_path: Path) -> None:
    files = {
        "palette-9400.png": png_file(9400, 9400),  # 88 Mpx in 11 KB: the case
        "gray16-9000.png": png_file(9000, 9000, bit_depth=16, color_type=0),
        "strip-2x100000.png": png_file(2, 100000),
        "strip-100000x2.png": png_file(100000, 2),
    }
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    peaks = {}
    for name, data in files.items():  # one worker per picture, as a pool worker meets them one at a time
        (tmp_path / name).write_bytes(data)
        done = subprocess.run(
            [sys.executable, "-c", _MEASURE, str(tmp_path / name)], capture_output=True, text=True, timeout=300, env=env
        )
        assert done.returncode == 0, done.stderr[-2000:]
        peaks[name] = int(done.stdout.split()[-1])
    assert max(peaks.values()) < 1024, f"peak RSS per picture, MB: {peaks}"


# -- any image, through the real reader -------------------------------------------------------------------------

_SAVE_MODES = {
    "PNG": ("1", "L", "LA", "P", "RGB", "RGBA", "I;16"),
    "JPEG": ("L", "RGB", "CMYK"),
    "GIF": ("L", "P"),
    "BMP": ("1", "L", "P", "RGB"),
    "TIFF": ("1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I", "F"),
    "WEBP": ("RGB", "RGBA"),
}


@st.composite
def images(draw: st.DrawFn) -> tuple[bytes, str]:
    fmt = draw(st.sampled_from(sorted(_SAVE_MODES)))
    mode = draw(st.sampled_from(_SAVE_MODES[fmt]))
    shape = draw(st.sampled_from(["any", "thin", "tall"]))
    if shape == "thin":
        width, height = draw(st.integers(2000, 60000)), draw(st.integers(1, 4))
    elif shape == "tall":
        width, height = draw(st.integers(1, 4)), draw(st.integers(2000, 60000))
    else:
        width, height = draw(st.integers(1, 1400)), draw(st.integers(1, 1400))
    if fmt == "WEBP":
        width, height = min(width, 16383), min(height, 16383)
    img = Image.new("RGB", (width, height), "white")
    if draw(st.booleans()):
        ImageDraw.Draw(img).text((4, max(0, height // 2 - 6)), "Net Wt 500 g 12 V", fill="black")
    if draw(st.booleans()):
        seed = draw(st.integers(0, 2**16))
        noise = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
        img = Image.blend(img, Image.fromarray(noise), 0.3)
    if mode == "I;16":
        img = Image.fromarray(np.asarray(img.convert("L"), dtype=np.uint16) * 257)
    elif mode in ("I", "F"):
        img = img.convert(mode)
    else:
        img = img.convert(mode)
    exif = Image.Exif()
    exif[0x0112] = draw(st.integers(1, 8))
    options: dict[str, object] = {"exif": exif} if fmt in ("JPEG", "PNG", "WEBP", "TIFF") else {}
    return _encode(img, fmt, **options), f"{fmt}/{mode}/{width}x{height}"


@pytest.fixture(scope="module")
def real_reader() -> SpecReader:
    return build_reader(ReaderConfig(cache_dir=None))


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(image=images(), group=st.sampled_from(["", "0", "1"]))
def test_any_image_gives_a_valid_row_for_every_entity(
    real_reader: SpecReader, image: tuple[bytes, str], group: str
) -> None:
    data, label = image
    registry = get_registry()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "images").mkdir()
        (root / "images" / "picture.img").write_bytes(data)
        rows = [(str(i), "https://example.invalid/picture.img", group, e) for i, e in enumerate(ENTITIES)]
        input_csv = write_csv(root / "in.csv", HEADER, rows)
        stats = predict_csv(input_csv, root / "images", root / "out.csv", reader=real_reader)
        out = _outputs(root / "out.csv")
    assert stats.failed_images == 0, (label, stats.warnings)  # handled, not merely caught
    assert [r[0] for r in out[1:]] == ["0", "1", "2"], label
    for (_, prediction), entity in zip(out[1:], ENTITIES, strict=True):
        if prediction:
            assert OFFICIAL_FORMAT.match(prediction), (label, prediction)
            assert prediction.split(" ", 1)[1] in registry.allowed(entity), (label, prediction)


# -- a worker that dies costs only its image -------------------------------------------------------------------


def test_a_dead_worker_costs_only_its_image(
    tmp_path: Path, fake_engine: FakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = build_tiny_dataset(tmp_path / "d", fake_engine)
    read_rows = local.read_image_rows

    def deadly(reader, path: Path | None, rows):  # type: ignore[no-untyped-def]
        if path is not None and path.name == "img_002.png":
            os._exit(9)  # as if killed for memory, or a crash in native code
        return read_rows(reader, path, rows)

    # The pool forks, so the workers inherit these patches.
    monkeypatch.setattr(local, "read_image_rows", deadly)
    monkeypatch.setattr(local, "build_reader", lambda config: make_reader(fake_engine))
    out = tmp_path / "out.csv"
    stats = predict_csv(ds.input_csv, ds.images, out, ReaderConfig(scorer="rules", cache_dir=None), workers=2)

    assert stats.failed_images == 1 and stats.failures_by_kind == {"worker died": 1}
    preds = dict(_outputs(out)[1:])
    assert list(preds) == ds.indices
    for index, name, _, gold in ds.rows:
        if name != "img_002.png":
            assert preds[index] == gold, name
    assert "img_002.png" in stats.warnings[0]


# -- resume only resumes the same job ----------------------------------------------------------------------------


def _other_input(ds: TinyDataset, path: Path) -> Path:
    """The same images, asked in another order: index 0 now means another image."""
    rows = [(i, ds.link(name), "0", e) for i, (_, name, e, _) in enumerate(reversed(ds.rows))]
    return write_csv(path, HEADER, rows)


def test_an_output_of_another_input_is_refused(
    cli: CliInvoke, tmp_dataset: TinyDataset, fake_rapidocr: FakeEngine, tmp_path: Path
) -> None:
    out = tmp_path / "out.csv"
    assert cli("predict", tmp_dataset.input_csv, "--images", tmp_dataset.images, "-o", out).exit_code == 0
    before = out.read_bytes()
    calls = fake_rapidocr.calls

    other = _other_input(tmp_dataset, tmp_path / "other.csv")
    result = cli("predict", other, "--images", tmp_dataset.images, "-o", out)

    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "was written by another job (different input rows)" in text and "--overwrite" in text
    assert "Traceback" not in result.output
    assert out.read_bytes() == before and fake_rapidocr.calls == calls

    result = cli("predict", other, "--images", tmp_dataset.images, "-o", out, "--overwrite")
    assert result.exit_code == 0, result.output
    preds = dict(_outputs(out)[1:])
    assert preds["1"] == tmp_dataset.rows[-2][3] != ""  # the new job's own answer for its index 1
    assert json.loads(job_path(out).read_text())["columns"] == ["index", "prediction"]


def test_other_settings_or_columns_are_refused(
    cli: CliInvoke, tmp_dataset: TinyDataset, fake_rapidocr: FakeEngine, tmp_path: Path
) -> None:
    out = tmp_path / "out.csv"
    args = ("predict", tmp_dataset.input_csv, "--images", tmp_dataset.images, "-o", out)
    assert cli(*args).exit_code == 0
    result = cli(*args, "--scorer", "rules")
    assert result.exit_code == 2 and "different reader settings" in " ".join(result.output.split())
    result = cli(*args, "--confidence")
    assert result.exit_code == 2 and "different columns" in " ".join(result.output.split())
    result = cli(*args)  # the same job again: resumed, nothing to do
    assert result.exit_code == 0 and f"{len(tmp_dataset.rows)} rows resumed" in result.output


def test_a_file_no_job_wrote_is_refused(tmp_dataset: TinyDataset, fake_engine: FakeEngine, tmp_path: Path) -> None:
    out = write_csv(tmp_path / "out.csv", ["index", "prediction"], [("0", "1.0 gram")])
    with pytest.raises(JobMismatchError, match=r"not written by this job \(no out.job.json\)"):
        predict_csv(tmp_dataset.input_csv, tmp_dataset.images, out, reader=make_reader(fake_engine))
    assert _outputs(out) == [["index", "prediction"], ["0", "1.0 gram"]]
    assert fake_engine.calls == 0


def test_another_specread_version_is_refused(
    tmp_dataset: TinyDataset, fake_engine: FakeEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out.csv"
    predict_csv(tmp_dataset.input_csv, tmp_dataset.images, out, reader=make_reader(fake_engine))
    monkeypatch.setattr(local, "__version__", "99.0")
    with pytest.raises(JobMismatchError, match="different specread version"):
        predict_csv(tmp_dataset.input_csv, tmp_dataset.images, out, reader=make_reader(fake_engine))


# -- say what went wrong, once ------------------------------------------------------------------------------------


def test_most_images_missing_stops_before_any_ocr(
    cli: CliInvoke, tmp_dataset: TinyDataset, fake_rapidocr: FakeEngine, tmp_path: Path
) -> None:
    empty = tmp_path / "not-downloaded"
    empty.mkdir()
    (empty / "img_000.png").write_bytes((tmp_dataset.images / "img_000.png").read_bytes())  # 1 of 6 is there
    out = tmp_path / "out.csv"

    result = cli("predict", tmp_dataset.input_csv, "--images", empty, "-o", out)

    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "5 of the 6 images to read are not in" in text
    assert "--download" in text and "specread download" in text and "Traceback" not in text
    assert fake_rapidocr.calls == 0 and not out.exists() and not job_path(out).exists()

    result = cli("predict", tmp_dataset.input_csv, "--images", empty, "-o", out, "--allow-missing")
    assert result.exit_code == 0, result.output
    assert "5 unreadable images" in result.output and "5 file not found" in " ".join(result.output.split())
    with open(tmp_path / "out.failures.csv", newline="", encoding="utf-8") as fh:
        assert len(list(csv.DictReader(fh))) == 5


def test_a_few_missing_images_do_not_stop_the_run(tmp_dataset: TinyDataset, fake_engine: FakeEngine) -> None:
    (tmp_dataset.images / "img_003.png").unlink()
    stats = predict_csv(
        tmp_dataset.input_csv, tmp_dataset.images, tmp_dataset.root / "out.csv", reader=make_reader(fake_engine)
    )
    assert stats.failures_by_kind == {"file not found": 1}
    with pytest.raises(MissingImagesError):
        for name in ("img_000.png", "img_001.png", "img_002.png"):
            (tmp_dataset.images / name).unlink()
        predict_csv(tmp_dataset.input_csv, tmp_dataset.images, tmp_dataset.root / "o2.csv")
