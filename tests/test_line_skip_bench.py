"""The oracle of ``benchmarks/line_skip.py``: which lines a "recognise only what can matter" rule keeps.

The benchmark's figures (lines skipped, F1 on the kept lines) are only as good as this rule: a line
holding a value is never skipped, and the keyword line a value continues is kept one ring out.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.line_skip import RULES, kept_lines, skipped_share
from specread.types import OcrPage, OcrToken


def _token(text: str, box: tuple[float, float, float, float]) -> OcrToken:
    x0, y0, x1, y1 = box
    return OcrToken(text, 0.95, ((x0, y0), (x1, y0), (x1, y1), (x0, y1)))


def _label() -> OcrPage:
    return OcrPage(
        tokens=(
            _token("Premium roasted coffee", (0.10, 0.05, 0.90, 0.12)),  # far from any value
            _token("Net Wt", (0.10, 0.80, 0.30, 0.85)),  # the keyword the value continues
            _token("500 g", (0.32, 0.80, 0.45, 0.85)),
            _token("Ingredients: arabica", (0.10, 0.40, 0.60, 0.45)),
        ),
        width=800,
        height=800,
    )


def test_digit_lines_alone_keep_only_the_value() -> None:
    assert kept_lines(_label(), RULES["digits"]) == {2}


def test_one_ring_keeps_the_keyword_beside_the_value_and_drops_the_far_lines() -> None:
    assert kept_lines(_label(), RULES["digits+1"]) == {1, 2}
    lines, width = skipped_share([_label()], RULES["digits+1"])
    assert lines == 0.5 and 0.5 < width < 1.0  # the two skipped lines are the long ones


_texts = st.lists(st.sampled_from(["Net Wt", "500 g", "12V", "Made in Italy", "x", "25 x 15 cm", "No. 7"]), min_size=1)


@settings(max_examples=60, deadline=None)
@given(_texts, st.randoms(use_true_random=False), st.sampled_from(sorted(RULES.values())))
def test_a_line_with_a_digit_is_never_skipped(texts: list[str], rng, hops: int) -> None:
    tokens = []
    for text in texts:
        x, y = rng.uniform(0, 0.8), rng.uniform(0, 0.9)
        tokens.append(_token(text, (x, y, x + rng.uniform(0.05, 0.2), y + rng.uniform(0.02, 0.08))))
    page = OcrPage(tuple(tokens), 800, 800)
    kept = kept_lines(page, hops)
    assert {i for i, t in enumerate(texts) if any(c.isdigit() for c in t)} <= kept
    assert kept <= set(range(len(texts)))
