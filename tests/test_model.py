"""Model folders: train writes one, predict/read/serve use it (--model, $SPECREAD_MODEL), a mismatch is refused.

Pages come from the fake OCR engine (``conftest.FakeEngine``) except in the slow test that
kills a real training run mid-OCR and resumes it.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import CliInvoke, FakeEngine, TinyDataset, build_tiny_dataset, write_csv
from specread.cli import app
from specread.data import PACKAGED_MODEL
from specread.errors import ModelMismatchError
from specread.extract.features import CAPACITY_FEATURES, FEATURE_NAMES
from specread.extract.priors import Priors, load_priors
from specread.io.dataset import read_predictions
from specread.io.output import job_path
from specread.ocr import engine as engine_module
from specread.rank.model import MODEL_ENV, check_model, file_sha256, load_model, ocr_card, save_model
from specread.rank.ranker import CandidateRanker
from specread.rank.train import LARGE_SET_PARAMS, build_examples, load_labelled_rows
from specread.readers import build_reader
from specread.settings import ReaderConfig, preset
from specread.units.registry import ENTITIES


def _specs(n: int = 30) -> tuple:
    """Generated pages: a labelled value beside a distractor of the same unit, over several entities."""
    specs = []
    for i in range(n):
        if i % 3 == 0:
            specs.append(((f"Net Wt {100 + 10 * i} g", f"Serving {i + 5} g", "Organic"),
                          (("item_weight", f"{100 + 10 * i}.0 gram"),)))  # fmt: skip
        elif i % 3 == 1:
            specs.append(((f"Input {100 + i}V", f"Power {20 + i}W", f"Standby {i % 4 + 1}W"),
                          (("wattage", f"{20 + i}.0 watt"), ("voltage", f"{100 + i}.0 volt"))))  # fmt: skip
        else:
            specs.append(((f"Width {10 + i} cm", f"Depth {i + 2} cm"), (("width", f"{10 + i}.0 centimetre"),)))
    return tuple(specs)


def _dataset(root: Path, engine: FakeEngine) -> TinyDataset:
    """The generated pages as a labelled set whose rows fall in 6 product groups (so a grouped hold-out exists)."""
    ds = build_tiny_dataset(root, engine, _specs())
    group = {name: str(100 + n % 6) for n, name in enumerate(dict.fromkeys(name for _, name, _, _ in ds.rows))}
    write_csv(ds.input_csv, ["index", "image_link", "group_id", "entity_name"],
              [(i, ds.link(name), group[name], e) for i, name, e, _ in ds.rows])  # fmt: skip
    write_csv(ds.gold_csv, ["index", "image_link", "group_id", "entity_name", "entity_value"],
              [(i, ds.link(name), group[name], e, g) for i, name, e, g in ds.rows])  # fmt: skip
    return ds


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TinyDataset, Path]]:
    """``specread train`` on the generated pages (fake OCR), once for the module: (dataset, model folder)."""
    root = tmp_path_factory.mktemp("trained")
    engine = FakeEngine()
    ds = _dataset(root / "data", engine)
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(engine_module.ENGINES, "rapidocr", lambda _settings: engine)
        args = ["train", ds.gold_csv, "--images", ds.images, "-o", root / "model", "--cache-dir", root / "cache"]
        result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    assert "hold-out F1" in result.output
    yield ds, root / "model"


@pytest.fixture
def engine(trained: tuple[TinyDataset, Path], monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    """The trained set's fake engine, as ``build_engine("rapidocr")`` for CLI runs in this process."""
    fake = trained[0].engine
    monkeypatch.setitem(engine_module.ENGINES, "rapidocr", lambda _settings: fake)
    return fake


def _in_process(ds: TinyDataset, config: ReaderConfig) -> dict[str, tuple[str, str]]:
    """Every row's answer and confidence from a reader built in this process, as ``predict --confidence`` writes."""
    reader = build_reader(config, engine=ds.engine)
    with open(ds.input_csv, encoding="utf-8") as fh:
        groups = {line.split(",")[0]: line.strip().split(",")[2] for line in list(fh)[1:]}
    out = {}
    for index, name, entity, _ in ds.rows:
        pred = reader.read(ds.images / name, [entity], groups[index]).predictions[entity]
        out[index] = (pred.text, f"{pred.confidence:.4f}")
    return out


