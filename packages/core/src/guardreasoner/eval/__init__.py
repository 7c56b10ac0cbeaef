"""Evaluation on the paper's benchmarks: scoring prediction files, running a guard over the benchmarks, reports."""

from guardreasoner.eval.benchmarks import BENCHMARKS, DATASETS, Benchmark, Dataset, EvalTask
from guardreasoner.eval.errors import EvaluationError
from guardreasoner.eval.scoring import DatasetScore, EvalResult, Mode, TaskScore, evaluate_predictions

__all__ = [
    "BENCHMARKS",
    "DATASETS",
    "Benchmark",
    "Dataset",
    "DatasetScore",
    "EvalResult",
    "EvalTask",
    "EvaluationError",
    "Mode",
    "TaskScore",
    "evaluate_predictions",
]
