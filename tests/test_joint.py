"""Whole-image reading (specread.rank.joint): one assignment of an image's printed sizes to its roles."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import pytest

from conftest import write_csv
from specread.extract.candidates import find_mentions
from specread.extract.features import page_candidates
from specread.extract.priors import Priors, load_priors, relation
from specread.rank.joint import assign, families, family_of
from specread.rank.model import load_model
from specread.rank.select import Selector
from specread.settings import JointSettings
from specread.types import Candidate, OcrPage, OcrToken, Quantity

DIMS = ("width", "height", "depth")
STRICT = JointSettings(mention_cost=6.0, value_cost=0.5, none_logp=3.0, pair_weight=0.0, share_weight=1.0)
"""Costs that make the coupling visible in small hand-made cases."""


def _cand(entity: str, value: float, token: int, unit: str = "centimetre") -> Candidate:
    q = Quantity(value, unit, f"{value} cm")
    return Candidate(entity, q, token, f"{value} cm", (0.0, 0.0, 0.1, 0.1), 0.9)


def _roles(values: list[tuple[float, int]]) -> dict[str, list[Candidate]]:
    return {r: [_cand(r, v, t) for v, t in values] for r in DIMS}


def _answers(chosen, cands) -> dict[str, float | None]:
    return {r: None if c.index is None else cands[r][c.index].quantity.value for r, c in chosen.items()}


def test_families_group_entities_by_unit_dimension() -> None:
    assert family_of("depth") == ("width", "depth", "height")
    assert family_of("item_weight") == ("item_weight", "maximum_weight_recommendation")
    assert family_of("voltage") == ("voltage",)
    assert families(["height", "voltage", "width", "item_weight"]) == [
        family_of("height"),
        ("voltage",),
        family_of("item_weight"),
    ]


def test_three_distinct_sizes_get_three_roles_even_when_every_role_prefers_one() -> None:
    """Every role likes the 40 cm best, but each likes a different runner-up: the assignment spreads them."""
    cands = _roles([(40, 0), (25, 1), (60, 2)])
    shares = {"width": [0.5, 0.1, 0.4], "height": [0.5, 0.4, 0.1], "depth": [0.6, 0.2, 0.2]}
    chosen = assign(cands, shares, DIMS, load_priors(), STRICT)
    answers = _answers(chosen, cands)
    assert sorted(answers.values()) == [25, 40, 60]
    assert answers["depth"] == 40  # the role that wants it most keeps it
    independent = {r: cands[r][max(range(3), key=s.__getitem__)].quantity.value for r, s in shares.items()}
    assert set(independent.values()) == {40}  # one at a time, all three answers collide


def test_one_size_printed_twice_may_serve_two_roles_at_the_value_cost() -> None:
    """A square shelf prints 30 cm on both edges: two mentions of one size can answer width and depth."""
    cands = {r: [_cand(r, 30, 0), _cand(r, 30, 1), _cand(r, 4, 2)] for r in ("width", "depth")}
    shares = {"width": [0.6, 0.3, 0.1], "depth": [0.3, 0.6, 0.1]}
    chosen = assign(cands, shares, ("width", "depth"), load_priors(), STRICT)
    assert _answers(chosen, cands) == {"width": 30, "depth": 30}
    assert {chosen["width"].index, chosen["depth"].index} == {0, 1}  # one mention each


def test_only_one_size_printed_answers_every_asked_role() -> None:
    cands = _roles([(12.7, 0)])
    chosen = assign(cands, {r: [1.0] for r in DIMS}, DIMS, load_priors(), STRICT)
    assert _answers(chosen, cands) == {"width": 12.7, "height": 12.7, "depth": 12.7}
    assert all(c.confidence == pytest.approx(1.0) for c in chosen.values())


def test_a_role_nobody_asked_is_left_not_printed_when_that_is_likelier() -> None:
    cands = _roles([(40, 0), (25, 1)])
    shares = {r: [0.6, 0.4] for r in DIMS}
    chosen = assign(cands, shares, ("width",), load_priors(), STRICT)
    assert chosen["width"].index == 0
    assert chosen["height"].index is None and chosen["depth"].index is None
    eager = dataclasses.replace(STRICT, none_logp=-20.0)  # "not printed" nearly impossible
    chosen = assign(cands, shares, ("width",), load_priors(), eager)
    assert chosen["height"].index is not None and chosen["depth"].index is not None


def test_confidence_is_the_probability_mass_of_the_answer() -> None:
    cands = _roles([(40, 0), (25, 1)])
    sure = assign(cands, {r: [0.99, 0.01] for r in DIMS}, ("width",), load_priors(), STRICT)
    torn = assign(cands, {r: [0.55, 0.45] for r in DIMS}, ("width",), load_priors(), STRICT)
    assert 0.0 < torn["width"].confidence < sure["width"].confidence <= 1.0


def test_the_labels_relation_odds_move_a_tie_toward_the_usual_order() -> None:
    """Labels say a depth is rarely smaller than a width: with equal shares, the larger size goes to depth."""
    priors = Priors({}, {}, {}, {}, {}, pair_relations={"width|depth": [90, 5, 5]})
    cands = {r: [_cand(r, 10, 0), _cand(r, 50, 1)] for r in ("width", "depth")}
    shares = {r: [0.5, 0.5] for r in cands}
    chosen = assign(cands, shares, ("width", "depth"), priors, dataclasses.replace(STRICT, pair_weight=1.0))
    assert _answers(chosen, cands) == {"width": 10, "depth": 50}
    assert priors.relation_logodds("depth", "width", "gt") == pytest.approx(
        priors.relation_logodds("width", "depth", "lt")
    )


def test_relation_compares_sizes_with_a_tolerance() -> None:
    assert relation(2.54 * 3.1, 8.0) == "eq"  # 3.1 in / 8 cm
    assert relation(10, 20) == "lt" and relation(20, 10) == "gt"


def _token(text: str, box: tuple[float, float, float, float]) -> OcrToken:
    x0, y0, x1, y1 = box
    return OcrToken(text, 0.95, ((x0, y0), (x1, y0), (x1, y1), (x0, y1)))


def _box_drawing(*labels: tuple[str, tuple[float, float, float, float]]) -> OcrPage:
    tokens = (*(_token(t, b) for t, b in labels), _token("Storage box", (0.3, 0.02, 0.7, 0.07)))
    segments = ((0.20, 0.88, 0.80, 0.88), (0.10, 0.20, 0.10, 0.80), (0.80, 0.86, 0.95, 0.70))
    return OcrPage(tokens=tokens, width=1000, height=1000, segments=segments)


BOX = _box_drawing(
    ("40 cm", (0.42, 0.90, 0.58, 0.95)),  # under the horizontal line
    ("25 cm", (0.03, 0.40, 0.07, 0.58)),  # beside the vertical one
    ("60 cm", (0.80, 0.78, 0.92, 0.83)),  # by the slant
)


def _selector(joint: JointSettings | None) -> Selector:
    model = load_model()
    return Selector(model.ranker, model.priors, joint=joint)


def test_a_generated_box_asked_for_three_dimensions_gets_three_sizes() -> None:
    """Read one at a time, width and depth both answer the 40 cm under the horizontal line."""
    independent = _selector(None).select(BOX, list(DIMS)).predictions
    assert independent["width"].text == independent["depth"].text == "40.0 centimetre"
    result = _selector(JointSettings()).select(BOX, list(DIMS))
    assert sorted(p.value for p in result.predictions.values()) == [25.0, 40.0, 60.0]
    assert result.predictions["depth"].text == "60.0 centimetre"


def test_roles_nobody_asked_still_take_their_sizes_when_not_printed_is_unlikely() -> None:
    """Asked for the depth alone, the width's claim on the 40 cm still counts: the same answer as asked together."""
    joint = JointSettings(none_logp=-5.0)
    together = {e: p.text for e, p in _selector(joint).select(BOX, list(DIMS)).predictions.items()}
    alone = {e: _selector(joint).select(BOX, [e]).predictions[e].text for e in DIMS}
    assert alone == together and together["depth"] == "60.0 centimetre"