def _written(path: Path) -> dict[str, tuple[str, str]]:
    with open(path, encoding="utf-8") as fh:
        return {index: (text, conf) for index, text, conf in csv.reader(fh) if index != "index"}


def _edit_card(src: Path, dst: Path, **changes: object) -> Path:
    shutil.copytree(src, dst)
    card = json.loads((dst / "model.json").read_text())
    for key, value in changes.items():
        if isinstance(value, dict):
            card[key] = {**card[key], **value}
        else:
            card[key] = value
    (dst / "model.json").write_text(json.dumps(card))
    return dst


def _one_error_line(output: str) -> str:
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in output, output
    return lines[0]


# -- the folder --------------------------------------------------------------------------------------------------------
def test_save_and_load_round_trip(tmp_path: Path) -> None:
    packaged = load_model()
    card = {"ocr": ocr_card(preset("accurate")), "metrics": {"f1": 0.5}, "data": {"rows": 3}}
    saved = save_model(tmp_path / "m", packaged.ranker, packaged.priors, card)
    loaded = load_model(tmp_path / "m")
    assert loaded.card == saved.card and loaded.digest == saved.digest == file_sha256(tmp_path / "m" / "model.json")
    assert loaded.card["params"] == packaged.ranker.get_params() and loaded.card["metrics"] == {"f1": 0.5}
    assert loaded.card["feature_names"] == list(FEATURE_NAMES) and loaded.card["entities"] == list(ENTITIES)
    assert loaded.priors.to_dict() == packaged.priors.to_dict()
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["model.json", "priors.json", "ranker.txt"]
    ds = _dataset(tmp_path / "d", FakeEngine())
    pages = build_reader(ReaderConfig(cache_dir=None), engine=ds.engine).pages
    rows = load_labelled_rows(ds.gold_csv, ds.images, pages)
    X, _, q, _w = build_examples(rows, packaged.priors)
    assert len(X) > 20
    np.testing.assert_array_equal(loaded.ranker.predict_proba(X, q), packaged.ranker.predict_proba(X, q))
    with pytest.raises(ValueError, match="OCR settings"):
        save_model(tmp_path / "n", packaged.ranker, packaged.priors, {})


def test_the_packaged_folder_is_a_model_trained_at_960(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MODEL_ENV, raising=False)
    model = load_model()
    assert model.path == str(PACKAGED_MODEL)
    assert model.card["feature_names"] == list(FEATURE_NAMES) and model.card["entities"] == list(ENTITIES)
    assert model.card["ocr"] == ocr_card(preset("accurate")) == ocr_card(preset("fast"))
    assert model.card["ocr"]["det_side"] == 960 and model.card["ocr"]["max_side"] == 2000
    assert model.card["params"]["seed"] == 0 and model.card["metrics"]["method"].startswith("grouped hold-out")
    assert 0.5 < model.card["metrics"]["weighted_f1"] < 1.0  # built by scripts/build_artifacts.sh (specread train)
    assert model.card["data"]["rows"] == 1083 and model.card["priors_from"]["rows"] == load_priors().n_rows
    assert model.priors.to_dict() == load_priors().to_dict()
    direct = CandidateRanker.load(Path(str(PACKAGED_MODEL)) / "ranker.txt")
    assert direct.booster_.model_to_string() == model.ranker.booster_.model_to_string()
    check_model(model, preset("fast"))  # same pages: the preset changes kernels, not what is read
    with pytest.raises(ModelMismatchError, match=r"det_side 960; this run reads with det_side 800"):
        check_model(model, replace(preset("accurate"), det_side=800))


