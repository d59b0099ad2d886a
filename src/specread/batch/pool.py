"""The runners' process pools: workers that die with the run, a run that stops at once when told to.

Every pool here starts its workers through :func:`specread.lifeline.start_worker`,
so a killed run leaves no worker behind (``PR_SET_PDEATHSIG`` and a watchdog on
the parent pid). A run that is interrupted (Ctrl-C, SIGTERM: a ``KeyboardInterrupt``)
or fails stops its pool without waiting: queued work is cancelled and the
workers are killed, since what they hold is lost with the run anyway and a
``with ProcessPoolExecutor`` would first finish everything submitted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager, suppress
from typing import Any

from specread.lifeline import lifeline, start_worker

__all__ = ["EXIT_GRACE_S", "process_pool", "results_as_done", "stuck_workers"]

log = logging.getLogger("specread")

EXIT_GRACE_S = 10.0
"""Seconds an idle worker has to exit at the end of a run before it is killed."""

_STUCK: list[Any] = []
"""Workers that outlived a kill: a thread stuck in a read the kernel cannot interrupt (a hung mount)."""


def stuck_workers() -> int:
    """How many workers of this process's pools could not be ended (see :func:`process_pool`)."""
    _STUCK[:] = [p for p in _STUCK if p.is_alive()]
    return len(_STUCK)


def _stop(pool: ProcessPoolExecutor, grace: float = 0.0) -> None:
    """Cancel what is queued and end the workers: each has ``grace`` seconds to exit, then is killed."""
    workers = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in workers:
        with suppress(OSError, ValueError, AttributeError, AssertionError):
            process.join(timeout=grace)
    for process in workers:
        with suppress(OSError, ValueError, AttributeError):
            if process.is_alive():
                process.kill()
    for process in workers:
        with suppress(OSError, ValueError, AttributeError, AssertionError):
            process.join(timeout=5)
            if process.is_alive():
                _STUCK.append(process)


@contextmanager
def process_pool(workers: int, initializer: Callable[..., Any], *initargs: Any) -> Iterator[ProcessPoolExecutor]:
    """A process pool whose workers die with this process; stopped without waiting if the block is left by an error.

    At the end of the block the workers have :data:`EXIT_GRACE_S` to exit and are then killed, so
    a worker whose reader thread is stuck in the kernel (an image on a hung mount, abandoned at its
    read deadline) never holds the run back: the caller finishes its output, and
    :func:`stuck_workers` says whether one could not be ended at all.

    Args:
        workers: processes.
        initializer: run in each worker once it is tied to this process (after :func:`start_worker`).
        initargs: the initializer's arguments.
    """
    pool = ProcessPoolExecutor(
        max_workers=workers, initializer=start_worker, initargs=(lifeline(), initializer, *initargs)
    )
    try:
        yield pool
    except BaseException:  # KeyboardInterrupt (Ctrl-C, SIGTERM) included: that is the point
        _stop(pool)
        raise
    _stop(pool, grace=EXIT_GRACE_S)


Job = tuple[Any, ...]


def results_as_done(
    workers: int,
    initializer: Callable[..., Any],
    initargs: tuple[Any, ...],
    work: Callable[..., Any],
    jobs: list[Job],
    on_death: Callable[[Job], Any],
    on_error: Callable[[Job, Exception], Any],
    split: Callable[[Job], list[Job]] | None = None,
) -> Iterator[Any]:
    """``work(*job)`` for every job on a process pool, with bounded in-flight work, yielding results as they finish.

    A worker that dies (killed for memory, a crash inside a native library) breaks
    the whole pool and fails every job in flight, not only its own. The pool is
    then rebuilt and those jobs are run again one at a time, so the one that kills
    a worker while alone is known: its result is ``on_death(job)``, and the run
    goes on. A job that raises gives ``on_error(job, exc)``. A job of several
    items (images read together) is ``split`` into one job per item first, so a
    killer costs its own item only.
    """
    queue = list(reversed(jobs))  # pop() from the end keeps input order
    suspects: list[Job] = []
    while queue or suspects:
        alone = bool(suspects)
        batch = suspects if alone else queue
        broken: list[Job] = []
        with process_pool(workers, initializer, *initargs) as pool:
            limit = 1 if alone else workers * 4
            pending: dict[Future, Job] = {}
            while batch or pending:
                while batch and len(pending) < limit and not broken:
                    job = batch.pop(0) if alone else batch.pop()
                    try:
                        pending[pool.submit(work, *job)] = job
                    except BrokenProcessPool:
                        broken.append(job)
                if not pending:
                    break
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                if broken or any(isinstance(fut.exception(), BrokenProcessPool) for fut in finished):
                    finished = set(pending)  # drain what is still in flight: all of it fails with the pool
                for fut in finished:
                    job = pending.pop(fut)
                    error = fut.exception()
                    if isinstance(error, BrokenProcessPool):
                        if alone:
                            yield on_death(job)
                        else:
                            broken.append(job)
                    elif error is not None:
                        yield on_error(job, error)
                    else:
                        yield fut.result()
                if broken and not alone:
                    break
        if broken:
            parts = [part for job in broken for part in (split(job) if split else [job])]
            log.warning("a worker process died; reading the %d images that were in flight one at a time", len(parts))
            suspects.extend(parts)
