"""Reading and writing the paper's file layouts.

Benchmark files are JSON arrays of ``{"instruction", "input", "output"}``; prediction files are
``{DIR}/{Dataset}/generated_predictions.jsonl`` with records ``{"prompt", "label", "predict"}`` (extra keys
allowed), as the paper's generation script writes them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from guardreasoner.errors import EvaluationError, PromptFormatError
from guardreasoner.eval.benchmarks import Dataset
from guardreasoner.prompt import join_prompt
from guardreasoner.prompt import split_input as split_prompt_input

PREDICTIONS_FILE = "generated_predictions.jsonl"


def predictions_path(root: str | os.PathLike[str], dataset: Dataset) -> Path:
    return Path(root) / dataset.name / PREDICTIONS_FILE


def benchmark_path(benchmark_dir: str | os.PathLike[str], dataset: Dataset) -> Path:
    return Path(benchmark_dir) / dataset.file


def read_predictions(path: Path) -> list[dict]:
    """Every record of a prediction file, in order (blank lines skipped, as pandas does)."""
    records = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise EvaluationError(
                    f"{path} line {number} is not valid JSON ({exc.msg}). If a run was interrupted while writing "
                    "it, rerun the evaluation with the same --output to resume (the partial line is replaced), "
                    "or delete that line."
                ) from exc
            if not isinstance(record, dict):
                raise EvaluationError(
                    f"{path} line {number} is not a JSON object with prompt, label and predict keys."
                )
            records.append(record)
    return records


def load_benchmark(path: Path) -> list[dict]:
    """A benchmark file's records."""
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise EvaluationError(
            f"{path} is not valid JSON ({exc.msg}); download it again with: guardreasoner data download"
        ) from exc
    if not isinstance(records, list) or not all(isinstance(record, dict) for record in records):
        raise EvaluationError(f"{path} must be a JSON array of objects (the paper's benchmark format).")
    return records


def raw_prompt(record: dict) -> str:
    """The exact text the paper's models were run on: ``instruction + "\\n" + input``."""
    return join_prompt(record["instruction"], record["input"])


def split_input(text: str) -> tuple[str, str | None]:
    """The user prompt and the AI response (None where the benchmark shows ``None``) of an ``input`` field."""
    try:
        return split_prompt_input(text)
    except PromptFormatError as exc:
        raise EvaluationError(f"A benchmark input cannot be read: {exc}") from exc
