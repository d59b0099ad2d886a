"""Training that scales (issue item 2): features streamed to shards, LightGBM fitted from them.

Generated OCR pages only (:func:`specread.synth.synth_pages`, no images, no OCR):
shards hold exactly what :func:`build_examples` computes, a labelled row never
straddles two shards, a killed run resumes, the grouped validation split keeps
images and product groups whole, fitting from shards gives the very booster
fitting in memory gives, and the writer's memory does not grow with the rows.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from specread.extract.features import FEATURE_NAMES
from specread.extract.priors import load_priors
from specread.rank import shards as shards_module
from specread.rank.ranker import CandidateRanker
from specread.rank.shards import ShardSet, write_shards
from specread.rank.split import GroupedKFold, row_groups
from specread.rank.stream import ShardSplit, fit_shards
from specread.rank.train import build_examples
from specread.synth import TRAIN_MIX, synth_pages
from specread.types import LabelledRow
from specread.units.registry import ENTITIES


@pytest.fixture(scope="module")
def rows() -> list[LabelledRow]:
    return list(synth_pages(400, seed=11))


@pytest.fixture(scope="module")
def shard_set(rows: list[LabelledRow], tmp_path_factory: pytest.TempPathFactory) -> ShardSet:
    return write_shards(rows, load_priors(), tmp_path_factory.mktemp("shards"), rows_per_shard=64)


def _stack(shards: ShardSet, name: str) -> np.ndarray:
    return np.concatenate([getattr(s, name) for s in shards])


def test_synthetic_pages_are_deterministic_and_mixed_like_the_train_set() -> None:
    a, b = list(synth_pages(300, seed=4)), list(synth_pages(300, seed=4))
    assert [(r.key, r.entity, r.gold, r.page) for r in a] == [(r.key, r.entity, r.gold, r.page) for r in b]
    assert [r.gold for r in synth_pages(300, seed=5)] != [r.gold for r in a]
    assert {r.entity for r in a} == set(TRAIN_MIX)
    weights = sum(r.entity == "item_weight" for r in a) / len(a)
    assert 0.3 < weights < 0.5  # 39 % of the official train rows
    assert any(r.page.segments for r in a)  # dimension drawings carry their lines
    assert len({r.group_id for r in synth_pages(3000, seed=0)}) > 300


def test_shards_round_trip_what_build_examples_computes(rows: list[LabelledRow], shard_set: ShardSet) -> None:
    X, y, q, _w = build_examples(rows, load_priors())
    assert np.array_equal(_stack(shard_set, "X"), X)
    assert np.array_equal(_stack(shard_set, "y"), y.astype(np.int8))
    assert np.array_equal(_stack(shard_set, "groups"), q)
    assert (shard_set.n_rows, shard_set.n_candidates, len(shard_set)) == (len(rows), len(X), 7)
    assert shard_set.index["feature_names"] == list(FEATURE_NAMES)
    assert shard_set.index["positives"] == int(y.sum())
    assert _stack(shard_set, "row_key").tolist() == [r.key for r in rows]
    assert _stack(shard_set, "row_group_id").tolist() == [r.group_id for r in rows]
    assert [ENTITIES[i] for i in _stack(shard_set, "row_entity")] == [r.entity for r in rows]
    again = ShardSet(shard_set.directory)
    assert again.fingerprint == shard_set.fingerprint and len(again) == len(shard_set)


def test_a_labelled_row_never_straddles_two_shards(shard_set: ShardSet) -> None:
    seen: dict[int, int] = {}
    for shard in shard_set:
        assert shard.X.dtype == np.float32 and shard.y.dtype == np.int8 and shard.groups.dtype == np.int64
        assert np.array_equal(shard.groups, np.repeat(shard.row_id, shard.row_candidates))
        for g in np.unique(shard.groups):
            assert seen.setdefault(int(g), shard.number) == shard.number
    ids = _stack(shard_set, "row_id")
    assert np.array_equal(ids, np.arange(shard_set.n_rows))  # unique across shards


def test_a_killed_run_keeps_its_shards_and_resumes(
    rows: list[LabelledRow], shard_set: ShardSet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "resume"
    first = write_shards(rows, load_priors(), out, rows_per_shard=64)
    (out / "shard-00003.npz").unlink()  # killed while writing shard 3: no index either
    (out / "index.json").unlink()
    (out / ".shard-00003.npz.123.tmp").write_bytes(b"half a shard")
    with pytest.raises(FileNotFoundError):
        ShardSet(out)
    computed: list[int] = []
    real = shards_module._shard_arrays

    def counted(chunk: list[LabelledRow], first_id: int, priors: object) -> dict:
        computed.append(first_id)
        return real(chunk, first_id, priors)

    monkeypatch.setattr(shards_module, "_shard_arrays", counted)
    again = write_shards(rows, load_priors(), out, rows_per_shard=64)
    assert computed == [3 * 64]  # only the missing shard
    assert again.fingerprint == first.fingerprint == shard_set.fingerprint
    changed = [*rows[:130], LabelledRow(rows[130].key, rows[130].page, rows[130].entity, "", "1.0 gram"), *rows[131:]]
    computed.clear()
    assert write_shards(changed, load_priors(), out, rows_per_shard=64).fingerprint != first.fingerprint
    assert computed == [2 * 64]  # rows changed in shard 2 only
    write_shards(rows[:100], load_priors(), out, rows_per_shard=64)
    assert sorted(p.name for p in out.iterdir()) == ["index.json", "shard-00000.npz", "shard-00001.npz"]


def test_shards_of_other_features_are_refused(shard_set: ShardSet, tmp_path: Path) -> None:
    index = dict(shard_set.index, feature_names=["something", "else"])
    (tmp_path / "index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match="other features"):
        ShardSet(tmp_path)


def test_workers_write_the_same_shards(rows: list[LabelledRow], shard_set: ShardSet, tmp_path: Path) -> None:
    two = write_shards(rows, load_priors(), tmp_path, rows_per_shard=64, workers=2)
    assert two.fingerprint == shard_set.fingerprint


def test_the_holdout_is_the_first_grouped_fold_of_the_same_rows(rows: list[LabelledRow], shard_set: ShardSet) -> None:
    """Streaming and in-memory training hold out the same rows: one splitter (GroupedKFold)."""
    split = ShardSplit.holdout(shard_set, 4, seed=3)
    assert np.array_equal(split.valid_rows, ShardSplit.holdout(shard_set, 4, seed=3).valid_rows)
    assert not np.array_equal(split.valid_rows, ShardSplit.holdout(shard_set, 4, seed=4).valid_rows)
    _, test = GroupedKFold(4, seed=3).holdout(row_groups(rows))
    assert np.array_equal(split.valid_rows, test)  # row ids are stream positions
    keys, groups = _stack(shard_set, "row_key"), _stack(shard_set, "row_group_id")
    valid = split.is_valid(_stack(shard_set, "row_id"))
    assert 0.15 < valid.mean() < 0.35
    assert not set(keys[valid]) & set(keys[~valid])
    assert not set(groups[valid]) & set(groups[~valid])


def test_fit_from_shards_is_fit_in_memory(rows: list[LabelledRow], shard_set: ShardSet) -> None:
    X, y, q, _w = build_examples(rows, load_priors())
    memory = CandidateRanker(n_estimators=30, seed=2).fit(X, y, q)
    streamed, log = fit_shards(CandidateRanker(n_estimators=30, seed=2), shard_set)
    assert streamed.booster_.model_to_string() == memory.booster_.model_to_string()
    assert np.array_equal(streamed.predict_proba(X, q), memory.predict_proba(X, q))
    assert log == {"train_candidates": shard_set.n_candidates, "trees": 30}


def test_a_fit_without_its_holdout_is_the_in_memory_fit_of_the_other_rows(
    rows: list[LabelledRow], shard_set: ShardSet
) -> None:
    split = ShardSplit.holdout(shard_set, 4, seed=0)
    kept = [r for i, r in enumerate(rows) if i not in set(split.valid_rows.tolist())]
    X, y, q, _w = build_examples(kept, load_priors())
    memory = CandidateRanker(n_estimators=20, seed=1).fit(X, y, q)
    streamed, log = fit_shards(CandidateRanker(n_estimators=20, seed=1), shard_set, valid=split)
    assert streamed.booster_.model_to_string() == memory.booster_.model_to_string()
    assert log["train_candidates"] == len(y) and log["rounds"] == log["best_round"] == 20


def test_early_stopping_keeps_the_best_round(shard_set: ShardSet) -> None:
    with pytest.raises(ValueError, match="validation"):
        fit_shards(CandidateRanker(n_estimators=5), shard_set, early_stopping_rounds=3)
    split = ShardSplit.holdout(shard_set, 3, seed=0)
    model, log = fit_shards(
        CandidateRanker(n_estimators=400, learning_rate=0.3, seed=0), shard_set, valid=split, early_stopping_rounds=5
    )
    assert log["best_round"] < log["rounds"] < 400  # stopped early, kept the best round
    assert model.booster_.num_trees() == log["trees"] == log["best_round"]
    assert not hasattr(model, "report_")  # an estimator writes no report


_MEASURE = """
import json, re, sys, tempfile
from pathlib import Path
from specread.extract.priors import load_priors
from specread.rank.shards import write_shards
from specread.synth import synth_pages

