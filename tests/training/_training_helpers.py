"""Helpers shared by the training tests (imported by module name; the test folders are not packages)."""

from __future__ import annotations

from pathlib import Path

from guardreasoner.prompt import INSTRUCTION, build_input
from guardreasoner.testing import TINY_GUARD_CASES
from guardreasoner_training.records import TrainRecord


def case_records() -> list[TrainRecord]:
    """The tiny guard's five conversations as GuardReasonerTrain records (short outputs)."""
    return [
        TrainRecord(INSTRUCTION, build_input(case.prompt, case.response), case.output, f"case-{index}")
        for index, case in enumerate(TINY_GUARD_CASES)
    ]


def cpu_args(output_dir: Path | str, **overrides) -> dict:
    """Training arguments for a tiny model on two CPU cores."""
    args = dict(
        output_dir=str(output_dir),
        bf16=False,
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        disable_tqdm=True,
        activation_checkpointing=False,
        dataloader_num_workers=0,
        seed=0,
        logging_steps=1,
    )
    args.update(overrides)
    return args
