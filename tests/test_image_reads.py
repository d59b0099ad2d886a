"""Issue 18, point 1: what cannot be an image is never read (io/images.read_image_bytes, io/files.read_regular).

A FIFO, a device, a socket, a folder, a file of gigabytes or one that grows while it is read,
and a read that stalls: each is that image's failure with a clear reason, and a run goes on.
"""

from __future__ import annotations

import csv
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import TinyDataset, make_reader, write_csv
from specread.batch.local import predict_csv
from specread.errors import ImageLoadError, ImageTooLargeError
from specread.io import files
from specread.io.images import read_image_bytes
from specread.settings import IMAGE_LIMITS


@pytest.fixture
def odd_entries(tmp_path: Path) -> Iterator[dict[str, Path]]:
    """One of each thing an images folder may hold that is not an image file."""
    folder = tmp_path / "odd"
    folder.mkdir()
    os.mkfifo(folder / "x.jpg")
    (folder / "y.jpg").symlink_to("/dev/zero")
    with open(folder / "z.jpg", "wb") as fh:  # sparse: costs no disk
        fh.truncate(5 * 1024**3)
    (folder / "d.jpg").mkdir()
    (folder / "gone.jpg").symlink_to(folder / "nowhere.jpg")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(folder / "s.jpg"))
    try:
        yield {p.name: p for p in folder.iterdir()}
    finally:
        sock.close()


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("x.jpg", "not a regular file (a FIFO)"),
        ("y.jpg", "not a regular file (a character device)"),
        ("d.jpg", "not a regular file (a folder)"),
        ("s.jpg", "not a regular file (a socket)"),
        ("gone.jpg", "file not found"),
    ],
)
def test_what_is_not_a_regular_file_is_refused_without_opening_it(
    odd_entries: dict[str, Path], name: str, reason: str
) -> None:
    with pytest.raises(ImageLoadError) as err:
        read_image_bytes(odd_entries[name])
    assert err.value.reason == reason
    assert name in str(err.value)


def test_a_huge_file_is_refused_by_its_size_before_any_byte_is_read(odd_entries: dict[str, Path]) -> None:
    with pytest.raises(ImageTooLargeError) as err:
        read_image_bytes(odd_entries["z.jpg"])
    assert err.value.reason == f"file too large ({5 * 1024**3:,} bytes; the limit is {IMAGE_LIMITS.max_bytes:,})"


def test_the_cap_comes_from_the_settings_and_a_file_at_the_cap_is_read(tmp_path: Path) -> None:
    assert IMAGE_LIMITS.max_bytes == 50 * 1024 * 1024
    path = tmp_path / "a.png"
    path.write_bytes(b"p" * 100)
    assert read_image_bytes(path, max_bytes=100) == b"p" * 100
    with pytest.raises(ImageTooLargeError):
        read_image_bytes(path, max_bytes=99)


def test_a_file_that_gives_more_than_its_size_is_cut_at_the_cap() -> None:
    # /proc files say they are empty and give bytes when read: a file growing while it is read.
    status = Path("/proc/self/status")
    if not status.is_file() or status.stat().st_size != 0:
        pytest.skip("needs Linux procfs")
    with pytest.raises(ImageTooLargeError) as err:
        read_image_bytes(status, max_bytes=10)
    assert "grew past the limit of 10 bytes" in err.value.reason


def test_a_link_to_a_regular_file_is_followed(tmp_path: Path) -> None:
    (tmp_path / "real.png").write_bytes(b"image bytes")
    (tmp_path / "link.png").symlink_to(tmp_path / "real.png")
    assert read_image_bytes(tmp_path / "link.png") == b"image bytes"


def test_a_read_that_stalls_is_the_images_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    started = threading.Event()

    def stalled(path: Path, max_bytes: int) -> bytes:  # a read on a hung mount
        started.set()
        release.wait()
        return b""

    monkeypatch.setattr(files, "_read_capped", stalled)
    try:
        with pytest.raises(ImageLoadError) as err:
            read_image_bytes(tmp_path / "hung.png", timeout=0.05)
        assert started.is_set()
        assert err.value.reason == "read timed out (no answer from the file system in 0.05 s)"
    finally:
        release.set()


def test_errors_of_the_helper_thread_reach_the_caller(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError) as err:
        read_image_bytes(tmp_path / "missing.png", timeout=5.0)
    assert err.value.reason == "file not found"


def _answers(path: Path) -> dict[str, str]:
    with open(path, newline="", encoding="utf-8") as fh:
        return {r["index"]: r["prediction"] for r in csv.DictReader(fh)}


def test_a_run_over_odd_entries_finishes_and_lists_each_as_a_failure(
    tmp_dataset: TinyDataset, odd_entries: dict[str, Path], tmp_path: Path
) -> None:
    reader = make_reader(tmp_dataset.engine)
    clean = predict_csv(tmp_dataset.input_csv, tmp_dataset.images, tmp_path / "clean.csv", reader=reader)
    assert clean.failed_images == 0
    for name, path in odd_entries.items():
        os.rename(path, tmp_dataset.images / name)
    odd = sorted(odd_entries)
    rows = [(i, tmp_dataset.link(n), "0", e) for i, n, e, _ in tmp_dataset.rows]
    rows += [(f"odd{k}", tmp_dataset.link(name), "0", "item_weight") for k, name in enumerate(odd)]
    input_csv = write_csv(tmp_path / "input.csv", ["index", "image_link", "group_id", "entity_name"], rows)

    stats = predict_csv(
        input_csv, tmp_dataset.images, tmp_path / "out.csv", reader=make_reader(tmp_dataset.engine), allow_missing=True
    )

    assert stats.failed_images == len(odd)
    assert stats.failures_by_kind == {"not a regular file": 4, "file too large": 1, "file not found": 1}
    answers = _answers(tmp_path / "out.csv")
    assert {k: v for k, v in answers.items() if not k.startswith("odd")} == _answers(tmp_path / "clean.csv")
    with open(tmp_path / "out.failures.csv", newline="", encoding="utf-8") as fh:
        listed = {Path(r["image_link"]).name: r["reason"] for r in csv.DictReader(fh)}
    assert set(listed) == set(odd)
    assert "a FIFO" in listed["x.jpg"] and "a character device" in listed["y.jpg"]
