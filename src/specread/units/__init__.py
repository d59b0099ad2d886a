"""Units: the registry (single source of unit truth); the output formatting re-exported from :mod:`specread.answer`."""

from specread.answer import OFFICIAL_FORMAT, format_number, format_prediction
from specread.units.registry import ENTITIES, EntitySpec, Unit, UnitRegistry, get_registry

__all__ = [
    "ENTITIES",
    "OFFICIAL_FORMAT",
    "EntitySpec",
    "Unit",
    "UnitRegistry",
    "format_number",
    "format_prediction",
    "get_registry",
]
