"""The learned ranker and the layout features it reads (issue 3).

Pages are constructed directly (tokens, boxes and line segments), so these
tests need no OCR: they check that features are computed as documented, that
training is deterministic, and that the shipped model loads, selects at least
as well as the rules on a generated set of labelled pages, and beats them on
generated pages of a kind where real labels and the rules disagree.
"""

from __future__ import annotations

import pickle
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from specread.errors import NotFittedError
from specread.extract.candidates import find_mentions
from specread.extract.features import FEATURE_NAMES, page_candidates, to_matrix
from specread.extract.priors import Priors, load_priors
from specread.rank.model import load_model
from specread.rank.ranker import CandidateRanker
from specread.rank.rules import RuleScorer
from specread.rank.select import Selector
from specread.rank.split import GroupedKFold
from specread.rank.train import build_examples, fit_ranker, grouped_folds
from specread.types import LabelledRow, OcrPage, OcrToken


def _make_token(text: str, box: tuple[float, float, float, float]) -> OcrToken:
    x0, y0, x1, y1 = box
    return OcrToken(text, 0.95, ((x0, y0), (x1, y0), (x1, y1), (x0, y1)))


def _make_drawing(width: str, height: str, depth: str, twin: bool = False) -> OcrPage:
    """A dimension drawing: width under a horizontal line, height beside a vertical one, depth on a slant."""
    suffix = " / 99 in" if twin else ""
    tokens = (
        _make_token(f"{width}{suffix}", (0.42, 0.90, 0.58, 0.95)),  # under the product
        _make_token(f"{height}", (0.03, 0.40, 0.07, 0.58)),  # beside it, printed vertically
        _make_token(f"{depth}", (0.80, 0.78, 0.92, 0.83)),  # beside the slanted edge
        _make_token("Premium steel frame", (0.30, 0.05, 0.70, 0.10)),
    )
    segments = (
        (0.20, 0.88, 0.80, 0.88),  # horizontal dimension line over the width label
        (0.10, 0.20, 0.10, 0.80),  # vertical dimension line beside the height label
        (0.80, 0.86, 0.95, 0.70),  # slanted depth line
    )
    return OcrPage(tokens=tokens, width=1000, height=1000, segments=segments)


def _make_rows(n: int, seed: int) -> list[LabelledRow]:
    """Generated labelled pages of several entities, each with confusers a first-match rule would pick."""
    rng = random.Random(seed)
    rows: list[LabelledRow] = []
    for i in range(n):
        w, h, d = rng.sample(range(10, 200), 3)
        page = _make_drawing(f"{w} cm", f"{h} cm", f"{d} cm")
        # Depth has no single drawing convention in the real labels (slants, top views...): not generated.
        for entity, value in (("width", w), ("height", h)):
            rows.append(LabelledRow(f"dim{i}", page, entity, str(i % 7), f"{value}.0 centimetre"))
        net, load = rng.choice([100, 250, 500, 750]), rng.choice([50, 100, 150])
        weight_page = OcrPage(
            tokens=(
                _make_token(f"Max load {load} kg", (0.1, 0.1, 0.5, 0.15)),
                _make_token(f"Net Wt {net} g", (0.1, 0.6, 0.7, 0.75)),
            ),
            width=800,
            height=800,
        )
        rows.append(LabelledRow(f"w{i}", weight_page, "item_weight", str(i % 5), f"{net}.0 gram"))
        rows.append(
            LabelledRow(f"w{i}", weight_page, "maximum_weight_recommendation", str(i % 5), f"{load}.0 kilogram")
        )
    return rows


def _accuracy(scorer, rows: list[LabelledRow]) -> float:
    selector = Selector(scorer, load_priors())
    from specread.metrics import normalize_answer

    hits = 0
    for r in rows:
        pred = selector.select(r.page, [r.entity], r.group_id).predictions[r.entity]
        hits += normalize_answer(pred.text) == normalize_answer(r.gold)
    return hits / len(rows)


