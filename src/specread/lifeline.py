"""Worker processes that die with their parent, and a parent that stops on SIGTERM as on Ctrl-C.

A pool worker holds an OCR engine (550-760 MB). When its parent is killed
(SIGKILL, the OOM killer, a SIGTERM it did not handle) nothing else ends the
worker: it idles as an orphan until someone finds it. So every pool that
specread starts (``predict``, the OCR pass of ``train``, the service) runs
:func:`start_worker` as its initializer, which ties the worker to its parent
two ways:

* ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` (Linux): the kernel kills the worker the
  moment its parent dies. It fires when the *thread* that forked the worker
  ends, so it is only asked for when the pool is made in the main thread
  (pools start their processes from the thread that submits, and specread
  submits from the thread that made the pool); and it is set after the fork, so
  a parent that died in between is caught by checking the parent pid once it is set.
* a watchdog thread that polls ``os.getppid()`` and ends the worker when it
  changes (the parent died and the worker was re-parented): portable, and a
  backstop where ``prctl`` is missing.

:class:`Interrupted` and :func:`sigterm_as_interrupt` make SIGTERM in a command
behave as Ctrl-C does: the same unwinding (output flushed, pool stopped), told
apart only by its exit status (130 for SIGINT, 143 for SIGTERM).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from specread.settings import WORKER_PARENT_POLL_S

__all__ = ["Interrupted", "Lifeline", "exit_status", "lifeline", "sigterm_as_interrupt", "start_worker"]

_PR_SET_PDEATHSIG = 1
"""From ``<linux/prctl.h>``."""

Lifeline = tuple[int, bool]
"""``(parent pid, whether PR_SET_PDEATHSIG is safe)``: what a pool passes to :func:`start_worker`."""


def lifeline() -> Lifeline:
    """This process's pid, and whether its workers may use ``PR_SET_PDEATHSIG`` (the pool is made in the main thread).

    Call it where the pool is made, and pass the result to the workers' :func:`start_worker`.
    """
    return os.getpid(), threading.current_thread() is threading.main_thread()


def _pdeathsig() -> bool:
    """Ask the kernel to SIGKILL this process when its parent (thread) dies; False where that cannot be asked."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent: int, poll: float) -> None:
    while True:
        time.sleep(poll)
        if os.getppid() != parent:
            os._exit(1)  # no cleanup: the parent that would want the results is gone


def die_with_parent(parent: int, pdeathsig: bool = True, poll: float = WORKER_PARENT_POLL_S) -> None:
    """End this process as soon as ``parent`` dies: ``PR_SET_PDEATHSIG`` (if ``pdeathsig``) and a watchdog thread.

    Exits at once if ``parent`` is already gone (it died before this could be set).
    """
    if pdeathsig:
        _pdeathsig()
    if os.getppid() != parent:
        os._exit(1)
    threading.Thread(target=_watch, args=(parent, poll), name="specread-parent-watch", daemon=True).start()


def start_worker(line: Lifeline, initializer: Callable[..., Any] | None = None, *args: Any) -> None:
    """Pool initializer: tie the worker to its parent, leave Ctrl-C and SIGTERM to the parent, then ``initializer``.

    A worker ignores SIGINT (Ctrl-C reaches the whole process group; the parent decides what
    to do and stops its workers) and keeps the default SIGTERM (a forked worker would inherit
    the parent's :func:`sigterm_as_interrupt` handler, and a pool worker survives exceptions).
    """
    die_with_parent(*line)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if initializer is not None:
        initializer(*args)


class Interrupted(KeyboardInterrupt):
    """A command stopped by a signal other than SIGINT (SIGTERM): unwinds exactly as Ctrl-C does."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def exit_status(exc: KeyboardInterrupt) -> int:
    """The shell's status for a process stopped by this interrupt: 128 + the signal (130 Ctrl-C, 143 SIGTERM)."""
    return 128 + (exc.signum if isinstance(exc, Interrupted) else signal.SIGINT)


def _raise(signum: int, _frame: object) -> None:
    signal.signal(signum, signal.SIG_IGN)  # once: a second SIGTERM must not break the unwinding the first began
    raise Interrupted(signum)


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within this block SIGTERM raises :class:`Interrupted` (a ``KeyboardInterrupt``), in the main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)
