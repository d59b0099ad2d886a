"""The benchmarks are a package (issue 21): shared helpers are public, nobody edits ``sys.path``.

Scripts that import each other's private helpers break silently when one is renamed, and tests that
put ``benchmarks/`` on ``sys.path`` import ``common`` or ``hostile`` as top-level names that can
shadow anything. Both are checked on the source, so a new script or test that slips is caught.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from benchmarks.common import mean_sd, over_repeats, score_summary

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
MODULES = sorted(p.stem for p in BENCH.glob("*.py") if p.stem != "__init__")


def _imports(path: Path) -> list[tuple[str, str]]:
    """``(module, name)`` for every ``from module import name`` in ``path``, function-level ones too."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [(n.module or "", a.name) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names]


def _edits_sys_path(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return any(
        isinstance(n, ast.Attribute) and n.attr == "path" and isinstance(n.value, ast.Name) and n.value.id == "sys"
        for n in ast.walk(tree)
        if isinstance(n, ast.Attribute)
    )


@pytest.mark.parametrize("name", MODULES)
def test_every_benchmark_imports_as_part_of_the_package(name: str) -> None:
    module = importlib.import_module(f"benchmarks.{name}")
    assert Path(module.__file__).parent == BENCH


@pytest.mark.parametrize("path", sorted(BENCH.glob("*.py")) + sorted((ROOT / "tests").glob("test_*.py")), ids=str)
def test_no_private_benchmark_helper_is_imported(path: Path) -> None:
    private = [
        f"{m}.{n}"
        for m, n in _imports(path)
        if (m == "benchmarks" or m.startswith("benchmarks.") or m in MODULES) and n.startswith("_")
    ]
    assert not private, f"{path.name} imports private benchmark helpers: {private}"


@pytest.mark.parametrize("path", sorted(BENCH.glob("*.py")), ids=lambda p: p.name)
def test_no_benchmark_imports_a_sibling_as_a_top_level_module(path: Path) -> None:
    """``from common import x`` works only with ``benchmarks/`` on ``sys.path``; the package name is required."""
    bare = [m for m, _ in _imports(path) if m.split(".")[0] in MODULES]
    assert not bare, f"{path.name} imports {bare} as top-level modules"
    assert not _edits_sys_path(path), f"{path.name} edits sys.path"


def test_tests_load_benchmarks_without_editing_sys_path() -> None:
    users = [p for p in (ROOT / "tests").glob("test_*.py") if "benchmarks" in p.read_text(encoding="utf-8")]
    assert users, "no test imports the benchmarks: the check below would pass vacuously"
    assert [p.name for p in users if _edits_sys_path(p)] == []


def test_over_repeats_is_mean_and_sd_of_each_score() -> None:
    reports = [
        {"f1": 0.5, "weighted_f1": 0.4, "per_entity": {"width": {"accuracy": 0.2}}},
        {"f1": 0.7, "weighted_f1": 0.6, "per_entity": {"width": {"accuracy": 0.4}}},
    ]
    assert over_repeats(reports) == {
        "f1": {"mean": 0.6, "sd": 0.1},
        "weighted_f1": {"mean": 0.5, "sd": 0.1},
        "width": {"mean": 0.3, "sd": 0.1},
    }


def test_score_summary_averages_an_entity_over_the_runs_that_hold_it() -> None:
    scores = [
        {"f1": 0.5, "weighted_f1": 0.5, "per_entity_f1": {"width": 0.2, "voltage": 1.0}},
        {"f1": 0.5, "weighted_f1": 0.5, "per_entity_f1": {"width": 0.4}},
    ]
    summary = score_summary(scores)
    assert summary["per_entity_f1"] == {"voltage": mean_sd([1.0]), "width": mean_sd([0.2, 0.4])}
    assert summary["per_entity_f1"]["width"] == {"mean": 0.3, "sd": 0.1}
