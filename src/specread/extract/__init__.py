"""Candidate extraction: OCR lines -> value-with-unit mentions -> per-entity candidates + features."""

from specread.extract.candidates import Mention, candidates_for, find_mentions

__all__ = ["Mention", "candidates_for", "find_mentions"]