def _features(page: OcrPage, entity: str) -> dict[float, dict[str, float]]:
    cands = page_candidates(page, find_mentions(page), entity, load_priors())
    return {c.quantity.value: c.features for c in cands}


def test_layout_features_follow_the_dimension_lines() -> None:
    page = _make_drawing("40 cm", "25 cm", "60 cm")
    width = _features(page, "width")
    height = _features(page, "height")
    assert width[40.0]["near_h"] > 0.5 and width[40.0]["near_v"] == 0.0
    assert height[25.0]["near_v"] > 0.5 and height[25.0]["near_h"] == 0.0
    assert height[25.0]["text_vertical"] == 1.0 and width[40.0]["text_vertical"] == 0.0
    assert width[60.0]["near_d"] > 0.1
    # Role features are the same cues seen from the entity asked for.
    assert height[25.0]["role_line"] == height[25.0]["near_v"]
    assert width[40.0]["role_line"] == width[40.0]["near_h"]
    assert width[25.0]["rival_line"] == width[25.0]["near_v"]
    assert height[25.0]["role_vertical"] == 1.0 and width[25.0]["role_vertical"] == -1.0


def test_twin_and_position_features() -> None:
    page = _make_drawing("40 cm", "25 cm", "60 cm", twin=True)
    width = _features(page, "width")
    assert width[40.0]["has_twin"] == 1.0 and width[40.0]["twin_first"] == 1.0
    assert width[99.0]["has_twin"] == 1.0 and width[99.0]["twin_first"] == 0.0
    assert width[25.0]["is_left"] == 1.0 and width[25.0]["edge_x"] == pytest.approx(0.05)
    assert width[40.0]["is_bottom"] == 1.0


def test_keywords_of_rival_entities_count_against() -> None:
    rows = _make_rows(1, seed=0)
    weight = next(r for r in rows if r.entity == "item_weight")
    max_load = next(r for r in rows if r.entity == "maximum_weight_recommendation")
    net, load = float(weight.gold.split()[0]), float(max_load.gold.split()[0])
    assert net != load, "the page must print two different values"
    # "Net Wt {net} g" names item_weight; "Max load {load} kg" names its rival, and the other way round.
    as_weight = _features(weight.page, "item_weight")
    as_load = _features(weight.page, "maximum_weight_recommendation")
    assert {v: (f["kw_self"], f["kw_other"]) for v, f in as_weight.items()} == {net: (1.0, 0.0), load: (0.0, 1.0)}
    assert {v: (f["kw_self"], f["kw_other"]) for v, f in as_load.items()} == {net: (0.0, 1.0), load: (1.0, 0.0)}


def test_rules_and_features_agree_on_matrix_and_candidates() -> None:
    page = _make_drawing("40 cm", "25 cm", "60 cm")
    cands = page_candidates(page, find_mentions(page), "height", load_priors())
    rules = RuleScorer()
    assert rules.score("height", cands) == pytest.approx(rules.score_matrix(to_matrix(cands)).tolist())
    assert to_matrix(cands).shape == (len(cands), len(FEATURE_NAMES))


def test_training_is_deterministic_and_round_trips(tmp_path) -> None:
    rows = _make_rows(30, seed=1)
    a = fit_ranker(rows, load_priors(), seed=3, n_estimators=40)
    b = fit_ranker(rows, load_priors(), seed=3, n_estimators=40)
    X, _, q, _w = build_examples(rows, load_priors())
    assert np.array_equal(a.predict_proba(X, q), b.predict_proba(X, q))
    a.save(tmp_path / "m.txt")
    assert (tmp_path / "m.txt").read_text() == (b.save(tmp_path / "n.txt") or (tmp_path / "n.txt").read_text())
    loaded = CandidateRanker.load(tmp_path / "m.txt")
    assert np.allclose(loaded.predict_proba(X, q), a.predict_proba(X, q))
    unpickled = pickle.loads(pickle.dumps(a))
    assert np.allclose(unpickled.predict_proba(X, q), a.predict_proba(X, q))
    assert loaded.get_params() == a.get_params()


