"""The unit registry (units.toml) and the challenge output format."""

from __future__ import annotations

import math
import re
import tomllib
from importlib import resources

import pytest
from hypothesis import given
from hypothesis import strategies as st

from specread.errors import UnknownEntityError, UnknownUnitError
from specread.units import ENTITIES, OFFICIAL_FORMAT, format_number, format_prediction, get_registry
from specread.units.registry import UnitRegistry

# The challenge's entity_unit_map, written out literally as the reference.
ENTITY_UNIT_MAP: dict[str, set[str]] = {
    "width": {"centimetre", "foot", "inch", "metre", "millimetre", "yard"},
    "depth": {"centimetre", "foot", "inch", "metre", "millimetre", "yard"},
    "height": {"centimetre", "foot", "inch", "metre", "millimetre", "yard"},
    "item_weight": {"gram", "kilogram", "microgram", "milligram", "ounce", "pound", "ton"},
    "maximum_weight_recommendation": {"gram", "kilogram", "microgram", "milligram", "ounce", "pound", "ton"},
    "voltage": {"kilovolt", "millivolt", "volt"},
    "wattage": {"kilowatt", "watt"},
    "item_volume": {
        "centilitre",
        "cubic foot",
        "cubic inch",
        "cup",
        "decilitre",
        "fluid ounce",
        "gallon",
        "imperial gallon",
        "litre",
        "microlitre",
        "millilitre",
        "pint",
        "quart",
    },
}

ALL_UNITS = sorted(set().union(*ENTITY_UNIT_MAP.values()))


def _make_table(**units: dict) -> dict:
    """A minimal registry table with the given units and one entity allowing all of them."""
    return {
        "units": units,
        "entities": {"thing": {"units": list(units)}},
    }


def test_registry_loads_with_every_entity_and_unit() -> None:
    reg = get_registry()
    assert set(reg.entities) == set(ENTITY_UNIT_MAP)
    assert set(ENTITIES) == set(ENTITY_UNIT_MAP)
    # Every challenge unit is known; extra units (for converting noisy training labels) are allowed
    # as long as no entity accepts them (checked by the entity_unit_map test).
    assert set(reg.units) >= set(ALL_UNITS)


@pytest.mark.parametrize("entity", sorted(ENTITY_UNIT_MAP))
def test_allowed_units_equal_entity_unit_map(entity: str) -> None:
    allowed = get_registry().allowed(entity)
    assert set(allowed) == ENTITY_UNIT_MAP[entity]
    assert len(allowed) == len(set(allowed)), "an allowed unit is listed twice"


def test_every_entity_has_a_single_dimension() -> None:
    reg = get_registry()
    for entity in ENTITY_UNIT_MAP:
        dims = {reg.unit(u).dimension for u in reg.allowed(entity)}
        assert dims == {reg.entity(entity).dimension}


@pytest.mark.parametrize("unit", ALL_UNITS)
def test_canonical_name_looks_itself_up(unit: str) -> None:
    assert get_registry().lookup(unit).name == unit
    assert get_registry().lookup(unit.upper()).name == unit


@pytest.mark.parametrize(
    ("alias", "unit"),
    [
        ("g", "gram"),
        ("GMS", "gram"),
        ("Kg", "kilogram"),
        ("µg", "microgram"),
        ("μg", "microgram"),  # Greek mu, as OCR often returns it
        ("0z", "ounce"),
        ("Ib", "pound"),
        ("1bs", "pound"),
        ("FL. OZ.", "fluid ounce"),
        ("fl  oz", "fluid ounce"),  # runs of spaces are folded
        ("mL", "millilitre"),
        ("″", "inch"),
        ("′", "foot"),
        ("VAC", "volt"),
        ("cu ft", "cubic foot"),
        ("t", "ton"),
        ("T", "ton"),
    ],
)
def test_lookup_alias(alias: str, unit: str) -> None:
    assert get_registry().lookup(alias).name == unit


@pytest.mark.parametrize("alias", ["mAh", "Hz", "GHz", "pcs", "", "x"])
def test_lookup_unknown_alias_raises(alias: str) -> None:
    with pytest.raises(UnknownUnitError) as info:
        get_registry().lookup(alias)
    assert isinstance(info.value, KeyError)
    assert repr(alias) in str(info.value)


def test_unknown_entity_lists_valid_ones() -> None:
    with pytest.raises(UnknownEntityError) as info:
        get_registry().allowed("colour")
    message = str(info.value)
    assert "'colour'" in message
    for entity in ENTITY_UNIT_MAP:
        assert entity in message


def test_aliases_are_unique_in_the_shipped_table() -> None:
    table = tomllib.loads(resources.files("specread.units").joinpath("units.toml").read_text(encoding="utf-8"))
    owner: dict[str, str] = {}
    reg = get_registry()
    for name, spec in table["units"].items():
        for alias in (name, *spec.get("aliases", ())):
            key = re.sub(r"\s+", " ", alias.casefold())
            assert owner.setdefault(key, name) == name, f"{alias!r} belongs to {owner[key]} and {name}"
            assert reg.lookup(alias).name == name


def test_duplicate_alias_across_units_raises_at_load() -> None:
    table = _make_table(
        gram={"dimension": "mass", "factor": 1.0, "aliases": ["g"]},
        kilogram={"dimension": "mass", "factor": 1000.0, "aliases": ["kg", "G"]},
    )
    with pytest.raises(ValueError, match="'G'"):
        UnitRegistry(table)


def test_duplicate_exact_alias_raises_at_load() -> None:
    table = _make_table(
        ton={"dimension": "mass", "factor": 1e6, "exact": ["t"]},
        tonne={"dimension": "mass", "factor": 1e6, "exact": ["t"]},
    )
    with pytest.raises(ValueError, match="'t'"):
        UnitRegistry(table)