def peak_kb():
    return int(re.search(r"VmHWM:\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1))

n = int(sys.argv[1])
priors = load_priors()
write_shards(synth_pages(300, seed=1), priors, tempfile.mkdtemp(), rows_per_shard=250)  # warm every cache
Path("/proc/self/clear_refs").write_text("5")  # restart the peak here
before = peak_kb()
shards = write_shards(synth_pages(n, seed=1), priors, tempfile.mkdtemp(), rows_per_shard=250)
print(json.dumps({"growth_kb": peak_kb() - before, "candidates": shards.n_candidates}))
"""


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's peak-RSS reset")
def test_the_writer_memory_stays_flat_in_the_number_of_rows() -> None:
    """4x the rows: the raw feature matrix grows by MBs, the writer's peak memory by next to nothing."""

    def measure(n: int) -> dict:
        done = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(_MEASURE), str(n)], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(done.stdout)

    small, large = measure(1500), measure(6000)
    assert large["candidates"] > 3.5 * small["candidates"]
    raw_growth_kb = (large["candidates"] - small["candidates"]) * len(FEATURE_NAMES) * 4 / 1024
    assert raw_growth_kb > 3000  # what holding the features would have cost, at the least
    assert large["growth_kb"] - small["growth_kb"] < 0.25 * raw_growth_kb