def test_ranker_learns_what_the_rules_miss() -> None:
    """Labels that contradict the rules (width printed beside the vertical line) are learnt."""
    rng = random.Random(5)
    rows = []
    for i in range(60):
        w, h, d = rng.sample(range(10, 200), 3)
        page = _make_drawing(f"{h} cm", f"{w} cm", f"{d} cm")  # width label sits where heights usually do
        rows.append(LabelledRow(f"x{i}", page, "width", "1", f"{w}.0 centimetre"))
    train, test = rows[:40], rows[40:]
    model = fit_ranker(train, load_priors(), n_estimators=150)
    assert _accuracy(RuleScorer(), test) < 0.2
    assert _accuracy(model, test) >= 0.9


def test_probabilities_are_probabilities() -> None:
    rows = _make_rows(20, seed=2)
    model = fit_ranker(rows, load_priors(), n_estimators=30)
    X, y, q, _w = build_examples(rows, load_priors())
    p = model.predict_proba(X, q)
    assert p.shape == y.shape and np.all((p > 0) & (p < 1))
    assert p[y == 1].mean() > p[y == 0].mean()


def test_estimator_contract() -> None:
    model = CandidateRanker()
    with pytest.raises(NotFittedError):
        model.predict_proba(np.zeros((1, len(FEATURE_NAMES))))
    with pytest.raises(ValueError, match="shape"):
        model.fit(np.zeros((2, 3)), np.array([0, 1]), np.array([0, 0]))
    with pytest.raises(ValueError, match="positive"):
        model.fit(np.zeros((2, len(FEATURE_NAMES))), np.array([0, 0]), np.array([0, 0]))
    with pytest.raises(ValueError, match="ignore"):
        CandidateRanker(ignore_features=("no_such_feature",))
    assert not hasattr(model, "booster_")  # a refused fit learns nothing
    assert CandidateRanker(**model.get_params()).get_params() == model.get_params()  # params round-trip (clone)
    X, y, q, _w = build_examples(_make_rows(2, seed=0), load_priors())
    assert model.fit(X, y, q) is model and hasattr(model, "booster_")  # fit returns self, state ends in _
    assert model.predict_proba(X, q).shape == (len(X),)


def test_grouped_folds_never_split_an_image_or_a_group() -> None:
    rows = _make_rows(25, seed=4)
    folds = grouped_folds(rows, k=5, seed=0)
    by_key: dict[str, set[int]] = {}
    by_group: dict[str, set[int]] = {}
    for r, f in zip(rows, folds, strict=True):
        by_key.setdefault(r.key, set()).add(f)
        by_group.setdefault(r.group_id, set()).add(f)
    assert all(len(v) == 1 for v in by_key.values())
    assert all(len(v) == 1 for v in by_group.values())


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from("abcdefgh"), st.sampled_from(["", "g1", "g2", "g3", "g4"])), max_size=40),
    st.integers(2, 6),
    st.integers(0, 3),
)
def test_the_grouped_splitter_partitions_the_rows_and_never_splits_a_key(
    pairs: list[tuple[str, str]], k: int, seed: int
) -> None:
    """GroupKFold's contract (each row tested once, train and test disjoint) with two keys that link rows."""
    splitter = GroupedKFold(k, seed)
    splits = list(splitter.split(None, None, pairs))
    assert len(splits) == splitter.get_n_splits() == k
    tested = np.sort(np.concatenate([test for _, test in splits]))
    assert np.array_equal(tested, np.arange(len(pairs)))
    for train, test in splits:
        assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(len(pairs)))
        for side in (0, 1):
            held = {pairs[i][side] for i in test} - {""}
            assert not held & {pairs[i][side] for i in train}
    fold = splitter.folds(pairs)
    assert all(fold[i] == f for f, (_, test) in enumerate(splits) for i in test)


