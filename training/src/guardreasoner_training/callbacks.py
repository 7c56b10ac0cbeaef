"""The training stages' progress bar, as a Trainer callback (kept out of :mod:`.progress`: it imports transformers)."""

from __future__ import annotations

from typing import Any

from transformers import TrainerCallback

from guardreasoner_training.progress import progress_bar


class RichProgressCallback(TrainerCallback):
    """Shows optimizer steps and the last logged loss; replaces the Trainer's tqdm bar (``disable_tqdm=True``)."""

    def __init__(self, description: str):
        self.description = description
        self.progress: Any = None
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
