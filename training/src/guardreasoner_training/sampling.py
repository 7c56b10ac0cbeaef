"""Stage 4: k samples per training prompt from the R-SFT model, through any core engine.

The paper draws 4 samples per prompt at temperature 0.7 (top-p 0.95, up to 2048 new tokens) with vLLM. Prompts
are the training prompts themselves (``instruction + "\\n" + input``), rendered by the engine in the format the
model was trained with (the engine reads ``guardreasoner.json``). One JSONL line per prompt, appended as each
batch finishes, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from guardreasoner.engines.base import Engine, GenerationConfig
from guardreasoner.errors import EngineError

from guardreasoner_training.flags import flag_field
from guardreasoner_training.records import TrainRecord, iter_jsonl_tolerant, open_for_append


@dataclass(frozen=True)
class SamplingConfig:
    """The paper's sampling settings; ``sample``'s flags come from these fields."""

    k: int = flag_field(4, "Samples per prompt (paper: 4).")
    temperature: float = flag_field(0.7, "Sampling temperature (paper: 0.7).")
    top_p: float = flag_field(0.95, "Nucleus sampling (paper: 0.95).")
    max_new_tokens: int = flag_field(2048, "Output length limit (paper: 2048).")
    batch_size: int = flag_field(64, "Prompts per engine call (and per write).")
    seed: int | None = flag_field(0, "Sampling seed.")

    def generation(self) -> GenerationConfig:
        return GenerationConfig(
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            seed=self.seed,
            n=self.k,
        )


def done_ids(path: Path) -> set[str]:
    """Ids already sampled in an earlier, interrupted run."""
    return {str(row["id"]) for row in iter_jsonl_tolerant(path) if "id" in row}


def sample_records(
    engine: Engine,
    records: list[TrainRecord],
    out_path: str | Path,
    config: SamplingConfig | None = None,
    *,
    model_name: str | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> int:
    """Sample ``config.k`` outputs (the paper's settings when None) for each record not yet in ``out_path``;
    returns how many were sampled now."""
    config = config or SamplingConfig()
    if config.k < 1:
        raise ValueError(f"k must be at least 1, got {config.k}.")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    finished = done_ids(out_path)
    todo = [record for record in records if record.id not in finished]
    generation = config.generation()
    written = 0
    with open_for_append(out_path) as handle:
        for start in range(0, len(todo), config.batch_size):
            batch = todo[start : start + config.batch_size]
            results = engine.generate([record.prompt for record in batch], generation)
            for record, result in zip(batch, results, strict=True):
                samples = list(result.samples) if result.samples else [result.text]
                if len(samples) != config.k:
                    raise EngineError(
                        f"The {engine.name} engine returned {len(samples)} samples for a prompt, not {config.k}; "
                        "it must honour GenerationConfig.n."
                    )
                row: dict[str, Any] = {**record.as_row(), "samples": samples}
                if model_name:
                    row["model"] = model_name
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            handle.flush()
            written += len(batch)
            if on_batch is not None:
                on_batch(len(batch))
    return written
