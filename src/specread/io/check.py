"""The challenge's sanity check, plus per-entity unit validity and index coverage.

Mirrors the official ``sanity.py`` rules: the output has ``index`` and
``prediction`` columns, covers every input index exactly once, and each
non-empty prediction matches ``<number> <unit>`` with a unit allowed for its
row's entity.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from specread.answer import OFFICIAL_FORMAT
from specread.io.dataset import CsvTable, read_rows
from specread.units.registry import get_registry

__all__ = ["CheckReport", "check_output"]


@dataclass
class CheckReport:
    rows: int = 0
    empty: int = 0
    problems: list[str] = field(default_factory=list)
    bad_by_entity: Counter[str] = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_output(output_csv: str | Path, input_csv: str | Path, max_listed: int = 20) -> CheckReport:
    """Validate an output file against its input file; every problem is listed (capped).

    Raises:
        InputFormatError: either file is missing or not a UTF-8 CSV, or the input's rows are invalid.
    """
    rows = read_rows(input_csv)
    entity_of = {r.index: r.entity_name for r in rows}
    registry = get_registry()
    report = CheckReport()
    problems: list[str] = []
    with CsvTable(output_csv) as table:
        if "index" not in table.header or "prediction" not in table.header:
            report.problems.append(f"output must have columns index,prediction; found {table.header}")
            return report
        counts: Counter[str] = Counter()
        for line, rec in table:
            report.rows += 1
            index = rec["index"].strip()
            pred = rec["prediction"].strip()
            counts[index] += 1
            if index not in entity_of:
                problems.append(f"line {line}: index {index!r} is not in the input")
                continue
            if not pred:
                report.empty += 1
                continue
            if not OFFICIAL_FORMAT.match(pred):
                problems.append(f"line {line}: {pred!r} does not match '<number> <unit>'")
                report.bad_by_entity[entity_of[index]] += 1
                continue
            unit = " ".join(pred.split()[1:])  # as the official sanity check splits it
            if unit not in registry.allowed(entity_of[index]):
                problems.append(f"line {line}: unit {unit!r} is not allowed for {entity_of[index]}")
                report.bad_by_entity[entity_of[index]] += 1
    dupes = [i for i, c in counts.items() if c > 1]
    missing = [i for i in entity_of if i not in counts]
    if dupes:
        problems.append(f"{len(dupes)} index(es) appear more than once, e.g. {dupes[:5]}")
    if missing:
        problems.append(f"{len(missing)} input index(es) have no output row, e.g. {missing[:5]}")
    report.problems = problems[:max_listed] + (
        [f"... and {len(problems) - max_listed} more"] if len(problems) > max_listed else []
    )
    return report
