"""On-disk OCR cache keyed by image content and engine fingerprint.

OCR is the only expensive stage, so each unique image is read once: several
rows or entities on one image, and re-runs, reuse the stored page. Entries are
written atomically (temp file + rename), so a killed run never leaves a
half-written entry behind.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from platformdirs import user_cache_path

from specread.io.files import atomic_write
from specread.types import OcrPage

__all__ = ["OcrCache", "default_cache_dir"]


def default_cache_dir() -> Path:
    """``$SPECREAD_CACHE`` if set, else the platform's user cache folder."""
    env = os.environ.get("SPECREAD_CACHE")
    return Path(env) if env else user_cache_path("specread") / "ocr"


class OcrCache:
    """A folder of JSON pages, ``<fingerprint>/<digest[:2]>/<digest>.json``."""

    def __init__(self, root: str | Path | None, fingerprint: str) -> None:
        self.enabled = root is not None
        self.root = Path(root) / fingerprint if root is not None else Path()

    def _path(self, digest: str) -> Path:
        return self.root / digest[:2] / f"{digest}.json"

    def get(self, digest: str) -> OcrPage | None:
        if not self.enabled:
            return None
        try:
            return OcrPage.from_dict(json.loads(self._path(digest).read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, digest: str, page: OcrPage) -> None:
        if not self.enabled:
            return
        path = self._path(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as fh:
            json.dump(page.to_dict(), fh)