# -- train, then predict with the folder -------------------------------------------------------------------------------
def test_train_writes_a_folder_with_its_labels_fingerprint_and_holdout_metrics(trained) -> None:
    ds, folder = trained
    card = load_model(folder).card
    assert card["ocr"] == ocr_card(preset("accurate"))
    assert card["data"] == {
        "labels": "gold.csv",
        "sha256": file_sha256(ds.gold_csv),
        "rows": len(ds.rows),
        "images": 30,
        "group_ids": 6,
        "rows_used": len(ds.rows),
    }
    packaged = {
        "model": "packaged",
        "sha256": file_sha256(PACKAGED_MODEL / "priors.json"),
        "rows": load_priors().n_rows,
    }
    own = {"labels": "gold.csv", "sha256": file_sha256(ds.gold_csv), "rows": len(ds.rows)}
    assert card["priors_from"] == {**own, "added_to": packaged}  # the labels add to the broad priors by default
    assert load_model(folder).priors.to_dict() == load_priors().combined(Priors.build(ds.gold_csv)).to_dict()
    metrics = card["metrics"]
    assert metrics["priors"] == "packaged priors plus the labels' own counts, without the held-out images"
    assert metrics["method"].startswith("grouped hold-out: 1 of 5 folds") and 0 < metrics["rows"] < len(ds.rows)
    assert 0.0 <= metrics["weighted_f1"] <= 1.0 and metrics["f1"] > 0.5, metrics
    assert set(metrics["per_entity"]) <= {"item_weight", "wattage", "voltage", "width"}
    assert card["params"]["seed"] == 0 and card["specread"]


def test_predict_with_model_gives_the_in_process_answers(
    trained, engine: FakeEngine, cli: CliInvoke, tmp_path: Path
) -> None:
    ds, folder = trained
    out = tmp_path / "out.csv"
    args = ("--images", ds.images, "-o", out, "--model", folder, "--no-cache", "--confidence")
    result = cli("predict", ds.input_csv, *args)
    assert result.exit_code == 0, result.output
    expected = _in_process(ds, ReaderConfig(model=str(folder), cache_dir=None))
    assert _written(out) == expected
    assert sum(text == gold for (_, _, _, gold), (text, _) in zip(ds.rows, expected.values(), strict=True)) > 30
    job = json.loads(job_path(out).read_text())
    assert job["settings"]["model"] == str(folder) and job["model"] == load_model(folder).digest
    packaged = _in_process(ds, ReaderConfig(cache_dir=None))
    assert packaged != expected  # the folder's ranker scored (other confidences), not the packaged one


