"""What the command lines (``guardreasoner``, ``guardreasoner-train``) print, and the exit statuses they return.

Errors are one plain line, ``error: ...``, on stderr: never rich markup (a user's, a model's or an exception's
text may hold brackets), never wrapped to the terminal's width, so scripts and tests can read them on any
terminal. Progress draws on stderr, so results on stdout stay clean.
"""

from __future__ import annotations

import sys
from enum import IntEnum
from typing import NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = [
    "WIDE",
    "ExitCode",
    "check_positive",
    "fail",
    "print_error",
    "progress_bar",
    "run_app",
    "spinner",
    "stderr_console",
]


WIDE = 160
"""The width tables are drawn at when the output is not a terminal (a pipe, a file, a test)."""


class ExitCode(IntEnum):
    """The exit statuses of ``guardreasoner classify`` (``eval`` uses OK and USAGE only)."""

    SAFE = 0
    """Decided safe by the model (``--input``: every conversation)."""
    HARMFUL = 1
    """Decided harmful by the model (``--input``: at least one conversation, none undecided)."""
    USAGE = 2
    """A usage or input error: nothing was classified."""
    UNDECIDED = 3
    """The model could not decide (engine error, timeout, unparseable output) and the policy did
    (``--input``: at least one such conversation)."""


def stderr_console() -> Console:
    """A console on stderr that prints text as given: no markup, no highlighting."""
    return Console(stderr=True, markup=False, highlight=False)


def print_error(message: str) -> None:
    """``error: {message}`` on stderr, on one line (red on a terminal)."""
    message = " ".join(str(message).split())
    typer.echo(typer.style("error:", fg="red") + " " + message, err=True)


def fail(message: str, code: int = ExitCode.USAGE) -> NoReturn:
    """Print the error line and end the command with ``code``."""
    print_error(message)
    raise typer.Exit(int(code))


def check_positive(**options: int | None) -> None:
    """Each option given must be 1 or more."""
    for name, value in options.items():
        if value is not None and value < 1:
            fail(f"--{name.replace('_', '-')} {value}: give a whole number of 1 or more.")


def run_app(app: typer.Typer) -> NoReturn:
    """Run a typer app with click's own usage errors (bad option, missing value) as plain error lines too."""
    try:
        code = app(standalone_mode=False)
    except typer.Abort:
        print_error("aborted.")
        code = 130
    except typer.TyperException as exc:  # click's usage errors (typer vendors click)
        if type(exc).__name__ == "NoArgsIsHelpError":  # a bare command: its help, as click prints it
            typer.echo(exc.format_message(), err=True)
            sys.exit(ExitCode.USAGE)
        context = getattr(exc, "ctx", None)
        hint = f" (see '{context.command_path} --help')" if context is not None else ""
        print_error(exc.format_message() + hint)
        code = getattr(exc, "exit_code", ExitCode.USAGE)
    sys.exit(code if isinstance(code, int) else 0)


def progress_bar(
    *extra_columns: ProgressColumn,
    description: str = "{task.description}",
    console: Console | None = None,
) -> Progress:
    """A :class:`rich.progress.Progress` showing each task's description, a bar, done/total, time elapsed
    and time remaining, then ``extra_columns``.

    ``description`` is the first column's format (``"{task.description:<22}"`` aligns several bars). The bar
    draws on ``console``; by default a console on stderr, so that it never mixes with results on stdout.
    """
    return Progress(
        TextColumn(description, markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        *extra_columns,
        console=console if console is not None else stderr_console(),
    )


def spinner(console: Console | None = None) -> Progress:
    """A spinner with the time elapsed, for work of unknown length (one generation); shown on a terminal only
    and gone when done."""
    console = console if console is not None else stderr_console()
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}", markup=False),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
