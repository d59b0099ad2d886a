"""A file whose read never returns: one file on a tiny FUSE file system that answers everything but READ.

A hung network or FUSE mount is the one fault an images folder can have that no check before
reading can see: the file is a regular file of a plausible size, and ``read()`` simply never
returns. This serves such a mount from a thread of this process, speaking the kernel's FUSE
protocol on ``/dev/fuse`` directly (no libfuse or ``fusermount``: mounting needs root). It
answers INIT, LOOKUP, GETATTR, OPEN, FLUSH and RELEASE; READ requests are never answered.
Closing the device at the end aborts the connection, so the stalled reads end with an error.
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
import stat
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

__all__ = ["stalled_file"]

_IN = struct.Struct("<IIQQIIIHH")  # fuse_in_header
_OUT = struct.Struct("<IiQ")  # fuse_out_header
_ATTR = struct.Struct("<QQQQQQIIIIIIIIII")  # fuse_attr
_ENTRY = struct.Struct("<QQQQII")  # fuse_entry_out, before its fuse_attr
_INIT_OUT = struct.Struct("<IIIIHHIIHHI7I")  # fuse_init_out (protocol 7.23+)
LOOKUP, GETATTR, OPEN, READ, RELEASE, FLUSH, INIT, INTERRUPT = 1, 3, 14, 15, 18, 25, 26, 36
_NO_REPLY = {2, READ, INTERRUPT, 42}  # FORGET and BATCH_FORGET have none; READ is never answered
NAME = "stall.jpg"
SIZE = 200_000


def _attr(node: int) -> bytes:
    mode = (stat.S_IFDIR | 0o755) if node == 1 else (stat.S_IFREG | 0o644)
    size = 0 if node == 1 else SIZE
    return _ATTR.pack(node, size, (size + 511) // 512, 0, 0, 0, 0, 0, 0, mode, 1, 0, 0, 0, 4096, 0)


def _answer(opcode: int, node: int, body: bytes) -> tuple[int, bytes]:
    """(error, payload) for one request."""
    if opcode == INIT:
        return 0, _INIT_OUT.pack(7, 31, 65536, 0, 16, 12, 65536, 1, 16, 0, 0, *([0] * 7))
    if opcode == LOOKUP:
        if body.split(b"\0", 1)[0].decode() != NAME or node != 1:
            return -errno.ENOENT, b""
        return 0, _ENTRY.pack(2, 0, 60, 60, 0, 0) + _attr(2)
    if opcode == GETATTR:
        return 0, struct.pack("<QII", 60, 0, 0) + _attr(node)
    if opcode == OPEN:
        return 0, struct.pack("<QII", 0, 1, 0)  # FOPEN_DIRECT_IO: every read asks us
    if opcode in (FLUSH, RELEASE):
        return 0, b""
    return -errno.ENOSYS, b""


def _serve(fd: int, stop: threading.Event) -> None:
    while not stop.is_set():
        ready, _, _ = select.select([fd], [], [], 0.1)
        if not ready:
            continue
        try:
            request = os.read(fd, 1 << 17)
        except OSError:  # the connection was aborted or unmounted
            return
        _, opcode, unique, node, *_ = _IN.unpack_from(request)
        if opcode in _NO_REPLY:
            continue
        error, payload = _answer(opcode, node, request[_IN.size :])
        with suppress(OSError):
            os.write(fd, _OUT.pack(_OUT.size + len(payload), error, unique) + payload)


@contextmanager
def stalled_file(mount: Path) -> Iterator[tuple[Path, Callable[[], None]]]:
    """A FUSE mount at ``mount`` holding ``stall.jpg``, whose reads never return: its path, and ``abort()``.

    ``abort()`` (also called at the end) closes the device, which fails every stalled read: a read
    the server has taken waits uninterruptibly in the kernel, so a process stuck in one cannot
    even be killed until then.

    Raises:
        OSError: ``/dev/fuse`` or ``mount(2)`` is not available (not root, no FUSE in the kernel).
    """
    mount.mkdir(parents=True, exist_ok=True)
    fd = os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC)
    libc = ctypes.CDLL(None, use_errno=True)
    options = f"fd={fd},rootmode=40000,user_id=0,group_id=0".encode()
    if libc.mount(b"specread-stall", str(mount).encode(), b"fuse", 2 | 4, options) != 0:  # MS_NOSUID | MS_NODEV
        code = ctypes.get_errno()
        os.close(fd)
        raise OSError(code, f"mount -t fuse: {os.strerror(code)}")
    stop = threading.Event()
    server = threading.Thread(target=_serve, args=(fd, stop), name="stalled-fuse", daemon=True)
    server.start()
    closed: list[bool] = []

    def abort() -> None:
        if not closed:
            closed.append(True)
            stop.set()
            server.join(2)
            os.close(fd)  # the last descriptor of the device: the kernel aborts the connection

    try:
        yield mount / NAME, abort
    finally:
        abort()
        libc.umount2(str(mount).encode(), 2)  # MNT_DETACH
