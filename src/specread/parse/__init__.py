"""Parsing: printed numbers and value-with-unit mentions."""

from specread.parse.numbers import normalize_text, parse_number
from specread.parse.quantities import parse_quantities

__all__ = ["normalize_text", "parse_number", "parse_quantities"]