def test_alias_repeated_within_one_unit_is_fine() -> None:
    reg = UnitRegistry(_make_table(gram={"dimension": "mass", "factor": 1.0, "aliases": ["g", "G", "gram"]}))
    assert reg.lookup("G").name == "gram"


@pytest.mark.parametrize(
    ("units", "entities", "match"),
    [
        ({"gram": {"dimension": "mass", "factor": 1.0}}, {"e": {"units": ["pound"]}}, "unknown unit"),
        ({"gram": {"dimension": "weight", "factor": 1.0}}, {"e": {"units": ["gram"]}}, "unknown dimension"),
        ({"gram": {"dimension": "mass", "factor": 0.0}}, {"e": {"units": ["gram"]}}, "positive"),
        (
            {"gram": {"dimension": "mass", "factor": 1.0}, "metre": {"dimension": "length", "factor": 1.0}},
            {"e": {"units": ["gram", "metre"]}},
            "mixes dimensions",
        ),
        (
            {"gram": {"dimension": "mass", "factor": 1.0}, "metre": {"dimension": "length", "factor": 1.0}},
            {"e": {"units": ["gram"], "coerce": {"gram": "metre"}}},
            "coercion",
        ),
    ],
)
def test_invalid_tables_fail_at_load(units: dict, entities: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        UnitRegistry({"units": units, "entities": entities})


@pytest.mark.parametrize(
    ("value", "src", "dst", "expected"),
    [
        (1.0, "kilogram", "gram", 1000.0),
        (1.0, "gram", "milligram", 1000.0),
        (1.0, "milligram", "microgram", 1000.0),
        (1.0, "ton", "kilogram", 1000.0),
        (1.0, "pound", "ounce", 16.0),
        (1.0, "pound", "gram", 453.59237),
        (1.0, "ounce", "gram", 28.349523125),
        (1.0, "foot", "inch", 12.0),
        (1.0, "yard", "foot", 3.0),
        (1.0, "inch", "centimetre", 2.54),
        (1.0, "metre", "millimetre", 1000.0),
        (2.5, "metre", "centimetre", 250.0),
        (1.0, "litre", "millilitre", 1000.0),
        (1.0, "centilitre", "millilitre", 10.0),
        (1.0, "decilitre", "centilitre", 10.0),
        (1.0, "millilitre", "microlitre", 1000.0),
        (1.0, "gallon", "quart", 4.0),
        (1.0, "quart", "pint", 2.0),
        (1.0, "pint", "cup", 2.0),
        (1.0, "cup", "fluid ounce", 8.0),
        (1.0, "gallon", "fluid ounce", 128.0),
        (1.0, "imperial gallon", "litre", 4.54609),
        (1.0, "cubic foot", "cubic inch", 1728.0),
        (1.0, "cubic inch", "millilitre", 16.387064),
        (1.0, "kilovolt", "volt", 1000.0),
        (1.0, "volt", "millivolt", 1000.0),
        (1.5, "kilowatt", "watt", 1500.0),
    ],
)
def test_convert_known_pairs(value: float, src: str, dst: str, expected: float) -> None:
    reg = get_registry()
    assert reg.convert(value, src, dst) == pytest.approx(expected, rel=1e-12)
    assert reg.convert(expected, dst, src) == pytest.approx(value, rel=1e-12)


def test_convert_across_dimensions_raises() -> None:
    with pytest.raises(ValueError, match="cannot convert"):
        get_registry().convert(1.0, "gram", "millilitre")


def test_convert_unknown_unit_raises() -> None:
    with pytest.raises(UnknownUnitError):
        get_registry().convert(1.0, "gram", "stone")


@pytest.mark.parametrize(
    ("entity", "unit", "expected"),
    [
        ("item_volume", "ounce", "fluid ounce"),  # a bare "oz" on a drink is fluid ounces
        ("item_weight", "ounce", "ounce"),
        ("item_weight", "fluid ounce", None),
        ("voltage", "watt", None),
        ("width", "inch", "inch"),
        ("wattage", "kilowatt", "kilowatt"),
    ],
)
def test_for_entity(entity: str, unit: str, expected: str | None) -> None:
    assert get_registry().for_entity(entity, unit) == expected


# -- output format -------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (500, "500.0"),
        (500.0, "500.0"),
        (1.5, "1.5"),
        (0.000001, "0.000001"),
        (1e-7, "0.0000001"),
        (1e21, "1000000000000000000000.0"),
        (12.3456789, "12.345679"),
        (0.0, "0.0"),
        (-0.0, "0.0"),
        (-2.5, "-2.5"),
    ],
)
def test_format_number(value: float, text: str) -> None:
    assert format_number(value) == text


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_format_number_rejects_non_finite(value: float) -> None:
    with pytest.raises(ValueError, match="non-finite"):
        format_number(value)


def test_format_prediction() -> None:
    assert format_prediction(500, "gram") == "500.0 gram"
    assert format_prediction(12.5, "fluid ounce") == "12.5 fluid ounce"


finite = st.floats(allow_nan=False, allow_infinity=False)


@given(finite)
def test_format_number_never_uses_an_exponent_and_round_trips(value: float) -> None:
    text = format_number(value)
    assert "e" not in text.lower()
    assert re.fullmatch(r"-?\d+\.\d+", text), text
    assert math.isclose(float(text), value, rel_tol=1e-6, abs_tol=1e-6)


@given(finite, st.sampled_from(ALL_UNITS))
def test_format_prediction_matches_official_format(value: float, unit: str) -> None:
    assert OFFICIAL_FORMAT.match(format_prediction(value, unit))