def test_priors_combined_add_the_labels_to_the_broad_table() -> None:
    broad = load_priors()
    own = Priors(
        unit_counts={"item_weight": {"gram": 3}, "voltage": {"volt": 2}},
        group_unit_counts={"item_weight": {"g-new": {"gram": 6}}},
        value_hist={"voltage": {"volt": [1] * len(next(iter(broad.value_hist["voltage"].values())))}},
        entity_mode={"item_weight": (7.0, "gram")},
        group_mode={"item_weight": {"g-new": (7.0, "gram", 6)}},
        n_rows=5,
        pair_relations={"width|depth": [1, 0, 0]},
    )
    both = broad.combined(own)
    assert both.n_rows == broad.n_rows + 5
    assert both.unit_counts["item_weight"]["gram"] == broad.unit_counts["item_weight"]["gram"] + 3
    assert both.value_hist["voltage"]["volt"] == [n + 1 for n in broad.value_hist["voltage"]["volt"]]
    assert both.pair_relations["width|depth"][0] == broad.pair_relations.get("width|depth", [0, 0, 0])[0] + 1
    assert both.entity_mode["item_weight"] == broad.entity_mode["item_weight"]  # a small set does not outweigh it
    assert both.fallback("item_weight", "g-new") == (7.0, "gram")  # the user's own group is known now
    assert broad.fallback("item_weight", "g-new") != (7.0, "gram")
    empty = Priors({}, {}, {}, {}, {}, 0, {})
    assert broad.combined(empty).to_dict() == broad.to_dict() == empty.combined(broad).to_dict()


def test_shipped_model_loads_and_selects_at_least_as_well_as_the_rules() -> None:
    model = load_model().ranker
    assert model.get_params()["seed"] == 0
    rows = _make_rows(20, seed=7)
    ranker_acc, rules_acc = _accuracy(model, rows), _accuracy(RuleScorer(), rows)
    assert ranker_acc >= rules_acc
    assert ranker_acc >= 0.9


def test_shipped_model_beats_the_rules_on_weights_printed_in_two_units() -> None:
    """Real labels mostly record the grams of "NET WT 12 OZ (340 g)"; the rules take the first value.

    The shipped model learned this from real-dev (48 of 70 weights printed in two units are
    labelled with the metric one), so it must beat the rules on such pages.
    """
    rng = random.Random(3)
    rows = []
    for i in range(30):
        grams = rng.choice([85, 99, 113, 170, 227, 340, 454, 680])
        label = rng.choice(["NET WT {oz} OZ ({g} g)", "{oz}oz/{g}g", "Net Weight {oz} oz ({g}g)"])
        text = label.format(oz=round(grams / 28.3495, 1), g=grams)
        page = OcrPage(
            tokens=(
                _make_token("Premium Roasted Coffee", (0.1, 0.1, 0.9, 0.2)),
                _make_token(text, (0.2, 0.8, 0.8, 0.86)),
            ),
            width=800,
            height=800,
        )
        rows.append(LabelledRow(f"p{i}", page, "item_weight", "", f"{grams}.0 gram"))
    ranker_acc, rules_acc = _accuracy(load_model().ranker, rows), _accuracy(RuleScorer(), rows)
    assert rules_acc < 0.8
    assert ranker_acc > rules_acc + 0.2


def test_confidence_is_the_winners_margin_over_the_next_answer_when_read_one_at_a_time() -> None:
    model = load_model().ranker
    page = _make_drawing("40 cm", "25 cm", "60 cm")
    pred = Selector(model, load_priors(), joint=None).select(page, ["height"]).predictions["height"]
    cands = page_candidates(page, find_mentions(page), "height", load_priors())
    scores = sorted(model.score("height", cands), reverse=True)
    assert len(cands) == 3 and scores[0] > scores[1] > 0.0  # three different sizes: the runner-up is a rival
    assert pred.confidence == pytest.approx(scores[0] - scores[1])
    assert 0.0 < pred.confidence < 1.0 and pred.source == "ranker"


