"""answer.py: the one parser and writer of ``"<number> <unit>"``, checked against the parsers it replaced."""

from __future__ import annotations

import math
import pickle
import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from specread.answer import OFFICIAL_FORMAT, Answer, format_number, format_prediction
from specread.errors import AnswerFormatError, SpecreadError
from specread.extract.priors import parse_label
from specread.metrics import Score, normalize_answer
from specread.types import Prediction
from specread.units.registry import get_registry

UNITS = sorted(get_registry().units)


# -- the parsers Answer replaced, kept verbatim as oracles ------------------------------------


def old_normalize_answer(text: str | None) -> tuple[float, str] | None:
    """metrics.normalize_answer before Answer."""
    text = (text or "").strip()
    if not text:
        return None
    head, _, unit = text.partition(" ")
    try:
        return (round(float(head), 9), " ".join(unit.split()))
    except ValueError:
        return (float("nan"), text)


def old_parse_label(text: str) -> tuple[float, str] | None:
    """priors.parse_label before Answer."""
    text = (text or "").strip()
    if not text or text.startswith("["):
        return None
    parts = text.split(" ", 1)
    if len(parts) != 2:
        return None
    try:
        value = float(parts[0])
    except ValueError:
        return None
    unit = parts[1].strip()
    if not math.isfinite(value) or unit not in get_registry().units:
        return None
    return value, unit


def _same(a: tuple[float, str] | None, b: tuple[float, str] | None) -> bool:
    """Tuple equality where nan equals nan (the oracles build a fresh nan each call)."""
    if a is None or b is None:
        return a is b
    both_nan = math.isnan(a[0]) and math.isnan(b[0])
    return (both_nan or a[0] == b[0]) and a[1] == b[1]


def _is_unit_text(unit: str) -> bool:
    return re.fullmatch(r"[A-Za-z]+( [A-Za-z]+)*", unit) is not None


# -- strategies -------------------------------------------------------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False)
units = st.sampled_from(UNITS)
words = st.from_regex(r"[A-Za-z]{1,8}( [A-Za-z]{1,8}){0,2}", fullmatch=True)
numbers = st.one_of(
    finite.map(repr),  # 500.0, 1e-05, -0.0, 1e+300
    finite.map(format_number),  # 500.0, 0.00001
    st.integers(-(10**12), 10**12).map(str),
    st.sampled_from(["nan", "inf", "-inf", "+5", "1_000", "0x10", ".5", "5.", "1e3", "1,5", "five", "٥", "", "-"]),
)
unit_texts = st.one_of(
    units,
    words,
    st.sampled_from(["", "fluid  ounce", "gram.", "to 20 gram", "gram to 20 gram", "g/m2", "µg", "kilogram]"]),
)
separators = st.sampled_from([" ", "  ", "\t", " \t ", "", "\n"])
pads = st.sampled_from(["", " ", "  ", "\t", "\n"])
answer_like = st.builds(lambda p, n, s, u, q: f"{p}{n}{s}{u}{q}", pads, numbers, separators, unit_texts, pads)
lists = st.builds(
    lambda vs, u: f"[{', '.join(format_number(v) for v in vs)}] {u}", st.lists(finite, min_size=1, max_size=4), units
)
ranges = st.builds(
    lambda a, b, u, both: f"{format_number(a)} {u + ' ' if both else ''}to {format_number(b)} {u}",
    finite,
    finite,
    units,
    st.booleans(),
)
any_text = st.one_of(answer_like, lists, ranges, st.text(max_size=30), st.none())


# -- round trip and format --------------------------------------------------------------------


@given(finite, units)
@example(500.0, "gram")
@example(1e-7, "litre")
@example(1e21, "ton")
@example(-0.0, "volt")
def test_written_answers_parse_back_to_themselves(value: float, unit: str) -> None:
    written = Answer.parse(format_prediction(value, unit))
    assert written is not None
    assert written == Answer(float(format_number(value)), unit)
    assert Answer.parse(str(written)) == written  # a written answer is a fixed point
    assert str(Answer.parse(str(written))) == str(written)


@given(st.decimals(min_value=-(10**9), max_value=10**9, places=6, allow_nan=False, allow_infinity=False), units)
def test_answers_with_up_to_six_decimals_round_trip_exactly(value, unit: str) -> None:
    answer = Answer(float(value), unit)
    if abs(answer.value) < 1e-3:
        answer = Answer(float(format_number(answer.value)), unit)  # six significant digits there
    assert Answer.parse(str(answer)) == answer


