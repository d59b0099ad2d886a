"""Where the CLI writes: messages, warnings and progress bars on stderr (results go to stdout)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from specread.progress import make_progress

__all__ = ["console", "progress_bar", "say", "setup_logging", "warn"]

console = Console(stderr=True)

Tick = Callable[..., None]
"""``tick(done, total, description=None)``: move the bar (and relabel it)."""


def setup_logging(verbose: bool = False) -> None:
    """Log specread's warnings (and INFO with ``verbose``) through the console."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False)],
        force=True,
    )


def say(label: str, message: str) -> None:
    """``label message`` on one line; ``label`` is Rich markup, ``message`` is printed as it is."""
    console.print(label, escape(message))


def warn(message: str) -> None:
    say("[yellow]warning:[/]", message)


@contextmanager
def progress_bar(description: str, total: int | None = None) -> Iterator[Tick]:
    """A progress bar (shown on a terminal) and the callback that moves it."""
    with make_progress(console) as bar:
        task = bar.add_task(description, total=total)

        def tick(done: int, total: int, description: str | None = None) -> None:
            bar.update(task, completed=done, total=total, **({"description": description} if description else {}))

        yield tick
