"""The README's Python examples run as written (doctest), with the real OCR engine."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.slow
def test_use_from_python_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the examples write label.png
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Use from Python") : text.index("\n## ", text.index("## Use from Python") + 1)]
    test = doctest.DocTestParser().get_doctest(section, {}, "README: Use from Python", str(README), 0)
    assert len(test.examples) >= 10  # the section was found and parsed
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


def test_package_docstrings_run() -> None:
    import specread
    import specread.settings

    for module in (specread, specread.settings):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.attempted > 0 and result.failed == 0, module.__name__
