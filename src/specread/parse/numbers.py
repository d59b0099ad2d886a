"""Numbers as product labels print them.

Decimal comma vs thousands separator, unicode and mixed fractions, and the
OCR confusions that only make sense next to digits (``O`` for ``0``, ``l`` for
``1``). Policy for separators:

* ``1,5`` / ``1,50`` -> 1.5 (a comma followed by 1, 2 or 4+ digits is decimal);
* ``1,500`` / ``12,000,000`` -> thousands (groups of exactly three digits);
* ``1.500,5`` and ``1,500.5`` -> the last separator is the decimal one;
* ``1.500`` -> 1.5 (a lone dot is always decimal).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable

__all__ = ["NUMBER_PATTERN", "normalize_text", "parse_number"]

_FRACTIONS = {
    "½": "1/2", "⅓": "1/3", "⅔": "2/3", "¼": "1/4", "¾": "3/4", "⅕": "1/5", "⅖": "2/5",
    "⅗": "3/5", "⅘": "4/5", "⅙": "1/6", "⅚": "5/6", "⅛": "1/8", "⅜": "3/8", "⅝": "5/8", "⅞": "7/8",
}  # fmt: skip

NUMBER_PATTERN = r"""
(?:
    \d+/\d+                                 # 1/2
  | \d+(?:[.,]\d+)*(?:\s*[-\s]\s*\d+/\d+)?   # 12, 1,500.5, 1,5 and mixed 1-1/2, 4 1/2
  | (?<!\d)[.,]\d+                          # .5
)
"""


def _zeros(m: re.Match[str]) -> str:
    return "0" * len(m.group())


_SUBSTITUTIONS: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = tuple(
    (re.compile(p), r)
    for p, r in (
        (r"[×✕✖]|(?<=\d)\s*[*]\s*(?=\d)", " x "),  # multiplication signs in dimension groups
        (r"[–—−‐‑]", "-"),  # dashes
        (r"(?<=\d)[Oo](?=\d)|(?<=\d)[Oo](?=[.,]\d)|(?<![A-Za-z\d])[Oo](?=[.,]\d)", "0"),
        (r"(?<=\d)[Oo](?=[Oo]?\d)", "0"),
        (r"(?<=\d[.,])[Oo](?![A-Za-z])", "0"),  # "2,O5" / "1.O"
        (r"(?<![A-Za-z\d])[lI|](?=\d)|(?<=\d)[lI](?=\d)", "1"),
        (r"(?<=\d)1b(s?)\b", r" lb\1"),  # "51b" is "5 lb"
        (r"(?<=\d)0[zZ]\b", " oz"),  # "160z" is "16 oz", "4.50Z" is "4.5 oz"
        (r"(?<=\d)[Oo]{1,2}(?=\s?(?i:[mk]?g|gsm|[mc]?l|[mc]m)\b)", _zeros),  # "1O ml", "6oo GSM"
        (r"(?<=\d),(?=\s\d{1,2}\b)", "."),  # "1, 5" read apart by OCR
        (r"(?<=\d)\s+\.(?=\d)|(?<=\d)\.\s+(?=\d)", "."),
        (r"(?<=\d)\s*°\s*(?=\d)", ""),
        (r"(?<=\d)\s*-?\s*[iI][nN]\s*-?\s*1\b(?![.,/]?\d)", "inone"),  # "3 in 1", "2-in-1": a product type, not inches
        (r"(?<=[A-Za-z])[.:](?=\d)", ": "),  # "NET WT.1KG" is 1 kg, not .1 kg
        (r"(?<=\d)(\s?(?:[gG]|[kK][gG]|[mM][lL]|[cC][lL]|[lL]))\s?e(?![A-Za-z])", r"\1 "),  # the EU ℮ mark read as "e"
        (r"(?<![A-Za-z])[e℮](?=\d)", ""),  # "e1.76 fl.oz": the ℮ mark before the number
    )
)


def _fold_fractions(text: str) -> str:
    """``1½`` -> ``1 1/2``, ``½`` -> ``1/2``, ``1⁄2`` -> ``1/2``."""
    for glyph, frac in _FRACTIONS.items():
        if glyph in text:
            text = re.sub(rf"(\d)\s*{glyph}", rf"\1 {frac}", text).replace(glyph, frac)
    return text.replace("⁄", "/")


def normalize_text(text: str) -> str:
    """Fold unicode, fractions and digit-adjacent OCR confusions into plain ASCII-ish text."""
    text = _fold_fractions(text)
    # Primes before NFKC (which turns ″ into two ′): double primes and quotes mean inches.
    text = re.sub(r"[″”“]|′′|''", '"', text).replace("′", "'").replace("’", "'")
    # NFKC keeps µ distinct from m, folds full-width digits and ligatures.
    text = unicodedata.normalize("NFKC", text).replace("μ", "µ")
    for pattern, repl in _SUBSTITUTIONS:
        text = pattern.sub(repl, text)
    return text


def _plain(number: str) -> float:
    commas, dots = number.count(","), number.count(".")
    if commas and dots:
        decimal = "," if number.rfind(",") > number.rfind(".") else "."
        thousands = "." if decimal == "," else ","
        return float(number.replace(thousands, "").replace(decimal, "."))
    if commas:
        groups = number.split(",")
        if groups[0] and all(len(g) == 3 for g in groups[1:]) and len(groups[0]) <= 3:
            return float("".join(groups))
        if commas == 1:
            return float(number.replace(",", "."))
        raise ValueError(f"ambiguous separators in {number!r}")
    if dots > 1:
        groups = number.split(".")
        if all(len(g) == 3 for g in groups[1:]):
            return float("".join(groups))
        raise ValueError(f"ambiguous separators in {number!r}")
    return float(number)


def parse_number(text: str) -> float:
    """Parse one printed number (see module policy). Raises ``ValueError`` when it is none."""
    s = _fold_fractions(text).strip()
    if not s:
        raise ValueError("empty number")
    mixed = re.fullmatch(r"(\d+(?:[.,]\d+)?)\s*[-\s]\s*(\d+)/(\d+)", s)
    if mixed:
        whole, num, den = mixed.groups()
        if int(den) == 0:
            raise ValueError(f"zero denominator in {text!r}")
        return _plain(whole) + int(num) / int(den)
    frac = re.fullmatch(r"(\d+)/(\d+)", s)
    if frac:
        num, den = frac.groups()
        if int(den) == 0:
            raise ValueError(f"zero denominator in {text!r}")
        return int(num) / int(den)
    if not re.fullmatch(r"\d*(?:[.,]\d+)*", s) or not any(c.isdigit() for c in s):
        raise ValueError(f"not a number: {text!r}")
    if s[0] in ".,":
        s = "0." + s[1:]
    value = _plain(s)
    if not math.isfinite(value):
        raise ValueError(f"number out of range: {text!r}")
    return value