def test_a_size_printed_once_answers_each_asked_dimension() -> None:
    page = _box_drawing(("18 cm", (0.42, 0.90, 0.58, 0.95)))
    result = _selector(JointSettings()).select(page, list(DIMS))
    assert {p.text for p in result.predictions.values()} == {"18.0 centimetre"}


def test_whole_image_reading_returns_only_the_asked_entities_with_their_candidates() -> None:
    result = _selector(JointSettings()).select(BOX, ["depth", "voltage"])
    assert list(result.predictions) == ["depth", "voltage"] and list(result.candidates) == ["depth", "voltage"]
    expected = page_candidates(BOX, find_mentions(BOX), "depth", load_model().priors)
    assert [c.quantity for c in result.candidates["depth"]] == [c.quantity for c in expected]
    assert result.predictions["voltage"].source in ("prior", "")  # nothing read: the blind guess


def test_disabled_joint_reads_each_entity_on_its_own() -> None:
    off = _selector(JointSettings(enabled=False))
    assert off.joint is None
    independent = _selector(None).select(BOX, list(DIMS)).predictions
    assert {e: p.text for e, p in off.select(BOX, list(DIMS)).predictions.items()} == {
        e: p.text for e, p in independent.items()
    }


def test_joint_settings_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="top_k"):
        JointSettings(top_k=0)
    with pytest.raises(ValueError, match="negative"):
        JointSettings(mention_cost=-1)


