"""OCR-only passes: every image read once into the OCR cache (``train``'s OCR pass, the Ray cache warmer).

Later passes (training rows, benchmarks) then read pages from the cache for free.
The pool is :func:`specread.batch.pool.process_pool`'s: its workers die with the
run, and an interrupted run stops them at once (the pages cached so far stay, so
the same command resumes).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from specread.batch.pool import process_pool
from specread.errors import unreadable_image
from specread.pipeline import PageSource, build_pages
from specread.settings import ReaderConfig

__all__ = ["ocr_into_cache", "warm_cache"]


def ocr_into_cache(pages: PageSource, paths: Sequence[Path]) -> list[str]:
    """OCR images into the cache behind ``pages``, together; per image, the warning if it cannot be read, else "".

    They are read in one :meth:`~specread.pipeline.PageSource.many` call (their text lines
    share recogniser calls); if that fails, one at a time, so a bad file costs only itself.
    """
    if len(paths) > 1:
        try:
            pages.many(list(paths))
            return [""] * len(paths)
        except Exception as exc:  # find the image at fault below
            named = unreadable_image(exc)  # one the batch could not read is reported now, unread again
            return [_warning(path, exc) if named == str(path) else _one_into_cache(pages, path) for path in paths]
    return [_one_into_cache(pages, path) for path in paths]


def _one_into_cache(pages: PageSource, path: Path) -> str:
    try:
        pages(path)
    except Exception as exc:  # an image that cannot be read is reported, never fatal
        return _warning(path, exc)
    return ""


def _warning(path: Path, exc: Exception) -> str:
    return str(exc) if isinstance(exc, OSError) else f"{path}: {type(exc).__name__}: {exc}"


_PAGES: PageSource | None = None


def _init_page_worker(config: ReaderConfig) -> None:
    global _PAGES
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _PAGES = build_pages(config)[0]


def _ocr_only(paths: Sequence[Path]) -> list[str]:
    assert _PAGES is not None, "worker not initialised"
    return ocr_into_cache(_PAGES, paths)


def warm_cache(
    paths: Sequence[Path],
    config: ReaderConfig,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> list[str]:
    """OCR every image into the cache (in parallel), so later passes read pages for free.

    Returns:
        The warnings for images that could not be read.
    """
    if config.cache_dir is None:
        raise ValueError("warming the cache needs a cache_dir")
    warnings: list[str] = []
    unique = list(dict.fromkeys(paths))
    size = config.ocr.batch_images
    chunks = [unique[start : start + size] for start in range(0, len(unique), size)]
    done = 0
    with process_pool(max(1, workers), _init_page_worker, config) as pool:
        for found in pool.map(_ocr_only, chunks):
            warnings += [warning for warning in found if warning]
            done += len(found)
            if progress:
                progress(done, len(unique))
    return warnings
