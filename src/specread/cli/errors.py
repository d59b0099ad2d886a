"""The CLI's one error wrapper: an input error becomes one ``error:`` line and exit status 2.

:func:`cli_errors` decides what counts as an input error: specread's own
errors, a refused value (``ValueError``: an unknown name, a setting out of
range), a failed file operation, and a module of an optional extra that is
not installed. Anything else keeps its traceback: it is a bug. It is applied
once to every command, where :mod:`specread.cli` registers them.

:func:`resumable` is for the long commands (``predict``, ``train``): Ctrl-C and
SIGTERM stop them the same way, with a line that says how to resume and the
shell's status for the signal (130, 143).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from importlib.metadata import PackageNotFoundError, requires

import typer

from specread.cli.console import say
from specread.errors import SpecreadError
from specread.lifeline import exit_status, sigterm_as_interrupt

__all__ = ["cli_errors", "extra_for", "fail", "os_error_message", "resumable"]

_EXTRA_REQUIREMENT = re.compile(r"""^\s*([A-Za-z0-9][A-Za-z0-9._-]*).*;.*extra\s*==\s*['"]([\w-]+)['"]""")


def fail(message: str) -> typer.Exit:
    """Print ``error: message`` and return the exit (status 2) for the caller to raise."""
    say("[bold red]error:[/]", message)
    return typer.Exit(code=2)


def os_error_message(exc: OSError) -> str:
    """One line for a failed file operation: the OS reason and the path, no traceback."""
    if exc.strerror and exc.filename:
        return f"{exc.strerror}: {exc.filename}"
    return exc.strerror or str(exc)


@cache
def _extras() -> dict[str, str]:
    """Top-level module -> the specread extra that installs it, from the installed package's metadata.

    Read rather than written down here, so the hint follows ``pyproject.toml``; the dev extra is
    left out (no command needs it). A distribution is matched by its name with ``-`` as ``_``.
    """
    try:
        requirements = requires("specread") or []
    except PackageNotFoundError:  # pragma: no cover - a source tree that is not installed
        return {}
    found: dict[str, str] = {}
    for requirement in requirements:
        match = _EXTRA_REQUIREMENT.match(requirement)
        if match and match.group(2) != "dev":
            found.setdefault(match.group(1).lower().replace("-", "_"), match.group(2))
    return found


def extra_for(exc: ImportError) -> str | None:
    """The extra that installs the module whose absence caused ``exc`` (or an error it was raised from)."""
    seen: BaseException | None = exc
    while seen is not None:
        name = getattr(seen, "name", None)
        if isinstance(seen, ImportError) and name:
            return _extras().get(name.split(".")[0].lower())
        seen = seen.__cause__
    return None


@contextmanager
def cli_errors() -> Iterator[None]:
    """Turn an input error into ``error: <message>`` and exit status 2, without a traceback.

    * :class:`~specread.errors.SpecreadError` (bad CSV, missing file, unknown entity...): its message;
    * ``ValueError``: a value a setting or a library call refused (unknown name, out of range);
    * ``OSError`` (a folder that is a file, a full disk, no permission): the reason and the path;
    * ``ImportError`` of a module an extra installs: ``pip install 'specread[extra]'``.

    Works as a context manager and as a decorator.
    """
    try:
        yield
    except (SpecreadError, ValueError) as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise fail(os_error_message(exc)) from None
    except ImportError as exc:
        extra = extra_for(exc)
        if extra is None:
            raise
        hint = f"pip install 'specread[{extra}]'"
        raise fail(str(exc) if hint in str(exc) else f"this needs the '{extra}' extra: {hint} ({exc})") from None


@contextmanager
def resumable(how: str) -> Iterator[None]:
    """Ctrl-C or SIGTERM in the block: unwind (output flushed, workers stopped), say ``how`` to resume, exit 130/143.

    SIGTERM raises the same ``KeyboardInterrupt`` as Ctrl-C (:func:`specread.lifeline.sigterm_as_interrupt`),
    so whatever a run does to stop cleanly on Ctrl-C it does for SIGTERM too.
    """
    try:
        with sigterm_as_interrupt():
            yield
    except KeyboardInterrupt as exc:
        status = exit_status(exc)
        say("[bold yellow]interrupted[/]", f"({'SIGTERM' if status == 143 else 'Ctrl-C'}): {how}")
        raise typer.Exit(code=status) from None


def leave_stuck_workers() -> None:
    """End the process now when a worker could not be ended (a read stuck in the kernel on a hung mount).

    The run's output is complete and synced by then, but the interpreter's exit would wait for that
    worker forever; its image is already listed as failed (read timed out), so nothing is lost.
    """
    import os
    import sys

    from specread.batch.pool import stuck_workers

    stuck = stuck_workers()
    if stuck:
        say(
            "[yellow]warning[/]",
            f"{stuck} worker(s) stuck in a read the system cannot interrupt (a hung mount?); the output is "
            "complete: exiting without waiting for them",
        )
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