def test_a_role_without_candidates_is_not_printed_and_the_others_still_answer() -> None:
    cands = {"width": [_cand("width", 40, 0)], "depth": [], "height": [_cand("height", 25, 1)]}
    shares = {"width": [1.0], "depth": [], "height": [1.0]}
    chosen = assign(cands, shares, DIMS, load_priors(), STRICT)
    assert _answers(chosen, cands) == {"width": 40, "depth": None, "height": 25}


class _BoxEngine:
    """An OCR engine that reads every image as the generated box drawing."""

    name = "box"
    max_side = 2000

    def fingerprint(self) -> str:
        return "box-v1"

    def __call__(self, image: object) -> OcrPage:
        return BOX


def _box_run(tmp_path: Path, out: Path) -> list[list[str]]:
    from PIL import Image

    from specread.batch.local import predict_csv
    from specread.pipeline import PageSource, SpecReader
    from specread.rank.select import Selector

    images = tmp_path / "images"
    images.mkdir(exist_ok=True)
    Image.new("RGB", (64, 64), "white").save(images / "box.png")
    rows = [(i, "https://example.com/box.png", "1", e) for i, e in enumerate(DIMS)]
    input_csv = write_csv(tmp_path / "in.csv", ["index", "image_link", "group_id", "entity_name"], rows)
    model = load_model()
    reader = SpecReader(PageSource(_BoxEngine()), Selector(model.ranker, model.priors))
    predict_csv(input_csv, images, out, reader=reader)
    with open(out, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def test_predict_answers_an_images_rows_together_and_so_does_a_resume_mid_image(tmp_path: Path) -> None:
    """A run killed after the image's first row resumes by reading the image for all three rows again."""
    reference = _box_run(tmp_path, tmp_path / "reference.csv")
    assert sorted(r[1] for r in reference[1:]) == ["25.0 centimetre", "40.0 centimetre", "60.0 centimetre"]
    out = tmp_path / "killed.csv"
    _box_run(tmp_path, out)
    lines = out.read_text(encoding="utf-8").splitlines(keepends=True)
    out.write_text("".join(lines[:2]), encoding="utf-8")  # as a kill leaves it: the width written, not the rest
    assert _box_run(tmp_path, out) == reference
