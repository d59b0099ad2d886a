"""Prompts for the VLM and turning its free-text answers into valid predictions.

The default template is the reference solution's prompt (Moondream2 fine-tuned
on the challenge labels). A template is plain text with three fields:
``{entity}`` (the entity name without underscores), ``{units}`` (its allowed
units, comma separated, from the unit registry) and, optionally, ``{hints}``.
When a template has no ``{hints}`` field and hints are given (hybrid mode), a
short hint sentence is appended instead, so any template works in both modes.

Whatever the model writes goes through specread's own unit parser, so every
prediction is valid for its entity: ``"blank"``, an empty string, a unit the
entity does not allow or text without a quantity all become an empty answer.
No torch here: this module is imported by the default install too.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from specread.answer import Answer
from specread.parse.quantities import parse_quantities
from specread.units.registry import get_registry

__all__ = [
    "BLANK",
    "DEFAULT_HINT_SUFFIX",
    "DEFAULT_TEMPLATE",
    "PromptTemplate",
    "entity_phrase",
    "load_template",
    "parse_answer",
    "target_text",
]

BLANK = "blank"
"""What the model is taught to say when the image has no valid value."""

DEFAULT_TEMPLATE = (
    "Extract {entity} from the image in the format 'x unit', where: 'x' is a float number in standard "
    "formatting. 'unit' is one of the allowed units for {entity} from the following list: {units}. "
    'Ensure that the output strictly matches the format "x unit" with a space separating the number '
    "and the unit. Do not use any abbreviations, special characters, or additional text. If no valid "
    'value is found in the image, return a string "blank".'
)
"""The reference solution's seed prompt (its F1 0.452 -> 0.638 runs used it)."""

DEFAULT_HINT_SUFFIX = " Text read from the image by OCR suggests: {hints}."
"""Appended in hybrid mode when the template has no ``{hints}`` field."""


def entity_phrase(entity: str) -> str:
    """``"item_weight"`` -> ``"item weight"`` (the reference wrote entity names without ``_``)."""
    return entity.replace("_", " ")


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


@dataclass(frozen=True)
class PromptTemplate:
    """A validated prompt template.

    Attributes:
        text: the template (fields ``{entity}``, ``{units}``, optional ``{hints}``).
        hint_suffix: appended when hints are given and ``text`` has no ``{hints}`` field.
    """

    text: str = DEFAULT_TEMPLATE
    hint_suffix: str = DEFAULT_HINT_SUFFIX

    def __post_init__(self) -> None:
        unknown = _fields(self.text) - {"entity", "units", "hints"}
        if unknown:
            raise ValueError(
                f"prompt template has unknown field(s) {sorted(unknown)}; use {{entity}}, {{units}}, {{hints}}"
            )
        if "entity" not in _fields(self.text):
            raise ValueError("prompt template must contain {entity}")

    def render(self, entity: str, hints: Sequence[str] = ()) -> str:
        """The prompt for one entity, with OCR hints when given.

        Raises:
            UnknownEntityError: ``entity`` is not one of the challenge's entities.
        """
        units = ", ".join(get_registry().allowed(entity))
        hint_text = ", ".join(hints)
        text = self.text.format(entity=entity_phrase(entity), units=units, hints=hint_text)
        if hints and "hints" not in _fields(self.text):
            text += self.hint_suffix.format(hints=hint_text)
        return text


def load_template(path: str | Path | None) -> PromptTemplate:
    """A template from a text file (trailing newline dropped), or the default for ``None``."""
    if path is None:
        return PromptTemplate()
    return PromptTemplate(Path(path).read_text(encoding="utf-8").rstrip("\n"))


def parse_answer(text: str, entity: str) -> Answer | None:
    """The model's answer valid for ``entity``, or None for no answer.

    The model writes free text, so this finds a quantity in it with specread's
    quantity parser rather than reading it as ``<number> <unit>``: the first
    quantity whose unit the entity allows (after the entity's coercions, e.g.
    ``ounce`` -> ``fluid ounce`` for volumes) wins; ``"blank"`` and anything
    without such a quantity give None.
    """
    text = (text or "").strip()
    if not text or text.strip(" .\"'").casefold() == BLANK:
        return None
    registry = get_registry()
    for q in parse_quantities(text):
        unit = registry.for_entity(entity, q.unit)
        if unit is not None and q.value > 0:
            return Answer(q.value, unit)
    return None


def target_text(value: str) -> str:
    """The training target for a label: the canonical ``"x unit"`` string, or ``"blank"`` when empty.

    Labels are re-written by :class:`Answer` so the model learns one spelling
    of every number (``500.0 gram``, never ``500 gram``).

    Raises:
        AnswerFormatError: the label is not ``<number> <unit>`` (clean the labels first).
    """
    answer = Answer.parse(value)
    return BLANK if answer is None else answer.text
