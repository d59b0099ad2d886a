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

Requests queue *here*, not in the executor: a job is submitted only when a worker
is free (one slot per worker), so a queued request whose task is cancelled (its
client went away: :func:`specread.service.limits.until_disconnected`) simply
leaves the queue; only a job already handed to a worker runs to its end. It also
means at most ``workers`` images are being copied to worker processes at once;
each copy is counted in the byte budget while its job runs.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import suppress
from typing import Any

from specread.errors import ApiError
from specread.lifeline import lifeline
from specread.service import worker
from specread.service.limits import ByteBudget, busy
from specread.settings import ReaderConfig, ServiceSettings

__all__ = ["OcrPool"]

log = logging.getLogger("specread.service")


class OcrPool:
    """The executor that runs :func:`specread.service.worker.read_image`, off the event loop.

    Args:
        settings: pool size, executor kind, reader config and queue bounds.
        budget: the app's byte budget (the copies handed to worker processes are counted in
            it); a new one of ``settings.max_queued_bytes`` if None.
    """

    def __init__(self, settings: ServiceSettings, budget: ByteBudget | None = None) -> None:
        self.settings = settings
        self.budget = budget or ByteBudget(settings.max_queued_bytes)
        self.pending = 0
        self.ready = not settings.warmup
        self._executor: Executor | None = None
        self._slots: asyncio.Semaphore | None = None  # made on the event loop that uses it

    @property
    def queued_bytes(self) -> int:
        """Bytes the app's budget holds now (request bodies, images, copies for workers)."""
        return self.budget.used

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

        Cancelled while it waits for a worker, the job is dropped; once a worker has it, it runs to its end.

        Raises:
            ApiError: 503 when the queue is full or a worker died.
            ImageLoadError: the image does not decode.
        """
        if self.pending >= self.settings.max_pending:
            raise busy("the OCR queue is full; retry shortly")
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.settings.workers)
        self.pending += 1
        try:
            await self._slots.acquire()  # the queue: a cancelled wait leaves it, nothing was submitted
            try:
                executor = self.executor
                future = self._submit(executor, data, entities, group_id)
            except BaseException:
                self._slots.release()
                raise
            return await asyncio.wrap_future(future)
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

    def _submit(self, executor: Executor, data: bytes, entities: tuple[str, ...], group_id: str | None) -> Future:
        """Hand the job to the executor; its slot (and the count of its copy) is freed when the job ends.

        The caller holds a slot (and frees it if this raises). Freed from the job's own completion, not
        the caller's, so a caller that stops waiting does not let a second job onto a busy worker.
        """
        assert self._slots is not None
        slots, loop = self._slots, asyncio.get_running_loop()
        copied = len(data) if self.settings.executor == "process" else 0  # pickled on its way to the worker
        self.budget.force(copied)

        def done(_: Future) -> None:  # in the executor's thread, or here if it ended at once
            self.budget.give(copied)
            with suppress(RuntimeError):  # the loop is closed: the server has stopped
                loop.call_soon_threadsafe(slots.release)

        try:
            future = executor.submit(worker.read_image, self.config, data, entities, group_id)
        except BaseException:
            self.budget.give(copied)
            raise
        future.add_done_callback(done)
        return future

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