def test_specread_model_is_the_default_model(
    trained, engine: FakeEngine, cli: CliInvoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds, folder = trained
    monkeypatch.setenv(MODEL_ENV, str(folder))
    assert load_model().path == str(folder)
    out = tmp_path / "env.csv"
    result = cli("predict", ds.input_csv, "--images", ds.images, "-o", out, "--no-cache", "--confidence")
    assert result.exit_code == 0, result.output
    assert json.loads(job_path(out).read_text())["settings"]["model"] == str(folder)
    assert _written(out) == _in_process(ds, ReaderConfig(model=str(folder), cache_dir=None))
    name, entity = ds.rows[0][1], ds.rows[0][2]
    read = cli("read", ds.images / name, "-e", entity, "--group-id", "100", "--no-cache", "--json")
    assert read.exit_code == 0, read.output
    assert json.loads(read.output)["predictions"][entity]["prediction"] == read_predictions(out)["0"]


def test_an_output_is_not_resumed_with_another_model(
    trained, engine: FakeEngine, cli: CliInvoke, tmp_path: Path
) -> None:
    ds, folder = trained
    copy = _edit_card(folder, tmp_path / "m", metrics={"note": "retrained in place"})  # same path, other model
    out = tmp_path / "out.csv"
    args = ("predict", ds.input_csv, "--images", ds.images, "-o", out, "--model", copy, "--no-cache")
    assert cli(*args).exit_code == 0
    _edit_card(copy, tmp_path / "m2", metrics={"note": "again"})
    shutil.rmtree(copy)
    (tmp_path / "m2").rename(copy)
    again = cli(*args)
    assert again.exit_code == 2 and "different model" in _one_error_line(again.output)


# -- refusals ----------------------------------------------------------------------------------------------------------
def test_a_model_read_at_another_detector_side_is_refused(
    trained, engine: FakeEngine, cli: CliInvoke, tmp_path: Path
) -> None:
    ds, folder = trained
    bad = _edit_card(folder, tmp_path / "m1280", ocr={"det_side": 1280})
    image = ds.images / ds.rows[0][1]
    expected = f"error: model {bad} was trained on OCR det_side 1280; this run reads with det_side 960: pass the same"
    for args in (
        ("predict", ds.input_csv, "--images", ds.images, "-o", tmp_path / "o.csv", "--model", bad),
        ("read", image, "-e", "item_weight", "--model", bad),
        ("serve", "--model", bad),
    ):
        result = cli(*args)
        assert result.exit_code == 2, result.output
        assert _one_error_line(result.output).startswith(expected)
    assert not (tmp_path / "o.csv").exists()  # refused before the output was claimed
    with pytest.raises(ModelMismatchError, match="det_side 1280"):
        build_reader(ReaderConfig(model=str(bad), cache_dir=None), engine=engine)
    # Fast reads the same pages; the rules use only the folder's priors: both accepted.
    assert cli("read", image, "-e", "item_weight", "--model", folder, "--preset", "fast").exit_code == 0
    assert cli("read", image, "-e", "item_weight", "--model", bad, "--scorer", "rules").exit_code == 0


def test_serve_takes_the_model_folder(trained, cli: CliInvoke, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("fastapi")
    from specread.service import app as app_module

    seen: dict = {}
    monkeypatch.setattr(app_module, "serve", lambda settings, **kwargs: seen.update(settings=settings))
    result = cli("serve", "--model", trained[1])
    assert result.exit_code == 0, result.output
    assert seen["settings"].reader.model == str(trained[1])


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("missing", "not found: pass a folder `specread train` wrote"),
        ("empty", "is not a model folder: it has no model.json"),
        ("garbled", "has a garbled model.json (Expecting property name"),
        ("features", "was trained on other features than this specread's (without cx): retrain it"),
        ("entities", "was trained on another entity order than this specread's (the same names in another order)"),
        ("format", "has model format 2; this specread reads format 1"),
        ("swapped", "has a ranker.txt that is not the one model.json names (its sha256 differs)"),
        ("cut", "has no priors.json: the folder is incomplete"),
    ],
)
def test_a_broken_or_foreign_folder_is_one_clear_line(
    trained, engine: FakeEngine, cli: CliInvoke, tmp_path: Path, damage: str, message: str
) -> None:
    ds, folder = trained
    bad = tmp_path / "bad"
    if damage == "empty":
        bad.mkdir()
    elif damage == "garbled":
        shutil.copytree(folder, bad)
        (bad / "model.json").write_text("{not json")
    elif damage == "features":
        _edit_card(folder, bad, feature_names=[n for n in FEATURE_NAMES if n != "cx"])
    elif damage == "entities":
        _edit_card(folder, bad, entities=list(reversed(ENTITIES)))
    elif damage == "format":
        _edit_card(folder, bad, format=2)
    elif damage == "swapped":
        shutil.copytree(folder, bad)
        shutil.copy(Path(str(PACKAGED_MODEL)) / "ranker.txt", bad / "ranker.txt")
    elif damage == "cut":
        shutil.copytree(folder, bad)
        (bad / "priors.json").unlink()
    result = cli("predict", ds.input_csv, "--images", ds.images, "-o", tmp_path / "o.csv", "--model", bad)
    assert result.exit_code == 2
    line = _one_error_line(result.output)
    assert line.startswith(f"error: model {bad} ") and message in line


# -- an interrupted training OCR pass ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_an_interrupted_training_run_resumes_its_ocr_pass(tmp_path: Path) -> None:
    from specread.synth import make_dataset

    make_dataset(tmp_path / "data", n_images=10, seed=3)
    cache, model = tmp_path / "cache", tmp_path / "model"
    specread = Path(sys.executable).with_name("specread")
    data = tmp_path / "data"
    command = [str(specread), "train", str(data / "gold.csv"), "--images", str(data / "images"),
               "-o", str(model), "--cache-dir", str(cache), "--workers", "1"]  # fmt: skip

    def pages() -> dict[Path, tuple[int, int]]:
        return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in cache.rglob("*.json")}

    run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while len(pages()) < 3 and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(run.pid, signal.SIGKILL)  # the run and its OCR worker, mid-pass
    run.wait()
    time.sleep(0.5)
    before = pages()
    assert 3 <= len(before) < 10 and not (model / "model.json").exists()

    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    after = pages()
    assert len(after) == 10
    assert {p: after[p] for p in before} == before  # the pages read before the kill were not read again
    card = load_model(model).card
    assert card["ocr"]["det_side"] == 960 and card["data"]["images"] == 10


