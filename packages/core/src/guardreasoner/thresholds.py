"""Per-task thresholds: scores turned into labels at an operating point the user chooses.

With a threshold ``t`` for a task, its label is the positive one (``harmful``, ``refusal``) when the score is
at least ``t``. Without thresholds the labels are greedy decoding's. A threshold that cannot decide (no score,
or a top-k bound on the wrong side of it) keeps greedy decoding's label and the verdict lists the field in
``threshold_fallbacks``.

The thresholds file (written by :func:`guardreasoner.eval.calibrate.calibrate`, read by
``GuardReasoner(thresholds=path)`` and the CLI) is JSON::

    {"thresholds": {"prompt_harmfulness": 0.42, "response_harmfulness": 0.7},
     "calibration": {"target_fpr": 0.01, ...}}

``thresholds`` maps label fields (``prompt_harmfulness``, ``response_refusal``, ``response_harmfulness``) to
values in [0, 1]; a field left out keeps greedy decoding's label. ``calibration`` (optional) records how the
values were chosen and is not read.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from guardreasoner.errors import GuardReasonerError
from guardreasoner.scores import SCORE_FIELDS, TASKS
from guardreasoner.settings_files import read_setting, write_setting
from guardreasoner.verdict import ScoreStatus, Verdict

ThresholdsLike = str | os.PathLike | Mapping[str, float] | None
"""A thresholds file's path, a ``{field: threshold}`` mapping, or None for greedy decoding's labels."""


class ThresholdsError(GuardReasonerError, ValueError):
    """Thresholds that cannot be used as given: the message says what is wrong and where."""


def load_thresholds(source: ThresholdsLike) -> dict[str, float]:
    """Validated ``{field: threshold}`` from a thresholds file or a mapping; ``{}`` for None."""
    if source is None:
        return {}
    if isinstance(source, (str, os.PathLike)):
        return _read_file(Path(source))
    if not isinstance(source, Mapping):
        raise ThresholdsError(
            f"thresholds must be a path to a thresholds file or a {{field: threshold}} mapping, not {type(source).__name__}."
        )
    return _validate(source, "thresholds")


def write_thresholds(
    path: str | os.PathLike, thresholds: Mapping[str, float], calibration: Mapping[str, Any] | None = None
) -> Path:
    """Write a thresholds file (validated first, so that what is written can be read back)."""
    return write_setting(path, "thresholds", _validate(thresholds, "thresholds"), calibration)


def apply_thresholds(verdict: Verdict, thresholds: Mapping[str, float]) -> Verdict:
    """The verdict with each thresholded label decided by its score where the score can decide.

    Fields without a label (not needed, or not read: the failure policy decides those) are left alone. When
    a label changes, ``is_harmful`` follows, if the model decided it.
    """
    if not thresholds:
        return verdict
    labels, applied, fallbacks = {}, {}, []
    for field, threshold in thresholds.items():
        label = getattr(verdict, field)
        if label is None:
            continue
        applied[field] = threshold
        decided = _decide(
            getattr(verdict, SCORE_FIELDS[field]), threshold, label, field, verdict.score_status.get(field)
        )
        if decided is None:
            fallbacks.append(field)
        else:
            labels[field] = decided
    update: dict[str, Any] = {**labels, "thresholds": applied, "threshold_fallbacks": fallbacks}
    if verdict.decided_by == "model" and verdict.is_harmful is not None:
        final = {
            name: labels.get(name, getattr(verdict, name))
            for name in ("prompt_harmfulness", "response_harmfulness")
        }
        update["is_harmful"] = "harmful" in final.values()
    return verdict.model_copy(update=update)


def _decide(
    score: float | None, threshold: float, label: str, field: str, status: ScoreStatus | None
) -> str | None:
    """The label the threshold gives, or None when it cannot tell."""
    if score is None:
        return None
    task = TASKS[field]
    positive = score >= threshold
    if status is ScoreStatus.TOP_K_BOUND and positive != (label == task.positive):
        # A bound lies between 0.5 and the true score: it decides only when it agrees with greedy's label.
        return None
    return task.positive if positive else task.negative


def _read_file(path: Path) -> dict[str, float]:
    thresholds = read_setting(
        path,
        "thresholds",
        error=ThresholdsError,
        name="thresholds",
        shape="{field: value}",
        command="guardreasoner eval --calibrate",
    )
    return _validate(thresholds, f"'thresholds' in {path}")


def _validate(thresholds: Any, where: str) -> dict[str, float]:
    if not isinstance(thresholds, Mapping):
        raise ThresholdsError(
            f"{where} must map label fields to thresholds, not {type(thresholds).__name__}."
        )
    unknown = [str(name) for name in thresholds if name not in SCORE_FIELDS]
    if unknown:
        hint = " Pass the file's path, or its 'thresholds' object." if "thresholds" in unknown else ""
        raise ThresholdsError(
            f"{where} names unknown tasks {unknown}; the label fields are {sorted(SCORE_FIELDS)}.{hint}"
        )
    valid = {}
    for name, value in thresholds.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise ThresholdsError(
                f"{where}: the threshold for {name} must be a number in [0, 1] (NaN is not), not {value!r}."
            )
        valid[name] = float(value)
    return valid
