"""Text -> :class:`Quantity` mentions: value, canonical unit, groups and ranges.

What product images print, and how each is read:

* ``500ml``, ``500 mL``, ``16 FL. OZ.`` -> one quantity (unit glued or spaced);
* ``25 x 15 x 8 cm`` -> three quantities in one group, the trailing unit
  shared; ``10"W x 5"D x 3"H`` and ``W 10 cm`` keep their letters; a header
  such as ``L x W x H`` gives letters to the next group in order;
* ranges ``100-240V`` / ``10 to 15 kg`` -> both ends, flagged ``is_range``
  (policy: both ends become candidates, selection picks one; a list is never
  emitted because a list can never match a label);
* a number without a unit is not a quantity here; neighbouring OCR boxes are
  joined by :mod:`specread.extract` before parsing, so ``500`` | ``ml`` split
  across boxes still parses.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import cache

from specread.errors import UnknownUnitError
from specread.parse.numbers import NUMBER_PATTERN, normalize_text, parse_number
from specread.types import Quantity
from specread.units.registry import get_registry

__all__ = ["parse_quantities"]

_LETTERS = "WHDLTB"
# A number may start right after an "x" that continues a dimension: "25x15", "10cmx5", '10"x5'
# (and, below, after a slash that follows a unit, with or without a space before it: "12V/24V",
# "500ml/16.9oz", "100 g /3.52 oz"; "1/2" stays a fraction).
_AFTER_X = r"(?<=\d[xX])|(?<=\d[A-Za-z\"'][xX])|(?<=\d[A-Za-z]{2}[xX])"
# ... or right after a one-letter unit ("48V250W") or a "max" ("max35W", "POWER:MAX750W").
_AFTER_UNIT = r"(?<=\d[A-Za-z])|(?<=[Mm][Aa][Xx])"


@dataclass
class _Item:
    value: float
    unit: str | None
    start: int
    end: int
    raw: str
    letter: str = ""


@cache
def _item_regex() -> re.Pattern[str]:
    units = get_registry().alias_pattern
    # A unit must end at a word edge; "x" may follow when a dimension continues ("10cmx5cm").
    edge = r"(?:(?![A-Za-z])|(?=[xX]\s*\d)|(?<=[\"'″′”’.~\-]))"
    return re.compile(
        rf"""
        (?:(?P<pre>(?<![A-Za-z])[{_LETTERS}{_LETTERS.lower()}])\s*[:=.]?\s*)?   # W: 10 cm
        (?(pre)|(?:(?<![A-Za-z\d.,/])|(?<=[Aa][Cc])|(?<=[Dd][Cc])|{_AFTER_X}|(?<=[A-Za-z\"']/)|(?<=[A-Za-z\"']\s/)|{_AFTER_UNIT}))(?P<num>{NUMBER_PATTERN})
        (?:\s*-?\s*(?P<unit>{units}){edge})?
        (?:\s*(?P<post>[{_LETTERS}])(?![A-Za-z]))?                              # 10"W
        """,
        re.VERBOSE,
    )


_HEADER = re.compile(rf"(?<![A-Za-z])([{_LETTERS}])\s*x\s*([{_LETTERS}])(?:\s*x\s*([{_LETTERS}]))?(?![A-Za-z])", re.I)
_JOIN_GROUP = re.compile(r"\s*[xX]\s*")
# Word joiners need spaces, and "a" (es/it "10 a 15") is lower case: "2A 24W" is amperes, not a range.
_JOIN_RANGE = re.compile(r"\s*[-~]\s*|\s+(?:(?i:to|bis)|a)\s+")


def _scan(text: str, header_end: int = -1) -> list[_Item]:
    registry = get_registry()
    items: list[_Item] = []
    for m in _item_regex().finditer(text):
        try:
            value = parse_number(m.group("num"))
        except ValueError:
            continue
        unit = None
        if m.group("unit"):
            try:
                unit = registry.lookup(m.group("unit")).name
            except UnknownUnitError:
                unit = None
        letter = (m.group("post") or "") if unit else ""
        pre = m.group("pre") or ""
        if m.start() < header_end or (unit and registry.unit(unit).dimension != "length"):
            pre, letter = "", ""
        if pre and not letter and (len(pre) == 1 and pre.upper() in _LETTERS):
            letter = pre.upper()
        start = m.start("num") if not (pre and letter == pre.upper()) else m.start()
        end = m.end("unit") if m.group("unit") and unit else m.end("num")
        if m.group("post") and unit:
            end = m.end("post")
        items.append(_Item(value, unit, start, end, text[start:end], letter))
    return items


def parse_quantities(text: str) -> list[Quantity]:
    """Every value-with-unit mention in ``text``, in reading order.

    Args:
        text: raw text of one OCR line (or several neighbouring lines joined).

    Returns:
        Quantities with canonical units; empty when none is found.
    """
    text = normalize_text(text)
    header = _HEADER.search(text)
    items = _scan(text, header.end() if header else -1)
    if not items:
        return []

    out: list[Quantity] = []
    group_id = 0
    for run, kind in _runs(text, items):
        if len(run) == 1:
            it = run[0]
            if it.unit:
                out.append(Quantity(it.value, it.unit, it.raw, it.start, it.end, letter=it.letter))
            continue
        trailing = next((it.unit for it in reversed(run) if it.unit), None)
        if trailing is None:
            continue
        if kind == "group" and get_registry().unit(trailing).dimension != "length":
            # "4 x 100 g" is a pack count, not a dimension group: keep what carries a unit.
            out.extend(Quantity(it.value, it.unit, it.raw, it.start, it.end) for it in run if it.unit)
            continue
        raw = text[run[0].start : run[-1].end]
        if kind == "range":
            for pos, it in enumerate(run):
                out.append(Quantity(it.value, it.unit or trailing, raw, it.start, it.end, group_pos=pos, is_range=True))
            continue
        out.extend(_dimension_group(run, raw, trailing, group_id, _group_letters(run, header)))
        group_id += 1
    return [q for q in out if q.value > 0]


def _runs(text: str, items: list[_Item]) -> Iterator[tuple[list[_Item], str]]:
    """``items`` cut into runs joined by "x" (kind ``"group"``) or "-"/"to" (``"range"``); a lone item: kind ``""``."""
    i = 0
    while i < len(items):
        run = [items[i]]
        kind = ""
        for nxt in items[i + 1 :]:
            joined = _join(text, run, kind, nxt)
            if joined is None:
                break
            kind = joined
            run.append(nxt)
        i += len(run)
        yield run, kind


def _join(text: str, run: list[_Item], kind: str, nxt: _Item) -> str | None:
    """The kind of run ``run`` becomes when ``nxt`` joins it, or None when the text between them ends the run."""
    gap = text[run[-1].end : nxt.start]
    if not gap and run[-1].raw[-1:] in ("-", "~"):
        gap = run[-1].raw[-1]  # "100V-240V": the unit alias "v-" swallowed the range dash
    if _JOIN_GROUP.fullmatch(gap) and kind in ("", "group"):
        return "group"
    if _JOIN_RANGE.fullmatch(gap) and kind in ("", "range") and len(run) == 1 and run[0].unit in (None, nxt.unit):
        return "range"
    return None


def _group_letters(run: list[_Item], header: re.Match[str] | None) -> list[str]:
    """The run's own W/H/D letters; a group printed with none takes those of an ``L x W x H`` header before it."""
    letters = [it.letter for it in run]
    header_letters = [g.upper() for g in header.groups() if g] if header else []
    if (
        not any(letters)
        and header_letters
        and len(header_letters) == len(run)
        and header
        and header.end() <= run[0].start
    ):
        return header_letters
    return letters


def _dimension_group(run: list[_Item], raw: str, trailing: str, group_id: int, letters: list[str]) -> list[Quantity]:
    """One dimension group: a value without a unit takes the next unit printed after it (else ``trailing``)."""
    out: list[Quantity] = []
    for pos, it in enumerate(run):
        unit = it.unit or next((u.unit for u in run[pos:] if u.unit), trailing)
        out.append(
            Quantity(
                it.value,
                unit,
                raw,
                it.start,
                it.end,
                group=group_id,
                group_pos=pos,
                group_size=len(run),
                letter=letters[pos],
            )
        )
    return out


def with_unit(q: Quantity, unit: str, value: float | None = None) -> Quantity:
    """A copy of ``q`` in another unit (used for entity-specific coercions)."""
    return replace(q, unit=unit, value=q.value if value is None else value)
