"""Evaluation on the paper's benchmarks: scoring prediction files, running a guard over the benchmarks, reports."""

from guardreasoner.errors import EvaluationError
from guardreasoner.eval.benchmarks import BENCHMARKS, DATASETS, Benchmark, Dataset
from guardreasoner.eval.scoring import DatasetScore, EvalResult, Mode, TaskScore, evaluate_predictions

__all__ = [
    "BENCHMARKS",
    "DATASETS",
    "Benchmark",
    "Dataset",
    "DatasetScore",
    "EvalResult",
    "EvaluationError",
    "Mode",
    "TaskScore",
    "evaluate_predictions",
]
