"""CLI options reach the settings they name: reader options on ``read`` and ``predict``, ``--runner``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from conftest import CliInvoke, FakeEngine, TinyDataset
from specread import readers
from specread.batch import local, ray_runner
from specread.batch.local import RunStats
from specread.settings import ReaderConfig, VlmSettings, preset


def _one_line(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture
def seen_reader_config(monkeypatch: pytest.MonkeyPatch) -> list[ReaderConfig]:
    """Record each ReaderConfig ``read`` builds; its reader is built without a second pass (fakes have none)."""
    configs: list[ReaderConfig] = []
    real = readers.build_reader

    def build(config: ReaderConfig, engine=None):
        configs.append(config)
        return real(dataclasses.replace(config, retry_side=0), engine)

    monkeypatch.setattr(readers, "build_reader", build)
    return configs


def test_read_passes_preset_second_pass_and_cache_to_the_reader(
    cli: CliInvoke, tmp_dataset: TinyDataset, fake_rapidocr: FakeEngine, seen_reader_config: list[ReaderConfig]
) -> None:
    image = tmp_dataset.images / "img_000.png"
    result = cli("read", image, "-e", "item_weight", "--preset", "fast", "--retry-side", "1600", "--no-cache")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("item_weight: 500.0 gram")
    (config,) = seen_reader_config
    assert config.ocr == preset("fast") and config.retry_side == 1600 and config.cache_dir is None
    assert (config.reader, config.scorer) == (ReaderConfig.reader, ReaderConfig.scorer)


def test_read_cache_dir_and_defaults(
    cli: CliInvoke, tmp_dataset: TinyDataset, fake_rapidocr: FakeEngine, seen_reader_config: list[ReaderConfig],
    tmp_path: Path,
) -> None:  # fmt: skip
    image = tmp_dataset.images / "img_000.png"
    assert cli("read", image, "-e", "item_weight").exit_code == 0
    assert cli("read", image, "-e", "item_weight", "--cache-dir", tmp_path / "c").exit_code == 0
    default, chosen = seen_reader_config
    assert default == ReaderConfig()  # every option's default is the settings' default
    assert chosen.cache_dir == str(tmp_path / "c")
    assert (tmp_path / "c" / fake_rapidocr.fingerprint()).is_dir()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--preset", "turbo"], "unknown preset 'turbo'; choose one of: fast, accurate, int8"),
        (["--retry-side", "500"], "above the first pass's (960)"),
        (["--scorer", "magic"], "unknown scorer 'magic'"),
        (["--reader", "hybrid"], "--reader hybrid needs --vlm-model"),
    ],
)
def test_read_refuses_bad_reader_options(
    cli: CliInvoke, tmp_dataset: TinyDataset, fake_rapidocr: FakeEngine, args: list[str], message: str
) -> None:
    result = cli("read", tmp_dataset.images / "img_000.png", "-e", "item_weight", *args)
    assert result.exit_code == 2
    text = _one_line(result.output)
    assert text.startswith("error: ") and message in text, result.output
    assert fake_rapidocr.calls == 0


# -- predict: the reader config and the runner ----------------------------------------------


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ReaderConfig, dict]]:
    """Replace both runners: each call is recorded as ``(runner, config, keyword arguments)``; no OCR, no Ray."""
    calls: list[tuple[str, ReaderConfig, dict]] = []

    def runner(name: str):
        def run(input_csv, images, output, config, *args, **kwargs) -> RunStats:
            calls.append((name, config, kwargs))
            return RunStats(rows=3, images=2)

        return run

    monkeypatch.setattr(local, "predict_csv", runner("local"))
    monkeypatch.setattr(ray_runner, "predict_csv_ray", runner("ray"))
    return calls


def _predict(cli: CliInvoke, ds: TinyDataset, tmp_path: Path, *args: str):
    return cli("predict", ds.input_csv, "--images", ds.images, "-o", tmp_path / "out.csv", *args)


def test_predict_builds_the_reader_config_from_its_options(
    cli: CliInvoke, tmp_dataset: TinyDataset, tmp_path: Path, runs: list
) -> None:
    args = ["--preset", "fast", "--retry-side", "1600", "--no-cache", "--scorer", "rules", "--vlm-threshold", "0.7"]
    result = _predict(cli, tmp_dataset, tmp_path, *args)
    assert result.exit_code == 0, result.output
    ((name, config, _),) = runs
    assert name == "local"
    assert config == ReaderConfig(
        scorer="rules", ocr=preset("fast"), retry_side=1600, cache_dir=None, vlm=VlmSettings(threshold=0.7)
    )
    assert _predict(cli, tmp_dataset, tmp_path).exit_code == 0
    assert runs[1][1] == ReaderConfig()


@pytest.mark.parametrize("option", ["--runner", "--engine"])
def test_predict_runs_on_ray_with_runner_and_the_deprecated_engine(
    cli: CliInvoke, tmp_dataset: TinyDataset, tmp_path: Path, runs: list, option: str
) -> None:
    result = _predict(cli, tmp_dataset, tmp_path, option, "ray", "--address", "auto", "--confidence")
    assert result.exit_code == 0, result.output
    ((name, _, kwargs),) = runs
    assert name == "ray" and kwargs["address"] == "auto" and kwargs["with_confidence"] is True
    deprecated = "warning: --engine is deprecated and will be removed: use --runner"
    assert (deprecated in _one_line(result.output)) == (option == "--engine")
    assert "wrote" in result.output and "3 rows" in result.output


def test_predict_engine_local_still_means_the_local_runner(
    cli: CliInvoke, tmp_dataset: TinyDataset, tmp_path: Path, runs: list
) -> None:
    result = _predict(cli, tmp_dataset, tmp_path, "--engine", "local")
    assert result.exit_code == 0, result.output
    assert [name for name, _, _ in runs] == ["local"]
    assert "--engine is deprecated" in result.output


def test_predict_refuses_an_unknown_runner_before_any_work(
    cli: CliInvoke, tmp_dataset: TinyDataset, tmp_path: Path, runs: list
) -> None:
    result = _predict(cli, tmp_dataset, tmp_path, "--runner", "spark")
    assert result.exit_code == 2
    assert "unknown runner 'spark'; choose one of: local, ray" in _one_line(result.output)
    assert runs == []


def test_help_shows_runner_and_hides_engine(cli: CliInvoke) -> None:
    text = cli("predict", "--help").output
    assert "--runner" in text and "--engine" not in text
    read = cli("read", "--help").output
    for option in ("--preset", "--retry-side", "--no-cache", "--cache-dir"):
        assert option in read, option


def test_finetune_has_no_text_only_flag(cli: CliInvoke) -> None:
    text = cli("finetune", "--help").output
    assert "--lora" in text and "--text-only" not in text


# -- train: the workflow now in specread.batch.train.train_ranker -----------------------------


def test_train_reads_each_image_once_and_writes_a_model_folder(
    cli: CliInvoke, tmp_dataset: TinyDataset, fake_rapidocr: FakeEngine, tmp_path: Path
) -> None:
    from specread.rank.model import load_model

    model = tmp_path / "models" / "mine"
    result = cli("train", tmp_dataset.gold_csv, "--images", tmp_dataset.images, "-o", model, "--seed", "3")
    assert result.exit_code == 0, result.output
    assert f"trained on {len(tmp_dataset.rows)} labelled rows, seed 3" in result.output
    assert load_model(model).ranker.booster_ is not None


# -- the typed reader options ---------------------------------------------------------------


def test_reader_options_default_to_the_settings_default() -> None:
    from specread.cli.options import ReaderOptions

    assert ReaderOptions().config() == ReaderConfig()


@pytest.mark.parametrize(("module", "command"), [("predict", "predict"), ("predict", "read"), ("serve", "serve")])
def test_each_commands_reader_option_defaults_as_the_options_object_does(module: str, command: str) -> None:
    """A command declares its reader options with the same defaults :class:`ReaderOptions` has."""
    import importlib
    import inspect

    from specread.cli.options import ReaderOptions

    fields = {f.name: f.default for f in dataclasses.fields(ReaderOptions)}
    params = inspect.signature(getattr(importlib.import_module(f"specread.cli.{module}"), command)).parameters
    shared = {name: p.default for name, p in params.items() if name in fields}
    assert {"preset", "model", "min_precision", "cache_dir"} <= set(shared)
    assert shared == {name: fields[name] for name in shared}
