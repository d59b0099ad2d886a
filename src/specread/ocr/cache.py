"""On-disk OCR cache keyed by image content and engine fingerprint (:func:`page_key`).

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
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from platformdirs import user_cache_path

from specread.affects import KERNELS, PAGE, fields_affecting
from specread.errors import FileTooLargeError, NotRegularFileError, PageFormatError
from specread.io.files import atomic_write, read_regular
from specread.ocr.layout import SEGMENTS_VERSION
from specread.settings import IMAGE_LIMITS, OcrSettings
from specread.types import OcrPage

__all__ = ["MAX_ENTRY_BYTES", "OcrCache", "RunningEngine", "default_cache_dir", "page_key"]

log = logging.getLogger("specread")

MAX_ENTRY_BYTES = 16 * 1024 * 1024
"""Largest cache entry read: a page of the most tokens allowed is far under it (a real one is a few KB)."""

_WARNED: set[str] = set()
"""Cache problems already warned about in this process: one warning per kind, not one per image."""


def default_cache_dir() -> Path:
    """``$SPECREAD_CACHE`` if set, else the platform's user cache folder."""
    env = os.environ.get("SPECREAD_CACHE")
    return Path(env) if env else user_cache_path("specread") / "ocr"


class RunningEngine(Protocol):
    """What :func:`page_key` reads off an engine: the :class:`OcrSettings` it was built from, and what runs."""

    settings: OcrSettings

    def resolved_device(self) -> str:
        """``"cpu"`` or ``"cuda"``: where the engine computes."""
        ...

    def effective_precision(self) -> str:
        """The precision its CPU inference really runs at (``bf16`` asked falls back to ``f32`` without CPU support)."""
        ...


_SPELLING: dict[str, tuple[str, Any]] = {
    "det_side": ("det", None),
    "max_side": ("max", None),
    "use_cls": ("cls", None),
    "min_score": ("s", None),
    "rec_batch": ("rb", 6),
    "rec_width_step": ("rw", 1),
    "rec_max_columns": ("rc", 0),
    "charset": ("cs", "all"),
    "rec_padding": ("pad", "batch"),
    "det_pad": ("dp", 0),
}
"""How keys have always spelled a field: ``(prefix, plain)``; at its plain value (``None``: none) it adds nothing.

Only the spelling is kept here, so that the caches of unchanged settings stay valid; which fields
count is their tag's business (:mod:`specread.affects`). A field tagged page or kernels that is not
here is spelled ``<name>=<value>``.
"""

_ENGINE_SPELLED = {"engine", "backend", "precision"}
"""Spelled by the engine: its models lead the key, and the runtime that really computes ends it."""

_CPU_ONLY = {"charset"}
"""Settings a GPU does not apply (it reads every character): left out of a GPU's keys."""

_BACKENDS = {"onnxruntime": "", "openvino": "ov"}
"""A CPU backend's spelling; onnxruntime runs f32 only, so its keys name no precision."""


def page_key(models: str, engine: RunningEngine, int8_digest: Callable[[], str]) -> str:
    """The cache folder of pages read by ``engine``: every setting tagged page or kernels, as it really runs.

    ``models`` names the engine and its model files (``rapidocr3.10-v6s``). Then the page settings,
    the page format (:data:`~specread.ocr.layout.SEGMENTS_VERSION`), the kernel settings, and what
    computes: ``cuda`` on a GPU (float, every character), else the CPU backend and the precision that
    really runs (``bf16`` asked on a CPU without it reads in ``f32``, like ``f32`` asked), with
    ``int8_digest()`` (the INT8 model files' sha256; called only for them) after ``int8``.
    Settings tagged speed (threads, kernel cache, the device asked) are not in it.
    """
    device = engine.resolved_device()
    page = [name for name in fields_affecting(OcrSettings, PAGE) if name not in _ENGINE_SPELLED]
    kernels = [name for name in fields_affecting(OcrSettings, KERNELS) if name not in _ENGINE_SPELLED]
    if device != "cpu":
        kernels = [name for name in kernels if name not in _CPU_ONLY]
    parts = [models, *(_spell(name, getattr(engine.settings, name)) for name in page)]
    parts.append(f"seg{SEGMENTS_VERSION}")  # pages carry line segments (specread.ocr.layout)
    parts += [_spell(name, getattr(engine.settings, name)) for name in kernels]
    backend = _BACKENDS.get(engine.settings.backend, engine.settings.backend)
    if device != "cpu":
        parts.append(device)
    elif backend:
        precision = engine.effective_precision()
        if precision == "int8":  # regenerated models read differently: their digest is in the key
            precision += f"-{int8_digest()[:12]}"
        parts.append(f"{backend}-{precision}")
    return "-".join(part for part in parts if part)


def _spell(name: str, value: Any) -> str:
    prefix, plain = _SPELLING.get(name, (f"{name}=", None))
    if plain is not None and value == plain:
        return ""
    return f"{prefix}{int(value) if isinstance(value, bool) else value}"


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
