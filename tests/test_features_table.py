"""The feature table: names and entity order the shipped ranker was trained on, and pinned feature values.

The ranker in ``specread/data/model/ranker.txt`` reads features by column position
and the entity as its index in :data:`ENTITIES` (``entity_id``): a renamed or
moved feature, or a reordered entity, silently feeds it other numbers. These
tests make any such change fail until the ranker is retrained.
"""

from __future__ import annotations

import hashlib
import math
import random

import pytest

from conftest import make_page, make_token
from specread.data import PACKAGED_MODEL
from specread.extract.candidates import find_mentions
from specread.extract.features import FEATURE_NAMES, FEATURE_TABLE, LAYOUT_FEATURES, page_candidates
from specread.extract.priors import MIN_GROUP_ROWS, N_BINS, Priors, load_priors, log_bin
from specread.types import Candidate, OcrPage, OcrToken
from specread.units.registry import ENTITIES, get_registry

# -- what the shipped ranker was trained with ------------------------------------------


def _ranker_feature_names() -> tuple[str, ...]:
    """The ``feature_names=`` line of LightGBM's text model in the shipped ranker."""
    text = (PACKAGED_MODEL / "ranker.txt").read_text(encoding="utf-8")
    (line,) = [ln for ln in text.splitlines() if ln.startswith("feature_names=")]
    return tuple(line.removeprefix("feature_names=").split())


def test_shipped_ranker_reads_exactly_the_feature_names() -> None:
    # The ranker adds two columns of its own after the features: the rule score and its margin.
    assert _ranker_feature_names() == (*FEATURE_NAMES, "rule_score", "rule_margin")


def test_entity_order_is_pinned() -> None:
    # ``entity_id`` is the position in this tuple; the shipped ranker splits on it.
    assert ENTITIES == (
        "width",
        "depth",
        "height",
        "item_weight",
        "maximum_weight_recommendation",
        "voltage",
        "wattage",
        "item_volume",
    )


def test_feature_names_come_from_the_table() -> None:
    assert tuple(name for feature in FEATURE_TABLE for name in feature.names) == FEATURE_NAMES
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES) == 64
    assert set(LAYOUT_FEATURES) <= set(FEATURE_NAMES)


# -- generated pages -------------------------------------------------------------------

_LINES = (
    "Net Wt 500 g (17.6 oz)",
    "16 oz",
    "Max load 150 kg",
    '10"W x 5"D x 3"H',
    "10 x 20 x 30 cm",
    "25.4 cm / 10 in",
    "100-240V",
    "3-5 kg",
    "Power 60W",
    "12 FL OZ",
    "Width 25 cm",
    "Height 40 cm",
    "Depth 12 in",
    "750 ml",
    "Organic",
)


def _vertical_token(text: str, x0: float, y0: float, length: float, height: float) -> OcrToken:
    """A line printed top to bottom: its quad runs down the page."""
    return OcrToken(text, 0.9, ((x0 + height, y0), (x0 + height, y0 + length), (x0, y0 + length), (x0, y0)))


def _generated_page(rng: random.Random) -> OcrPage:
    """Lines of specs anywhere on the page, some vertical, some split in two boxes, with dimension lines."""
    tokens: list[OcrToken] = []
    for _ in range(rng.randint(1, 6)):
        text, x0, y0, h = rng.choice(_LINES), rng.uniform(0, 0.8), rng.uniform(0, 0.9), rng.uniform(0.02, 0.08)
        if rng.random() < 0.2:
            tokens.append(_vertical_token(text, x0, y0, 0.02 * len(text), h))
        else:
            tokens.append(make_token(text, x0, y0, height=h))
    if rng.random() < 0.5:  # a number and its unit in neighbouring boxes
        y = rng.uniform(0, 0.9)
        number = make_token(rng.choice(["500", "1.5", "230"]), 0.1, y)
        tokens += [number, make_token(rng.choice(["ml", "kg", "V"]), number.box[2] + 0.01, y)]
    segments = []
    for _ in range(rng.choice([0, 1, 3])):
        ax, ay, bx, by = (rng.uniform(0, 1) for _ in range(4))
        segments.append(rng.choice([(ax, ay, bx, ay), (ax, ay, ax, by), (ax, ay, bx, by)]))
    width, height = rng.choice([(640, 480), (1000, 1000), (300, 1200)])
    return OcrPage(tokens=tuple(tokens), width=width, height=height, segments=tuple(segments))


def _pages() -> list[OcrPage]:
    rng = random.Random(20240611)
    return [
        make_page(["Net Wt 500 g (17.6 oz)", ("1", "kg")]),
        make_page([("Net Wt", "16 oz"), "Max load 150 kg"]),
        make_page(["L 120 x W 60 x H 75 cm", "47.2 in"]),
        *(_generated_page(rng) for _ in range(40)),
    ]


def _all_candidates() -> list[Candidate]:
    priors = load_priors()
    out: list[Candidate] = []
    for n, page in enumerate(_pages()):
        mentions = find_mentions(page)
        for entity in ENTITIES:
            out += page_candidates(page, mentions, entity, priors, ("0", None)[n % 2])
    return out


