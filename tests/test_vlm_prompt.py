"""Prompt templates and answer parsing for the VLM path (no torch needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from specread.answer import Answer
from specread.errors import AnswerFormatError, UnknownEntityError
from specread.units.registry import get_registry
from specread.vlm.prompt import (
    BLANK,
    DEFAULT_TEMPLATE,
    PromptTemplate,
    entity_phrase,
    load_template,
    parse_answer,
    target_text,
)


def test_default_template_is_the_reference_prompt_with_registry_units() -> None:
    text = PromptTemplate().render("item_volume")
    assert text.startswith("Extract item volume from the image in the format 'x unit'")
    assert 'return a string "blank"' in text
    units = ", ".join(get_registry().allowed("item_volume"))
    assert f"the following list: {units}." in text
    assert "_" not in text.split("list:")[0]


def test_hints_append_a_sentence_when_the_template_has_no_field() -> None:
    text = PromptTemplate().render("voltage", ["230.0 volt", "12.0 volt"])
    assert text.endswith("Text read from the image by OCR suggests: 230.0 volt, 12.0 volt.")
    assert PromptTemplate().render("voltage") == DEFAULT_TEMPLATE.format(
        entity="voltage", units=", ".join(get_registry().allowed("voltage"))
    )


def test_a_template_with_a_hints_field_places_them_itself() -> None:
    tpl = PromptTemplate("Read {entity}. OCR: [{hints}]")
    assert tpl.render("wattage", ["60.0 watt"]) == "Read wattage. OCR: [60.0 watt]"
    assert tpl.render("wattage") == "Read wattage. OCR: []"


@pytest.mark.parametrize("text", ["Read {thing}", "Read {units} only"])
def test_bad_templates_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        PromptTemplate(text)


def test_unknown_entity_is_refused() -> None:
    with pytest.raises(UnknownEntityError):
        PromptTemplate().render("colour")


def test_load_template_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("What is the {entity}?\n", encoding="utf-8")
    assert load_template(path).render("depth") == "What is the depth?"
    assert load_template(None) == PromptTemplate()


@pytest.mark.parametrize(
    ("text", "entity", "expected"),
    [
        ("500.0 gram", "item_weight", Answer(500.0, "gram")),
        ("500 grams", "item_weight", Answer(500.0, "gram")),
        (" 12 oz", "item_volume", Answer(12.0, "fluid ounce")),  # the entity's coercion applies
        ("1.5 kilowatt", "wattage", Answer(1.5, "kilowatt")),
        ("blank", "voltage", None),
        ('"Blank".', "voltage", None),
        ("", "width", None),
        ("12.0 volt", "item_weight", None),  # a unit the entity does not allow
        ("about three kilos", "item_weight", None),
        ("The weight is 2.5 kg net", "item_weight", Answer(2.5, "kilogram")),
    ],
)
def test_parse_answer_gives_only_valid_values(text: str, entity: str, expected: Answer | None) -> None:
    got = parse_answer(text, entity)
    assert got == expected
    if got is not None:
        assert got.unit in get_registry().allowed(entity)


def test_target_text_is_canonical_or_blank() -> None:
    assert target_text("500 gram") == "500.0 gram"
    assert target_text("0.709 gram") == "0.709 gram"
    assert target_text("") == BLANK
    assert target_text("  ") == BLANK
    assert target_text("5 fluid  ounce") == "5.0 fluid ounce"


@pytest.mark.parametrize("label", ["[100.0, 240.0] volt", "10 to 15 kilogram", "500", "about 5 gram"])
def test_target_text_refuses_a_label_that_is_not_an_answer(label: str) -> None:
    with pytest.raises(AnswerFormatError):
        target_text(label)


def test_entity_phrase() -> None:
    assert entity_phrase("maximum_weight_recommendation") == "maximum weight recommendation"


def test_the_default_install_never_imports_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys, specread.cli, specread.pipeline, specread.vlm.reader, specread.vlm.finetune, "
        "specread.vlm.backends, specread.labels.clean; "
        "bad = [m for m in ('torch', 'transformers', 'peft', 'matplotlib') if sys.modules.get(m) is not None]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
