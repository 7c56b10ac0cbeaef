"""Stage 3, R-SFT: reasoning supervised fine-tuning, with the loss on the answer (the output) only.

:class:`RSFTConfig` is trl's :class:`~trl.SFTConfig` with the paper's defaults and this package's model options;
:class:`RSFTTrainer` is trl's :class:`~trl.SFTTrainer` that truncates to ``cutoff_len`` itself (so padding-free
batches can be cut too), prepares the tokenizer for the prompt format, and leaves a model card in every saved
directory so the core runs the model the way it was trained.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from guardreasoner.prompt import encode_prompt
from trl import SFTConfig, SFTTrainer

from guardreasoner_training.errors import TrainingDataError
from guardreasoner_training.formats import sft_example, tokenize_answer
from guardreasoner_training.modeling import ModelOptions, StageTrainer, filter_counted
from guardreasoner_training.presets import RSFTHyperparameters
from guardreasoner_training.records import TrainRecord


@dataclass
class RSFTConfig(RSFTHyperparameters, SFTConfig, ModelOptions):
    """trl's SFTConfig with the paper's R-SFT settings as defaults (:class:`~guardreasoner_training.presets.RSFTHyperparameters`).

    The paper: learning rate 5e-5, 3 epochs, cosine schedule without warm-up, cutoff 2048 tokens, effective
    batch 384 (4 GPUs × 6 × 16 accumulation), bf16. See :mod:`guardreasoner_training.presets` for the per-size
    batch layouts. ``max_length`` is not used: ``cutoff_len`` truncates, also for padding-free batches.
    """

    def __post_init__(self) -> None:
        if self.max_length is not None:
            self.cutoff_len, self.max_length = self.max_length, None
        if self.packing and self.cutoff_len is not None:
            self.max_length = self.cutoff_len  # packing rows are max_length long
        super().__post_init__()
        self.check_model_options()


def build_sft_dataset(records: list[TrainRecord]) -> Any:
    """A prompt-completion dataset (plain text) from GuardReasonerTrain records."""
    from datasets import Dataset

    return Dataset.from_list([sft_example(record) for record in records])


def tokenize_sft_dataset(
    dataset: Any, tokenizer: Any, prompt_format: str, *, num_proc: int | None = None
) -> Any:
    """``input_ids`` and ``completion_mask`` (1 on the answer) from ``prompt``/``completion`` text."""

    def encode(example: dict[str, Any]) -> dict[str, Any]:
        prompt_ids = encode_prompt(tokenizer, example["prompt"], prompt_format)
        answer_ids = tokenize_answer(tokenizer, example["prompt"], example["completion"], prompt_format)
        return {
            "input_ids": prompt_ids + answer_ids,
            "completion_mask": [0] * len(prompt_ids) + [1] * len(answer_ids),
        }

    kwargs = {"num_proc": num_proc} if num_proc else {}
    return dataset.map(encode, remove_columns=list(dataset.column_names), **kwargs)


class RSFTTrainer(StageTrainer, SFTTrainer):
    """trl's SFTTrainer for R-SFT (see the module docstring)."""

    _tag_names = ["trl", "sft", "guardreasoner", "r-sft"]
    _stage = "rsft"
    config_class = RSFTConfig

    def _prepare_dataset(self, dataset, processing_class, args, packing, formatting_func, dataset_name):  # noqa: D401
        """Tokenize as the core's engines do, let trl build the labels, then truncate to ``cutoff_len``."""
        if "input_ids" not in (dataset.column_names or []):
            if not {"prompt", "completion"} <= set(dataset.column_names or []):
                raise TrainingDataError(
                    f"The {dataset_name} dataset needs 'prompt' and 'completion' columns (see build_sft_dataset), "
                    f"or 'input_ids' and 'completion_mask'; it has {dataset.column_names}."
                )
            dataset = tokenize_sft_dataset(
                dataset, processing_class, args.prompt_format, num_proc=args.dataset_num_proc
            )
        dataset = super()._prepare_dataset(
            dataset, processing_class, args, packing, formatting_func, dataset_name
        )
        cutoff = getattr(args, "cutoff_len", None)
        if cutoff is None or packing:
            return dataset
        return truncate_dataset(dataset, cutoff, num_proc=args.dataset_num_proc, name=dataset_name)


def truncate_dataset(dataset: Any, cutoff: int, *, num_proc: int | None = None, name: str = "train") -> Any:
    """Cut tokenized examples to ``cutoff`` tokens and drop those left with no answer token (with a warning
    that counts them)."""

    def cut(example: dict[str, Any]) -> dict[str, Any]:
        return {"input_ids": example["input_ids"][:cutoff], "labels": example["labels"][:cutoff]}

    kwargs = {"num_proc": num_proc} if num_proc else {}
    dataset = dataset.map(cut, **kwargs)
    return filter_counted(
        dataset,
        lambda example: any(label != -100 for label in example["labels"]),
        f"R-SFT {name} examples: their prompt alone takes cutoff_len={cutoff} tokens or more, leaving no answer "
        "token to learn (raise --cutoff-len to keep them)",
        **kwargs,
    )


def train_rsft(
    records: list[TrainRecord],
    model: str,
    config: RSFTConfig,
    *,
    eval_records: list[TrainRecord] | None = None,
    resume: bool | str | None = None,
    callbacks: list[Any] | None = None,
) -> Path:
    """Run R-SFT on prepared records and save a model the core can run; returns its directory."""
    trainer = RSFTTrainer(
        model,
        args=config,
        train_dataset=build_sft_dataset(records),
        eval_dataset=build_sft_dataset(eval_records) if eval_records else None,
        callbacks=callbacks,
    )
    return trainer.train_and_save(resume)