@pytest.fixture(scope="module")
def candidates() -> list[Candidate]:
    return _all_candidates()


def test_every_candidate_has_exactly_the_features_in_order(candidates: list[Candidate]) -> None:
    assert len(candidates) > 300
    for c in candidates:
        assert tuple(c.features) == FEATURE_NAMES
        assert all(type(v) is float for v in c.features.values())
    assert {c.features["entity_id"] for c in candidates} == {float(i) for i in range(len(ENTITIES))}


# One digest per feature of its values on the pages above (9 significant digits, so a last-bit
# difference between maths libraries does not count). A changed digest means the features the
# shipped ranker reads have changed: if that is intended, retrain the ranker and paste the new
# digests from the failure message.
EXPECTED_DIGESTS: dict[str, str] = {
    "entity_id": "8e8e1c4f3e95",
    "rel_height": "7187fadec73c",
    "abs_height": "8c0b08ccaf72",
    "height_rank": "05c6492c1e79",
    "cx": "f2188b2fc4fd",
    "cy": "a2d4a7fe85c8",
    "bw": "1a6a2ee23650",
    "bh": "b7a91a209bb2",
    "vertical": "6e4906637141",
    "ocr_score": "8a1f767c1fc8",
    "joined": "e82c9be0ca8d",
    "kw_self": "d52fd47c2210",
    "kw_near": "70d435ea5332",
    "kw_other": "8f503c8bd79c",
    "repeats": "a28173150bd0",
    "in_group": "2dc374fd637a",
    "group_size": "1ee6324195b6",
    "group_pos": "b0fb94e3d27f",
    "letter_match": "9028f27d51e7",
    "letter_other": "e97662166006",
    "is_range": "66b1f5d7b604",
    "range_high": "6e0b88dfcc89",
    "is_max": "0fbe52e9fef9",
    "is_min": "3d62eb44024f",
    "value_rank": "61981550c7cb",
    "n_cands": "2ec0f22fd84f",
    "n_distinct": "bb06d2107375",
    "unit_logp": "36b03fce3221",  # priors rebuilt from the 263k-row train_labels_known.csv
    "value_logp": "b727ac6331a7",
    "group_size_lift": "8fb896d0ad9f",  # all 0: the pages above have no product group
    "log_value": "bf907973715b",
    "in_parens": "9700fefdbc72",
    "first_in_text": "1c9c317e8b86",
    "text_len": "29d4343c3963",
    "digits_share": "437575112b51",
    "is_integer": "39b78910bbbe",
    "n_tokens": "8930f62aab6c",
    "same_unit_share": "d4b32c08ff84",
    "text_vertical": "5eed8fb38f17",
    "edge_x": "4ad8a59a591f",
    "edge_y": "88ea932c4815",
    "mid_y": "7d2e4f534899",
    "x_rank": "3dd7ad1ad496",
    "y_rank": "843929b5d01d",
    "is_left": "90a2e95f5146",
    "is_right": "2a5294128d59",
    "is_top": "54f16815b6a7",
    "is_bottom": "c16036570420",
    "has_twin": "e6abdbb27357",
    "twin_first": "579f9ddd83a6",
    "value_share": "eeb087693e6f",
    "n_same_value": "5191cd42f4b2",
    "near_h": "ac50e50fae94",
    "near_v": "340eb9ca6bc2",
    "near_d": "d2845ec9b7ac",
    "role_line": "4620b37f9a7c",
    "rival_line": "3ac3e131ea0e",
    "role_vertical": "82c7af9d4e60",
    "role_edge": "d941ac283119",
    "unit_id": "f88baeb41f77",
    "twin_unit_gap": "caaec81a2648",
    "group_rows": "8fb896d0ad9f",
    "group_unit_share": "6d6b178d0047",
    "unit_value_rank": "bd876d4ccda4",
}


def _digests(candidates: list[Candidate]) -> dict[str, str]:
    return {
        name: hashlib.sha256(" ".join(f"{c.features[name]:.9g}" for c in candidates).encode()).hexdigest()[:12]
        for name in FEATURE_NAMES
    }


def test_feature_values_are_pinned(candidates: list[Candidate]) -> None:
    got = _digests(candidates)
    changed = sorted(name for name in FEATURE_NAMES if got[name] != EXPECTED_DIGESTS.get(name))
    assert not changed, f"features changed: {changed}; new digests: {got}"


# -- the capacity features mean what they say ----------------------------------------------


def _capacity_priors() -> Priors:
    """Widths labelled in centimetres overall; product group "7" labels them in inches, 9 rows of 10."""
    return Priors(
        unit_counts={"width": {"centimetre": 80, "inch": 20}},
        group_unit_counts={"width": {"7": {"inch": 9, "centimetre": 1}}},
        value_hist={},
        entity_mode={},
        group_mode={},
    )


