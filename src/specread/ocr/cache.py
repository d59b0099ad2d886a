"""On-disk OCR cache keyed by image content and engine fingerprint.

OCR is the only expensive stage, so each unique image is read once: several
rows or entities on one image, and re-runs, reuse the stored page. Entries are
written atomically (temp file + rename), so a killed run never leaves a
half-written entry behind.

The cache is an optimisation and never a source of answers a fresh read would
not give: an entry that cannot be read (a full or failing disk, a folder without
permission) is a miss; one that parses but is not a valid page (another program's
file, a hand edit, absurd values) is deleted and the image read again; a page that
cannot be stored (no space left, a read-only folder) is still used, with one
warning per process.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path

from platformdirs import user_cache_path

from specread.errors import FileTooLargeError, NotRegularFileError, PageFormatError
from specread.io.files import atomic_write, read_regular
from specread.settings import IMAGE_LIMITS
from specread.types import OcrPage

__all__ = ["MAX_ENTRY_BYTES", "OcrCache", "default_cache_dir"]

log = logging.getLogger("specread")

MAX_ENTRY_BYTES = 16 * 1024 * 1024
"""Largest cache entry read: a page of the most tokens allowed is far under it (a real one is a few KB)."""

_WARNED: set[str] = set()
"""Cache problems already warned about in this process: one warning per kind, not one per image."""


def default_cache_dir() -> Path:
    """``$SPECREAD_CACHE`` if set, else the platform's user cache folder."""
    env = os.environ.get("SPECREAD_CACHE")
    return Path(env) if env else user_cache_path("specread") / "ocr"


def _warn_once(kind: str, message: str, *args: object) -> None:
    if kind not in _WARNED:
        _WARNED.add(kind)
        log.warning(message, *args)


class OcrCache:
    """A folder of JSON pages, ``<fingerprint>/<digest[:2]>/<digest>.json``."""

    def __init__(self, root: str | Path | None, fingerprint: str) -> None:
        self.enabled = root is not None
        self.root = Path(root) / fingerprint if root is not None else Path()

    def _path(self, digest: str) -> Path:
        return self.root / digest[:2] / f"{digest}.json"

    def get(self, digest: str) -> OcrPage | None:
        """The stored page, or None: missing, unreadable, or invalid (then deleted, so the next read replaces it)."""
        if not self.enabled:
            return None
        path = self._path(digest)
        try:  # a regular file, capped, under the image read deadline: the cache folder may be anything too
            raw = read_regular(path, MAX_ENTRY_BYTES, IMAGE_LIMITS.read_timeout)
        except (FileNotFoundError, NotADirectoryError):  # not stored (yet)
            return None
        except (FileTooLargeError, NotRegularFileError) as exc:  # no page: replace it
            self._discard(path, exc)
            return None
        except OSError as exc:  # a full or failing disk, no permission, a stalled mount: a miss, never a failure
            _warn_once("read", "the OCR cache cannot be read (%s): images are read again", exc)
            return None
        try:
            return OcrPage.from_dict(json.loads(raw))
        except (PageFormatError, ValueError, RecursionError) as exc:  # RecursionError: JSON nested too deep
            self._discard(path, exc)
            return None

    def _discard(self, path: Path, exc: BaseException) -> None:
        """Delete an entry that is not a valid page (a later put replaces it); said once per process."""
        _warn_once("invalid", "invalid OCR cache entries are deleted and their images read again (%s: %s)", path, exc)
        with contextlib.suppress(OSError):  # a read-only cache: the entry stays, and is read again each time
            if path.is_dir() and not path.is_symlink():
                path.rmdir()  # only an empty one: a cache entry is never a folder of anything
            else:
                path.unlink(missing_ok=True)

    def put(self, digest: str, page: OcrPage) -> None:
        """Store ``page``; a cache that cannot be written only costs speed (one warning per process)."""
        if not self.enabled:
            return
        path = self._path(digest)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_write(path) as fh:
                json.dump(page.to_dict(), fh)
        except OSError as exc:  # no space left, read-only, no permission...
            _warn_once("write", "the OCR cache cannot be written (%s): pages are used but not stored", exc)
