"""The Python examples of the README and the docs site run as written (doctest), with the real OCR engine.

Every ```python block holding ``>>>`` prompts in README.md or docs/**/*.md is collected, so an
example keeps running wherever a page moves it.
"""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
_PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def python_examples(page: Path) -> str:
    """The page's ```python blocks with prompts, one after another (a blank line ends each block's output)."""
    blocks = _PYTHON_BLOCK.findall(page.read_text(encoding="utf-8"))
    return "\n\n".join(b for b in blocks if ">>>" in b)


def _doctest(page: Path) -> doctest.DocTest:
    name = page.relative_to(ROOT).as_posix()
    return doctest.DocTestParser().get_doctest(python_examples(page), {}, name, str(page), 0)


EXAMPLE_PAGES = [p for p in PAGES if python_examples(p)]


def test_examples_are_collected() -> None:
    # The reader examples (build_reader, read, presets, a refused setting) are at least ten prompts.
    assert sum(len(_doctest(p).examples) for p in EXAMPLE_PAGES) >= 10


def test_collector_finds_only_prompted_python_blocks(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "text\n\n```python\n>>> 1 + 1\n2\n\n```\n\n```bash\n>>> not python\n```\n\n```python\nx = 1\n```\n",
        encoding="utf-8",
    )
    assert python_examples(page) == ">>> 1 + 1\n2\n\n"


@pytest.mark.slow
@pytest.mark.parametrize("page", EXAMPLE_PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_page_examples_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the examples write label.png
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(_doctest(page))
    assert runner.summarize(verbose=False).failed == 0


def test_public_names_have_docstrings() -> None:
    # The API reference renders these (docs/reference.md); an undocumented name would render empty.
    import inspect

    import specread

    missing = []
    for name in specread.__all__:
        obj = getattr(specread, name)
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue  # data (PRESETS, __version__): documented where it is assigned
        members = {name: obj} | {
            f"{name}.{m}": v
            for m, v in vars(obj).items()
            if inspect.isclass(obj) and not m.startswith("_") and (inspect.isfunction(v) or isinstance(v, property))
        }
        missing += [qual for qual, member in members.items() if not inspect.getdoc(member)]
    assert not missing, f"public names without a docstring: {missing}"


def test_package_docstrings_run() -> None:
    import specread
    import specread.settings

    for module in (specread, specread.settings):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.attempted > 0 and result.failed == 0, module.__name__
