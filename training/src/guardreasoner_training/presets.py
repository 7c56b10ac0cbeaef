"""The paper's setups: the stages' hyperparameters, and the 1B, 3B and 8B guards' batch layouts.

All three sizes share the hyperparameters (R-SFT: lr 5e-5, 3 epochs, cutoff 2048, effective batch 384; HS-DPO: lr
5e-6, 2 epochs, β 0.01, SFT weight 2.0, effective batch 256; cosine, no warm-up, bf16). They are defined once here,
as the defaults of :class:`RSFTHyperparameters` and :class:`HSDPOHyperparameters`, which the stage configs
(:class:`~guardreasoner_training.rsft.RSFTConfig`, :class:`~guardreasoner_training.hsdpo.HSDPOConfig`) inherit and
``guardreasoner-train`` turns into its flags; this module imports neither torch nor trl, so ``--help`` is quick.

The reference ran on 4 GPUs with DeepSpeed ZeRO-3: 6 sequences × 16 accumulation steps per GPU for R-SFT, 1 pair
× 64 for HS-DPO. The per-device batches below are the reference ones; the accumulation is derived from the number
of processes, so the effective batch stays the paper's on any number of GPUs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from guardreasoner_training.flags import flag_field

RSFT_EFFECTIVE_BATCH = 384
HSDPO_EFFECTIVE_BATCH = 256
Stage = Literal["rsft", "hsdpo"]


@dataclass
class _Common:
    """What both stages share: the schedule, and activation checkpointing under its current name."""

    lr_scheduler_type: str = flag_field("cosine", "Learning-rate schedule (the paper's cosine).")
    warmup_steps: float = flag_field(0, "Warm-up steps (the paper uses none).")
    logging_steps: float = flag_field(5, "Log every N steps.")
    activation_checkpointing: bool | None = flag_field(
        True, "Recompute activations to save memory (trl's default, on)."
    )
    gradient_checkpointing: bool | None = flag_field(
        None, "transformers' deprecated name of activation_checkpointing (trl sets it; unset here)."
    )


@dataclass
class RSFTHyperparameters(_Common):
    """The paper's R-SFT settings (the defaults of ``RSFTConfig`` ahead of trl's ``SFTConfig``)."""

    learning_rate: float = flag_field(5e-5, "Peak learning rate (the paper's 5e-5).")
    num_train_epochs: float = flag_field(3.0, "Epochs (the paper's 3).", aliases=["--epochs"])
    completion_only_loss: bool | None = flag_field(
        True, "Loss on the answer (completion) only, not on the prompt."
    )
    cutoff_len: int | None = flag_field(
        2048,
        "Truncate prompt+answer to this many tokens (the paper's 2048); examples left with no answer "
        "token are dropped, and counted.",
    )
    max_length: int | None = flag_field(None, "Unused: see cutoff_len.")


@dataclass
class HSDPOHyperparameters(_Common):
    """The paper's HS-DPO settings (the defaults of ``HSDPOConfig`` ahead of trl's ``DPOConfig``)."""

    learning_rate: float = flag_field(5e-6, "Peak learning rate (the paper's 5e-6).")
    num_train_epochs: float = flag_field(2.0, "Epochs (the paper's 2).", aliases=["--epochs"])
    beta: float = flag_field(0.01, "DPO β (the paper's 0.01).")
    max_length: int | None = flag_field(
        2048,
        "Truncate prompt+answer to this many tokens (the paper's 2048); pairs whose prompt alone "
        "is as long are dropped, and counted.",
        aliases=["--cutoff-len"],
    )
    sft_weight: float = flag_field(
        2.0, "Weight of the SFT term on the chosen answer (the paper's pref_ftx 2.0)."
    )
    sft_normalization: str = flag_field(
        "sequence", "'sequence' (mean NLL per answer, LLaMA-Factory) or 'token' (over all tokens, trl)."
    )


@dataclass(frozen=True)
class Preset:
    name: str
    base_model: str
    rsft_per_device_batch: int = 6
    hsdpo_per_device_batch: int = 1
    gradient_checkpointing: bool = True


PRESETS: dict[str, Preset] = {
    "1b": Preset("1b", "meta-llama/Llama-3.2-1B"),
    "3b": Preset("3b", "meta-llama/Llama-3.2-3B"),
    "8b": Preset("8b", "meta-llama/Llama-3.1-8B"),
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name.lower()]
    except KeyError:
        raise ValueError(f"Unknown preset '{name}'; choose one of {', '.join(PRESETS)}.") from None


def accumulation_steps(effective_batch: int, per_device_batch: int, world_size: int) -> int:
    """Gradient accumulation that makes ``per_device_batch × world_size × steps == effective_batch``."""
    per_step = per_device_batch * world_size
    if per_step < 1 or effective_batch % per_step:
        raise ValueError(
            f"An effective batch of {effective_batch} is not a multiple of {per_device_batch} per device × "
            f"{world_size} processes; pick a per-device batch that divides {effective_batch // max(world_size, 1)}, "
            "or set --grad-accum yourself."
        )
    return effective_batch // per_step


def world_size() -> int:
    """Processes in this run (``WORLD_SIZE`` as set by accelerate/torchrun; 1 otherwise)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def batch_layout(
    preset: str,
    stage: Stage,
    *,
    per_device_batch: int | None = None,
    grad_accum: int | None = None,
    gradient_checkpointing: bool | None = None,
) -> dict[str, int | bool]:
    """The training arguments of ``stage``'s batch layout: the preset's, with any value given overriding it.

    The accumulation, unless given, reaches the paper's effective batch on this run's number of processes.
    """
    chosen = get_preset(preset)
    batch = per_device_batch or (
        chosen.rsft_per_device_batch if stage == "rsft" else chosen.hsdpo_per_device_batch
    )
    effective = RSFT_EFFECTIVE_BATCH if stage == "rsft" else HSDPO_EFFECTIVE_BATCH
    return {
        "per_device_train_batch_size": batch,
        "gradient_accumulation_steps": grad_accum or accumulation_steps(effective, batch, world_size()),
        "activation_checkpointing": chosen.gradient_checkpointing
        if gradient_checkpointing is None
        else gradient_checkpointing,
    }
