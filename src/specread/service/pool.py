"""The OCR pool: reading an image is CPU-bound, so it runs off the event loop.

Each worker (a process by default, or a thread) holds one
:class:`specread.readers.Reader`, built from the settings'
:class:`~specread.settings.ReaderConfig` by :func:`specread.readers.build_reader`
in :mod:`specread.service.worker`; the pool hands it encoded images and gets
back :meth:`specread.types.ReadResult.to_dict`. A full pool answers 503 rather
than queueing without bound, and a worker process that dies (out of memory...)
breaks a process pool: it is replaced and the request gets a 503 instead of
every later request failing. Worker processes die with the server
(:mod:`specread.lifeline`), so a killed service leaves no orphans.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from specread.errors import ApiError
from specread.lifeline import lifeline
from specread.service import worker
from specread.settings import ReaderConfig, ServiceSettings

__all__ = ["OcrPool"]

log = logging.getLogger("specread.service")


class OcrPool:
    """The executor that runs :func:`specread.service.worker.read_image`, off the event loop.

    Args:
        settings: pool size, executor kind, reader config and queue bounds.
    """

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.pending = 0
        self.queued_bytes = 0
        self.ready = not settings.warmup
        self._executor: Executor | None = None

    @property
    def config(self) -> ReaderConfig:
        """What every worker builds its :class:`~specread.readers.Reader` from."""
        return self.settings.reader

    def _make(self) -> Executor:
        s = self.settings
        warm_config = self.config if s.warmup else None
        if s.executor == "thread":
            return ThreadPoolExecutor(
                s.workers, "specread-ocr", initializer=worker.init_worker, initargs=(warm_config, None)
            )
        # spawn, not fork: the server has an event loop and threads running, which fork would copy half-alive.
        return ProcessPoolExecutor(
            s.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=worker.init_worker,
            initargs=(warm_config, lifeline()),  # workers die with the server, however it ends
        )

    @property
    def executor(self) -> Executor:
        if self._executor is None:
            self._executor = self._make()
        return self._executor

    async def warm(self) -> None:
        """Start every worker (each loads its models in its initializer) and wait until they are ready."""
        loop = asyncio.get_running_loop()
        executor = self.executor
        await asyncio.gather(*(loop.run_in_executor(executor, worker.pid) for _ in range(self.settings.workers)))
        self.ready = True

    async def read(self, data: bytes, entities: tuple[str, ...], group_id: str | None) -> dict[str, Any]:
        """Read ``data`` in the pool and return the read result as plain data (:meth:`ReadResult.to_dict`).

        Raises:
            ApiError: 503 when the queue is full or a worker died.
            ImageLoadError: the image does not decode.
        """
        if self.pending >= self.settings.max_pending or self.queued_bytes + len(data) > self.settings.max_queued_bytes:
            raise ApiError(503, "busy", "the OCR queue is full; retry shortly", headers={"Retry-After": "1"})
        self.pending += 1
        self.queued_bytes += len(data)
        executor = self.executor
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(executor, worker.read_image, self.config, data, entities, group_id)
        except BrokenProcessPool:
            log.error("an OCR worker process died; starting a new pool")
            if self._executor is executor:
                self._executor = None
                executor.shutdown(wait=False, cancel_futures=True)
            raise ApiError(
                503, "worker_died", "an OCR worker died while reading; retry", headers={"Retry-After": "1"}
            ) from None
        finally:
            self.pending -= 1
            self.queued_bytes -= len(data)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
