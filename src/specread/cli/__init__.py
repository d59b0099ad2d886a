"""Command line: ``specread --help``.

Commands parse their options, build settings and call library functions; they
live by subject in this package (:mod:`~specread.cli.predict`,
:mod:`~specread.cli.train`, :mod:`~specread.cli.data`,
:mod:`~specread.cli.serve`, :mod:`~specread.cli.vlm`), their shared options in
:mod:`~specread.cli.options`. Every command is registered here, wrapped in the
one error handler (:func:`~specread.cli.errors.cli_errors`): a bad input ends
in one ``error:`` line and exit status 2.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from specread.cli import data, predict, review, serve, train, vlm
from specread.cli.errors import cli_errors
from specread.version import __version__

__all__ = ["app", "main"]

app = typer.Typer(
    help="Read product specifications (weight, volume, voltage, wattage, dimensions) off product images.",
    no_args_is_help=True,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    """Eager ``--version``: answered before any command is parsed, so it works with none given."""
    if value:
        typer.echo(f"specread {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print specread's version and exit."),
    ] = False,
) -> None:
    """Options before any command (only ``--version``); the app's help text is the ``Typer(help=...)`` above."""


for _command in (
    predict.predict,
    predict.evaluate,
    predict.check,
    predict.read,
    train.priors,
    train.train,
    data.example,
    serve.serve,
    review.review,
    data.download,
    data.clean,
    data.eda,
    vlm.finetune,
):
    app.command()(cli_errors()(_command))


def main() -> None:  # pragma: no cover
    sys.exit(app())
