"""parse/quantities.py: value-with-unit mentions as product images print them."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from specread.parse import parse_quantities
from specread.types import Quantity
from specread.units import get_registry


def _vu(text: str) -> list[tuple[float, str]]:
    return [(round(q.value, 9), q.unit) for q in parse_quantities(text)]


UNIT_CASES = [
    # mass
    ("500 g", 500, "gram"),
    ("500g", 500, "gram"),
    ("500 gm", 500, "gram"),
    ("500 gms", 500, "gram"),
    ("500 GR", 500, "gram"),
    ("500 Grams", 500, "gram"),
    ("2 kg", 2, "kilogram"),
    ("2 KGS", 2, "kilogram"),
    ("2Kg", 2, "kilogram"),
    ("250 mg", 250, "milligram"),
    ("250MG", 250, "milligram"),
    ("50 mcg", 50, "microgram"),
    ("50 µg", 50, "microgram"),
    ("50 μg", 50, "microgram"),
    ("16 oz", 16, "ounce"),
    ("16 OZ", 16, "ounce"),
    ("16oz.", 16, "ounce"),
    ("5 lb", 5, "pound"),
    ("5 lbs", 5, "pound"),
    ("5 LBS", 5, "pound"),
    ("5 lb.", 5, "pound"),
    ("2 tons", 2, "ton"),
    ("2 t", 2, "ton"),
    # volume
    ("12 fl oz", 12, "fluid ounce"),
    ("12 fl.oz", 12, "fluid ounce"),
    ("12 FL. OZ.", 12, "fluid ounce"),
    ("12 Fl Oz", 12, "fluid ounce"),
    ("12floz", 12, "fluid ounce"),
    ("500 ml", 500, "millilitre"),
    ("500 mL", 500, "millilitre"),
    ("500 ML", 500, "millilitre"),
    ("2 L", 2, "litre"),
    ("2 l", 2, "litre"),
    ("2 ltr", 2, "litre"),
    ("2 Litres", 2, "litre"),
    ("75 cl", 75, "centilitre"),
    ("5 dl", 5, "decilitre"),
    ("1 gal", 1, "gallon"),
    ("1 Gallon", 1, "gallon"),
    ("2 qt", 2, "quart"),
    ("1 pt", 1, "pint"),
    ("2 cup", 2, "cup"),
    ("2 cups", 2, "cup"),
    ("1.5 cu ft", 1.5, "cubic foot"),
    ("1.5 cu. ft.", 1.5, "cubic foot"),
    ("30 cu in", 30, "cubic inch"),
    ("100 µl", 100, "microlitre"),
    # length
    ("25 cm", 25, "centimetre"),
    ("25 mm", 25, "millimetre"),
    ("2 m", 2, "metre"),
    ("10 in", 10, "inch"),
    ("10 inch", 10, "inch"),
    ("10 inches", 10, "inch"),
    ('10"', 10, "inch"),
    ("10″", 10, "inch"),
    ("10”", 10, "inch"),
    ("10''", 10, "inch"),
    ("6 ft", 6, "foot"),
    ("6'", 6, "foot"),
    ("6′", 6, "foot"),
    ("6’", 6, "foot"),
    ("3 yd", 3, "yard"),
    ("3 yards", 3, "yard"),
    # voltage
    ("230 V", 230, "volt"),
    ("230V", 230, "volt"),
    ("230 VAC", 230, "volt"),
    ("12 VDC", 12, "volt"),
    ("12VDC", 12, "volt"),
    ("230 V~", 230, "volt"),
    ("230V~", 230, "volt"),
    ("10 kV", 10, "kilovolt"),
    ("500 mV", 500, "millivolt"),
    ("12 volts", 12, "volt"),
    # power
    ("60 W", 60, "watt"),
    ("60W", 60, "watt"),
    ("2 kW", 2, "kilowatt"),
    ("2KW", 2, "kilowatt"),
    ("60 watt", 60, "watt"),
    ("60 watts", 60, "watt"),
    ("60 Watts", 60, "watt"),
]


@pytest.mark.parametrize(("text", "value", "unit"), UNIT_CASES)
def test_unit_aliases(text: str, value: float, unit: str) -> None:
    assert _vu(text) == [(value, unit)]


@pytest.mark.parametrize(
    ("text", "value", "unit"),
    [
        ("160z", 16, "ounce"),
        ("16 0z", 16, "ounce"),
        ("16 0Z", 16, "ounce"),
        ("5 Ib", 5, "pound"),
        ("5 IBS", 5, "pound"),
        ("5 1b", 5, "pound"),
        ("51b", 5, "pound"),
        ("51bs", 5, "pound"),
        ("5O0 g", 500, "gram"),
        ("1O0 ml", 100, "millilitre"),
        ("O.5 kg", 0.5, "kilogram"),
        ("l00 ml", 100, "millilitre"),
        ("l5 kg", 15, "kilogram"),
        ("1l0 g", 110, "gram"),
        ("I2V", 12, "volt"),
        ("2,O5 kg", 2.05, "kilogram"),
        ("NET WT.1KG", 1, "kilogram"),
        ("500 rnl", 500, "millilitre"),
        ("500 g e", 500, "gram"),
        ("4.50Z", 4.5, "ounce"),
        ("1O ml", 10, "millilitre"),
        ("1OO g", 100, "gram"),
        ("6oo GSM", 600, "gram"),
        ("22OGSM", 220, "gram"),
        ("0.42lnch", 0.42, "inch"),
        ("5Oz", 5, "ounce"),  # "O" before "z" is the ounce, not a zero
        ("200GSM", 200, "gram"),  # fabric weight: labels record it as the item's grams
    ],
)
def test_ocr_confusions(text: str, value: float, unit: str) -> None:
    assert _vu(text) == [(value, unit)]


@pytest.mark.parametrize(
    ("text", "value", "unit"),
    [
        ("1,5 kg", 1.5, "kilogram"),
        ("0,75 l", 0.75, "litre"),
        ("1,500 lb", 1500, "pound"),
        ("1,500W", 1500, "watt"),
        ("1.500,5 g", 1500.5, "gram"),
        ("1,500.5 g", 1500.5, "gram"),
        ("1.5 kg", 1.5, "kilogram"),
        ("1, 5 kg", 1.5, "kilogram"),
        ("12,000 mAh 5 V", 5, "volt"),
    ],
)
def test_decimal_comma_and_thousands(text: str, value: float, unit: str) -> None:
    assert _vu(text) == [(value, unit)]


@pytest.mark.parametrize(
    ("text", "value", "unit"),
    [
        ("½ cup", 0.5, "cup"),
        ("1½ cups", 1.5, "cup"),
        ("1 ½ cups", 1.5, "cup"),
        ("¾ in", 0.75, "inch"),
        ('1-1/2"', 1.5, "inch"),
        ("4 1/2 in", 4.5, "inch"),
        ("1/2 gal", 0.5, "gallon"),
        ("3/4″", 0.75, "inch"),
    ],
)
def test_fractions(text: str, value: float, unit: str) -> None:
    assert _vu(text) == [(value, unit)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("100-240V", [(100, "volt"), (240, "volt")]),
        ("100-240 V", [(100, "volt"), (240, "volt")]),
        ("100V-240V", [(100, "volt"), (240, "volt")]),
        ("100–240V~", [(100, "volt"), (240, "volt")]),
        ("10 to 15 kg", [(10, "kilogram"), (15, "kilogram")]),
        ("10 a 15 kg", [(10, "kilogram"), (15, "kilogram")]),
        ("AC 100~240V", [(100, "volt"), (240, "volt")]),
    ],
)
def test_ranges_give_both_ends(text: str, expected: list[tuple[float, str]]) -> None:
    qs = parse_quantities(text)
    assert [(q.value, q.unit) for q in qs] == expected
    assert all(q.is_range for q in qs)
    assert [q.group_pos for q in qs] == [0, 1]


def test_in_followed_by_other_numbers_is_still_inches() -> None:
    assert [(q.value, q.unit) for q in parse_quantities("12 in 1.5 mm")] == [(12.0, "inch"), (1.5, "millimetre")]
    assert [(q.value, q.unit) for q in parse_quantities("10 in 12 pack")] == [(10.0, "inch")]


def test_single_value_is_not_a_range() -> None:
    (q,) = parse_quantities("240V")
    assert not q.is_range and q.group == -1 and q.group_size == 1


@pytest.mark.parametrize(
    "text",
    [
        "3.3-4.9 GHz",
        "5000mAh",
        "5000 mAh",
        "Model X500W",
        "X500W",
        "123",
        "2023",
        "12.5",
        "1,500",
        "Made in 2023",
        "50 Hz",
        "2.4 GHz",
        "1080p",
        "USB 3.0",
        "4K",
        "100%",
        "Pack of 6",
        "",
        "Premium Quality",
        "3 in 1 charger",  # a product type, not 3 inches (policy in parse/numbers.py)
        "2-in-1 cable",
        "5 IN 1",
        "1/2",
        "2 Oct",  # "O" becomes "0" only before a unit
    ],
)
def test_things_that_must_not_parse(text: str) -> None:
    assert parse_quantities(text) == []


@pytest.mark.parametrize(
    ("text", "values", "unit"),
    [
        ("25 x 15 x 8 cm", [25, 15, 8], "centimetre"),
        ("25x15x8cm", [25, 15, 8], "centimetre"),
        ("25 × 15 × 8 cm", [25, 15, 8], "centimetre"),
        ("25 X 15 X 8 CM", [25, 15, 8], "centimetre"),
        ("25cm x 15cm x 8cm", [25, 15, 8], "centimetre"),
        ("12 x 8 in", [12, 8], "inch"),
        ('10" x 5"', [10, 5], "inch"),
        ('10"x5"', [10, 5], "inch"),
        ("10cmx5cm", [10, 5], "centimetre"),
    ],
)
def test_dimension_groups(text: str, values: list[float], unit: str) -> None:
    qs = parse_quantities(text)
    assert [(q.value, q.unit) for q in qs] == [(v, unit) for v in values]
    assert len({q.group for q in qs}) == 1 and qs[0].group >= 0
    assert [q.group_pos for q in qs] == list(range(len(values)))
    assert all(q.group_size == len(values) for q in qs)
    assert not any(q.is_range for q in qs)


def test_two_groups_get_different_ids() -> None:
    qs = parse_quantities("Box 30 x 20 cm; Lid 10 x 5 cm")
    assert [q.value for q in qs] == [30, 20, 10, 5]
    assert qs[0].group == qs[1].group != qs[2].group == qs[3].group


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('10"W x 5"D x 3"H', [(10, "inch", "W"), (5, "inch", "D"), (3, "inch", "H")]),
        ("10 cm W x 5 cm D", [(10, "centimetre", "W"), (5, "centimetre", "D")]),
        ("W: 10 cm x H: 20 cm", [(10, "centimetre", "W"), (20, "centimetre", "H")]),
        ("L x W x H: 30 x 20 x 10 cm", [(30, "centimetre", "L"), (20, "centimetre", "W"), (10, "centimetre", "H")]),
        ("H x W: 12 x 8 in", [(12, "inch", "H"), (8, "inch", "W")]),
        ("W 10 cm", [(10, "centimetre", "W")]),
    ],
)
def test_dimension_letters(text: str, expected: list[tuple[float, str, str]]) -> None:
    assert [(q.value, q.unit, q.letter) for q in parse_quantities(text)] == expected


def test_letters_only_for_lengths() -> None:
    # "W" after a wattage is the unit, and a letter never attaches to a weight.
    assert [(q.value, q.unit, q.letter) for q in parse_quantities("500 g H")] == [(500, "gram", "")]


def test_pack_count_is_not_a_dimension_group() -> None:
    qs = parse_quantities("4 x 100 g")
    assert [(q.value, q.unit, q.group) for q in qs] == [(100, "gram", -1)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Net Wt 16oz (1 lb) 454g", [(16, "ounce"), (1, "pound"), (454, "gram")]),
        ("12V 2A 24W", [(12, "volt"), (24, "watt")]),
        ("500ml / 16.9 fl oz", [(500, "millilitre"), (16.9, "fluid ounce")]),
        ("Input: 100-240V~ 50/60Hz", [(100, "volt"), (240, "volt")]),
        ("12V/24V", [(12, "volt"), (24, "volt")]),
        ("500ml/16.9oz", [(500, "millilitre"), (16.9, "ounce")]),
        # A space before the slash only (OCR of "100 g / 3.52 oz"): the second was lost, and with it
        # the unit some labels use.
        ("100 g /3.52 oz", [(100, "gram"), (3.52, "ounce")]),
        ("12oz /340g", [(12, "ounce"), (340, "gram")]),
        ("9.05 in /23.0 cm", [(9.05, "inch"), (23, "centimetre")]),
        ("12VDC 15Ah /20Hr", [(12, "volt")]),
        ("Weight 2.5kg / 5.5lbs", [(2.5, "kilogram"), (5.5, "pound")]),
        ("220-240V~ 50/60Hz 2000W", [(220, "volt"), (240, "volt"), (2000, "watt")]),
    ],
)
def test_several_mentions_in_reading_order(text: str, expected: list[tuple[float, str]]) -> None:
    assert _vu(text) == expected


def test_a_slash_after_a_number_is_still_a_fraction_not_an_alternative() -> None:
    assert _vu("1/2 cup") == [(0.5, "cup")]
    assert _vu("1 /2 cup") == []  # no "2 cup" read out of a spaced fraction


def test_offsets_point_at_the_mention() -> None:
    text = "Net Wt 500 g"
    (q,) = parse_quantities(text)
    assert text[q.start : q.end] == "500 g"
    assert q.raw == "500 g"


def test_zero_values_are_dropped() -> None:
    assert parse_quantities("0 g") == []
    assert parse_quantities("0.0 kg 5 kg") != [] and all(q.value > 0 for q in parse_quantities("0.0 kg 5 kg"))


# -- properties -----------------------------------------------------------------

_REGISTRY = get_registry()
_ALIASES = sorted(
    {(alias, unit.name) for unit in _REGISTRY.units.values() for alias in (unit.name, *unit.aliases, *unit.exact)}
)

positive_decimals = st.decimals(
    min_value=Decimal("0.001"), max_value=Decimal("1000000"), places=3, allow_nan=False, allow_infinity=False
).filter(lambda d: d > 0)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(value=positive_decimals, alias=st.sampled_from(_ALIASES), sep=st.sampled_from(["", " "]))
@example(value=Decimal("16"), alias=("0z", "ounce"), sep="")
@example(value=Decimal("1.5"), alias=("″", "inch"), sep="")
@example(value=Decimal("0.5"), alias=("fl. oz.", "fluid ounce"), sep=" ")
def test_value_and_any_alias_round_trip(value: Decimal, alias: tuple[str, str], sep: str) -> None:
    spelling, unit = alias
    text = f"{format(value, 'f')}{sep}{spelling}"
    assert _vu(text) == [(round(float(value), 9), unit)], text


@settings(max_examples=300)
@given(st.text())
@example("1-1/0 in")
@example("1/0 kg")
@example("0x0x0 cm")
@example("9" * 400 + " kg")
def test_never_raises_and_returns_valid_quantities(text: str) -> None:
    qs = parse_quantities(text)
    assert isinstance(qs, list)
    for q in qs:
        assert isinstance(q, Quantity)
        assert q.value > 0 and math.isfinite(q.value)
        assert q.unit in _REGISTRY.units


@settings(max_examples=200)
@given(st.text(alphabet=st.sampled_from(list("0123456789.,-/ xX½OolI|\"'″kgmlLVWcinftoz~")), max_size=40))
def test_never_raises_on_label_like_text(text: str) -> None:
    for q in parse_quantities(text):
        assert q.value > 0 and math.isfinite(q.value)
        assert q.unit in _REGISTRY.units