def _by_unit(lines: list[str], group: str | None) -> dict[tuple[float, str], dict[str, float]]:
    page = make_page(lines)
    cands = page_candidates(page, find_mentions(page), "width", _capacity_priors(), group)
    return {(c.quantity.value, c.quantity.unit): c.features for c in cands}


def _size_priors() -> Priors:
    """Widths of about 20 cm overall; product group "mats" labels widths of about 2 m."""
    overall = [0] * N_BINS
    overall[log_bin(0.2)] = 90
    overall[log_bin(2.0)] = 10
    mats = [0] * N_BINS
    mats[log_bin(2.0)] = 40
    return Priors({}, {}, {}, {}, {}, size_hist={"width": overall}, group_size_hist={"width": {"mats": mats}})


def _lift(lines: list[str], group: str | None) -> dict[float, float]:
    page = make_page(lines)
    cands = page_candidates(page, find_mentions(page), "width", _size_priors(), group)
    return {c.quantity.value: c.features["group_size_lift"] for c in cands}


def test_group_size_lift_favours_the_size_the_product_group_is_labelled_with() -> None:
    in_mats = _lift(["200 cm", "20 cm"], "mats")
    assert in_mats[200.0] > 0 > in_mats[20.0]
    assert _lift(["200 cm", "20 cm"], None) == {200.0: 0.0, 20.0: 0.0}  # no group: no lift
    assert _lift(["200 cm", "20 cm"], "chairs") == {200.0: 0.0, 20.0: 0.0}  # a group the labels lack


def test_size_histograms_are_counted_saved_and_combined(tmp_path) -> None:
    rows = [(f"m{i}.jpg", "mats", "width", "2.0 metre") for i in range(MIN_GROUP_ROWS)]
    rows += [("c.jpg", "cups", "width", "8.0 centimetre")]  # a group under MIN_GROUP_ROWS keeps no histogram
    csv_path = tmp_path / "train.csv"
    csv_path.write_text(
        "image_link,group_id,entity_name,entity_value\n" + "".join(",".join(r) + "\n" for r in rows), encoding="utf-8"
    )
    priors = Priors.build(csv_path)
    assert sum(priors.size_hist["width"]) == MIN_GROUP_ROWS + 1
    assert set(priors.group_size_hist["width"]) == {"mats"}
    assert priors.group_size_hist["width"]["mats"][log_bin(2.0)] == MIN_GROUP_ROWS
    again = Priors.from_dict(priors.to_dict())
    assert again.size_lift("width", "mats", 2.0) == priors.size_lift("width", "mats", 2.0) > 0
    both = priors.combined(priors)
    assert both.group_size_hist["width"]["mats"][log_bin(2.0)] == 2 * MIN_GROUP_ROWS
    old = priors.to_dict()
    del old["size_hist"], old["group_size_hist"]
    assert Priors.from_dict(old).size_lift("width", "mats", 2.0) == 0.0  # a priors file from before: no lift


def test_twin_unit_gap_weighs_the_two_printed_units_by_the_group() -> None:
    anywhere = _by_unit(["25.4 cm / 10 in"], None)
    cm, inch = anywhere[(25.4, "centimetre")], anywhere[(10.0, "inch")]
    assert cm["twin_unit_gap"] > 0 > inch["twin_unit_gap"]
    assert cm["twin_unit_gap"] == pytest.approx(-inch["twin_unit_gap"])
    in_group = _by_unit(["25.4 cm / 10 in"], "7")  # this group keeps the inches
    assert in_group[(10.0, "inch")]["twin_unit_gap"] > 0 > in_group[(25.4, "centimetre")]["twin_unit_gap"]
    alone = _by_unit(["25.4 cm", "10 in"], None)  # on two lines they are not twins
    assert {f["twin_unit_gap"] for f in alone.values()} == {0.0}


def test_group_counts_are_the_groups_own() -> None:
    known = _by_unit(["25.4 cm / 10 in"], "7")
    assert known[(10.0, "inch")]["group_unit_share"] == pytest.approx(0.9)
    assert known[(25.4, "centimetre")]["group_unit_share"] == pytest.approx(0.1)
    assert [f["group_rows"] for f in known.values()] == pytest.approx([math.log1p(10)] * 2)
    for group in (None, "8"):
        unknown = _by_unit(["25.4 cm / 10 in"], group)
        assert {f["group_unit_share"] for f in unknown.values()} == {-1.0}
        assert {f["group_rows"] for f in unknown.values()} == {0.0}


def test_unit_id_and_the_rank_within_a_unit() -> None:
    feats = _by_unit(["10 x 20 x 30 cm", "5 in"], None)
    allowed = get_registry().allowed("width")
    assert feats[(20.0, "centimetre")]["unit_id"] == allowed.index("centimetre")
    assert feats[(5.0, "inch")]["unit_id"] == allowed.index("inch")
    assert [feats[(v, "centimetre")]["unit_value_rank"] for v in (30.0, 20.0, 10.0)] == [0.0, 0.5, 1.0]
    assert feats[(5.0, "inch")]["unit_value_rank"] == 0.0  # alone in its unit, though the smallest size