class _Fixed:
    """A scorer whose beliefs are given: what :func:`answer_margin` makes of them."""

    name = "fixed"

    def __init__(self, scores: list[float]) -> None:
        self.scores = scores

    def score(self, entity: str, cands: object) -> list[float]:
        return list(self.scores)

    def confidence(self, scores: list[float], best: int) -> float:
        return scores[best]


def _weights(text: str) -> list:
    page = OcrPage((_make_token(text, (0.1, 0.5, 0.9, 0.6)),), 800, 800)
    return page_candidates(page, find_mentions(page), "item_weight", load_priors())


def test_answer_margin_counts_a_size_printed_twice_once_and_its_equivalent_as_a_rival() -> None:
    from specread.rank.select import answer_margin

    twice = _weights("Net Wt 100 g | 100 g")
    assert [c.answer.text for c in twice] == ["100.0 gram", "100.0 gram"]
    assert answer_margin(_Fixed([0.9, 0.8]), [0.9, 0.8], twice, 0) == pytest.approx(0.9)  # one answer, no rival
    pair = _weights("Net Wt 100 g (3.52 oz)")
    assert len({c.answer.text for c in pair}) == 2
    assert answer_margin(_Fixed([0.9, 0.8]), [0.9, 0.8], pair, 0) == pytest.approx(0.1)
    # a pick the scorer ranks under another answer (the joint assignment's) has no margin, not a negative one
    assert answer_margin(_Fixed([0.3, 0.8]), [0.3, 0.8], pair, 0) == 0.0
    assert answer_margin(_Fixed([0.7]), [0.7], pair[:1], 0) == pytest.approx(0.7)


def test_whole_image_confidence_is_the_answers_share_of_the_assignments() -> None:
    """Read jointly, a dimension's confidence is the probability mass of its answer over the assignments."""
    model = load_model().ranker
    page = _make_drawing("40 cm", "25 cm", "60 cm")
    alone = Selector(model, load_priors(), joint=None).select(page, ["height"]).predictions["height"]
    joint = Selector(model, load_priors()).select(page, ["height"]).predictions["height"]
    assert joint.text == alone.text  # asked alone, the unasked roles do not take its size away
    assert 0.0 < joint.confidence <= 1.0 and joint.confidence != pytest.approx(alone.confidence)


def test_cross_validation_reads_the_finer_page_only_where_nothing_was_read() -> None:
    from specread.rank.train import cross_validate

    blank = OcrPage((_make_token("Premium quality", (0.1, 0.1, 0.5, 0.2)),), 800, 800)
    finer = OcrPage((_make_token("Input 36V DC", (0.1, 0.5, 0.5, 0.6)),), 800, 800)
    rows = [LabelledRow(f"img{i}", blank, "voltage", str(i), "36.0 volt") for i in range(4)]
    asked: list[str] = []

    def retry(row: LabelledRow) -> OcrPage:
        asked.append(row.key)
        return finer

    without, _ = cross_validate(rows, load_priors(), lambda train: RuleScorer(), k=2)
    with_retry, _ = cross_validate(rows, load_priors(), lambda train: RuleScorer(), k=2, retry=retry)
    assert all(p != "36.0 volt" for p in without.values())
    assert set(with_retry.values()) == {"36.0 volt"} and sorted(asked) == [r.key for r in rows]