def test_train_from_a_base_keeps_its_trees_and_adds_rounds(
    trained: tuple[TinyDataset, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds, base_dir = trained
    monkeypatch.setitem(engine_module.ENGINES, "rapidocr", lambda _settings: ds.engine)
    out = tmp_path / "adapted"
    args = ["train", ds.gold_csv, "--images", ds.images, "-o", out, "--cache-dir", tmp_path / "cache"]
    result = CliRunner().invoke(
        app, [str(a) for a in [*args, "--base", base_dir, "--rounds", "7"]], env={"COLUMNS": "400"}
    )
    assert result.exit_code == 0, result.output
    base, adapted = load_model(base_dir), load_model(out)
    assert adapted.card["base"] == {"path": str(base_dir), "digest": base.digest}
    assert adapted.ranker.n_estimators == 7 and adapted.card["params"]["n_estimators"] == 7
    base_trees = base.ranker.booster_.dump_model()["tree_info"]
    adapted_trees = adapted.ranker.booster_.dump_model()["tree_info"]
    assert len(adapted_trees) > len(base_trees)  # (LightGBM stops early on this tiny set: fewer than 7 new)
    assert [t["tree_structure"] for t in adapted_trees[: len(base_trees)]] == [t["tree_structure"] for t in base_trees]
    # The labels add to the base's priors unless --priors is given.
    assert adapted.priors.to_dict() == base.priors.combined(Priors.build(ds.gold_csv)).to_dict()

    # A base that reads pages differently is refused before any OCR.
    other = _edit_card(base_dir, tmp_path / "other", ocr={"det_side": 1280})
    result = CliRunner().invoke(app, [str(a) for a in [*args, "--base", other]], env={"COLUMNS": "400"})
    assert result.exit_code == 2 and "1280" in _one_error_line(result.output)


def test_streaming_training_gives_the_same_model_and_removes_its_shards(
    trained: tuple[TinyDataset, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds, _ = trained
    monkeypatch.setitem(engine_module.ENGINES, "rapidocr", lambda _settings: ds.engine)

    def train(out: Path, *extra: str) -> Path:
        args = ["train", ds.gold_csv, "--images", ds.images, "-o", out, "--cache-dir", tmp_path / "cache", *extra]
        result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "400"})
        assert result.exit_code == 0, result.output
        return out

    in_memory = train(tmp_path / "memory", "--holdout", "0")
    streamed = train(tmp_path / "streamed", "--holdout", "0", "--streaming")
    assert (streamed / "ranker.txt").read_bytes() == (in_memory / "ranker.txt").read_bytes()
    assert (streamed / "priors.json").read_bytes() == (in_memory / "priors.json").read_bytes()
    assert not (streamed / "shards").exists()

    # The size a small set gets by default, and the large one forced, on both paths.
    assert load_model(in_memory).card["params"]["ignore_features"] == list(CAPACITY_FEATURES)
    for extra in ((), ("--streaming",)):
        large = train(tmp_path / f"large{len(extra)}", "--holdout", "0", "--capacity", "large", *extra)
        params = load_model(large).card["params"]
        assert params["ignore_features"] == [] and params["num_leaves"] == LARGE_SET_PARAMS["num_leaves"]

    # --priors none: the labels' own counts alone, on both paths.
    for extra in ((), ("--streaming",)):
        own = train(tmp_path / f"own{len(extra)}", "--holdout", "0", "--priors", "none", *extra)
        assert load_model(own).priors.to_dict() == Priors.build(ds.gold_csv).to_dict()
        assert load_model(own).card["priors_from"] == {
            "labels": "gold.csv",
            "sha256": file_sha256(ds.gold_csv),
            "rows": len(ds.rows),
        }


def test_streaming_and_in_memory_training_measure_the_same_holdout(
    trained: tuple[TinyDataset, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One validation rule: the same grouped fold, priors without its images, read and scored alike."""
    ds, in_memory = trained
    monkeypatch.setitem(engine_module.ENGINES, "rapidocr", lambda _settings: ds.engine)
    out = tmp_path / "streamed"
    args = ["train", ds.gold_csv, "--images", ds.images, "-o", out, "--cache-dir", tmp_path / "cache", "--streaming"]
    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    streamed, memory = load_model(out).card["metrics"], load_model(in_memory).card["metrics"]
    assert streamed["method"].startswith("grouped hold-out: 1 of 5 folds") and 0 < streamed["rows"] < len(ds.rows)
    assert {k: v for k, v in streamed.items() if k != "method"} == {k: v for k, v in memory.items() if k != "method"}
    assert (out / "calibration.json").is_file() and not (out / "shards").exists()
