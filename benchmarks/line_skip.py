"""How much "recognise only the lines that can matter" could save, measured with an oracle; prints JSON.

Issue 22's first lever: skip the recogniser on lines that hold no digit and sit beside no line
that does. A real rule must decide before the line is read (from the crop, or the recogniser's
first columns); this benchmark gives it every advantage instead: it takes the cached pages, where
every line's text is known, keeps only the lines a perfect rule would keep, and reports

* ``lines_skipped`` and ``width_skipped``: the share of lines, and of line width (what the
  recogniser's cost grows with), that such a rule would not read;
* ``f1`` / ``weighted_f1``: grouped CV on real-dev (the ranker refitted on the kept lines), so
  the loss of the keyword lines a rule drops is measured, not guessed;
* ``speedup_bound``: the whole-image speed-up if recognising the kept lines cost nothing extra,
  from the stage profile's shares (``--recognise-share``, CPU seconds of recognition over the total).

Rules: ``digits`` (lines with a digit), ``digits+1`` (and their right or lower neighbours, and the
lines whose right or lower neighbour they are: the keyword lines ``Net Wt`` | ``500 g``).

    python -m benchmarks.line_skip --cv 5 --repeats 4
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
from collections.abc import Sequence

import numpy as np

from benchmarks.common import DEFAULT_DATA, load_dev_rows
from specread.extract.candidates import neighbour_table
from specread.extract.priors import load_priors
from specread.metrics import score_rows
from specread.rank.train import cross_read, fit_ranker
from specread.types import LabelledRow, OcrPage

__all__ = ["RULES", "kept_lines", "skipped_share"]

RULES = {"digits": 0, "digits+1": 1}
"""Rule name -> how many neighbour hops around a line with a digit are kept too."""

_DIGIT = re.compile(r"\d")


def kept_lines(page: OcrPage, hops: int) -> set[int]:
    """Indices of the lines an oracle rule keeps: every line with a digit, and ``hops`` rings of neighbours."""
    kept = {i for i, t in enumerate(page.tokens) if _DIGIT.search(t.text)}
    table = neighbour_table(page)
    for _ in range(hops):
        ring = set()
        for i, pair in enumerate(table):
            for j in pair:
                if j is not None and (i in kept or j in kept):
                    ring |= {i, j}
        kept |= ring
    return kept


def _width(page: OcrPage, i: int) -> float:
    x0, y0, x1, y1 = page.tokens[i].box
    return max(x1 - x0, 1e-6) / max(y1 - y0, 1e-6)  # a crop's width once resized to the recogniser's height


def skipped_share(pages: Sequence[OcrPage], hops: int) -> tuple[float, float]:
    """``(share of lines, share of line width)`` the rule skips over ``pages``."""
    lines = kept = width = kept_width = 0.0
    for page in pages:
        keep = kept_lines(page, hops)
        lines += len(page.tokens)
        kept += len(keep)
        width += sum(_width(page, i) for i in range(len(page.tokens)))
        kept_width += sum(_width(page, i) for i in keep)
    return (1 - kept / lines if lines else 0.0), (1 - kept_width / width if width else 0.0)


def _only_kept(page: OcrPage, hops: int) -> OcrPage:
    keep = kept_lines(page, hops)
    return dataclasses.replace(page, tokens=tuple(t for i, t in enumerate(page.tokens) if i in keep))


def _cv(rows: list[LabelledRow], retry, k: int, repeats: int) -> dict:
    priors = load_priors()
    gold = {str(i): r.gold for i, r in enumerate(rows)}
    entities = {str(i): r.entity for i, r in enumerate(rows)}
    reports = []
    for seed in range(repeats):
        answers = cross_read(rows, priors, lambda train: fit_ranker(train, priors), k, seed, retry)
        preds = {str(i): a[r.entity].text for i, (r, a) in enumerate(zip(rows, answers, strict=True))}
        reports.append(score_rows(preds, gold, entities).to_dict())
    return {m: round(float(np.mean([r[m] for r in reports])), 4) for m in ("f1", "weighted_f1")}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA, help="real-dev folder (labels.csv, images/)")
    parser.add_argument("--cache-dir", default=None, help="OCR cache (default: a fresh temp dir)")
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--retry-side", type=int, default=1280)
    parser.add_argument("--cv", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--recognise-share",
        type=float,
        default=0.122 / 0.345,
        help="recognition's share of a picture's CPU time (default: the fast preset's stage profile)",
    )
    args = parser.parse_args(argv)
    rows, retry = load_dev_rows(args.data, args.cache_dir, args.preset, args.retry_side, args.workers)
    out: dict = {"rows": len(rows), "rules": {"all lines": _cv(rows, retry, args.cv, args.repeats)}}
    for name, hops in RULES.items():
        lines, width = skipped_share([r.page for r in rows], hops)
        kept_rows = [dataclasses.replace(r, page=_only_kept(r.page, hops)) for r in rows]

        def kept_retry(row: LabelledRow, hops: int = hops) -> OcrPage | None:
            finer = retry(row) if retry else None
            return None if finer is None else _only_kept(finer, hops)

        out["rules"][name] = {
            "lines_skipped": round(lines, 3),
            "width_skipped": round(width, 3),
            "speedup_bound": round(1 / (1 - args.recognise_share * width), 3),
            **_cv(kept_rows, kept_retry if retry else None, args.cv, args.repeats),
        }
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