def _make_width_beside_rows(n: int, seed: int) -> list[LabelledRow]:
    """Drawings whose width label sits where heights usually do (beside the vertical line)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        w, h, d = rng.sample(range(10, 200), 3)
        rows.append(
            LabelledRow(
                f"b{seed}-{i}", _make_drawing(f"{h} cm", f"{w} cm", f"{d} cm"), "width", "", f"{w}.0 centimetre"
            )
        )
    return rows


def test_adapting_with_no_new_round_or_a_tiny_step_predicts_like_the_base(tmp_path) -> None:
    """The base trees count once, on top of the rule margin, in an adapted model."""
    rows = _make_rows(30, seed=1)
    X, y, q, _w = build_examples(rows, load_priors())
    base = fit_ranker(rows, load_priors(), n_estimators=40)
    same = CandidateRanker(n_estimators=0, ignore_features=base.ignore_features).fit(X, y, q, base=base)
    assert np.array_equal(same.predict_proba(X, q), base.predict_proba(X, q))
    tiny = fit_ranker(_make_width_beside_rows(20, seed=3), load_priors(), base=base, n_estimators=5, learning_rate=1e-9)
    assert tiny.booster_.num_trees() == 45
    assert np.allclose(tiny.predict_proba(X, q), base.predict_proba(X, q), rtol=0, atol=1e-6)
    tiny.save(tmp_path / "adapted.txt")
    assert np.array_equal(CandidateRanker.load(tmp_path / "adapted.txt").predict_proba(X, q), tiny.predict_proba(X, q))


def test_a_base_adapts_to_a_few_labels_of_a_new_kind() -> None:
    base = fit_ranker(_make_rows(40, seed=2), load_priors(), n_estimators=150)
    user = _make_width_beside_rows(60, seed=5)
    adapted = fit_ranker(user[:40], load_priors(), base=base, n_estimators=150)
    assert _accuracy(base, user[40:]) < 0.2
    assert _accuracy(adapted, user[40:]) >= 0.9


def test_a_base_must_match_and_be_fitted(tmp_path) -> None:
    from specread.rank.shards import write_shards
    from specread.rank.stream import fit_shards

    rows = _make_rows(10, seed=4)
    X, y, q, _w = build_examples(rows, load_priors())
    base = CandidateRanker(n_estimators=10, rule_weight=1.0).fit(X, y, q)
    with pytest.raises(ValueError, match="rule_weight"):
        CandidateRanker(n_estimators=5).fit(X, y, q, base=base)
    with pytest.raises(NotFittedError):
        CandidateRanker(n_estimators=5).fit(X, y, q, base=CandidateRanker())
    adapted = fit_ranker(rows, load_priors(), base=base, n_estimators=5)  # takes the base's rule_weight
    assert adapted.rule_weight == 1.0 and adapted.booster_.num_trees() == 15
    shards = write_shards(rows, load_priors(), tmp_path, rows_per_shard=7)
    from_shards, _ = fit_shards(CandidateRanker(n_estimators=5, rule_weight=1.0), shards, base=base)
    assert from_shards.booster_.model_to_string() == adapted.booster_.model_to_string()


def test_the_ranker_grows_with_the_training_images() -> None:
    from specread.extract.features import CAPACITY_FEATURES
    from specread.rank.train import CAPACITY_MIN_IMAGES, LARGE_SET_PARAMS, capacity_params

    small, large = capacity_params(CAPACITY_MIN_IMAGES - 1), capacity_params(CAPACITY_MIN_IMAGES)
    assert small == {"ignore_features": CAPACITY_FEATURES}
    assert large == {"ignore_features": (), **LARGE_SET_PARAMS}
    assert capacity_params(10**6, "small") == small and capacity_params(10, "large") == large
    with pytest.raises(ValueError, match="unknown capacity 'huge'"):
        capacity_params(10, "huge")
    # fit_ranker sizes itself by the rows' images unless told otherwise; a base keeps its own size.
    rows = _make_rows(30, seed=1)
    auto = fit_ranker(rows, load_priors(), n_estimators=5)
    assert auto.ignore_features == CAPACITY_FEATURES and auto.num_leaves == 7
    forced = fit_ranker(rows, load_priors(), n_estimators=5, **capacity_params(0, "large"))
    assert forced.ignore_features == () and forced.num_leaves == LARGE_SET_PARAMS["num_leaves"]
    assert fit_ranker(rows, load_priors(), base=forced, n_estimators=2).ignore_features == ()
