"""The command line, run in-process with typer's CliRunner (a fake OCR engine unless marked slow)."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest
import typer
from PIL import Image

from conftest import CliInvoke, FakeEngine, TinyDataset, write_csv
from specread.cli import app
from specread.extract.priors import Priors
from specread.io.check import check_output
from specread.io.dataset import read_gold, read_predictions, read_rows
from specread.metrics import score_rows
from specread.synth import make_dataset

REQUIRED_COMMANDS = {"predict", "evaluate", "check", "read", "priors", "example"}


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def _one_line(text: str) -> str:
    return " ".join(text.split())


# -- help -----------------------------------------------------------------------------


def test_help_lists_every_command(cli: CliInvoke) -> None:
    commands = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    assert commands >= REQUIRED_COMMANDS
    result = cli("--help")
    assert result.exit_code == 0
    for name in commands:
        assert f" {name} " in result.output, name


def test_version_prints_the_package_version_and_exits(cli: CliInvoke) -> None:
    from importlib.metadata import version

    result = cli("--version")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"specread {version('specread')}"


def test_version_comes_before_any_command(cli: CliInvoke) -> None:
    # Eager: answered even with a command after it, and no command runs.
    result = cli("--version", "predict")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("specread ")


@pytest.mark.parametrize("command", sorted(REQUIRED_COMMANDS))
def test_every_command_has_help(cli: CliInvoke, command: str) -> None:
    result = cli(command, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


# -- predict ----------------------------------------------------------------------------


def test_predict(cli: CliInvoke, tmp_dataset: TinyDataset, fake_rapidocr: FakeEngine, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    result = cli("predict", tmp_dataset.input_csv, "--images", tmp_dataset.images, "--output", out)
    assert result.exit_code == 0, result.output
    n_images = len({r[1] for r in tmp_dataset.rows})
    assert fake_rapidocr.calls == n_images
    assert f"{len(tmp_dataset.rows)} rows, {n_images} images read, 0 rows resumed, 0 unreadable" in result.output
    rows = _rows(out)
    assert rows[0] == ["index", "prediction"]
    assert [r[0] for r in rows[1:]] == tmp_dataset.indices
    assert check_output(out, tmp_dataset.input_csv).ok
    gold, entities = read_gold(tmp_dataset.gold_csv)
    report = score_rows(read_predictions(out), gold, entities)
    assert report.overall.tp == sum(1 for r in tmp_dataset.rows if r[3])

    # Run again: everything is resumed, nothing is read.
    result = cli("predict", tmp_dataset.input_csv, "--images", tmp_dataset.images, "--output", out)
    assert result.exit_code == 0
    assert f"{len(tmp_dataset.rows)} rows resumed" in result.output
    assert fake_rapidocr.calls == n_images


def test_predict_confidence_and_no_cache(
    cli: CliInvoke, tmp_dataset: TinyDataset, fake_rapidocr: FakeEngine, tmp_path: Path, _isolated_cache: Path
) -> None:
    out = tmp_path / "out.csv"
    args = ("predict", tmp_dataset.input_csv, "--images", tmp_dataset.images, "-o", out, "--confidence", "--no-cache")
    result = cli(*args)
    assert result.exit_code == 0, result.output
    assert _rows(out)[0] == ["index", "prediction", "confidence"]
    assert not any(_isolated_cache.iterdir())  # --no-cache wrote nothing


def test_predict_cache_dir_option(
    cli: CliInvoke, tmp_dataset: TinyDataset, fake_rapidocr: FakeEngine, tmp_path: Path
) -> None:
    cache = tmp_path / "my-cache"
    out = tmp_path / "out.csv"
    result = cli("predict", tmp_dataset.input_csv, "--images", tmp_dataset.images, "-o", out, "--cache-dir", cache)
    assert result.exit_code == 0, result.output
    assert (cache / fake_rapidocr.fingerprint()).is_dir()
    # A new output file re-reads every image, now from the cache.
    calls = fake_rapidocr.calls
    result = cli("predict", tmp_dataset.input_csv, "--images", tmp_dataset.images, "-o", tmp_path / "o2.csv",
                 "--cache-dir", cache)  # fmt: skip
    assert result.exit_code == 0
    assert fake_rapidocr.calls == calls
    assert _rows(out) == _rows(tmp_path / "o2.csv")


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--scorer", "magic", "unknown scorer 'magic'"),
        ("--preset", "turbo", "unknown preset 'turbo'"),
        ("--reader", "oracle", "unknown reader 'oracle'"),
        ("--engine", "spark", "unknown engine 'spark'"),
        ("--reader", "vlm", "needs --vlm-model"),
        ("--retry-side", "500", "above the first pass's (960)"),
        ("--retry-side", "4000", "at most max_side (2000)"),
    ],
)
def test_predict_rejects_unknown_options(
    cli: CliInvoke, tmp_dataset: TinyDataset, fake_rapidocr: FakeEngine, tmp_path: Path, option: str, value: str,
    message: str,
) -> None:  # fmt: skip
    out = tmp_path / "out.csv"
    result = cli("predict", tmp_dataset.input_csv, "--images", tmp_dataset.images, "-o", out, option, value)
    assert result.exit_code == 2
    assert message in _one_line(result.output)
    assert "Traceback" not in result.output
    assert not out.exists()
    assert fake_rapidocr.calls == 0


def _not_utf8_inputs(folder: Path) -> list[Path]:
    """A Latin-1 CSV with every column a command reads (its bad byte on line 3), random bytes, and a PNG."""
    folder.mkdir(parents=True, exist_ok=True)
    latin1 = folder / "latin1.csv"
    latin1.write_bytes(
        b"index,image_link,group_id,entity_name,entity_value,prediction\n"
        b"0,https://x.invalid/a.jpg,1,width,1.0 metre,1.0 metre\n"
        b"1,https://x.invalid/b.jpg,caf\xe9,width,2.0 metre,2.0 metre\n"
    )
    noise = folder / "noise.csv"
    noise.write_bytes(random.Random(0).randbytes(4096))
    png = folder / "image.csv"
    Image.new("RGB", (8, 8), (10, 200, 10)).save(png, format="PNG")
    return [latin1, noise, png]


def _single_error_line(output: str, path: Path) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith(f"error: {path}: line "), output
    assert "Traceback" not in output
    return lines[0]


def test_predict_refuses_a_csv_that_is_not_utf8_in_one_line(
    cli: CliInvoke, tmp_dataset: TinyDataset, fake_rapidocr: FakeEngine, tmp_path: Path
) -> None:
    latin1, noise, png = _not_utf8_inputs(tmp_path / "inputs")
    out = tmp_path / "out.csv"
    for bad in (latin1, noise, png):
        result = cli("predict", bad, "--images", tmp_dataset.images, "-o", out)
        assert result.exit_code == 2, result.output
        line = _single_error_line(result.output, bad)
        assert "not UTF-8" in line or "NUL byte" in line
        assert not out.exists()
    assert "line 3: not UTF-8 text (byte 0xe9 in column group_id)" in _single_error_line(
        cli("predict", latin1, "--images", tmp_dataset.images, "-o", out).output, latin1
    )
    assert fake_rapidocr.calls == 0


@pytest.mark.parametrize("command", ["evaluate-predictions", "evaluate-gold", "check-output", "check-input", "clean"])
def test_other_commands_refuse_a_csv_that_is_not_utf8_in_one_line(cli: CliInvoke, tmp_path: Path, command: str) -> None:
    preds, gold = _make_eval_files(tmp_path)
    for bad in _not_utf8_inputs(tmp_path / "inputs"):
        args = {
            "evaluate-predictions": ("evaluate", bad, gold),
            "evaluate-gold": ("evaluate", preds, bad),
            "check-output": ("check", bad, "--input", gold),
            "check-input": ("check", preds, "--input", bad),
            "clean": ("clean", bad, "-o", tmp_path / "clean.csv"),
        }[command]
        result = cli(*args)
        assert result.exit_code == 2, result.output
        _single_error_line(result.output, bad)


@pytest.mark.slow
def test_predict_real_ocr_with_two_workers(cli: CliInvoke, tmp_path: Path) -> None:
    input_csv = make_dataset(tmp_path / "ex", n_images=3, seed=11, n_values=2)
    out = tmp_path / "out.csv"
    result = cli("predict", input_csv, "--images", tmp_path / "ex" / "images", "-o", out, "--workers", "2")
    assert result.exit_code == 0, result.output
    rows = read_rows(input_csv)
    assert [r[0] for r in _rows(out)[1:]] == [r.index for r in rows]
    assert check_output(out, input_csv).ok
    gold, entities = read_gold(tmp_path / "ex" / "gold.csv")
    assert score_rows(read_predictions(out), gold, entities).overall.f1 >= 0.6


# -- evaluate ---------------------------------------------------------------------------


def _make_eval_files(tmp_path: Path) -> tuple[Path, Path]:
    gold = write_csv(tmp_path / "gold.csv", ["index", "image_link", "group_id", "entity_name", "entity_value"], [
        (0, "a.jpg", "1", "item_weight", "500.0 gram"),
        (1, "a.jpg", "1", "item_weight", "2.0 kilogram"),
        (2, "b.jpg", "1", "voltage", "230.0 volt"),
        (3, "c.jpg", "1", "voltage", ""),
    ])  # fmt: skip
    preds = write_csv(tmp_path / "preds.csv", ["index", "prediction"], [
        (0, "500 gram"), (1, "2.0 gram"), (2, "230.0 volt"), (3, ""),
    ])  # fmt: skip
    return preds, gold


def test_evaluate_json(cli: CliInvoke, tmp_path: Path) -> None:
    preds, gold = _make_eval_files(tmp_path)
    result = cli("evaluate", preds, gold, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["tp"], report["fp"], report["fn"], report["rows"]) == (2, 1, 0, 4)
    assert report["f1"] == round(4 / 5, 4)
    assert report["per_entity"]["voltage"]["f1"] == 1.0
    assert report["per_entity"]["item_weight"]["f1"] == round(2 / 3, 4)
    assert 0.0 < report["weighted_f1"] < 1.0


def test_evaluate_table(cli: CliInvoke, tmp_path: Path) -> None:
    preds, gold = _make_eval_files(tmp_path)
    result = cli("evaluate", preds, gold)
    assert result.exit_code == 0, result.output
    assert "F1 0.8000" in result.output
    assert "test-weighted F1" in result.output
    for word in ("item_weight", "voltage", "all", "precision", "recall"):
        assert word in result.output


def test_evaluate_missing_file(cli: CliInvoke, tmp_path: Path) -> None:
    preds, _ = _make_eval_files(tmp_path)
    result = cli("evaluate", preds, tmp_path / "nope.csv")
    assert result.exit_code == 2
    assert "nope.csv: file not found" in result.output
    assert "Traceback" not in result.output


# -- check ------------------------------------------------------------------------------


@pytest.fixture
def check_input(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "input.csv", ["index", "image_link", "group_id", "entity_name"], [
        (0, "a.jpg", "1", "item_weight"),
        (1, "a.jpg", "1", "voltage"),
        (2, "b.jpg", "1", "item_volume"),
    ])  # fmt: skip


def test_check_passes(cli: CliInvoke, tmp_path: Path, check_input: Path) -> None:
    out = write_csv(tmp_path / "out.csv", ["index", "prediction"], [(0, "500.0 gram"), (1, ""), (2, "1.5 litre")])
    result = cli("check", out, "--input", check_input)
    assert result.exit_code == 0, result.output
    assert "3 rows, 1 empty, all valid" in result.output


@pytest.mark.parametrize(
    ("rows", "messages"),
    [
        ([(0, "500.0 gram"), (2, "1.5 litre")], ["1 input index(es) have no output row", "['1']"]),
        ([(0, "500.0 volt"), (1, ""), (2, "1.5 litre")], ["unit 'volt' is not allowed for item_weight"]),
        ([(0, "2.2e2 gram"), (1, ""), (2, "1.5 litre")], ["'2.2e2 gram' does not match"]),
        ([(0, ""), (1, "[1, 2] volt"), (2, "1.5 litre")], ["'[1, 2] volt' does not match"]),
        ([(0, ""), (1, ""), (2, "1.5 litre"), (2, "2.0 litre")], ["appear more than once", "['2']"]),
        (
            [(0, "2.2e2 gram"), (1, "5 watt"), (2, "1.5 litre"), (2, "")],
            ["'2.2e2 gram' does not match", "unit 'watt' is not allowed for voltage", "appear more than once"],
        ),
    ],
)
def test_check_fails(cli: CliInvoke, tmp_path: Path, check_input: Path, rows: list, messages: list[str]) -> None:
    out = write_csv(tmp_path / "out.csv", ["index", "prediction"], rows)
    result = cli("check", out, "--input", check_input)
    assert result.exit_code == 1, result.output
    for message in messages:
        assert message in result.output
    assert "check failed" in result.output


def test_check_missing_files(cli: CliInvoke, tmp_path: Path, check_input: Path) -> None:
    result = cli("check", tmp_path / "missing.csv", "--input", check_input)
    assert result.exit_code == 2
    assert "file not found" in result.output and "missing.csv" in result.output
    out = write_csv(tmp_path / "out.csv", ["index", "prediction"], [(0, "")])
    result = cli("check", out, "--input", tmp_path / "no-input.csv")
    assert result.exit_code == 2
    assert "no-input.csv: file not found" in result.output
    assert "Traceback" not in result.output


# -- read -------------------------------------------------------------------------------


def test_read_prints_value_and_evidence(cli: CliInvoke, tmp_dataset: TinyDataset, fake_rapidocr: FakeEngine) -> None:
    image = tmp_dataset.images / "img_000.png"  # reads "Net Wt. 500 g" / "Organic"
    result = cli("read", image, "--entity", "item_weight", "-e", "voltage", "--scorer", "rules")
    assert result.exit_code == 0, result.output
    lines = {line.split(":")[0]: line for line in result.stdout.splitlines()}
    assert lines["item_weight"].startswith("item_weight: 500.0 gram")
    assert 'from "Net Wt. 500 g" at box (' in lines["item_weight"]
    assert "[rules]" in lines["item_weight"]
    assert "voltage" in lines  # answered (prior) or "(none)", but always listed


def test_read_json(cli: CliInvoke, tmp_dataset: TinyDataset, fake_rapidocr: FakeEngine) -> None:
    image = tmp_dataset.images / "img_001.png"  # reads "Input 230V" / "Power 60W"
    result = cli("read", image, "-e", "voltage", "-e", "wattage", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [t["text"] for t in data["tokens"]] == ["Input 230V", "Power 60W"]
    assert all(len(t["box"]) == 4 for t in data["tokens"])
    voltage = data["predictions"]["voltage"]
    assert (voltage["prediction"], voltage["value"], voltage["unit"]) == ("230.0 volt", 230.0, "volt")
    assert voltage["evidence"]["text"] == "Input 230V"
    assert data["predictions"]["wattage"]["prediction"] == "60.0 watt"


def test_read_bad_entity_and_bad_image(cli: CliInvoke, tmp_dataset: TinyDataset, fake_rapidocr: FakeEngine) -> None:
    result = cli("read", tmp_dataset.images / "img_000.png", "-e", "colour")
    assert result.exit_code == 2
    assert "unknown entity 'colour'" in result.output
    result = cli("read", tmp_dataset.images / "missing.png", "-e", "item_weight")
    assert result.exit_code == 2
    assert "missing.png" in result.output and "file not found" in result.output
    assert "Traceback" not in result.output


# -- example and priors -----------------------------------------------------------------


def test_example(cli: CliInvoke, tmp_path: Path) -> None:
    out = tmp_path / "ex"
    result = cli("example", out, "--n-images", "3", "--seed", "5")
    assert result.exit_code == 0, result.output
    rows = read_rows(out / "input.csv")
    gold, entities = read_gold(out / "gold.csv")
    assert [r.index for r in rows] == list(gold)
    assert {r.entity_name for r in rows} == set(entities.values())
    assert len({r.image_link for r in rows}) == 3
    for r in rows:
        assert (out / "images" / Path(r.image_link).name).is_file()
        assert gold[r.index]  # every generated row has an answer


def _make_train_csv(path: Path) -> Path:
    rows = [("a.jpg", "g1", "item_weight", "500.0 gram")] * 4
    rows += [("b.jpg", "g1", "item_weight", "1.0 kilogram")] * 2
    rows += [("c.jpg", "g2", "voltage", "230.0 volt"), ("d.jpg", "g2", "voltage", "[100.0, 240.0] volt")]
    rows += [("e.jpg", "g2", "voltage", "5.0 watt")]  # unit not allowed: ignored
    return write_csv(path, ["image_link", "group_id", "entity_name", "entity_value"], rows)


def test_priors(cli: CliInvoke, tmp_path: Path) -> None:
    train = _make_train_csv(tmp_path / "train.csv")
    out = tmp_path / "priors.json"
    result = cli("priors", train, "-o", out)
    assert result.exit_code == 0, result.output
    assert "7 label rows counted" in result.output
    priors = Priors.from_dict(json.loads(out.read_text()))
    assert priors.unit_counts == {"item_weight": {"gram": 4, "kilogram": 2}, "voltage": {"volt": 1}}
    assert priors.fallback("item_weight", "g1") == (500.0, "gram")
    assert priors.fallback("voltage") == (230.0, "volt")
    assert priors.unit_logp("item_weight", "gram") > priors.unit_logp("item_weight", "pound")


def test_priors_exclude(cli: CliInvoke, tmp_path: Path) -> None:
    train = _make_train_csv(tmp_path / "train.csv")
    dev = write_csv(
        tmp_path / "dev.csv", ["index", "image_link", "group_id", "entity_name"], [(0, "a.jpg", "g1", "item_weight")]
    )
    out = tmp_path / "priors.json"
    result = cli("priors", train, "-o", out, "--exclude", dev)
    assert result.exit_code == 0, result.output
    assert "3 label rows counted, 1 image links excluded" in result.output
    assert Priors.from_dict(json.loads(out.read_text())).fallback("item_weight") == (1.0, "kilogram")


def test_priors_bad_input(cli: CliInvoke, tmp_path: Path) -> None:
    out = tmp_path / "priors.json"
    result = cli("priors", tmp_path / "missing.csv", "-o", out)
    assert result.exit_code == 2
    assert "missing.csv" in result.output
    bad = write_csv(tmp_path / "bad.csv", ["image_link", "entity_name"], [("a.jpg", "width")])
    result = cli("priors", bad, "-o", out)
    assert result.exit_code == 2
    assert "entity_value" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


# -- serve (options only; the running service is tested in test_service_*) -----------------


def test_serve_passes_preset_and_second_pass_to_the_workers(cli: CliInvoke, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("fastapi")
    import specread.service.app as service_app

    seen = {}
    monkeypatch.setattr(service_app, "serve", lambda settings, **kw: seen.update(settings=settings, **kw))
    result = cli("serve", "--preset", "fast", "--retry-side", "1600", "--no-cache", "--port", "8123")
    assert result.exit_code == 0, result.output
    reader = seen["settings"].reader
    assert reader.ocr.backend == "openvino" and reader.retry_side == 1600
    assert reader.cache_dir is None and seen["port"] == 8123


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--retry-side", "900"], "above the first pass's (960)"), (["--preset", "turbo"], "unknown preset 'turbo'")],
)
def test_serve_rejects_bad_reader_options_before_starting(
    cli: CliInvoke, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    pytest.importorskip("fastapi")
    import specread.service.app as service_app

    monkeypatch.setattr(service_app, "serve", lambda *a, **k: pytest.fail("the server must not start"))
    result = cli("serve", *args)
    assert result.exit_code == 2
    assert message in _one_line(result.output)
