"""Writing files so that a killed run leaves the old file or the new one, never half of one.

Every file specread writes for later runs to trust (OCR pages, outputs and their job
records, failure lists, downloaded images, feature shards, model folders) goes through
here: it is written beside its target under a temporary name, then renamed over it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_path", "atomic_write"]


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """A temporary path beside ``target`` to write; renamed over ``target`` when the block ends without error.

    For writers that take a path (LightGBM's ``save_model``). On an error the
    temporary file is removed and the error goes on; ``target`` is untouched.
    """
    target = Path(target)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_write(target: str | Path, mode: str = "w", *, fsync: bool = False, **open_args: Any) -> Iterator[IO[Any]]:
    """``open(target, mode)`` that replaces ``target`` only once the block has written all of it.

    Args:
        target: the file to (re)place.
        mode: ``"w"`` or ``"wb"``.
        fsync: flush to disk before the rename (files a resumed run must find whole after a crash).
        open_args: passed to :func:`open` (``encoding``, ``newline``).
    """
    with atomic_path(target) as tmp, open(tmp, mode, **open_args) as fh:
        yield fh
        if fsync:
            fh.flush()
            os.fsync(fh.fileno())
