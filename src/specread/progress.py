"""One progress-bar style for every long job (predict, download, train, fine-tune).

Bars go to the given console (stderr for the CLI) and are shown on a terminal,
or anywhere when ``SPECREAD_PROGRESS=1`` (CI logs, notebooks); ``console=None``
means a library caller asked for silence.
"""

from __future__ import annotations

import os

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

__all__ = ["make_progress"]


def make_progress(console: Console | None) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=console is None or not (console.is_terminal or os.environ.get("SPECREAD_PROGRESS") == "1"),
    )
