"""Issue 18, point 2: the OCR cache is an optimisation, never a source of wrong answers (ocr/cache.py).

A cache that cannot be written (no space, read-only, no permission) or read still gives the
answers of an uncached run, with one warning; an entry that parses but is not a valid page is
deleted and its image read again; ``OcrPage.from_dict`` raises nothing but ``PageFormatError``.
"""

from __future__ import annotations

import csv
import errno
import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import TinyDataset, make_page, make_reader
from specread.batch.local import predict_csv
from specread.errors import PageFormatError
from specread.ocr import cache as cache_module
from specread.ocr.cache import OcrCache
from specread.types import OcrPage


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts as a new process would: no cache warning given yet."""
    monkeypatch.setattr(cache_module, "_WARNED", set())


def _answers(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def _run(ds: TinyDataset, out: Path, cache_dir: Path | None) -> list[list[str]]:
    stats = predict_csv(ds.input_csv, ds.images, out, reader=make_reader(ds.engine, cache_dir=cache_dir))
    assert stats.failed_images == 0
    return _answers(out)


def _cache_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "OCR cache" in r.getMessage()]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EIO])
def test_a_cache_that_cannot_be_written_gives_the_uncached_answers(
    tmp_dataset: TinyDataset,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    code: int,
) -> None:
    uncached = _run(tmp_dataset, tmp_path / "uncached.csv", None)

    def refused(*args: object, **kwargs: object) -> None:
        raise OSError(code, f"injected {errno.errorcode[code]}")

    monkeypatch.setattr(cache_module, "atomic_write", refused)
    with caplog.at_level(logging.WARNING, logger="specread"):
        cached = _run(tmp_dataset, tmp_path / "cached.csv", tmp_path / "cache")

    assert cached == uncached
    warnings = _cache_warnings(caplog)
    assert len(warnings) == 1 and "cannot be written" in warnings[0]
    assert not list((tmp_path / "cache").rglob("*.json"))


def test_a_cache_folder_that_cannot_be_made_gives_the_uncached_answers(
    tmp_dataset: TinyDataset, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    uncached = _run(tmp_dataset, tmp_path / "uncached.csv", None)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    with caplog.at_level(logging.WARNING, logger="specread"):
        assert _run(tmp_dataset, tmp_path / "cached.csv", blocker / "cache") == uncached
    assert len(_cache_warnings(caplog)) == 1


def test_a_cache_that_cannot_be_read_is_a_miss(
    tmp_dataset: TinyDataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uncached = _run(tmp_dataset, tmp_path / "uncached.csv", None)
    _run(tmp_dataset, tmp_path / "first.csv", tmp_path / "cache")  # fill it

    def failing(*args: object, **kwargs: object) -> bytes:
        raise OSError(errno.EIO, "injected I/O error")

    monkeypatch.setattr(cache_module, "read_regular", failing)
    calls = tmp_dataset.engine.calls
    assert _run(tmp_dataset, tmp_path / "again.csv", tmp_path / "cache") == uncached
    assert tmp_dataset.engine.calls > calls  # read again, not answered with the fallback


CORRUPT: dict[str, Any] = {
    "not an object": [1, 2, 3],
    "no tokens": {"width": 10, "height": 10},
    "tokens not a list": {"width": 10, "height": 10, "tokens": "500 g"},
    "token not an object": {"width": 10, "height": 10, "tokens": [7]},
    "quad of one point": {"width": 10, "height": 10, "tokens": [{"text": "1 kg", "score": 0.9, "quad": [[0, 0]]}]},
    "point of three numbers": {
        "width": 10,
        "height": 10,
        "tokens": [{"text": "1 kg", "score": 0.9, "quad": [[0, 0, 0]] * 4}],
    },
    "text not a string": {"width": 10, "height": 10, "tokens": [{"text": 5, "score": 0.9, "quad": [[0, 0]] * 4}]},
    "score above one": {"width": 10, "height": 10, "tokens": [{"text": "1 kg", "score": 7.0, "quad": [[0, 0]] * 4}]},
    "negative width": {"width": -3, "height": 10, "tokens": []},
    "zero height": {"width": 3, "height": 0, "tokens": []},
    "absurd width": {"width": 10**12, "height": 10, "tokens": []},
    "width a string": {"width": "10", "height": 10, "tokens": []},
    "width a boolean": {"width": True, "height": 10, "tokens": []},
    "coordinate far away": {"width": 10, "height": 10, "tokens": [{"text": "a", "score": 0.5, "quad": [[1e9, 0]] * 4}]},
    "segment of two numbers": {"width": 10, "height": 10, "tokens": [], "segments": [[0.1, 0.2]]},
    "too many tokens": {
        "width": 10,
        "height": 10,
        "tokens": [{"text": "a", "score": 0.5, "quad": [[0, 0]] * 4}] * 100_001,
    },
}


@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_an_entry_that_is_not_a_valid_page_is_deleted_and_read_again(tmp_path: Path, case: str) -> None:
    cache = OcrCache(tmp_path, "engine-v1")
    digest = "ab" * 32
    entry = tmp_path / "engine-v1" / "ab" / f"{digest}.json"
    entry.parent.mkdir(parents=True)
    entry.write_text(json.dumps(CORRUPT[case]))

    assert cache.get(digest) is None
    assert not entry.exists()
    page = make_page(["1 kg"])
    cache.put(digest, page)
    assert cache.get(digest) == page


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000 + "]" * 100_000,  # nested past the JSON parser's recursion limit
        '{"width": NaN, "height": 1, "tokens": []}',
        '{"width": 1, "height": 1, "tokens": [{"text": "a", "score": NaN, "quad": [[0, 0], [0, 0], [0, 0], [0, 0]]}]}',
        '{"width": 1, "height": 1, "tokens": [], "segments": [[Infinity, 0, 0, 0]]}',
        "\udcff not UTF-8",
    ],
)
def test_deep_or_non_finite_entries_are_misses(tmp_path: Path, text: str) -> None:
    cache = OcrCache(tmp_path, "engine-v1")
    entry = tmp_path / "engine-v1" / "cd" / f"{'cd' * 32}.json"
    entry.parent.mkdir(parents=True)
    entry.write_bytes(text.encode("utf-8", "surrogateescape"))
    assert cache.get("cd" * 32) is None
    assert not entry.exists()


def test_a_run_over_a_corrupted_cache_gives_the_uncached_answers_and_repairs_it(
    tmp_dataset: TinyDataset, tmp_path: Path
) -> None:
    uncached = _run(tmp_dataset, tmp_path / "uncached.csv", None)
    _run(tmp_dataset, tmp_path / "first.csv", tmp_path / "cache")
    entries = sorted((tmp_path / "cache").rglob("*.json"))
    for n, entry in enumerate(entries):
        entry.write_text(json.dumps(CORRUPT[sorted(CORRUPT)[n % len(CORRUPT)]]))

    assert _run(tmp_dataset, tmp_path / "again.csv", tmp_path / "cache") == uncached
    for entry in entries:  # each bad entry was replaced by the page read again
        OcrPage.from_dict(json.loads(entry.read_text()))


def test_a_page_round_trips() -> None:
    page = make_page(["Net Wt 500 g", ("500", "ml")])
    assert OcrPage.from_dict(json.loads(json.dumps(page.to_dict()))) == page


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=30,
)
_page_like = st.fixed_dictionaries(
    {"width": _json | st.integers(), "height": _json | st.integers(), "tokens": st.lists(_json, max_size=4)},
    optional={"segments": _json},
)


@given(st.one_of(_json, _page_like))
def test_from_dict_raises_nothing_but_page_format_error(data: Any) -> None:
    try:
        page = OcrPage.from_dict(data)
    except PageFormatError:
        return
    assert page.width >= 1 and page.height >= 1
    assert OcrPage.from_dict(page.to_dict()) == page


@pytest.mark.parametrize("kind", ["fifo", "folder", "sparse_1gb"])
def test_an_entry_that_is_not_a_small_regular_file_is_replaced(tmp_path: Path, kind: str) -> None:
    cache = OcrCache(tmp_path, "engine-v1")
    entry = tmp_path / "engine-v1" / "ef" / f"{'ef' * 32}.json"
    entry.parent.mkdir(parents=True)
    if kind == "fifo":
        os.mkfifo(entry)  # would block a plain open() forever
    elif kind == "folder":
        entry.mkdir()
    else:
        with open(entry, "wb") as fh:
            fh.truncate(1024**3)
    assert cache.get("ef" * 32) is None
    assert not entry.exists()
    page = make_page(["2 kg"])
    cache.put("ef" * 32, page)
    assert cache.get("ef" * 32) == page
