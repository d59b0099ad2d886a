"""The unit registry: one loaded view of ``units.toml``.

Like pint's registry, this is the only place that knows unit spellings.
Parsers ask it for the alias pattern and for ``lookup(alias) -> Unit``; the
formatter and the sanity checker ask it which units each entity allows.
Entries are validated when the table loads, so a duplicate alias or an
entity naming an unknown unit fails at import time, not mid-run.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib import resources

from specread.errors import UnknownEntityError, UnknownUnitError

__all__ = ["ENTITIES", "EntitySpec", "Unit", "UnitRegistry", "get_registry"]

DIMENSIONS = ("length", "mass", "volume", "voltage", "power")


@dataclass(frozen=True, slots=True)
class Unit:
    """A canonical unit with its conversion factor to the dimension's base unit."""

    name: str
    dimension: str
    factor: float
    aliases: tuple[str, ...]
    exact: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.dimension not in DIMENSIONS:
            raise ValueError(f"unit {self.name!r}: unknown dimension {self.dimension!r}")
        if not self.factor > 0:
            raise ValueError(f"unit {self.name!r}: factor must be positive")


@dataclass(frozen=True, slots=True)
class EntitySpec:
    """What the challenge allows for one entity, plus the reading hints for it."""

    name: str
    units: tuple[str, ...]
    keywords: tuple[str, ...] = ()
    letters: tuple[str, ...] = ()
    coerce: tuple[tuple[str, str], ...] = ()

    @property
    def dimension(self) -> str:
        return get_registry().unit(self.units[0]).dimension


def fold(text: str) -> str:
    """Unicode-normalise and case-fold an alias for lookup (keeps µ and ″ distinct from letters)."""
    return unicodedata.normalize("NFKC", text).casefold().replace("μ", "µ").strip()


class UnitRegistry:
    """Loaded unit table with alias lookup and per-entity rules."""

    def __init__(self, table: dict) -> None:
        self.units: dict[str, Unit] = {}
        self._alias: dict[str, str] = {}
        self._exact: dict[str, str] = {}
        for name, spec in table["units"].items():
            unit = Unit(
                name=name,
                dimension=spec["dimension"],
                factor=float(spec["factor"]),
                aliases=tuple(spec.get("aliases", ())),
                exact=tuple(spec.get("exact", ())),
            )
            self.units[name] = unit
            for alias in (name, *unit.aliases):
                key = fold(alias)
                if self._alias.get(key, name) != name:
                    raise ValueError(f"alias {alias!r} is given to both {self._alias[key]!r} and {name!r}")
                self._alias[key] = name
            for alias in unit.exact:
                if alias in self._exact:
                    raise ValueError(f"exact alias {alias!r} is given twice")
                self._exact[alias] = name
        self.entities: dict[str, EntitySpec] = {}
        for name, spec in table["entities"].items():
            units = tuple(spec["units"])
            for unit_name in units:
                if unit_name not in self.units:
                    raise ValueError(f"entity {name!r} allows unknown unit {unit_name!r}")
            coerce = tuple(dict(spec.get("coerce", {})).items())
            for src, dst in coerce:
                if src not in self.units or dst not in units:
                    raise ValueError(f"entity {name!r}: bad coercion {src!r} -> {dst!r}")
            dims = {self.units[u].dimension for u in units}
            if len(dims) != 1:
                raise ValueError(f"entity {name!r} mixes dimensions {sorted(dims)}")
            self.entities[name] = EntitySpec(
                name=name,
                units=units,
                keywords=tuple(spec.get("keywords", ())),
                letters=tuple(spec.get("letters", ())),
                coerce=coerce,
            )

    # -- lookups -------------------------------------------------------------
    def lookup(self, alias: str) -> Unit:
        """Canonical unit for a printed spelling.

        Raises:
            UnknownUnitError: the spelling is not in the table.
        """
        name = self._exact.get(alias.strip()) or self._alias.get(fold(alias))
        if name is None:
            name = self._alias.get(re.sub(r"\s+", " ", fold(alias)))
        if name is None:
            raise UnknownUnitError(alias)
        return self.units[name]

    def unit(self, name: str) -> Unit:
        try:
            return self.units[name]
        except KeyError:
            raise UnknownUnitError(name) from None

    def entity(self, name: str) -> EntitySpec:
        try:
            return self.entities[name]
        except KeyError:
            raise UnknownEntityError(name, sorted(self.entities)) from None

    def allowed(self, entity: str) -> tuple[str, ...]:
        return self.entity(entity).units

    def for_entity(self, entity: str, unit: str) -> str | None:
        """The unit to report for ``entity`` given a parsed unit, or None if it cannot answer it."""
        spec = self.entity(entity)
        unit = dict(spec.coerce).get(unit, unit)
        return unit if unit in spec.units else None

    def to_base(self, value: float, unit: str) -> float:
        """``value`` in the base unit of ``unit``'s dimension, so sizes in centimetres and inches compare."""
        return value * self.unit(unit).factor

    def convert(self, value: float, src: str, dst: str) -> float:
        """Exact conversion between two units of one dimension."""
        a, b = self.unit(src), self.unit(dst)
        if a.dimension != b.dimension:
            raise ValueError(f"cannot convert {src} ({a.dimension}) to {dst} ({b.dimension})")
        return value * a.factor / b.factor

    # -- patterns ------------------------------------------------------------
    @property
    def alias_pattern(self) -> str:
        """A regex alternation of every spelling, longest first, spaces made flexible.

        Case-insensitive aliases are wrapped in ``(?i:...)``; exact ones are not.
        """
        return _alias_pattern(self)


@cache
def _alias_pattern(registry: UnitRegistry) -> str:
    def esc(alias: str) -> str:
        parts = [re.escape(p) for p in alias.split()]
        return r"\s*".join(parts)

    loose = sorted({a for u in registry.units.values() for a in (u.name, *u.aliases)}, key=len, reverse=True)
    exact = sorted({a for u in registry.units.values() for a in u.exact}, key=len, reverse=True)
    alts = [f"(?i:{esc(a)})" for a in loose] + [esc(a) for a in exact]
    return "|".join(alts)


@cache
def get_registry() -> UnitRegistry:
    """The process-wide registry loaded from the packaged ``units.toml``."""
    text = resources.files("specread.units").joinpath("units.toml").read_text(encoding="utf-8")
    return UnitRegistry(tomllib.loads(text))


ENTITIES: tuple[str, ...] = (
    "width",
    "depth",
    "height",
    "item_weight",
    "maximum_weight_recommendation",
    "voltage",
    "wattage",
    "item_volume",
)
