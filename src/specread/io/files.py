"""Writing files so that a killed run leaves the old file or the new one, never half of one.

Every file specread writes for later runs to trust (OCR pages, outputs and their job
records, failure lists, downloaded images, feature shards, model folders) goes through
here: it is written beside its target under a temporary name, then renamed over it.
Files that grow a row at a time (outputs, failure lists, review labels) append each row
with :func:`append_row` and, when opened again, lose a row a kill tore with
:func:`drop_torn_line`. Files another program or person left (images, cache entries) are
read with :func:`read_regular`, which refuses what cannot be such a file before it can
block or fill memory.
"""

from __future__ import annotations

import csv
import os
import secrets
import stat
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from specread.errors import FileTooLargeError, NotRegularFileError, UnreadableFileError

__all__ = ["append_row", "atomic_path", "atomic_write", "drop_torn_line", "read_regular"]


@contextmanager
def atomic_path(target: str | Path, *, through_link: bool = False) -> Iterator[Path]:
    """A temporary path beside ``target`` to write; renamed over ``target`` when the block ends without error.

    For writers that take a path (LightGBM's ``save_model``). On an error the
    temporary file is removed and the error goes on; ``target`` is untouched.
    The new file has the mode a plain ``open(target, "w")`` would leave (see :func:`_create_beside`).

    Args:
        target: the file to (re)place.
        through_link: when ``target`` is a symbolic link, replace the file it names and keep the
            link (for a path the user chose, such as an output). Off by default: a link planted in
            a folder specread fills (downloads, the cache) must not send a write elsewhere.
    """
    target = Path(target)
    if through_link and target.is_symlink():
        target = Path(os.path.realpath(target))
    tmp = _create_beside(target)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _create_beside(target: Path) -> Path:
    """A new empty file beside ``target`` with ``target``'s mode, or, when there is none, 0o666 less the umask.

    That is what a plain create or rewrite leaves; ``mkstemp`` would make every output and job
    record private (0600). The kernel applies the umask to ``O_CREAT``, so it is never read
    (``os.umask`` can only be read by changing it, which races with other threads).
    """
    try:
        found = os.stat(target)
        keep = stat.S_IMODE(found.st_mode) if stat.S_ISREG(found.st_mode) else None
    except OSError:
        keep = None
    while True:
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        except FileExistsError:  # pragma: no cover - 48 random bits
            continue
        try:
            if keep is not None:
                os.fchmod(fd, keep)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        finally:
            os.close(fd)
        return tmp


@contextmanager
def atomic_write(
    target: str | Path, mode: str = "w", *, fsync: bool = False, through_link: bool = False, **open_args: Any
) -> Iterator[IO[Any]]:
    """``open(target, mode)`` that replaces ``target`` only once the block has written all of it.

    Args:
        target: the file to (re)place.
        mode: ``"w"`` or ``"wb"``.
        fsync: flush to disk before the rename (files a resumed run must find whole after a crash).
        through_link: write through a symbolic link ``target`` (see :func:`atomic_path`).
        open_args: passed to :func:`open` (``encoding``, ``newline``).
    """
    with atomic_path(target, through_link=through_link) as tmp, open(tmp, mode, **open_args) as fh:
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


_NOT_REGULAR = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a folder",
}


def read_regular(path: str | Path, max_bytes: int, timeout: float = 0.0) -> bytes:
    """The bytes of ``path`` when it is a regular file of at most ``max_bytes``, read within ``timeout`` seconds.

    A name in a folder can be anything: a FIFO blocks ``open()`` forever, ``/dev/zero`` behind
    a link never ends, a sparse file of gigabytes costs gigabytes of memory. So links are
    followed, and then:

    * the path is checked to be a regular file before it is opened (a FIFO or device is never
      opened), opened with ``O_NONBLOCK`` (a FIFO swapped in meanwhile cannot block), and what
      was opened is checked again with ``fstat``;
    * a file over ``max_bytes`` is refused by its size, and the read stops at ``max_bytes + 1``
      bytes (a file that grows while it is read is refused too);
    * with ``timeout`` above 0 the whole of it runs in a helper thread the caller waits for at
      most that long. A read on a hung network or FUSE mount cannot be interrupted from Python,
      and ``select`` does not apply to regular files, so a stalled helper is abandoned: it ends
      (and closes its file) whenever the file system answers, or with the process.

    Raises:
        FileNotFoundError: no such file (or a dangling link).
        NotRegularFileError: a FIFO, device, socket or folder (an :class:`UnreadableFileError`).
        FileTooLargeError: over ``max_bytes`` (an :class:`UnreadableFileError`).
        UnreadableFileError: the read did not end in time.
        OSError: the file system's own refusal (permission, a link loop, an I/O error).
    """
    if timeout <= 0:
        return _read_capped(Path(path), max_bytes)
    box: list[bytes | BaseException] = []
    done = threading.Event()

    def read() -> None:
        try:
            box.append(_read_capped(Path(path), max_bytes))
        except BaseException as exc:  # handed to the waiting caller
            box.append(exc)
        finally:
            done.set()

    threading.Thread(target=read, name=f"read {Path(path).name}", daemon=True).start()
    if not done.wait(timeout):
        raise UnreadableFileError(str(path), f"read timed out (no answer from the file system in {timeout:g} s)")
    if isinstance(box[0], BaseException):
        raise box[0]
    return box[0]


def _check_regular(path: Path, found: os.stat_result, max_bytes: int) -> None:
    kind = _NOT_REGULAR.get(stat.S_IFMT(found.st_mode))
    if kind is not None or not stat.S_ISREG(found.st_mode):
        raise NotRegularFileError(str(path), f"not a regular file ({kind or 'an unknown kind of file'})")
    if found.st_size > max_bytes:
        raise FileTooLargeError(str(path), f"file too large ({found.st_size:,} bytes; the limit is {max_bytes:,})")


def _read_capped(path: Path, max_bytes: int) -> bytes:
    _check_regular(path, os.stat(path), max_bytes)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        found = os.fstat(fd)
        _check_regular(path, found, max_bytes)
        chunks: list[bytes] = []
        total = 0
        while total <= max_bytes:
            # The expected rest and a little more: one read for a file that does not change.
            chunk = os.read(fd, min(max_bytes + 1 - total, max(found.st_size - total, 0) + 65536))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    finally:
        os.close(fd)
    if total > max_bytes:
        raise FileTooLargeError(str(path), f"file too large (it grew past the limit of {max_bytes:,} bytes while read)")
    return b"".join(chunks)
