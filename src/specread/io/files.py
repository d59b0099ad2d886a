"""Writing files so that a killed run leaves the old file or the new one, never half of one.

Every file specread writes for later runs to trust (OCR pages, outputs and their job
records, failure lists, downloaded images, feature shards, model folders) goes through
here: it is written beside its target under a temporary name, then renamed over it.
Files that grow a row at a time (outputs, failure lists, review labels) append each row
with :func:`append_row` and, when opened again, lose a row a kill tore with
:func:`drop_torn_line`.
"""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

__all__ = ["append_row", "atomic_path", "atomic_write", "drop_torn_line"]


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


def append_row(path: str | Path, row: Iterable[object]) -> None:
    """Append one CSV row to ``path`` and have it on disk (flushed and fsynced) before returning."""
    with open(path, "a", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerow(row)
        fh.flush()
        os.fsync(fh.fileno())


def drop_torn_line(path: str | Path, owns: Callable[[str, bool], bool]) -> None:
    """Cut the last line of ``path`` when a kill left it without its line break, if ``owns`` says the file is ours.

    ``owns(first, whole)`` gets the file's first line, decoded (without its line break), and
    whether that line is whole; when the kill tore the first line itself (``whole`` False) it
    gets all the text there is, and an owned file is emptied. A file ``owns`` refuses (another
    program's, or the wrong file given by mistake) is never cut.
    """
    path = Path(path)
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return
    cut = data.rfind(b"\n") + 1
    text = data.decode("utf-8-sig", errors="replace")
    first = text.split("\n", 1)[0].rstrip("\r") if cut else text
    if owns(first, bool(cut)):
        with open(path, "r+b") as fh:
            fh.truncate(cut)
