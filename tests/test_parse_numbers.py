"""parse/numbers.py: printed numbers, separators, fractions and digit-adjacent OCR confusions."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from specread.parse import normalize_text, parse_number


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("12", 12.0),
        ("007", 7.0),
        ("12.5", 12.5),
        (" 3.25 ", 3.25),
        # decimal comma: a comma followed by 1, 2 or 4+ digits
        ("1,5", 1.5),
        ("1,50", 1.5),
        ("0,75", 0.75),
        ("1,5000", 1.5),
        # thousands: groups of exactly three digits
        ("1,500", 1500.0),
        ("12,000,000", 12_000_000.0),
        ("1.234.567", 1_234_567.0),
        # both separators: the last one is the decimal one
        ("1.500,5", 1500.5),
        ("1,500.5", 1500.5),
        ("1.234.567,89", 1234567.89),
        # a lone dot is always decimal
        ("1.500", 1.5),
        # leading separator
        (".5", 0.5),
        (",5", 0.5),
        # fractions, plain, mixed and unicode
        ("1/2", 0.5),
        ("3/4", 0.75),
        ("1-1/2", 1.5),
        ("4 1/2", 4.5),
        ("2 - 1/4", 2.25),
        ("½", 0.5),
        ("¾", 0.75),
        ("1½", 1.5),
        ("2 ¼", 2.25),
    ],
)
def test_parse_number(text: str, value: float) -> None:
    assert parse_number(text) == pytest.approx(value)


@pytest.mark.parametrize(
    "text", ["", "   ", "abc", "1..5", "1,2,3", "12,34,567", "1,500,00", "1/0", "2 1/0", "-5", "5%", "9" * 400]
)
def test_parse_number_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_number(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # O for 0 and l/I/| for 1, only where the context is numeric
        ("5O0 g", "500 g"),
        ("1O0 ml", "100 ml"),
        ("O.5 kg", "0.5 kg"),
        ("2,O5 kg", "2,05 kg"),
        ("1.O kg", "1.0 kg"),
        ("1.Oz", "1.Oz"),
        ("l00 ml", "100 ml"),
        ("l5 kg", "15 kg"),
        ("1l0 g", "110 g"),
        ("I2 V", "12 V"),
        ("|5 W", "15 W"),
        # ... and not inside words
        ("Organic Oil", "Organic Oil"),
        ("Oil lamp", "Oil lamp"),
        ("Model SOLO", "Model SOLO"),
        # unit misreads that need the digit: "160z" is 16 oz, "51b" is 5 lb
        ("160z", "16 oz"),
        ("51b", "5 lb"),
        ("51bs", "5 lbs"),
        # separators split or mis-spaced by OCR
        ("1, 5 kg", "1.5 kg"),
        ("1 .5 kg", "1.5 kg"),
        ("1. 5 kg", "1.5 kg"),
        # dashes and multiplication signs
        ("10–20 kg", "10-20 kg"),
        ("10—20 kg", "10-20 kg"),
        ("2*3 cm", "2 x 3 cm"),
        # "NET WT.1KG" is 1 kg, not .1 kg
        ("NET WT.1KG", "NET WT: 1KG"),
        # the EU estimated-sign read as "e"
        ("500 g e", "500 g"),
        ("500ml e", "500ml"),
        ("e 500 g", "e 500 g"),
        ("e1.76 fl.oz", "1.76 fl.oz"),
        # fractions
        ("1½ cup", "1 1/2 cup"),
        ("½ cup", "1/2 cup"),
        ("1⁄2 cup", "1/2 cup"),
        # full-width digits fold to ASCII
        ("５００ ｍｌ", "500 ml"),
    ],
)
def test_normalize_text(text: str, expected: str) -> None:
    # Runs of spaces are not part of the contract (the parser allows any spacing); characters are.
    assert " ".join(normalize_text(text).split()) == expected


def test_normalize_text_keeps_micro_sign() -> None:
    # NFKC maps the micro sign to Greek mu; the parser folds both to µ so "µg" stays one alias.
    assert normalize_text("50 μg") == "50 µg"
    assert normalize_text("50 µg") == "50 µg"


def test_normalize_text_multiplication_signs() -> None:
    assert normalize_text("2 × 3 cm").split() == ["2", "x", "3", "cm"]
    assert normalize_text("2✕3").split() == ["2", "x", "3"]


# -- properties -----------------------------------------------------------------


@given(st.integers(min_value=1000, max_value=10**12))
def test_thousands_grouped_integers(n: int) -> None:
    assert parse_number(f"{n:,}") == n


@given(st.integers(min_value=1_000_000, max_value=10**12))
def test_dot_grouped_integers(n: int) -> None:
    # European grouping; two or more dots can only be thousands separators.
    assert parse_number(f"{n:,}".replace(",", ".")) == n


@given(st.integers(min_value=0, max_value=10**9), st.integers(min_value=0, max_value=999))
def test_decimal_point_numbers(whole: int, frac: int) -> None:
    text = f"{whole}.{frac:03d}"
    assert math.isclose(parse_number(text), float(text))


@given(
    st.integers(min_value=0, max_value=10**6),
    st.sampled_from([1, 2, 4, 5]).flatmap(
        lambda k: st.integers(min_value=0, max_value=10**k - 1).map(lambda d: f"{d:0{k}d}")
    ),
)
def test_decimal_comma_numbers(whole: int, digits: str) -> None:
    # a comma followed by anything but exactly three digits is a decimal comma
    assert math.isclose(parse_number(f"{whole},{digits}"), float(f"{whole}.{digits}"))


@given(
    st.integers(min_value=0, max_value=100),
    st.integers(min_value=1, max_value=64),
    st.integers(min_value=1, max_value=64),
)
def test_mixed_fractions(whole: int, num: int, den: int) -> None:
    for sep in ("-", " ", " - "):
        text = f"{whole}{sep}{num}/{den}" if whole else f"{num}/{den}"
        assert math.isclose(parse_number(text), whole + num / den)


@given(st.text())
def test_parse_number_only_raises_value_error(text: str) -> None:
    try:
        value = parse_number(text)
    except ValueError:
        return
    assert math.isfinite(value) and value >= 0


@given(st.text())
def test_normalize_text_never_raises(text: str) -> None:
    assert isinstance(normalize_text(text), str)
