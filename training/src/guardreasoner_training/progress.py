"""Progress for ``guardreasoner-train``'s record stages: the core's bar with one more column (light: no torch).

The training stages' bar is :class:`guardreasoner_training.callbacks.RichProgressCallback`.
"""

from __future__ import annotations

from guardreasoner.terminal import progress_bar as _core_progress_bar
from guardreasoner.terminal import stderr_console
from rich.progress import Progress, TextColumn

console = stderr_console()


def progress_bar() -> Progress:
    """The core CLI's bar with one more column, ``info`` (a task field every task must set, "" for none)."""
    return _core_progress_bar(TextColumn("{task.fields[info]}", markup=False), console=console)
