"""Choosing per-task thresholds on a labelled set: the most recall at a false-positive rate the user accepts.

``calibrate(scores, labels, target_fpr=0.01)`` takes, per label field, the guard's scores and the gold labels
of the same conversations, picks each task's lowest threshold whose false-positive rate on the set is at most
``target_fpr``, and (with ``path=``) writes the thresholds file that ``GuardReasoner(thresholds=path)`` reads.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from guardreasoner.eval import EvaluationError
from guardreasoner.eval.metrics import operating_point
from guardreasoner.scores import TASKS
from guardreasoner.thresholds import write_thresholds


@dataclass(frozen=True)
class TaskCalibration:
    threshold: float
    fpr: float
    """The false-positive rate the threshold gives on the calibration set (a fraction)."""
    recall: float
    positives: int
    negatives: int
    unscored: int
    """Conversations left out: no score (see their verdicts' ``score_status``) or no gold label."""


@dataclass(frozen=True)
class Calibration:
    target_fpr: float
    tasks: dict[str, TaskCalibration]

    @property
    def thresholds(self) -> dict[str, float]:
        return {field: task.threshold for field, task in self.tasks.items()}

    def to_dict(self) -> dict:
        return {"target_fpr": self.target_fpr, "tasks": {field: asdict(t) for field, t in self.tasks.items()}}


def calibrate(
    scores: Mapping[str, Sequence[float | None]],
    labels: Mapping[str, Sequence[str | None]],
    target_fpr: float = 0.01,
    *,
    path: str | os.PathLike | None = None,
) -> Calibration:
    """Per label field, the lowest threshold with a false-positive rate of at most ``target_fpr``.

    ``scores[field][i]`` is conversation ``i``'s score (None: none) and ``labels[field][i]`` its gold label
    (``harmful``/``unharmful``, ``refusal``/``compliance``; None: unlabelled). Raises
    :class:`EvaluationError` when a task cannot be calibrated (one class missing, or no threshold meets the
    target); writes the thresholds file to ``path`` when given.
    """
    if not 0.0 <= target_fpr < 1.0:
        raise EvaluationError(f"The target false-positive rate must be in [0, 1), got {target_fpr}.")
    if set(scores) != set(labels):
        raise EvaluationError(f"scores has fields {sorted(scores)} but labels has {sorted(labels)}.")
    tasks = {}
    for field in scores:
        if field not in TASKS:
            raise EvaluationError(f"Unknown label field {field!r}; the fields are {sorted(TASKS)}.")
        tasks[field] = _calibrate_task(field, scores[field], labels[field], target_fpr)
    calibration = Calibration(target_fpr, tasks)
    if path is not None:
        write_thresholds(path, calibration.thresholds, calibration.to_dict())
    return calibration


def _calibrate_task(
    field: str, scores: Sequence[float | None], labels: Sequence[str | None], target_fpr: float
) -> TaskCalibration:
    task = TASKS[field]
    if len(scores) != len(labels):
        raise EvaluationError(f"{field}: {len(scores)} scores but {len(labels)} gold labels.")
    kept = []
    for index, (score, label) in enumerate(zip(scores, labels)):
        if label is not None and label not in (task.positive, task.negative):
            raise EvaluationError(
                f"{field}: gold label {label!r} at {index}; expected {task.positive!r} or {task.negative!r}."
            )
        if score is not None and label is not None:
            kept.append((label == task.positive, score))
    positives = sum(positive for positive, _ in kept)
    negatives = len(kept) - positives
    if not positives or not negatives:
        raise EvaluationError(
            f"{field}: calibration needs scored conversations of both classes; it has {positives} "
            f"{task.positive} and {negatives} {task.negative} (out of {len(scores)})."
        )
    point = operating_point([p for p, _ in kept], [s for _, s in kept], target_fpr)
    if point is None:
        raise EvaluationError(
            f"{field}: no threshold keeps the false-positive rate at or below {target_fpr:g} on this set "
            f"({negatives} {task.negative}): its highest-scored conversations are {task.negative}. Use a larger "
            "target or a larger set."
        )
    return TaskCalibration(
        point.threshold, point.fpr, point.recall, positives, negatives, len(scores) - len(kept)
    )
