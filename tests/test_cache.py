"""ocr/cache.py and SpecReader.ocr: each unique image content is read once per engine fingerprint."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import FakeEngine, make_page, make_reader
from specread.io.images import image_digest
from specread.ocr.cache import OcrCache, default_cache_dir
from specread.ocr.engine import OcrEngine
from specread.readers import build_reader
from specread.settings import ReaderConfig


def _make_png(seed: int = 0) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 256, size=(20, 30, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr, "RGB").save(buf, "PNG")
    return buf.getvalue()


def _make_engine(data: bytes, lines: list[str], **kwargs: str) -> FakeEngine:
    engine = FakeEngine(**kwargs)
    engine.register(Image.open(io.BytesIO(data)), lines)
    return engine


def test_fake_engine_implements_the_protocol() -> None:
    assert isinstance(FakeEngine(), OcrEngine)


def test_default_cache_dir_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPECREAD_CACHE", str(tmp_path / "here"))
    assert default_cache_dir() == tmp_path / "here"


def test_cache_round_trip(tmp_path: Path) -> None:
    cache = OcrCache(tmp_path, "engine-v1")
    page = make_page(["Net Wt 500 g", ("500", "ml")])
    assert cache.get("ab" * 32) is None
    cache.put("ab" * 32, page)
    assert cache.get("ab" * 32) == page
    assert (tmp_path / "engine-v1" / "ab" / f"{'ab' * 32}.json").is_file()
    assert not list(tmp_path.rglob("*.tmp"))


def test_disabled_cache_stores_nothing(tmp_path: Path) -> None:
    cache = OcrCache(None, "engine-v1")
    cache.put("cd" * 32, make_page(["1 kg"]))
    assert cache.get("cd" * 32) is None


def test_corrupt_entry_is_a_miss(tmp_path: Path) -> None:
    cache = OcrCache(tmp_path, "engine-v1")
    digest = "ef" * 32
    cache.put(digest, make_page(["1 kg"]))
    (tmp_path / "engine-v1" / "ef" / f"{digest}.json").write_text('{"width": 1, "tok')
    assert cache.get(digest) is None
    (tmp_path / "engine-v1" / "ef" / f"{digest}.json").write_text(json.dumps({"width": 1}))
    assert cache.get(digest) is None


def test_second_read_of_the_same_bytes_does_not_call_the_engine(tmp_path: Path) -> None:
    data = _make_png()
    engine = _make_engine(data, ["Net Wt 500 g"])
    reader = make_reader(engine, cache_dir=tmp_path)
    first = reader.pages(data)
    assert engine.calls == 1
    assert reader.pages(data) == first
    assert engine.calls == 1
    # The same content from a file, and through read(), still hits the cache.
    path = tmp_path / "copy.png"
    path.write_bytes(data)
    result = reader.read(path, ["item_weight"])
    assert engine.calls == 1
    assert result.predictions["item_weight"].text == "500.0 gram"
    # A fresh reader (a new process, a re-run) reads the entry from disk.
    assert make_reader(engine, cache_dir=tmp_path).pages(path) == first
    assert engine.calls == 1
    assert (tmp_path / engine.fingerprint() / image_digest(data)[:2] / f"{image_digest(data)}.json").is_file()


def test_different_fingerprints_do_not_share_entries(tmp_path: Path) -> None:
    data = _make_png()
    old = _make_engine(data, ["Net Wt 500 g"], version="1")
    new = _make_engine(data, ["Net Wt 750 g"], version="2")
    assert old.fingerprint() != new.fingerprint()
    assert make_reader(old, cache_dir=tmp_path).read(data, ["item_weight"]).predictions["item_weight"].text == (
        "500.0 gram"
    )
    assert make_reader(new, cache_dir=tmp_path).read(data, ["item_weight"]).predictions["item_weight"].text == (
        "750.0 gram"
    )
    assert (old.calls, new.calls) == (1, 1)
    assert {p.name for p in tmp_path.iterdir()} == {old.fingerprint(), new.fingerprint()}


def test_different_bytes_are_different_entries(tmp_path: Path) -> None:
    a, b = _make_png(1), _make_png(2)
    engine = _make_engine(a, ["1 kg"])
    engine.register(Image.open(io.BytesIO(b)), ["2 kg"])
    reader = make_reader(engine, cache_dir=tmp_path)
    assert reader.pages(a) != reader.pages(b)
    assert engine.calls == 2


def test_no_cache_calls_the_engine_every_time(tmp_path: Path) -> None:
    data = _make_png()
    engine = _make_engine(data, ["1 kg"])
    reader = make_reader(engine, cache_dir=None)
    reader.pages(data)
    reader.pages(data)
    assert engine.calls == 2


def test_arrays_bypass_the_cache(tmp_path: Path) -> None:
    data = _make_png()
    engine = _make_engine(data, ["1 kg"])
    reader = make_reader(engine, cache_dir=tmp_path)
    arr = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    reader.pages(arr)
    reader.pages(arr)
    assert engine.calls == 2
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_default_cache_dir_is_used_by_build_reader(_isolated_cache: Path) -> None:
    data = _make_png()
    engine = _make_engine(data, ["1 kg"])
    reader = build_reader(ReaderConfig(cache_dir="default"), engine=engine)
    reader.pages(data)
    assert (_isolated_cache / engine.fingerprint()).is_dir()
