"""The local runner's batched path for readers that read several images at once (VLM, hybrid)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from PIL import Image

from conftest import FakeEngine
from specread import pipeline
from specread.batch.local import predict_csv, read_images_batch
from specread.batch.warm import ocr_into_cache
from specread.errors import ImageLoadError
from specread.io.dataset import Row
from specread.ocr.cache import OcrCache
from specread.settings import ReaderConfig, VlmSettings
from specread.types import OcrPage, Prediction, ReadResult


class _BatchReader:
    """Answers "<n>.0 gram" where n is the image's file size; records the batches it was given."""

    def __init__(self, batch_images: int = 8) -> None:
        self.batches: list[int] = []
        self.alone: list[str] = []  # images read one at a time, by name
        self.batch_images = batch_images

    def blind_guess(self, entity: str, group_id: str | None = None) -> Prediction:
        return Prediction(entity)

    def _one(self, path: Path, entities) -> ReadResult:
        data = Path(path).read_bytes()
        if not data:
            raise ImageLoadError(str(path), "file is empty")
        preds = {e: Prediction(e, float(len(data)), "gram", 0.5, "fake") for e in entities}
        return ReadResult(OcrPage((), 1, 1), preds, {})

    def read(self, image, entities, group_id=None) -> ReadResult:
        self.alone.append(Path(image).name)
        return self._one(image, entities)

    def read_many(self, items) -> list[ReadResult]:
        self.batches.append(len(items))
        return [self._one(image, entities) for image, entities, _group in items]


def _make_images(tmp_path: Path, sizes: list[int]) -> list[Path]:
    paths = []
    for i, n in enumerate(sizes):
        p = tmp_path / f"img{i}.png"
        p.write_bytes(b"x" * n)
        paths.append(p)
    return paths


def test_batch_spans_images_and_keeps_every_row(tmp_path: Path) -> None:
    paths = _make_images(tmp_path, [3, 5])
    jobs = [
        (paths[0], [Row("0", "a", "1", "item_weight"), Row("1", "a", "2", "item_weight")]),
        (paths[1], [Row("2", "b", "1", "item_weight")]),
        (None, [Row("3", "", "1", "item_weight")]),
    ]
    reader = _BatchReader()
    out = read_images_batch(reader, jobs)
    assert reader.batches == [3]  # two groups on the first image, one on the second
    assert [[r[:2] for r in rows] for rows, _ in out] == [
        [("0", "3.0 gram"), ("1", "3.0 gram")],
        [("2", "5.0 gram")],
        [("3", "")],
    ]
    assert out[0][1] is None and out[1][1] is None
    failure = out[2][1]
    assert failure is not None and failure.kind == "no image link" and failure.indices == ("3",)


def test_a_bad_image_falls_back_to_one_image_at_a_time(tmp_path: Path) -> None:
    paths = _make_images(tmp_path, [4, 0])
    jobs = [(paths[0], [Row("0", "a", "1", "item_weight")]), (paths[1], [Row("1", "b", "1", "item_weight")])]
    out = read_images_batch(_BatchReader(), jobs)
    assert out[0][0][0][:2] == ("0", "4.0 gram") and out[0][1] is None
    failure = out[1][1]
    assert out[1][0][0][:2] == ("1", "") and failure is not None and failure.kind == "file is empty"


def test_the_image_a_batch_names_as_unreadable_is_not_read_again(tmp_path: Path) -> None:
    """A read that stalls to its deadline costs the batch once, not twice: the others alone, it not again."""
    paths = _make_images(tmp_path, [4, 0, 6])
    jobs = [(p, [Row(str(i), p.name, "1", "item_weight")]) for i, p in enumerate(paths)]
    reader = _BatchReader()
    out = read_images_batch(reader, jobs)
    assert reader.alone == ["img0.png", "img2.png"]
    assert [rows[0][1] for rows, _ in out] == ["4.0 gram", "", "6.0 gram"]
    failure = out[1][1]
    assert failure is not None and failure.kind == "file is empty" and out[0][1] is None and out[2][1] is None


def test_predict_csv_uses_the_batched_path(tmp_path: Path) -> None:
    paths = _make_images(tmp_path, [1, 2, 3, 4, 5])
    input_csv = tmp_path / "in.csv"
    with open(input_csv, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["index", "image_link", "group_id", "entity_name"])
        for i, p in enumerate(paths):
            w.writerow([i, f"https://example.invalid/{p.name}", "1", "item_weight"])
    reader = _BatchReader(batch_images=2)  # a reader says how many images one read_many call should carry
    config = ReaderConfig(reader="vlm", vlm=VlmSettings(batch_images=2))
    stats = predict_csv(input_csv, tmp_path, tmp_path / "out.csv", config, workers=2, reader=reader)
    assert reader.batches == [2, 2, 1]
    with open(tmp_path / "out.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["prediction"] for r in rows] == [f"{n}.0 gram" for n in range(1, 6)]
    assert stats.rows == 5 and stats.failed_images == 0


def test_the_cache_warmer_reads_a_batch_unreadable_image_once(
    tmp_path: Path, fake_engine: FakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OCR into the cache: the image a batch names as unreadable is reported, not read again; the rest are cached."""
    good = []
    for i in range(2):
        good.append(tmp_path / f"ok{i}.png")
        Image.new("RGB", (20 + i, 20), "white").save(good[-1])
        fake_engine.register(good[-1], [f"{i + 1}00 g"])
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    reads: list[str] = []
    real_read = pipeline.read_image_bytes
    monkeypatch.setattr(pipeline, "read_image_bytes", lambda path: reads.append(Path(path).name) or real_read(path))
    pages = pipeline.PageSource(fake_engine, OcrCache(tmp_path / "cache", fake_engine.fingerprint()))

    warnings = ocr_into_cache(pages, [good[0], empty, good[1]])

    assert warnings[0] == warnings[2] == "" and "empty.png" in warnings[1]
    assert reads.count("empty.png") == 1
    assert all(pages.cache.get(pipeline.image_digest(p.read_bytes())) is not None for p in good)
