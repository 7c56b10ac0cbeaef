"""The progress bar the command lines draw (``guardreasoner`` and ``guardreasoner-train``)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


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
        TextColumn(description),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        *extra_columns,
        console=console if console is not None else Console(stderr=True),
    )
