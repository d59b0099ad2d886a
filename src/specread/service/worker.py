"""What runs inside the service's OCR pool: one reader per worker, built once.

OCR is CPU-bound and takes a fraction of a second per image, so the web
server never runs it on its event loop: requests are handed to a pool of
worker processes (or threads), each holding one reader built by
:func:`specread.readers.build_reader`. This module is imported by those
workers, so it stays free of web-framework imports.

The readers are kept per thread and keyed by their config, so a thread pool
and a process pool behave alike and several apps in one process (tests) do
not share a reader built for another config.
"""

from __future__ import annotations

import os
import threading

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from specread.lifeline import Lifeline, start_worker
from specread.readers import Reader, build_reader
from specread.settings import ReaderConfig

__all__ = ["init_worker", "pid", "read_image", "warm"]

_local = threading.local()


def init_worker(warm_config: ReaderConfig | None, line: Lifeline | None) -> None:
    """Pool initializer: optionally build the reader and load its models before the first request.

    Args:
        warm_config: the reader config to warm, or None to build the reader on first use.
        line: in worker processes, the server's :func:`specread.lifeline.lifeline`: the worker
            dies with the server (a killed service leaves no 550-760 MB orphans) and leaves Ctrl-C
            to the server, which shuts the pool down in order (otherwise every worker prints its own
            KeyboardInterrupt). None in a thread pool.
    """
    if line is not None:
        start_worker(line)
    if warm_config is not None:
        warm(warm_config)


def _reader(config: ReaderConfig) -> Reader:
    readers: dict[str, Reader] = getattr(_local, "readers", None) or {}
    _local.readers = readers
    key = repr(config)
    if key not in readers:
        readers[key] = build_reader(config)
    return readers[key]


def warm(config: ReaderConfig) -> int:
    """Build this worker's reader and load the OCR models, so the first request is not slow.

    Returns:
        The worker's process id (lets the caller count distinct warmed processes).
    """
    engine = getattr(_reader(config), "engine", None)
    if engine is not None:  # a line of text, so both the detector and the recogniser run once
        canvas = Image.new("RGB", (160, 48), "white")
        ImageDraw.Draw(canvas).text((8, 8), "warm 12 V", fill="black", font=ImageFont.load_default(size=24))
        engine(np.asarray(canvas))
    return os.getpid()


def pid() -> int:
    """The worker's process id (a no-op task: waiting for it waits for the worker's initializer)."""
    return os.getpid()


def read_image(config: ReaderConfig, data: bytes, entities: tuple[str, ...], group_id: str | None) -> dict:
    """Read one image (encoded bytes) and return :meth:`ReadResult.to_dict` (plain, picklable data).

    Raises:
        ImageLoadError: the bytes do not decode to a usable image.
        UnknownEntityError: an entity name the registry does not know.
    """
    return _reader(config).read(data, list(entities), group_id).to_dict()
