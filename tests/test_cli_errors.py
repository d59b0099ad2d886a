"""The CLI's one error wrapper: a bad input is one ``error:`` line and exit status 2, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import CliInvoke, FakeEngine, TinyDataset, write_csv
from specread.cli.errors import cli_errors, extra_for

COMMANDS = ("predict", "evaluate", "check", "clean", "eda", "priors", "train", "download")
"""Every command that reads a CSV given on its command line."""


def _args(command: str, csv: Path, ds: TinyDataset, out: Path) -> list[str | Path]:
    preds = write_csv(ds.root / "preds.csv", ["index", "prediction"], [(r[0], "") for r in ds.rows])
    return {
        "predict": ["predict", csv, "--images", ds.images, "-o", out],
        "evaluate": ["evaluate", csv, ds.gold_csv],
        "check": ["check", preds, "--input", csv],
        "clean": ["clean", csv, "-o", out],
        "eda": ["eda", csv, "-o", out],
        "priors": ["priors", csv, "-o", out],
        "train": ["train", csv, "--images", ds.images, "-o", out],
        "download": ["download", csv, "--images", out],
    }[command]


def _latin1(folder: Path) -> Path:
    path = folder / "latin1.csv"
    path.write_bytes(
        b"index,image_link,group_id,entity_name,entity_value,prediction\n"
        b"0,https://x.invalid/a.jpg,caf\xe9,width,1.0 metre,1.0 metre\n"
    )
    return path


# What the CSV argument is, and what the one line must say.
CASES = {
    "latin1": (_latin1, "line 2: not UTF-8 text (byte 0xe9 in column group_id)"),
    "missing": (lambda folder: folder / "nope.csv", "file not found"),
    "folder": (lambda folder: (folder / "a-folder.csv").mkdir() or folder / "a-folder.csv", "Is a directory"),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_reports_a_bad_csv_in_one_line(
    cli: CliInvoke, tmp_dataset: TinyDataset, fake_rapidocr: FakeEngine, tmp_path: Path, command: str, case: str
) -> None:
    make, reason = CASES[case]
    csv = make(tmp_path)
    out = tmp_path / "out" / "result"
    result = cli(*_args(command, csv, tmp_dataset, out))
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ") and str(csv) in lines[0] and reason in lines[0], lines[0]
    assert "Traceback" not in result.output
    assert not out.exists()
    assert fake_rapidocr.calls == 0


@pytest.mark.parametrize("command", ["clean", "eda", "priors", "train"])
def test_an_output_that_cannot_be_written_is_one_line(
    cli: CliInvoke, tmp_dataset: TinyDataset, fake_rapidocr: FakeEngine, tmp_path: Path, command: str
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    labels = tmp_dataset.gold_csv
    result = cli(*_args(command, labels, tmp_dataset, blocker / "out"))
    assert result.exit_code == 2, result.output
    (line,) = [line for line in result.output.splitlines() if line.strip()]
    assert line.startswith("error: ") and "a-file" in line and "Traceback" not in result.output
    assert fake_rapidocr.calls == 0  # train checks its output before any OCR


def test_a_missing_extra_names_the_extra(
    cli: CliInvoke, tmp_dataset: TinyDataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)
    monkeypatch.setitem(__import__("sys").modules, "matplotlib.pyplot", None)
    result = cli("eda", tmp_dataset.gold_csv, "-o", tmp_path / "eda.html")
    assert result.exit_code == 2, result.output
    assert "pip install 'specread[eda]'" in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_extra_for_follows_the_cause_and_ignores_other_modules() -> None:
    try:
        try:
            raise ModuleNotFoundError("No module named 'ray'", name="ray")
        except ImportError as exc:
            raise ImportError("--runner ray needs Ray") from exc
    except ImportError as exc:
        assert extra_for(exc) == "ray"
    assert extra_for(ModuleNotFoundError("x", name="torch.nn")) == "vlm"
    assert extra_for(ModuleNotFoundError("x", name="no_such_module")) is None
    with pytest.raises(ModuleNotFoundError), cli_errors():  # not an extra's: a bug, traceback kept
        raise ModuleNotFoundError("x", name="no_such_module")
    with pytest.raises(KeyError), cli_errors():
        raise KeyError("a bug")
