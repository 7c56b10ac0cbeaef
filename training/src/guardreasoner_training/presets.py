"""The paper's setups for the 1B, 3B and 8B guards.

All three share the hyperparameters (R-SFT: lr 5e-5, 3 epochs, cutoff 2048, effective batch 384; HS-DPO: lr 5e-6,
2 epochs, β 0.01, SFT weight 2.0, effective batch 256; cosine, no warm-up, bf16). The reference ran them on 4 GPUs
with DeepSpeed ZeRO-3: 6 sequences × 16 accumulation steps per GPU for R-SFT, 1 pair × 64 for HS-DPO. The
per-device batches below are the reference ones; the accumulation is derived from the number of processes, so the
effective batch stays the paper's on any number of GPUs.
"""

from __future__ import annotations

from dataclasses import dataclass

RSFT_EFFECTIVE_BATCH = 384
HSDPO_EFFECTIVE_BATCH = 256


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
    import os

    return int(os.environ.get("WORLD_SIZE", "1"))
