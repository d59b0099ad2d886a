"""What went wrong in a run, said once: per-image failures, grouped warnings and a failures file.

A failure belongs to one image, never to the run: its rows get the reader's
fallback answer, and the failure is recorded here. A run over a folder that
lacks most images would otherwise print one warning per image (91k for the
official test set), so only the first few are logged one by one; the rest are
counted per kind and summed up at the end, and every failure is written to
``<output>.failures.csv`` next to the output (kept in sync as the run goes, so a
killed run still has it). A rerun of the same job retries the rows listed there.
"""

from __future__ import annotations

import csv
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from specread.errors import ImageLoadError
from specread.io.files import append_row, atomic_write

__all__ = ["FAILURE_COLUMNS", "Failure", "FailureLog", "failure_from"]

log = logging.getLogger("specread")

FAILURE_COLUMNS = ("image_link", "kind", "reason", "indices")


@dataclass(frozen=True, slots=True)
class Failure:
    """One image that could not be read, and the rows that got the fallback answer for it.

    Attributes:
        image_link: the input's link (or the path when there is none).
        kind: a short, stable category used to group warnings (``"file not found"``,
            ``"corrupt or truncated image"``, ``"ocr error"``, ``"worker died"``...).
        reason: the full message, naming the image.
        indices: the input indices of the image's rows.
    """

    image_link: str
    kind: str
    reason: str
    indices: tuple[str, ...]


def failure_from(image_link: str, exc: BaseException, indices: Iterable[str]) -> Failure:
    """A :class:`Failure` for an exception raised while reading one image.

    Decoding problems keep the reason :mod:`specread.io.images` gives (without its
    details in parentheses, so they group); anything else is an error of the stage
    that raised it, named by its type.
    """
    if isinstance(exc, ImageLoadError):
        return Failure(image_link, exc.reason.split(" (", 1)[0], str(exc), tuple(indices))
    kind = f"{type(exc).__name__} while reading"
    return Failure(image_link, kind, f"{image_link or '<no link>'}: {kind}: {exc}", tuple(indices))


def _row(failure: Failure) -> list[str]:
    return [failure.image_link, failure.kind, failure.reason, " ".join(failure.indices)]


class FailureLog:
    """Collects a run's failures: logs the first ``show``, counts the rest, keeps the failures file.

    Args:
        path: the failures CSV (``image_link,kind,reason,indices``); rows of the
            failures listed there by an earlier run of the same job are retried.
        show: failures logged one by one before only counting.
    """

    def __init__(self, path: str | Path, show: int = 5) -> None:
        self.path = Path(path)
        self.show = show
        self.failures: list[Failure] = []
        self.retry: set[str] = set()
        if self.path.is_file():
            # Read leniently (not CsvTable): a run killed while appending may have torn the last line.
            with open(self.path, newline="", encoding="utf-8", errors="replace") as fh:
                for rec in csv.DictReader(fh):
                    self.retry.update((rec.get("indices") or "").split())
        # Until this run's list replaces it, the earlier run's rows stay listed: still owed a retry.
        owed = [Failure("", "earlier run", "listed by an earlier run of this job; retried", tuple(sorted(self.retry)))]
        self._rewrite(owed if self.retry else [])

    def add(self, failure: Failure) -> None:
        self.failures.append(failure)
        if len(self.failures) <= self.show:
            log.warning("%s (fallback answer for %d row(s))", failure.reason, len(failure.indices))
        elif len(self.failures) == self.show + 1:
            log.warning("more images cannot be read: counting them; all are listed in %s", self.path)
        append_row(self.path, _row(failure))

    def _rewrite(self, failures: list[Failure]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(self.path, newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(FAILURE_COLUMNS)
            w.writerows(_row(f) for f in failures)

    def close(self) -> None:
        """End of run: rewrite the file with this run's failures (remove it when there are none); log the summary."""
        if not self.failures:
            self.path.unlink(missing_ok=True)
            return
        self._rewrite(self.failures)
        if len(self.failures) > self.show:
            by_kind = Counter(f.kind for f in self.failures).most_common()
            counts = ", ".join(f"{n} {kind}" for kind, n in by_kind)
            log.warning("%d images could not be read (%s); all are listed in %s", len(self.failures), counts, self.path)