@given(finite, units)
def test_a_written_answer_never_uses_an_exponent(value: float, unit: str) -> None:
    text = Answer(value, unit).text
    number, _, written_unit = text.partition(" ")
    assert "e" not in number.lower()
    assert re.fullmatch(r"-?\d+\.\d+", number), text
    assert written_unit == unit
    assert OFFICIAL_FORMAT.match(text)
    assert str(Answer(value, unit)) == text == format_prediction(value, unit)


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_a_non_finite_answer_parses_but_cannot_be_written(value: float) -> None:
    answer = Answer.parse(f"{value} gram")
    assert answer is not None and not answer.finite
    with pytest.raises(ValueError, match="non-finite"):
        _ = answer.text


def test_parse_examples() -> None:
    assert Answer.parse("500 gram") == Answer(500.0, "gram")
    assert Answer.parse("  12.5   fluid \t ounce ") == Answer(12.5, "fluid ounce")
    assert Answer.parse("1e3 gram") == Answer(1000.0, "gram")  # what float() reads is a number
    assert Answer.parse("") is None and Answer.parse("  ") is None and Answer.parse(None) is None
    value, unit = Answer(2.0, "volt")  # unpacks like the (value, unit) pairs it replaced
    assert (value, unit) == (2.0, "volt")
    assert Answer.parse("500 gram").key == Answer.parse("500.0000000001 gram").key == (500.0, "gram")  # type: ignore[union-attr]


# -- what is not an answer ----------------------------------------------------------------------


@given(st.one_of(lists, ranges))
def test_lists_and_ranges_are_not_answers(text: str) -> None:
    with pytest.raises(AnswerFormatError):
        Answer.parse(text)
    assert Answer.try_parse(text) is None
    key = normalize_answer(text)
    assert key is not None and math.isnan(key[0])  # never equal to anything, not even itself
    s = Score()
    s.add(text, text)
    assert s.fp == 1


@pytest.mark.parametrize(
    "text",
    ["garbage", "500", "500 ", "five gram", "500 gram.", "500 g/m2", "10 to 20 volt", "[1, 2] volt", "5\tgram"],
)
def test_garbage_is_not_an_answer(text: str) -> None:
    with pytest.raises(AnswerFormatError) as info:
        Answer.parse(text)
    assert isinstance(info.value, SpecreadError) and isinstance(info.value, ValueError)
    assert repr(text.strip()) in str(info.value)
    assert pickle.loads(pickle.dumps(info.value)).text == info.value.text  # crosses process pools
    assert Answer.try_parse(text) is None


# -- the same results as the parsers it replaced -----------------------------------------------


@given(any_text)
@example("10 kilogram to 15 kilogram")
@example("5.016481104150004 e+17 pound")
@example("500")
@example("nan gram")
@example("inf gram")
@example("NAN")
def test_normalize_answer_is_the_old_one_except_that_units_must_be_words(text: str | None) -> None:
    old, new = old_normalize_answer(text), normalize_answer(text)
    if old is not None and not _is_unit_text(old[1]):
        # The old parser read "10 kilogram to 15 kilogram" as (10.0, "kilogram to 15 kilogram")
        # and "500" as (500.0, ""): now they are not answers, so they never match, as its docstring
        # always promised.
        assert new is not None and math.isnan(new[0]) and new[1] == (text or "").strip()
    else:
        assert _same(old, new), (text, old, new)


@given(any_text, any_text)
def test_scores_are_unchanged_whenever_one_side_is_a_real_answer_or_empty(pred: str | None, gold: str | None) -> None:
    """Only two identical malformed texts (same range, same number without unit) score differently now."""

    def outcome(key_of, p, g) -> str:  # the metric's row rule, with a given key function
        kp, kg = key_of(p), key_of(g)
        if kp is None and kg is None:
            return "tn"
        if kp is None:
            return "fn"
        return "fp" if kg is None or kp != kg else "tp"

    def real_or_empty(text: str | None) -> bool:
        answer = Answer.try_parse(text)
        return not (text or "").strip() or (answer is not None and answer.unit in UNITS)

    if real_or_empty(pred) or real_or_empty(gold):
        s = Score()
        s.add(pred, gold)
        new = next(k for k in ("tp", "fp", "fn", "tn") if getattr(s, k))
        assert new == outcome(old_normalize_answer, pred, gold)


@given(st.one_of(answer_like, lists, ranges, st.text(max_size=30)))
@example("500.0 gram")
@example("inf gram")
@example("[1.0, 2.0] volt")
def test_parse_label_is_the_old_one(text: str) -> None:
    old, new = old_parse_label(text), parse_label(text)
    if re.search(r"\S\s{2,}\S|\S[\t\n\r\f\v]\S", text.strip()):
        # The old one kept whitespace inside the unit ("fluid  ounce" was no unit); now it is folded.
        assert old is None or new == old
        assert new is None or new[1] in UNITS
    else:
        assert new == old


def test_prediction_text_is_the_answer() -> None:
    assert Prediction("item_weight", 500, "gram").text == "500.0 gram" == str(Answer(500, "gram"))
    assert Prediction("item_weight").text == ""
    assert Prediction("item_weight", 1.0, "").text == ""
