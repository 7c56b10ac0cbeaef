"""Rich progress for the CLI: a bar for record stages and a Trainer callback for the training stages."""

from __future__ import annotations

from typing import Any

from guardreasoner.cli.progress import progress_bar as _progress_bar
from rich.console import Console
from rich.progress import Progress, TextColumn
from transformers import TrainerCallback

console = Console(stderr=True)


def progress_bar() -> Progress:
    """The core CLI's bar with one more column, ``info`` (a task field every task must set, "" for none)."""
    return _progress_bar(TextColumn("{task.fields[info]}"), console=console)


class RichProgressCallback(TrainerCallback):
    """Shows optimizer steps and the last logged loss; replaces the Trainer's tqdm bar (``disable_tqdm=True``)."""

    def __init__(self, description: str):
        self.description = description
        self.progress: Progress | None = None
        self.task: Any = None

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.progress = progress_bar()
            self.progress.start()
            self.task = self.progress.add_task(self.description, total=state.max_steps, info="")

    def on_step_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress.update(self.task, completed=state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.progress is not None and logs and "loss" in logs:
            self.progress.update(self.task, info=f"loss {logs['loss']:.4f}")

    def on_train_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
